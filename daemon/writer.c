/*
 * writer.c - the writer thread: group commit, the change log, map growth.
 *
 * Every change takes the next sequence number and writes, in the same
 * transaction as the change, a log entry under that number:
 *
 *   put     'P' key(16) [old key(16)]   article stored under key (replacing
 *                                       the version at old key, if any)
 *   delete  'D' key(16)
 *   dict    'Z' id(4)                   dictionary id added and made current
 *
 * Entries refer to records by key instead of copying them. A key names one
 * immutable stored version (its second half is the sequence number that
 * created it), so a log reader finds either exactly the bytes the change
 * wrote, or nothing because a later entry in the log removed them.
 *
 * Blocks (codec.h, compact.c). Puts always store single records. When the
 * version a put replaces, or a delete removes, is a member of a block, the
 * block is rewritten with that member flagged dead (the compressed payload
 * is copied as is: no decompression, no recompression on the writer); if it
 * was the first live member, the block moves to the next one's key. A put
 * whose key falls between two live members of a block (an article older
 * than the newest ones) splits the block into two copies of the payload
 * with complementary dead flags, so entries never overlap (store.c). The
 * compactor later repacks blocks with dead members. NA_WOP_COMPACT swaps a
 * compactor's block in for its source entries only if they are still there,
 * adjacent and unchanged; it writes no log entry (the articles are the
 * same) so every node compacts on its own.
 *
 * When LMDB reports MDB_MAP_FULL the transaction is aborted, readers are
 * kept out (resize_lock), the map is doubled up to max_map_size and the
 * whole group is applied again. At the limit, jobs are retried one per
 * transaction so those that fit still succeed; the others get NO_SPACE.
 *
 * Near the limit a group that adds anything must also leave a reserve of
 * free pages (na_store_reserve) for groups that only remove (deletes, log
 * trims). LMDB reuses the pages a commit frees only from the commit after
 * next, and a delete needs a few new pages (the copied paths of the trees
 * it changes) before it frees any: without the reserve, a delete right
 * after the put that took the last reusable page fails, and so does every
 * delete after it, since none commits to free anything. check_reserve
 * counts the free pages (the map's unused tail and LMDB's free list) only
 * when the tail alone is too short, so it costs nothing far from the
 * limit, and compares them with what the group may write (counted
 * generously, adds_data and group_pages) on top of the reserve; a
 * follower's copies of its primary's writes keep half the reserve. A group
 * refused this way is split like one that met MDB_MAP_FULL, so single jobs
 * that fit still go in.
 */
#include "writer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "index.h"
#include "hash.h"
#include "log.h"
#include "rpc.h"

#define GROUP_MAX_ITEMS 50000

enum { LOG_PUT = 'P', LOG_DELETE = 'D', LOG_DICT = 'Z' };

typedef struct wstate {
	uint64_t seq, raw_bytes, stored_bytes, articles, exact_at;
	na_key max_key;
	bool have_max, any_blocks;
} wstate;

static void save(const na_writer *w, wstate *s)
{
	s->seq = w->seq;
	s->raw_bytes = w->raw_bytes;
	s->stored_bytes = w->stored_bytes;
	s->articles = w->articles;
	s->exact_at = w->exact_at;
	s->max_key = w->max_key;
	s->have_max = w->have_max;
	s->any_blocks = w->any_blocks;
}

static void restore(na_writer *w, const wstate *s)
{
	w->seq = s->seq;
	w->raw_bytes = s->raw_bytes;
	w->stored_bytes = s->stored_bytes;
	w->articles = s->articles;
	w->exact_at = s->exact_at;
	w->max_key = s->max_key;
	w->have_max = s->have_max;
	w->any_blocks = s->any_blocks;
}

static int log_append(na_writer *w, MDB_txn *txn, uint64_t seq, const uint8_t *e, size_t n)
{
	uint8_t kb[8];
	na_be64_put(kb, seq);
	MDB_val k = { 8, kb }, v = { n, (void *)e };
	return mdb_put(txn, w->store->log, &k, &v, MDB_APPEND);
}


static int del_guid(na_writer *w, MDB_txn *txn, const char *g, uint32_t gn, const na_key *key)
{
	return na_guid_del(w->store, txn, na_store_guid_hash(w->store, g, gn), key);
}

static int refresh_max(na_writer *w, MDB_txn *txn);

/* ---- articles inside blocks ------------------------------------------ */

/* The archive holds (or held) blocks: from then on, a put below the highest
 * key checks whether it falls inside one. Recorded in meta "blocks". */
static int note_blocks(na_writer *w, MDB_txn *txn)
{
	if (w->any_blocks)
		return 0;
	w->any_blocks = true;
	return na_meta_put_u64(w->store, txn, "blocks", 1);
}

static int scratch(na_buf *b, size_t want)
{
	if (b->cap >= want && b->data)
		return 0;
	uint8_t *p = realloc(b->data, want);
	if (!p)
		return -ENOMEM;
	b->data = p;
	b->cap = want;
	return 0;
}

/* Stores block b under the key of its first live member with the given
 * dead flags (the payload is kept as is); old_key is where b was stored. */
static int put_remarked(na_writer *w, MDB_txn *txn, const na_block *b, const bool *dead,
			const uint8_t *old_key, bool delete_old)
{
	na_store *s = w->store;
	int rc = scratch(&w->blockbuf, na_block_bound(b->n, 0) + b->payload_len);
	if (rc)
		return rc;
	size_t len;
	if (na_block_remark(b, dead, w->blockbuf.data, &len))
		return MDB_CORRUPTED;
	uint32_t first = 0;
	while (dead[first])
		first++;
	if (delete_old) {
		MDB_val ok = { NA_KEY_BYTES, (void *)old_key };
		if ((rc = mdb_del(txn, s->articles, &ok, NULL)))
			return rc;
	}
	MDB_val k = { NA_KEY_BYTES, (void *)b->m[first].key }, v = { len, w->blockbuf.data };
	if ((rc = mdb_put(txn, s->articles, &k, &v, 0)))
		return rc;
	w->stored_bytes += len;
	return 0;
}

/* Rewrites the block at loc (parsed into w->blk) with only its live
 * members other than loc's: decompressed and compressed again (a single
 * record if one is left). Stored under its first member's key. */
static int shrink_block(na_writer *w, MDB_txn *txn, const na_loc *loc)
{
	na_store *s = w->store;
	na_block *b = w->blk;
	na_bmember m[NA_BLOCK_MAX_MEMBERS];
	int rc = scratch(&w->blockbuf2, b->raw_len ? b->raw_len : 1);
	if (rc)
		return rc;
	uint8_t *raw = w->blockbuf2.data;
	if (na_block_decode(s->codec, b, raw, w->blockbuf2.cap))
		return MDB_CORRUPTED;
	size_t used = 0;
	uint32_t nm = 0;
	for (uint32_t i = 0; i < b->n; i++) {
		if (b->m[i].dead || i == loc->member)
			continue;
		memmove(raw + used, raw + b->m[i].off, b->m[i].len); /* offsets only grow */
		memcpy(m[nm].key, b->m[i].key, NA_KEY_BYTES);
		m[nm].len = b->m[i].len;
		m[nm].dead = false;
		used += b->m[i].len;
		nm++;
	}
	if (nm == 0)
		return MDB_CORRUPTED;
	size_t cap = nm == 1 ? na_codec_bound(used) : na_block_bound(nm, used), len;
	if ((rc = scratch(&w->blockbuf, cap)))
		return rc;
	rc = nm == 1 ? na_codec_encode(s->codec, raw, used, w->blockbuf.data, &len)
		     : na_block_encode(s->codec, m, nm, raw, used, w->blockbuf.data, &len);
	if (rc)
		return rc == -ENOMEM ? rc : MDB_CORRUPTED;
	MDB_val ok = { NA_KEY_BYTES, (void *)loc->ckey.b };
	if ((rc = mdb_del(txn, s->articles, &ok, NULL)))
		return rc;
	MDB_val k = { NA_KEY_BYTES, m[0].key }, v = { len, w->blockbuf.data };
	if ((rc = mdb_put(txn, s->articles, &k, &v, 0)))
		return rc;
	w->stored_bytes += len;
	return 0;
}

/* Removes the article at loc (a single record, or a member of the block
 * parsed into w->blk), keeping the byte counters in step. In a block the
 * member is only marked dead (the payload is copied as it is), until half
 * of the block's bytes are dead, or at once when the map is at
 * max_map_size: then the block is compressed again without them, so deletes
 * give space back without waiting for the compactor (which may find no room
 * to work in a full map). */
