/*
 * query.c - a recursive-descent parser for the query language in query.h.
 * It never allocates per node: the tree lives in a fixed array, bounded by
 * NA_QUERY_MAX_NODES/LEAVES/DEPTH, so any input costs O(length).
 */
#include "query.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct P {
	const char *s;
	size_t n, i;
	na_query *q;
	na_analyzer *a;
	char *err;
	size_t errlen;
	bool failed;
} P;

static int __attribute__((format(printf, 3, 4))) perr(P *p, size_t pos, const char *fmt, ...)
{
	if (p->failed)
		return -1;
	p->failed = true;
	int k = snprintf(p->err, p->errlen, "position %zu: ", pos);
	if (k < 0 || (size_t)k >= p->errlen)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->err + k, p->errlen - (size_t)k, fmt, ap);
	va_end(ap);
	return -1;
}

static bool ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static void skip_ws(P *p)
{
	while (p->i < p->n && ws(p->s[p->i]))
		p->i++;
}

static bool word_end(char c)
{
	return ws(c) || c == '"' || c == '(' || c == ')';
}

static int new_node(P *p, na_qkind k, size_t pos)
{
	if (p->q->n >= NA_QUERY_MAX_NODES)
		return perr(p, pos, "query too complex (at most %d parts)", NA_QUERY_MAX_NODES);
	if (k <= NA_Q_PREFIX && ++p->q->leaves > NA_QUERY_MAX_LEAVES)
		return perr(p, pos, "query too complex (at most %d terms)", NA_QUERY_MAX_LEAVES);
	na_qnode *nd = &p->q->node[p->q->n];
	memset(nd, 0, sizeof *nd);
	nd->kind = k;
	nd->pos = (uint32_t)pos;
	return (int)p->q->n++;
}

static int count_tok(const na_token *t, void *arg)
{
	(void)t;
	(*(unsigned *)arg)++;
	return 0;
}

static const char *const fnames[] = { "text", "title", "author", "tag", "source", "section" };

const char *na_qfield_name(na_qfield f)
{
	return f <= NA_F_SECTION ? fnames[f] : "?";
}

/* Checks that a leaf has something to search for. */
static int check_leaf(P *p, int id)
{
	na_qnode *nd = &p->q->node[id];
	if (nd->field >= NA_F_AUTHOR) {
		char tmp[NA_EXACT_MAX];
		if (na_exact_norm(p->a, nd->text, nd->len, tmp) == 0)
			return perr(p, nd->pos, "%s: needs a value with a visible character",
				    fnames[nd->field]);
		return 0;
	}
	unsigned k = 0;
	if (na_analyze(p->a, nd->text, nd->len, "", 0, 0, count_tok, &k))
		return perr(p, nd->pos, "out of memory");
	if (k == 0)
		return perr(p, nd->pos, "\"%.*s\" has no letters or digits to search for",
			    (int)(nd->len > 40 ? 40 : nd->len), nd->text);
	if (nd->kind == NA_Q_PREFIX && k != 1)
		return perr(p, nd->pos, "a prefix must be a single word, got \"%.*s*\"",
			    (int)(nd->len > 40 ? 40 : nd->len), nd->text);
	return 0;
}

static int parse_or(P *p, unsigned depth);

static int parse_phrase(P *p, na_qfield f, size_t pos)
{
	size_t open = p->i++;
	size_t start = p->i;
	while (p->i < p->n && p->s[p->i] != '"')
		p->i++;
	if (p->i >= p->n)
		return perr(p, open, "unterminated phrase (missing closing \")");
	int id = new_node(p, NA_Q_PHRASE, pos);
	if (id < 0)
		return -1;
	na_qnode *nd = &p->q->node[id];
	nd->field = f;
	nd->text = p->q->buf + start;
	nd->len = (uint32_t)(p->i - start);
	p->i++; /* the closing quote */
	/* exact fields take the quoted value as one value */
	if (f >= NA_F_AUTHOR)
		nd->kind = NA_Q_WORD;
	return check_leaf(p, id) ? -1 : id;
}

