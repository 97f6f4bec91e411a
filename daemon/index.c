/*
 * index.c - the full-text index and the indexer that maintains it.
 *
 * Design
 * ======
 *
 * Documents. Every article version the indexer sees gets the next docid, a
 * dense 32-bit number in indexing order. ixdocs maps docids, 16 to a value,
 * to the article key and the number of words (for BM25); ixrange keeps, per
 * 1024 docids, the lowest and highest article key among them, so a query
 * learns which docid ranges can hold articles of its time window without
 * touching a posting. A live feed is indexed roughly in publication order,
 * so ranges are narrow and a newest-first query stops after the first one
 * or two; a backfill of old articles only widens the ranges (queries stay
 * exact, they just visit more of them).
 *
 * Postings. A term's list is cut into chunks of at most NA_POST_CHUNK_MAX
 * postings keyed term + 0x00 + first docid, so one seek finds the chunk
 * holding a docid and a query reads only the chunks of the docid ranges it
 * visits. A chunk is delta + varint coded (index.h); the term frequency
 * rides in the low bit of the delta when it is 1, the usual case. Term keys
 * carry their field and, for text, the language of the stem, so a query
 * word is looked up once per language present, each time stemmed the way
 * that language's articles were.
 *
 * Segments. Every batch tops up the last chunk of each term it touches, so
 * a table that takes batches is rewritten all over its key space: LMDB
 * splits pages wherever they overflow and such a table settles near 60%
 * full, and every batch dirties (and the commit writes and syncs) most of
 * its pages. The docids are therefore cut into segments of 2^segshift
 * (index_segment, 8,192 by default) in two tiers:
 *   - the newest segment lives in ixpost and takes the batches; a batch
 *     never crosses a segment boundary, and ixpost stays small, so a batch
 *     dirties a few hundred pages at most;
 *   - once full, a segment is sealed: its chunks move, in key order, to
 *     the end of ixsealed under the segment number (appends fill LMDB
 *     pages to ~96%), and ixpost is emptied, in one transaction;
 *   - once 16 sealed segments exist (NA_IX_MERGE_SHIFT), they are merged:
 *     per term their chunks are decoded in docid order, re-cut into full
 *     chunks and appended to ixbig under the merged segment's number, and
 *     ixsealed is emptied. Many small segments would repeat each term's
 *     key and a partial chunk per segment; merged ones keep that overhead
 *     to one per 131,072 docids.
 * A query reads the chunks of a docid range from the segment holding it
 * (search.c: cont_of); a document frequency or a prefix expansion goes
 * over every segment. ixdocs and ixrange only grow at their end and are
 * appended to the same way. On the Reuters corpus x20 this took the index
 * from 234 to 186 bytes per article and the durable ingest (with the
 * indexer running) from ~63k to ~75k articles/s.
 *
 * Deletes and replacements. Keys name immutable versions (key.h), so the
 * postings of a key are always exactly the terms of that version. A deleted
 * or replaced version is not removed from the postings (that would need a
 * forward index, ~60 more bytes per article); instead the search checks
 * that every article it returns still exists under its key (one B-tree
 * lookup, done anyway to read the article), so no stale hit is ever
 * returned. The indexer counts such dead versions (stats "index.dead");
 * `reindex` rebuilds without them. BM25 statistics count them until then;
 * a search's "total", where it is exact, does not (search.c looks up every
 * version it counts).
 *
 * Its own environment. The index lives in DIR/index, an LMDB environment
 * of its own that only the indexer thread writes. It used to be tables of
 * the archive's environment, its batches applied by the writer thread:
 * then every article write queued behind index commits of a few hundred
 * pages and their fsyncs (replica lag p99 65 ms at 5,000 articles/s). Now
 * the two commit side by side and a put's reply waits only for the
 * articles' commit. Four more things keep the index out of the writes'
 * way, since it can wait and they cannot:
 *   - its commits are not fsynced one by one but about once a second
 *     (store.c: a marker file tells a torn index after a machine crash,
 *     which is then rebuilt), so the disk serves the writer's fsyncs;
 *   - once caught up it lets new writes gather for index_refresh_ms (1 s
 *     by default, the refresh interval of common search servers) before
 *     indexing them, unless a search waits for them (na_indexer_hurry): a
 *     batch of 5 articles dirties nearly as many pages as one of 5,000,
 *     and re-encodes the newest segment's partial chunk of every term it
 *     holds, so under a steady trickle of writes the index's CPU and pages
 *     fall with the length of the wait (5,000 articles/s: a follower's CPU
 *     went from ~37% to ~21% of a core between 100 ms and 1 s);
 *   - its thread runs at nice IX_NICE, so the writer, the event loop and
 *     the workers get the CPU first when they want it;
 *   - it never takes the last of the filesystem (na_store_ix_room): it
 *     waits, and a delete that frees space still finds room.
 *
 * Following the log. The indexer thread reads the local change log after
 * its position and the articles the entries name, in one read transaction
 * of the archive, analyses them into the batch builder, ends that
 * transaction, then in one write transaction of the index environment
 * reads the chunks it tops up, writes the new ones, the docs and ranges,
 * and its new position (ix_seq): the index and its position commit
 * together, so a crash never skips or repeats an entry. On a follower the
 * same happens with the entries it applied.
 *
 * Staying in step with the archive. The index meta records the archive id
 * and the archive's "ix_epoch" it was built against; the writer bumps that
 * epoch when a follower's snapshot replaces the articles
 * (na_index_invalidate). The index is rebuilt when either differs, when it
 * claims a position past the archive's last seq (the archive lost commits:
 * relaxed durability and a crash, or a backup restored under an old
 * index), or when the index directory is new (a restored backup: backups
 * copy the archive only).
 *
 * Rebuilds (reindex, a follower's snapshot, a log trimmed past the
 * position, an archive that predates the index). The index is dropped and the
 * articles table is scanned in key order, a chunk per read transaction so
 * no transaction stays open for long. Writes continue meanwhile; afterwards
 * the log is replayed from the seq at which the index was dropped. A put
 * entry e of key K is then skipped when the scan chunk covering K was read
 * at a seq >= e (the scan saw K, or K was already gone). The chunk list
 * lives in memory: a restart during a rebuild starts it over. A chunk
 * whose commit fails (no room on the filesystem, a full map: the indexer
 * waits and retries) leaves the scan where it was, so the retry reads the
 * same articles again. While rebuilding the index covers nothing (position
 * 0), so searches that ask for a min_seq wait for it (one found covered
 * just before the rebuild began sees ix_rebuild in its own snapshot and
 * answers TIMEOUT: search.c); others see partial results.
 */
#include "index.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "rpc.h"
#include "store.h"

#define BATCH_ARTICLES 8192
#define BATCH_ENTRIES 40000
#define IX_SYNC_MS 1000 /* commits are synced at least this often */
#define IX_NICE 10      /* the indexer thread's nice value */

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- varints and keys ------------------------------------------------ */

static size_t put_varint(uint8_t *p, uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

static int get_varint(const uint8_t **pp, const uint8_t *end, uint64_t *v)
{
	const uint8_t *p = *pp;
	uint64_t r = 0;
	for (unsigned shift = 0; shift < 64; shift += 7) {
		if (p >= end)
			return -1;
		uint8_t b = *p++;
		r |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*pp = p;
			*v = r;
			return 0;
		}
	}
	return -1;
}

