/*
 * article.c - the article schema. An article is a msgpack map with string
 * keys; guid, published and title are required, a few known fields have
 * checked types, and anything else is kept as given. The server never
 * re-encodes an article: it stores and returns the client's bytes.
 */
#include "article.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc.h"

static const char *type_name(na_mp_type t)
{
	static const char *const n[] = { "nil", "bool", "uint", "int", "float", "str",
					 "bin", "array", "map", "ext", "invalid" };
	return n[t];
}

enum kind { K_OTHER, K_STR, K_TS, K_STRS, K_GUID, K_PUBLISHED };

static const struct { const char *name; enum kind kind; } known[] = {
	{ "guid", K_GUID }, { "published", K_PUBLISHED }, { "title", K_STR },
	{ "body", K_STR }, { "summary", K_STR }, { "url", K_STR },
	{ "source", K_STR }, { "section", K_STR }, { "language", K_STR },
	{ "authors", K_STRS }, { "tags", K_STRS }, { "updated", K_TS },
};

static int cmp_key(const void *a, const void *b)
{
	const struct { const char *s; uint32_t n; } *x = a, *y = b;
	if (x->n != y->n)
		return x->n < y->n ? -1 : 1;
	return memcmp(x->s, y->s, x->n);
}

#define FAIL(...) do { snprintf(err, errlen, __VA_ARGS__); return -1; } while (0)

static int check_ts(na_mp *r, na_ts *ts, const char *where, const char *field, char *err,
		    size_t errlen)
{
	na_mp_type t = na_mp_peek(r);
	if (t != NA_MP_EXT)
		FAIL("%s.%s: expected a timestamp (ext -1), got %s", where, field, type_name(t));
	int rc = na_mp_ts(r, ts);
	if (rc == NA_MP_ERANGE)
		FAIL("%s.%s: timestamp nanoseconds out of range", where, field);
	if (rc)
		FAIL("%s.%s: expected a timestamp (ext -1) of 4, 8 or 12 bytes", where, field);
	if (ts->sec < NA_TS_MIN_SEC || ts->sec > NA_TS_MAX_SEC)
		FAIL("%s.%s: timestamp %lld s is outside years 1..9999", where, field,
		     (long long)ts->sec);
	return 0;
}

