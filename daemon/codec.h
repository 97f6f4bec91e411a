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

#include <stddef.h>
#include <stdint.h>

enum { NA_REC_RAW = 0, NA_REC_ZSTD = 1, NA_REC_ZSTD_DICT = 2 };
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

/* Trains a dictionary of at most cap bytes from n samples laid end to end
 * in buf (sizes[i] each). On success *dict is malloc'ed (caller frees).
 * Returns 0, -EINVAL when zstd could not train (too few samples). */
int na_codec_train(const void *buf, const size_t *sizes, unsigned n, size_t cap, void **dict,
		   size_t *dict_len);

#endif