static int remove_at(na_writer *w, MDB_txn *txn, const na_loc *loc)
{
	na_store *s = w->store;
	w->raw_bytes -= loc->raw_len;
	w->articles--;
	w->stored_bytes -= loc->rec_len;
	int rc;
	uint64_t live_after = 0;
	if (loc->block)
		for (uint32_t i = 0; i < w->blk->n; i++)
			if (!w->blk->m[i].dead && i != loc->member)
				live_after += w->blk->m[i].len;
	if (!loc->block || w->blk->live == 1) {
		MDB_val k = { NA_KEY_BYTES, (void *)loc->ckey.b };
		rc = mdb_del(txn, s->articles, &k, NULL);
	} else if (live_after * 2 <= w->blk->raw_len || s->map_size >= s->max_map_size) {
		/* half dead, or the map cannot grow: give the space back now */
		rc = shrink_block(w, txn, loc);
	} else {
		bool dead[NA_BLOCK_MAX_MEMBERS];
		for (uint32_t i = 0; i < w->blk->n; i++)
			dead[i] = w->blk->m[i].dead;
		dead[loc->member] = true;
		rc = put_remarked(w, txn, w->blk, dead, loc->ckey.b, loc->member == w->blk->first_live);
	}
	const uint8_t *gone = loc->block ? w->blk->m[loc->member].key : loc->ckey.b;
	if (rc == 0 && w->have_max && memcmp(gone, w->max_key.b, NA_KEY_BYTES) == 0)
		w->have_max = false; /* recomputed lazily: append only above max */
	return rc;
}

/* Before a single record is stored under key (not above every article):
 * if key falls between two live members of a block, split that block in
 * two (same payload, complementary dead flags) so entries never overlap. */
static int make_room(na_writer *w, MDB_txn *txn, const na_key *key)
{
	na_store *s = w->store;
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn, s->articles, &cur);
	if (rc)
		return rc;
	MDB_val k = { NA_KEY_BYTES, (void *)key->b }, v;
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	if (rc == 0)
		rc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
	else if (rc == MDB_NOTFOUND)
		rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
	mdb_cursor_close(cur);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc || !na_rec_is_block(v.mv_data, v.mv_size))
		return rc;
	na_block *b = w->blk;
	if (k.mv_size != NA_KEY_BYTES || na_block_parse(s->codec, v.mv_data, v.mv_size, b))
		return MDB_CORRUPTED;
	if (memcmp(b->m[b->last_live].key, key->b, NA_KEY_BYTES) < 0)
		return 0; /* the block ends before key */
	na_key ck;
	memcpy(ck.b, k.mv_data, NA_KEY_BYTES);
	bool low[NA_BLOCK_MAX_MEMBERS], high[NA_BLOCK_MAX_MEMBERS];
	for (uint32_t i = 0; i < b->n; i++) {
		bool below = memcmp(b->m[i].key, key->b, NA_KEY_BYTES) < 0;
		low[i] = b->m[i].dead || !below;
		high[i] = b->m[i].dead || below;
	}
	w->stored_bytes -= v.mv_size;
	/* the low part keeps the block's key; write the high part first (v
	 * points into pages the first put may reuse) */
	if ((rc = scratch(&w->blockbuf2, v.mv_size)))
		return rc;
	memcpy(w->blockbuf2.data, v.mv_data, v.mv_size);
	if ((rc = na_block_parse(s->codec, w->blockbuf2.data, v.mv_size, b)))
		return MDB_CORRUPTED;
	if ((rc = put_remarked(w, txn, b, high, NULL, false)))
		return rc;
	return put_remarked(w, txn, b, low, ck.b, false);
}

static int apply_put(na_writer *w, MDB_txn *txn, na_witem *it, na_buf *dec)
{
	na_store *s = w->store;
	na_key old;
	const uint8_t *orec;
	size_t orec_len;
	int rc = na_store_find(s, txn, it->guid, it->guid_len, &old, &orec, &orec_len, dec);
	bool found = rc == 0;
	if (rc && rc != MDB_NOTFOUND)
		return rc;
	(void)orec;
	(void)orec_len;
	if (found) {
		/* the stored version, decoded by find: same bytes, nothing to do */
		if (dec->len == it->raw_len && memcmp(dec->data, it->raw, dec->len) == 0) {
			it->status = NA_WS_UNCHANGED;
			it->seq = na_key_seq(&old);
			return 0;
		}
		na_loc loc;
		if ((rc = na_store_locate(s, txn, &old, &loc, w->blk)))
			return rc == MDB_NOTFOUND ? MDB_CORRUPTED : rc;
		if ((rc = remove_at(w, txn, &loc)))
			return rc;
		if ((rc = del_guid(w, txn, it->guid, it->guid_len, &old)))
			return rc;
	}
	if ((rc = refresh_max(w, txn)))
		return rc;
	uint64_t seq = ++w->seq;
	na_key key;
	na_key_make(&key, it->micros, seq);
	MDB_val k = { NA_KEY_BYTES, key.b }, v = { it->rec_len, (void *)it->rec };
	bool append = !w->have_max || memcmp(key.b, w->max_key.b, NA_KEY_BYTES) > 0;
	if (!append && w->any_blocks && (rc = make_room(w, txn, &key)))
		return rc;
	if ((rc = mdb_put(txn, s->articles, &k, &v, append ? MDB_APPEND : MDB_NOOVERWRITE)))
		return rc;
	w->articles++;
	if (append) {
		w->max_key = key;
		w->have_max = true;
	}
	if ((rc = na_guid_put(s, txn, na_store_guid_hash(s, it->guid, it->guid_len), &key,
			      w->guid_direct)))
		return rc;
	w->guidnew_puts += !w->guid_direct;
	uint8_t e[1 + 2 * NA_KEY_BYTES];
	e[0] = LOG_PUT;
	memcpy(e + 1, key.b, NA_KEY_BYTES);
	if (found)
		memcpy(e + 1 + NA_KEY_BYTES, old.b, NA_KEY_BYTES);
	if ((rc = log_append(w, txn, seq, e, found ? sizeof e : 1 + NA_KEY_BYTES)))
		return rc;
	w->raw_bytes += it->raw_len;
	w->stored_bytes += it->rec_len;
	it->status = found ? NA_WS_UPDATED : NA_WS_CREATED;
	it->seq = seq;
	return 0;
}

static int apply_delete(na_writer *w, MDB_txn *txn, na_witem *it, na_buf *dec)
{
	na_store *s = w->store;
	na_key key;
	const uint8_t *rec;
	size_t rec_len;
	int rc = na_store_find(s, txn, it->guid, it->guid_len, &key, &rec, &rec_len, dec);
	if (rc == MDB_NOTFOUND) {
		it->status = NA_WS_ABSENT;
		it->seq = 0;
		return 0;
	}
	if (rc)
		return rc;
	(void)rec;
	(void)rec_len;
	na_loc loc;
	if ((rc = na_store_locate(s, txn, &key, &loc, w->blk)))
		return rc == MDB_NOTFOUND ? MDB_CORRUPTED : rc;
	if ((rc = remove_at(w, txn, &loc)) ||
	    (rc = del_guid(w, txn, it->guid, it->guid_len, &key)))
		return rc;
	uint64_t seq = ++w->seq;
	uint8_t e[1 + NA_KEY_BYTES];
	e[0] = LOG_DELETE;
	memcpy(e + 1, key.b, NA_KEY_BYTES);
	if ((rc = log_append(w, txn, seq, e, sizeof e)))
		return rc;
	it->status = NA_WS_DELETED;
	it->seq = seq;
	return 0;
}

static int apply_dict(na_writer *w, MDB_txn *txn, na_wjob *j)
{
	uint8_t ib[4] = { (uint8_t)(j->dict_id >> 24), (uint8_t)(j->dict_id >> 16),
			  (uint8_t)(j->dict_id >> 8), (uint8_t)j->dict_id };
	MDB_val k = { 4, ib }, v = { j->dict_len, (void *)j->dict };
	int rc = mdb_put(txn, w->store->dicts, &k, &v, MDB_NOOVERWRITE);
	if (rc)
		return rc;
	if ((rc = na_meta_put_u64(w->store, txn, "dict", j->dict_id)))
		return rc;
	uint64_t seq = ++w->seq;
	uint8_t e[5] = { LOG_DICT, ib[0], ib[1], ib[2], ib[3] };
	return log_append(w, txn, seq, e, sizeof e);
}

