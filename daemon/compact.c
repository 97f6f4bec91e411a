/*
 * compact.c - the background compactor: packs runs of adjacent articles
 * into blocks (codec.h).
 *
 * Why. One article compresses to ~2.4x with a trained dictionary; a run of
 * neighbours compressed as one frame shares their common text, and a range
 * read then decompresses one frame per block instead of one per article.
 *
 * How. Writes keep landing as single records (the acknowledged fast path is
 * unchanged). The compactor walks the articles table in key order a chunk at
 * a time on the worker pool, in a fresh read transaction per chunk: it
 * gathers runs of "loose" entries (single records, and blocks that have
 * dead members or less than half the target size), decodes
 * them, and compresses each run of about block_bytes raw bytes into one
 * block at block_level. Blocks are bigger than half a page, so LMDB keeps
 * them in overflow pages, whole pages each: a run is cut where its
 * compressed size, estimated from the ratio of the blocks made so far,
 * nearly fills a whole number of pages (the one nearest to block_bytes
 * compressed), instead of at a fixed raw size that would leave half a page
 * empty on average. The writer then swaps each block in, in one
 * transaction, only if its source entries are all still there, adjacent and
 * byte-for-byte unchanged (checked by keyed hash); a stale block is simply
 * dropped and the next pass retries. Blocks change no article, so they are
 * not logged: every node (primary or follower) compacts on its own.
 *
 * Scheduling. A pass starts when writes happened since the last one (from
 * the lowest key they touched, as far as the primary knows; a follower
 * starts from the beginning) and proceeds chunk by chunk. While clients are
 * writing, it runs one chunk per tick so ingest keeps the CPU; once writes
 * pause it runs flat out. Only one chunk is ever in flight, on one worker.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "log.h"
#include "rpc.h"
#include "server.h"

#define SCAN_ENTRIES 20000
#define OUT_BLOCKS 64
#define BUSY_MS 300

typedef struct run {
	uint32_t nsrc, nm;
	uint8_t keys[NA_BLOCK_MAX_MEMBERS * NA_KEY_BYTES];
	uint64_t hash[NA_BLOCK_MAX_MEMBERS];
	na_bmember m[NA_BLOCK_MAX_MEMBERS];
	uint8_t *raw;
	size_t raw_len, raw_cap;
	bool gain;               /* re-encoding saves something */
} run;

typedef struct compact_req {
	uv_work_t work;
	na_wjob job;
	na_server *s;
	na_key from;
	bool from_set, at_end, failed;
	na_cblock cb[OUT_BLOCKS];
	uint32_t ncb;
	uint64_t raw_in;         /* statistics of this chunk */
	double ratio;            /* raw / compressed of the blocks made so far */
	size_t target;           /* block_bytes when the pass began */
} compact_req;

static bool loose_block(const na_block *b, size_t target)
{
	uint64_t live = 0;
	for (uint32_t i = 0; i < b->n; i++)
		if (!b->m[i].dead)
			live += b->m[i].len;
	/* a block stored raw (it did not compress) is not loose: packing it
	 * again would give the same */
	return b->live != b->n || live < target / 2;
}

static int run_reserve(run *r, size_t more)
{
	if (r->raw_cap - r->raw_len >= more)
		return 0;
	size_t n = r->raw_cap ? r->raw_cap : 65536;
	while (n - r->raw_len < more)
		n *= 2;
	uint8_t *p = realloc(r->raw, n);
	if (!p)
		return -ENOMEM;
	r->raw = p;
	r->raw_cap = n;
	return 0;
}

/* Compresses the run into the next output block (when it pays). */
static int run_flush(compact_req *q, run *r)
{
	na_store *st = &q->s->store;
	int rc = 0;
	if (r->nsrc >= 2 || (r->nsrc == 1 && r->gain)) {
		size_t cap = na_block_bound(r->nm, r->raw_len);
		na_cblock *cb = &q->cb[q->ncb];
		uint8_t *rec = malloc(cap);
		uint8_t *keys = malloc((size_t)r->nsrc * NA_KEY_BYTES);
		uint64_t *hash = malloc(sizeof *hash * r->nsrc);
		size_t len = 0;
		if (!rec || !keys || !hash ||
		    (rc = na_block_encode(st->codec, r->m, r->nm, r->raw, r->raw_len, rec, &len))) {
			free(rec);
			free(keys);
			free(hash);
			rc = rc ? rc : -ENOMEM;
		} else {
			memcpy(keys, r->keys, (size_t)r->nsrc * NA_KEY_BYTES);
			memcpy(hash, r->hash, sizeof *hash * r->nsrc);
			*cb = (na_cblock){ .rec = rec, .rec_len = len, .src_keys = keys, .src_hash = hash,
					   .nsrc = r->nsrc };
			q->ncb++;
			q->raw_in += r->raw_len;
			double seen = (double)r->raw_len / (double)len;
			q->ratio = q->ratio > 0 ? 0.8 * q->ratio + 0.2 * seen : seen;
		}
	}
	r->nsrc = r->nm = 0;
	r->raw_len = 0;
	r->gain = false;
	return rc;
}

