/*
 * codec.c - record encoding, zstd with trained dictionaries (see codec.h).
 *
 * Dictionaries are pre-digested once into a CDict and a DDict, which zstd
 * allows many threads to share. Blocks (runs of articles in one frame, see
 * codec.h) are compressed at their own level (block_level: they are built
 * off the write path), so each dictionary has a second CDict for it; zstd
 * takes the level of a frame from the CDict it references.
 *
 * Block headers are untrusted input like any record: the parser bounds the
 * member count, checks every varint, requires the lengths to add up to the
 * declared total (itself bounded by max_raw), keys to increase strictly
 * without wrapping, and one live member; decoding checks that exactly the
 * declared number of bytes comes out. Contexts (CCtx/DCtx) are per use and come
 * from a mutex-protected free list, so the loop thread, worker threads and
 * the writer never contend for more than a pointer swap.
 *
 * Decoding next to the dictionary. zstd copies a match that reaches into a
 * separate dictionary with a memmove call per match, but a match into the
 * bytes right before its output as an inline copy from its own past. Most
 * matches of a small article reach into the dictionary, so each DCtx keeps
 * up to PRE_SLOTS copies of dictionaries, each followed by PRE_AREA bytes
 * of output space and digested by reference (a DDict whose content is that
 * copy): a frame decoded right after its dictionary's copy sees the
 * dictionary as its prefix, and the result is then copied out in one
 * memcpy. On Reuters articles this decodes in ~1.45 us instead of ~1.9.
 * A record of a dictionary without a slot decodes the ordinary way; a slot
 * is (re)built when there is a free one, or after PRE_ADMIT such records
 * (a copy of the dictionary, 64 KiB by default, and a ~5 us digest), so
 * reads spread over many dictionaries never pay a rebuild per record.
 * Dictionaries over PRE_DICT_MAX (dict_size goes up to 1 MiB) get no slot,
 * which bounds a context's slots to ~1.3 MiB. Slots name their dictionary
 * by pointer: dictionaries are only freed with the codec.
 */
#define ZSTD_STATIC_LINKING_ONLY
#include "codec.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#define ZDICT_STATIC_LINKING_ONLY /* the fastCover trainer */
#include <zdict.h>
#include <zstd.h>

typedef struct dict {
	struct dict *dead_next;  /* graveyard link after a reset */
	uint32_t id;
	size_t len;
	uint8_t *bytes;          /* the dictionary (ddict refers to it) */
	ZSTD_CDict *cdict;
	ZSTD_CDict *bcdict;      /* at the block level (may be cdict) */
	ZSTD_DDict *ddict;
} dict;

enum { PRE_SLOTS = 4, PRE_ADMIT = 8 };
#define PRE_AREA ((size_t)64 * 1024)
#define PRE_DICT_MAX ((size_t)256 * 1024) /* larger dictionaries get no slot */

typedef struct pre {
	const struct dict *d;    /* whose content buf holds (NULL: empty) */
	uint8_t *buf;            /* d->len bytes of content, then PRE_AREA */
	size_t cap;
	ZSTD_DDict *dd;          /* by reference to buf */
	uint64_t used;           /* last use, for LRU */
} pre;

typedef struct na_dhold {
	struct na_dhold *next;
	void *ctx;
	pre *pre;                /* DCtx only: PRE_SLOTS, allocated on first use */
	uint64_t tick;
	unsigned misses;
	bool failed;             /* the last slot build ran out of memory */
	uint64_t prefixed, built; /* see na_codec_decode_stats */
} ctx_node;

struct na_codec {
	int level, block_level;
	bool huf_literals;       /* na_codec_set_literals */
	size_t max_raw;
	_Atomic(dict *) dicts[NA_MAX_DICTS + 1];
	atomic_uint current;
	atomic_uint max_id;
	pthread_mutex_t lock;
	ctx_node *cctx_free;
	ctx_node *dctx_free;
	dict *graveyard;
};

int na_codec_create(int level, size_t max_raw, na_codec **out)
{
	na_codec *c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	c->level = level;
	c->block_level = level;
	c->huf_literals = true;
	c->max_raw = max_raw;
	pthread_mutex_init(&c->lock, NULL);
	*out = c;
	return 0;
}

