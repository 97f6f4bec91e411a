/*
 * search.c - query execution over the full-text index (design in index.c).
 *
 * A query runs in one read transaction. Each query word becomes, per
 * language present in the index, the term keys of its analysed form (one
 * for a plain word; several, ANDed, for a word the analyser splits, such
 * as "e-mail", and for phrases); a prefix becomes every term under it (at
 * most NA_SEARCH_MAX_EXPANSIONS per language). Every term is looked up in
 * every range visited, so a query takes at most NA_SEARCH_MAX_TERMS in all
 * (a BAD_REQUEST beyond, as a search engine's too-many-clauses). A search
 * waiting for min_seq checks in its own index snapshot that the index still
 * covers it: a rebuild may have begun since the request was accepted. The
 * tree is then evaluated one docid
 * range (1024 docids, an ixrange entry) at a time: postings of that range
 * only, as sorted docid lists, intersected (AND), merged (OR) and
 * subtracted (NOT). The ranges are visited in the order of the requested
 * sort (highest key first for newest), skipping those outside the time
 * window, and the walk stops as soon as no unvisited range can hold a
 * better article than the page already has. Relevance visits every range
 * in the window and ranks by BM25 (k1 = 1.2, b = 0.75).
 *
 * The index answers exactly for words, prefixes and exact-field values; it
 * gives a superset for phrases (and words that analyse into several terms),
 * so when the tree holds one, every candidate is checked against the
 * article text with na_search_match before it counts. Every returned
 * article is read by its key: a version deleted or replaced since it was
 * indexed is not there and is skipped, so no stale hit is returned. Where
 * "total" is exact (every range visited, no phrase), every version it
 * counts is looked up the same way: relevance, which visits them all,
 * checks each candidate as it comes; newest/oldest, which usually stop
 * after a range or two, check the ones the page did not need only once the
 * walk turns out to have visited everything. Relevance holds a bounded set
 * of candidates; it is cut only below limit + 1 checked ones (keep_best),
 * never by score alone.
 */
#include "search.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index.h"
#include "rpc.h"

#define SB (1u << NA_IX_RANGE_SHIFT)
#define BM25_K1 1.2
#define BM25_B 0.75

/* ======================================================================
 * Matching one article (the reference semantics)
 * ====================================================================== */

typedef struct atok {
	uint32_t off, pos;
	uint16_t len;
	uint8_t field; /* 0 title, 1 summary, 2 body */
} atok;

typedef struct toks {
	char *arena;
	size_t alen, acap;
	atok *t;
	size_t n, cap;
	uint8_t field;
} toks;

static int toks_add(const na_token *t, void *arg)
{
	toks *k = arg;
	if (k->alen + t->len > k->acap) {
		size_t nc = k->acap ? k->acap * 2 : 4096;
		while (nc < k->alen + t->len)
			nc *= 2;
		char *na = realloc(k->arena, nc);
		if (!na)
			return -ENOMEM;
		k->arena = na;
		k->acap = nc;
	}
	if (k->n == k->cap) {
		size_t nc = k->cap ? k->cap * 2 : 256;
		atok *nt = realloc(k->t, nc * sizeof *nt);
		if (!nt)
			return -ENOMEM;
		k->t = nt;
		k->cap = nc;
	}
	memcpy(k->arena + k->alen, t->term, t->len);
	k->t[k->n++] = (atok){ (uint32_t)k->alen, t->pos, (uint16_t)t->len, k->field };
	k->alen += t->len;
	return 0;
}

static void toks_free(toks *k)
{
	free(k->arena);
	free(k->t);
}

typedef struct mctx {
	na_analyzer *a;
	const na_query *q;
	const na_ixdoc *d;
	toks doc;   /* the article's words, stemmed in its language */
	toks qt;    /* scratch: a leaf's words */
} mctx;

static bool tok_eq(const toks *A, const atok *x, const toks *B, const atok *y)
{
	return x->len == y->len && memcmp(A->arena + x->off, B->arena + y->off, x->len) == 0;
}

/* The words of the leaf text in qt (stemmed as lang, or not). */
static int leaf_words(mctx *m, const na_qnode *nd, const char *lang, int stem)
{
	m->qt.n = m->qt.alen = 0;
	m->qt.field = 0;
	return na_analyze(m->a, nd->text, nd->len, lang, stem, 0, toks_add, &m->qt);
}

static bool field_ok(const na_qnode *nd, uint8_t f)
{
	return nd->field == NA_F_TEXT || f == 0;
}

static int match_seq(mctx *m, const na_qnode *nd)
{
	int rc = leaf_words(m, nd, m->d->lang, 1);
	if (rc)
		return rc;
	if (m->qt.n == 0)
		return 0;
	/* A word the analysis drops (longer than NA_TERM_MAX) still takes a
	 * position, in the query as in the article: the query's words must
	 * lie as far apart in the article as in the query, which is not
	 * always next to each other. */
	for (size_t i = 0; i < m->doc.n; i++) {
		const atok *t = &m->doc.t[i];
		if (!field_ok(nd, t->field) || !tok_eq(&m->doc, t, &m->qt, &m->qt.t[0]))
			continue;
		size_t j = 1, k = i + 1;
		for (; j < m->qt.n; j++) {
			uint64_t want = (uint64_t)t->pos + (m->qt.t[j].pos - m->qt.t[0].pos);
			/* positions ascend within a field */
			while (k < m->doc.n && m->doc.t[k].field == t->field && m->doc.t[k].pos < want)
				k++;
			if (k >= m->doc.n)
				break;
			const atok *u = &m->doc.t[k];
			if (u->field != t->field || u->pos != want || !tok_eq(&m->doc, u, &m->qt, &m->qt.t[j]))
				break;
		}
		if (j == m->qt.n)
			return 1;
	}
	return 0;
}

static int match_prefix(mctx *m, const na_qnode *nd)
{
	int rc = leaf_words(m, nd, "", 0);
	if (rc)
		return rc;
	if (m->qt.n != 1)
		return 0;
	const atok *p = &m->qt.t[0];
	for (size_t i = 0; i < m->doc.n; i++) {
		const atok *t = &m->doc.t[i];
		if (field_ok(nd, t->field) && t->len >= p->len &&
		    memcmp(m->doc.arena + t->off, m->qt.arena + p->off, p->len) == 0)
			return 1;
	}
	return 0;
}

static int match_exact(mctx *m, const na_qnode *nd)
{
	char want[NA_EXACT_MAX], have[NA_EXACT_MAX];
	size_t wn = na_exact_norm(m->a, nd->text, nd->len, want);
	if (!wn)
		return 0;
	const na_ixstr *vals;
	uint32_t n;
	switch (nd->field) {
	case NA_F_AUTHOR: vals = m->d->authors; n = m->d->nauthors; break;
	case NA_F_TAG: vals = m->d->tags; n = m->d->ntags; break;
	case NA_F_SOURCE: vals = &m->d->source; n = m->d->source.s ? 1 : 0; break;
	default: vals = &m->d->section; n = m->d->section.s ? 1 : 0; break;
	}
	for (uint32_t i = 0; i < n; i++) {
		size_t hn = na_exact_norm(m->a, vals[i].s, vals[i].n, have);
		if (!hn)
			continue;
		if (nd->kind == NA_Q_PREFIX ? hn >= wn && memcmp(have, want, wn) == 0
					    : hn == wn && memcmp(have, want, wn) == 0)
			return 1;
	}
	return 0;
}