static void be32_put(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t be32_get(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

size_t na_ix_term_key(uint8_t *out, int field, const char *lang, const char *term, size_t n)
{
	size_t o = 0;
	out[o++] = (uint8_t)field;
	if (field == NA_IXF_TEXT || field == NA_IXF_TITLE) {
		out[o++] = lang[0] ? (uint8_t)lang[0] : '-';
		out[o++] = lang[0] ? (uint8_t)lang[1] : '-';
	}
	if (n > NA_EXACT_MAX)
		n = NA_EXACT_MAX;
	memcpy(out + o, term, n);
	return o + n;
}

/* ---- posting codec ----------------------------------------------------- */

static unsigned bit_width(uint32_t v)
{
	return v ? 32u - (unsigned)__builtin_clz(v) : 0;
}

size_t na_post_encode(uint8_t *out, size_t cap, uint32_t base, const uint32_t *docs,
		      const uint16_t *tfs, uint32_t n)
{
	if (n == 0 || docs[0] < base)
		return 0;
	bool anytf = false;
	uint32_t maxgap = 0;
	for (uint32_t i = 0; i < n; i++) {
		if (tfs[i] == 0)
			return 0;
		anytf |= tfs[i] > 1;
		if (i > 0) {
			if (docs[i] <= docs[i - 1])
				return 0;
			uint32_t g = docs[i] - docs[i - 1] - 1;
			if (g > maxgap)
				maxgap = g;
		}
	}
	unsigned w = bit_width(maxgap);
	size_t packed = n > 1 ? ((size_t)(n - 1) * w + 7) / 8 : 0;
	uint8_t tmp[16];
	size_t o = put_varint(tmp, (uint64_t)n << 1 | anytf);
	o += put_varint(tmp + o, docs[0] - base);
	if (o > cap)
		return 0;
	memcpy(out, tmp, o);
	if (n > 1) {
		if (o + 1 + packed > cap)
			return 0;
		out[o++] = (uint8_t)w;
		uint8_t *q = out + o;
		uint64_t acc = 0;
		unsigned nb = 0;
		for (uint32_t i = 1; i < n && w; i++) {
			acc |= (uint64_t)(docs[i] - docs[i - 1] - 1) << nb;
			nb += w;
			while (nb >= 8) {
				*q++ = (uint8_t)acc;
				acc >>= 8;
				nb -= 8;
			}
		}
		if (nb)
			*q++ = (uint8_t)acc;
		o += packed;
	}
	if (anytf) {
		size_t bm = (n + 7) / 8;
		if (o + bm > cap)
			return 0;
		memset(out + o, 0, bm);
		for (uint32_t i = 0; i < n; i++)
			if (tfs[i] > 1)
				out[o + i / 8] |= (uint8_t)(1u << (i % 8));
		o += bm;
		for (uint32_t i = 0; i < n; i++) {
			if (tfs[i] < 2)
				continue;
			size_t k = put_varint(tmp, (uint64_t)tfs[i] - 2);
			if (o + k > cap)
				return 0;
			memcpy(out + o, tmp, k);
			o += k;
		}
	}
	return o;
}

int na_post_decode(const uint8_t *p, size_t len, uint32_t base, uint32_t *docs, uint16_t *tfs,
		   uint32_t cap, uint32_t *np)
{
	const uint8_t *end = p + len;
	uint64_t head, d0;
	if (get_varint(&p, end, &head) || get_varint(&p, end, &d0))
		return -1;
	uint64_t n = head >> 1;
	bool anytf = head & 1;
	if (n == 0 || n > cap || (uint64_t)base + d0 > UINT32_MAX)
		return -1;
	uint64_t cur = base + d0;
	docs[0] = (uint32_t)cur;
	if (n > 1) {
		if (p >= end)
			return -1;
		unsigned w = *p++;
		if (w > 32)
			return -1;
		size_t packed = ((size_t)(n - 1) * w + 7) / 8;
		if ((size_t)(end - p) < packed)
			return -1;
		const uint8_t *q = p;
		uint64_t acc = 0, mask = w == 32 ? 0xffffffffu : (1u << w) - 1;
		unsigned nb = 0;
		for (uint64_t i = 1; i < n; i++) {
			while (nb < w) { /* never past the packed bytes: see their count */
				acc |= (uint64_t)*q++ << nb;
				nb += 8;
			}
			uint64_t g = acc & mask;
			acc >>= w;
			nb -= w;
			cur += g + 1;
			if (cur > UINT32_MAX)
				return -1;
			docs[i] = (uint32_t)cur;
		}
		p += packed;
	}
	for (uint64_t i = 0; i < n; i++)
		tfs[i] = 1;
	if (anytf) {
		size_t bm = (size_t)(n + 7) / 8;
		if ((size_t)(end - p) < bm)
			return -1;
		const uint8_t *bits = p;
		p += bm;
		bool any = false;
		for (uint64_t i = 0; i < n; i++) {
			if (!(bits[i / 8] >> (i % 8) & 1))
				continue;
			uint64_t t;
			if (get_varint(&p, end, &t) || t > UINT16_MAX - 2)
				return -1;
			tfs[i] = (uint16_t)(t + 2);
			any = true;
		}
		if (!any)
			return -1;
	}
	if (p != end)
		return -1;
	*np = (uint32_t)n;
	return 0;
}

int64_t na_post_count(const uint8_t *p, size_t len)
{
	uint64_t n;
	if (get_varint(&p, p + len, &n) || (n >> 1) == 0 || (n >> 1) > UINT32_MAX)
		return -1;
	return (int64_t)(n >> 1);
}

/* ---- article fields ------------------------------------------------------ */

static int str_field(na_mp *r, na_ixstr *out)
{
	if (na_mp_peek(r) != NA_MP_STR)
		return na_mp_skip(r);
	return na_mp_str(r, &out->s, &out->n);
}

static int str_list(na_mp *r, na_ixstr *out, uint32_t *n)
{
	uint32_t k;
	if (na_mp_peek(r) != NA_MP_ARRAY)
		return na_mp_skip(r);
	if (na_mp_array(r, &k))
		return -1;
	for (uint32_t i = 0; i < k; i++) {
		if (na_mp_peek(r) == NA_MP_STR && *n < NA_IXDOC_MAX_NAMES) {
			if (na_mp_str(r, &out[*n].s, &out[*n].n))
				return -1;
			(*n)++;
		} else if (na_mp_skip(r)) {
			return -1;
		}
	}
	return 0;
}

int na_ixdoc_parse(const uint8_t *raw, size_t len, na_ixdoc *d)
{
	memset(d, 0, sizeof *d);
	na_mp r;
	na_mp_init(&r, raw, len);
	uint32_t n;
	if (na_mp_peek(&r) != NA_MP_MAP || na_mp_map(&r, &n))
		return -1;
	for (uint32_t i = 0; i < n; i++) {
		const char *k;
		uint32_t kn;
		if (na_mp_peek(&r) != NA_MP_STR || na_mp_str(&r, &k, &kn)) {
			if (na_mp_skip(&r) || na_mp_skip(&r))
				return -1;
			continue;
		}
		int rc;
		if (na_mp_streq(k, kn, "title"))
			rc = str_field(&r, &d->title);
		else if (na_mp_streq(k, kn, "summary"))
			rc = str_field(&r, &d->summary);
		else if (na_mp_streq(k, kn, "body"))
			rc = str_field(&r, &d->body);
		else if (na_mp_streq(k, kn, "source"))
			rc = str_field(&r, &d->source);
		else if (na_mp_streq(k, kn, "section"))
			rc = str_field(&r, &d->section);
		else if (na_mp_streq(k, kn, "authors"))
			rc = str_list(&r, d->authors, &d->nauthors);
		else if (na_mp_streq(k, kn, "tags"))
			rc = str_list(&r, d->tags, &d->ntags);
		else if (na_mp_streq(k, kn, "language")) {
			na_ixstr l = { 0 };
			rc = str_field(&r, &l);
			if (rc == 0 && l.s)
				na_lang_code(l.s, l.n, d->lang);
		} else
			rc = na_mp_skip(&r);
		if (rc)
			return -1;
	}
	return 0;
}

/* ---- batches: what the writer applies ----------------------------------- */

enum { T_META, T_POST, T_DOCS, T_RANGE, T_SEALED, T_BIG };
/* flags in the table byte of a batch entry */
#define OP_APPEND 0x80 /* the key sorts after every key of the table */
#define OP_DROP 0x40   /* empty the table (no key, no value) */
#define OP_TABLE 0x0f

typedef struct na_ixbatch {
	uint8_t *buf;   /* [table(1) klen(2) vlen(4) key val]... */
	size_t len, cap;
} na_ixbatch;

static int batch_put(na_ixbatch *b, int table, const void *k, size_t kl, const void *v, size_t vl)
{
	size_t need = 7 + kl + vl;
	if (b->cap - b->len < need) {
		size_t nc = b->cap ? b->cap : 1 << 16;
		while (nc - b->len < need)
			nc *= 2;
		uint8_t *nb = realloc(b->buf, nc);
		if (!nb)
			return -ENOMEM;
		b->buf = nb;
		b->cap = nc;
	}
	uint8_t *p = b->buf + b->len;
	p[0] = (uint8_t)table;
	p[1] = (uint8_t)(kl >> 8);
	p[2] = (uint8_t)kl;
	be32_put(p + 3, (uint32_t)vl);
	memcpy(p + 7, k, kl);
	if (vl)
		memcpy(p + 7 + kl, v, vl);
	b->len += need;
	return 0;
}

static int batch_put_u64(na_ixbatch *b, const char *name, uint64_t v)
{
	uint8_t vb[8];
	na_be64_put(vb, v);
	return batch_put(b, T_META, name, strlen(name), vb, 8);
}

/* Applies a batch's puts in a write transaction of the index environment. */
static int apply_batch(na_store *s, MDB_txn *txn, const na_ixbatch *b)
{
	MDB_dbi dbi[] = { s->ixmeta, s->ixpost, s->ixdocs, s->ixrange, s->ixsealed, s->ixbig };
	int rc = 0;
	for (size_t off = 0; off < b->len;) {
		const uint8_t *p = b->buf + off;
		size_t kl = (size_t)p[1] << 8 | p[2], vl = be32_get(p + 3);
		MDB_val k = { kl, (void *)(p + 7) }, v = { vl, (void *)(p + 7 + kl) };
		MDB_dbi d = dbi[p[0] & OP_TABLE];
		if (p[0] & OP_DROP)
			rc = mdb_drop(txn, d, 0);
		else if ((rc = mdb_put(txn, d, &k, &v, p[0] & OP_APPEND ? MDB_APPEND : 0)) == MDB_KEYEXIST)
			rc = mdb_put(txn, d, &k, &v, 0); /* not past the end after all */
		if (rc)
			return rc;
		off += 7 + kl + vl;
	}
	return 0;
}

int na_index_invalidate(na_store *s, MDB_txn *txn)
{
	uint64_t epoch;
	int rc = na_meta_get_u64(s, txn, "ix_epoch", &epoch);
	return rc ? rc : na_meta_put_u64(s, txn, "ix_epoch", epoch + 1);
}

/* ---- building a batch ------------------------------------------------------ */

typedef struct trip {
	uint32_t term, doc;
	uint16_t tf;
} trip;

typedef struct docinfo {
	na_key key;
	uint16_t len;
} docinfo;

/* An interned term: where its key lies in the arena, and 1 + the docid that
 * last used it with the index of that posting in trips. */
typedef struct tinfo {
	uint32_t off;
	uint16_t len;
	uint32_t last;
	uint32_t trip;
} tinfo;

/* A term of the article being analysed, its key at pbytes + off. */
typedef struct pend {
	uint64_t h;
	uint32_t off;
	uint16_t len;
} pend;

typedef struct builder {
	/* interned term keys */
	uint8_t *arena;
	size_t alen, acap;
	tinfo *terms;        /* per term id, one cache line holds four */
	uint32_t nterms, tcap;
	uint64_t *slots;     /* hash table: high 32 bits of the hash, term id + 1 */
	uint32_t nslots;
	/* postings of the batch */
	trip *trips;
	size_t ntrips, ctrips;
	/* the article being added: its terms in order, with their hashes */
	pend *pend;
	size_t npend, cpend;
	uint8_t *pbytes;
	size_t plen, pcap;
	uint32_t doc;        /* the article being added */
	uint64_t key[2];     /* the secret of hash_bytes */
	docinfo *docs;
	size_t ndocs, cdocs;
} builder;

static void builder_clear(builder *b)
{
	b->alen = 0;
	b->nterms = 0;
	b->ntrips = 0;
	b->ndocs = 0;
	if (b->slots)
		memset(b->slots, 0, sizeof *b->slots * b->nslots);
}

static void builder_free(builder *b)
{
	free(b->arena);
	free(b->terms);
	free(b->slots);
	free(b->trips);
	free(b->pend);
	free(b->pbytes);
	free(b->docs);
	memset(b, 0, sizeof *b);
}

/*
 * The batch's term table hashes terms that come from article text, which
 * anyone who can write an article chooses; an unkeyed hash would let crafted
 * text pile terms onto one probe chain and stall the indexer. The hash is
 * keyed with a secret drawn per indexer: each 8-byte word goes through a
 * 64x64->128-bit multiply with the key folded in, whose collisions cannot
 * be aimed without the key.
 */
static inline uint64_t mix(uint64_t a, uint64_t b)
{
	unsigned __int128 r = (unsigned __int128)a * b;
	return (uint64_t)r ^ (uint64_t)(r >> 64);
}

static uint64_t hash_bytes(const uint64_t key[2], const uint8_t *p, size_t n)
{
	uint64_t h = key[0] ^ (n * 0x9e3779b97f4a7c15ull);
	while (n > 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		h = mix(w ^ key[1], h ^ 0xa0761d6478bd642full);
		p += 8;
		n -= 8;
	}
	uint64_t w = 0;
	memcpy(&w, p, n);
	return mix(w ^ key[1] ^ 0xe7037ed1a0b428dbull, h ^ key[0]);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	size_t nc = *cap ? *cap : 1024;
	while (nc < need)
		nc *= 2;
	void *np = realloc(*p, nc * elem);
	if (!np)
		return -ENOMEM;
	*p = np;
	*cap = nc;
	return 0;
}

static int rehash(builder *b, uint32_t nslots)
{
	uint64_t *ns = calloc(nslots, sizeof *ns);
	if (!ns)
		return -ENOMEM;
	for (uint32_t id = 0; id < b->nterms; id++) {
		uint64_t h = hash_bytes(b->key, b->arena + b->terms[id].off, b->terms[id].len);
		uint32_t i = (uint32_t)h & (nslots - 1);
		while (ns[i])
			i = (i + 1) & (nslots - 1);
		ns[i] = (h & 0xffffffff00000000ull) | (id + 1);
	}
	free(b->slots);
	b->slots = ns;
	b->nslots = nslots;
	return 0;
}

static int intern(builder *b, const uint8_t *k, size_t n, uint64_t h, uint32_t *id)
{
	if ((uint64_t)(b->nterms + 1) * 2 > b->nslots && rehash(b, b->nslots ? b->nslots * 2 : 1 << 14))
		return -ENOMEM;
	uint64_t tag = h & 0xffffffff00000000ull;
	uint32_t i = (uint32_t)h & (b->nslots - 1);
	while (b->slots[i]) {
		uint64_t sl = b->slots[i];
		uint32_t t = (uint32_t)sl - 1;
		if ((sl & 0xffffffff00000000ull) == tag && b->terms[t].len == n &&
		    memcmp(b->arena + b->terms[t].off, k, n) == 0) {
			*id = t;
			return 0;
		}
		i = (i + 1) & (b->nslots - 1);
	}
	size_t tcap = b->tcap;
	if (b->alen + n > UINT32_MAX ||
	    grow((void **)&b->arena, &b->acap, b->alen + n, 1) ||
	    grow((void **)&b->terms, &tcap, b->nterms + 1, sizeof *b->terms))
		return -ENOMEM;
	b->tcap = (uint32_t)tcap;
	memcpy(b->arena + b->alen, k, n);
	b->terms[b->nterms] = (tinfo){ .off = (uint32_t)b->alen, .len = (uint16_t)n };
	b->alen += n;
	b->slots[i] = tag | (b->nterms + 1);
	*id = b->nterms++;
	return 0;
}

/* ---- the indexer ------------------------------------------------------------ */

typedef struct scanchunk {
	na_key end;   /* last key of the chunk */
	bool last;    /* covers everything above the previous chunk */
	uint64_t sc;  /* seq of the read transaction */
} scanchunk;

struct na_indexer {
	na_store *s;
	na_ix_notify notify;
	void *arg;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop, reindex, started;
	uint64_t hurry;    /* a search waits for the index to cover this seq */
	bool no_room;      /* waiting for space on the filesystem */
	uint64_t head;
	uint64_t synced_ms; /* when the index was last synced */
	/* the committed state (mirrors the index meta); epoch is the archive's
	 * ix_epoch the index was built against */
	uint64_t seq, next, lensum, dead, epoch;
	uint64_t sealed;   /* segments sealed (in ixsealed, or merged into ixbig) */
	uint64_t merged;   /* merged segments in ixbig (NA_IX_MERGE sealed each) */
	unsigned segshift; /* log2 of the docids per segment */
	bool rebuild;
	char langs[128];
	size_t nlangs;     /* bytes in langs (2 per language) */
	uint64_t covers;   /* read by other threads (atomic) */
	na_ixstate state;
	uint64_t scanned, batches;
	/* rebuild */
	bool scanning;
	bool scan_started;
	na_key scan_key;
	scanchunk *chunks;
	size_t nchunks, cchunks;
	uint64_t replay_until;
	/* scratch */
	na_analyzer *an;
	builder b;
	na_buf dec;
	uint32_t *pdocs;
	uint16_t *ptfs;
	size_t pcap;
	na_ixbatch ob;     /* the batch being written */
};

const char *na_ixstate_name(na_ixstate s)
{
	switch (s) {
	case NA_IX_READY: return "ready";
	case NA_IX_CATCHING_UP: return "catching up";
	case NA_IX_REBUILDING: return "rebuilding";
	case NA_IX_WAITING: return "waiting for the snapshot";
	}
	return "?";
}

/* Applies the batch x->ob in txn (a write transaction of the index
 * environment) and commits; the index then covers the log up to covers
 * (0: a rebuild is under way), unless a reindex was asked for meanwhile.
 * The transaction is gone on return. 0 or an LMDB error. */
static int ix_commit(na_indexer *x, MDB_txn *txn, uint64_t covers)
{
	int rc = 0;
	if (!na_store_ix_room(x->s, x->ob.len)) {
		if (!x->no_room)
			log_warn("index: the filesystem is nearly full; the index waits for space");
		x->no_room = true;
		rc = -ENOSPC;
	} else if (x->no_room) {
		x->no_room = false;
		log_info("index: space again; indexing resumes");
	}
	if (rc == 0)
		rc = apply_batch(x->s, txn, &x->ob);
	x->ob.len = 0;
	if (rc == 0)
		rc = na_store_ix_mark(x->s);
	if (rc) {
		mdb_txn_abort(txn);
	} else if ((rc = mdb_txn_commit(txn)) == 0) {
		uint64_t now = now_ms();
		if (now - x->synced_ms >= IX_SYNC_MS) {
			if (na_store_ix_sync(x->s) == 0)
				x->synced_ms = now;
		}
		pthread_mutex_lock(&x->mu);
		if (!x->reindex)
			__atomic_store_n(&x->covers, covers, __ATOMIC_RELEASE);
		pthread_mutex_unlock(&x->mu);
		if (x->notify && covers)
			x->notify(x->arg, covers);
	}
	if (rc == MDB_MAP_FULL)
		log_error("index: its environment is full (max_map_size); searches lag the archive");
	return rc;
}

static int load_state(na_indexer *x)
{
	na_store *s = x->s;
	MDB_txn *st, *it;
	int rc = na_store_rbegin(s, &st);
	if (rc)
		return rc;
	if ((rc = na_store_ixbegin(s, &it))) {
		na_store_rend(s, st);
		return rc;
	}
	uint64_t rebuild = 0, seq = 0, shift = 0, epoch = 0;
	MDB_val v;
	bool fresh = na_ixmeta_get(s, it, "ix_epoch", &v) == MDB_NOTFOUND;
	bool has_shift = na_ixmeta_get(s, it, "ix_segshift", &v) == 0;
	bool same = na_ixmeta_get(s, it, "archive_id", &v) == 0 && v.mv_size == 16 &&
		    memcmp(v.mv_data, s->archive_id, 16) == 0;
	if ((rc = na_ixmeta_get_u64(s, it, "ix_seq", &x->seq)) ||
	    (rc = na_ixmeta_get_u64(s, it, "ix_next", &x->next)) ||
	    (rc = na_ixmeta_get_u64(s, it, "ix_len", &x->lensum)) ||
	    (rc = na_ixmeta_get_u64(s, it, "ix_dead", &x->dead)) ||
	    (rc = na_ixmeta_get_u64(s, it, "ix_epoch", &x->epoch)) ||
	    (rc = na_ixmeta_get_u64(s, it, "ix_rebuild", &rebuild)) ||
	    (rc = na_ixmeta_get_u64(s, it, "ix_sealed", &x->sealed)) ||
	    (rc = na_ixmeta_get_u64(s, it, "ix_merged", &x->merged)) ||
	    (rc = na_ixmeta_get_u64(s, it, "ix_segshift", &shift)) ||
	    (rc = na_meta_get_u64(s, st, "ix_epoch", &epoch)) ||
	    (rc = na_meta_get_u64(s, st, "seq", &seq)))
		goto out;
	x->segshift = has_shift && shift >= 4 && shift <= 24 ? (unsigned)shift : s->ix_segshift;
	x->nlangs = 0;
	if (na_ixmeta_get(s, it, "ix_langs", &v) == 0 && v.mv_size && v.mv_size <= sizeof x->langs &&
	    v.mv_size % 2 == 0) {
		memcpy(x->langs, v.mv_data, v.mv_size);
		x->nlangs = v.mv_size;
	}
	/* a new index directory (a new archive, one from before the index
	 * had its own environment, a restored backup), a rebuild cut short,
	 * an index from before segments, or one of other articles than
	 * these: build it from the articles */
	x->rebuild = fresh || rebuild != 0 || !has_shift || !same || x->epoch != epoch ||
		     x->seq > seq;
	atomic_store(&s->ix_unfit, x->rebuild && !rebuild);
	if (!fresh && x->rebuild && !rebuild)
		log_info("index: built for %s; rebuilding",
			 !has_shift ? "an older layout"
			 : !same || x->epoch != epoch ? "other articles (a snapshot or a restore replaced them)"
						      : "log entries the archive no longer has");
	x->scanning = false;
	x->nchunks = 0;
	pthread_mutex_lock(&x->mu);
	if (seq > x->head)
		x->head = seq;
	pthread_mutex_unlock(&x->mu);
out:
	na_store_ixend(s, it);
	na_store_rend(s, st);
	__atomic_store_n(&x->covers, x->rebuild ? 0 : x->seq, __ATOMIC_RELEASE);
	return rc;
}

static bool has_lang(na_indexer *x, const char *code)
{
	char c[2] = { code[0] ? code[0] : '-', code[0] ? code[1] : '-' };
	for (size_t i = 0; i < x->nlangs; i += 2)
		if (x->langs[i] == c[0] && x->langs[i + 1] == c[1])
			return true;
	if (x->nlangs + 2 > sizeof x->langs)
		return true; /* full (cannot happen: ~30 codes) */
	x->langs[x->nlangs++] = c[0];
	x->langs[x->nlangs++] = c[1];
	return false;
}

typedef struct tokctx {
	na_indexer *x;
	const char *lang;
	bool title;
	uint32_t words;
	int err;
} tokctx;

static int add_term(builder *b, const uint8_t *k, size_t n, uint64_t h)
{
	uint32_t id;
	if (intern(b, k, n, h, &id))
		return -ENOMEM;
	tinfo *ti = &b->terms[id];
	if (ti->last == b->doc + 1) {
		trip *t = &b->trips[ti->trip];
		if (t->tf < UINT16_MAX)
			t->tf++;
		return 0;
	}
	if (b->ntrips >= UINT32_MAX ||
	    grow((void **)&b->trips, &b->ctrips, b->ntrips + 1, sizeof *b->trips))
		return -ENOMEM;
	b->trips[b->ntrips] = (trip){ id, b->doc, 1 };
	ti->last = b->doc + 1;
	ti->trip = (uint32_t)b->ntrips++;
	return 0;
}

/* Queues a term of the article being analysed (add_queued adds them). */
static int queue_term(na_indexer *x, const uint8_t *k, size_t n)
{
	builder *b = &x->b;
	if (grow((void **)&b->pend, &b->cpend, b->npend + 1, sizeof *b->pend) ||
	    grow((void **)&b->pbytes, &b->pcap, b->plen + n, 1))
		return -ENOMEM;
	memcpy(b->pbytes + b->plen, k, n);
	b->pend[b->npend++] = (pend){ hash_bytes(b->key, k, n), (uint32_t)b->plen, (uint16_t)n };
	b->plen += n;
	return 0;
}

/* How many terms ahead add_queued prefetches the hash table's slot. */
#define PREFETCH_AHEAD 8

/* Adds the article's queued terms to the batch, in order. A batch's term
 * table outgrows the caches, and a lookup was mostly a wait for its slot:
 * the slot of the term PREFETCH_AHEAD places on is fetched meanwhile. */
static int add_queued(na_indexer *x)
{
	builder *b = &x->b;
	int rc = 0;
	for (size_t j = 0; j < b->npend && rc == 0; j++) {
		if (j + PREFETCH_AHEAD < b->npend && b->nslots)
			__builtin_prefetch(&b->slots[(uint32_t)b->pend[j + PREFETCH_AHEAD].h &
						     (b->nslots - 1)]);
		rc = add_term(b, b->pbytes + b->pend[j].off, b->pend[j].len, b->pend[j].h);
	}
	b->npend = 0;
	b->plen = 0;
	return rc;
}

static int on_token(const na_token *t, void *arg)
{
	tokctx *c = arg;
	uint8_t k[NA_IX_TERMKEY_MAX];
	size_t n = na_ix_term_key(k, NA_IXF_TEXT, c->lang, t->term, t->len);
	c->words++;
	if (queue_term(c->x, k, n))
		return -ENOMEM;
	if (c->title) {
		n = na_ix_term_key(k, NA_IXF_TITLE, c->lang, t->term, t->len);
		if (queue_term(c->x, k, n))
			return -ENOMEM;
	}
	return 0;
}

static int add_exact(na_indexer *x, int field, const na_ixstr *v)
{
	if (!v->s)
		return 0;
	char norm[NA_EXACT_MAX];
	size_t n = na_exact_norm(x->an, v->s, v->n, norm);
	if (!n)
		return 0;
	uint8_t k[NA_IX_TERMKEY_MAX];
	size_t kl = na_ix_term_key(k, field, "", norm, n);
	return queue_term(x, k, kl);
}

/* Analyses one article version and adds it to the batch under docid
 * x->next + ndocs. */
static int add_doc(na_indexer *x, const na_key *key, const uint8_t *raw, size_t len)
{
	builder *b = &x->b;
	na_ixdoc d;
	if (na_ixdoc_parse(raw, len, &d))
		return 0; /* not an article map: nothing to index */
	has_lang(x, d.lang);
	b->doc = (uint32_t)(x->next + b->ndocs);
	size_t trips0 = b->ntrips;
	tokctx c = { .x = x, .lang = d.lang };
	uint32_t pos = 0;
	int rc = 0;
	const na_ixstr *text[] = { &d.title, &d.summary, &d.body };
	for (int f = 0; f < 3 && rc == 0; f++) {
		if (!text[f]->s)
			continue;
		c.title = f == 0;
		rc = na_analyze(x->an, text[f]->s, text[f]->n, d.lang, 1, pos, on_token, &c);
	}
	for (uint32_t i = 0; i < d.nauthors && rc == 0; i++)
		rc = add_exact(x, NA_IXF_AUTHOR, &d.authors[i]);
	for (uint32_t i = 0; i < d.ntags && rc == 0; i++)
		rc = add_exact(x, NA_IXF_TAG, &d.tags[i]);
	if (rc == 0)
		rc = add_exact(x, NA_IXF_SOURCE, &d.source);
	if (rc == 0)
		rc = add_exact(x, NA_IXF_SECTION, &d.section);
	if (rc == 0)
		rc = add_queued(x);
	b->npend = 0;
	b->plen = 0;
	if (rc) {
		/* drop this article's postings: the batch stays consistent */
		for (size_t i = trips0; i < b->ntrips; i++)
			b->terms[b->trips[i].term].last = 0;
		b->ntrips = trips0;
		return rc;
	}
	if (grow((void **)&b->docs, &b->cdocs, b->ndocs + 1, sizeof *b->docs))
		return -ENOMEM;
	b->docs[b->ndocs].key = *key;
	b->docs[b->ndocs].len = (uint16_t)(c.words > UINT16_MAX ? UINT16_MAX : c.words);
	b->ndocs++;
	x->lensum += c.words;
	return 0;
}

static int cmp_term(const void *a, const void *b, void *ctx)
{
	uint32_t i = *(const uint32_t *)a, j = *(const uint32_t *)b;
	const builder *B = ctx;
	size_t li = B->terms[i].len, lj = B->terms[j].len;
	int c = memcmp(B->arena + B->terms[i].off, B->arena + B->terms[j].off, li < lj ? li : lj);
	return c ? c : li < lj ? -1 : li > lj;
}

static int ensure_post(na_indexer *x, size_t n)
{
	if (n <= x->pcap)
		return 0;
	size_t nc = x->pcap ? x->pcap : 4096;
	while (nc < n)
		nc *= 2;
	uint32_t *d = realloc(x->pdocs, nc * sizeof *d);
	if (!d)
		return -ENOMEM;
	x->pdocs = d;
	uint16_t *t = realloc(x->ptfs, nc * sizeof *t);
	if (!t)
		return -ENOMEM;
	x->ptfs = t;
	x->pcap = nc;
	return 0;
}

/* Writes the postings of one term: into its last chunk while it has room,
 * then into new chunks. */
static int flush_term(na_indexer *x, MDB_cursor *cur, na_ixbatch *out, const uint8_t *tk, size_t tl,
		      const trip *t, size_t n)
{
	uint8_t key[NA_IX_TERMKEY_MAX + 5], val[NA_POST_CHUNK_MAX * 9 + 16];
	memcpy(key, tk, tl);
	key[tl] = 1; /* just past every chunk of this term */
	MDB_val k = { tl + 1, key }, v;
	int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	if (rc == 0)
		rc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
	else if (rc == MDB_NOTFOUND)
		rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
	if (rc && rc != MDB_NOTFOUND)
		return rc;
	size_t have = 0;
	uint32_t base = 0;
	if (rc == 0 && k.mv_size == tl + 5 && memcmp(k.mv_data, tk, tl) == 0 &&
	    ((const uint8_t *)k.mv_data)[tl] == 0) {
		base = be32_get((const uint8_t *)k.mv_data + tl + 1);
		int64_t cnt = na_post_count(v.mv_data, v.mv_size);
		if (cnt < 0)
			return MDB_CORRUPTED;
		if (cnt < NA_POST_CHUNK_MAX) {
			uint32_t got;
			if (ensure_post(x, NA_POST_CHUNK_MAX) ||
			    na_post_decode(v.mv_data, v.mv_size, base, x->pdocs, x->ptfs,
					   NA_POST_CHUNK_MAX, &got))
				return MDB_CORRUPTED;
			have = got;
		}
	}
	size_t i = 0;
	if (have) {
		/* top up the last chunk */
		while (i < n && have < NA_POST_CHUNK_MAX) {
			x->pdocs[have] = t[i].doc;
			x->ptfs[have] = t[i].tf;
			have++;
			i++;
		}
		size_t vl = na_post_encode(val, sizeof val, base, x->pdocs, x->ptfs, (uint32_t)have);
		if (!vl)
			return MDB_CORRUPTED;
		key[tl] = 0;
		be32_put(key + tl + 1, base);
		if ((rc = batch_put(out, T_POST, key, tl + 5, val, vl)))
			return rc;
	}
	while (i < n) {
		size_t m = n - i < NA_POST_CHUNK_MAX ? n - i : NA_POST_CHUNK_MAX;
		if (ensure_post(x, m))
			return -ENOMEM;
		for (size_t j = 0; j < m; j++) {
			x->pdocs[j] = t[i + j].doc;
			x->ptfs[j] = t[i + j].tf;
		}
		base = t[i].doc;
		size_t vl = na_post_encode(val, sizeof val, base, x->pdocs, x->ptfs, (uint32_t)m);
		if (!vl)
			return MDB_CORRUPTED;
		key[tl] = 0;
		be32_put(key + tl + 1, base);
		if ((rc = batch_put(out, T_POST, key, tl + 5, val, vl)))
			return rc;
		i += m;
	}
	return 0;
}

/* Turns the builder's content into puts (postings, docs, ranges). */
static int build_puts(na_indexer *x, MDB_txn *txn, na_ixbatch *out)
{
	builder *b = &x->b;
	na_store *s = x->s;
	int rc = 0;
	if (b->ndocs == 0)
		return 0;
	/* terms in key order, postings grouped per term (counting sort keeps
	 * each term's docids ascending) */
	uint32_t *order = malloc(sizeof *order * (b->nterms ? b->nterms : 1));
	uint32_t *rank = malloc(sizeof *rank * (b->nterms ? b->nterms : 1));
	size_t *start = calloc((size_t)b->nterms + 1, sizeof *start);
	trip *sorted = malloc(sizeof *sorted * (b->ntrips ? b->ntrips : 1));
	MDB_cursor *cur = NULL;
	if (!order || !rank || !start || !sorted) {
		rc = -ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < b->nterms; i++)
		order[i] = i;
	qsort_r(order, b->nterms, sizeof *order, cmp_term, b);
	for (uint32_t i = 0; i < b->nterms; i++)
		rank[order[i]] = i;
	for (size_t i = 0; i < b->ntrips; i++)
		start[rank[b->trips[i].term] + 1]++;
	for (uint32_t i = 0; i < b->nterms; i++)
		start[i + 1] += start[i];
	{
		size_t *fill = malloc(sizeof *fill * (b->nterms ? b->nterms : 1));
		if (!fill) {
			rc = -ENOMEM;
			goto out;
		}
		memcpy(fill, start, sizeof *fill * b->nterms);
		for (size_t i = 0; i < b->ntrips; i++)
			sorted[fill[rank[b->trips[i].term]]++] = b->trips[i];
		free(fill);
	}
	if ((rc = mdb_cursor_open(txn, s->ixpost, &cur)))
		goto out;
	for (uint32_t r = 0; r < b->nterms && rc == 0; r++) {
		uint32_t id = order[r];
		rc = flush_term(x, cur, out, b->arena + b->terms[id].off, b->terms[id].len, sorted + start[r],
				start[r + 1] - start[r]);
	}
	mdb_cursor_close(cur);
	cur = NULL;
	if (rc)
		goto out;
	/* docs: 16 per value; the first block may already hold some */
	uint32_t d0 = (uint32_t)x->next, d1 = (uint32_t)(x->next + b->ndocs);
	for (uint32_t blk = d0 >> NA_IX_DOCS_SHIFT; blk <= (d1 - 1) >> NA_IX_DOCS_SHIFT; blk++) {
		uint8_t val[(1u << NA_IX_DOCS_SHIFT) * NA_IX_DOC_BYTES];
		uint32_t first = blk << NA_IX_DOCS_SHIFT, n = 0;
		if (first < d0) {
			uint8_t kb[4];
			be32_put(kb, blk);
			MDB_val k = { 4, kb }, v;
			rc = mdb_get(txn, s->ixdocs, &k, &v);
			if (rc || v.mv_size != (size_t)(d0 - first) * NA_IX_DOC_BYTES) {
				rc = rc ? rc : MDB_CORRUPTED;
				goto out;
			}
			memcpy(val, v.mv_data, v.mv_size);
			n = d0 - first;
		}
		for (uint32_t d = first + n; d < first + (1u << NA_IX_DOCS_SHIFT) && d < d1; d++, n++) {
			const docinfo *di = &b->docs[d - d0];
			memcpy(val + n * NA_IX_DOC_BYTES, di->key.b, NA_KEY_BYTES);
			val[n * NA_IX_DOC_BYTES + 16] = (uint8_t)(di->len >> 8);
			val[n * NA_IX_DOC_BYTES + 17] = (uint8_t)di->len;
		}
		uint8_t kb[4];
		be32_put(kb, blk);
		/* a new block goes after every other: append (full pages) */
		int t = first < d0 ? T_DOCS : T_DOCS | OP_APPEND;
		if ((rc = batch_put(out, t, kb, 4, val, (size_t)n * NA_IX_DOC_BYTES)))
			goto out;
	}
	/* ranges: lowest and highest key per 1024 docids */
	for (uint32_t sb = d0 >> NA_IX_RANGE_SHIFT; sb <= (d1 - 1) >> NA_IX_RANGE_SHIFT; sb++) {
		uint8_t kb[4], val[32];
		be32_put(kb, sb);
		MDB_val k = { 4, kb }, v;
		bool have = false;
		rc = mdb_get(txn, s->ixrange, &k, &v);
		if (rc == 0 && v.mv_size == 32) {
			memcpy(val, v.mv_data, 32);
			have = true;
		} else if (rc && rc != MDB_NOTFOUND) {
			goto out;
		}
		bool have0 = have;
		rc = 0;
		uint32_t lo = sb << NA_IX_RANGE_SHIFT, hi = lo + (1u << NA_IX_RANGE_SHIFT);
		for (uint32_t d = lo > d0 ? lo : d0; d < hi && d < d1; d++) {
			const uint8_t *kk = b->docs[d - d0].key.b;
			if (!have || memcmp(kk, val, 16) < 0)
				memcpy(val, kk, 16);
			if (!have || memcmp(kk, val + 16, 16) > 0)
				memcpy(val + 16, kk, 16);
			have = true;
		}
		if ((rc = batch_put(out, have0 ? T_RANGE : T_RANGE | OP_APPEND, kb, 4, val, 32)))
			goto out;
	}
out:
	if (cur)
		mdb_cursor_close(cur);
	free(order);
	free(rank);
	free(start);
	free(sorted);
	return rc;
}

/* Ends the archive's read transaction *txn (the articles are analysed:
 * what the batch needs is in the builder), then writes the batch in one
 * transaction of the index environment: the chunks it tops up are read
 * there, and the new position, newseq, commits with them. 0 or an LMDB
 * error / negative errno. */
static int commit_batch(na_indexer *x, MDB_txn **txn, uint64_t newseq, bool rebuild_after,
			uint64_t dead)
{
	na_store_rend(x->s, *txn);
	*txn = NULL;
	MDB_txn *w;
	int rc = mdb_txn_begin(x->s->ixenv, NULL, 0, &w);
	if (rc)
		return rc;
	na_ixbatch *b = &x->ob;
	b->len = 0;
	if ((rc = build_puts(x, w, b)) || (rc = batch_put_u64(b, "ix_seq", newseq)) ||
	    (rc = batch_put_u64(b, "ix_next", x->next + x->b.ndocs)) ||
	    (rc = batch_put_u64(b, "ix_len", x->lensum)) || /* add_doc counted the batch */
	    (rc = batch_put_u64(b, "ix_dead", dead)) ||
	    (rc = batch_put_u64(b, "ix_rebuild", rebuild_after)) ||
	    (rc = batch_put_u64(b, "ix_segshift", x->segshift)) ||
	    (rc = batch_put(b, T_META, "ix_langs", 8, x->langs, x->nlangs))) {
		mdb_txn_abort(w);
		b->len = 0;
		return rc;
	}
	return ix_commit(x, w, rebuild_after ? 0 : newseq);
}

/* Articles the batch being built may still take. Batches end at segment
 * boundaries, so a segment is complete when it is sealed and no chunk
 * straddles two segments. */
static size_t batch_room(const na_indexer *x)
{
	uint64_t end = ((x->next >> x->segshift) + 1) << x->segshift;
	uint64_t r = end - x->next - x->b.ndocs;
	size_t cap = x->b.ndocs < BATCH_ARTICLES ? BATCH_ARTICLES - x->b.ndocs : 0;
	return r < cap ? (size_t)r : cap;
}

/* Seals the segment that just filled: moves its chunks from ixpost to the
 * end of ixsealed, under the segment number (appends, so its pages are
 * full), empties ixpost and counts the segment in ix_sealed, all in one
 * transaction of the index environment. 0 or an LMDB error / negative. */
static int seal_step(na_indexer *x)
{
	na_store *s = x->s;
	MDB_txn *txn;
	int rc = mdb_txn_begin(s->ixenv, NULL, 0, &txn);
	if (rc)
		return rc;
	MDB_cursor *cur = NULL;
	na_ixbatch *b = &x->ob;
	b->len = 0;
	uint64_t seg = x->sealed;
	if ((rc = mdb_cursor_open(txn, s->ixpost, &cur)))
		goto out;
	uint8_t key[4 + NA_IX_TERMKEY_MAX + 5];
	be32_put(key, (uint32_t)seg);
	MDB_val k, v;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size > NA_IX_TERMKEY_MAX + 5) {
			rc = MDB_CORRUPTED;
			break;
		}
		memcpy(key + 4, k.mv_data, k.mv_size);
		if ((rc = batch_put(b, T_SEALED | OP_APPEND, key, 4 + k.mv_size, v.mv_data, v.mv_size)))
			break;
	}
	if (rc != MDB_NOTFOUND)
		goto out;
	if ((rc = batch_put(b, T_POST | OP_DROP, key, 0, key, 0)) ||
	    (rc = batch_put_u64(b, "ix_sealed", seg + 1)))
		goto out;
	mdb_cursor_close(cur);
	if ((rc = ix_commit(x, txn, x->rebuild ? 0 : x->seq)) == 0) {
		x->sealed = seg + 1;
		log_debug("index: sealed segment %llu", (unsigned long long)seg);
	}
	return rc;
out:
	if (cur)
		mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	b->len = 0;
	return rc;
}

