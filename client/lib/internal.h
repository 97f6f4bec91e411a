/*
 * internal.h - what the parts of libnewsarch share and users do not see.
 */
#ifndef NA_CLIENT_INTERNAL_H
#define NA_CLIENT_INTERNAL_H

#include "newsarch.h"
#include "mp.h"
#include "rpc.h"

#include <msgpack.h>

#define NA_HIDDEN __attribute__((visibility("hidden")))

/* server error code (na_code) -> NA_E*; unknown codes -> NA_EINTERNAL */
static inline int na__code_to_err(int code)
{
	if (code <= NA_CODE_OK || code >= NA_CODE__COUNT)
		return NA_EINTERNAL;
	return -100 - code;
}

/* ---- articles ------------------------------------------------------ */

enum na__known {
	NA_K_GUID, NA_K_TITLE, NA_K_BODY, NA_K_SUMMARY, NA_K_URL, NA_K_SOURCE,
	NA_K_SECTION, NA_K_LANGUAGE, NA_K_PUBLISHED, NA_K_UPDATED, NA_K_AUTHORS,
	NA_K_TAGS, NA_K__COUNT
};

typedef struct na__fref {
	const char *name;
	uint32_t name_len;
	const uint8_t *val;
	size_t val_len;
} na__fref;

struct na_article {
	uint8_t *owned;          /* buffer owned by the article, or NULL */
	const uint8_t *buf;
	size_t len;
	na__fref *fields;
	size_t nfields, fcap;
	int32_t known[NA_K__COUNT]; /* index into fields, -1 when absent */
	uint32_t nauthors, ntags;
};

/* Indexes buf[0..len), which must hold exactly one map (already framed:
 * the caller checked depth). The article borrows buf. Keeps a->fields'
 * capacity for reuse. Returns 0, NA_EINVAL (invalid article, or more than
 * NA_MAX_ARTICLE_FIELDS fields), NA_ENOMEM. */
NA_HIDDEN int na__article_index(na_article *a, const uint8_t *buf, size_t len);
/* Makes a new article owning buf (malloc'd; taken on success and failure). */
NA_HIDDEN int na__article_adopt(uint8_t *buf, size_t len, na_article **out);
/* Frees what an embedded (not malloc'd) article holds. */
NA_HIDDEN void na__article_clear(na_article *a);
/* Looks up a field name among the known ones; -1 if none. */
NA_HIDDEN int na__known_lookup(const char *name, size_t n);

/* ---- request encoding (params arrays) ---------------------------- */

NA_HIDDEN int na__enc_put(msgpack_sbuffer *sb, const na_article *a);
NA_HIDDEN int na__enc_put_batch(msgpack_sbuffer *sb, const na_article *const *as, size_t n);
NA_HIDDEN int na__enc_guid(msgpack_sbuffer *sb, const char *guid, size_t n,
			   const char *const *fields, size_t nfields);
NA_HIDDEN int na__enc_count(msgpack_sbuffer *sb, const na_time *from, const na_time *to);
/* fields_mp: pre-encoded array of names (or NULL) */
NA_HIDDEN int na__enc_range(msgpack_sbuffer *sb, const na_range_opts *o,
			    const uint8_t *fields_mp, size_t fields_len, const na_cursor *after);
NA_HIDDEN int na__enc_names(msgpack_sbuffer *sb, const char *const *names, size_t n);

/* ---- reply decoding ------------------------------------------------ */

/* Each returns 0 or NA_EPROTO / NA_ENOMEM; msg gets a description. */
NA_HIDDEN int na__dec_put(const uint8_t *res, size_t len, na_put_result *out);
/* Batch: out[0..n) filled; error messages are copied, NUL-terminated, into
 * one new block *arena (caller frees it; NULL when no item failed). */
NA_HIDDEN int na__dec_batch(const uint8_t *res, size_t len, size_t n, na_put_result *out,
			    char **arena);
NA_HIDDEN int na__dec_delete(const uint8_t *res, size_t len, int *deleted, uint64_t *seq);
NA_HIDDEN int na__dec_count(const uint8_t *res, size_t len, uint64_t *out);
NA_HIDDEN int na__dec_pong(const uint8_t *res, size_t len);
NA_HIDDEN int na__dec_stats(const uint8_t *res, size_t len, na_server_stats **out);
/* Range page: *arts, *nart point at the articles array's first element and
 * its count (at most NA_RANGE_LIMIT_MAX, else NA_EPROTO); *next gets the
 * cursor (len 0 for nil). */
NA_HIDDEN int na__dec_page(const uint8_t *res, size_t len, const uint8_t **arts,
			   size_t *arts_len, uint32_t *nart, na_cursor *next);
/* Reads the next article of a page into a (borrowing). */
NA_HIDDEN int na__page_article(na_mp *r, na_article *a);

/* ---- address parsing ------------------------------------------------ */

typedef struct na__addr {
	int is_unix;
	int tls;               /* "tls://" prefix */
	char host[256];
	char port[16];
	char path[108];
} na__addr;

/* Parses the address forms of na_client_connect ("tls://" sets out->tls). */
NA_HIDDEN int na__addr_parse(const char *addr, na__addr *out, char *err, size_t errlen);

#endif
