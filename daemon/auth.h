/*
 * auth.h - tokens and roles (see auth.c).
 */
#ifndef NA_AUTH_H
#define NA_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { NA_ROLE_NONE = 0, NA_ROLE_READ, NA_ROLE_WRITE, NA_ROLE_REPLICATE, NA_ROLE_ADMIN };

#define NA_TOKENS_MAX 64
#define NA_TOKEN_MIN 16
#define NA_TOKEN_MAX 256

typedef struct na_tokens {
	unsigned n;
	struct {
		int role;
		size_t len;
		char secret[NA_TOKEN_MAX];
	} t[NA_TOKENS_MAX];
} na_tokens;

#define NA_GUARD_SLOTS 1024

typedef struct na_guard_slot {
	uint64_t hash;
	uint64_t window_start, blocked_until;
	unsigned fails;
} na_guard_slot;

typedef struct na_guard {
	uint8_t key[16];
	na_guard_slot slot[NA_GUARD_SLOTS];
} na_guard;

const char *na_role_name(int role);
int na_role_parse(const char *s, size_t n);
/* May a connection with role `have` call a method needing `need`? */
bool na_role_allows(int have, int need);

/* Adds "ROLE:SECRET". 0, or -1 with a message (never containing the secret). */
int na_token_add(na_tokens *t, const char *spec, char *err, size_t errlen);
/* Reads ROLE:SECRET lines (# comments); the file must be mode 0600 or
 * stricter. 0 or -1 with a message. */
int na_tokens_load_file(na_tokens *t, const char *path, char *err, size_t errlen);
/* The role of the token tok[0..n), or -1; constant time in the token. */
int na_tokens_check(const na_tokens *t, const char *tok, size_t n);

bool na_guard_blocked(na_guard *g, const char *peer, uint64_t now_ms);
void na_guard_fail(na_guard *g, const char *peer, uint64_t now_ms);

#endif