static int match_node(mctx *m, uint32_t id)
{
	const na_qnode *nd = &m->q->node[id];
	int rc;
	switch (nd->kind) {
	case NA_Q_AND:
		for (uint16_t i = 0; i < nd->nkids; i++)
			if ((rc = match_node(m, nd->kid[i])) <= 0)
				return rc;
		return 1;
	case NA_Q_OR:
		for (uint16_t i = 0; i < nd->nkids; i++)
			if ((rc = match_node(m, nd->kid[i])) != 0)
				return rc;
		return 0;
	case NA_Q_NOT:
		rc = match_node(m, nd->kid[0]);
		return rc < 0 ? rc : !rc;
	default:
		break;
	}
	if (nd->field >= NA_F_AUTHOR)
		return match_exact(m, nd);
	if (nd->kind == NA_Q_PREFIX)
		return match_prefix(m, nd);
	return match_seq(m, nd);
}

int na_search_match(na_analyzer *a, const na_query *q, const uint8_t *raw, size_t len)
{
	na_ixdoc d;
	if (na_ixdoc_parse(raw, len, &d))
		return -EINVAL;
	mctx m = { .a = a, .q = q, .d = &d };
	const na_ixstr *f[] = { &d.title, &d.summary, &d.body };
	int rc = 0;
	for (uint8_t i = 0; i < 3 && rc == 0; i++) {
		if (!f[i]->s)
			continue;
		m.doc.field = i;
		rc = na_analyze(a, f[i]->s, f[i]->n, d.lang, 1, 0, toks_add, &m.doc);
	}
	if (rc == 0)
		rc = match_node(&m, q->root);
	toks_free(&m.doc);
	toks_free(&m.qt);
	return rc;
}

/* ======================================================================
 * Running a query on the index
 * ====================================================================== */

typedef struct term {
	uint8_t key[NA_IX_TERMKEY_MAX];
	uint16_t len;
	double idf;
	/* the last chunk decoded */
	bool cached;
	uint32_t cbase, cn;
	uint32_t *cd;
	uint16_t *ctf;
} term;

typedef struct group {
	uint32_t first, n; /* terms, ANDed */
} group;

typedef struct plist {
	uint32_t *d;
	double *sc;
	size_t n, cap;
} plist;

typedef struct cand {
	na_key key;
	double score;
	uint32_t doc;
	bool ok;      /* checked: the version exists (and matches the text) */
} cand;

typedef struct sbrange {
	uint32_t sb;
	na_key lo, hi;
} sbrange;

typedef struct ctx {
	na_store *s;
	MDB_txn *txn;       /* the archive: articles */
	MDB_txn *itxn;      /* the index environment: everything else */
	MDB_cursor *cur;    /* ixpost: the segment being filled */
	MDB_cursor *scur;   /* ixsealed: the sealed segments */
	MDB_cursor *bcur;   /* ixbig: the merged segments */
	uint32_t sealed;    /* sealed segments, merged ones included */
	uint32_t merged;    /* merged segments (NA_IX_MERGE_SHIFT sealed each) */
	unsigned segshift;  /* log2 of the docids per segment */
	na_analyzer *a;
	const na_query *q;
	const na_search_q *sq;
	/* every version the index holds still exists in the archive snapshot:
	 * the index covers it exactly and has seen no delete or replacement,
	 * so counting a hit needs no lookup */
	bool all_live;
	char *err;
	size_t errlen;
	term *terms;
	size_t nterms, cterms;
	group *groups;
	size_t ngroups, cgroups;
	struct {
		uint32_t g0, ng;
		bool exact;
	} leaf[NA_QUERY_MAX_NODES];
	plist res[NA_QUERY_MAX_NODES];
	plist tmp, tmp2;
	char langs[128];
	size_t nlangs;
	uint64_t ndocs;
	double avgdl;
	bool relevance;
	/* doc info of the current range */
	uint32_t lo, hi;
	const uint8_t *blk[SB >> NA_IX_DOCS_SHIFT];
	uint32_t blkn[SB >> NA_IX_DOCS_SHIFT];
	bool blkdone[SB >> NA_IX_DOCS_SHIFT];
	na_buf dec;
	MDB_cursor *acur;   /* articles: existence checks */
	na_block *lblk;     /* the block parsed last by exists() */
	const void *lblk_rec; /* its record (stable within the transaction) */
} ctx;