/* ---- replication: applying what a primary sends ----------------------- */

/* Adds or removes the guid index entry of the article art stored at key. */
static int guid_index(na_writer *w, MDB_txn *txn, const na_key *key, const uint8_t *art, size_t n,
		      bool add)
{
	na_store *s = w->store;
	const char *g;
	uint32_t gn;
	if (na_article_guid(art, n, &g, &gn))
		return MDB_CORRUPTED;
	uint64_t h = na_store_guid_hash(s, g, gn);
	if (add) {
		w->guidnew_puts += !w->guid_direct;
		return na_guid_put(s, txn, h, key, w->guid_direct);
	}
	int rc = na_guid_del(s, txn, h, key);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Stores a single record under key unless that version is already there. */
static int insert_single(na_writer *w, MDB_txn *txn, const na_key *key, const uint8_t *rec,
			 size_t len, na_buf *dec)
{
	na_store *s = w->store;
	na_rec r;
	if (na_rec_is_block(rec, len) || na_rec_parse(s->codec, rec, len, &r))
		return MDB_CORRUPTED;
	int rc = refresh_max(w, txn);
	if (rc)
		return rc;
	bool append = !w->have_max || memcmp(key->b, w->max_key.b, NA_KEY_BYTES) > 0;
	if (!append) {
		na_loc loc;
		rc = na_store_locate(s, txn, key, &loc, w->blk);
		if (rc == 0)
			return 0; /* already have it (a snapshot overlapping the log) */
		if (rc != MDB_NOTFOUND)
			return rc;
		if (w->any_blocks && (rc = make_room(w, txn, key)))
			return rc;
	}
	if (na_store_decode(s, rec, len, &dec->data, &dec->cap, &dec->len))
		return MDB_CORRUPTED;
	MDB_val k = { NA_KEY_BYTES, (void *)key->b }, v = { len, (void *)rec };
	if ((rc = mdb_put(txn, s->articles, &k, &v, append ? MDB_APPEND : MDB_NOOVERWRITE)))
		return rc;
	if (append) {
		w->max_key = *key;
		w->have_max = true;
	}
	w->raw_bytes += r.raw_len;
	w->stored_bytes += len;
	w->articles++;
	return guid_index(w, txn, key, dec->data, dec->len, true);
}

/* A snapshot row holding a block: stored whole when it overlaps nothing
 * already here, else member by member (as raw single records, which the
 * compactor packs again later). */
static int insert_block(na_writer *w, MDB_txn *txn, const na_key *key, const uint8_t *rec,
			size_t len, na_buf *dec)
{
	na_store *s = w->store;
	na_block *b = w->blk;
	if (na_block_parse(s->codec, rec, len, b) ||
	    memcmp(b->m[b->first_live].key, key->b, NA_KEY_BYTES) != 0)
		return MDB_CORRUPTED;
	na_key first = *(const na_key *)b->m[b->first_live].key;
	na_key last = *(const na_key *)b->m[b->last_live].key;
	int rc = refresh_max(w, txn);
	if (rc)
		return rc;
	bool append = !w->have_max || memcmp(first.b, w->max_key.b, NA_KEY_BYTES) > 0;
	bool whole = append;
	if (!whole) {
		MDB_cursor *cur;
		if ((rc = mdb_cursor_open(txn, s->articles, &cur)))
			return rc;
		MDB_val k = { NA_KEY_BYTES, first.b }, v;
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		whole = rc == MDB_NOTFOUND || (rc == 0 && memcmp(k.mv_data, last.b, NA_KEY_BYTES) > 0);
		if (rc == 0)
			rc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
		else if (rc == MDB_NOTFOUND)
			rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
		if (rc == 0 && whole) {
			na_key pl;
			rc = na_store_entry_last(s, &k, &v, &pl);
			whole = rc == 0 && memcmp(pl.b, first.b, NA_KEY_BYTES) < 0;
		}
		mdb_cursor_close(cur);
		if (rc && rc != MDB_NOTFOUND)
			return rc;
		/* b was not touched: the cursor reads did not parse into it */
	}
	if (scratch(dec, b->raw_len ? b->raw_len : 1))
		return -ENOMEM;
	if (na_block_decode(s->codec, b, dec->data, dec->cap))
		return MDB_CORRUPTED;
	if (whole) {
		if ((rc = note_blocks(w, txn)))
			return rc;
		MDB_val k = { NA_KEY_BYTES, first.b }, v = { len, (void *)rec };
		if ((rc = mdb_put(txn, s->articles, &k, &v, append ? MDB_APPEND : MDB_NOOVERWRITE)))
			return rc;
		for (uint32_t i = 0; i < b->n; i++) {
			if (b->m[i].dead)
				continue;
			if ((rc = guid_index(w, txn, (const na_key *)b->m[i].key, dec->data + b->m[i].off,
					     b->m[i].len, true)))
				return rc;
			w->raw_bytes += b->m[i].len;
			w->articles++;
		}
		w->stored_bytes += len;
		if (append) {
			w->max_key = last;
			w->have_max = true;
		}
		return 0;
	}
	/* member by member: copy what the block holds first (insert_single
	 * reuses the scratch buffers and the parsed block) */
	uint32_t n = b->n;
	na_bmember *m = malloc(sizeof *m * n);
	uint8_t *raw = malloc(b->raw_len ? b->raw_len : 1);
	uint8_t *one = malloc(b->raw_len + 16);
	if (!m || !raw || !one) {
		free(m);
		free(raw);
		free(one);
		return -ENOMEM;
	}
	memcpy(m, b->m, sizeof *m * n);
	memcpy(raw, dec->data, b->raw_len);
	rc = 0;
	for (uint32_t i = 0; i < n && rc == 0; i++) {
		if (m[i].dead)
			continue;
		size_t h = 0;
		uint32_t l = m[i].len;
		one[h++] = NA_REC_RAW;
		while (l >= 0x80) {
			one[h++] = (uint8_t)(l | 0x80);
			l >>= 7;
		}
		one[h++] = (uint8_t)l;
		memcpy(one + h, raw + m[i].off, m[i].len);
		rc = insert_single(w, txn, (const na_key *)m[i].key, one, h + m[i].len, dec);
	}
	free(m);
	free(raw);
	free(one);
	return rc;
}

static int insert_key(na_writer *w, MDB_txn *txn, const na_key *key, const uint8_t *rec,
		      size_t len, na_buf *dec)
{
	if (na_rec_is_block(rec, len))
		return insert_block(w, txn, key, rec, len, dec);
	return insert_single(w, txn, key, rec, len, dec);
}

/* Removes the version stored under key, if any. */
static int remove_key(na_writer *w, MDB_txn *txn, const na_key *key, na_buf *dec)
{
	na_store *s = w->store;
	na_loc loc;
	int rc = na_store_locate(s, txn, key, &loc, w->blk);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return rc;
	if ((rc = na_store_read_loc(s, &loc, w->blk, dec)) ||
	    (rc = guid_index(w, txn, key, dec->data, dec->len, false)))
		return rc;
	return remove_at(w, txn, &loc);
}

/* The compactor's blocks: each replaces its source entries if they are all
 * still there, adjacent and unchanged (same value hash); else it is stale
 * and skipped. Same articles, so no log entry: every node compacts on its
 * own. */
static int apply_compact(na_writer *w, MDB_txn *txn, na_wjob *j)
{
	na_store *s = w->store;
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn, s->articles, &cur);
	if (rc)
		return rc;
	j->compacted = 0;
	for (uint32_t i = 0; i < j->ncblocks && rc == 0; i++) {
		const na_cblock *cb = &j->cblocks[i];
		if (cb->nsrc == 0)
			continue;
		MDB_val k = { NA_KEY_BYTES, (void *)cb->src_keys }, v;
		uint64_t old = 0;
		bool same = true;
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY);
		for (uint32_t x = 0; rc == 0 && same; x++) {
			same = k.mv_size == NA_KEY_BYTES &&
			       memcmp(k.mv_data, cb->src_keys + (size_t)x * NA_KEY_BYTES, NA_KEY_BYTES) == 0 &&
			       na_siphash(s->hash_key, v.mv_data, v.mv_size) == cb->src_hash[x];
			old += v.mv_size;
			if (x + 1 == cb->nsrc)
				break;
			if (same)
				rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
		}
		if (rc == MDB_NOTFOUND || (rc == 0 && !same)) {
			rc = 0;
			continue; /* changed since it was read */
		}
		if (rc)
			break;
		if (na_block_parse(s->codec, cb->rec, cb->rec_len, w->blk)) {
			rc = MDB_CORRUPTED;
			break;
		}
		/* by key: after mdb_cursor_del at the end of a page the cursor
		 * is not on the next entry until it is moved */
		for (uint32_t x = 0; x < cb->nsrc && rc == 0; x++) {
			MDB_val dk = { NA_KEY_BYTES, (void *)(cb->src_keys + (size_t)x * NA_KEY_BYTES) };
			rc = mdb_del(txn, s->articles, &dk, NULL);
		}
		if (rc)
			break;
		MDB_val nk = { NA_KEY_BYTES, w->blk->m[w->blk->first_live].key },
			nv = { cb->rec_len, (void *)cb->rec };
		if ((rc = mdb_put(txn, s->articles, &nk, &nv, MDB_NOOVERWRITE)))
			break;
		w->stored_bytes = w->stored_bytes - old + cb->rec_len;
		j->compacted++;
		if ((rc = note_blocks(w, txn)))
			break;
	}
	mdb_cursor_close(cur);
	return rc;
}

