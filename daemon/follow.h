/*
 * follow.h - decoding what a primary sends to its follower (follow.c).
 *
 * Pure functions, no I/O and no follower state: follow.c's on_handshake,
 * on_rows and on_log call them on every message, and tests/fuzz/fuzz_follow.c
 * feeds them random bytes. Decoded pointers (records, keys' sources,
 * dictionaries) point into the bytes given, which must outlive the result.
 */
#ifndef NA_FOLLOW_H
#define NA_FOLLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mp.h"
#include "writer.h"

/* The result map of the reply to replicate. */
typedef struct na_follow_hello {
	const char *mode;          /* "snapshot" or "stream" (not checked here) */
	uint32_t mode_n;
	const uint8_t *history;    /* 16 bytes */
	const uint8_t *chain;      /* chain_bytes: a multiple of 24, at most 16 * 24 */
	uint32_t chain_bytes;
	const uint8_t *hash_key;   /* NULL when absent; hash_key_n bytes */
	uint32_t hash_key_n;
	uint64_t seq, head;        /* 0 when absent */
} na_follow_hello;

/* Reads the map at r into h. 0, or -1 when it is malformed or lacks mode,
 * a 16-byte history or a well-sized chain. */
int na_follow_parse_hello(na_mp *r, na_follow_hello *h);

/*
 * The np params of a "log" notification, at p[0..len) (just after the params
 * array's header): [entry...], then optionally head and time. On success *entries is a new array of
 * *nentries entries (free it), and *has_head says whether head and time
 * were given (*head, *time are then set). -1 on malformed input, nothing
 * allocated.
 */
int na_follow_parse_log(const uint8_t *p, size_t len, uint32_t np, na_rentry **entries,
			uint32_t *nentries, bool *has_head, uint64_t *head, uint64_t *time);

/* The one param of a "rows" notification, at p[0..len) (just after the
 * params array's header): [[key, record]...]. On success *rows is a new array of *nrows rows (free
 * it); -1 on malformed input, nothing allocated. */
int na_follow_parse_rows(const uint8_t *p, size_t len, na_srow **rows, uint32_t *nrows);

#endif
