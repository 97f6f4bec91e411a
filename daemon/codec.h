/*
 * codec.h - stored records and compression dictionaries.
 *
 * A record is what the articles table holds for one article:
 *
 *   byte 0      format: 0 raw msgpack, 1 zstd, 2 zstd with a dictionary
 *   bytes 1..4  dictionary id, big-endian (format 2 only)
 *   varint      length of the article's msgpack bytes (LEB128, <= 5 bytes)
 *   payload     the bytes, or a zstd frame in the magicless format with no
 *               dictionary id, checksum or content size (we keep those)
 *
 * Dictionaries are numbered from 1, never change once stored and are never
 * removed, so every record stays readable. The codec keeps them in a table
 * that readers use without locks (slots are published once, with release
 * semantics). Compression and decompression contexts come from small pools
 * so any thread may encode or decode.
 */
#ifndef NA_CODEC_H
#define NA_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { NA_REC_RAW = 0, NA_REC_ZSTD = 1, NA_REC_ZSTD_DICT = 2, NA_REC_BLOCK = 3 };
#define NA_REC_HDR_MAX 10
#define NA_MAX_DICTS 4096

typedef struct na_codec na_codec;

typedef struct na_rec {
	int fmt;
	uint32_t dict;
	uint32_t raw_len;
	const uint8_t *payload;
	size_t payload_len;
} na_rec;

/* Creates a codec compressing at `level`, refusing records that claim more
 * than max_raw bytes. Returns 0 or -ENOMEM. The caller destroys it. */
int na_codec_create(int level, size_t max_raw, na_codec **out);
void na_codec_destroy(na_codec *c);

/* Registers dictionary `id` (copies the bytes). -EINVAL for a bad id or a
 * dictionary zstd rejects, -EEXIST if the id is taken. */
int na_codec_add_dict(na_codec *c, uint32_t id, const void *bytes, size_t len);
/* Forgets every dictionary (a follower re-bootstrapping from another
 * archive). Dictionaries still in use by a concurrent decode stay valid:
 * they are only freed with the codec. */
void na_codec_reset_dicts(na_codec *c);
/* Forgets dictionary id, registered for a transaction that did not commit
 * (its records never reached the disk); if it was the current one, new
 * records go without a dictionary until na_codec_use_dict. Freed with the
 * codec, like those of na_codec_reset_dicts. */
void na_codec_drop_dict(na_codec *c, uint32_t id);
/* Makes `id` (0: none) the dictionary new records are compressed with. */
void na_codec_use_dict(na_codec *c, uint32_t id);
uint32_t na_codec_current_dict(const na_codec *c);
/* Size of dictionary id, 0 if unknown. */
size_t na_codec_dict_size(const na_codec *c, uint32_t id);
/* Highest dictionary id registered (0 if none). */
uint32_t na_codec_max_dict(const na_codec *c);

/* Upper bound of a record's size for raw_len bytes of article. */
size_t na_codec_bound(size_t raw_len);

/* Encodes raw[0..n) into out (capacity na_codec_bound(n)) with the current
 * dictionary; stores raw when compression does not pay. Thread-safe. */
int na_codec_encode(na_codec *c, const void *raw, size_t n, uint8_t *out, size_t *outlen);

/* Parses a record's header. 0, or -EINVAL when malformed or over max_raw. */
int na_rec_parse(const na_codec *c, const uint8_t *rec, size_t len, na_rec *out);

/* Decodes a record into out (capacity at least the record's raw_len, which
 * na_rec_parse tells). Checks that exactly raw_len bytes come out.
 * 0, -EINVAL (corrupt record or unknown dictionary), -ENOMEM. Thread-safe. */
int na_codec_decode(na_codec *c, const uint8_t *rec, size_t len, uint8_t *out, size_t cap,
		    size_t *outlen);

/* A decoding context held by one thread for a series of decodes (a page of
 * a range: one trip to the codec's free list instead of one per record).
 * na_codec_hold returns NULL when out of memory, and the _held calls then
 * take a context per call as the plain ones do. na_codec_release gives it
 * back (NULL is fine); the codec owns it throughout. */
typedef struct na_dhold na_dhold;
na_dhold *na_codec_hold(na_codec *c);
void na_codec_release(na_codec *c, na_dhold *h);
/* na_codec_decode with a held context (h may be NULL). */
int na_codec_decode_held(na_codec *c, na_dhold *h, const uint8_t *rec, size_t len, uint8_t *out,
			 size_t cap, size_t *outlen);

/* Counts, over the decoding contexts not in use right now: frames decoded
 * right after a copy of their dictionary (see codec.c), and such copies
 * built. For tests and diagnostics. */
void na_codec_decode_stats(na_codec *c, uint64_t *prefixed, uint64_t *built);

