/*
 * store.c - the LMDB environment and all reads.
 *
 * Tables (named databases in one environment, so one transaction covers a
 * change and its log entry):
 *   articles  key(16) -> record            time order, see key.h, codec.h
 *   guids     siphash(guid)(8) -> key(16)  MDB_DUPSORT|MDB_DUPFIXED; a hash
 *             shared by two guids simply has two values, told apart by
 *             decoding the candidates' guid
 *   meta      name -> value                schema, archive id, hash key,
 *             counters (seq, raw/stored bytes), current dictionary
 *   dicts     id(4) -> zstd dictionary
 *   log       seq(8) -> change             see writer.c
 *
 * The environment is opened with MDB_NOTLS so read transactions belong to
 * no thread: the event loop and worker threads begin and end them freely.
 * Reads hold resize_lock shared for the life of their transaction so the
 * writer can grow the map safely.
 */
#include "store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "hash.h"
#include "log.h"
#include "rpc.h"

static int get_meta(MDB_txn *txn, MDB_dbi dbi, const char *name, MDB_val *v)
{
	MDB_val k = { strlen(name), (void *)name };
	return mdb_get(txn, dbi, &k, v);
}

static int put_meta(MDB_txn *txn, MDB_dbi dbi, const char *name, const void *p, size_t n)
{
	MDB_val k = { strlen(name), (void *)name }, v = { n, (void *)p };
	return mdb_put(txn, dbi, &k, &v, 0);
}

int na_meta_get(na_store *s, MDB_txn *txn, const char *name, MDB_val *v)
{
	return get_meta(txn, s->meta, name, v);
}

int na_meta_put(na_store *s, MDB_txn *txn, const char *name, const void *p, size_t n)
{
	return put_meta(txn, s->meta, name, p, n);
}

int na_store_log_first(na_store *s, MDB_txn *txn, uint64_t *seq)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc = mdb_cursor_open(txn, s->log, &cur);
	if (rc)
		return rc;
	rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	*seq = rc == 0 && k.mv_size == 8 ? na_be64_get(k.mv_data) : 0;
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

void na_hex16(const uint8_t *b, char *out)
{
	static const char hx[] = "0123456789abcdef";
	for (int i = 0; i < 16; i++) {
		out[2 * i] = hx[b[i] >> 4];
		out[2 * i + 1] = hx[b[i] & 15];
	}
	out[32] = 0;
}

int na_meta_get_u64(na_store *s, MDB_txn *txn, const char *name, uint64_t *out)
{
	MDB_val v;
	int rc = get_meta(txn, s->meta, name, &v);
	if (rc == MDB_NOTFOUND) {
		*out = 0;
		return 0;
	}
	if (rc)
		return rc;
	if (v.mv_size != 8)
		return MDB_CORRUPTED;
	*out = na_be64_get(v.mv_data);
	return 0;
}

int na_meta_put_u64(na_store *s, MDB_txn *txn, const char *name, uint64_t val)
{
	uint8_t b[8];
	na_be64_put(b, val);
	return put_meta(txn, s->meta, name, b, 8);
}

uint64_t na_store_guid_hash(const na_store *s, const char *guid, uint32_t n)
{
	return na_siphash(s->hash_key, guid, n);
}

static int load_dicts(na_store *s, MDB_txn *txn)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc = mdb_cursor_open(txn, s->dicts, &cur);
	if (rc)
		return rc;
	while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
		if (k.mv_size != 4) {
			rc = MDB_CORRUPTED;
			break;
		}
		const uint8_t *p = k.mv_data;
		uint32_t id = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
		rc = na_codec_add_dict(s->codec, id, v.mv_data, v.mv_size);
		if (rc) {
			log_error("dictionary %u is unusable (%d)", id, rc);
			rc = MDB_CORRUPTED;
			break;
		}
	}
	mdb_cursor_close(cur);
	if (rc != MDB_NOTFOUND)
		return rc;
	uint64_t cur_id;
	rc = na_meta_get_u64(s, txn, "dict", &cur_id);
	if (rc)
		return rc;
	na_codec_use_dict(s->codec, (uint32_t)cur_id);
	return 0;
}

