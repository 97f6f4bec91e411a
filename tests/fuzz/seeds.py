#!/usr/bin/env python3
"""Writes seed corpora for the libFuzzer targets in tests/fuzz/.

usage: seeds.py OUTDIR   ->  OUTDIR/fuzz_frame/, fuzz_record/, fuzz_article/,
                             fuzz_dispatch/, fuzz_json/, fuzz_text/,
                             fuzz_follow/, fuzz_query/ (one file per seed)

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


def json_seeds():
    """JSON articles, msgpack values, RFC 3339 times and base64 for fuzz_json."""
    js = [
        '{"guid": "urn:seed:j1", "published": "2021-03-04T05:06:07Z", "title": "Harbour reopens",'
        ' "body": "Ferries resumed at dawn.\\nTraffic was light.", "authors": ["R. Vale"],'
        ' "tags": ["transport"], "language": "en"}',
        '{"guid": "g", "published": 1600000000, "updated": 1600000100.25, "title": "t"}',
        '{"guid": "g", "published": "1999-12-31 23:59:59.123456789+05:30", "title": "",'
        ' "x": {"n": null, "b": [true, false], "r": -0.0, "big": 9223372036854775807,'
        ' "neg": -9223372036854775808, "e": 1e300, "s": "\\u00e9\\u0000\\ud83d\\ude00"}}',
        '{"guid": "g", "published": {"$ext": -1, "$base64": "AAAAAQ=="}, "title": "t",'
        ' "bin": {"$base64": "AAEC/w=="}, "ext": {"$ext": 5, "$base64": "YWJj"},'
        ' "notbin": {"$base64": "AA==", "other": 1}}',
        '{"guid": "g", "published": "0001-01-01", "title": "t", "d": [[[[[[[[1]]]]]]]]}',
        '{"guid": "g", "published": "9999-12-31T23:59:59.999999999Z", "title": "t"}',
        '{"guid": "g", "published": "2020-02-30", "title": "bad day"}',
        '{"guid": "g", "guid": "h", "published": 0, "title": "dup"}',
        '{"guid": "", "published": 0, "title": "empty guid"}',
        '[1, 2, 3]', '{"guid": "g", "published": 0', '',
    ]
    times = ["2022-01-08T07:52:00Z", "1987-02-26T15:01:01.79Z", "2000-02-29t12:00z",
             "2021-06-01T00:00:00+0530", "2021-06-01T00:00-08", "2016-12-31T23:59:60Z",
             "0001-01-01T00:00:00+00:01", "9999-12-31T23:59:59-00:01", "2021-13-01",
             "2021-01-01T24:00:00Z", "2021-01-01T00:00:00.1234567890Z"]
    b64 = ["", "QQ==", "QUI=", "QUJD", "QUJDRA==", "QR==", "Q===", "QUJD!A=="]
    mp = [pack(article(20)), pack(article(21, updated=Ts(-62135596800))),
          pack({"k": [1, -1, 1 << 63, -(1 << 63), 0.1, 1e16, 123456789.0, None, True]}),
          pack({"$base64": "AA=="}), pack({"$ext": 1, "$base64": "AA=="}),
          pack({1: 2}), pack([Raw(b"\xa1\xff")]),
          pack([Ts(253402300800), Ts(1, 999999999), Ext(7, b"xyz"), b"\x00\x01"]),
          pack({"a\x00b": "c\x1f\"\\\x7f"}), b"\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00",
          pack("\u2028") + b"\xc0", b"\xa2\xc3\x28"]
    return [x.encode() for x in js + times + b64] + mp


def text_seeds():
    """Text pages for fuzz_text; byte 0 picks the options."""
    pages = [
        "Home > World > Europe\n\nRiver barges return to the upper canal\n"
        "By Dana Ostrow and Lee Park, Staff Reporters\n"
        "Published 13:22 CET, January 8th 2022 | Updated 15:01 CET\n\n"
        "Barges carried grain past the old locks on Saturday for the first time in a year.\n\n"
        "The operator said repairs had cost less than planned.\nAdvertisement\n\n"
        "Related\nOther news\n",
        "CITY DESK\nCouncil approves new library budget\nJan. 8, 2022 7:52 a.m. ET\n"
        "Written by Sam Whitfield for The Example Gazette\n"
        "The council voted 7-2.\nMembers debated late into the night.\n",
        "\ufeffPosted on March 3, 2023 by Sam Whitfield\r\n"
        "A quiet week on the markets for small traders\r\n\r\nPrices barely moved.\r\n",
        "Saturday 8th of January, 2022 09:15 UTC+5:30\nThree words title here\nBody.\n",
        "08/01/2022 10:00 PT\nA numeric date with a Pacific zone\nText.\n",
        "Date: 2022/01/08\nAuthor: Q. Example\nNo body lines follow the headline at all\n",
        "Last updated 2022-01-08T13:22:05+05:30\nOnly an update time on this page\n5 min read\n",
        "Share\nTweet\nEmail\nNo date anywhere on this page at all\n",
        "8 January 2022\nshort\n\n\n",
        "2022-01-08 25:61\nA page with a broken time on the date line\nBody.\n",
    ]
    out = []
    for i, p in enumerate(pages):
        out.append(bytes([(i * 37) & 0xff]) + p.encode())
    out.append(b"\x00" + b"Jan 8, 2022\n\xc3\x28 bad utf-8 headline here\n")
    out.append(b"\x08" + b"A headline\x00with a NUL\n8 January 2022\n")
    out.append(b"\x10" + b"GMT-4")
    out.append(b"\x18" + b"+05:30")
    return out


def follow_seeds():
    """Messages a primary sends its followers (replog.c), for fuzz_follow."""
    key = bytes(range(16))
    key2 = bytes(range(16, 32))
    hist = b"H" * 16
    chain = b"C" * 16 + struct.pack(">Q", 42)

    def notify(method, params):
        return pack([2, method, params])

    rec = b"\x00\x05hello"  # a stored record: plain, 5 bytes
    return [
        pack([1, 1, None, {"mode": "stream", "history": hist, "chain": b"", "seq": 7, "head": 9}]),
        pack([1, 1, None, {"mode": "snapshot", "history": hist, "chain": chain,
                           "hash_key": b"K" * 16, "seq": 3, "head": 3, "extra": [1, 2]}]),
        pack([1, 2, None, True]),
        pack([1, 1, {"code": "unauthorized", "message": "no"}, None]),
        notify("log", [[[1, "P", key, None, rec], [2, "P", key2, key, None],
                        [3, "D", key], [4, "Z", 1, b"dictionary bytes"]], 10, 1700000000000]),
        notify("log", [[]]),
        notify("log", [[[5, "Z", 4097, b"x"]]]),
        notify("log", [[[6, "X", key]], 1]),
        notify("rows", [[[key, rec], [key2, b""]]]),
        notify("rows", [[[key, rec, b"extra"]]]),
        notify("heartbeat", [10, 1700000000000]),
        notify("dict", [1, b"dict"]),
        notify("snapshot_end", [12]),
        pack([2, "log", [Raw(b"\xdd\x7f\xff\xff\xff")]]),
    ]


def query_seeds():
    """Search queries for fuzz_query (one operator or mistake each)."""
    qs = ["cocoa", "cocoa beans", "cocoa OR coffee", "cocoa -futures",
          "\"interest rates\"", "econ*", "title:cocoa", "author:\"Jane Doe\"",
          "tag:fx OR source:ap section:world", "(a OR b) -(c d) AND e",
          "caf\u00e9 \u6771\u4eac e-mail U.S.", "\"unterminated", "-alone", "a OR",
          "colour:red", "(((a)))", "*", "a**", "title:", "a - b", "\"\"",
          "author:jan*", "x\x00y", "\xff\xfe"]
    return [q.encode("utf-8", "surrogateescape") for q in qs]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    root = sys.argv[1]
    sets = {"fuzz_frame": [b"\x20\xff\x12\x34" + f for f in frames() + articles()],
            "fuzz_record": records(),
            "fuzz_article": articles(),
            "fuzz_dispatch": dispatch(),
            "fuzz_json": json_seeds(),
            "fuzz_text": text_seeds(),
            "fuzz_follow": follow_seeds(),
            "fuzz_query": query_seeds()}
    for name, seeds in sets.items():
        d = os.path.join(root, name)
        os.makedirs(d, exist_ok=True)
        for i, s in enumerate(seeds):
            with open(os.path.join(d, "seed-%03d" % i), "wb") as f:
                f.write(s)
    print("seeds written to %s" % root)


if __name__ == "__main__":
    main()