static int store_dict(na_writer *w, MDB_txn *txn, uint32_t id, const void *d, size_t n)
{
	uint8_t ib[4] = { (uint8_t)(id >> 24), (uint8_t)(id >> 16), (uint8_t)(id >> 8), (uint8_t)id };
	MDB_val k = { 4, ib }, v = { n, (void *)d };
	int rc = mdb_put(txn, w->store->dicts, &k, &v, 0);
	if (rc == 0)
		rc = na_meta_put_u64(w->store, txn, "dict", id);
	if (rc)
		return rc;
	if (w->grp_ndicts == w->grp_cap) {
		size_t cap = w->grp_cap ? 2 * w->grp_cap : 8;
		uint32_t *a = realloc(w->grp_dicts, cap * sizeof *a);
		if (!a)
			return ENOMEM;
		w->grp_dicts = a;
		w->grp_cap = cap;
	}
	int cr = na_codec_add_dict(w->store->codec, id, d, n);
	if (cr && cr != -EEXIST)
		return MDB_CORRUPTED;
	if (cr == 0)
		w->grp_dicts[w->grp_ndicts++] = id;
	w->grp_use = id; /* current only once committed: nothing may be
			  * compressed with it before it is on disk */
	return 0;
}

/* The end of a group for the dictionaries it registered (store_dict). */
static void group_dicts_done(na_writer *w, bool committed)
{
	na_codec *c = w->store->codec;
	if (committed && w->grp_use)
		na_codec_use_dict(c, w->grp_use);
	for (size_t i = 0; !committed && i < w->grp_ndicts; i++)
		na_codec_drop_dict(c, w->grp_dicts[i]);
	w->grp_ndicts = 0;
	w->grp_use = 0;
}

static int apply_entry(na_writer *w, MDB_txn *txn, const na_rentry *e, na_buf *dec)
{
	if (e->seq <= w->seq)
		return 0; /* already applied: a resend after reconnecting */
	if (e->seq != w->seq + 1) {
		log_error("replication gap: at %llu, got entry %llu", (unsigned long long)w->seq,
			  (unsigned long long)e->seq);
		return NA_WRITER_EGAP;
	}
	int rc = 0;
	uint8_t ent[1 + 2 * NA_KEY_BYTES];
	size_t elen = 1 + NA_KEY_BYTES;
	ent[0] = e->op;
	switch (e->op) {
	case LOG_PUT:
		if (e->has_old && (rc = remove_key(w, txn, &e->old, dec)))
			return rc;
		if (e->rec && (rc = insert_key(w, txn, &e->key, e->rec, e->rec_len, dec)))
			return rc;
		memcpy(ent + 1, e->key.b, NA_KEY_BYTES);
		if (e->has_old) {
			memcpy(ent + 1 + NA_KEY_BYTES, e->old.b, NA_KEY_BYTES);
			elen += NA_KEY_BYTES;
		}
		break;
	case LOG_DELETE:
		if ((rc = remove_key(w, txn, &e->key, dec)))
			return rc;
		memcpy(ent + 1, e->key.b, NA_KEY_BYTES);
		break;
	case LOG_DICT:
		if ((rc = store_dict(w, txn, e->dict_id, e->dict, e->dict_len)))
			return rc;
		ent[1] = (uint8_t)(e->dict_id >> 24);
		ent[2] = (uint8_t)(e->dict_id >> 16);
		ent[3] = (uint8_t)(e->dict_id >> 8);
		ent[4] = (uint8_t)e->dict_id;
		elen = 5;
		break;
	default:
		return MDB_CORRUPTED;
	}
	if ((rc = log_append(w, txn, e->seq, ent, elen)))
		return rc;
	w->seq = e->seq;
	return 0;
}

static int put_identity(na_writer *w, MDB_txn *txn, const na_wjob *j)
{
	int rc = na_meta_put(w->store, txn, "history", j->history, 16);
	if (rc == 0)
		rc = na_meta_put(w->store, txn, "chain", j->chain, (size_t)j->chain_len * 24);
	return rc;
}

static int apply_snap_begin(na_writer *w, MDB_txn *txn, const na_wjob *j)
{
	na_store *s = w->store;
	MDB_dbi drop[] = { s->articles, s->guids, s->guidnew, s->dicts, s->log, s->logtime };
	int rc = 0;
	for (size_t i = 0; i < sizeof drop / sizeof drop[0] && rc == 0; i++)
		rc = mdb_drop(txn, drop[i], 0);
	uint8_t one = 1;
	if (rc == 0)
		rc = put_identity(w, txn, j);
	if (rc == 0)
		rc = na_meta_put(s, txn, "hash_key", j->hash_key, 16);
	if (rc == 0)
		rc = na_meta_put(s, txn, "snapshot", &one, 1);
	if (rc == 0 && (rc = mdb_del(txn, s->meta, &(MDB_val){ 8, "exact_at" }, NULL)) == MDB_NOTFOUND)
		rc = 0;
	w->exact_at = 0;
	if (rc == 0)
		rc = na_meta_put_u64(s, txn, "dict", 0);
	if (rc == 0)
		rc = na_index_invalidate(s, txn); /* rebuilt once the snapshot is whole */
	w->seq = 0;
	w->raw_bytes = w->stored_bytes = w->articles = 0;
	w->have_max = false;
	return rc; /* the hash key and dictionaries change after the commit */
}

static int apply_snap_rows(na_writer *w, MDB_txn *txn, const na_wjob *j, na_buf *dec)
{
	for (uint32_t i = 0; i < j->nrows; i++) {
		int rc = insert_key(w, txn, &j->rows[i].key, j->rows[i].rec, j->rows[i].rec_len, dec);
		if (rc)
			return rc;
	}
	return 0;
}

static int apply_trim(na_writer *w, MDB_txn *txn, const na_wjob *j)
{
	na_store *s = w->store;
	uint8_t kb[8], tb[8];
	/* remember when the log reached its head, for age-based trimming */
	na_be64_put(kb, w->seq);
	na_be64_put(tb, j->now_ms);
	MDB_val k = { 8, kb }, v = { 8, tb };
	int rc = mdb_put(txn, s->logtime, &k, &v, 0);
	if (rc)
		return rc;
	uint64_t cut = j->seq; /* drop entries below cut */
	MDB_cursor *cur;
	if ((rc = mdb_cursor_open(txn, s->logtime, &cur)))
		return rc;
	while ((rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) == 0) {
		if (k.mv_size != 8 || v.mv_size != 8)
			break;
		uint64_t seq = na_be64_get(k.mv_data), t = na_be64_get(v.mv_data);
		if (j->max_age_ms == 0 || t + j->max_age_ms > j->now_ms)
			break;
		if (seq + 1 > cut)
			cut = seq + 1;
		if ((rc = mdb_cursor_del(cur, 0)))
			break;
	}
	mdb_cursor_close(cur);
	if (rc && rc != MDB_NOTFOUND)
		return rc;
	if ((rc = mdb_cursor_open(txn, s->log, &cur)))
		return rc;
	unsigned n = 0;
	while (n < 100000 && (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) == 0 &&
	       k.mv_size == 8 && na_be64_get(k.mv_data) < cut) {
		if ((rc = mdb_cursor_del(cur, 0)))
			break;
		n++;
	}
	mdb_cursor_close(cur);
	if (n)
		log_debug("log trimmed: %u entries below %llu", n, (unsigned long long)cut);
	return rc == MDB_NOTFOUND || rc == 0 ? 0 : rc;
}