static int init_meta(na_store *s, MDB_txn *txn, bool readonly, const char **msg)
{
	MDB_val v;
	int rc = get_meta(txn, s->meta, "schema", &v);
	if (rc == MDB_NOTFOUND) {
		if (readonly) {
			*msg = "not a newsarch archive (no schema record)";
			return -EINVAL;
		}
		uint8_t schema[8];
		na_be64_put(schema, NA_SCHEMA_VERSION);
		if (getrandom(s->hash_key, 16, 0) != 16 || getrandom(s->archive_id, 16, 0) != 16 ||
		    getrandom(s->history, 16, 0) != 16) {
			*msg = "getrandom failed";
			return -EIO;
		}
		if ((rc = put_meta(txn, s->meta, "schema", schema, 8)) ||
		    (rc = put_meta(txn, s->meta, "hash_key", s->hash_key, 16)) ||
		    (rc = put_meta(txn, s->meta, "archive_id", s->archive_id, 16)) ||
		    (rc = put_meta(txn, s->meta, "history", s->history, 16))) {
			*msg = "cannot initialise the meta table";
			return rc;
		}
		return 0;
	}
	if (rc) {
		*msg = "cannot read the meta table";
		return rc;
	}
	if (v.mv_size != 8 || na_be64_get(v.mv_data) != NA_SCHEMA_VERSION) {
		*msg = "unsupported archive schema version";
		return -EINVAL;
	}
	if (get_meta(txn, s->meta, "hash_key", &v) || v.mv_size != 16) {
		*msg = "archive meta table lacks its hash key";
		return -EINVAL;
	}
	memcpy(s->hash_key, v.mv_data, 16);
	if (get_meta(txn, s->meta, "archive_id", &v) || v.mv_size != 16) {
		*msg = "archive meta table lacks its id";
		return -EINVAL;
	}
	memcpy(s->archive_id, v.mv_data, 16);
	if (get_meta(txn, s->meta, "history", &v) || v.mv_size != 16) {
		*msg = "archive meta table lacks its history id";
		return -EINVAL;
	}
	memcpy(s->history, v.mv_data, 16);
	if (get_meta(txn, s->meta, "chain", &v) == 0) {
		if (v.mv_size % 24 || v.mv_size > sizeof s->chain) {
			*msg = "archive history chain is malformed";
			return -EINVAL;
		}
		memcpy(s->chain, v.mv_data, v.mv_size);
		s->chain_len = (uint32_t)(v.mv_size / 24);
	}
	s->snapshot_incomplete = get_meta(txn, s->meta, "snapshot", &v) == 0;
	return 0;
}

/*
 * A primary takes a new history id at every start, remembering the old one
 * up to its last committed sequence number. Followers that are at or below
 * that point continue by streaming; one that holds entries beyond it (which
 * a restored backup, or a crash with relaxed durability, no longer has) gets
 * a snapshot instead of resuming on a history that now diverges.
 */
static int fork_history(na_store *s, MDB_txn *txn)
{
	uint64_t seq = 0;
	int rc = na_meta_get_u64(s, txn, "seq", &seq);
	if (rc)
		return rc;
	uint32_t keep = s->chain_len < 15 ? s->chain_len : 15;
	uint8_t chain[16 * 24];
	memcpy(chain, s->chain + (size_t)(s->chain_len - keep) * 24, (size_t)keep * 24);
	memcpy(chain + keep * 24, s->history, 16);
	na_be64_put(chain + keep * 24 + 16, seq);
	uint8_t h[16];
	if (getrandom(h, 16, 0) != 16)
		return -EIO;
	if ((rc = put_meta(txn, s->meta, "history", h, 16)) ||
	    (rc = put_meta(txn, s->meta, "chain", chain, (size_t)(keep + 1) * 24)))
		return rc;
	memcpy(s->history, h, 16);
	memcpy(s->chain, chain, (size_t)(keep + 1) * 24);
	s->chain_len = keep + 1;
	return 0;
}