/* Merges the NA_IX_MERGE_SHIFT-th power of two sealed segments that come
 * after the merged ones (all of ixsealed: a merge runs as soon as they are
 * sealed, before any new batch) into one segment appended to ixbig: per
 * term, the chunks of the small segments are decoded in docid order and
 * re-cut into full chunks. ixsealed is emptied and ix_merged counts it, in
 * one transaction of the index environment. 0 or an LMDB error / negative. */
static int merge_step(na_indexer *x)
{
	enum { N = 1 << NA_IX_MERGE_SHIFT };
	na_store *s = x->s;
	MDB_txn *txn;
	int rc = mdb_txn_begin(s->ixenv, NULL, 0, &txn);
	if (rc)
		return rc;
	MDB_cursor *cur[N] = { 0 };
	MDB_val k[N], v[N];
	bool live[N];
	na_ixbatch *b = &x->ob;
	b->len = 0;
	uint64_t m = x->merged;
	/* one cursor per small segment, at its first chunk */
	for (int i = 0; i < N; i++) {
		uint8_t pk[4];
		be32_put(pk, (uint32_t)((m << NA_IX_MERGE_SHIFT) + (uint64_t)i));
		if ((rc = mdb_cursor_open(txn, s->ixsealed, &cur[i])))
			goto out;
		k[i] = (MDB_val){ 4, pk };
		rc = mdb_cursor_get(cur[i], &k[i], &v[i], MDB_SET_RANGE);
		if (rc && rc != MDB_NOTFOUND)
			goto out;
		live[i] = rc == 0 && k[i].mv_size >= 4 + 1 + 5 && memcmp(k[i].mv_data, pk, 4) == 0;
		rc = 0;
	}
	uint8_t key[4 + NA_IX_TERMKEY_MAX + 5], val[NA_POST_CHUNK_MAX * 9 + 16];
	be32_put(key, (uint32_t)m);
	while (rc == 0) {
		/* the smallest term among the heads */
		int lo = -1;
		size_t tl = 0;
		for (int i = 0; i < N; i++) {
			if (!live[i])
				continue;
			size_t l = k[i].mv_size - 4 - 5;
			if (l > NA_IX_TERMKEY_MAX) {
				rc = MDB_CORRUPTED;
				goto out;
			}
			if (lo < 0) {
				lo = i, tl = l;
				continue;
			}
			const uint8_t *a = (const uint8_t *)k[i].mv_data + 4, *b = (const uint8_t *)k[lo].mv_data + 4;
			int c = memcmp(a, b, l < tl ? l : tl);
			if (c < 0 || (c == 0 && l < tl))
				lo = i, tl = l;
		}
		if (lo < 0)
			break;
		memcpy(key + 4, (const uint8_t *)k[lo].mv_data + 4, tl);
		key[4 + tl] = 0;
		/* its postings, segment after segment (docids ascend) */
		size_t have = 0;
		for (int i = lo; i < N && rc == 0; i++) {
			while (live[i] && k[i].mv_size == 4 + tl + 5 &&
			       memcmp((const uint8_t *)k[i].mv_data + 4, key + 4, tl + 1) == 0) {
				int64_t cnt = na_post_count(v[i].mv_data, v[i].mv_size);
				uint32_t got;
				uint32_t base = be32_get((const uint8_t *)k[i].mv_data + 4 + tl + 1);
				if (cnt < 0 || ensure_post(x, have + (size_t)cnt) ||
				    na_post_decode(v[i].mv_data, v[i].mv_size, base, x->pdocs + have,
						   x->ptfs + have, (uint32_t)cnt, &got)) {
					rc = MDB_CORRUPTED;
					break;
				}
				have += got;
				uint8_t pk[4];
				memcpy(pk, k[i].mv_data, 4);
				rc = mdb_cursor_get(cur[i], &k[i], &v[i], MDB_NEXT);
				if (rc && rc != MDB_NOTFOUND)
					goto out;
				live[i] = rc == 0 && k[i].mv_size >= 4 + 1 + 5 && memcmp(k[i].mv_data, pk, 4) == 0;
				rc = 0;
			}
		}
		if (rc)
			goto out;
		/* re-cut into full chunks */
		for (size_t j = 0; j < have && rc == 0;) {
			size_t n = have - j < NA_POST_CHUNK_MAX ? have - j : NA_POST_CHUNK_MAX;
			size_t vl = na_post_encode(val, sizeof val, x->pdocs[j], x->pdocs + j, x->ptfs + j,
						   (uint32_t)n);
			if (!vl) {
				rc = MDB_CORRUPTED;
				break;
			}
			be32_put(key + 4 + tl + 1, x->pdocs[j]);
			rc = batch_put(b, T_BIG | OP_APPEND, key, 4 + tl + 5, val, vl);
			j += n;
		}
	}
	if (rc ||
	    (rc = batch_put(b, T_SEALED | OP_DROP, key, 0, key, 0)) ||
	    (rc = batch_put_u64(b, "ix_merged", m + 1)))
		goto out;
	for (int i = 0; i < N; i++) {
		mdb_cursor_close(cur[i]);
		cur[i] = NULL;
	}
	if ((rc = ix_commit(x, txn, x->rebuild ? 0 : x->seq)) == 0) {
		x->merged = m + 1;
		log_debug("index: merged segment %llu", (unsigned long long)m);
	}
	return rc;
out:
	for (int i = 0; i < N; i++)
		if (cur[i])
			mdb_cursor_close(cur[i]);
	mdb_txn_abort(txn);
	b->len = 0;
	return rc;
}