/* Keeps the log under log_cap bytes: the primary's disk wins over a
 * follower that lags too far (it will get a snapshot). */
static int trim_by_bytes(na_writer *w, MDB_txn *txn)
{
	na_store *s = w->store;
	size_t cap = __atomic_load_n(&w->log_cap, __ATOMIC_RELAXED); /* SIGHUP may change it */
	if (!cap)
		return 0;
	MDB_stat st;
	int rc = mdb_stat(txn, s->log, &st);
	if (rc)
		return rc;
	uint64_t bytes = (uint64_t)(st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages) * st.ms_psize;
	if (bytes <= cap || st.ms_entries == 0)
		return 0;
	uint64_t drop = st.ms_entries - (uint64_t)((double)st.ms_entries * ((double)cap / (double)bytes));
	if (drop == 0)
		drop = 1;
	MDB_cursor *cur;
	MDB_val k, v;
	if ((rc = mdb_cursor_open(txn, s->log, &cur)))
		return rc;
	for (uint64_t i = 0; i < drop && (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) == 0; i++)
		if ((rc = mdb_cursor_del(cur, 0)))
			break;
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static int apply_job(na_writer *w, MDB_txn *txn, na_wjob *j, na_buf *dec)
{
	int rc;
	switch (j->op) {
	case NA_WOP_DICT:
		return apply_dict(w, txn, j);
	case NA_WOP_APPLY:
		for (uint32_t i = 0; i < j->nentries; i++)
			if ((rc = apply_entry(w, txn, &j->entries[i], dec)))
				return rc;
		return 0;
	case NA_WOP_SNAP_BEGIN:
		return apply_snap_begin(w, txn, j);
	case NA_WOP_SNAP_ROWS:
		return apply_snap_rows(w, txn, j, dec);
	case NA_WOP_SNAP_DICT:
		return store_dict(w, txn, j->dict_id, j->dict, j->dict_len);
	case NA_WOP_SNAP_END:
		w->seq = j->seq;
		rc = mdb_del(txn, w->store->meta, &(MDB_val){ 8, "snapshot" }, NULL);
		if (rc && rc != MDB_NOTFOUND)
			return rc;
		/* exact once the log is replayed up to the head the last rows
		 * were read at (replog.c); until then it must not be promoted */
		w->exact_at = j->exact_at > j->seq ? j->exact_at : 0;
		return w->exact_at ? na_meta_put_u64(w->store, txn, "exact_at", w->exact_at) : 0;
	case NA_WOP_PROMOTE: {
		/* Checked here, in order with the follower's jobs: one that was
		 * queued before the promotion (a snapshot that had just begun)
		 * commits first, and a partial copy must never become a primary. */
		MDB_val mv;
		rc = mdb_get(txn, w->store->meta, &(MDB_val){ 8, "snapshot" }, &mv);
		if (rc != MDB_NOTFOUND)
			return rc ? rc : NA_WRITER_EPARTIAL;
		if (w->exact_at)
			return NA_WRITER_EPARTIAL; /* a state the primary never had */
		/* the new history continues the current one up to here */
		na_store *st = w->store;
		uint32_t keep = st->chain_len < 15 ? st->chain_len : 15;
		memcpy(j->chain, st->chain + (size_t)(st->chain_len - keep) * 24, (size_t)keep * 24);
		memcpy(j->chain + keep * 24, st->history, 16);
		na_be64_put(j->chain + keep * 24 + 16, w->seq);
		j->chain_len = keep + 1;
		return put_identity(w, txn, j);
	}
	case NA_WOP_HISTORY:
		return put_identity(w, txn, j);
	case NA_WOP_RECODE:
		/* A key names one immutable version: if it is still there, its
		 * content is what was re-encoded, so only the bytes change. No log
		 * entry: followers keep their own encodings of the same content. */
		for (uint32_t i = 0; i < j->nrows; i++) {
			MDB_val k = { NA_KEY_BYTES, j->rows[i].key.b }, v;
			rc = mdb_get(txn, w->store->articles, &k, &v);
			if (rc == MDB_NOTFOUND)
				continue;
			if (rc)
				return rc;
			if (na_rec_is_block(v.mv_data, v.mv_size))
				continue; /* compacted meanwhile: a block now starts here */
			size_t old = v.mv_size;
			v.mv_size = j->rows[i].rec_len;
			v.mv_data = (void *)j->rows[i].rec;
			if ((rc = mdb_put(txn, w->store->articles, &k, &v, 0)))
				return rc;
			w->stored_bytes = w->stored_bytes - old + j->rows[i].rec_len;
		}
		return 0;
	case NA_WOP_TRIM:
		return apply_trim(w, txn, j);
	case NA_WOP_COMPACT:
		return apply_compact(w, txn, j);
	default:
		break;
	}
	for (uint32_t i = 0; i < j->n; i++) {
		na_witem *it = &j->items[i];
		if (it->skip)
			continue;
		int rc = j->op == NA_WOP_PUT ? apply_put(w, txn, it, dec) : apply_delete(w, txn, it, dec);
		if (rc)
			return rc;
	}
	return 0;
}

/* If the highest key was deleted, find the new one (outside the hot path). */
static int refresh_max(na_writer *w, MDB_txn *txn)
{
	if (w->have_max)
		return 0;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc = mdb_cursor_open(txn, w->store->articles, &cur);
	if (rc)
		return rc;
	rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
	if (rc == 0 && (rc = na_store_entry_last(w->store, &k, &v, &w->max_key)) == 0)
		w->have_max = true;
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Where this group's new guid index entries go (store.h): a group of at
 * least as many items (articles, replicated entries, snapshot rows) as
 * guids has leaf pages rewrites most of them anyway (63% of them for as
 * many random inserts as pages), so it puts straight into guids; smaller
 * groups put into guidnew, and fold as much on into guids. Measured on
 * Reuters x19 (410k articles, ~4,400 leaf pages): groups of ~1,700 ingest
 * ~30% faster through guidnew; groups of ~13,000 were slower through it
 * (each entry written twice, for few pages saved) and are as fast as ever
 * directly. A group that only deletes does not fold: at max_map_size a
 * delete must not need new pages. */
static int choose_guid_table(na_writer *w, MDB_txn *txn, na_wjob *first, na_wjob *stop)
{
	uint64_t items = 0;
	for (na_wjob *j = first; j != stop; j = j->next)
		items += j->n + j->nentries + j->nrows;
	MDB_stat st;
	int rc = mdb_stat(txn, w->store->guids, &st);
	w->guid_direct = rc == 0 && items >= st.ms_leaf_pages;
	w->guidnew_puts = 0;
	return rc;
}

/* apply_group's answers to a group that would eat into the reserve: of the
 * map, or of the filesystem under it */
#define ERESERVE (-10001)
#define EFSRESERVE (-10002)

/* Whether rc says the group did not fit: the map is full, or the group
 * would eat into the reserve. */
static bool no_room(int rc)
{
	return rc == MDB_MAP_FULL || rc == ERESERVE || rc == EFSRESERVE;
}

/* statvfs of the filesystem holding the archive; false if unknown. */
static bool archive_fs(na_store *s, struct statvfs *vfs)
{
	const char *path = NULL;
	return mdb_env_get_path(s->env, &path) == 0 && path && statvfs(path, vfs) == 0;
}

/* What the group adds: NOTHING for groups that only remove things
 * (deletes, log trims, a snapshot's wipe) or change the archive's identity,
 * which may use the reserve; REPLICATED for a follower's copies of what its
 * primary stored (log entries, snapshot rows), which keep half of it: the
 * primary kept the whole, and a follower that stops short of its primary
 * stops following; LOCAL for the rest (puts, dictionaries, new copies of
 * records). A replicated delete counts as removing, so a follower as full
 * as its primary applies the primary's deletes too. */
enum { ADDS_NOTHING, ADDS_REPLICATED, ADDS_LOCAL };

static int adds_data(const na_wjob *first, const na_wjob *stop)
{
	int a = ADDS_NOTHING;
	for (const na_wjob *j = first; j != stop; j = j->next) {
		switch (j->op) {
		case NA_WOP_APPLY:
			for (uint32_t i = 0; i < j->nentries && a == ADDS_NOTHING; i++)
				if (j->entries[i].op != 'D')
					a = ADDS_REPLICATED;
			break;
		case NA_WOP_SNAP_ROWS:
		case NA_WOP_SNAP_DICT:
			if (a == ADDS_NOTHING)
				a = ADDS_REPLICATED;
			break;
		case NA_WOP_PUT:
		case NA_WOP_DICT:
		case NA_WOP_RECODE:
		case NA_WOP_COMPACT:
			return ADDS_LOCAL;
		default:
			break;
		}
	}
	return a;
}

/* What a group writes, in pages, counted generously: records of more than
 * a quarter page take overflow pages of their own; the rest, with ~128
 * bytes an item for its entries in the articles, guid index and log trees,
 * fill leaves that splits leave half full; each item may also copy a leaf
 * of the guid index (the index is keyed by a hash, so a group's items land
 * all over it), at most as many as it has pages (guid_pages); and the
 * trees' upper levels, meta, the main and free-list trees take a few
 * dozen. */
typedef struct gsize {
	uint64_t big, bytes, items; /* overflow pages, bytes in leaves, items */
} gsize;

static void count_item(gsize *g, size_t n, size_t psize)
{
	g->items++;
	g->bytes += 128;
	if (n > psize / 4)
		g->big += (n + psize - 1) / psize;
	else
		g->bytes += n;
}

static uint64_t group_pages(const na_store *s, const na_wjob *first, const na_wjob *stop,
			    uint64_t guid_pages)
{
	gsize g = { 0 };
	size_t psize = s->psize;
	for (const na_wjob *j = first; j != stop; j = j->next) {
		for (uint32_t i = 0; i < j->n; i++)
			count_item(&g, j->items[i].rec_len, psize);
		for (uint32_t i = 0; i < j->nentries; i++)
			count_item(&g, j->entries[i].rec_len + j->entries[i].dict_len, psize);
		for (uint32_t i = 0; i < j->nrows; i++)
			count_item(&g, j->rows[i].rec_len, psize);
		for (uint32_t i = 0; i < j->ncblocks; i++)
			count_item(&g, j->cblocks[i].rec_len, psize);
		if (j->op == NA_WOP_DICT || j->op == NA_WOP_SNAP_DICT)
			count_item(&g, j->dict_len, psize);
	}
	return 64 + g.big + 2 * ((g.bytes + psize - 1) / psize) +
	       (g.items < guid_pages ? g.items : guid_pages);
}

/* Pages of the guid index's tables (leaves and branches). */
static uint64_t guid_index_pages(na_store *s, MDB_txn *txn)
{
	uint64_t p = 0;
	MDB_stat st;
	if (mdb_stat(txn, s->guids, &st) == 0)
		p += st.ms_leaf_pages + st.ms_branch_pages;
	if (s->have_guidnew && mdb_stat(txn, s->guidnew, &st) == 0)
		p += st.ms_leaf_pages + st.ms_branch_pages;
	return p;
}

/* 0 when the group leaves the reserve free, ERESERVE or EFSRESERVE when it
 * might not. Called on the writer thread between write transactions, so a
 * read transaction sees what the group's will start from. The tail the
 * file may still grow by is bounded by the map and by the filesystem's
 * free space, whichever is less. When the free list cannot be read (no
 * reader slot left), the group goes ahead and LMDB has the last word, as
 * before there was a reserve. */
static int check_reserve(na_writer *w, const na_wjob *first, const na_wjob *stop, int adds)
{
	na_store *s = w->store;
	uint64_t reserve = s->reserve_pages;
	MDB_envinfo info;
	mdb_env_info(s->env, &info);
	uint64_t maxpg = s->max_map_size / s->psize, used = (uint64_t)info.me_last_pgno + 1;
	uint64_t tail = maxpg > used ? maxpg - used : 0;
	bool fs = false;
	struct statvfs vfs;
	if (archive_fs(s, &vfs)) {
		uint64_t room = (uint64_t)vfs.f_bavail * vfs.f_frsize / s->psize;
		if (room < tail) {
			/* the filesystem is the limit: the reserve is sized by it */
			uint64_t r = na_store_reserve((size_t)vfs.f_blocks * vfs.f_frsize) / s->psize;
			tail = room;
			reserve = r < reserve ? r : reserve;
			fs = true;
		}
	}
	if (adds == ADDS_REPLICATED)
		reserve /= 2;
	/* far from full: every item may copy a guid index leaf */
	if (tail >= reserve + group_pages(s, first, stop, UINT64_MAX))
		return 0;
	/* LMDB's free list (database 0, readable in a read transaction): each
	 * record is a list of page numbers, the first word its length. No
	 * resize_lock: only this thread changes the map size. */
	MDB_txn *txn;
	MDB_cursor *cur;
	if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn))
		return 0;
	uint64_t need = reserve + group_pages(s, first, stop, guid_index_pages(s, txn));
	if (mdb_cursor_open(txn, 0, &cur)) {
		mdb_txn_abort(txn);
		return 0;
	}
	MDB_val k, v;
	uint64_t freed = 0;
	while (tail + freed < need && mdb_cursor_get(cur, &k, &v, MDB_NEXT) == 0) {
		size_t n;
		if (v.mv_size >= sizeof n) {
			memcpy(&n, v.mv_data, sizeof n);
			freed += n;
		}
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return tail + freed >= need ? 0 : fs ? EFSRESERVE : ERESERVE;
}

/* Relaxed durability: before a commit that will not be synced, the
 * archive's marker must be on disk (store.h), and a sync that overlaps the
 * commit must not remove it; relaxed_end says the commit needs a sync.
 * false: no marker could be written (a full filesystem, say), so the
 * commit must be made the strict way, synced in order, and needs none:
 * the deletes that would free space must still go through. */
static bool relaxed_begin(na_writer *w)
{
	na_store *s = w->store;
	pthread_mutex_lock(&w->sync_lock);
	if (!s->marked) {
		int rc = na_store_mark_unsynced(s);
		if (rc == 0) {
			s->marked = true;
			w->mark_failed = false;
		} else if (!w->mark_failed) {
			w->mark_failed = true;
			log_warn("cannot write %s (%s): commits are synced one by one until it can",
				 s->mark, strerror(-rc));
		}
	}
	bool marked = s->marked;
	if (marked)
		w->committing++;
	pthread_mutex_unlock(&w->sync_lock);
	return marked;
}

static void relaxed_end(na_writer *w, bool committed)
{
	pthread_mutex_lock(&w->sync_lock);
	w->committing--;
	if (committed) {
		w->unsynced = true;
		w->unsynced_seq = w->seq;
	}
	pthread_mutex_unlock(&w->sync_lock);
}

/* Applies jobs [first, stop) in one transaction. locked: the caller holds
 * resize_lock for writing already (the retry with every reader out). */
static int apply_group(na_writer *w, na_wjob *first, na_wjob *stop, bool locked)
{
	na_store *s = w->store;
	wstate st;
	save(w, &st);
	if (atomic_load(&w->sync_error))
		return NA_WRITER_ESYNC;
	MDB_txn *txn;
	int adds = adds_data(first, stop);
	int rc = adds != ADDS_NOTHING ? check_reserve(w, first, stop, adds) : 0;
	if (rc || (rc = mdb_txn_begin(s->env, NULL, 0, &txn)))
		return rc;
	rc = refresh_max(w, txn);
	if (rc == 0)
		rc = choose_guid_table(w, txn, first, stop);
	for (na_wjob *j = first; j != stop && rc == 0; j = j->next)
		rc = apply_job(w, txn, j, &w->scratch);
	if (rc == 0 && w->exact_at && w->seq >= w->exact_at) {
		w->exact_at = 0;
		rc = mdb_del(txn, s->meta, &(MDB_val){ 8, "exact_at" }, NULL);
	}
	if (rc == 0)
		rc = trim_by_bytes(w, txn);
	if (rc == 0 && w->guidnew_puts) /* what it added moves on (store.h) */
		rc = na_guid_fold(s, txn, &w->fold_pos);
	if (rc == 0 && ((rc = na_meta_put_u64(s, txn, "seq", w->seq)) ||
			(rc = na_meta_put_u64(s, txn, "raw_bytes", w->raw_bytes)) ||
			(rc = na_meta_put_u64(s, txn, "stored_bytes", w->stored_bytes)) ||
			(rc = na_meta_put_u64(s, txn, "articles", w->articles)))) {
	}
	if (rc) {
		mdb_txn_abort(txn);
		restore(w, &st);
		group_dicts_done(w, false);
		return rc;
	}
	bool unmarked = w->syncer_on && !relaxed_begin(w);
	if (unmarked)
		mdb_env_set_flags(s->env, MDB_NOSYNC, 0);
	rc = mdb_txn_commit(txn);
	if (unmarked) {
		mdb_env_set_flags(s->env, MDB_NOSYNC, 1);
		if (rc == 0) { /* on disk: synced_seq may say so */
			pthread_mutex_lock(&w->sync_lock);
			if (!w->unsynced && !w->committing)
				atomic_store(&w->synced_seq, w->seq);
			pthread_mutex_unlock(&w->sync_lock);
		}
	} else if (w->syncer_on) {
		relaxed_end(w, rc == 0);
	}
	if (rc) {
		restore(w, &st);
		group_dicts_done(w, false);
		return rc;
	}
	group_dicts_done(w, true);
	MDB_envinfo info; /* this thread alone resizes the map */
	mdb_env_info(s->env, &info);
	atomic_store(&s->used_pages, (uint64_t)info.me_last_pgno + 1);
	for (na_wjob *j = first; j != stop; j = j->next) {
		j->articles = w->articles;
		j->seq_after = w->seq;
		if (j->op == NA_WOP_SNAP_BEGIN || j->op == NA_WOP_HISTORY || j->op == NA_WOP_PROMOTE) {
			if (j->op == NA_WOP_SNAP_BEGIN)
				na_codec_reset_dicts(s->codec); /* the rows bring theirs */
			if (!locked)
				pthread_rwlock_wrlock(&s->resize_lock);
			if (j->op == NA_WOP_SNAP_BEGIN)
				memcpy(s->hash_key, j->hash_key, 16);
			memcpy(s->history, j->history, 16);
			memcpy(s->chain, j->chain, (size_t)j->chain_len * 24);
			s->chain_len = j->chain_len;
			if (j->op == NA_WOP_SNAP_BEGIN)
				s->snapshot_incomplete = true;
			if (!locked)
				pthread_rwlock_unlock(&s->resize_lock);
		} else if (j->op == NA_WOP_SNAP_END) {
			s->snapshot_incomplete = false;
		}
	}
	w->commits++;
	return 0;
}

/* Grows the map; 0, or -ENOSPC when already at the maximum. */
static int grow_map(na_writer *w)
{
	na_store *s = w->store;
	if (s->map_size >= s->max_map_size)
		return -ENOSPC;
	size_t step = s->map_size < ((size_t)4 << 30) ? s->map_size : ((size_t)4 << 30);
	size_t want = s->map_size + step;
	if (want > s->max_map_size)
		want = s->max_map_size;
	pthread_rwlock_wrlock(&s->resize_lock);
	int rc = mdb_env_set_mapsize(s->env, want);
	if (rc == 0) {
		MDB_envinfo info;
		mdb_env_info(s->env, &info);
		s->map_size = info.me_mapsize;
	}
	pthread_rwlock_unlock(&s->resize_lock);
	if (rc) {
		log_error("cannot grow the map to %zu bytes: %s", want, mdb_strerror(rc));
		return -ENOSPC;
	}
	log_info("map grown to %zu MiB", s->map_size >> 20);
	return 0;
}

/* LMDB reports a short write of its pages as EIO, which is what a full
 * filesystem gives once part of a transaction fit. Call it full when the
 * space left to us is under 1% of the filesystem (at least 1 MiB, at most
 * 64 MiB): a short write leaves next to nothing. */
static bool fs_full(na_store *s)
{
	struct statvfs vfs;
	if (!archive_fs(s, &vfs))
		return false;
	uint64_t total = (uint64_t)vfs.f_blocks * vfs.f_frsize;
	uint64_t avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	uint64_t floor = total / 100;
	if (floor < ((uint64_t)1 << 20))
		floor = (uint64_t)1 << 20;
	if (floor > ((uint64_t)64 << 20))
		floor = (uint64_t)64 << 20;
	return avail < floor;
}

static void fail_jobs(na_wjob *first, na_wjob *stop, int code, const char *msg)
{
	for (na_wjob *j = first; j != stop; j = j->next) {
		j->code = code;
		j->msg = msg;
	}
}

/* Applies a group, growing the map as needed; sets codes on failure. */
static void commit_group(na_writer *w, na_wjob *first, na_wjob *stop)
{
	int rc;
	bool drained = false;
	while (no_room(rc = apply_group(w, first, stop, false))) {
		if (rc == MDB_MAP_FULL && grow_map(w) == 0)
			continue;
		if (!drained && rc == MDB_MAP_FULL) {
			/* at the limit: once more with every reader out, so the
			 * pages their snapshots still pin can be reused */
			drained = true;
			pthread_rwlock_wrlock(&w->store->resize_lock);
			rc = apply_group(w, first, stop, true);
			pthread_rwlock_unlock(&w->store->resize_lock);
			if (!no_room(rc))
				break;
		}
		/* at the limit: one job per transaction, so what fits goes in */
		if (first->next == stop) {
			fail_jobs(first, stop, NA_CODE_NO_SPACE,
				  rc == EFSRESERVE
					  ? "the filesystem holding the archive is full; reads still work"
					  : "the archive reached max_map_size; reads still work");
			return;
		}
		for (na_wjob *j = first; j != stop; j = j->next)
			commit_group(w, j, j->next);
		return;
	}
	bool nospace = rc == ENOSPC || rc == EDQUOT || (rc == EIO && fs_full(w->store));
	if (nospace && !drained) {
		/* as at max_map_size: once more with every reader out, so that
		 * the pages the file already has and old snapshots pin can be
		 * reused instead of growing the file */
		pthread_rwlock_wrlock(&w->store->resize_lock);
		rc = apply_group(w, first, stop, true);
		pthread_rwlock_unlock(&w->store->resize_lock);
		nospace = rc == ENOSPC || rc == EDQUOT || (rc == EIO && fs_full(w->store));
	}
	if (nospace) {
		/* the filesystem is full (or over quota): the commit did not reach
		 * the meta page, so LMDB keeps the last committed state; retry one
		 * job at a time so what fits goes in */
		if (first->next != stop) {
			for (na_wjob *j = first; j != stop; j = j->next)
				commit_group(w, j, j->next);
			return;
		}
		log_error("write refused: the filesystem holding the archive is full (%s)",
			  strerror(rc));
		fail_jobs(first, stop, NA_CODE_NO_SPACE,
			  "the filesystem holding the archive is full; reads still work");
	} else if (rc == NA_WRITER_EPARTIAL) {
		fail_jobs(first, stop, NA_CODE_UNAVAILABLE,
			  "this server's copy is not complete yet (a snapshot, or the log "
			  "replay that makes it exact, is in progress)");
	} else if (rc == NA_WRITER_ESYNC) {
		fail_jobs(first, stop, NA_CODE_INTERNAL,
			  "writes are refused: an earlier sync to disk failed; see the server log");
	} else if (rc == NA_WRITER_EGAP) {
		fail_jobs(first, stop, NA_CODE_INTERNAL, "replication gap");
	} else if (rc) {
		log_error("write transaction failed: %s", mdb_strerror(rc));
		fail_jobs(first, stop, NA_CODE_INTERNAL, "write transaction failed; see the server log");
	}
}

/* Jobs that change the archive's identity commit alone, so in-memory state
 * can follow their commit before the next group begins. Compaction commits
 * alone too: if it ever fails, no client's write fails with it. */
static bool solo(const na_wjob *j)
{
	return j->op == NA_WOP_SNAP_BEGIN || j->op == NA_WOP_SNAP_END || j->op == NA_WOP_HISTORY ||
	       j->op == NA_WOP_PROMOTE || j->op == NA_WOP_TRIM || j->op == NA_WOP_COMPACT;
}

static void *writer_main(void *arg)
{
	na_writer *w = arg;
	bool dirty = false;
	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (!w->head && !w->stop)
			pthread_cond_wait(&w->cond, &w->lock);
		if (!w->head && w->stop)
			break;
		/* take a group: whole jobs, up to GROUP_MAX_ITEMS items */
		na_wjob *first = w->head, *last = first;
		uint64_t items = first->n + first->nentries + first->nrows;
		while (!solo(first) && last->next && !solo(last->next) &&
		       items + last->next->n + last->next->nentries + last->next->nrows <= GROUP_MAX_ITEMS) {
			last = last->next;
			items += last->n + last->nentries + last->nrows;
		}
		w->head = last->next;
		if (!w->head)
			w->tail = NULL;
		last->next = NULL;
		pthread_mutex_unlock(&w->lock);

		/* jobs of a replication link that already failed are refused */
		bool refused = false;
		for (na_wjob *j = first; j; j = j->next)
			if (j->link && j->link == w->broken_link)
				refused = true;
		if (refused)
			fail_jobs(first, NULL, NA_CODE_INTERNAL, "an earlier replicated change failed");
		else
			commit_group(w, first, NULL);
		for (na_wjob *j = first; j; j = j->next)
			if (j->committed)
				j->committed(j);
		pthread_mutex_lock(&w->lock);
		if (w->on_commit)
			w->on_commit(w->on_commit_arg, w->seq);
		pthread_mutex_unlock(&w->lock);
		for (na_wjob *j = first; j; j = j->next)
			if (j->link && j->code != NA_CODE_OK)
				w->broken_link = j->link;
		w->committed_items += items;
		dirty = true;

		pthread_mutex_lock(&w->lock);
		if (w->done_tail)
			w->done_tail->next = first;
		else
			w->done_head = first;
		w->done_tail = last;
		pthread_mutex_unlock(&w->lock);
		uv_async_send(&w->async);
		pthread_mutex_lock(&w->lock);
	}
	pthread_mutex_unlock(&w->lock);
	if ((dirty || w->store->marked) && w->relaxed)
		na_writer_sync(w); /* and the marker goes: a clean stop */
	return NULL;
}