int na_store_open(na_store *s, const na_store_opts *o, const char **msg)
{
	memset(s, 0, sizeof *s);
	*msg = "";
	s->max_map_size = o->max_map_size;
	s->max_article = o->max_article;
	pthread_rwlockattr_t ra;
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&s->resize_lock, &ra);
	pthread_rwlockattr_destroy(&ra);
	pthread_mutex_init(&s->txn_lock, NULL);
	if (!o->readonly && mkdir(o->dir, 0750) != 0 && errno != EEXIST) {
		*msg = "cannot create the data directory";
		return -errno;
	}
	/* the codec refuses records claiming more than the largest article any
	 * configuration allows (a primary may allow more than we do) */
	int rc = na_codec_create(o->level, NA_MAX_ARTICLE_HARD, &s->codec);
	if (rc) {
		*msg = "out of memory";
		return rc;
	}
	unsigned flags = MDB_NOTLS | MDB_NORDAHEAD;
	if (o->relaxed)
		flags |= MDB_NOSYNC;
	if (o->readonly)
		flags |= MDB_RDONLY;
	if ((rc = mdb_env_create(&s->env)) || (rc = mdb_env_set_maxdbs(s->env, 16)) ||
	    (rc = mdb_env_set_maxreaders(s->env, 1024)) ||
	    (rc = mdb_env_set_mapsize(s->env, o->map_size))) {
		*msg = "cannot create the LMDB environment";
		goto fail;
	}
	if ((rc = mdb_env_open(s->env, o->dir, flags, 0640))) {
		*msg = "cannot open the LMDB environment";
		goto fail;
	}
	int dead = 0;
	mdb_reader_check(s->env, &dead);
	if (dead)
		log_warn("cleared %d stale reader slots", dead);
	MDB_envinfo info;
	MDB_stat st;
	mdb_env_info(s->env, &info);
	mdb_env_stat(s->env, &st);
	s->map_size = info.me_mapsize;
	s->psize = st.ms_psize;

	MDB_txn *txn;
	if ((rc = mdb_txn_begin(s->env, NULL, o->readonly ? MDB_RDONLY : 0, &txn))) {
		*msg = "cannot begin the opening transaction";
		goto fail;
	}
	unsigned c = o->readonly ? 0 : MDB_CREATE;
	if ((rc = mdb_dbi_open(txn, "meta", c, &s->meta)) ||
	    (rc = mdb_dbi_open(txn, "articles", c, &s->articles)) ||
	    (rc = mdb_dbi_open(txn, "guids", c | MDB_DUPSORT | MDB_DUPFIXED, &s->guids)) ||
	    (rc = mdb_dbi_open(txn, "dicts", c, &s->dicts)) ||
	    (rc = mdb_dbi_open(txn, "log", c, &s->log)) ||
	    (rc = mdb_dbi_open(txn, "logtime", c, &s->logtime))) {
		*msg = rc == MDB_NOTFOUND ? "not a newsarch archive (tables missing)"
					  : "cannot open the tables";
		mdb_txn_abort(txn);
		goto fail;
	}
	s->have_index = true;
	if ((rc = mdb_dbi_open(txn, "ixpost", c, &s->ixpost)) ||
	    (rc = mdb_dbi_open(txn, "ixdocs", c, &s->ixdocs)) ||
	    (rc = mdb_dbi_open(txn, "ixrange", c, &s->ixrange))) {
		if (!(o->readonly && rc == MDB_NOTFOUND)) {
			*msg = "cannot open the index tables";
			mdb_txn_abort(txn);
			goto fail;
		}
		s->have_index = false;
		rc = 0;
	}
	if ((rc = init_meta(s, txn, o->readonly, msg))) {
		mdb_txn_abort(txn);
		goto fail;
	}
	if (o->fork_history && !s->snapshot_incomplete && (rc = fork_history(s, txn))) {
		*msg = "cannot start a new history";
		mdb_txn_abort(txn);
		goto fail;
	}
	if ((rc = load_dicts(s, txn))) {
		*msg = "cannot load the compression dictionaries";
		mdb_txn_abort(txn);
		goto fail;
	}
	/* commit even when read-only: aborting would close the table handles */
	if ((rc = mdb_txn_commit(txn))) {
		*msg = "cannot commit the opening transaction";
		goto fail;
	}
	return 0;