static int parse_primary(P *p, unsigned depth)
{
	skip_ws(p);
	size_t pos = p->i;
	if (p->i >= p->n)
		return perr(p, pos, "expected a term, got the end of the query");
	char c = p->s[p->i];
	if (c == '(') {
		if (depth >= NA_QUERY_MAX_DEPTH)
			return perr(p, pos, "parentheses nested too deeply (at most %d)", NA_QUERY_MAX_DEPTH);
		p->i++;
		skip_ws(p);
		if (p->i < p->n && p->s[p->i] == ')')
			return perr(p, pos, "empty parentheses");
		int id = parse_or(p, depth + 1);
		if (id < 0)
			return -1;
		skip_ws(p);
		if (p->i >= p->n || p->s[p->i] != ')')
			return perr(p, pos, "unbalanced \"(\": no matching \")\"");
		p->i++;
		return id;
	}
	if (c == ')')
		return perr(p, pos, "unexpected \")\"");
	if (c == '"')
		return parse_phrase(p, NA_F_TEXT, pos);
	size_t start = p->i;
	while (p->i < p->n && !word_end(p->s[p->i]))
		p->i++;
	const char *w = p->s + start;
	size_t wl = p->i - start;
	na_qfield f = NA_F_TEXT;
	const char *colon = memchr(w, ':', wl);
	if (colon && colon > w) {
		size_t fl = (size_t)(colon - w);
		bool letters = true;
		for (size_t k = 0; k < fl; k++)
			if (!((w[k] >= 'a' && w[k] <= 'z') || (w[k] >= 'A' && w[k] <= 'Z')))
				letters = false;
		if (letters) {
			bool known = false;
			for (int k = NA_F_TITLE; k <= NA_F_SECTION; k++)
				if (strlen(fnames[k]) == fl && memcmp(fnames[k], w, fl) == 0) {
					f = (na_qfield)k;
					known = true;
				}
			if (!known)
				return perr(p, pos, "unknown field \"%.*s\" (fields: title, author, tag, source, section)",
					    (int)(fl > 40 ? 40 : fl), w);
			w = colon + 1;
			wl -= fl + 1;
			start += fl + 1;
			if (wl == 0) {
				if (p->i < p->n && p->s[p->i] == '"')
					return parse_phrase(p, f, pos);
				return perr(p, pos, "%s: needs a value right after the colon", fnames[f]);
			}
		}
	}
	na_qkind k = NA_Q_WORD;
	if (w[wl - 1] == '*') {
		k = NA_Q_PREFIX;
		wl--;
		if (wl == 0)
			return perr(p, pos, "a lone \"*\" is not a prefix");
		if (w[wl - 1] == '*')
			return perr(p, pos, "a prefix ends with a single \"*\"");
	}
	int id = new_node(p, k, pos);
	if (id < 0)
		return -1;
	na_qnode *nd = &p->q->node[id];
	nd->field = f;
	nd->text = p->q->buf + start;
	nd->len = (uint32_t)wl;
	return check_leaf(p, id) ? -1 : id;
}

static bool at_keyword(P *p, const char *kw)
{
	size_t l = strlen(kw);
	return p->i + l <= p->n && memcmp(p->s + p->i, kw, l) == 0 &&
	       (p->i + l == p->n || word_end(p->s[p->i + l]));
}

static int parse_unary(P *p, unsigned depth)
{
	skip_ws(p);
	size_t pos = p->i;
	if (p->i < p->n && p->s[p->i] == '-') {
		if (p->i + 1 >= p->n || ws(p->s[p->i + 1]))
			return perr(p, pos, "\"-\" must be followed by the term to exclude");
		p->i++;
		int kid = parse_primary(p, depth);
		if (kid < 0)
			return -1;
		if (p->q->node[kid].kind == NA_Q_NOT)
			return perr(p, pos, "double negation");
		int id = new_node(p, NA_Q_NOT, pos);
		if (id < 0)
			return -1;
		p->q->node[id].kid[0] = (uint16_t)kid;
		p->q->node[id].nkids = 1;
		return id;
	}
	return parse_primary(p, depth);
}