/* Index entries are "skip" when a rebuild's scan already covered them. */
static bool covered(const na_indexer *x, const na_key *key, uint64_t e)
{
	if (!x->rebuild || x->scanning || e > x->replay_until)
		return false;
	for (size_t i = 0; i < x->nchunks; i++) {
		const scanchunk *c = &x->chunks[i];
		if (c->last || memcmp(key->b, c->end.b, NA_KEY_BYTES) <= 0)
			return e <= c->sc;
	}
	return false;
}

static int read_article(na_indexer *x, MDB_txn *txn, const na_key *key, bool *found)
{
	/* by key, whether the article is a single record or in a block */
	int rc = na_store_read_key(x->s, txn, key, &x->dec);
	*found = false;
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc == MDB_CORRUPTED || rc == -EIO) {
		char hx[33];
		na_hex16(key->b, hx);
		log_warn("index: article %s is unreadable; not indexed", hx);
		return 0;
	}
	if (rc)
		return rc;
	*found = true;
	return 0;
}

/* After a failed batch (the writer's problem is logged there). */
static void backoff(na_indexer *x)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += 1;
	pthread_mutex_lock(&x->mu);
	if (!x->stop)
		pthread_cond_timedwait(&x->cv, &x->mu, &ts);
	pthread_mutex_unlock(&x->mu);
}