static int __attribute__((format(printf, 2, 3))) bad(ctx *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->err, c->errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int plist_reserve(plist *p, size_t n)
{
	if (n <= p->cap)
		return 0;
	size_t nc = p->cap ? p->cap : 256;
	while (nc < n)
		nc *= 2;
	uint32_t *d = realloc(p->d, nc * sizeof *d);
	if (!d)
		return -ENOMEM;
	p->d = d;
	double *s = realloc(p->sc, nc * sizeof *s);
	if (!s)
		return -ENOMEM;
	p->sc = s;
	p->cap = nc;
	return 0;
}

static void plist_free(plist *p)
{
	free(p->d);
	free(p->sc);
}

static int add_term(ctx *c, const uint8_t *k, size_t n)
{
	/* Every term is looked up in every docid range a query visits (and,
	 * for relevance, in every segment for its document frequency), all
	 * under the archive's read transaction and on a worker thread: the
	 * terms of a query are capped in all, not only per prefix, or ORed
	 * prefixes times the languages present multiply into a query that
	 * takes seconds and grows with the archive. */
	if (c->nterms >= NA_SEARCH_MAX_TERMS)
		return bad(c, "the query needs more than %d index terms (every word counts once per "
			   "language in the index, every prefix once per term it matches); use fewer "
			   "or longer prefixes, or fewer words",
			   NA_SEARCH_MAX_TERMS);
	if (c->nterms == c->cterms) {
		size_t nc = c->cterms ? c->cterms * 2 : 32;
		term *nt = realloc(c->terms, nc * sizeof *nt);
		if (!nt)
			return -ENOMEM;
		c->terms = nt;
		c->cterms = nc;
	}
	term *t = &c->terms[c->nterms++];
	memset(t, 0, sizeof *t);
	memcpy(t->key, k, n);
	t->len = (uint16_t)n;
	return 0;
}

/* Where chunks live (index.c): merged segments in ixbig, sealed ones in
 * ixsealed, each under its number as a 4-byte prefix, and the newest in
 * ixpost without one; then term key + 0x00 + first docid. A container is
 * one of those segments: its cursor, prefix and docids [lo, hi). */
typedef struct cont {
	MDB_cursor *cur;
	uint8_t pfx[4];
	size_t pl;
	uint64_t lo, hi;
} cont;

static void be32(uint8_t *p, uint64_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* Containers in docid order: the merged, the sealed, the newest. */
static uint32_t cont_count(const ctx *c)
{
	return c->merged + (c->sealed - (c->merged << NA_IX_MERGE_SHIFT)) + 1;
}

static void cont_at(ctx *c, uint32_t i, cont *o)
{
	unsigned big = c->segshift + NA_IX_MERGE_SHIFT;
	uint64_t small0 = (uint64_t)c->merged << NA_IX_MERGE_SHIFT;
	if (i < c->merged) {
		o->cur = c->bcur;
		be32(o->pfx, i);
		o->pl = 4;
		o->lo = (uint64_t)i << big;
		o->hi = (uint64_t)(i + 1) << big;
	} else if (small0 + (i - c->merged) < c->sealed) {
		uint64_t seg = small0 + (i - c->merged);
		o->cur = c->scur;
		be32(o->pfx, seg);
		o->pl = 4;
		o->lo = seg << c->segshift;
		o->hi = (seg + 1) << c->segshift;
	} else {
		o->cur = c->cur;
		o->pl = 0;
		o->lo = (uint64_t)c->sealed << c->segshift;
		o->hi = UINT64_MAX;
	}
}

/* The container holding docid d. */
static void cont_of(ctx *c, uint64_t d, cont *o)
{
	unsigned big = c->segshift + NA_IX_MERGE_SHIFT;
	if ((d >> big) < c->merged)
		cont_at(c, (uint32_t)(d >> big), o);
	else if ((d >> c->segshift) < c->sealed)
		cont_at(c, c->merged + (uint32_t)((d >> c->segshift) - ((uint64_t)c->merged << NA_IX_MERGE_SHIFT)), o);
	else
		cont_at(c, cont_count(c) - 1, o);
}

/* Whether kv is a chunk key of the term whose prefix + term key + 0x00 are
 * the first tl + 1 bytes of k. */
static bool is_chunk(const uint8_t *k, size_t tl, const MDB_val *kv)
{
	return kv->mv_size == tl + 5 && memcmp(kv->mv_data, k, tl + 1) == 0;
}

static int add_group(ctx *c, uint32_t first, uint32_t n)
{
	if (c->ngroups == c->cgroups) {
		size_t nc = c->cgroups ? c->cgroups * 2 : 32;
		group *ng = realloc(c->groups, nc * sizeof *ng);
		if (!ng)
			return -ENOMEM;
		c->groups = ng;
		c->cgroups = nc;
	}
	c->groups[c->ngroups++] = (group){ first, n };
	return 0;
}

typedef struct wctx {
	ctx *c;
	int field;
	const char *lang;
	uint32_t n;
	/* a prefix: its key, not a term of the query */
	uint8_t key[NA_IX_TERMKEY_MAX];
	size_t klen;
} wctx;

static int prefix_key(const na_token *t, void *arg)
{
	wctx *w = arg;
	if (w->n++ == 0)
		w->klen = na_ix_term_key(w->key, w->field, w->lang, t->term, t->len);
	return 0;
}

static int word_term(const na_token *t, void *arg)
{
	wctx *w = arg;
	uint8_t k[NA_IX_TERMKEY_MAX];
	size_t n = na_ix_term_key(k, w->field, w->lang, t->term, t->len);
	w->n++;
	return add_term(w->c, k, n);
}

/* Key order of a term's key against k[0..n) (shorter first on a tie: the
 * order of their chunk keys, term + 0x00 + docid). */
static int term_cmp(const term *t, const uint8_t *k, size_t n)
{
	int r = memcmp(t->key, k, t->len < n ? t->len : n);
	return r ? r : (t->len > n) - (t->len < n);
}

static int cmp_term_ix(const void *a, const void *b, void *arg)
{
	const ctx *c = arg;
	const term *y = &c->terms[*(const uint32_t *)b];
	return term_cmp(&c->terms[*(const uint32_t *)a], y->key, y->len);
}

/* Every term of the index that starts with the prefix key p, in every
 * segment (each term once). A term is usually in many segments: the
 * distinct terms found so far are kept as indexes in key order, a term is
 * looked up there by binary search, and the terms new in a segment are
 * merged in after it. (A scan of all of them per term found made this
 * quadratic: up to a million comparisons per segment.) */
static int expand_prefix(ctx *c, const na_qnode *nd, const uint8_t *p, size_t pn)
{
	uint32_t t0 = (uint32_t)c->nterms;
	/* sorted: ns indexes in key order; fresh: scratch for the merge */
	uint32_t *sorted = malloc(2 * NA_SEARCH_MAX_EXPANSIONS * sizeof *sorted);
	if (!sorted)
		return -ENOMEM;
	uint32_t *fresh = sorted + NA_SEARCH_MAX_EXPANSIONS;
	size_t ns = 0;
	int rc = 0;
	for (uint32_t ci = 0; ci < cont_count(c) && rc == 0; ci++) {
		uint8_t k[4 + NA_IX_TERMKEY_MAX + 5];
		cont ct;
		cont_at(c, ci, &ct);
		size_t pl = ct.pl;
		MDB_cursor *cur = ct.cur;
		uint32_t n0 = (uint32_t)c->nterms; /* the terms new in this segment follow */
		memcpy(k, ct.pfx, pl);
		memcpy(k + pl, p, pn);
		MDB_val kv = { pl + pn, k }, v;
		rc = mdb_cursor_get(cur, &kv, &v, MDB_SET_RANGE);
		while (rc == 0) {
			const uint8_t *kk = kv.mv_data;
			if (kv.mv_size < pl + pn + 5 || memcmp(kk, k, pl + pn) != 0)
				break;
			size_t tl = kv.mv_size - 5 - pl;
			if (kk[pl + tl] != 0 || tl > NA_IX_TERMKEY_MAX) {
				rc = -EIO;
				break;
			}
			size_t lo = 0, hi = ns;
			bool seen = false;
			while (lo < hi && !seen) {
				size_t mid = lo + (hi - lo) / 2;
				int r = term_cmp(&c->terms[sorted[mid]], kk + pl, tl);
				if (r == 0)
					seen = true;
				else if (r < 0)
					lo = mid + 1;
				else
					hi = mid;
			}
			if (!seen) {
				if (c->nterms - t0 >= NA_SEARCH_MAX_EXPANSIONS) {
					rc = bad(c, "position %u: prefix \"%.*s*\" matches more than %d terms; "
						 "make it longer",
						 nd->pos, (int)(nd->len > 40 ? 40 : nd->len), nd->text,
						 NA_SEARCH_MAX_EXPANSIONS);
					break;
				}
				uint32_t first = (uint32_t)c->nterms;
				if ((rc = add_term(c, kk + pl, tl)) || (rc = add_group(c, first, 1)))
					break;
			}
			/* skip the rest of this term's chunks */
			memmove(k + pl, kk + pl, tl);
			k[pl + tl] = 1;
			kv.mv_size = pl + tl + 1;
			kv.mv_data = k;
			rc = mdb_cursor_get(cur, &kv, &v, MDB_SET_RANGE);
		}
		if (rc == MDB_NOTFOUND)
			rc = 0;
		if (rc)
			break;
		/* merge this segment's new terms (in key order) into sorted */
		size_t nf = c->nterms - n0;
		if (nf == 0)
			continue;
		for (size_t i = 0; i < nf; i++)
			fresh[i] = n0 + (uint32_t)i;
		qsort_r(fresh, nf, sizeof *fresh, cmp_term_ix, c); /* a no-op pass, usually */
		size_t i = ns, j = nf, o = ns + nf;
		while (j > 0) {
			if (i > 0 && cmp_term_ix(&sorted[i - 1], &fresh[j - 1], c) > 0)
				sorted[--o] = sorted[--i];
			else
				sorted[--o] = fresh[--j];
		}
		ns += nf;
	}
	free(sorted);
	return rc;
}

static int field_byte(na_qfield f)
{
	switch (f) {
	case NA_F_TEXT: return NA_IXF_TEXT;
	case NA_F_TITLE: return NA_IXF_TITLE;
	case NA_F_AUTHOR: return NA_IXF_AUTHOR;
	case NA_F_TAG: return NA_IXF_TAG;
	case NA_F_SOURCE: return NA_IXF_SOURCE;
	default: return NA_IXF_SECTION;
	}
}

/* Turns each leaf into groups of term keys. */
static int plan(ctx *c)
{
	for (uint32_t id = 0; id < c->q->n; id++) {
		const na_qnode *nd = &c->q->node[id];
		if (nd->kind > NA_Q_PREFIX)
			continue;
		c->leaf[id].g0 = (uint32_t)c->ngroups;
		c->leaf[id].exact = true;
		int fb = field_byte(nd->field);
		int rc = 0;
		if (nd->field >= NA_F_AUTHOR) {
			char norm[NA_EXACT_MAX];
			size_t n = na_exact_norm(c->a, nd->text, nd->len, norm);
			uint8_t k[NA_IX_TERMKEY_MAX];
			size_t kl = na_ix_term_key(k, fb, "", norm, n);
			if (nd->kind == NA_Q_PREFIX) {
				rc = expand_prefix(c, nd, k, kl);
			} else {
				uint32_t first = (uint32_t)c->nterms;
				if (!(rc = add_term(c, k, kl)))
					rc = add_group(c, first, 1);
			}
		} else {
			for (size_t li = 0; li < c->nlangs && rc == 0; li += 2) {
				char lang[3] = { c->langs[li], c->langs[li + 1], 0 };
				if (lang[0] == '-')
					lang[0] = 0;
				if (nd->kind == NA_Q_PREFIX) {
					/* prefixes match the stored (stemmed) words */
					wctx w = { .c = c, .field = fb, .lang = lang };
					rc = na_analyze(c->a, nd->text, nd->len, "", 0, 0, prefix_key, &w);
					if (rc || w.n != 1)
						break;
					rc = expand_prefix(c, nd, w.key, w.klen);
					continue;
				}
				wctx w = { .c = c, .field = fb, .lang = lang };
				uint32_t first = (uint32_t)c->nterms;
				rc = na_analyze(c->a, nd->text, nd->len, lang, 1, 0, word_term, &w);
				if (rc == 0 && w.n > 0)
					rc = add_group(c, first, w.n);
				if (w.n > 1)
					c->leaf[id].exact = false;
			}
		}
		if (rc)
			return rc;
		c->leaf[id].ng = (uint32_t)c->ngroups - c->leaf[id].g0;
	}
	return 0;
}

/* Document frequency: the sum of the term's chunk counts (every segment). */
static int term_idf(ctx *c, term *t)
{
	uint64_t df = 0;
	for (uint32_t ci = 0; ci < cont_count(c); ci++) {
		uint8_t k[4 + NA_IX_TERMKEY_MAX + 5];
		cont ct;
		cont_at(c, ci, &ct);
		size_t pl = ct.pl;
		MDB_cursor *cur = ct.cur;
		memcpy(k, ct.pfx, pl);
		size_t tl = pl + t->len;
		memcpy(k + pl, t->key, t->len);
		memset(k + tl, 0, 5);
		MDB_val kv = { tl + 5, k }, v;
		int rc = mdb_cursor_get(cur, &kv, &v, MDB_SET_RANGE);
		while (rc == 0 && is_chunk(k, tl, &kv)) {
			int64_t n = na_post_count(v.mv_data, v.mv_size);
			if (n < 0)
				return -EIO;
			df += (uint64_t)n;
			rc = mdb_cursor_get(cur, &kv, &v, MDB_NEXT);
		}
		if (rc && rc != MDB_NOTFOUND)
			return rc;
	}
	double N = (double)(c->ndocs > df ? c->ndocs : df);
	t->idf = log(1.0 + (N - (double)df + 0.5) / ((double)df + 0.5));
	return 0;
}

/* The doc info (key, length) of docid d in the current range. */
static int docinfo(ctx *c, uint32_t d, na_key *key, uint16_t *len)
{
	uint32_t bi = (d - c->lo) >> NA_IX_DOCS_SHIFT;
	if (!c->blkdone[bi]) {
		uint8_t kb[4];
		uint32_t blk = d >> NA_IX_DOCS_SHIFT;
		kb[0] = (uint8_t)(blk >> 24);
		kb[1] = (uint8_t)(blk >> 16);
		kb[2] = (uint8_t)(blk >> 8);
		kb[3] = (uint8_t)blk;
		MDB_val k = { 4, kb }, v;
		int rc = mdb_get(c->itxn, c->s->ixdocs, &k, &v);
		c->blkdone[bi] = true;
		c->blk[bi] = NULL;
		c->blkn[bi] = 0;
		if (rc == 0 && v.mv_size % NA_IX_DOC_BYTES == 0) {
			c->blk[bi] = v.mv_data;
			c->blkn[bi] = (uint32_t)(v.mv_size / NA_IX_DOC_BYTES);
		} else if (rc && rc != MDB_NOTFOUND) {
			return rc;
		}
	}
	uint32_t i = d & ((1u << NA_IX_DOCS_SHIFT) - 1);
	if (i >= c->blkn[bi])
		return -EIO;
	const uint8_t *p = c->blk[bi] + (size_t)i * NA_IX_DOC_BYTES;
	if (key)
		memcpy(key->b, p, NA_KEY_BYTES);
	if (len)
		*len = (uint16_t)(p[16] << 8 | p[17]);
	return 0;
}

static int load_chunk(term *t, const MDB_val *k, const MDB_val *v)
{
	const uint8_t *kb = (const uint8_t *)k->mv_data + k->mv_size - 4;
	uint32_t base = (uint32_t)kb[0] << 24 | (uint32_t)kb[1] << 16 | (uint32_t)kb[2] << 8 | kb[3];
	if (t->cached && t->cbase == base)
		return 0;
	if (!t->cd) {
		t->cd = malloc(NA_POST_CHUNK_MAX * sizeof *t->cd);
		t->ctf = malloc(NA_POST_CHUNK_MAX * sizeof *t->ctf);
		if (!t->cd || !t->ctf)
			return -ENOMEM;
	}
	if (na_post_decode(v->mv_data, v->mv_size, base, t->cd, t->ctf, NA_POST_CHUNK_MAX, &t->cn))
		return -EIO;
	t->cbase = base;
	t->cached = true;
	return 0;
}

/* Postings of term t with lo <= docid < hi, all in container ct, appended
 * to out (scored when ranking). */
static int seg_postings(ctx *c, term *t, const cont *ct, uint32_t lo, uint32_t hi, plist *out)
{
	uint8_t k[4 + NA_IX_TERMKEY_MAX + 5];
	size_t pl = ct->pl;
	MDB_cursor *cur = ct->cur;
	memcpy(k, ct->pfx, pl);
	size_t tl = pl + t->len;
	memcpy(k + pl, t->key, t->len);
	k[tl] = 0;
	k[tl + 1] = (uint8_t)(lo >> 24);
	k[tl + 2] = (uint8_t)(lo >> 16);
	k[tl + 3] = (uint8_t)(lo >> 8);
	k[tl + 4] = (uint8_t)lo;
	MDB_val kv = { tl + 5, k }, v;
	int rc = mdb_cursor_get(cur, &kv, &v, MDB_SET_RANGE);
	bool exact_hit = rc == 0 && is_chunk(k, tl, &kv) && memcmp(kv.mv_data, k, tl + 5) == 0;
	if (!exact_hit) {
		/* the chunk holding lo starts before it */
		MDB_val pk, pv;
		int prc = rc == 0 ? mdb_cursor_get(cur, &pk, &pv, MDB_PREV)
				  : rc == MDB_NOTFOUND ? mdb_cursor_get(cur, &pk, &pv, MDB_LAST) : rc;
		if (prc == 0 && is_chunk(k, tl, &pk)) {
			kv = pk;
			v = pv;
			rc = 0;
		} else if (prc && prc != MDB_NOTFOUND) {
			return prc;
		} else if (rc == 0) {
			/* back to the first chunk at or after lo */
			kv.mv_size = tl + 5;
			kv.mv_data = k;
			rc = mdb_cursor_get(cur, &kv, &v, MDB_SET_RANGE);
		}
	}
	while (rc == 0 && is_chunk(k, tl, &kv)) {
		if ((rc = load_chunk(t, &kv, &v)))
			return rc;
		if (t->cbase >= hi)
			break;
		for (uint32_t i = 0; i < t->cn; i++) {
			uint32_t d = t->cd[i];
			if (d < lo)
				continue;
			if (d >= hi)
				break;
			if ((rc = plist_reserve(out, out->n + 1)))
				return rc;
			double s = 0;
			if (c->relevance) {
				uint16_t dl = 0;
				if ((rc = docinfo(c, d, NULL, &dl)))
					return rc;
				double tf = t->ctf[i];
				s = t->idf * tf * (BM25_K1 + 1) /
				    (tf + BM25_K1 * (1 - BM25_B + BM25_B * dl / c->avgdl));
			}
			out->d[out->n] = d;
			out->sc[out->n] = s;
			out->n++;
		}
		if (t->cn && t->cd[t->cn - 1] >= hi)
			break;
		rc = mdb_cursor_get(cur, &kv, &v, MDB_NEXT);
	}
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Postings of term t with c->lo <= docid < c->hi into out, from each
 * segment the range overlaps. */
static int term_postings(ctx *c, term *t, plist *out)
{
	out->n = 0;
	if (c->hi <= c->lo)
		return 0;
	for (uint64_t d = c->lo; d < c->hi;) {
		cont ct;
		cont_of(c, d, &ct);
		uint64_t e = ct.hi < c->hi ? ct.hi : c->hi;
		int rc = seg_postings(c, t, &ct, (uint32_t)d, (uint32_t)e, out);
		if (rc)
			return rc;
		d = e;
	}
	return 0;
}

/* a &= b (scores add) */
static void intersect(plist *a, const plist *b)
{
	size_t i = 0, j = 0, o = 0;
	while (i < a->n && j < b->n) {
		if (a->d[i] < b->d[j])
			i++;
		else if (a->d[i] > b->d[j])
			j++;
		else {
			a->d[o] = a->d[i];
			a->sc[o] = a->sc[i] + b->sc[j];
			o++;
			i++;
			j++;
		}
	}
	a->n = o;
}

/* a -= b */
static void subtract(plist *a, const plist *b)
{
	size_t i = 0, j = 0, o = 0;
	while (i < a->n) {
		while (j < b->n && b->d[j] < a->d[i])
			j++;
		if (j < b->n && b->d[j] == a->d[i]) {
			i++;
			continue;
		}
		a->d[o] = a->d[i];
		a->sc[o] = a->sc[i];
		o++;
		i++;
	}
	a->n = o;
}

/* a |= b, using tmp */
static int unite(plist *a, const plist *b, plist *tmp)
{
	int rc = plist_reserve(tmp, a->n + b->n);
	if (rc)
		return rc;
	size_t i = 0, j = 0, o = 0;
	while (i < a->n || j < b->n) {
		if (j >= b->n || (i < a->n && a->d[i] < b->d[j])) {
			tmp->d[o] = a->d[i];
			tmp->sc[o++] = a->sc[i++];
		} else if (i >= a->n || b->d[j] < a->d[i]) {
			tmp->d[o] = b->d[j];
			tmp->sc[o++] = b->sc[j++];
		} else {
			tmp->d[o] = a->d[i];
			tmp->sc[o++] = a->sc[i++] + b->sc[j++];
		}
	}
	tmp->n = o;
	plist sw = *a;
	*a = *tmp;
	*tmp = sw;
	return 0;
}

static int copy_into(plist *dst, const plist *src)
{
	int rc = plist_reserve(dst, src->n);
	if (rc)
		return rc;
	if (src->n) {
		memcpy(dst->d, src->d, src->n * sizeof *src->d);
		memcpy(dst->sc, src->sc, src->n * sizeof *src->sc);
	}
	dst->n = src->n;
	return 0;
}

/* Evaluates node id over [lo, hi) into c->res[id]; *exact tells whether
 * the result is exact (else a superset to verify). */
static int eval(ctx *c, uint32_t id, bool *exact)
{
	const na_qnode *nd = &c->q->node[id];
	plist *r = &c->res[id];
	r->n = 0;
	int rc;
	*exact = true;
	if (nd->kind <= NA_Q_PREFIX) {
		*exact = c->leaf[id].exact;
		for (uint32_t g = c->leaf[id].g0; g < c->leaf[id].g0 + c->leaf[id].ng; g++) {
			const group *gr = &c->groups[g];
			if ((rc = term_postings(c, &c->terms[gr->first], &c->tmp2)))
				return rc;
			for (uint32_t t = 1; t < gr->n && c->tmp2.n; t++) {
				if ((rc = term_postings(c, &c->terms[gr->first + t], &c->tmp)))
					return rc;
				intersect(&c->tmp2, &c->tmp);
			}
			if (r->n == 0) {
				if ((rc = copy_into(r, &c->tmp2)))
					return rc;
			} else if ((rc = unite(r, &c->tmp2, &c->tmp))) {
				return rc;
			}
		}
		return 0;
	}
	if (nd->kind == NA_Q_OR) {
		for (uint16_t i = 0; i < nd->nkids; i++) {
			bool ex;
			if ((rc = eval(c, nd->kid[i], &ex)))
				return rc;
			*exact = *exact && ex;
			if (i == 0)
				rc = copy_into(r, &c->res[nd->kid[i]]);
			else
				rc = unite(r, &c->res[nd->kid[i]], &c->tmp);
			if (rc)
				return rc;
		}
		return 0;
	}
	/* AND: positives first, then subtract exact negatives */
	bool first = true;
	for (uint16_t i = 0; i < nd->nkids; i++) {
		const na_qnode *k = &c->q->node[nd->kid[i]];
		if (k->kind == NA_Q_NOT)
			continue;
		if (!first && r->n == 0)
			return 0;
		bool ex;
		if ((rc = eval(c, nd->kid[i], &ex)))
			return rc;
		*exact = *exact && ex;
		if (first) {
			if ((rc = copy_into(r, &c->res[nd->kid[i]])))
				return rc;
			first = false;
		} else {
			intersect(r, &c->res[nd->kid[i]]);
		}
	}
	for (uint16_t i = 0; i < nd->nkids && r->n; i++) {
		const na_qnode *k = &c->q->node[nd->kid[i]];
		if (k->kind != NA_Q_NOT)
			continue;
		bool ex;
		if ((rc = eval(c, k->kid[0], &ex)))
			return rc;
		if (ex) {
			/* scores of negated terms do not count */
			subtract(r, &c->res[k->kid[0]]);
		} else {
			*exact = false; /* phrases: decided on the text */
		}
	}
	return 0;
}

/* ---- ordering --------------------------------------------------------- */

static int cmp_newest(const void *a, const void *b)
{
	return -memcmp(((const cand *)a)->key.b, ((const cand *)b)->key.b, NA_KEY_BYTES);
}

static int cmp_oldest(const void *a, const void *b)
{
	return memcmp(((const cand *)a)->key.b, ((const cand *)b)->key.b, NA_KEY_BYTES);
}

static int cmp_rel(const void *a, const void *b)
{
	const cand *x = a, *y = b;
	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	return cmp_newest(a, b);
}

static int cmp_sb_newest(const void *a, const void *b)
{
	return -memcmp(((const sbrange *)a)->hi.b, ((const sbrange *)b)->hi.b, NA_KEY_BYTES);
}

static int cmp_sb_oldest(const void *a, const void *b)
{
	return memcmp(((const sbrange *)a)->lo.b, ((const sbrange *)b)->lo.b, NA_KEY_BYTES);
}

/* Is candidate x strictly after the cursor in the requested order? */
static bool past_cursor(const na_search_q *q, const cand *x, double cs, const na_key *ck)
{
	if (!q->has_after)
		return true;
	int c = memcmp(x->key.b, ck->b, NA_KEY_BYTES);
	switch (q->order) {
	case NA_ORDER_NEWEST: return c < 0;
	case NA_ORDER_OLDEST: return c > 0;
	default: return x->score < cs || (x->score == cs && c < 0);
	}
}

static int ordcmp(const na_search_q *q, const cand *a, const cand *b)
{
	return q->order == NA_ORDER_NEWEST ? cmp_newest(a, b)
	       : q->order == NA_ORDER_OLDEST ? cmp_oldest(a, b) : cmp_rel(a, b);
}

/*
 * Whether the version under key still exists in the archive's snapshot (a
 * single record, or a live member of a block): 1, 0 (deleted or replaced
 * since it was indexed), or a negative error. It decides as
 * na_store_locate does (a block is stored under its first live member, and
 * holds adjacent keys, so the record at or before the key is the one), but
 * where "total" is exact every candidate is checked, and that cost counts:
 * one cursor stays open, so a key near the last one (candidates come in
 * about key order) is found on the leaf page the cursor is on rather than
 * from the root, and the block last parsed is kept for its next members.
 * (na_store_locate per candidate doubled the time of large relevance
 * queries, and parsed a block's member table for each of its members.)
 */
static int exists(ctx *c, const na_key *key)
{
	int rc;
	if (!c->acur && (rc = mdb_cursor_open(c->txn, c->s->articles, &c->acur)))
		return rc;
	MDB_val k = { NA_KEY_BYTES, (void *)key->b }, v;
	rc = mdb_cursor_get(c->acur, &k, &v, MDB_SET_RANGE);
	bool at = rc == 0 && k.mv_size == NA_KEY_BYTES && memcmp(k.mv_data, key->b, NA_KEY_BYTES) == 0;
	if (at && !na_rec_is_block(v.mv_data, v.mv_size)) {
		na_rec r;
		return na_rec_parse(c->s->codec, v.mv_data, v.mv_size, &r) ? -EIO : 1;
	}
	if (!at) {
		/* inside a block stored under an earlier key? */
		if (rc == 0)
			rc = mdb_cursor_get(c->acur, &k, &v, MDB_PREV);
		else if (rc == MDB_NOTFOUND)
			rc = mdb_cursor_get(c->acur, &k, &v, MDB_LAST);
		if (rc)
			return rc == MDB_NOTFOUND ? 0 : rc;
		if (!na_rec_is_block(v.mv_data, v.mv_size))
			return 0;
	}
	if (v.mv_data != c->lblk_rec) {
		if (!c->lblk && !(c->lblk = malloc(sizeof *c->lblk)))
			return -ENOMEM;
		c->lblk_rec = NULL;
		if (k.mv_size != NA_KEY_BYTES || na_block_parse(c->s->codec, v.mv_data, v.mv_size, c->lblk) ||
		    memcmp(c->lblk->m[c->lblk->first_live].key, k.mv_data, NA_KEY_BYTES) != 0)
			return -EIO;
		c->lblk_rec = v.mv_data;
	}
	const na_block *b = c->lblk;
	uint32_t lo = b->first_live, hi = b->last_live + 1;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		int r = memcmp(b->m[mid].key, key->b, NA_KEY_BYTES);
		if (r == 0)
			return !b->m[mid].dead;
		if (r < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

/* Reads the article of a candidate; 1 if it exists (and matches, when the
 * tree needs the text), 0 if not, negative on error. */
static int accept_cand(ctx *c, const cand *x, bool verify)
{
	int rc;
	if (!verify)
		return exists(c, &x->key);
	rc = na_store_read_key(c->s, c->txn, &x->key, &c->dec);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return rc == MDB_CORRUPTED ? -EIO : rc;
	rc = na_search_match(c->a, c->q, c->dec.data, c->dec.len);
	return rc < 0 ? (rc == -EINVAL ? 0 : rc) : rc;
}

typedef struct page {
	cand *v;
	size_t n, cap; /* cap = limit + 1 */
} page;

/* Inserts x into the page (sorted best first, at most cap). */
static void page_insert(const na_search_q *q, page *p, const cand *x)
{
	size_t i = p->n;
	while (i > 0 && ordcmp(q, x, &p->v[i - 1]) < 0)
		i--;
	if (i >= p->cap)
		return;
	size_t move = (p->n < p->cap ? p->n : p->cap - 1) - i;
	memmove(&p->v[i + 1], &p->v[i], move * sizeof *x);
	p->v[i] = *x;
	if (p->n < p->cap)
		p->n++;
}

static int pack_article(ctx *c, msgpack_packer *pk, const cand *x)
{
	int rc = na_store_read_key(c->s, c->txn, &x->key, &c->dec);
	if (rc)
		return rc == MDB_NOTFOUND || rc == MDB_CORRUPTED ? -EIO : rc;
	if (c->sq->project)
		return na_article_project(pk, c->dec.data, c->dec.len, &c->sq->fields) ? -EIO : 0;
	return na_mp_pack_raw(pk, c->dec.data, c->dec.len);
}

static void key_window(const na_search_q *q, na_key *lo, na_key *hi)
{
	if (q->has_from)
		na_key_floor(lo, q->from);
	if (q->has_to)
		na_key_floor(hi, q->to);
}

static bool in_window(const na_search_q *q, const na_key *lo, const na_key *hi, const na_key *k)
{
	if (q->has_from && memcmp(k->b, lo->b, NA_KEY_BYTES) < 0)
		return false;
	if (q->has_to && memcmp(k->b, hi->b, NA_KEY_BYTES) >= 0)
		return false;
	return true;
}

/*
 * Relevance keeps at most a bounded number of candidates at once. When they
 * are too many, and once at the end, this sorts them best first and checks
 * them in that order (the version exists; and, verify, it matches the
 * text) until want have passed: no candidate below the last of those can
 * make the page, so the rest go, and those that failed with them. The
 * check has to come first: cut by score alone, the better-scored but
 * failing candidates (a phrase whose words are all there, but apart)
 * pushed the real matches out, and the pages ended early.
 */
static int keep_best(ctx *c, cand *v, size_t *n, size_t want, bool verify)
{
	if (*n)
		qsort(v, *n, sizeof *v, cmp_rel);
	size_t keep = 0;
	for (size_t j = 0; j < *n && keep < want; j++) {
		if (!v[j].ok) {
			int a = accept_cand(c, &v[j], verify);
			if (a < 0)
				return a;
			if (!a)
				continue;
			v[j].ok = true;
		}
		v[keep++] = v[j];
	}
	*n = keep;
	return 0;
}

/* Keys of counted candidates not checked yet (newest / oldest): whether
 * they still exist matters for "total" only if the walk visits every
 * range, which is known at its end. */
typedef struct deferred {
	na_key *k;
	size_t n, cap;
	uint64_t dead; /* of those checked, gone */
} deferred;

/* Checks the deferred keys, counting the versions gone in d->dead. */
static int deferred_check(ctx *c, deferred *d)
{
	for (size_t i = 0; i < d->n; i++) {
		cand x = { .key = d->k[i] };
		int a = accept_cand(c, &x, false);
		if (a < 0)
			return a;
		d->dead += a == 0;
	}
	d->n = 0;
	return 0;
}

static int deferred_add(ctx *c, deferred *d, const na_key *k)
{
	if (d->n == d->cap && d->cap >= NA_SEARCH_MAX_CANDIDATES) {
		/* bounded: past this many, check them now */
		int rc = deferred_check(c, d);
		if (rc)
			return rc;
	}
	if (d->n == d->cap) {
		size_t nc = d->cap ? d->cap * 2 : 1024;
		na_key *nk = realloc(d->k, nc * sizeof *nk);
		if (!nk)
			return -ENOMEM;
		d->k = nk;
		d->cap = nc;
	}
	d->k[d->n++] = *k;
	return 0;
}

/* Whether the index, as this search's read transaction sees it, covers
 * q->min_seq. The request was found covered when it arrived, but it ran
 * later, on a worker: a reindex (or a rebuild after a trimmed log) may have
 * dropped the index meanwhile, and its partial content would pass for the
 * answer the client waited for. 0, -ETIMEDOUT with the message in err, or
 * an LMDB error. */
static int check_covered(ctx *c)
{
	const na_search_q *q = c->sq;
	if (!q->min_seq)
		return 0;
	uint64_t rebuild = 0, ixseq = 0, ixepoch = 0, epoch = 0;
	int rc;
	if ((rc = na_ixmeta_get_u64(c->s, c->itxn, "ix_rebuild", &rebuild)) ||
	    (rc = na_ixmeta_get_u64(c->s, c->itxn, "ix_seq", &ixseq)) ||
	    (rc = na_ixmeta_get_u64(c->s, c->itxn, "ix_epoch", &ixepoch)) ||
	    (rc = na_meta_get_u64(c->s, c->txn, "ix_epoch", &epoch)))
		return rc;
	/* built for other articles (a follower's snapshot replaced them):
	 * the indexer is about to rebuild it */
	if (ixepoch != epoch)
		rebuild = 1;
	if (!rebuild && ixseq >= q->min_seq)
		return 0;
	snprintf(c->err, c->errlen, "the index: min_seq %llu not reached in time (at %llu)%s",
		 (unsigned long long)q->min_seq, (unsigned long long)(rebuild ? 0 : ixseq),
		 rebuild ? ": the index is being rebuilt (a rebuild began after the search was "
			   "accepted); retry"
			 : "");
	return -ETIMEDOUT;
}

static int run(ctx *c, msgpack_packer *pk)
{
	const na_search_q *q = c->sq;
	na_store *s = c->s;
	int rc;
	MDB_val v;
	uint64_t lensum = 0;
	if ((rc = check_covered(c)))
		return rc;
	uint64_t ixdead = 1, ixseq = 0, aseq = 0, rebuild = 1, ixepoch = 0, epoch = 1;
	if ((rc = na_ixmeta_get_u64(s, c->itxn, "ix_dead", &ixdead)) ||
	    (rc = na_ixmeta_get_u64(s, c->itxn, "ix_seq", &ixseq)) ||
	    (rc = na_ixmeta_get_u64(s, c->itxn, "ix_rebuild", &rebuild)) ||
	    (rc = na_ixmeta_get_u64(s, c->itxn, "ix_epoch", &ixepoch)) ||
	    (rc = na_meta_get_u64(s, c->txn, "ix_epoch", &epoch)) ||
	    (rc = na_meta_get_u64(s, c->txn, "seq", &aseq)))
		return rc;
	c->all_live = ixdead == 0 && ixseq == aseq && !rebuild && ixepoch == epoch &&
		      !atomic_load(&s->ix_unfit);
	if ((rc = na_ixmeta_get_u64(s, c->itxn, "ix_next", &c->ndocs)) ||
	    (rc = na_ixmeta_get_u64(s, c->itxn, "ix_len", &lensum)))
		return rc;
	c->avgdl = c->ndocs ? (double)lensum / (double)c->ndocs : 1;
	if (c->avgdl <= 0)
		c->avgdl = 1;
	if (na_ixmeta_get(s, c->itxn, "ix_langs", &v) == 0 && v.mv_size && v.mv_size <= sizeof c->langs) {
		memcpy(c->langs, v.mv_data, v.mv_size);
		c->nlangs = v.mv_size & ~(size_t)1;
	}
	uint64_t sealed = 0, merged = 0, shift = 0;
	if ((rc = na_ixmeta_get_u64(s, c->itxn, "ix_sealed", &sealed)) ||
	    (rc = na_ixmeta_get_u64(s, c->itxn, "ix_merged", &merged)) ||
	    (rc = na_ixmeta_get_u64(s, c->itxn, "ix_segshift", &shift)))
		return rc;
	if (shift < 4 || shift > 24 || sealed > (UINT32_MAX >> shift) ||
	    merged > (sealed >> NA_IX_MERGE_SHIFT)) {
		sealed = merged = 0; /* an index from before segments: all in ixpost */
		shift = 24;
	}
	c->sealed = (uint32_t)sealed;
	c->merged = (uint32_t)merged;
	c->segshift = (unsigned)shift;
	if ((rc = mdb_cursor_open(c->itxn, s->ixpost, &c->cur)) ||
	    (rc = mdb_cursor_open(c->itxn, s->ixsealed, &c->scur)) ||
	    (rc = mdb_cursor_open(c->itxn, s->ixbig, &c->bcur)))
		return rc;
	if ((rc = plan(c)))
		return rc;
	c->relevance = q->order == NA_ORDER_RELEVANCE;
	for (size_t i = 0; c->relevance && i < c->nterms; i++)
		if ((rc = term_idf(c, &c->terms[i])))
			return rc;
	/* the cursor */
	double cs = 0;
	na_key ck;
	if (q->has_after) {
		size_t want = c->relevance ? 24 : 16;
		if (q->after_len != want)
			return bad(c, "after: not a cursor of a search in %s order",
				   c->relevance ? "relevance" : q->order == NA_ORDER_NEWEST ? "newest" : "oldest");
		if (c->relevance) {
			uint64_t bits = na_be64_get(q->after);
			memcpy(&cs, &bits, 8);
			memcpy(ck.b, q->after + 8, 16);
		} else {
			memcpy(ck.b, q->after, 16);
		}
	}
	/* the docid ranges that can hold articles of the window */
	na_key wlo, whi;
	key_window(q, &wlo, &whi);
	sbrange *sbs = NULL;
	size_t nsb = 0, csb = 0;
	uint64_t eligible_docs = 0;
	bool skipped = false;
	MDB_cursor *rc_cur;
	if ((rc = mdb_cursor_open(c->itxn, s->ixrange, &rc_cur)))
		return rc;
	MDB_val k;
	for (rc = mdb_cursor_get(rc_cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(rc_cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != 4 || v.mv_size != 32) {
			rc = -EIO;
			break;
		}
		sbrange r;
		const uint8_t *kb = k.mv_data;
		r.sb = (uint32_t)kb[0] << 24 | (uint32_t)kb[1] << 16 | (uint32_t)kb[2] << 8 | kb[3];
		memcpy(r.lo.b, v.mv_data, 16);
		memcpy(r.hi.b, (const uint8_t *)v.mv_data + 16, 16);
		if (q->has_from && memcmp(r.hi.b, wlo.b, 16) < 0)
			continue;
		if (q->has_to && memcmp(r.lo.b, whi.b, 16) >= 0)
			continue;
		uint64_t end = (uint64_t)(r.sb + 1) << NA_IX_RANGE_SHIFT;
		uint64_t ndoc = (end < c->ndocs ? end : c->ndocs) - ((uint64_t)r.sb << NA_IX_RANGE_SHIFT);
		eligible_docs += ndoc;
		if (q->has_after && !c->relevance) {
			/* a range wholly on the seen side of the cursor */
			if ((q->order == NA_ORDER_NEWEST && memcmp(r.lo.b, ck.b, 16) >= 0) ||
			    (q->order == NA_ORDER_OLDEST && memcmp(r.hi.b, ck.b, 16) <= 0)) {
				skipped = true;
				continue;
			}
		}
		if (nsb == csb) {
			size_t nc = csb ? csb * 2 : 64;
			sbrange *ns = realloc(sbs, nc * sizeof *ns);
			if (!ns) {
				rc = -ENOMEM;
				break;
			}
			sbs = ns;
			csb = nc;
		}
		sbs[nsb++] = r;
	}
	mdb_cursor_close(rc_cur);
	if (rc && rc != MDB_NOTFOUND) {
		free(sbs);
		return rc;
	}
	rc = 0;
	if (nsb)
		qsort(sbs, nsb, sizeof *sbs, q->order == NA_ORDER_OLDEST ? cmp_sb_oldest : cmp_sb_newest);

	/* Whether the index answers exactly (no leaf needs the text: no
	 * phrase, no word the analysis splits). Then "total" is exact too
	 * wherever every range is visited, and counts only the versions that
	 * still exist; else it counts what the index found. */
	bool root_exact = true;
	for (uint32_t id = 0; id < c->q->n; id++)
		if (c->q->node[id].kind <= NA_Q_PREFIX && !c->leaf[id].exact)
			root_exact = false;
	size_t maxcand = q->max_candidates ? q->max_candidates : NA_SEARCH_MAX_CANDIDATES;
	if (maxcand < 2 * ((size_t)q->limit + 1))
		maxcand = 2 * ((size_t)q->limit + 1); /* room to add after keep_best */
	page pg = { .cap = (size_t)q->limit + 1 };
	pg.v = malloc(pg.cap * sizeof *pg.v);
	cand *cands = NULL;
	size_t ncand = 0, ccand = 0;
	uint64_t seen = 0, visited_docs = 0;
	deferred dfr = { 0 };
	bool all_visited = !skipped;
	if (!pg.v) {
		free(sbs);
		return -ENOMEM;
	}
	for (size_t i = 0; i < nsb && rc == 0; i++) {
		const sbrange *r = &sbs[i];
		if (!c->relevance && pg.n == pg.cap) {
			cand best = { .key = q->order == NA_ORDER_NEWEST ? r->hi : r->lo };
			if (ordcmp(q, &best, &pg.v[pg.n - 1]) >= 0) {
				all_visited = false;
				break;
			}
		}
		c->lo = r->sb << NA_IX_RANGE_SHIFT;
		c->hi = c->lo + SB;
		memset(c->blkdone, 0, sizeof c->blkdone);
		bool exact;
		if ((rc = eval(c, c->q->root, &exact)))
			break;
		uint64_t end = (uint64_t)c->hi < c->ndocs ? c->hi : c->ndocs;
		visited_docs += end > c->lo ? end - c->lo : 0;
		const plist *res = &c->res[c->q->root];
		size_t base = ncand;
		for (size_t j = 0; j < res->n; j++) {
			cand x = { .score = res->sc[j], .doc = res->d[j] };
			if ((rc = docinfo(c, x.doc, &x.key, NULL)))
				break;
			if (!in_window(q, &wlo, &whi, &x.key))
				continue;
			if (c->relevance && root_exact) {
				/* relevance visits every range: total is exact, and
				 * only versions that still exist count (the check is
				 * the one the page would make) */
				int a = c->all_live ? 1 : accept_cand(c, &x, false);
				if (a < 0) {
					rc = a;
					break;
				}
				if (!a)
					continue;
				x.ok = true;
			}
			seen++;
			if (!past_cursor(q, &x, cs, &ck)) {
				if (!c->relevance && root_exact && !c->all_live &&
				    (rc = deferred_add(c, &dfr, &x.key)))
					break;
				continue;
			}
			if (c->relevance && ncand == maxcand &&
			    (rc = keep_best(c, cands, &ncand, pg.cap, !root_exact)))
				break;
			if (ncand == ccand) {
				size_t nc = ccand ? ccand * 2 : 1024;
				cand *nv = realloc(cands, nc * sizeof *nv);
				if (!nv) {
					rc = -ENOMEM;
					break;
				}
				cands = nv;
				ccand = nc;
			}
			cands[ncand++] = x;
		}
		if (rc || c->relevance)
			continue;
		/* newest/oldest: fill the page from this range, best first */
		if (ncand > base)
			qsort(cands + base, ncand - base, sizeof *cands,
			      q->order == NA_ORDER_NEWEST ? cmp_newest : cmp_oldest);
		size_t j = base;
		for (; j < ncand; j++) {
			if (pg.n == pg.cap && ordcmp(q, &cands[j], &pg.v[pg.n - 1]) >= 0)
				break;
			int a = accept_cand(c, &cands[j], !exact);
			if (a < 0) {
				rc = a;
				break;
			}
			if (a)
				page_insert(q, &pg, &cands[j]);
			else if (root_exact)
				dfr.dead++; /* counted in seen, but gone */
		}
		/* the rest were counted without a check */
		for (; j < ncand && rc == 0 && root_exact && !c->all_live; j++)
			rc = deferred_add(c, &dfr, &cands[j].key);
		ncand = 0;
	}
	if (rc == 0 && c->relevance) {
		rc = keep_best(c, cands, &ncand, pg.cap, !root_exact);
		for (size_t j = 0; rc == 0 && j < ncand; j++)
			pg.v[pg.n++] = cands[j];
	}
	/* every range visited: total is exact, without the versions gone */
	if (rc == 0 && all_visited && root_exact)
		rc = deferred_check(c, &dfr);
	free(dfr.k);
	free(cands);
	free(sbs);
	if (rc) {
		free(pg.v);
		return rc;
	}
	seen -= dfr.dead < seen ? dfr.dead : seen;
	uint64_t total = seen;
	if (!all_visited && visited_docs)
		total = (uint64_t)((double)seen * (double)eligible_docs / (double)visited_docs + 0.5);
	size_t out = pg.n > q->limit ? q->limit : pg.n;
	msgpack_pack_map(pk, 3);
	na_mp_pack_cstr(pk, "articles");
	msgpack_pack_array(pk, (uint32_t)out);
	for (size_t i = 0; i < out && rc == 0; i++)
		rc = pack_article(c, pk, &pg.v[i]);
	if (rc == 0) {
		na_mp_pack_cstr(pk, "total");
		msgpack_pack_uint64(pk, total);
		na_mp_pack_cstr(pk, "next");
		if (pg.n > q->limit) {
			const cand *last = &pg.v[q->limit - 1];
			if (c->relevance) {
				uint8_t b[24];
				uint64_t bits;
				memcpy(&bits, &last->score, 8);
				na_be64_put(b, bits);
				memcpy(b + 8, last->key.b, 16);
				msgpack_pack_bin(pk, 24);
				msgpack_pack_bin_body(pk, b, 24);
			} else {
				msgpack_pack_bin(pk, 16);
				msgpack_pack_bin_body(pk, last->key.b, 16);
			}
		} else {
			msgpack_pack_nil(pk);
		}
	}
	free(pg.v);
	return rc;
}

int na_search_run(na_store *s, na_analyzer *a, const na_search_q *sq, msgpack_packer *pk,
		  char *err, size_t errlen)
{
	na_query *q = malloc(sizeof *q);
	ctx *c = calloc(1, sizeof *c);
	if (!q || !c) {
		free(q);
		free(c);
		return -ENOMEM;
	}
	if (na_query_parse(sq->q, sq->qlen, a, q, err, errlen)) {
		free(q);
		free(c);
		return -EINVAL;
	}
	if (!s->have_index) {
		na_query_free(q);
		free(q);
		free(c);
		snprintf(err, errlen, "this archive has no search index");
		return -EINVAL;
	}
	c->s = s;
	c->a = a;
	c->q = q;
	c->sq = sq;
	c->err = err;
	c->errlen = errlen;
	/* the archive first: an index snapshot as new or newer covers every
	 * article the archive's snapshot can show (a hit whose article is
	 * not in the archive's snapshot is skipped, as a deleted one is) */
	int rc = na_store_rbegin(s, &c->txn);
	if (rc == 0 && (rc = na_store_ixbegin(s, &c->itxn)) != 0)
		na_store_rend(s, c->txn);
	if (rc == 0) {
		/* the reply is packed into a side buffer: an error midway must not
		 * leave half a reply in pk */
		msgpack_sbuffer sb;
		msgpack_sbuffer_init(&sb);
		msgpack_packer tp;
		msgpack_packer_init(&tp, &sb, msgpack_sbuffer_write);
		rc = run(c, &tp);
		if (c->cur)
			mdb_cursor_close(c->cur);
		if (c->scur)
			mdb_cursor_close(c->scur);
		if (c->bcur)
			mdb_cursor_close(c->bcur);
		if (c->acur)
			mdb_cursor_close(c->acur);
		na_store_ixend(s, c->itxn);
		na_store_rend(s, c->txn);
		if (rc == 0)
			na_mp_pack_raw(pk, sb.data, sb.size);
		msgpack_sbuffer_destroy(&sb);
	}
	for (size_t i = 0; i < c->nterms; i++) {
		free(c->terms[i].cd);
		free(c->terms[i].ctf);
	}
	free(c->terms);
	free(c->groups);
	for (size_t i = 0; i < NA_QUERY_MAX_NODES; i++)
		plist_free(&c->res[i]);
	plist_free(&c->tmp);
	plist_free(&c->tmp2);
	free(c->dec.data);
	free(c->lblk);
	na_query_free(q);
	free(q);
	free(c);
	return rc;
}
