/*
 * key.c - encoding of article keys (see key.h for the layout).
 */
#include "key.h"

void na_be64_put(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

uint64_t na_be64_get(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

int64_t na_ts_micros(na_ts ts)
{
	return ts.sec * 1000000 + (int64_t)(ts.nsec / 1000);
}

void na_key_make(na_key *k, int64_t micros, uint64_t seq)
{
	na_be64_put(k->b, (uint64_t)micros ^ (1ULL << 63));
	na_be64_put(k->b + 8, seq);
}

int64_t na_key_micros(const na_key *k)
{
	return (int64_t)(na_be64_get(k->b) ^ (1ULL << 63));
}

uint64_t na_key_seq(const na_key *k)
{
	return na_be64_get(k->b + 8);
}
