/*
 * key.h - article keys: 16 bytes that sort by publication time.
 *
 * Bytes 0..7: microseconds since 1970-01-01 UTC as a big-endian int64 with
 * the sign bit flipped, so earlier times (also before 1970) sort first under
 * LMDB's default memcmp order. Bytes 8..15: the big-endian change-log
 * sequence number of the write that created the key; it makes keys unique
 * when times are equal and is never reused, so a key names one immutable
 * stored version of an article.
 */
#ifndef NA_KEY_H
#define NA_KEY_H

#include <stdint.h>

#include "mp.h"

#define NA_KEY_BYTES 16

typedef struct na_key {
	uint8_t b[NA_KEY_BYTES];
} na_key;

/* Microseconds since the epoch for a timestamp (floor). The caller checks
 * the timestamp's range (NA_TS_MIN_SEC..NA_TS_MAX_SEC) first. */
int64_t na_ts_micros(na_ts ts);
void na_key_make(na_key *k, int64_t micros, uint64_t seq);
int64_t na_key_micros(const na_key *k);
uint64_t na_key_seq(const na_key *k);
/* The smallest key at or after micros (sequence 0). */
static inline void na_key_floor(na_key *k, int64_t micros) { na_key_make(k, micros, 0); }

void na_be64_put(uint8_t *p, uint64_t v);
uint64_t na_be64_get(const uint8_t *p);

#endif