int na_writer_sync(na_writer *w)
{
	if (atomic_load(&w->sync_error))
		return atomic_load(&w->sync_error);
	uint64_t seq = 0;
	if (w->syncer_on) {
		pthread_mutex_lock(&w->sync_lock);
		w->unsynced = false;
		seq = w->unsynced_seq;
		pthread_mutex_unlock(&w->sync_lock);
	}
	int rc = mdb_env_sync(w->store->env, 1);
	if (rc) {
		atomic_store(&w->sync_error, rc);
		log_error("cannot sync the archive to disk (%s): writes are refused from now on; "
			  "check the disk, restart newsarchd and run newsarch verify",
			  mdb_strerror(rc));
		return rc;
	}
	if (w->syncer_on) {
		atomic_store(&w->synced_seq, seq);
		pthread_mutex_lock(&w->sync_lock);
		/* nothing committed since the sync began, nor under way */
		if (!w->unsynced && !w->committing && w->store->marked) {
			na_store_unmark_unsynced(w->store);
			w->store->marked = false;
		}
		pthread_mutex_unlock(&w->sync_lock);
	}
	return 0;
}

/* Relaxed durability: the commits are MDB_NOSYNC, and this thread flushes
 * them about once a second. It used to be the writer's job after a commit,
 * and the group just committed then waited for the flush (a second of
 * writes, ~100 ms here) before anyone heard of it; fdatasync beside the
 * writer's commits is safe, LMDB's sync being only that. */
