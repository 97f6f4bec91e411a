/*
 * search.h - running a query against the full-text index (index.h) and
 * checking a query against one article (for phrases, and as the reference
 * the tests compare with).
 */
#ifndef NA_SEARCH_H
#define NA_SEARCH_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "analyze.h"
#include "article.h"
#include "query.h"
#include "store.h"

#define NA_SEARCH_LIMIT_DEFAULT 20
#define NA_SEARCH_LIMIT_MAX 1000
#define NA_SEARCH_CURSOR_MAX 24      /* relevance: score(8) + key(16) */
#define NA_SEARCH_MAX_EXPANSIONS 1024 /* terms one prefix may match (per language) */
/* Index terms one query may look up in all: each word once per language in
 * the index, each prefix once per term it matches (BAD_REQUEST beyond). */
#define NA_SEARCH_MAX_TERMS 4096
#define NA_SEARCH_MAX_CANDIDATES (1u << 20) /* relevance: scored hits kept at once */

typedef enum na_order { NA_ORDER_NEWEST, NA_ORDER_OLDEST, NA_ORDER_RELEVANCE } na_order;

typedef struct na_search_q {
	const char *q;          /* the query text (not NUL-terminated) */
	size_t qlen;
	bool has_from, has_to;
	int64_t from, to;       /* microseconds: from <= published < to */
	uint32_t limit;
	na_order order;
	bool has_after;
	uint8_t after[NA_SEARCH_CURSOR_MAX];
	size_t after_len;
	na_fields fields;       /* projection of the returned articles */
	bool project;
	uint64_t min_seq;       /* 0, or: answer only from an index that covers it */
	/* relevance: scored hits kept at once; 0 is NA_SEARCH_MAX_CANDIDATES
	 * (the daemon never sets it: tests make it small) */
	uint32_t max_candidates;
} na_search_q;

/*
 * Runs a search and packs {"articles": [...], "total": n, "next": cursor or
 * nil} with pk. Returns 0; -EINVAL with a message in err for a bad query or
 * cursor (a BAD_REQUEST); -ETIMEDOUT with a message in err when q->min_seq
 * is set and the index, as the search's own read transaction sees it, does
 * not cover it (a rebuild began after the request was found covered: the
 * min_seq wait cannot be met, a TIMEOUT); -EIO for an unreadable article or
 * index; or an LMDB error. a is the calling thread's analyzer.
 */
int na_search_run(na_store *s, na_analyzer *a, const na_search_q *q, msgpack_packer *pk,
		  char *err, size_t errlen);

/*
 * Whether the article (msgpack map) matches the parsed query, deciding
 * exactly as the index would: words stemmed in the article's language,
 * phrases as consecutive words within one field, exact-match fields
 * compared after normalisation. 1 match, 0 no match, negative on error.
 */
int na_search_match(na_analyzer *a, const na_query *q, const uint8_t *raw, size_t len);

#endif
