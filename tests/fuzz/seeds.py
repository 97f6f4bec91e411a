#!/usr/bin/env python3
"""Writes seed corpora for the libFuzzer targets in tests/fuzz/.

usage: seeds.py OUTDIR   ->  OUTDIR/fuzz_frame/, fuzz_record/, fuzz_article/,
                             fuzz_dispatch/ (one file per seed)

A tiny MessagePack encoder is included so the script needs nothing but
Python 3. Seeds are deterministic.
"""
import os
import struct
import sys


class Ts:
    def __init__(self, sec, nsec=0, form=None):
        self.sec, self.nsec, self.form = sec, nsec, form


class Ext:
    def __init__(self, t, data):
        self.t, self.data = t, data


class Raw:
    """Bytes inserted as they are (already encoded, or deliberately bad)."""
    def __init__(self, b):
        self.b = b


def pack(o):
    if isinstance(o, Raw):
        return o.b
    if o is None:
        return b"\xc0"
    if o is True:
        return b"\xc3"
    if o is False:
        return b"\xc2"
    if isinstance(o, int):
        if 0 <= o < 128:
            return bytes([o])
        if -32 <= o < 0:
            return struct.pack("b", o)
        if o >= 0:
            for tag, fmt, lim in ((0xcc, ">B", 1 << 8), (0xcd, ">H", 1 << 16),
                                  (0xce, ">I", 1 << 32), (0xcf, ">Q", 1 << 64)):
                if o < lim:
                    return bytes([tag]) + struct.pack(fmt, o)
        for tag, fmt, lim in ((0xd0, ">b", 1 << 7), (0xd1, ">h", 1 << 15),
                              (0xd2, ">i", 1 << 31), (0xd3, ">q", 1 << 63)):
            if -lim <= o:
                return bytes([tag]) + struct.pack(fmt, o)
    if isinstance(o, float):
        return b"\xcb" + struct.pack(">d", o)
    if isinstance(o, str):
        b = o.encode()
        n = len(b)
        if n < 32:
            return bytes([0xa0 | n]) + b
        if n < 256:
            return b"\xd9" + bytes([n]) + b
        if n < 65536:
            return b"\xda" + struct.pack(">H", n) + b
        return b"\xdb" + struct.pack(">I", n) + b
    if isinstance(o, (bytes, bytearray)):
        n = len(o)
        if n < 256:
            return b"\xc4" + bytes([n]) + bytes(o)
        if n < 65536:
            return b"\xc5" + struct.pack(">H", n) + bytes(o)
        return b"\xc6" + struct.pack(">I", n) + bytes(o)
    if isinstance(o, list):
        n = len(o)
        h = bytes([0x90 | n]) if n < 16 else b"\xdc" + struct.pack(">H", n)
        return h + b"".join(pack(x) for x in o)
    if isinstance(o, dict):
        n = len(o)
        h = bytes([0x80 | n]) if n < 16 else b"\xde" + struct.pack(">H", n)
        return h + b"".join(pack(k) + pack(v) for k, v in o.items())
    if isinstance(o, Ts):
        form = o.form
        if form is None:
            if o.nsec == 0 and 0 <= o.sec < (1 << 32):
                form = 32
            elif 0 <= o.sec < (1 << 34):
                form = 64
            else:
                form = 96
        if form == 32:
            return b"\xd6\xff" + struct.pack(">I", o.sec)
        if form == 64:
            return b"\xd7\xff" + struct.pack(">Q", (o.nsec << 34) | o.sec)
        return b"\xc7\x0c\xff" + struct.pack(">Iq", o.nsec, o.sec)
    if isinstance(o, Ext):
        n = len(o.data)
        fix = {1: 0xd4, 2: 0xd5, 4: 0xd6, 8: 0xd7, 16: 0xd8}
        if n in fix:
            return bytes([fix[n]]) + struct.pack("b", o.t) + o.data
        return b"\xc7" + bytes([n]) + struct.pack("b", o.t) + o.data
    raise TypeError(o)


def article(i, **extra):
    a = {"guid": "urn:seed:%d" % i, "published": Ts(1600000000 + i * 3600),
         "title": "Seed article %d" % i,
         "body": "The market rose on Tuesday, analysts said. " * (1 + i % 5),
         "authors": ["A. Writer"], "tags": ["markets", "seed"], "language": "en"}
    a.update(extra)
    return a


def req(msgid, method, params):
    return pack([0, msgid, method, params])