static void compact_work(uv_work_t *uw)
{
	compact_req *q = uw->data;
	na_store *st = &q->s->store;
	size_t target = q->target;
	/* cut runs to fill whole overflow pages (a page header of 16 bytes,
	 * ~40 bytes of block header and ~8 per member, 4% to spare) */
	double ratio = q->ratio > 1.0 ? q->ratio : 2.5;
	size_t psize = st->psize ? st->psize : 4096;
	size_t pages = (size_t)((double)target / ratio / (double)psize + 0.5);
	if (pages < 1)
		pages = 1;
	double room = (double)(pages * psize - 16 - 40) * 0.96;
	run *r = calloc(1, sizeof *r);
	na_block *b = malloc(sizeof *b);
	uint8_t *tmp = NULL;
	size_t tmpcap = 0;
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	q->ncb = 0;
	q->at_end = false;
	q->failed = true;
	if (!r || !b || na_store_rbegin(st, &txn))
		goto out;
	if (mdb_cursor_open(txn, st->articles, &cur))
		goto out;
	MDB_val k = { NA_KEY_BYTES, q->from.b }, v;
	int rc = q->from_set ? mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE)
			     : mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	uint32_t scanned = 0;
	while (rc == 0) {
		if (k.mv_size != NA_KEY_BYTES)
			goto out;
		if (scanned++ >= SCAN_ENTRIES || q->ncb == OUT_BLOCKS)
			break;
		bool is_block = na_rec_is_block(v.mv_data, v.mv_size);
		bool loose;
		uint32_t live = 1;
		size_t entry_raw = 0;
		na_rec rec;
		if (is_block) {
			if (na_block_parse(st->codec, v.mv_data, v.mv_size, b))
				goto out;
			loose = loose_block(b, (size_t)(room * ratio));
			live = b->live;
			for (uint32_t i = 0; i < b->n; i++)
				entry_raw += b->m[i].dead ? 0 : b->m[i].len;
		} else {
			if (na_rec_parse(st->codec, v.mv_data, v.mv_size, &rec))
				goto out;
			loose = rec.raw_len <= target;
			entry_raw = rec.raw_len;
		}
		if (!loose) {
			if (run_flush(q, r))
				goto out;
			rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
			continue;
		}
		/* flush first when this entry would overfill the pages */
		if ((r->nm + live > NA_BLOCK_MAX_MEMBERS ||
		     (r->nsrc && (double)(r->raw_len + entry_raw) > (room - 8.0 * (r->nm + live)) * ratio)) &&
		    run_flush(q, r))
			goto out;
		if (q->ncb == OUT_BLOCKS)
			break;
		/* add the entry's live members to the run */
		memcpy(r->keys + (size_t)r->nsrc * NA_KEY_BYTES, k.mv_data, NA_KEY_BYTES);
		r->hash[r->nsrc] = na_siphash(st->hash_key, v.mv_data, v.mv_size);
		r->nsrc++;
		if (is_block) {
			if (tmpcap < b->raw_len) {
				uint8_t *p = realloc(tmp, b->raw_len);
				if (!p)
					goto out;
				tmp = p;
				tmpcap = b->raw_len;
			}
			if (na_block_decode(st->codec, b, tmp, tmpcap) || run_reserve(r, b->raw_len))
				goto out;
			for (uint32_t i = 0; i < b->n; i++) {
				if (b->m[i].dead)
					continue;
				na_bmember *m = &r->m[r->nm++];
				memcpy(m->key, b->m[i].key, NA_KEY_BYTES);
				m->len = b->m[i].len;
				m->dead = false;
				memcpy(r->raw + r->raw_len, tmp + b->m[i].off, b->m[i].len);
				r->raw_len += b->m[i].len;
			}
			r->gain |= b->live != b->n;
		} else {
			size_t n;
			if (run_reserve(r, rec.raw_len) ||
			    na_codec_decode(st->codec, v.mv_data, v.mv_size, r->raw + r->raw_len,
					    rec.raw_len, &n))
				goto out;
			na_bmember *m = &r->m[r->nm++];
			memcpy(m->key, k.mv_data, NA_KEY_BYTES);
			m->len = (uint32_t)n;
			m->dead = false;
			r->raw_len += n;
			r->gain = true;
		}
		if ((double)r->raw_len >= (room - 8.0 * r->nm) * ratio && run_flush(q, r))
			goto out;
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	if (rc == MDB_NOTFOUND) {
		q->at_end = true;
		if (run_flush(q, r))
			goto out;
	} else if (rc) {
		goto out;
	} else {
		/* resume at the unfinished run, or at the entry not yet looked at */
		memcpy(q->from.b, r->nsrc ? r->keys : (const uint8_t *)k.mv_data, NA_KEY_BYTES);
		q->from_set = true;
	}
	q->failed = false;
out:
	if (cur)
		mdb_cursor_close(cur);
	if (txn)
		na_store_rend(st, txn);
	if (r)
		free(r->raw);
	free(r);
	free(b);
	free(tmp);
}

