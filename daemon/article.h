/*
 * article.h - what an article is: checking one, finding its fields, and
 * projecting it onto a list of field names.
 */
#ifndef NA_ARTICLE_H
#define NA_ARTICLE_H

#include <stddef.h>
#include <stdint.h>

#include "mp.h"

/* What the server needs to know about a valid article. Pointers point into
 * the article's bytes and live as long as those bytes. */
typedef struct na_article_info {
	const uint8_t *raw;     /* the whole encoded map */
	size_t raw_len;
	const char *guid;
	uint32_t guid_len;
	na_ts published;
} na_article_info;

/*
 * Checks the article map at r (which it consumes) against the schema in
 * PROTOCOL.md: required guid/published/title, typed known fields, string
 * keys, no key twice, times within years 1..9999.
 * Returns 0 and fills *info, or -1 with a message naming the field in
 * err (at most errlen bytes, NUL-terminated); `where` prefixes the message
 * (e.g. "params[0]").
 */
int na_article_check(na_mp *r, na_article_info *info, const char *where, char *err,
		     size_t errlen);

/* Finds the guid of an already valid article. 0 or -1. */
int na_article_guid(const uint8_t *raw, size_t len, const char **guid, uint32_t *n);

/* A list of field names to keep (pointers into a request). */
typedef struct na_fields {
	uint32_t n;
	struct { const char *s; uint32_t n; } name[64];
} na_fields;

/* Packs the article map keeping only the fields named in f, in stored order.
 * Returns 0 or -1 if raw is not a map. */
int na_article_project(msgpack_packer *pk, const uint8_t *raw, size_t len, const na_fields *f);

#endif