def articles():
    out = [pack(article(1)), pack(article(2, updated=Ts(-1, 500000000))),
           pack({"guid": "g", "published": Ts(0), "title": ""}),
           pack({"guid": "g", "published": Ts(-62135596800), "title": "t",
                 "x": {"nested": [1, 2.5, None, True, b"\x00"]}}),
           pack({"guid": "g", "published": Ts(253402300799, 999999999), "title": "t"}),
           pack({"guid": "g", "title": "no time"}),
           pack({"guid": "g", "published": Ts(1, 1000000000, 96), "title": "bad ns"}),
           pack({"guid": "", "published": Ts(1), "title": "empty guid"}),
           pack({"guid": "g", "published": Ts(1), "title": "t", "title ": "near dup"}),
           pack({"guid": "g", "published": Ts(1), "title": "t", "authors": ["a", 1]}),
           pack(dict([("guid", "g"), ("published", Ts(1)), ("title", "t")] +
                     [("k%02d" % i, i) for i in range(40)])),
           pack([1, 2, 3]), b"\x83\x01\x02\xa1x\xc0\xa4guid\xa1g"]
    return out


def frames():
    return [
        req(1, "ping", []) + req(2, "stats", []) + pack([2, "x", []]),
        pack(article(3)) + pack([[[[[[]]]]]]) + pack({"a": {"b": {"c": [1]}}}),
        pack([0, 7, "put", [Raw(b"\xdb\xff\xff\xff\xff")]]),
        pack([Ext(5, b"abc"), Ext(-1, b"\x00\x00\x00\x01"), Ts(1, 1), Ts(-5, 3),
              -1, -200, -70000, -(1 << 40), 1 << 63, 2.5, b"\x01" * 300, "s" * 300]),
        b"\xc1", b"\x91" * 40 + b"\xc0", b"\xdd\x00\x00\x00\x02\x01",
    ]


def records():
    body = b"".join(pack(article(i)) for i in range(2))
    out = [b"\x00\x00", b"\x00\x03abc", b"\x00" + bytes([len(body[:100])]) + body[:100],
           b"\x01\x05\x00", b"\x02\x00\x00\x00\x01\x05", b"\x00\xff\xff\xff\xff\x0f",
           b"\x00\x80\x80\x80\x80\x80\x00", body]
    # a real zstd frame cannot be made without zstd; the fuzzer's own
    # encode/decode half produces those
    return out


def dispatch():
    a = article(10)
    b = article(11, published=Ts(-86400))
    return [
        req(1, "ping", []),
        req(2, "put", [a]) + req(3, "get", ["urn:seed:10"]) +
        req(4, "get", ["urn:seed:10", {"fields": ["title", "guid"]}]),
        req(5, "put_batch", [[a, b, {"guid": 1}]]) + req(6, "count", []) +
        req(7, "count", [{"from": 0, "to": Ts(2000000000)}]),
        req(8, "range", [{"limit": 2}]) + req(9, "range", [{"reverse": True, "limit": 1,
                                                            "fields": ["guid"]}]) +
        req(10, "range", [{"from": -100000, "to": 1700000000, "after": b"\x80" + b"\x00" * 15}]),
        req(11, "delete", ["urn:seed:10"]) + req(12, "delete", ["nope"]),
        req(13, "stats", []) + req(14, "nosuch", []) + req(15, 3, []) + req(16, "get", "x"),
        req(17, "range", [{"limit": 0}]) + req(18, "range", [{"limit": 5000}]) +
        req(19, "range", [{"after": b"short"}]) + req(20, "get", [""]),
        req(21, "put", [Raw(b"\xdb\xff\xff\xff\xff")]),
        pack([0, 22]) + pack([1, 2, 3, 4]) + b"\xc1",
        pack([0, 23, "put", [a]]) + pack([0, 24, "put", [a]]),
    ]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    root = sys.argv[1]
    sets = {"fuzz_frame": [b"\x20\xff\x12\x34" + f for f in frames() + articles()],
            "fuzz_record": records(),
            "fuzz_article": articles(),
            "fuzz_dispatch": dispatch()}
    for name, seeds in sets.items():
        d = os.path.join(root, name)
        os.makedirs(d, exist_ok=True)
        for i, s in enumerate(seeds):
            with open(os.path.join(d, "seed-%03d" % i), "wb") as f:
                f.write(s)
    print("seeds written to %s" % root)


if __name__ == "__main__":
    main()