fail:
	if (s->env)
		mdb_env_close(s->env);
	s->env = NULL;
	na_codec_destroy(s->codec);
	s->codec = NULL;
	pthread_rwlock_destroy(&s->resize_lock);
	pthread_mutex_destroy(&s->txn_lock);
	return rc;
}

static void drop_free_txns(na_store *s);

void na_store_close(na_store *s)
{
	drop_free_txns(s);
	pthread_mutex_destroy(&s->txn_lock);
	if (s->env) {
		mdb_env_sync(s->env, 1);
		mdb_env_close(s->env);
	}
	na_codec_destroy(s->codec);
	pthread_rwlock_destroy(&s->resize_lock);
	s->env = NULL;
	s->codec = NULL;
}

int na_store_rbegin(na_store *s, MDB_txn **txn)
{
	pthread_rwlock_rdlock(&s->resize_lock);
	MDB_txn *t = NULL;
	pthread_mutex_lock(&s->txn_lock);
	if (s->txn_free_n)
		t = s->txn_free[--s->txn_free_n];
	pthread_mutex_unlock(&s->txn_lock);
	if (t && mdb_txn_renew(t) != 0) {
		mdb_txn_abort(t);
		t = NULL;
	}
	int rc = t ? 0 : mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t);
	if (rc) {
		pthread_rwlock_unlock(&s->resize_lock);
		return rc;
	}
	*txn = t;
	return 0;
}

void na_store_rend(na_store *s, MDB_txn *txn)
{
	mdb_txn_reset(txn);
	pthread_mutex_lock(&s->txn_lock);
	if (s->txn_free_n < sizeof s->txn_free / sizeof s->txn_free[0]) {
		s->txn_free[s->txn_free_n++] = txn;
		txn = NULL;
	}
	pthread_mutex_unlock(&s->txn_lock);
	if (txn)
		mdb_txn_abort(txn);
	pthread_rwlock_unlock(&s->resize_lock);
}

static void drop_free_txns(na_store *s)
{
	while (s->txn_free_n)
		mdb_txn_abort(s->txn_free[--s->txn_free_n]);
}

int na_store_get(na_store *s, MDB_txn *txn, const na_key *key, const uint8_t **rec, size_t *len)
{
	MDB_val k = { NA_KEY_BYTES, (void *)key->b }, v;
	int rc = mdb_get(txn, s->articles, &k, &v);
	if (rc)
		return rc;
	*rec = v.mv_data;
	*len = v.mv_size;
	return 0;
}

int na_store_next(na_store *s, MDB_txn *txn, const na_key *after, na_key *key, const uint8_t **rec,
		  size_t *len)
{
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn, s->articles, &cur);
	if (rc)
		return rc;
	MDB_val k, v;
	if (after) {
		k.mv_size = NA_KEY_BYTES;
		k.mv_data = (void *)after->b;
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		if (rc == 0 && k.mv_size == NA_KEY_BYTES && memcmp(k.mv_data, after->b, NA_KEY_BYTES) == 0)
			rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	} else {
		rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	}
	if (rc == 0 && k.mv_size != NA_KEY_BYTES)
		rc = MDB_CORRUPTED;
	if (rc == 0) {
		memcpy(key->b, k.mv_data, NA_KEY_BYTES);
		*rec = v.mv_data;
		*len = v.mv_size;
	}
	mdb_cursor_close(cur);
	return rc;
}