int na_article_check(na_mp *r, na_article_info *info, const char *where, char *err,
		     size_t errlen)
{
	const uint8_t *start = r->p;
	na_mp_type t = na_mp_peek(r);
	uint32_t n;
	if (t != NA_MP_MAP || na_mp_map(r, &n))
		FAIL("%s: an article must be a map, got %s", where, type_name(t));
	/* every key and value needs a byte: a count beyond that is a lie */
	if ((uint64_t)n * 2 > na_mp_left(r))
		FAIL("%s: map announces %u fields but the message is shorter", where, n);
	if (n > NA_MAX_ARTICLE_FIELDS)
		FAIL("%s: %u fields; an article has at most %d", where, n, NA_MAX_ARTICLE_FIELDS);
	bool have_guid = false, have_pub = false, have_title = false;
	struct key { const char *s; uint32_t n; } small[32], *keys = small;
	if (n > 32) {
		keys = malloc(sizeof *keys * n);
		if (!keys)
			FAIL("%s: out of memory", where);
	}
	int rc = -1;
	for (uint32_t i = 0; i < n; i++) {
		const char *k;
		uint32_t kn;
		t = na_mp_peek(r);
		if (t != NA_MP_STR || na_mp_str(r, &k, &kn)) {
			snprintf(err, errlen, "%s: field %u has a %s key; keys must be strings",
				 where, i, type_name(t));
			goto out;
		}
		keys[i].s = k;
		keys[i].n = kn;
		enum kind kind = K_OTHER;
		const char *name = NULL;
		for (size_t j = 0; j < sizeof known / sizeof known[0]; j++)
			if (na_mp_streq(k, kn, known[j].name)) {
				kind = known[j].kind;
				name = known[j].name;
				break;
			}
		t = na_mp_peek(r);
		na_ts ts;
		switch (kind) {
		case K_GUID:
			if (t != NA_MP_STR || na_mp_str(r, &info->guid, &info->guid_len)) {
				snprintf(err, errlen, "%s.guid: expected a string, got %s", where,
					 type_name(t));
				goto out;
			}
			if (info->guid_len == 0 || info->guid_len > NA_MAX_GUID_BYTES) {
				snprintf(err, errlen, "%s.guid: must be 1 to %d bytes, got %u", where,
					 NA_MAX_GUID_BYTES, info->guid_len);
				goto out;
			}
			have_guid = true;
			break;
		case K_PUBLISHED:
			if (check_ts(r, &info->published, where, "published", err, errlen))
				goto out;
			have_pub = true;
			break;
		case K_TS:
			if (check_ts(r, &ts, where, name, err, errlen))
				goto out;
			break;
		case K_STR: {
			const char *s;
			uint32_t sn;
			if (t != NA_MP_STR || na_mp_str(r, &s, &sn)) {
				snprintf(err, errlen, "%s.%s: expected a string, got %s", where, name,
					 type_name(t));
				goto out;
			}
			if (kind == K_STR && strcmp(name, "title") == 0)
				have_title = true;
			break;
		}
		case K_STRS: {
			uint32_t an;
			if (t != NA_MP_ARRAY || na_mp_array(r, &an)) {
				snprintf(err, errlen, "%s.%s: expected an array of strings, got %s",
					 where, name, type_name(t));
				goto out;
			}
			for (uint32_t j = 0; j < an; j++) {
				const char *s;
				uint32_t sn;
				t = na_mp_peek(r);
				if (t != NA_MP_STR || na_mp_str(r, &s, &sn)) {
					snprintf(err, errlen, "%s.%s[%u]: expected a string, got %s",
						 where, name, j, type_name(t));
					goto out;
				}
			}
			break;
		}
		case K_OTHER:
			if (na_mp_skip(r)) {
				snprintf(err, errlen, "%s: field \"%.*s\" is truncated", where,
					 (int)(kn > 64 ? 64 : kn), k);
				goto out;
			}
			break;
		}
	}
	if (!have_guid) { snprintf(err, errlen, "%s.guid: missing (required)", where); goto out; }
	if (!have_pub) { snprintf(err, errlen, "%s.published: missing (required)", where); goto out; }
	if (!have_title) { snprintf(err, errlen, "%s.title: missing (required)", where); goto out; }
	if (n > 1) {
		qsort(keys, n, sizeof *keys, cmp_key);
		for (uint32_t i = 1; i < n; i++)
			if (cmp_key(&keys[i - 1], &keys[i]) == 0) {
				snprintf(err, errlen, "%s: field \"%.*s\" appears twice", where,
					 (int)(keys[i].n > 64 ? 64 : keys[i].n), keys[i].s);
				goto out;
			}
	}
	info->raw = start;
	info->raw_len = (size_t)(r->p - start);
	rc = 0;
out:
	if (keys != small)
		free(keys);
	return rc;
}

int na_article_guid(const uint8_t *raw, size_t len, const char **guid, uint32_t *gn)
{
	na_mp r;
	uint32_t n;
	na_mp_init(&r, raw, len);
	if (na_mp_map(&r, &n))
		return -1;
	for (uint32_t i = 0; i < n; i++) {
		const char *k;
		uint32_t kn;
		if (na_mp_str(&r, &k, &kn))
			return -1;
		if (na_mp_streq(k, kn, "guid"))
			return na_mp_str(&r, guid, gn) ? -1 : 0;
		if (na_mp_skip(&r))
			return -1;
	}
	return -1;
}

int na_article_project(msgpack_packer *pk, const uint8_t *raw, size_t len, const na_fields *f)
{
	na_mp r;
	uint32_t n, keep = 0;
	na_mp_init(&r, raw, len);
	if (na_mp_map(&r, &n))
		return -1;
	const uint8_t *body = r.p;
	/* first pass counts the kept fields, second pass copies them */
	for (int pass = 0; pass < 2; pass++) {
		r.p = body;
		if (pass == 1 && msgpack_pack_map(pk, keep))
			return -1;
		for (uint32_t i = 0; i < n; i++) {
			const uint8_t *kp = r.p;
			const char *k;
			uint32_t kn;
			if (na_mp_str(&r, &k, &kn) || na_mp_skip(&r))
				return -1;
			bool want = false;
			for (uint32_t j = 0; j < f->n && !want; j++)
				want = f->name[j].n == kn && memcmp(f->name[j].s, k, kn) == 0;
			if (!want)
				continue;
			if (pass == 0)
				keep++;
			else if (na_mp_pack_raw(pk, kp, (size_t)(r.p - kp)))
				return -1;
		}
	}
	return 0;
}