static void *syncer_main(void *arg)
{
	na_writer *w = arg;
	pthread_mutex_lock(&w->sync_lock);
	while (!w->sync_stop) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&w->sync_cond, &w->sync_lock, &ts);
		if (w->unsynced && !w->sync_stop) {
			pthread_mutex_unlock(&w->sync_lock);
			na_writer_sync(w);
			pthread_mutex_lock(&w->sync_lock);
		}
	}
	pthread_mutex_unlock(&w->sync_lock);
	return NULL;
}

static void run_done(uv_async_t *a)
{
	na_writer *w = a->data;
	pthread_mutex_lock(&w->lock);
	na_wjob *j = w->done_head;
	w->done_head = w->done_tail = NULL;
	pthread_mutex_unlock(&w->lock);
	while (j) {
		na_wjob *next = j->next;
		j->done(j);
		j = next;
	}
}

static int load_state(na_writer *w)
{
	na_store *s = w->store;
	uint64_t blocks = 0;
	MDB_txn *txn;
	int rc = na_store_rbegin(s, &txn);
	if (rc)
		return rc;
	if ((rc = na_meta_get_u64(s, txn, "seq", &w->seq)) ||
	    (rc = na_meta_get_u64(s, txn, "raw_bytes", &w->raw_bytes)) ||
	    (rc = na_meta_get_u64(s, txn, "stored_bytes", &w->stored_bytes)) ||
	    (rc = na_store_articles(s, txn, &w->articles)) ||
	    (rc = na_meta_get_u64(s, txn, "blocks", &blocks)) ||
	    (rc = na_meta_get_u64(s, txn, "exact_at", &w->exact_at)))
		goto out;
	w->any_blocks = blocks != 0;
	w->have_max = false;
	rc = refresh_max(w, txn);
out:
	na_store_rend(s, txn);
	return rc;
}

