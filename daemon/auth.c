/*
 * auth.c - tokens, roles and the guard against guessing.
 *
 * When any token is configured (`token = ROLE:SECRET` lines, or a token
 * file only the service user can read), a connection starts with no role
 * and may only call ping and auth; `auth [token]` gives it the token's role.
 * Roles: read (get, range, count, stats, metrics), write (read + put,
 * put_batch, delete), replicate (read + replicate, subscribe), admin
 * (everything, including promote, backup and verify). With no token
 * configured every connection is admin, and the server refuses to listen on
 * a non-loopback address unless allow_unauthenticated is set.
 *
 * Tokens are compared in constant time against every configured token, so
 * the time taken says nothing about which or how much matched. Failed
 * attempts are logged with the peer's address (never the token) and
 * limited per address: after AUTH_MAX_FAILS failures within AUTH_WINDOW_MS,
 * that address's attempts are refused for AUTH_BLOCK_MS, right token or not.
 */
#include "auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hash.h"
#include "log.h"

#define AUTH_MAX_FAILS 5
#define AUTH_WINDOW_MS 60000
#define AUTH_BLOCK_MS 60000

static const char *const role_names[] = { "none", "read", "write", "replicate", "admin" };

const char *na_role_name(int role)
{
	return role >= 0 && role <= NA_ROLE_ADMIN ? role_names[role] : "?";
}

int na_role_parse(const char *s, size_t n)
{
	for (int i = NA_ROLE_READ; i <= NA_ROLE_ADMIN; i++)
		if (strlen(role_names[i]) == n && memcmp(role_names[i], s, n) == 0)
			return i;
	return -1;
}

bool na_role_allows(int have, int need)
{
	if (need <= NA_ROLE_NONE || have == NA_ROLE_ADMIN)
		return true;
	if (need == NA_ROLE_READ)
		return have >= NA_ROLE_READ;
	return have == need;
}

int na_token_add(na_tokens *t, const char *spec, char *err, size_t errlen)
{
	const char *colon = strchr(spec, ':');
	int role = colon ? na_role_parse(spec, (size_t)(colon - spec)) : -1;
	if (role < 0) {
		snprintf(err, errlen, "token: expected ROLE:SECRET with ROLE one of read, write, "
				      "replicate, admin");
		return -1;
	}
	size_t n = strlen(colon + 1);
	if (n < NA_TOKEN_MIN || n > NA_TOKEN_MAX) {
		snprintf(err, errlen, "token: the secret must be %d to %d characters", NA_TOKEN_MIN,
			 NA_TOKEN_MAX);
		return -1;
	}
	if (t->n >= NA_TOKENS_MAX) {
		snprintf(err, errlen, "token: at most %d tokens", NA_TOKENS_MAX);
		return -1;
	}
	t->t[t->n].role = role;
	t->t[t->n].len = n;
	memset(t->t[t->n].secret, 0, sizeof t->t[t->n].secret);
	memcpy(t->t[t->n].secret, colon + 1, n);
	t->n++;
	return 0;
}

int na_tokens_load_file(na_tokens *t, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "token_file %s: %s", path, strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fileno(f), &st) != 0 || (st.st_mode & 077)) {
		fclose(f);
		snprintf(err, errlen, "token_file %s: must not be accessible by group or others "
				      "(chmod 600)", path);
		return -1;
	}
	char line[NA_TOKEN_MAX + 64];
	int lineno = 0, rc = 0;
	while (rc == 0 && fgets(line, sizeof line, f)) {
		lineno++;
		size_t n = strlen(line);
		if (n && line[n - 1] != '\n' && !feof(f)) {
			snprintf(err, errlen, "token_file %s:%d: line too long", path, lineno);
			rc = -1;
			break;
		}
		while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' '))
			line[--n] = 0;
		if (n == 0 || line[0] == '#')
			continue;
		char e[160];
		if (na_token_add(t, line, e, sizeof e)) {
			snprintf(err, errlen, "token_file %s:%d: %s", path, lineno, e);
			rc = -1;
		}
	}
	fclose(f);
	memset(line, 0, sizeof line);
	return rc;
}

int na_tokens_check(const na_tokens *t, const char *tok, size_t n)
{
	int role = -1;
	/* every token is compared, every byte of it: no early exit */
	for (unsigned i = 0; i < t->n; i++) {
		unsigned char diff = (unsigned char)(t->t[i].len != n);
		for (size_t k = 0; k < NA_TOKEN_MAX; k++) {
			unsigned char a = t->t[i].secret[k];
			unsigned char b = k < n ? (unsigned char)tok[k] : 0;
			diff |= a ^ b;
		}
		int match = diff == 0;
		role = match ? t->t[i].role : role;
	}
	return role;
}

/* ---- per-address failure limit ---------------------------------------- */

static na_guard_slot *slot_for(na_guard *g, const char *peer, bool create)
{
	/* the port is not part of the address */
	char addr[64];
	snprintf(addr, sizeof addr, "%s", peer);
	char *colon = strrchr(addr, ':');
	if (colon && addr[0] != '[')
		*colon = 0;
	else if (addr[0] == '[' && (colon = strstr(addr, "]:")))
		colon[1] = 0;
	uint64_t h = na_siphash(g->key, addr, strlen(addr));
	na_guard_slot *s = &g->slot[h % NA_GUARD_SLOTS];
	if (s->hash != h) {
		if (!create)
			return NULL;
		memset(s, 0, sizeof *s); /* evicts whoever shared the slot */
		s->hash = h;
	}
	return s;
}

bool na_guard_blocked(na_guard *g, const char *peer, uint64_t now_ms)
{
	na_guard_slot *s = slot_for(g, peer, false);
	return s && s->blocked_until > now_ms;
}

void na_guard_fail(na_guard *g, const char *peer, uint64_t now_ms)
{
	na_guard_slot *s = slot_for(g, peer, true);
	if (now_ms - s->window_start > AUTH_WINDOW_MS) {
		s->window_start = now_ms;
		s->fails = 0;
	}
	if (++s->fails >= AUTH_MAX_FAILS) {
		s->blocked_until = now_ms + AUTH_BLOCK_MS;
		log_warn("%s: %u failed authentications; refusing its attempts for %d s", peer,
			 s->fails, AUTH_BLOCK_MS / 1000);
	}
}