static int parse_and(P *p, unsigned depth)
{
	skip_ws(p);
	size_t pos = p->i;
	uint16_t kids[NA_QUERY_MAX_LEAVES];
	unsigned n = 0, positive = 0;
	for (;;) {
		skip_ws(p);
		if (p->i >= p->n || p->s[p->i] == ')' || at_keyword(p, "OR"))
			break;
		if (at_keyword(p, "AND")) {
			if (n == 0)
				return perr(p, p->i, "AND needs a term before it");
			size_t at = p->i;
			p->i += 3;
			skip_ws(p);
			if (p->i >= p->n || p->s[p->i] == ')' || at_keyword(p, "OR") || at_keyword(p, "AND"))
				return perr(p, at, "AND needs a term after it");
			continue;
		}
		int id = parse_unary(p, depth);
		if (id < 0)
			return -1;
		if (n >= NA_QUERY_MAX_LEAVES)
			return perr(p, pos, "too many terms in one group (at most %d)", NA_QUERY_MAX_LEAVES);
		kids[n++] = (uint16_t)id;
		if (p->q->node[id].kind != NA_Q_NOT)
			positive++;
	}
	if (n == 0)
		return perr(p, pos, p->i >= p->n ? "expected a term, got the end of the query"
						 : "expected a term");
	if (positive == 0)
		return perr(p, pos, "a group of terms needs at least one that is not negated");
	if (n == 1)
		return kids[0];
	int id = new_node(p, NA_Q_AND, pos);
	if (id < 0)
		return -1;
	memcpy(p->q->node[id].kid, kids, n * sizeof kids[0]);
	p->q->node[id].nkids = (uint16_t)n;
	return id;
}

static int parse_or(P *p, unsigned depth)
{
	skip_ws(p);
	size_t pos = p->i;
	uint16_t kids[NA_QUERY_MAX_LEAVES];
	unsigned n = 0;
	for (;;) {
		skip_ws(p);
		if (at_keyword(p, "OR"))
			return perr(p, p->i, "OR needs a term before it");
		int id = parse_and(p, depth);
		if (id < 0)
			return -1;
		if (n >= NA_QUERY_MAX_LEAVES)
			return perr(p, pos, "too many alternatives (at most %d)", NA_QUERY_MAX_LEAVES);
		kids[n++] = (uint16_t)id;
		skip_ws(p);
		if (!at_keyword(p, "OR"))
			break;
		size_t at = p->i;
		p->i += 2;
		skip_ws(p);
		if (p->i >= p->n || p->s[p->i] == ')')
			return perr(p, at, "OR needs a term after it");
	}
	if (n == 1)
		return kids[0];
	int id = new_node(p, NA_Q_OR, pos);
	if (id < 0)
		return -1;
	memcpy(p->q->node[id].kid, kids, n * sizeof kids[0]);
	p->q->node[id].nkids = (uint16_t)n;
	return id;
}

int na_query_parse(const char *s, size_t n, na_analyzer *a, na_query *q, char *err, size_t errlen)
{
	memset(q, 0, sizeof *q);
	if (errlen)
		err[0] = 0;
	P p = { .s = s, .n = n, .q = q, .a = a, .err = err, .errlen = errlen };
	if (n > NA_QUERY_MAX_BYTES) {
		perr(&p, NA_QUERY_MAX_BYTES, "query longer than %d bytes", NA_QUERY_MAX_BYTES);
		return -1;
	}
	if (memchr(s, 0, n)) {
		perr(&p, (size_t)((const char *)memchr(s, 0, n) - s), "NUL byte in the query");
		return -1;
	}
	q->buf = malloc(n ? n : 1);
	if (!q->buf) {
		perr(&p, 0, "out of memory");
		return -1;
	}
	if (n)
		memcpy(q->buf, s, n);
	/* parse the copy: leaves point into it */
	p.s = q->buf;
	skip_ws(&p);
	if (p.i >= n) {
		perr(&p, 0, "empty query");
		na_query_free(q);
		return -1;
	}
	int root = parse_or(&p, 0);
	if (root >= 0) {
		skip_ws(&p);
		if (p.i < n)
			root = perr(&p, p.i, p.s[p.i] == ')' ? "unbalanced \")\"" : "unexpected input");
	}
	if (root < 0) {
		na_query_free(q);
		return -1;
	}
	q->root = (uint32_t)root;
	return 0;
}

void na_query_free(na_query *q)
{
	free(q->buf);
	q->buf = NULL;
}