static void free_blocks(compact_req *q)
{
	for (uint32_t i = 0; i < q->ncb; i++) {
		free((void *)q->cb[i].rec);
		free((void *)q->cb[i].src_keys);
		free((void *)q->cb[i].src_hash);
	}
	q->ncb = 0;
}

static void compact_next(na_server *s, compact_req *q);

static void compact_written(na_wjob *job)
{
	compact_req *q = job->arg;
	na_server *s = q->s;
	if (job->code == NA_CODE_OK) {
		s->compacted_blocks += job->compacted;
		s->compact_stale += q->ncb - job->compacted;
	}
	free_blocks(q);
	if (job->code != NA_CODE_OK) {
		log_warn("compaction: %s", job->msg ? job->msg : "write failed");
		q->at_end = true;
	}
	compact_next(s, q);
}

static void compact_done(uv_work_t *uw, int status)
{
	(void)status;
	compact_req *q = uw->data;
	na_server *s = q->s;
	if (q->failed) {
		free_blocks(q);
		log_warn("compaction: a chunk could not be read; the pass stops");
		q->at_end = true;
		compact_next(s, q);
		return;
	}
	if (q->ncb == 0 || s->stopping) {
		free_blocks(q); /* stopping: the blocks built are not written */
		compact_next(s, q);
		return;
	}
	memset(&q->job, 0, sizeof q->job);
	q->job.op = NA_WOP_COMPACT;
	q->job.cblocks = q->cb;
	q->job.ncblocks = q->ncb;
	q->job.done = compact_written;
	q->job.arg = q;
	na_writer_submit(&s->writer, &q->job);
}

static void compact_run(na_server *s, compact_req *q)
{
	q->work.data = q;
	s->compact_waiting = false;
	uv_queue_work(s->loop, &q->work, compact_work, compact_done);
}

/* After a chunk: the next one now, on the next tick (clients are
 * writing), or the pass is over. */
static void compact_next(na_server *s, compact_req *q)
{
	if (s->stopping) {
		free(q);
		s->compact = NULL;
		return;
	}
	if (q->at_end) {
		s->compact_ratio = q->ratio;
		free(q);
		s->compact = NULL;
		if (s->compact_dirty && uv_now(s->loop) - s->last_write_ms >= BUSY_MS)
			na_compact_kick(s); /* more came in during the pass */
		return;
	}
	if (uv_now(s->loop) - s->last_write_ms < BUSY_MS) {
		s->compact_waiting = true; /* na_compact_tick resumes it */
		return;
	}
	compact_run(s, q);
}

void na_compact_kick(na_server *s)
{
	if (s->compact || s->stopping || !s->cfg.block_bytes || !s->compact_dirty)
		return;
	compact_req *q = calloc(1, sizeof *q);
	if (!q)
		return;
	q->s = s;
	if (s->compact_lo_set) {
		/* start at the entry holding compact_lo or just before it */
		q->from = s->compact_lo;
		q->from_set = true;
		MDB_txn *txn;
		if (na_store_rbegin(&s->store, &txn) == 0) {
			MDB_cursor *cur;
			if (mdb_cursor_open(txn, s->store.articles, &cur) == 0) {
				MDB_val k = { NA_KEY_BYTES, q->from.b }, v;
				int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
				if (rc == 0 || rc == MDB_NOTFOUND)
					rc = mdb_cursor_get(cur, &k, &v, rc == 0 ? MDB_PREV : MDB_LAST);
				if (rc == 0 && k.mv_size == NA_KEY_BYTES)
					memcpy(q->from.b, k.mv_data, NA_KEY_BYTES);
				else
					q->from_set = false;
				mdb_cursor_close(cur);
			}
			na_store_rend(&s->store, txn);
		}
	}
	s->compact_dirty = false;
	s->compact_lo_set = false;
	s->compact = q;
	q->ratio = s->compact_ratio;
	q->target = s->cfg.block_bytes;
	compact_run(s, q);
}

void na_compact_wrote(na_server *s, const na_key *lo)
{
	s->last_write_ms = uv_now(s->loop);
	if (lo && (!s->compact_dirty || s->compact_lo_set) &&
	    (!s->compact_lo_set || memcmp(lo->b, s->compact_lo.b, NA_KEY_BYTES) < 0)) {
		s->compact_lo = *lo;
		s->compact_lo_set = true;
	} else if (!lo) {
		s->compact_lo_set = false; /* unknown: from the beginning */
	}
	s->compact_dirty = true;
}

void na_compact_free(na_server *s)
{
	if (s->compact && s->compact_waiting) {
		free(s->compact);
		s->compact = NULL;
	}
}

void na_compact_tick(na_server *s)
{
	if (s->stopping)
		return;
	if (s->follower && s->seq != s->compact_seen_seq) {
		/* a follower applies the primary's writes: from the beginning */
		s->compact_seen_seq = s->seq;
		na_compact_wrote(s, NULL);
		s->last_write_ms = 0;
	}
	if (s->compact && s->compact_waiting)
		compact_run(s, s->compact);
	else if (!s->compact && s->compact_dirty)
		na_compact_kick(s);
}

bool na_compact_pending(const na_server *s)
{
	return s->compact != NULL || (s->compact_dirty && s->cfg.block_bytes);
}