static void free_ctx_list(ctx_node *n, bool cctx)
{
	while (n) {
		ctx_node *next = n->next;
		if (cctx)
			ZSTD_freeCCtx(n->ctx);
		else
			ZSTD_freeDCtx(n->ctx);
		for (unsigned i = 0; n->pre && i < PRE_SLOTS; i++) {
			ZSTD_freeDDict(n->pre[i].dd);
			free(n->pre[i].buf);
		}
		free(n->pre);
		free(n);
		n = next;
	}
}

static void free_dict(dict *d)
{
	if (d->bcdict != d->cdict)
		ZSTD_freeCDict(d->bcdict);
	ZSTD_freeCDict(d->cdict);
	ZSTD_freeDDict(d->ddict);
	free(d->bytes);
	free(d);
}

void na_codec_destroy(na_codec *c)
{
	if (!c)
		return;
	while (c->graveyard) {
		dict *d = c->graveyard;
		c->graveyard = d->dead_next;
		free_dict(d);
	}
	for (unsigned i = 0; i <= NA_MAX_DICTS; i++) {
		dict *d = atomic_load(&c->dicts[i]);
		if (d)
			free_dict(d);
	}
	free_ctx_list(c->cctx_free, true);
	free_ctx_list(c->dctx_free, false);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

int na_codec_add_dict(na_codec *c, uint32_t id, const void *bytes, size_t len)
{
	if (id == 0 || id > NA_MAX_DICTS || len == 0)
		return -EINVAL;
	if (atomic_load(&c->dicts[id]))
		return -EEXIST;
	/* The same dictionary dropped or reset before (a follower whose group
	 * failed, retrying it): take it back rather than pile up copies that
	 * are freed only with the codec. Same id, same bytes: the decoding
	 * contexts' slots keyed by it stay right. */
	pthread_mutex_lock(&c->lock);
	dict *d = NULL;
	for (dict **pp = &c->graveyard; *pp; pp = &(*pp)->dead_next)
		if ((*pp)->id == id && (*pp)->len == len && memcmp((*pp)->bytes, bytes, len) == 0) {
			d = *pp;
			*pp = d->dead_next;
			d->dead_next = NULL;
			break;
		}
	pthread_mutex_unlock(&c->lock);
	if (d) {
		dict *none = NULL;
		if (!atomic_compare_exchange_strong(&c->dicts[id], &none, d)) {
			pthread_mutex_lock(&c->lock);
			d->dead_next = c->graveyard;
			c->graveyard = d;
			pthread_mutex_unlock(&c->lock);
			return -EEXIST;
		}
		unsigned m = atomic_load(&c->max_id);
		while (id > m && !atomic_compare_exchange_weak(&c->max_id, &m, id))
			;
		return 0;
	}
	d = calloc(1, sizeof *d);
	if (!d)
		return -ENOMEM;
	d->id = id;
	d->len = len;
	if (!(d->bytes = malloc(len))) {
		free(d);
		return -ENOMEM;
	}
	memcpy(d->bytes, bytes, len);
	d->cdict = ZSTD_createCDict(bytes, len, c->level);
	d->bcdict = c->block_level == c->level ? d->cdict
					       : ZSTD_createCDict(bytes, len, c->block_level);
	d->ddict = ZSTD_createDDict_advanced(d->bytes, len, ZSTD_dlm_byRef, ZSTD_dct_auto,
					     ZSTD_defaultCMem);
	if (!d->cdict || !d->bcdict || !d->ddict) {
		free_dict(d);
		return -EINVAL;
	}
	dict *expect = NULL;
	if (!atomic_compare_exchange_strong(&c->dicts[id], &expect, d)) {
		free_dict(d);
		return -EEXIST;
	}
	unsigned m = atomic_load(&c->max_id);
	while (id > m && !atomic_compare_exchange_weak(&c->max_id, &m, id))
		;
	return 0;
}

void na_codec_reset_dicts(na_codec *c)
{
	pthread_mutex_lock(&c->lock);
	atomic_store(&c->current, 0);
	for (unsigned i = 0; i <= NA_MAX_DICTS; i++) {
		dict *d = atomic_exchange(&c->dicts[i], NULL);
		if (d) {
			d->dead_next = c->graveyard;
			c->graveyard = d;
		}
	}
	atomic_store(&c->max_id, 0);
	pthread_mutex_unlock(&c->lock);
}

void na_codec_drop_dict(na_codec *c, uint32_t id)
{
	if (id == 0 || id > NA_MAX_DICTS)
		return;
	pthread_mutex_lock(&c->lock);
	dict *d = atomic_exchange(&c->dicts[id], NULL);
	if (d) {
		d->dead_next = c->graveyard;
		c->graveyard = d;
	}
	unsigned cur = id;
	atomic_compare_exchange_strong(&c->current, &cur, 0);
	unsigned m = atomic_load(&c->max_id);
	while (m > 0 && !atomic_load(&c->dicts[m]))
		m--;
	atomic_store(&c->max_id, m);
	pthread_mutex_unlock(&c->lock);
}

void na_codec_use_dict(na_codec *c, uint32_t id)
{
	if (id == 0 || (id <= NA_MAX_DICTS && atomic_load(&c->dicts[id])))
		atomic_store(&c->current, id);
}

uint32_t na_codec_current_dict(const na_codec *c) { return atomic_load(&c->current); }
uint32_t na_codec_max_dict(const na_codec *c) { return atomic_load(&c->max_id); }

size_t na_codec_dict_size(const na_codec *c, uint32_t id)
{
	if (id == 0 || id > NA_MAX_DICTS)
		return 0;
	dict *d = atomic_load(&((na_codec *)c)->dicts[id]);
	return d ? d->len : 0;
}

size_t na_codec_bound(size_t raw_len)
{
	size_t z = ZSTD_compressBound(raw_len);
	return NA_REC_HDR_MAX + (z > raw_len ? z : raw_len);
}

static void *take(na_codec *c, ctx_node **list, ctx_node **node)
{
	pthread_mutex_lock(&c->lock);
	ctx_node *n = *list;
	if (n)
		*list = n->next;
	pthread_mutex_unlock(&c->lock);
	if (n) {
		*node = n;
		return n->ctx;
	}
	n = calloc(1, sizeof *n);
	if (!n)
		return NULL;
	*node = n;
	return NULL;
}

static void give(na_codec *c, ctx_node **list, ctx_node *n)
{
	pthread_mutex_lock(&c->lock);
	n->next = *list;
	*list = n;
	pthread_mutex_unlock(&c->lock);
}

static ZSTD_CCtx *cctx_get(na_codec *c, ctx_node **node)
{
	ZSTD_CCtx *z = take(c, &c->cctx_free, node);
	if (z || !*node)
		return z;
	z = ZSTD_createCCtx();
	if (!z) {
		free(*node);
		return NULL;
	}
	/* A context that cannot take the record format is never used: its
	 * frames would not decode. */
	if (ZSTD_isError(ZSTD_CCtx_setParameter(z, ZSTD_c_format, ZSTD_f_zstd1_magicless)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(z, ZSTD_c_contentSizeFlag, 0)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(z, ZSTD_c_checksumFlag, 0)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(z, ZSTD_c_dictIDFlag, 0))) {
		ZSTD_freeCCtx(z);
		free(*node);
		return NULL;
	}
	(*node)->ctx = z;
	return z;
}

/* Compresses src into dst with cd (NULL: none, at level) and the given
 * literal mode; a zstd error code on failure. The context is left in its
 * initial stage with no dictionary whatever happened, so a failure (an
 * allocation inside zstd, say) can never make a later frame of a pooled
 * context use another record's dictionary or parameters. */
static size_t zcompress(ZSTD_CCtx *z, const ZSTD_CDict *cd, int level, ZSTD_paramSwitch_e lit,
			void *dst, size_t cap, const void *src, size_t n)
{
	size_t r = ZSTD_CCtx_reset(z, ZSTD_reset_session_only);
	if (!ZSTD_isError(r))
		r = ZSTD_CCtx_setParameter(z, ZSTD_c_literalCompressionMode, lit);
	if (!ZSTD_isError(r))
		r = ZSTD_CCtx_setParameter(z, ZSTD_c_compressionLevel, level);
	if (!ZSTD_isError(r))
		r = ZSTD_CCtx_refCDict(z, cd);
	if (!ZSTD_isError(r))
		r = ZSTD_compress2(z, dst, cap, src, n);
	ZSTD_CCtx_reset(z, ZSTD_reset_session_only);
	ZSTD_CCtx_refCDict(z, NULL); /* cannot fail in the initial stage */
	return r;
}

static ZSTD_DCtx *dctx_get(na_codec *c, ctx_node **node)
{
	ZSTD_DCtx *z = take(c, &c->dctx_free, node);
	if (z || !*node)
		return z;
	z = ZSTD_createDCtx();
	if (!z) {
		free(*node);
		return NULL;
	}
	if (ZSTD_isError(ZSTD_DCtx_setParameter(z, ZSTD_d_format, ZSTD_f_zstd1_magicless))) {
		ZSTD_freeDCtx(z);
		free(*node);
		return NULL;
	}
	(*node)->ctx = z;
	return z;
}

/* The node's slot for d, (re)building one when admitted; NULL: decode the
 * ordinary way. */
static pre *pre_slot(ctx_node *node, const dict *d)
{
	if (!node->pre && !(node->pre = calloc(PRE_SLOTS, sizeof *node->pre)))
		return NULL;
	pre *lru = NULL;
	for (unsigned i = 0; i < PRE_SLOTS; i++) {
		pre *p = &node->pre[i];
		if (p->d == d) {
			p->used = ++node->tick;
			return p;
		}
		/* an empty slot first, else the least recently used */
		if (!lru || (lru->d && (!p->d || p->used < lru->used)))
			lru = p;
	}
	if ((lru->d || node->failed) && ++node->misses < PRE_ADMIT)
		return NULL;
	node->misses = 0;
	node->failed = true; /* until the build below succeeds */
	ZSTD_freeDDict(lru->dd);
	lru->dd = NULL;
	lru->d = NULL;
	if (lru->cap < d->len + PRE_AREA) {
		free(lru->buf);
		lru->cap = 0;
		if (!(lru->buf = malloc(d->len + PRE_AREA)))
			return NULL;
		lru->cap = d->len + PRE_AREA;
	}
	memcpy(lru->buf, d->bytes, d->len);
	lru->dd = ZSTD_createDDict_advanced(lru->buf, d->len, ZSTD_dlm_byRef, ZSTD_dct_auto,
					    ZSTD_defaultCMem);
	if (!lru->dd)
		return NULL;
	lru->d = d;
	lru->used = ++node->tick;
	node->built++;
	node->failed = false;
	return lru;
}

/* Decodes one frame of exactly raw_len bytes into out, with dictionary d
 * (or none). 0 or -EINVAL/-ENOMEM. */
static int zdecode(na_codec *c, ctx_node *held, const dict *d, uint8_t *out, size_t raw_len,
		   const void *src, size_t srclen)
{
	ctx_node *node = held;
	ZSTD_DCtx *z = held ? held->ctx : dctx_get(c, &node);
	if (!z)
		return -ENOMEM;
	/* the format (magicless) is a context parameter these calls honour */
	size_t n;
	pre *p = d && raw_len <= PRE_AREA && d->len <= PRE_DICT_MAX ? pre_slot(node, d) : NULL;
	if (p) {
		uint8_t *at = p->buf + d->len;
		n = ZSTD_decompress_usingDDict(z, at, raw_len, src, srclen, p->dd);
		if (n == raw_len)
			memcpy(out, at, n);
		node->prefixed++;
	} else if (d) {
		n = ZSTD_decompress_usingDDict(z, out, raw_len, src, srclen, d->ddict);
	} else {
		n = ZSTD_decompressDCtx(z, out, raw_len, src, srclen);
	}
	if (!held)
		give(c, &c->dctx_free, node);
	return ZSTD_isError(n) || n != raw_len ? -EINVAL : 0;
}

static size_t put_varint(uint8_t *p, uint32_t v)
{
	size_t i = 0;
	while (v >= 0x80) {
		p[i++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[i++] = (uint8_t)v;
	return i;
}

static size_t raw_record(uint8_t *out, const void *raw, size_t n)
{
	out[0] = NA_REC_RAW;
	size_t h = 1 + put_varint(out + 1, (uint32_t)n);
	memcpy(out + h, raw, n);
	return h + n;
}

int na_codec_encode(na_codec *c, const void *raw, size_t n, uint8_t *out, size_t *outlen)
{
	if (n > c->max_raw || n > UINT32_MAX)
		return -EINVAL;
	if (n < 64) { /* not worth a frame */
		*outlen = raw_record(out, raw, n);
		return 0;
	}
	uint32_t id = atomic_load(&c->current);
	dict *d = id ? atomic_load(&c->dicts[id]) : NULL;
	size_t h = 0;
	out[h++] = d ? NA_REC_ZSTD_DICT : NA_REC_ZSTD;
	if (d) {
		out[h++] = (uint8_t)(id >> 24);
		out[h++] = (uint8_t)(id >> 16);
		out[h++] = (uint8_t)(id >> 8);
		out[h++] = (uint8_t)id;
	}
	h += put_varint(out + h, (uint32_t)n);
	ctx_node *node = NULL;
	ZSTD_CCtx *z = cctx_get(c, &node);
	if (!z)
		return -ENOMEM;
	size_t cap = na_codec_bound(n) - h;
	size_t zn = zcompress(z, d ? d->cdict : NULL, c->level,
			      c->huf_literals ? ZSTD_ps_auto : ZSTD_ps_disable, out + h, cap, raw, n);
	give(c, &c->cctx_free, node);
	if (ZSTD_isError(zn) || h + zn >= n + 1 + 5) {
		*outlen = raw_record(out, raw, n);
		return 0;
	}
	*outlen = h + zn;
	return 0;
}

int na_rec_parse(const na_codec *c, const uint8_t *rec, size_t len, na_rec *out)
{
	if (len < 2)
		return -EINVAL;
	size_t i = 0;
	out->fmt = rec[i++];
	out->dict = 0;
	if (out->fmt > NA_REC_ZSTD_DICT)
		return -EINVAL;
	if (out->fmt == NA_REC_ZSTD_DICT) {
		if (len < 6)
			return -EINVAL;
		out->dict = (uint32_t)rec[1] << 24 | (uint32_t)rec[2] << 16 | (uint32_t)rec[3] << 8 | rec[4];
		if (out->dict == 0 || out->dict > NA_MAX_DICTS)
			return -EINVAL;
		i = 5;
	}
	uint64_t v = 0;
	for (int shift = 0;; shift += 7) {
		if (i >= len || shift > 28)
			return -EINVAL;
		uint8_t b = rec[i++];
		v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			break;
	}
	if (v > c->max_raw || v > UINT32_MAX)
		return -EINVAL;
	out->raw_len = (uint32_t)v;
	out->payload = rec + i;
	out->payload_len = len - i;
	if (out->fmt == NA_REC_RAW && out->payload_len != v)
		return -EINVAL;
	return 0;
}

na_dhold *na_codec_hold(na_codec *c)
{
	ctx_node *node = NULL;
	return dctx_get(c, &node) ? node : NULL;
}

void na_codec_release(na_codec *c, na_dhold *h)
{
	if (h)
		give(c, &c->dctx_free, h);
}

int na_codec_decode(na_codec *c, const uint8_t *recb, size_t len, uint8_t *out, size_t cap,
		    size_t *outlen)
{
	return na_codec_decode_held(c, NULL, recb, len, out, cap, outlen);
}

int na_codec_decode_held(na_codec *c, na_dhold *h, const uint8_t *recb, size_t len, uint8_t *out,
			 size_t cap, size_t *outlen)
{
	na_rec rec;
	if (na_rec_parse(c, recb, len, &rec))
		return -EINVAL;
	if (cap < rec.raw_len)
		return -EINVAL;
	if (rec.fmt == NA_REC_RAW) {
		memcpy(out, rec.payload, rec.raw_len);
		*outlen = rec.raw_len;
		return 0;
	}
	dict *d = NULL;
	if (rec.fmt == NA_REC_ZSTD_DICT) {
		d = rec.dict <= NA_MAX_DICTS ? atomic_load(&c->dicts[rec.dict]) : NULL;
		if (!d)
			return -EINVAL;
	}
	int rc = zdecode(c, h, d, out, rec.raw_len, rec.payload, rec.payload_len);
	if (rc)
		return rc;
	*outlen = rec.raw_len;
	return 0;
}

void na_codec_decode_stats(na_codec *c, uint64_t *prefixed, uint64_t *built)
{
	*prefixed = *built = 0;
	pthread_mutex_lock(&c->lock);
	for (const ctx_node *n = c->dctx_free; n; n = n->next) {
		*prefixed += n->prefixed;
		*built += n->built;
	}
	pthread_mutex_unlock(&c->lock);
}

/* ---- blocks ----------------------------------------------------------- */

void na_codec_set_block_level(na_codec *c, int level)
{
	c->block_level = level;
}

void na_codec_set_literals(na_codec *c, bool compress)
{
	c->huf_literals = compress;
}

static size_t put_varint64(uint8_t *p, uint64_t v)
{
	size_t i = 0;
	while (v >= 0x80) {
		p[i++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[i++] = (uint8_t)v;
	return i;
}

static int get_varint64(const uint8_t *p, size_t len, size_t *i, uint64_t *out)
{
	uint64_t v = 0;
	for (int shift = 0;; shift += 7) {
		if (*i >= len || shift > 63)
			return -EINVAL;
		uint8_t b = p[(*i)++];
		if (shift == 63 && (b & 0x7e))
			return -EINVAL; /* more than 64 bits */
		v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			break;
	}
	*out = v;
	return 0;
}

static uint64_t be64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

int na_block_parse(const na_codec *c, const uint8_t *rec, size_t len, na_block *b)
{
	if (len < 6 + 2 + 16 || rec[0] != NA_REC_BLOCK || rec[1] > NA_REC_ZSTD_DICT)
		return -EINVAL;
	b->kind = rec[1];
	b->dict = (uint32_t)rec[2] << 24 | (uint32_t)rec[3] << 16 | (uint32_t)rec[4] << 8 | rec[5];
	if ((b->kind == NA_REC_ZSTD_DICT) != (b->dict != 0) || b->dict > NA_MAX_DICTS)
		return -EINVAL;
	size_t i = 6;
	uint64_t n, raw;
	if (get_varint64(rec, len, &i, &n) || n == 0 || n > NA_BLOCK_MAX_MEMBERS ||
	    get_varint64(rec, len, &i, &raw) || raw > c->max_raw || raw > UINT32_MAX || len - i < 16)
		return -EINVAL;
	b->n = (uint32_t)n;
	b->raw_len = raw;
	const uint8_t *k0 = rec + i;
	i += 16;
	uint64_t t = be64(k0), q = be64(k0 + 8), off = 0;
	b->live = 0;
	for (uint32_t j = 0; j < b->n; j++) {
		uint64_t lf;
		if (get_varint64(rec, len, &i, &lf))
			return -EINVAL;
		uint64_t ml = lf >> 1;
		if (ml > raw - off)
			return -EINVAL;
		if (j > 0) {
			uint64_t dt, zq;
			if (get_varint64(rec, len, &i, &dt) || get_varint64(rec, len, &i, &zq))
				return -EINVAL;
			int64_t dq = (int64_t)(zq >> 1) ^ -(int64_t)(zq & 1);
			if (dt > UINT64_MAX - t)
				return -EINVAL;
			uint64_t nq = q + (uint64_t)dq;
			if (dt == 0 && nq <= q)
				return -EINVAL; /* keys must strictly increase */
			t += dt;
			q = nq;
		}
		na_bmember *m = &b->m[j];
		put_be64(m->key, t);
		put_be64(m->key + 8, q);
		m->off = (uint32_t)off;
		m->len = (uint32_t)ml;
		m->dead = lf & 1;
		off += ml;
		if (!m->dead) {
			if (b->live == 0)
				b->first_live = j;
			b->last_live = j;
			b->live++;
		}
	}
	if (off != raw || b->live == 0)
		return -EINVAL;
	b->payload = rec + i;
	b->payload_len = len - i;
	if (b->kind == NA_REC_RAW && b->payload_len != raw)
		return -EINVAL;
	return 0;
}

int na_block_decode(na_codec *c, const na_block *b, uint8_t *out, size_t cap)
{
	return na_block_decode_held(c, NULL, b, out, cap);
}

int na_block_decode_held(na_codec *c, na_dhold *h, const na_block *b, uint8_t *out, size_t cap)
{
	if (cap < b->raw_len)
		return -EINVAL;
	if (b->kind == NA_REC_RAW) {
		memcpy(out, b->payload, b->raw_len);
		return 0;
	}
	dict *d = NULL;
	if (b->kind == NA_REC_ZSTD_DICT && !(d = atomic_load(&c->dicts[b->dict])))
		return -EINVAL;
	return zdecode(c, h, d, out, b->raw_len, b->payload, b->payload_len);
}

size_t na_block_bound(uint32_t n, size_t raw_len)
{
	size_t z = ZSTD_compressBound(raw_len);
	return 6 + 10 + 10 + 16 + (size_t)n * 30 + (z > raw_len ? z : raw_len);
}

/* The header (everything but the payload) with the given dead flags. */
static size_t block_header(uint8_t *out, int kind, uint32_t dict, const na_bmember *m, uint32_t n,
			   const bool *dead, uint64_t raw_len)
{
	size_t h = 0;
	out[h++] = NA_REC_BLOCK;
	out[h++] = (uint8_t)kind;
	out[h++] = (uint8_t)(dict >> 24);
	out[h++] = (uint8_t)(dict >> 16);
	out[h++] = (uint8_t)(dict >> 8);
	out[h++] = (uint8_t)dict;
	h += put_varint64(out + h, n);
	h += put_varint64(out + h, raw_len);
	memcpy(out + h, m[0].key, 16);
	h += 16;
	for (uint32_t j = 0; j < n; j++) {
		h += put_varint64(out + h, (uint64_t)m[j].len << 1 | (dead ? dead[j] : m[j].dead));
		if (j == 0)
			continue;
		uint64_t dt = be64(m[j].key) - be64(m[j - 1].key);
		int64_t dq = (int64_t)(be64(m[j].key + 8) - be64(m[j - 1].key + 8));
		h += put_varint64(out + h, dt);
		h += put_varint64(out + h, (uint64_t)dq << 1 ^ (uint64_t)(dq >> 63));
	}
	return h;
}

int na_block_encode(na_codec *c, const na_bmember *m, uint32_t n, const uint8_t *raw,
		    size_t raw_len, uint8_t *out, size_t *outlen)
{
	if (n == 0 || n > NA_BLOCK_MAX_MEMBERS || raw_len > c->max_raw || raw_len > UINT32_MAX)
		return -EINVAL;
	uint64_t sum = 0;
	bool any = false;
	for (uint32_t j = 0; j < n; j++) {
		sum += m[j].len;
		any |= !m[j].dead;
		if (j && memcmp(m[j - 1].key, m[j].key, 16) >= 0)
			return -EINVAL;
	}
	if (sum != raw_len || !any)
		return -EINVAL;
	uint32_t id = atomic_load(&c->current);
	dict *d = id ? atomic_load(&c->dicts[id]) : NULL;
	size_t h = block_header(out, d ? NA_REC_ZSTD_DICT : NA_REC_ZSTD, d ? id : 0, m, n, NULL,
				raw_len);
	ctx_node *node = NULL;
	ZSTD_CCtx *z = cctx_get(c, &node);
	if (!z)
		return -ENOMEM;
	size_t cap = na_block_bound(n, raw_len) - h;
	size_t zn = zcompress(z, d ? d->bcdict : NULL, c->block_level, ZSTD_ps_auto, out + h, cap,
			      raw, raw_len);
	give(c, &c->cctx_free, node);
	if (ZSTD_isError(zn) || zn >= raw_len) {
		h = block_header(out, NA_REC_RAW, 0, m, n, NULL, raw_len);
		memcpy(out + h, raw, raw_len);
		*outlen = h + raw_len;
		return 0;
	}
	*outlen = h + zn;
	return 0;
}

int na_block_remark(const na_block *b, const bool *dead, uint8_t *out, size_t *outlen)
{
	bool any = false;
	for (uint32_t j = 0; j < b->n; j++)
		any |= !dead[j];
	if (!any)
		return -EINVAL;
	size_t h = block_header(out, b->kind, b->dict, b->m, b->n, dead, b->raw_len);
	memcpy(out + h, b->payload, b->payload_len);
	*outlen = h + b->payload_len;
	return 0;
}

int na_codec_train(const void *buf, const size_t *sizes, unsigned n, size_t cap, bool quick,
		   void **dict_out, size_t *dict_len)
{
	void *d = malloc(cap);
	if (!d)
		return -ENOMEM;
	size_t r;
	if (quick) {
		/* one pass with fixed parameters: a few times faster than the
		 * search over parameters below, and within 1% of its ratio on
		 * news text */
		ZDICT_fastCover_params_t p;
		memset(&p, 0, sizeof p);
		p.k = 1024;
		p.d = 8;
		p.f = 20;
		p.accel = 1;
		p.zParams.compressionLevel = 3;
		r = ZDICT_trainFromBuffer_fastCover(d, cap, buf, sizes, n, p);
	} else {
		r = ZDICT_trainFromBuffer(d, cap, buf, sizes, n);
	}
	if (ZDICT_isError(r)) {
		free(d);
		return -EINVAL;
	}
	*dict_out = d;
	*dict_len = r;
	return 0;
}