int na_store_decode(na_store *s, const uint8_t *rec, size_t len, uint8_t **buf, size_t *cap,
		    size_t *outlen)
{
	na_rec r;
	if (na_rec_parse(s->codec, rec, len, &r))
		return -EIO;
	if (*cap < r.raw_len || !*buf) {
		size_t want = r.raw_len < 4096 ? 4096 : r.raw_len;
		uint8_t *nb = realloc(*buf, want);
		if (!nb)
			return -ENOMEM;
		*buf = nb;
		*cap = want;
	}
	int rc = na_codec_decode(s->codec, rec, len, *buf, *cap, outlen);
	return rc == -ENOMEM ? rc : rc ? -EIO : 0;
}

int na_store_find(na_store *s, MDB_txn *txn, const char *guid, uint32_t gn, na_key *key,
		  const uint8_t **recp, size_t *reclenp, na_buf *dec)
{
	uint8_t hb[8];
	na_be64_put(hb, na_store_guid_hash(s, guid, gn));
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn, s->guids, &cur);
	if (rc)
		return rc;
	MDB_val k = { 8, hb }, v;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_DUP)) {
		if (v.mv_size != NA_KEY_BYTES) {
			rc = MDB_CORRUPTED;
			break;
		}
		MDB_val ak = { NA_KEY_BYTES, v.mv_data }, av;
		rc = mdb_get(txn, s->articles, &ak, &av);
		if (rc == MDB_NOTFOUND) {
			rc = MDB_CORRUPTED;
			break;
		}
		if (rc)
			break;
		const char *g;
		uint32_t glen;
		if (na_store_decode(s, av.mv_data, av.mv_size, &dec->data, &dec->cap, &dec->len) ||
		    na_article_guid(dec->data, dec->len, &g, &glen)) {
			rc = MDB_CORRUPTED;
			break;
		}
		if (glen == gn && memcmp(g, guid, gn) == 0) {
			memcpy(key->b, v.mv_data, NA_KEY_BYTES);
			*recp = av.mv_data;
			*reclenp = av.mv_size;
			break;
		}
	}
	mdb_cursor_close(cur);
	return rc;
}

/* Appends one article (decoded, maybe projected) to an sbuffer. */
static int emit(na_store *s, const na_range_q *q, const MDB_val *v, msgpack_sbuffer *sb,
		uint8_t **tmp, size_t *tmpcap)
{
	na_rec r;
	if (na_rec_parse(s->codec, v->mv_data, v->mv_size, &r))
		return -EIO;
	if (!q->project) {
		/* decode straight into the output buffer */
		if (sb->alloc - sb->size < r.raw_len) {
			size_t na = sb->alloc ? sb->alloc : 65536;
			while (na - sb->size < r.raw_len)
				na *= 2;
			char *nd = realloc(sb->data, na);
			if (!nd)
				return -ENOMEM;
			sb->data = nd;
			sb->alloc = na;
		}
		size_t n;
		if (na_codec_decode(s->codec, v->mv_data, v->mv_size, (uint8_t *)sb->data + sb->size,
				    r.raw_len, &n))
			return -EIO;
		sb->size += n;
		return 0;
	}
	size_t n;
	int rc = na_store_decode(s, v->mv_data, v->mv_size, tmp, tmpcap, &n);
	if (rc)
		return rc;
	msgpack_packer pk;
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	return na_article_project(&pk, *tmp, n, &q->fields) ? -EIO : 0;
}

