/*
 * fuzz_query.c - libFuzzer target: the search query parser (daemon/query.c),
 * the text analyser (daemon/analyze.c) and article matching
 * (na_search_match in daemon/search.c).
 *
 * The input is a query. Invariants: a refused query has a message that
 * starts "position N: " with N within the input; an accepted one is a tree
 * whose nodes are in range, whose leaves point into the parser's copy of
 * the query with non-empty text, whose AND groups have a non-negated
 * child, and whose NOT nodes sit only under AND; matching it against a
 * fixed article gives 0 or 1. The input analysed as text (as English, and
 * with no language) gives words of 1..NA_TERM_MAX bytes, at increasing
 * positions, with offsets inside the input.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyze.h"
#include "query.h"
#include "search.h"

#define CHECK(x) do { if (!(x)) { fprintf(stderr, "check failed: %s (line %d)\n", #x, __LINE__); abort(); } } while (0)

static const uint8_t article[] = {
	0x85, 0xa4, 'g', 'u', 'i', 'd', 0xa1, 'g',
	0xa5, 't', 'i', 't', 'l', 'e', 0xab, 'C', 'o', 'c', 'o', 'a', ' ', 'p', 'r', 'i', 'c', 'e',
	0xa4, 'b', 'o', 'd', 'y', 0xae, 'b', 'a', 'n', 'k', 's', ' ', 'r', 'a', 'i', 's', 'e', 'd', ' ', 'a',
	0xa7, 'a', 'u', 't', 'h', 'o', 'r', 's', 0x91, 0xa3, 'J', 'o', 'e',
	0xa8, 'l', 'a', 'n', 'g', 'u', 'a', 'g', 'e', 0xa2, 'e', 'n',
};

typedef struct tstate {
	size_t len;
	uint32_t last;
	int any;
} tstate;

static int on_tok(const na_token *t, void *arg)
{
	tstate *s = arg;
	CHECK(t->len >= 1 && t->len <= NA_TERM_MAX);
	CHECK(t->start < t->end && t->end <= s->len);
	CHECK(!s->any || t->pos > s->last);
	s->last = t->pos;
	s->any = 1;
	return 0;
}

static void check_tree(const na_query *q, uint32_t id, int parent_and, unsigned depth)
{
	CHECK(id < q->n && q->n <= NA_QUERY_MAX_NODES);
	CHECK(depth <= 2 * NA_QUERY_MAX_DEPTH + 4);
	const na_qnode *n = &q->node[id];
	switch (n->kind) {
	case NA_Q_WORD: case NA_Q_PHRASE: case NA_Q_PREFIX:
		CHECK(n->len > 0 && n->text >= q->buf);
		CHECK(n->field <= NA_F_SECTION);
		return;
	case NA_Q_NOT:
		CHECK(parent_and && n->nkids == 1);
		check_tree(q, n->kid[0], 0, depth + 1);
		return;
	case NA_Q_AND: {
		CHECK(n->nkids >= 2);
		int pos = 0;
		for (uint16_t i = 0; i < n->nkids; i++) {
			pos += q->node[n->kid[i]].kind != NA_Q_NOT;
			check_tree(q, n->kid[i], 1, depth + 1);
		}
		CHECK(pos > 0);
		return;
	}
	case NA_Q_OR:
		CHECK(n->nkids >= 2);
		for (uint16_t i = 0; i < n->nkids; i++)
			check_tree(q, n->kid[i], 0, depth + 1);
		return;
	}
	CHECK(0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static na_analyzer *a;
	if (!a && na_analyzer_new(&a))
		abort();
	na_query q;
	char err[256];
	if (na_query_parse((const char *)data, size, a, &q, err, sizeof err)) {
		unsigned long pos;
		CHECK(sscanf(err, "position %lu: ", &pos) == 1);
		CHECK(pos <= size);
	} else {
		CHECK(q.n > 0);
		check_tree(&q, q.root, 0, 0);
		int m = na_search_match(a, &q, article, sizeof article);
		CHECK(m == 0 || m == 1);
		na_query_free(&q);
	}
	tstate s = { .len = size };
	CHECK(na_analyze(a, (const char *)data, size, "en", 1, 0, on_tok, &s) == 0);
	s = (tstate){ .len = size };
	CHECK(na_analyze(a, (const char *)data, size, "", 0, 0, on_tok, &s) == 0);
	char out[NA_EXACT_MAX];
	CHECK(na_exact_norm(a, (const char *)data, size, out) <= NA_EXACT_MAX);
	return 0;
}