/*
 * Blocks. A block is one record holding several articles that are adjacent
 * in key order, compressed together as one zstd frame (a run of articles
 * shares far more than one article shares with a dictionary). It is stored
 * under the key of its first live member.
 *
 *   byte 0      NA_REC_BLOCK
 *   byte 1      payload: NA_REC_RAW, NA_REC_ZSTD or NA_REC_ZSTD_DICT
 *   bytes 2..5  dictionary id, big-endian (0 unless NA_REC_ZSTD_DICT)
 *   varint      n, the members (1..NA_BLOCK_MAX_MEMBERS)
 *   varint      total raw length (the members' lengths add up to it)
 *   16 bytes    the key of member 0
 *   n times     varint (raw length << 1 | dead); then, for members 1..n-1,
 *               varint time delta (bytes 0..7 of the key as a big-endian
 *               integer, minus the previous member's) and varint zigzag
 *               sequence delta (bytes 8..15, wrapping). Keys strictly
 *               increase.
 *   payload     the members' msgpack bytes end to end, raw or one
 *               magicless zstd frame
 *
 * A dead member is one the writer removed (deleted or replaced) without
 * recompressing the block: its bytes stay in the frame until the compactor
 * repacks the block; readers skip it. At least one member is live.
 */
#define NA_BLOCK_MAX_MEMBERS 256

typedef struct na_bmember {
	uint8_t key[16];
	uint32_t off, len;     /* in the decoded payload */
	bool dead;
} na_bmember;

typedef struct na_block {
	int kind;              /* payload encoding: NA_REC_RAW/ZSTD/ZSTD_DICT */
	uint32_t dict;
	uint32_t n, live;      /* members, and how many of them are live */
	uint32_t first_live, last_live; /* indexes */
	uint64_t raw_len;      /* decoded payload bytes */
	const uint8_t *payload;
	size_t payload_len;
	na_bmember m[NA_BLOCK_MAX_MEMBERS];
} na_block;

/* True when the record is a block (len >= 1). */
static inline bool na_rec_is_block(const uint8_t *rec, size_t len)
{
	return len >= 1 && rec[0] == NA_REC_BLOCK;
}

/* Parses a block record: header, member table, payload bounds. Everything
 * is checked (counts, lengths adding up, keys strictly increasing, a live
 * member, a raw payload of exactly the raw length). 0 or -EINVAL. */
int na_block_parse(const na_codec *c, const uint8_t *rec, size_t len, na_block *b);

/* Decodes a parsed block's payload into out (capacity >= b->raw_len).
 * 0, -EINVAL (corrupt or unknown dictionary), -ENOMEM. Thread-safe. */
int na_block_decode(na_codec *c, const na_block *b, uint8_t *out, size_t cap);
/* na_block_decode with a held context (h may be NULL; see na_codec_hold). */
int na_block_decode_held(na_codec *c, na_dhold *h, const na_block *b, uint8_t *out, size_t cap);

/* Builds a block record of n members (keys strictly increasing, m[i].len
 * each, m[i].dead flags; offsets are ignored) whose bytes lie end to end in
 * raw (raw_len bytes), compressed with the current dictionary at the block
 * level. out must hold na_block_bound(n, raw_len). 0, -EINVAL, -ENOMEM. */
size_t na_block_bound(uint32_t n, size_t raw_len);
int na_block_encode(na_codec *c, const na_bmember *m, uint32_t n, const uint8_t *raw,
		    size_t raw_len, uint8_t *out, size_t *outlen);
/* Rewrites a parsed block's header with new dead flags (dead[i] for every
 * member), keeping its payload bytes as they are. out holds at least
 * na_block_bound(b->n, 0) + b->payload_len bytes. At least one member must
 * stay live. 0 or -EINVAL. */
int na_block_remark(const na_block *b, const bool *dead, uint8_t *out, size_t *outlen);

/* zstd level of blocks (the compactor has time for a higher one). */
void na_codec_set_block_level(na_codec *c, int level);

/* Whether new single records Huffman-code their literals (the bytes no
 * match covers): yes by default, as zstd does. Without, a record of ~1 KB
 * decodes in about half the time (~0.85 against ~1.6 us on the newswire
 * corpus) for ~12% more bytes, because the decoder no longer builds a
 * Huffman table for each small frame. Blocks always code them (they exist
 * for density). Records written either way decode alike. */
void na_codec_set_literals(na_codec *c, bool compress);

/* Trains a dictionary of at most cap bytes from n samples laid end to end
 * in buf (sizes[i] each). quick trains in one pass with fixed parameters
 * (for when writes wait on it); otherwise zstd searches for the best ones.
 * On success *dict is malloc'ed (caller frees). Returns 0, -ENOMEM, or
 * -EINVAL when zstd could not train (too few samples). */
int na_codec_train(const void *buf, const size_t *sizes, unsigned n, size_t cap, bool quick,
		   void **dict, size_t *dict_len);

#endif