static void set_state(na_indexer *x, na_ixstate st)
{
	pthread_mutex_lock(&x->mu);
	x->state = st;
	pthread_mutex_unlock(&x->mu);
}

/* Empties the index and marks it for a rebuild from the archive's current
 * position (its articles are then scanned, and the log replayed from
 * there). */
static int do_reset(na_indexer *x)
{
	na_store *s = x->s;
	MDB_txn *st, *txn;
	uint64_t seq = 0, epoch = 0;
	int rc = na_store_rbegin(s, &st);
	if (rc)
		return rc;
	rc = na_meta_get_u64(s, st, "seq", &seq);
	if (rc == 0)
		rc = na_meta_get_u64(s, st, "ix_epoch", &epoch);
	na_store_rend(s, st);
	if (rc || (rc = mdb_txn_begin(s->ixenv, NULL, 0, &txn)))
		return rc;
	MDB_dbi drop[] = { s->ixpost, s->ixdocs, s->ixrange, s->ixsealed, s->ixbig };
	for (size_t i = 0; i < sizeof drop / sizeof drop[0] && rc == 0; i++)
		rc = mdb_drop(txn, drop[i], 0);
	if (rc || (rc = na_ixmeta_put_u64(s, txn, "ix_epoch", epoch)) ||
	    (rc = na_ixmeta_put(s, txn, "archive_id", s->archive_id, 16)) ||
	    (rc = na_ixmeta_put_u64(s, txn, "ix_seq", seq)) ||
	    (rc = na_ixmeta_put_u64(s, txn, "ix_next", 0)) ||
	    (rc = na_ixmeta_put_u64(s, txn, "ix_len", 0)) ||
	    (rc = na_ixmeta_put_u64(s, txn, "ix_dead", 0)) ||
	    (rc = na_ixmeta_put_u64(s, txn, "ix_rebuild", 1)) ||
	    (rc = na_ixmeta_put_u64(s, txn, "ix_sealed", 0)) ||
	    (rc = na_ixmeta_put_u64(s, txn, "ix_merged", 0)) ||
	    (rc = na_ixmeta_put_u64(s, txn, "ix_segshift", s->ix_segshift)) ||
	    (rc = na_ixmeta_put(s, txn, "ix_langs", "", 0))) {
		mdb_txn_abort(txn);
		return rc;
	}
	if ((rc = na_store_ix_mark(s))) {
		mdb_txn_abort(txn);
		return rc;
	}
	if ((rc = mdb_txn_commit(txn)))
		return rc;
	__atomic_store_n(&x->covers, 0, __ATOMIC_RELEASE);
	if ((rc = load_state(x)))
		return rc;
	atomic_store(&s->ix_unfit, false); /* ix_rebuild says it from now on */
	x->rebuild = true;
	x->scanning = true;
	x->scan_started = false;
	x->nchunks = 0;
	x->scanned = 0;
	if (seq)
		log_info("index: rebuilding from the articles (log position %llu)",
			 (unsigned long long)x->seq);
	return 0;
}