int na_store_range(na_store *s, const na_range_q *q, msgpack_packer *pk)
{
	MDB_txn *txn;
	int rc = na_store_rbegin(s, &txn);
	if (rc)
		return rc;
	MDB_cursor *cur;
	if ((rc = mdb_cursor_open(txn, s->articles, &cur))) {
		na_store_rend(s, txn);
		return rc;
	}
	/* Articles are decoded straight into the reply buffer when the packer
	 * writes to an sbuffer; the array32 header's count is patched at the end. */
	msgpack_sbuffer own, *sb = &own;
	bool direct = pk->callback == msgpack_sbuffer_write;
	size_t count_at = 0;
	msgpack_sbuffer_init(&own);
	if (direct) {
		sb = pk->data;
		msgpack_pack_map(pk, 2);
		na_mp_pack_cstr(pk, "articles");
		static const uint8_t a32[5] = { 0xdd, 0, 0, 0, 0 };
		count_at = sb->size;
		msgpack_sbuffer_write(sb, (const char *)a32, 5);
	}
	uint8_t *tmp = NULL;
	size_t tmpcap = 0;
	na_key lo, hi, last;
	if (q->has_from) na_key_floor(&lo, q->from);
	if (q->has_to) na_key_floor(&hi, q->to);
	MDB_val k, v;
	uint32_t count = 0;
	bool more = false;
	/* position on the first candidate */
	if (!q->reverse) {
		if (q->has_after) {
			k.mv_size = NA_KEY_BYTES;
			k.mv_data = (void *)q->after.b;
			rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
			if (rc == 0 && memcmp(k.mv_data, q->after.b, NA_KEY_BYTES) == 0)
				rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
			if (rc == 0 && q->has_from && memcmp(k.mv_data, lo.b, NA_KEY_BYTES) < 0) {
				k.mv_data = lo.b;
				rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
			}
		} else if (q->has_from) {
			k.mv_size = NA_KEY_BYTES;
			k.mv_data = lo.b;
			rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		} else {
			rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
		}
	} else {
		/* the first key strictly below the bound, walking backwards */
		const uint8_t *bound = q->has_after ? q->after.b : q->has_to ? hi.b : NULL;
		if (q->has_after && q->has_to && memcmp(hi.b, q->after.b, NA_KEY_BYTES) < 0)
			bound = hi.b;
		if (bound) {
			k.mv_size = NA_KEY_BYTES;
			k.mv_data = (void *)bound;
			rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
			if (rc == 0)
				rc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
			else if (rc == MDB_NOTFOUND)
				rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
		} else {
			rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
		}
	}
	while (rc == 0) {
		if (k.mv_size != NA_KEY_BYTES) {
			rc = -EIO;
			break;
		}
		if (!q->reverse && q->has_to && memcmp(k.mv_data, hi.b, NA_KEY_BYTES) >= 0)
			break;
		if (q->reverse && q->has_from && memcmp(k.mv_data, lo.b, NA_KEY_BYTES) < 0)
			break;
		if (count == q->limit || (count > 0 && sb->size > NA_RANGE_MAX_BYTES)) {
			more = true; /* the page is full: by count or by bytes */
			break;
		}
		if ((rc = emit(s, q, &v, sb, &tmp, &tmpcap)))
			break;
		memcpy(last.b, k.mv_data, NA_KEY_BYTES);
		count++;
		rc = mdb_cursor_get(cur, &k, &v, q->reverse ? MDB_PREV : MDB_NEXT);
	}
	if (rc == MDB_NOTFOUND)
		rc = 0;
	mdb_cursor_close(cur);
	na_store_rend(s, txn);
	free(tmp);
	if (rc == 0) {
		if (direct) {
			uint8_t *c = (uint8_t *)sb->data + count_at + 1;
			c[0] = (uint8_t)(count >> 24);
			c[1] = (uint8_t)(count >> 16);
			c[2] = (uint8_t)(count >> 8);
			c[3] = (uint8_t)count;
		} else {
			msgpack_pack_map(pk, 2);
			na_mp_pack_cstr(pk, "articles");
			msgpack_pack_array(pk, count);
			na_mp_pack_raw(pk, own.data, own.size);
		}
		na_mp_pack_cstr(pk, "next");
		if (more) {
			msgpack_pack_bin(pk, NA_KEY_BYTES);
			msgpack_pack_bin_body(pk, last.b, NA_KEY_BYTES);
		} else {
			msgpack_pack_nil(pk);
		}
	}
	msgpack_sbuffer_destroy(&own);
	return rc;
}