int na_writer_start(na_writer *w, na_store *s, uv_loop_t *loop, bool relaxed)
{
	memset(w, 0, sizeof *w);
	w->store = s;
	w->relaxed = relaxed;
	if (!(w->blk = malloc(sizeof *w->blk)))
		return -ENOMEM;
	int rc = load_state(w);
	if (rc) {
		free(w->blk);
		w->blk = NULL;
		return rc;
	}
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	if (loop) {
		uv_async_init(loop, &w->async, run_done);
		w->async.data = w;
		if ((rc = pthread_create(&w->thread, NULL, writer_main, w))) {
			uv_close((uv_handle_t *)&w->async, NULL);
			return -rc;
		}
		w->started = true;
		if (relaxed) {
			atomic_store(&w->synced_seq, w->seq); /* what the store opened with */
			pthread_mutex_init(&w->sync_lock, NULL);
			pthread_cond_init(&w->sync_cond, NULL);
			if (pthread_create(&w->syncer, NULL, syncer_main, w) == 0) {
				w->syncer_on = true;
			} else {
				/* no syncer: sync every commit rather than never */
				log_warn("could not start the sync thread: relaxed durability acts as strict");
				mdb_env_set_flags(s->env, MDB_NOSYNC, 0);
			}
		}
	}
	return 0;
}

uint64_t na_writer_synced_seq(na_writer *w)
{
	return w->syncer_on ? atomic_load(&w->synced_seq) : UINT64_MAX;
}

void na_writer_submit(na_writer *w, na_wjob *job)
{
	job->next = NULL;
	job->code = NA_CODE_OK;
	job->msg = NULL;
	pthread_mutex_lock(&w->lock);
	if (w->tail)
		w->tail->next = job;
	else
		w->head = job;
	w->tail = job;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

static void free_buffers(na_writer *w)
{
	free(w->scratch.data);
	free(w->blockbuf.data);
	free(w->blockbuf2.data);
	free(w->blk);
	free(w->grp_dicts);
	w->scratch = w->blockbuf = w->blockbuf2 = (na_buf){ 0 };
	w->blk = NULL;
	w->grp_dicts = NULL;
	w->grp_ndicts = w->grp_cap = 0;
}

void na_writer_stop(na_writer *w)
{
	if (!w->started) {
		free_buffers(w);
		return;
	}
	pthread_mutex_lock(&w->lock);
	w->stop = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL); /* its last act is a final sync */
	if (w->syncer_on) {
		pthread_mutex_lock(&w->sync_lock);
		w->sync_stop = true;
		pthread_cond_signal(&w->sync_cond);
		pthread_mutex_unlock(&w->sync_lock);
		pthread_join(w->syncer, NULL);
		pthread_mutex_destroy(&w->sync_lock);
		pthread_cond_destroy(&w->sync_cond);
		w->syncer_on = false;
	}
	/* only now: the thread drains its queue first (a follower's jobs are
	 * not requests, so they may still be queued at shutdown) and uses
	 * scratch until it has */
	free_buffers(w);
	run_done(&w->async);
	uv_close((uv_handle_t *)&w->async, NULL);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
	w->started = false;
}

void na_writer_set_hook(na_writer *w, void (*fn)(void *arg, uint64_t seq), void *arg)
{
	if (w->started)
		pthread_mutex_lock(&w->lock);
	w->on_commit = fn;
	w->on_commit_arg = arg;
	if (w->started)
		pthread_mutex_unlock(&w->lock);
}

int na_writer_apply_now(na_writer *w, na_wjob *job)
{
	job->next = NULL;
	job->code = NA_CODE_OK;
	commit_group(w, job, NULL);
	if (job->committed)
		job->committed(job);
	return job->code;
}