/* One chunk of a rebuild's scan. */

/* na_store_walk callback of a rebuild's scan: indexes one article, stops
 * (SCAN_FULL) after BATCH_ARTICLES, or (SCAN_ERR) on an error in sa->rc. */
enum { SCAN_FULL = 1, SCAN_ERR = 2 };
typedef struct scan_arg {
	na_indexer *x;
	size_t n;
	int rc;
} scan_arg;

static int scan_one(void *arg, const na_key *key, const uint8_t *art, size_t len)
{
	scan_arg *sa = arg;
	na_indexer *x = sa->x;
	if ((sa->rc = add_doc(x, key, art, len)))
		return SCAN_ERR;
	x->scan_key = *key;
	x->scan_started = true;
	return ++sa->n >= BATCH_ARTICLES || batch_room(x) == 0 ? SCAN_FULL : 0;
}

static int scan_step(na_indexer *x)
{
	na_store *s = x->s;
	/* what the walk advances, restored if this chunk does not commit: a
	 * chunk that fails (a full filesystem or map, which the indexer waits
	 * out) is read again from the same key, or its articles would never
	 * be indexed and the replay would skip their log entries as covered */
	uint64_t lens = x->lensum;
	na_key key0 = x->scan_key;
	bool started0 = x->scan_started;
	size_t nlangs0 = x->nlangs;
	MDB_txn *txn;
	int rc = na_store_rbegin(s, &txn);
	if (rc)
		return rc;
	uint64_t sc;
	if ((rc = na_meta_get_u64(s, txn, "seq", &sc)))
		goto out;
	builder_clear(&x->b);
	size_t n = 0;
	/* the next BATCH_ARTICLES articles in key order, through blocks too */
	scan_arg sa = { .x = x, .n = 0, .rc = 0 };
	rc = na_store_walk(s, txn, x->scan_started ? &x->scan_key : NULL, false, scan_one, &sa);
	n = sa.n;
	bool last = rc == 0;
	if (rc == SCAN_FULL)
		rc = 0;
	else if (rc == SCAN_ERR)
		rc = sa.rc;
	if (rc)
		goto out;
	if (grow((void **)&x->chunks, &x->cchunks, x->nchunks + 1, sizeof *x->chunks)) {
		rc = -ENOMEM;
		goto out;
	}
	x->chunks[x->nchunks] = (scanchunk){ .end = x->scan_key, .last = last, .sc = sc };
	/* the rebuild stays marked until the log replay passes every chunk */
	rc = commit_batch(x, &txn, x->seq, true, x->dead);
	if (rc == 0) {
		x->nchunks++;
		x->next += x->b.ndocs;
		x->scanned += n;
		x->batches++;
		if (last) {
			x->scanning = false;
			x->replay_until = 0;
			for (size_t i = 0; i < x->nchunks; i++)
				if (x->chunks[i].sc > x->replay_until)
					x->replay_until = x->chunks[i].sc;
		}
	}
out:
	if (rc) {
		/* undo what scan_one and add_doc advanced (langs only grows at
		 * its end) */
		x->lensum = lens;
		x->scan_key = key0;
		x->scan_started = started0;
		x->nlangs = nlangs0;
	}
	if (txn)
		na_store_rend(s, txn);
	return rc;
}