int na_store_count(na_store *s, bool has_from, int64_t from, bool has_to, int64_t to, uint64_t *n)
{
	MDB_txn *txn;
	int rc = na_store_rbegin(s, &txn);
	if (rc)
		return rc;
	*n = 0;
	if (!has_from && !has_to) {
		MDB_stat st;
		rc = mdb_stat(txn, s->articles, &st);
		*n = st.ms_entries;
		na_store_rend(s, txn);
		return rc;
	}
	MDB_cursor *cur;
	if ((rc = mdb_cursor_open(txn, s->articles, &cur))) {
		na_store_rend(s, txn);
		return rc;
	}
	na_key lo, hi;
	MDB_val k, v;
	if (has_to) na_key_floor(&hi, to);
	if (has_from) {
		na_key_floor(&lo, from);
		k.mv_size = NA_KEY_BYTES;
		k.mv_data = lo.b;
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	} else {
		rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	}
	while (rc == 0) {
		if (has_to && (k.mv_size != NA_KEY_BYTES || memcmp(k.mv_data, hi.b, NA_KEY_BYTES) >= 0))
			break;
		(*n)++;
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	if (rc == MDB_NOTFOUND)
		rc = 0;
	mdb_cursor_close(cur);
	na_store_rend(s, txn);
	return rc;
}

static uint64_t pages(const MDB_stat *st)
{
	return (uint64_t)(st->ms_branch_pages + st->ms_leaf_pages + st->ms_overflow_pages) * st->ms_psize;
}

int na_store_stats_get(na_store *s, na_store_stats *o)
{
	memset(o, 0, sizeof *o);
	MDB_txn *txn;
	int rc = na_store_rbegin(s, &txn);
	if (rc)
		return rc;
	MDB_stat st;
	MDB_envinfo info;
	MDB_dbi all[] = { s->articles, s->guids, s->meta, s->dicts, s->log };
	for (size_t i = 0; i < sizeof all / sizeof all[0] && rc == 0; i++) {
		rc = mdb_stat(txn, all[i], &st);
		if (i == 0)
			o->articles = st.ms_entries;
		o->page_bytes += pages(&st);
	}
	if (rc == 0 && (rc = mdb_stat(txn, 0, &st)) == 0) /* the main db */
		o->page_bytes += pages(&st);
	MDB_dbi ix[] = { s->ixpost, s->ixdocs, s->ixrange };
	for (size_t i = 0; s->have_index && i < 3 && rc == 0; i++)
		if ((rc = mdb_stat(txn, ix[i], &st)) == 0)
			o->index_bytes += pages(&st);
	o->page_bytes += o->index_bytes;
	if (rc == 0)
		rc = na_meta_get_u64(s, txn, "raw_bytes", &o->raw_bytes);
	if (rc == 0)
		rc = na_meta_get_u64(s, txn, "stored_bytes", &o->stored_bytes);
	if (rc == 0)
		rc = na_meta_get_u64(s, txn, "seq", &o->seq);
	mdb_env_info(s->env, &info);
	o->map_size = info.me_mapsize;
	o->map_used = (uint64_t)(info.me_last_pgno + 1) * s->psize;
	o->dict = na_codec_current_dict(s->codec);
	o->dict_bytes = na_codec_dict_size(s->codec, o->dict);
	na_store_rend(s, txn);
	return rc;
}
