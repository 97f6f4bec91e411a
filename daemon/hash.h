/*
 * hash.h - SipHash-2-4, the keyed 64-bit hash of the guid index. Each
 * archive draws its own random 128-bit key at creation, so nobody outside
 * can craft guids that collide on purpose.
 */
#ifndef NA_HASH_H
#define NA_HASH_H

#include <stddef.h>
#include <stdint.h>

uint64_t na_siphash(const uint8_t key[16], const void *data, size_t len);

#endif