/* Follows the log for one batch. 0, 1 when caught up, 2 when the log no
 * longer holds our position (rebuild), or negative. */
static int log_step(na_indexer *x)
{
	na_store *s = x->s;
	MDB_txn *txn;
	int rc = na_store_rbegin(s, &txn);
	if (rc)
		return rc;
	MDB_cursor *cur = NULL;
	uint64_t epoch;
	if ((rc = na_meta_get_u64(s, txn, "ix_epoch", &epoch)))
		goto out;
	if (epoch != x->epoch) {
		rc = 3; /* reset under us (a follower's snapshot) */
		goto out;
	}
	if ((rc = mdb_cursor_open(txn, s->log, &cur)))
		goto out;
	builder_clear(&x->b);
	uint8_t kb[8];
	na_be64_put(kb, x->seq + 1);
	MDB_val k = { 8, kb }, v;
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	bool finish = false;
	if (rc == MDB_NOTFOUND) {
		uint64_t head = 0;
		rc = na_meta_get_u64(s, txn, "seq", &head);
		if (rc)
			goto out;
		if (head > x->seq) {
			rc = 2; /* entries we need were trimmed */
			goto out;
		}
		/* caught up; a rebuild whose replay is complete ends here */
		if (!x->rebuild || x->seq < x->replay_until) {
			rc = 1;
			goto out;
		}
		finish = true;
		rc = 0;
	}
	if (rc)
		goto out;
	if (!finish && (k.mv_size != 8 || na_be64_get(k.mv_data) != x->seq + 1)) {
		log_warn("index: the log no longer holds entry %llu (trimmed); rebuilding",
			 (unsigned long long)(x->seq + 1));
		rc = 2;
		goto out;
	}
	uint64_t seq = x->seq, dead = x->dead, lens = x->lensum;
	size_t nlangs0 = x->nlangs;
	size_t entries = 0;
	while (!finish && rc == 0 && entries < BATCH_ENTRIES && batch_room(x) > 0) {
		uint64_t e = na_be64_get(k.mv_data);
		if (e != seq + 1)
			break; /* a gap cannot happen; stop at it */
		const uint8_t *p = v.mv_data;
		if (v.mv_size >= 1 + NA_KEY_BYTES && p[0] == 'P') {
			na_key key;
			memcpy(key.b, p + 1, NA_KEY_BYTES);
			if (v.mv_size >= 1 + 2 * NA_KEY_BYTES)
				dead++;
			bool found = false;
			if (!covered(x, &key, e) && (rc = read_article(x, txn, &key, &found)))
				break;
			if (found && (rc = add_doc(x, &key, x->dec.data, x->dec.len)))
				break;
		} else if (v.mv_size >= 1 + NA_KEY_BYTES && p[0] == 'D') {
			dead++;
		}
		seq = e;
		entries++;
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
		if (rc == 0 && k.mv_size != 8)
			rc = MDB_CORRUPTED;
	}
	if (rc && rc != MDB_NOTFOUND) {
		x->lensum = lens; /* the batch is dropped: undo what add_doc counted */
		x->nlangs = nlangs0;
		goto out;
	}
	mdb_cursor_close(cur);
	cur = NULL;
	bool rebuild_after = x->rebuild && seq < x->replay_until;
	rc = commit_batch(x, &txn, seq, rebuild_after, dead);
	if (rc == 0) {
		x->seq = seq;
		x->dead = dead;
		x->next += x->b.ndocs;
		x->batches++;
		if (x->rebuild && !rebuild_after) {
			x->rebuild = false;
			x->nchunks = 0;
			log_info("index: rebuild done (%llu articles, log position %llu)",
				 (unsigned long long)x->next, (unsigned long long)seq);
		}
	} else {
		x->lensum = lens;
		x->nlangs = nlangs0;
	}
out:
	if (cur)
		mdb_cursor_close(cur);
	if (txn)
		na_store_rend(s, txn);
	return rc;
}

/* With x->mu held, after new entries woke a caught-up indexer: waits up
 * to index_refresh_ms for more to gather, unless a search is waiting, a batch
 * is already full, or the indexer is asked to stop or rebuild. */
static void settle(na_indexer *x)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += x->s->ix_refresh_ms / 1000;
	ts.tv_nsec += (long)(x->s->ix_refresh_ms % 1000) * 1000000L;
	ts.tv_sec += ts.tv_nsec / 1000000000L;
	ts.tv_nsec %= 1000000000L;
	while (!x->stop && !x->reindex && x->hurry <= x->seq && x->head - x->seq < BATCH_ARTICLES &&
	       !__atomic_load_n(&x->s->snapshot_incomplete, __ATOMIC_ACQUIRE) &&
	       pthread_cond_timedwait(&x->cv, &x->mu, &ts) == 0)
		;
}

static void *ix_main(void *arg)
{
	na_indexer *x = arg;
	bool need_reset = x->rebuild;
	/* the index can wait; the writer, the loop and the workers, whose
	 * latency clients see, go first when they want the CPU */
	pthread_setname_np(pthread_self(), "na-index");
	setpriority(PRIO_PROCESS, (id_t)gettid(), IX_NICE);
	while (true) {
		pthread_mutex_lock(&x->mu);
		bool stop = x->stop;
		if (x->reindex) {
			x->reindex = false;
			need_reset = true;
		}
		pthread_mutex_unlock(&x->mu);
		if (stop)
			break;
		if (__atomic_load_n(&x->s->snapshot_incomplete, __ATOMIC_ACQUIRE)) {
			__atomic_store_n(&x->covers, 0, __ATOMIC_RELEASE);
			set_state(x, NA_IX_WAITING);
			need_reset = true;
			backoff(x);
			continue;
		}
		if (need_reset) {
			set_state(x, NA_IX_REBUILDING);
			if (do_reset(x)) {
				backoff(x);
				continue;
			}
			need_reset = false;
		}
		int rc;
		if ((x->next >> x->segshift) > x->sealed) {
			rc = seal_step(x);
		} else if ((x->sealed >> NA_IX_MERGE_SHIFT) > x->merged) {
			rc = merge_step(x);
		} else if (x->scanning) {
			set_state(x, NA_IX_REBUILDING);
			rc = scan_step(x);
		} else {
			set_state(x, x->rebuild ? NA_IX_REBUILDING : NA_IX_CATCHING_UP);
			rc = log_step(x);
		}
		if (rc == 2 || rc == 3) {
			if (rc == 3 && load_state(x) == 0 && !x->rebuild)
				continue;
			need_reset = true;
			continue;
		}
		if (rc == 1) {
			/* caught up: sync, then wait for the next commit */
			if ((rc = na_store_ix_sync(x->s)))
				log_error("index: cannot sync: %s", mdb_strerror(rc));
			else
				x->synced_ms = now_ms();
			pthread_mutex_lock(&x->mu);
			if (!x->rebuild)
				x->state = NA_IX_READY;
			while (!x->stop && !x->reindex && x->head <= x->seq &&
			       !__atomic_load_n(&x->s->snapshot_incomplete, __ATOMIC_ACQUIRE))
				pthread_cond_wait(&x->cv, &x->mu);
			settle(x);
			pthread_mutex_unlock(&x->mu);
			continue;
		}
		if (rc < 0 || rc > 3) {
			if (rc != MDB_MAP_FULL && rc != -ENOSPC)
				log_error("index: batch failed: %s",
					  rc >= MDB_KEYEXIST && rc <= MDB_LAST_ERRCODE ? mdb_strerror(rc)
					  : strerror(rc < 0 ? -rc : rc));
			backoff(x);
		}
	}
	return NULL;
}

int na_indexer_start(na_store *s, na_ix_notify notify, void *arg, na_indexer **out)
{
	na_indexer *x = calloc(1, sizeof *x);
	if (!x)
		return -ENOMEM;
	x->s = s;
	x->notify = notify;
	x->arg = arg;
	if (getrandom(x->b.key, sizeof x->b.key, 0) != (ssize_t)sizeof x->b.key) {
		/* no entropy source: still differs per process and per run */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		x->b.key[0] = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^ (uintptr_t)x;
		x->b.key[1] = ((uint64_t)getpid() << 40) ^ (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull;
	}
	pthread_mutex_init(&x->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* timed waits ignore clock changes */
	pthread_cond_init(&x->cv, &ca);
	pthread_condattr_destroy(&ca);
	int rc = na_analyzer_new(&x->an);
	if (rc == 0)
		rc = load_state(x);
	/* not "ready" (the zero state) before the thread has even looked */
	x->state = x->rebuild ? NA_IX_REBUILDING : NA_IX_CATCHING_UP;
	if (rc == 0)
		rc = -pthread_create(&x->th, NULL, ix_main, x);
	if (rc) {
		na_analyzer_free(x->an);
		pthread_mutex_destroy(&x->mu);
		pthread_cond_destroy(&x->cv);
		free(x);
		return rc > 0 ? -EIO : rc;
	}
	x->started = true;
	*out = x;
	return 0;
}

void na_indexer_stop(na_indexer *x)
{
	if (!x)
		return;
	pthread_mutex_lock(&x->mu);
	x->stop = true;
	pthread_cond_broadcast(&x->cv);
	pthread_mutex_unlock(&x->mu);
	pthread_join(x->th, NULL);
	na_analyzer_free(x->an);
	builder_free(&x->b);
	free(x->dec.data);
	free(x->pdocs);
	free(x->ptfs);
	free(x->chunks);
	free(x->ob.buf);
	pthread_mutex_destroy(&x->mu);
	pthread_cond_destroy(&x->cv);
	free(x);
}

void na_indexer_kick(na_indexer *x, uint64_t seq)
{
	pthread_mutex_lock(&x->mu);
	x->head = seq;
	pthread_cond_broadcast(&x->cv);
	pthread_mutex_unlock(&x->mu);
}

void na_indexer_hurry(na_indexer *x, uint64_t seq)
{
	if (!x)
		return;
	pthread_mutex_lock(&x->mu);
	x->hurry = seq;
	pthread_cond_broadcast(&x->cv);
	pthread_mutex_unlock(&x->mu);
}

void na_indexer_reindex(na_indexer *x)
{
	pthread_mutex_lock(&x->mu);
	x->reindex = true;
	/* from now on searches that wait for a seq wait for the rebuild */
	__atomic_store_n(&x->covers, 0, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&x->cv);
	pthread_mutex_unlock(&x->mu);
}

void na_indexer_stats(na_indexer *x, na_ixstats *st)
{
	pthread_mutex_lock(&x->mu);
	st->seq = __atomic_load_n(&x->covers, __ATOMIC_ACQUIRE);
	st->head = x->head;
	st->docs = x->next;
	st->dead = x->dead;
	st->scanned = x->scanned;
	st->batches = x->batches;
	st->sealed = x->merged + (x->sealed - (x->merged << NA_IX_MERGE_SHIFT));
	st->merged = x->merged;
	st->state = x->state;
	pthread_mutex_unlock(&x->mu);
}

uint64_t na_indexer_seq(na_indexer *x)
{
	return x ? __atomic_load_n(&x->covers, __ATOMIC_ACQUIRE) : 0;
}
