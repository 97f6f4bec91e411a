/*
 * store.c - the LMDB environment and all reads.
 *
 * Tables (named databases in one environment, so one transaction covers a
 * change and its log entry):
 *   articles  key(16) -> record            time order, see key.h, codec.h;
 *             a record is one article, or a block of articles adjacent in
 *             key order stored under its first live member's key
 *   guids     siphash(guid)(8) -> key(16)  MDB_DUPSORT|MDB_DUPFIXED; a hash
 *             shared by two guids simply has two values, told apart by
 *             decoding the candidates' guid
 *   guidnew   the same, for entries not yet folded into guids (store.h
 *             says why); an entry is in one of the two, lookups read both
 *   meta      name -> value                schema, archive id, hash key,
 *             counters (seq, raw/stored bytes), current dictionary
 *   dicts     id(4) -> zstd dictionary
 *   log       seq(8) -> change             see writer.c
 * The full-text index has its own environment in DIR/index (index.h): it
 * is derived from the articles, written by the indexer thread alone, and
 * its commits and fsyncs run beside the writer's instead of inside them.
 *
 * Blocks (codec.h, compact.c). An article key names either a single
 * record stored under it or a live member of a block stored under an
 * earlier key. Invariant: no entry's key lies between the first and last
 * live member of a block (the writer splits a block a new key would fall
 * into), so entries are disjoint intervals of keys. Then:
 *   - lookup by key (na_store_locate): exact get; else the entry just
 *     before (SET_RANGE, PREV) is the only block that can hold it, and a
 *     binary search of its member table decides;
 *   - walking in key order (range, count, walk) visits entries in order
 *     and, inside a block, its live members; a start inside a block is
 *     found by looking one entry back; each block is decoded once per walk
 *     and only when one of its members is emitted (count decodes nothing);
 *   - the guid index keeps pointing at article keys, so it never changes
 *     when articles move into blocks.
 * na_store_decode handles single records only; readers that want articles
 * by key use na_store_read_key, or na_store_walk for a scan.
 *
 * Measured (Reuters corpus, 2 shared cores, in process): a get from a 32 KiB
 * block costs ~26x the instructions of a get of a single record (the whole
 * frame is decoded), and a range of 100 ~1.3x (decoding is per output byte
 * in zstd, so a frame per article is not the bound; partial blocks at the
 * ends of the range add work). Blocks save ~25% of the bytes on disk. That
 * is why compaction is off unless block_bytes is set.
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
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

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

/* A u64 meta entry of either environment; a missing one reads as 0. */
static int get_meta_u64(MDB_txn *txn, MDB_dbi dbi, const char *name, uint64_t *out)
{
	MDB_val v;
	int rc = get_meta(txn, dbi, name, &v);
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

static int put_meta_u64(MDB_txn *txn, MDB_dbi dbi, const char *name, uint64_t val)
{
	uint8_t b[8];
	na_be64_put(b, val);
	return put_meta(txn, dbi, name, b, 8);
}

int na_meta_get_u64(na_store *s, MDB_txn *txn, const char *name, uint64_t *out)
{
	return get_meta_u64(txn, s->meta, name, out);
}

int na_meta_put_u64(na_store *s, MDB_txn *txn, const char *name, uint64_t val)
{
	return put_meta_u64(txn, s->meta, name, val);
}

int na_ixmeta_get(na_store *s, MDB_txn *txn, const char *name, MDB_val *v)
{
	return get_meta(txn, s->ixmeta, name, v);
}

int na_ixmeta_put(na_store *s, MDB_txn *txn, const char *name, const void *p, size_t n)
{
	return put_meta(txn, s->ixmeta, name, p, n);
}

int na_ixmeta_get_u64(na_store *s, MDB_txn *txn, const char *name, uint64_t *out)
{
	return get_meta_u64(txn, s->ixmeta, name, out);
}

int na_ixmeta_put_u64(na_store *s, MDB_txn *txn, const char *name, uint64_t val)
{
	return put_meta_u64(txn, s->ixmeta, name, val);
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

/* guidnew came with schema 3: a read-only open of an older archive goes
 * without it (it would be empty). */
static int open_guidnew(na_store *s, MDB_txn *txn, unsigned c)
{
	int rc = mdb_dbi_open(txn, "guidnew", c | MDB_DUPSORT | MDB_DUPFIXED, &s->guidnew);
	s->have_guidnew = rc == 0;
	return rc == MDB_NOTFOUND && !c ? 0 : rc;
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
		    (rc = na_meta_put_u64(s, txn, "articles", 0)) ||
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
	uint64_t version = v.mv_size == 8 ? na_be64_get(v.mv_data) : 0;
	if (version < 1 || version > NA_SCHEMA_VERSION) {
		*msg = "unsupported archive schema version";
		return -EINVAL;
	}
	if (version == 2 && !readonly) {
		/* 3 adds guidnew, created empty by the open */
		uint8_t schema[8];
		na_be64_put(schema, NA_SCHEMA_VERSION);
		if ((rc = put_meta(txn, s->meta, "schema", schema, 8))) {
			*msg = "cannot upgrade the archive to schema 3";
			return rc;
		}
	}
	if (version == 1 && !readonly) {
		/* version 1 holds single records only: count them, then mark
		 * the archive as one that may hold blocks */
		MDB_stat st;
		uint8_t schema[8];
		na_be64_put(schema, NA_SCHEMA_VERSION);
		if ((rc = mdb_stat(txn, s->articles, &st)) ||
		    (rc = na_meta_put_u64(s, txn, "articles", st.ms_entries)) ||
		    (rc = put_meta(txn, s->meta, "schema", schema, 8))) {
			*msg = "cannot upgrade the archive to schema 3";
			return rc;
		}
	}
	if (get_meta(txn, s->meta, "hash_key", &v) || v.mv_size != 16) {
		*msg = "archive meta table lacks its hash key";
		return -EINVAL;
	}
	memcpy(s->hash_key, v.mv_data, 16);
	if (version >= 3 && !s->have_guidnew) {
		*msg = "not a newsarch archive (tables missing)";
		return -EINVAL;
	}
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

/*
 * Archives written before the index had its own environment kept its
 * tables in this one: drop them (the index is rebuilt in DIR/index), along
 * with the meta entries that described them. "ix_epoch" stays: it is how
 * the writer tells the indexer that the articles were replaced under it.
 */
static int drop_legacy_index(na_store *s, MDB_txn *txn)
{
	static const char *const tables[] = { "ixpost", "ixdocs", "ixrange", "ixsealed", "ixbig" };
	static const char *const names[] = { "ix_seq", "ix_next", "ix_len", "ix_dead", "ix_rebuild",
					     "ix_langs", "ix_sealed", "ix_merged", "ix_segshift" };
	bool any = false;
	for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
		MDB_dbi d;
		int rc = mdb_dbi_open(txn, tables[i], 0, &d);
		if (rc == MDB_NOTFOUND)
			continue;
		if (rc || (rc = mdb_drop(txn, d, 1)))
			return rc;
		any = true;
	}
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		MDB_val k = { strlen(names[i]), (void *)names[i] };
		int rc = mdb_del(txn, s->meta, &k, NULL);
		if (rc && rc != MDB_NOTFOUND)
			return rc;
	}
	if (any)
		log_info("dropped the search index kept inside the archive by an older version; "
			 "it is rebuilt in its own environment");
	return 0;
}

/*
 * The index environment, DIR/index. Its map is reserved at the archive's
 * largest size at once (address space only: without MDB_WRITEMAP the file
 * grows with the pages in use), so it never needs the resize dance.
 *
 * Durability. The index is derived from the articles, so its commits are
 * not fsynced one by one (MDB_NOSYNC): the indexer syncs it about once a
 * second (na_store_ix_sync) instead of on each of its commits, which kept
 * the disk busy under the writer's own fsyncs. What MDB_NOSYNC risks is a
 * torn environment if the machine goes down before the pages reach the
 * disk; a process that dies leaves its writes in the page cache, which
 * survives it. So before its first unsynced commit the indexer writes the
 * marker file DIR/index/unsynced holding the kernel's boot id (fsynced),
 * and removes it after each sync. On open, a marker from another boot
 * means the machine stopped with index pages possibly unwritten: the
 * index is deleted and rebuilt from the articles.
 */
static int read_boot_id(char *out, size_t cap)
{
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
	if (!f)
		return -1;
	size_t n = fread(out, 1, cap - 1, f);
	fclose(f);
	while (n && (out[n - 1] == '\n' || out[n - 1] == ' '))
		n--;
	out[n] = 0;
	return n ? 0 : -1;
}

/* A marker left by another boot: remove the index so it is rebuilt. */
/* Writes the marker "commits may not be on disk" holding this boot's id,
 * durably: its directory entry must be on disk before any unsynced page can
 * be. 0 or -errno. */
static int write_mark(const char *mark)
{
	char id[64];
	if (read_boot_id(id, sizeof id))
		snprintf(id, sizeof id, "unknown");
	int fd = open(mark, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	size_t n = strlen(id);
	int rc = write(fd, id, n) == (ssize_t)n && fsync(fd) == 0 ? 0 : -EIO;
	close(fd);
	if (rc)
		unlink(mark); /* an empty one would still count */
	if (rc == 0) {
		char dir[4200];
		snprintf(dir, sizeof dir, "%s", mark);
		char *slash = strrchr(dir, '/');
		if (slash)
			*slash = 0;
		int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0 || fsync(dfd) != 0)
			rc = -EIO;
		if (dfd >= 0)
			close(dfd);
	}
	return rc;
}

/* 1: mark exists and was written before the machine last started (its
 * unsynced commits may be lost or torn); 0: absent, or written in this boot
 * (only a process stopped: its writes are in the page cache). */
static int mark_from_earlier_boot(const char *mark, bool *exists)
{
	char have[64] = "", now[64] = "";
	FILE *f = fopen(mark, "r");
	*exists = f != NULL;
	if (!f)
		return 0;
	size_t n = fread(have, 1, sizeof have - 1, f);
	fclose(f);
	have[n] = 0;
	return !(read_boot_id(now, sizeof now) == 0 && strcmp(have, now) == 0);
}

static void drop_torn_index(const char *dir, const char *mark)
{
	bool exists;
	if (!mark_from_earlier_boot(mark, &exists))
		return; /* everything committed was synced, or is in the page cache */
	log_warn("index: the system stopped before the index was synced; rebuilding it");
	char path[4200];
	snprintf(path, sizeof path, "%s/data.mdb", dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/lock.mdb", dir);
	unlink(path);
	unlink(mark);
}

int na_store_ix_mark(na_store *s)
{
	if (s->ix_unsynced || !s->ixenv)
		return 0;
	int rc = write_mark(s->ix_mark);
	if (rc == 0)
		s->ix_unsynced = true;
	return rc;
}

int na_store_mark_unsynced(na_store *s) { return write_mark(s->mark); }

void na_store_unmark_unsynced(na_store *s)
{
	/* not synced: a marker that outlives a crash only costs a check */
	unlink(s->mark);
}

bool na_store_ix_room(na_store *s, size_t need)
{
	struct statvfs fs;
	if (statvfs(s->ix_mark, &fs) != 0 && errno == ENOENT) {
		char dir[sizeof s->ix_mark];
		snprintf(dir, sizeof dir, "%s", s->ix_mark);
		char *slash = strrchr(dir, '/');
		if (slash)
			*slash = 0;
		if (statvfs(dir, &fs) != 0)
			return true; /* cannot tell: let the commit find out */
	}
	/* not mdb_env_info: the indexer holds no archive transaction here, so
	 * the writer may be resizing the map under it */
	uint64_t used = atomic_load(&s->used_pages) * s->psize;
	uint64_t reserve = used / 32;
	if (reserve < ((uint64_t)256 << 10))
		reserve = (uint64_t)256 << 10;
	if (reserve > ((uint64_t)64 << 20))
		reserve = (uint64_t)64 << 20;
	/* never into the room the archive keeps for its deletes when the
	 * filesystem is what limits it (the writer's check_reserve) */
	uint64_t keep = na_store_reserve((size_t)fs.f_blocks * fs.f_frsize);
	if (reserve < keep)
		reserve = keep;
	uint64_t avail = (uint64_t)fs.f_bavail * fs.f_frsize;
	return avail >= reserve + 2 * (uint64_t)need;
}

int na_store_ix_sync(na_store *s)
{
	if (!s->ix_unsynced || !s->ixenv)
		return 0;
	int rc = mdb_env_sync(s->ixenv, 1);
	if (rc)
		return rc;
	unlink(s->ix_mark);
	s->ix_unsynced = false;
	return 0;
}

static int open_index_env(na_store *s, const na_store_opts *o, const char **msg)
{
	char path[4096];
	int n = snprintf(path, sizeof path, "%s/index", o->dir);
	if (n < 0 || (size_t)n >= sizeof path) {
		*msg = "data directory path too long";
		return -ENAMETOOLONG;
	}
	if (mkdir(path, 0750) != 0 && errno != EEXIST) {
		*msg = "cannot create the index directory";
		return -errno;
	}
	snprintf(s->ix_mark, sizeof s->ix_mark, "%s/unsynced", path);
	drop_torn_index(path, s->ix_mark);
	size_t map = o->max_map_size > o->map_size ? o->max_map_size : o->map_size;
	if (map > ((size_t)16 << 40))
		map = (size_t)16 << 40;
	unsigned flags = MDB_NOTLS | MDB_NORDAHEAD | MDB_NOSYNC;
	int rc;
	if ((rc = mdb_env_create(&s->ixenv)) || (rc = mdb_env_set_maxdbs(s->ixenv, 8)) ||
	    (rc = mdb_env_set_maxreaders(s->ixenv, 1024)) ||
	    (rc = mdb_env_set_mapsize(s->ixenv, map))) {
		*msg = "cannot create the index environment";
		return rc;
	}
	if ((rc = mdb_env_open(s->ixenv, path, flags, 0640))) {
		*msg = "cannot open the index environment";
		return rc;
	}
	int dead = 0;
	mdb_reader_check(s->ixenv, &dead);
	MDB_txn *txn;
	if ((rc = mdb_txn_begin(s->ixenv, NULL, 0, &txn))) {
		*msg = "cannot begin the index's opening transaction";
		return rc;
	}
	if ((rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &s->ixmeta)) ||
	    (rc = mdb_dbi_open(txn, "ixpost", MDB_CREATE, &s->ixpost)) ||
	    (rc = mdb_dbi_open(txn, "ixdocs", MDB_CREATE, &s->ixdocs)) ||
	    (rc = mdb_dbi_open(txn, "ixrange", MDB_CREATE, &s->ixrange)) ||
	    (rc = mdb_dbi_open(txn, "ixsealed", MDB_CREATE, &s->ixsealed)) ||
	    (rc = mdb_dbi_open(txn, "ixbig", MDB_CREATE, &s->ixbig))) {
		*msg = "cannot open the index tables";
		mdb_txn_abort(txn);
		return rc;
	}
	if ((rc = mdb_txn_commit(txn))) {
		*msg = "cannot commit the index's opening transaction";
		return rc;
	}
	s->have_index = true;
	return 0;
}

size_t na_store_reserve(size_t max_map_size)
{
	size_t r = max_map_size / 64;
	if (r < ((size_t)256 << 10))
		r = (size_t)256 << 10;
	if (r > ((size_t)64 << 20))
		r = (size_t)64 << 20;
	if (r > max_map_size / 4)
		r = max_map_size / 4;
	return r;
}

int na_store_open(na_store *s, const na_store_opts *o, const char **msg)
{
	memset(s, 0, sizeof *s);
	*msg = "";
	s->max_map_size = o->max_map_size;
	s->max_article = o->max_article;
	s->ix_segshift = 13;
	s->ix_refresh_ms = o->index_refresh_ms;
	if (o->index_segment)
		for (s->ix_segshift = 4; (2u << s->ix_segshift) <= o->index_segment && s->ix_segshift < 24;)
			s->ix_segshift++;
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
	na_codec_set_block_level(s->codec, o->block_level ? o->block_level : o->level);
	na_codec_set_literals(s->codec, !o->raw_literals);
	if ((size_t)snprintf(s->mark, sizeof s->mark, "%s/unsynced", o->dir) >= sizeof s->mark) {
		*msg = "data directory path too long";
		rc = -ENAMETOOLONG;
		goto fail;
	}
	if (!o->readonly) {
		char id[64];
		if (read_boot_id(id, sizeof id))
			log_warn("cannot read /proc/sys/kernel/random/boot_id: a restart after "
				 "unsynced commits will be taken for a machine stop");
		s->unclean_stop = mark_from_earlier_boot(s->mark, &s->marked) == 1;
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
	s->reserve_pages = na_store_reserve(o->max_map_size) / s->psize;
	atomic_store(&s->used_pages, (uint64_t)info.me_last_pgno + 1);

	MDB_txn *txn;
	if ((rc = mdb_txn_begin(s->env, NULL, o->readonly ? MDB_RDONLY : 0, &txn))) {
		*msg = "cannot begin the opening transaction";
		goto fail;
	}
	unsigned c = o->readonly ? 0 : MDB_CREATE;
	if ((rc = mdb_dbi_open(txn, "meta", c, &s->meta)) ||
	    (rc = mdb_dbi_open(txn, "articles", c, &s->articles)) ||
	    (rc = mdb_dbi_open(txn, "guids", c | MDB_DUPSORT | MDB_DUPFIXED, &s->guids)) ||
	    (rc = open_guidnew(s, txn, c)) ||
	    (rc = mdb_dbi_open(txn, "dicts", c, &s->dicts)) ||
	    (rc = mdb_dbi_open(txn, "log", c, &s->log)) ||
	    (rc = mdb_dbi_open(txn, "logtime", c, &s->logtime))) {
		*msg = rc == MDB_NOTFOUND ? "not a newsarch archive (tables missing)"
					  : "cannot open the tables";
		mdb_txn_abort(txn);
		goto fail;
	}
	if (!o->readonly && (rc = drop_legacy_index(s, txn))) {
		*msg = "cannot drop the index tables of an older version";
		mdb_txn_abort(txn);
		goto fail;
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
	/* relaxed: the opening commit (a new history id) is made without a
	 * marker, so it must be on disk before anything else is */
	if (o->relaxed && !o->readonly && (rc = mdb_env_sync(s->env, 1))) {
		*msg = "cannot sync the opening transaction";
		goto fail;
	}
	if (!o->readonly && (rc = open_index_env(s, o, msg)))
		goto fail;
	return 0;
fail:
	if (s->ixenv)
		mdb_env_close(s->ixenv);
	s->ixenv = NULL;
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
	if (s->ixenv) {
		na_store_ix_sync(s);
		mdb_env_close(s->ixenv);
		s->ixenv = NULL;
	}
	if (s->env) {
		unsigned fl = 0;
		mdb_env_get_flags(s->env, &fl);
		int rc = fl & MDB_RDONLY ? 0 : mdb_env_sync(s->env, 1);
		if (rc)
			log_error("cannot sync the archive to disk at close: %s", mdb_strerror(rc));
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
	while (s->ixtxn_free_n)
		mdb_txn_abort(s->ixtxn_free[--s->ixtxn_free_n]);
}

int na_store_ixbegin(na_store *s, MDB_txn **txn)
{
	if (!s->ixenv)
		return -ENOENT;
	MDB_txn *t = NULL;
	pthread_mutex_lock(&s->txn_lock);
	if (s->ixtxn_free_n)
		t = s->ixtxn_free[--s->ixtxn_free_n];
	pthread_mutex_unlock(&s->txn_lock);
	if (t && mdb_txn_renew(t) != 0) {
		mdb_txn_abort(t);
		t = NULL;
	}
	int rc = t ? 0 : mdb_txn_begin(s->ixenv, NULL, MDB_RDONLY, &t);
	if (rc)
		return rc;
	*txn = t;
	return 0;
}

void na_store_ixend(na_store *s, MDB_txn *txn)
{
	mdb_txn_reset(txn);
	pthread_mutex_lock(&s->txn_lock);
	if (s->ixtxn_free_n < sizeof s->ixtxn_free / sizeof s->ixtxn_free[0]) {
		s->ixtxn_free[s->ixtxn_free_n++] = txn;
		txn = NULL;
	}
	pthread_mutex_unlock(&s->txn_lock);
	if (txn)
		mdb_txn_abort(txn);
}

int na_store_decode(na_store *s, const uint8_t *rec, size_t len, uint8_t **buf, size_t *cap,
		    size_t *outlen)
{
	na_rec r;
	if (na_rec_is_block(rec, len) || na_rec_parse(s->codec, rec, len, &r))
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

static int grow(na_buf *b, size_t want)
{
	if (b->data && b->cap >= want)
		return 0;
	size_t n = want < 4096 ? 4096 : want;
	uint8_t *p = realloc(b->data, n);
	if (!p)
		return -ENOMEM;
	b->data = p;
	b->cap = n;
	return 0;
}

int na_store_entry_last(na_store *s, const MDB_val *k, const MDB_val *v, na_key *last)
{
	if (k->mv_size != NA_KEY_BYTES)
		return MDB_CORRUPTED;
	if (!na_rec_is_block(v->mv_data, v->mv_size)) {
		memcpy(last->b, k->mv_data, NA_KEY_BYTES);
		return 0;
	}
	na_block *b = malloc(sizeof *b);
	if (!b)
		return -ENOMEM;
	int rc = na_block_parse(s->codec, v->mv_data, v->mv_size, b) ? MDB_CORRUPTED : 0;
	if (rc == 0 && memcmp(b->m[b->first_live].key, k->mv_data, NA_KEY_BYTES) != 0)
		rc = MDB_CORRUPTED;
	if (rc == 0)
		memcpy(last->b, b->m[b->last_live].key, NA_KEY_BYTES);
	free(b);
	return rc;
}

/* A parsed block stored under key k: the key must be its first live
 * member's. */
static int parse_block_at(na_store *s, const MDB_val *k, const MDB_val *v, na_block *b)
{
	if (k->mv_size != NA_KEY_BYTES || na_block_parse(s->codec, v->mv_data, v->mv_size, b) ||
	    memcmp(b->m[b->first_live].key, k->mv_data, NA_KEY_BYTES) != 0)
		return MDB_CORRUPTED;
	return 0;
}

/* The live member with this key, or -1. */
static int block_find(const na_block *b, const uint8_t *key)
{
	uint32_t lo = b->first_live, hi = b->last_live + 1;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		int c = memcmp(b->m[mid].key, key, NA_KEY_BYTES);
		if (c == 0)
			return b->m[mid].dead ? -1 : (int)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

int na_store_locate(na_store *s, MDB_txn *txn, const na_key *key, na_loc *loc, na_block *blk)
{
	MDB_val k = { NA_KEY_BYTES, (void *)key->b }, v;
	na_block *own = NULL;
	int rc = mdb_get(txn, s->articles, &k, &v);
	if (rc == 0 && !na_rec_is_block(v.mv_data, v.mv_size)) {
		na_rec r;
		if (na_rec_parse(s->codec, v.mv_data, v.mv_size, &r))
			return MDB_CORRUPTED;
		loc->ckey = *key;
		loc->rec = v.mv_data;
		loc->rec_len = v.mv_size;
		loc->block = false;
		loc->member = 0;
		loc->raw_len = r.raw_len;
		return 0;
	}
	if (rc && rc != MDB_NOTFOUND)
		return rc;
	if (!blk && !(blk = own = malloc(sizeof *blk)))
		return -ENOMEM;
	if (rc == MDB_NOTFOUND) {
		/* inside a block stored under an earlier key? */
		MDB_cursor *cur;
		if ((rc = mdb_cursor_open(txn, s->articles, &cur)))
			goto out;
		k.mv_data = (void *)key->b;
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		if (rc == 0)
			rc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
		else if (rc == MDB_NOTFOUND)
			rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
		mdb_cursor_close(cur);
		if (rc)
			goto out;
		if (!na_rec_is_block(v.mv_data, v.mv_size)) {
			rc = MDB_NOTFOUND;
			goto out;
		}
	}
	if ((rc = parse_block_at(s, &k, &v, blk)))
		goto out;
	int m = block_find(blk, key->b);
	if (m < 0) {
		rc = MDB_NOTFOUND;
		goto out;
	}
	memcpy(loc->ckey.b, k.mv_data, NA_KEY_BYTES);
	loc->rec = v.mv_data;
	loc->rec_len = v.mv_size;
	loc->block = true;
	loc->member = (uint32_t)m;
	loc->raw_len = blk->m[m].len;
out:
	free(own);
	return rc;
}

int na_store_read_loc(na_store *s, const na_loc *loc, const na_block *blk, na_buf *dec)
{
	if (!loc->block) {
		int rc = na_store_decode(s, loc->rec, loc->rec_len, &dec->data, &dec->cap, &dec->len);
		return rc == -ENOMEM ? rc : rc ? MDB_CORRUPTED : 0;
	}
	if (grow(dec, blk->raw_len ? blk->raw_len : 1))
		return -ENOMEM;
	int rc = na_block_decode(s->codec, blk, dec->data, dec->cap);
	if (rc)
		return rc == -ENOMEM ? rc : MDB_CORRUPTED;
	const na_bmember *m = &blk->m[loc->member];
	memmove(dec->data, dec->data + m->off, m->len);
	dec->len = m->len;
	return 0;
}

int na_store_read_key(na_store *s, MDB_txn *txn, const na_key *key, na_buf *dec)
{
	na_block *blk = malloc(sizeof *blk);
	if (!blk)
		return -ENOMEM;
	na_loc loc;
	int rc = na_store_locate(s, txn, key, &loc, blk);
	if (rc == 0)
		rc = na_store_read_loc(s, &loc, blk, dec);
	free(blk);
	return rc;
}

/* Is the article at ak the one with this guid? 1 yes, 0 no, or an error. */
static int find_check(na_store *s, MDB_txn *txn, const uint8_t *ak, const char *guid, uint32_t gn,
		      na_block *blk, na_loc *loc, na_buf *dec)
{
	int rc = na_store_locate(s, txn, (const na_key *)ak, loc, blk);
	if (rc == MDB_NOTFOUND)
		return MDB_CORRUPTED; /* the index names a key that is not there */
	if (rc || (rc = na_store_read_loc(s, loc, blk, dec)))
		return rc;
	const char *g;
	uint32_t glen;
	if (na_article_guid(dec->data, dec->len, &g, &glen))
		return MDB_CORRUPTED;
	return glen == gn && memcmp(g, guid, gn) == 0;
}

/* Looks for guid among the entries under hash hb in one table of the guid
 * index: 0 (*first = its key, *loc filled), MDB_NOTFOUND, or an error. */
static int find_in(na_store *s, MDB_txn *txn, MDB_dbi dbi, uint8_t hb[8], const char *guid,
		   uint32_t gn, uint8_t first[NA_KEY_BYTES], na_block *blk, na_loc *loc, na_buf *dec)
{
	MDB_val k = { 8, hb }, v;
	/* The first (usually only) article under this hash, without a cursor:
	 * a new guid on the write path, or a get that finds it at once. */
	int rc = mdb_get(txn, dbi, &k, &v);
	if (rc)
		return rc;
	if (v.mv_size != NA_KEY_BYTES)
		return MDB_CORRUPTED;
	memcpy(first, v.mv_data, NA_KEY_BYTES);
	rc = find_check(s, txn, first, guid, gn, blk, loc, dec);
	if (rc < 0 || rc > 1)
		return rc;
	if (rc == 1)
		return 0;
	/* a hash shared with other guids: look at the others */
	MDB_cursor *cur;
	if ((rc = mdb_cursor_open(txn, dbi, &cur)))
		return rc;
	uint8_t seen[NA_KEY_BYTES];
	memcpy(seen, first, NA_KEY_BYTES);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_DUP)) {
		if (v.mv_size != NA_KEY_BYTES) {
			rc = MDB_CORRUPTED;
			break;
		}
		if (memcmp(v.mv_data, seen, NA_KEY_BYTES) == 0)
			continue;
		memcpy(first, v.mv_data, NA_KEY_BYTES);
		rc = find_check(s, txn, first, guid, gn, blk, loc, dec);
		if (rc == 1) {
			rc = 0;
			break;
		}
		if (rc)
			break;
	}
	mdb_cursor_close(cur);
	return rc;
}

int na_store_find(na_store *s, MDB_txn *txn, const char *guid, uint32_t gn, na_key *key,
		  const uint8_t **recp, size_t *reclenp, na_buf *dec)
{
	uint8_t hb[8];
	na_be64_put(hb, na_store_guid_hash(s, guid, gn));
	na_block blk; /* ~7 KiB of scratch on the stack, written only for blocks */
	na_loc loc;
	uint8_t first[NA_KEY_BYTES];
	/* guids first: in a large archive it holds seven eighths of them */
	int rc = find_in(s, txn, s->guids, hb, guid, gn, first, &blk, &loc, dec);
	if (rc == MDB_NOTFOUND && s->have_guidnew)
		rc = find_in(s, txn, s->guidnew, hb, guid, gn, first, &blk, &loc, dec);
	if (rc)
		return rc;
	memcpy(key->b, first, NA_KEY_BYTES);
	*recp = loc.rec;
	*reclenp = loc.rec_len;
	return 0;
}

/* ---- the guid index's two tables (see store.h) ------------------------ */

int na_guid_put(na_store *s, MDB_txn *txn, uint64_t h, const na_key *key, bool direct)
{
	uint8_t hb[8];
	na_be64_put(hb, h);
	MDB_val k = { 8, hb }, v = { NA_KEY_BYTES, (void *)key->b };
	return mdb_put(txn, direct ? s->guids : s->guidnew, &k, &v, MDB_NODUPDATA);
}

int na_guid_del(na_store *s, MDB_txn *txn, uint64_t h, const na_key *key)
{
	uint8_t hb[8];
	na_be64_put(hb, h);
	MDB_val k = { 8, hb }, v = { NA_KEY_BYTES, (void *)key->b };
	int rc = mdb_del(txn, s->guidnew, &k, &v);
	if (rc == MDB_NOTFOUND)
		rc = mdb_del(txn, s->guids, &k, &v);
	return rc;
}

#define FOLD_CHUNK 512

/* Moves up to n entries of guidnew, in hash order from *pos (wrapping
 * once), to guids; *done counts them. Entries are read in chunks, then
 * put and deleted, so no cursor is held across the changes. */
static int fold_some(na_store *s, MDB_txn *txn, uint64_t *pos, size_t n, size_t *done)
{
	struct {
		uint8_t k[8], v[NA_KEY_BYTES];
	} e[FOLD_CHUNK];
	bool wrapped = false;
	uint64_t start = *pos;
	while (*done < n) {
		MDB_cursor *cur;
		int rc = mdb_cursor_open(txn, s->guidnew, &cur);
		if (rc)
			return rc;
		uint8_t pb[8];
		na_be64_put(pb, *pos);
		MDB_val k = { 8, pb }, v;
		size_t got = 0, want = n - *done < FOLD_CHUNK ? n - *done : FOLD_CHUNK;
		bool bad = false;
		for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0 && got < want;
		     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
			if (k.mv_size != 8 || v.mv_size != NA_KEY_BYTES) {
				bad = true;
				break;
			}
			if (wrapped && na_be64_get(k.mv_data) >= start)
				break; /* back where this fold began */
			memcpy(e[got].k, k.mv_data, 8);
			memcpy(e[got].v, v.mv_data, NA_KEY_BYTES);
			got++;
		}
		if (bad) {
			/* an entry no lookup can use (they fail on it): drop it
			 * rather than fail every commit from now on */
			log_warn("guid index: dropping a malformed entry (%zu-byte key, %zu-byte value)",
				 k.mv_size, v.mv_size);
			rc = mdb_cursor_del(cur, 0);
			mdb_cursor_close(cur);
			if (rc)
				return rc;
			continue;
		}
		mdb_cursor_close(cur);
		if (rc && rc != MDB_NOTFOUND)
			return rc;
		for (size_t i = 0; i < got; i++) {
			MDB_val ek = { 8, e[i].k }, ev = { NA_KEY_BYTES, e[i].v };
			rc = mdb_put(txn, s->guids, &ek, &ev, MDB_NODUPDATA);
			if (rc == MDB_KEYEXIST) /* in both tables: guids has it already */
				rc = 0;
			if (rc || (rc = mdb_del(txn, s->guidnew, &ek, &ev)))
				return rc;
		}
		*done += got;
		if (got == want) {
			/* entries still under the last hash are found again */
			*pos = na_be64_get(e[got - 1].k);
			continue;
		}
		/* the end of the table (or back at the start) */
		if (wrapped || start == 0) {
			*pos = 0;
			return 0;
		}
		wrapped = true;
		*pos = 0;
	}
	return 0;
}

int na_guid_fold(na_store *s, MDB_txn *txn, uint64_t *pos)
{
	MDB_stat a, b;
	int rc = mdb_stat(txn, s->guidnew, &a);
	if (rc == 0)
		rc = mdb_stat(txn, s->guids, &b);
	if (rc)
		return rc;
	size_t share = (a.ms_entries + b.ms_entries) / 8;
	if (share < NA_GUIDNEW_MIN)
		share = NA_GUIDNEW_MIN;
	/* no slack: a steady trickle of small commits each moves about what
	 * it added (a few pages), rather than one commit in many moving
	 * thousands and standing out in the write latency */
	if (a.ms_entries <= share)
		return 0;
	size_t done = 0;
	return fold_some(s, txn, pos, a.ms_entries - share, &done);
}

/*
 * Walking articles in key order across singles and blocks. Entries never
 * overlap: no entry's key lies between a block's first and last live
 * member (the writer splits a block that a new key would fall into), so
 * walking entries and, inside a block, its live members in order visits
 * articles in key order.
 */
typedef struct walk {
	na_store *s;
	MDB_cursor *cur;
	bool reverse;
	MDB_val k, v;
	bool have;             /* k, v hold an entry */
	bool is_block;
	int idx;               /* block: the current member */
	na_block *blk;
	bool decoded;          /* blk's payload is in dbuf */
	uint8_t *dbuf;
	size_t dcap;
	na_buf one;            /* a single record, decoded */
} walk;

static int walk_entry(walk *w)
{
	w->decoded = false;
	w->is_block = na_rec_is_block(w->v.mv_data, w->v.mv_size);
	if (w->k.mv_size != NA_KEY_BYTES)
		return MDB_CORRUPTED;
	if (!w->is_block)
		return 0;
	if (!w->blk && !(w->blk = malloc(sizeof *w->blk)))
		return -ENOMEM;
	int rc = parse_block_at(w->s, &w->k, &w->v, w->blk);
	if (rc)
		return rc;
	w->idx = w->reverse ? (int)w->blk->last_live + 1 : (int)w->blk->first_live - 1;
	return 0;
}

/* Positions on the entry holding the first article at or after `from`
 * (forward) or before `before` (reverse); NULL: the ends. */
static int walk_open(walk *w, na_store *s, MDB_txn *txn, bool reverse, const uint8_t *from,
		     const uint8_t *before)
{
	memset(w, 0, sizeof *w);
	w->s = s;
	w->reverse = reverse;
	int rc = mdb_cursor_open(txn, s->articles, &w->cur);
	if (rc)
		return rc;
	if (!reverse) {
		if (from) {
			w->k.mv_size = NA_KEY_BYTES;
			w->k.mv_data = (void *)from;
			rc = mdb_cursor_get(w->cur, &w->k, &w->v, MDB_SET_RANGE);
			if (rc == 0 && memcmp(w->k.mv_data, from, NA_KEY_BYTES) != 0) {
				/* a block before may reach past from */
				MDB_val pk, pv;
				int pr = mdb_cursor_get(w->cur, &pk, &pv, MDB_PREV);
				bool back = false;
				if (pr == 0 && na_rec_is_block(pv.mv_data, pv.mv_size)) {
					na_key last;
					if ((rc = na_store_entry_last(s, &pk, &pv, &last)))
						return rc;
					back = memcmp(last.b, from, NA_KEY_BYTES) >= 0;
				}
				if (back) {
					w->k = pk;
					w->v = pv;
				} else if (pr == 0) {
					rc = mdb_cursor_get(w->cur, &w->k, &w->v, MDB_NEXT);
				} else if (pr == MDB_NOTFOUND) {
					rc = mdb_cursor_get(w->cur, &w->k, &w->v, MDB_FIRST);
				} else {
					rc = pr;
				}
			} else if (rc == MDB_NOTFOUND) {
				rc = mdb_cursor_get(w->cur, &w->k, &w->v, MDB_LAST);
			}
		} else {
			rc = mdb_cursor_get(w->cur, &w->k, &w->v, MDB_FIRST);
		}
	} else if (before) {
		w->k.mv_size = NA_KEY_BYTES;
		w->k.mv_data = (void *)before;
		rc = mdb_cursor_get(w->cur, &w->k, &w->v, MDB_SET_RANGE);
		if (rc == 0)
			rc = mdb_cursor_get(w->cur, &w->k, &w->v, MDB_PREV);
		else if (rc == MDB_NOTFOUND)
			rc = mdb_cursor_get(w->cur, &w->k, &w->v, MDB_LAST);
	} else {
		rc = mdb_cursor_get(w->cur, &w->k, &w->v, MDB_LAST);
	}
	if (rc == 0) {
		w->have = true;
		rc = walk_entry(w);
		if (rc == 0 && !w->is_block)
			w->idx = -2; /* the single is next */
	}
	return rc;
}

static void walk_close(walk *w)
{
	if (w->cur)
		mdb_cursor_close(w->cur);
	free(w->blk);
	free(w->dbuf);
	free(w->one.data);
}

/* Steps to the next article; *key points at its key. 0, MDB_NOTFOUND at
 * the end, or an error. */
static int walk_next(walk *w, const uint8_t **key)
{
	for (;;) {
		if (!w->have)
			return MDB_NOTFOUND;
		if (!w->is_block) {
			if (w->idx == -2) {
				w->idx = -1;
				*key = w->k.mv_data;
				return 0;
			}
		} else {
			int step = w->reverse ? -1 : 1;
			for (int i = w->idx + step; i >= (int)w->blk->first_live && i <= (int)w->blk->last_live;
			     i += step)
				if (!w->blk->m[i].dead) {
					w->idx = i;
					*key = w->blk->m[i].key;
					return 0;
				}
		}
		int rc = mdb_cursor_get(w->cur, &w->k, &w->v, w->reverse ? MDB_PREV : MDB_NEXT);
		if (rc) {
			w->have = false;
			return rc;
		}
		if ((rc = walk_entry(w)))
			return rc;
		if (!w->is_block)
			w->idx = -2;
	}
}

/* The current article's bytes. */
static int walk_bytes(walk *w, const uint8_t **p, size_t *n)
{
	if (!w->is_block) {
		int rc = na_store_decode(w->s, w->v.mv_data, w->v.mv_size, &w->one.data, &w->one.cap,
					 &w->one.len);
		if (rc)
			return rc;
		*p = w->one.data;
		*n = w->one.len;
		return 0;
	}
	if (!w->decoded) {
		size_t want = w->blk->raw_len ? w->blk->raw_len : 1;
		if (w->dcap < want) {
			uint8_t *nb = realloc(w->dbuf, want);
			if (!nb)
				return -ENOMEM;
			w->dbuf = nb;
			w->dcap = want;
		}
		int rc = na_block_decode(w->s->codec, w->blk, w->dbuf, w->dcap);
		if (rc)
			return rc == -ENOMEM ? rc : -EIO;
		w->decoded = true;
	}
	*p = w->dbuf + w->blk->m[w->idx].off;
	*n = w->blk->m[w->idx].len;
	return 0;
}

int na_store_walk(na_store *s, MDB_txn *txn, const na_key *after, bool reverse,
		  na_store_walk_fn fn, void *arg)
{
	walk w;
	const uint8_t *a = after ? after->b : NULL;
	int rc = walk_open(&w, s, txn, reverse, reverse ? NULL : a, reverse ? a : NULL);
	const uint8_t *key;
	while (rc == 0 && (rc = walk_next(&w, &key)) == 0) {
		if (a && (reverse ? memcmp(key, a, NA_KEY_BYTES) >= 0 : memcmp(key, a, NA_KEY_BYTES) <= 0))
			continue;
		const uint8_t *p;
		size_t n;
		if ((rc = walk_bytes(&w, &p, &n)))
			break;
		na_key k;
		memcpy(k.b, key, NA_KEY_BYTES);
		if ((rc = fn(arg, &k, p, n)))
			break;
	}
	walk_close(&w);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static int sb_reserve(msgpack_sbuffer *sb, size_t n)
{
	if (sb->alloc - sb->size >= n)
		return 0;
	size_t na = sb->alloc ? sb->alloc : 65536;
	while (na - sb->size < n)
		na *= 2;
	char *nd = realloc(sb->data, na);
	if (!nd)
		return -ENOMEM;
	sb->data = nd;
	sb->alloc = na;
	return 0;
}

/* Appends the walk's current article, projected to q->fields. */
static int emit_projected(walk *w, const na_range_q *q, msgpack_sbuffer *sb)
{
	const uint8_t *p;
	size_t n;
	int rc = walk_bytes(w, &p, &n);
	if (rc)
		return rc == MDB_CORRUPTED ? -EIO : rc;
	msgpack_packer pk;
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	return na_article_project(&pk, p, n, &q->fields) ? -EIO : 0;
}

/*
 * A page of whole articles is planned first: the walk lists what to decode
 * (a single record, or members of a block) and where each article goes in
 * the reply, whose size the record headers tell; then everything is
 * decompressed straight into its place in the reply buffer (no copy).
 *
 * Decoding the tasks on two threads (a helper thread taking tasks in turn)
 * was tried and measured slower on the 2-vCPU benchmark machine: waking the
 * helper for each page costs more than it saves when the other core is busy
 * with the loop, the client or other work, so pages decode on one thread.
 */
typedef struct dtask {
	const uint8_t *rec;    /* the record (in the read transaction's pages) */
	size_t len;
	size_t out;            /* offset of the first article in the reply */
	size_t bytes;          /* decoded bytes this task writes */
	int from, to;          /* block: members from..to (either direction) */
	bool block;
} dtask;

/* Scratch for block tasks. */
typedef struct tscratch {
	na_block *b;
	uint8_t *tmp;
	size_t tmpcap;
} tscratch;

/* Decodes one task into base. 0 or -EIO/-ENOMEM. */
static int run_task(na_codec *codec, na_dhold *h, const dtask *t, uint8_t *base, tscratch *sc)
{
	if (!t->block) {
		size_t got;
		if (na_codec_decode_held(codec, h, t->rec, t->len, base + t->out, t->bytes, &got) ||
		    got != t->bytes)
			return -EIO;
		return 0;
	}
	if (!sc->b && !(sc->b = malloc(sizeof *sc->b)))
		return -ENOMEM;
	na_block *b = sc->b;
	if (na_block_parse(codec, t->rec, t->len, b))
		return -EIO;
	if (sc->tmpcap < b->raw_len) {
		uint8_t *p = realloc(sc->tmp, b->raw_len);
		if (!p)
			return -ENOMEM;
		sc->tmp = p;
		sc->tmpcap = b->raw_len;
	}
	if (na_block_decode_held(codec, h, b, sc->tmp, sc->tmpcap))
		return -EIO;
	size_t at = t->out;
	int step = t->from <= t->to ? 1 : -1;
	for (int m = t->from;; m += step) {
		if (!b->m[m].dead) {
			memcpy(base + at, sc->tmp + b->m[m].off, b->m[m].len);
			at += b->m[m].len;
		}
		if (m == t->to)
			break;
	}
	return at - t->out == t->bytes ? 0 : -EIO;
}

static int decode_tasks(na_store *s, const dtask *t, size_t n, uint8_t *base)
{
	tscratch sc = { 0 };
	int rc = 0;
	na_dhold *h = na_codec_hold(s->codec);
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = run_task(s->codec, h, &t[i], base, &sc);
	na_codec_release(s->codec, h);
	free(sc.b);
	free(sc.tmp);
	return rc;
}

int na_store_range(na_store *s, const na_range_q *q, msgpack_sbuffer *sb)
{
	MDB_txn *txn;
	int rc = na_store_rbegin(s, &txn);
	if (rc)
		return rc;
	/* Articles are decoded straight into the reply buffer; the array32
	 * header's count is patched at the end (and everything is cut back on
	 * an error). */
	msgpack_packer pkv, *pk = &pkv;
	msgpack_packer_init(pk, sb, msgpack_sbuffer_write);
	size_t start = sb->size, count_at;
	msgpack_pack_map(pk, 2);
	na_mp_pack_cstr(pk, "articles");
	static const uint8_t a32[5] = { 0xdd, 0, 0, 0, 0 };
	count_at = sb->size;
	msgpack_sbuffer_write(sb, (const char *)a32, 5);
	na_key lo, hi, last;
	if (q->has_from) na_key_floor(&lo, q->from);
	if (q->has_to) na_key_floor(&hi, q->to);
	uint32_t count = 0;
	bool more = false;
	walk w;
	const uint8_t *from = NULL, *before = NULL;
	if (!q->reverse) {
		from = q->has_from ? lo.b : NULL;
		if (q->has_after && (!from || memcmp(q->after.b, from, NA_KEY_BYTES) >= 0))
			from = q->after.b;
	} else {
		before = q->has_to ? hi.b : NULL;
		if (q->has_after && (!before || memcmp(q->after.b, before, NA_KEY_BYTES) < 0))
			before = q->after.b;
	}
	rc = walk_open(&w, s, txn, q->reverse, from, before);
	const uint8_t *key;
	/* whole articles into the reply: plan, then decode (two threads) */
	bool plan = !q->project;
	dtask *tasks = NULL;
	size_t ntasks = 0, tcap = 0, planned = 0;
	const uint8_t *cur_block = NULL;
	while (rc == 0 && (rc = walk_next(&w, &key)) == 0) {
		if (!q->reverse) {
			if (q->has_after && memcmp(key, q->after.b, NA_KEY_BYTES) <= 0)
				continue;
			if (q->has_from && memcmp(key, lo.b, NA_KEY_BYTES) < 0)
				continue;
			if (q->has_to && memcmp(key, hi.b, NA_KEY_BYTES) >= 0)
				break;
		} else {
			if (before && memcmp(key, before, NA_KEY_BYTES) >= 0)
				continue;
			if (q->has_from && memcmp(key, lo.b, NA_KEY_BYTES) < 0)
				break;
		}
		if (count == q->limit || (count > 0 && sb->size + planned > NA_RANGE_MAX_BYTES)) {
			more = true; /* the page is full: by count or by bytes */
			break;
		}
		if (plan) {
			size_t bytes;
			if (w.is_block) {
				bytes = w.blk->m[w.idx].len;
			} else {
				na_rec r;
				if (na_rec_parse(s->codec, w.v.mv_data, w.v.mv_size, &r)) {
					rc = -EIO;
					break;
				}
				bytes = r.raw_len;
			}
			if (w.is_block && cur_block == w.v.mv_data) {
				tasks[ntasks - 1].to = w.idx;
				tasks[ntasks - 1].bytes += bytes;
			} else {
				if (ntasks == tcap) {
					size_t nc = tcap ? tcap * 2 : 128;
					dtask *nt = realloc(tasks, nc * sizeof *nt);
					if (!nt) {
						rc = -ENOMEM;
						break;
					}
					tasks = nt;
					tcap = nc;
				}
				tasks[ntasks++] = (dtask){ .rec = w.v.mv_data, .len = w.v.mv_size,
							   .out = planned, .bytes = bytes,
							   .from = w.idx, .to = w.idx, .block = w.is_block };
				cur_block = w.is_block ? w.v.mv_data : NULL;
			}
			planned += bytes;
		} else if ((rc = emit_projected(&w, q, sb))) {
			break;
		}
		memcpy(last.b, key, NA_KEY_BYTES);
		count++;
	}
	if (plan && (rc == 0 || rc == MDB_NOTFOUND) && planned) {
		int drc = sb_reserve(sb, planned);
		if (drc == 0)
			drc = decode_tasks(s, tasks, ntasks, (uint8_t *)sb->data + sb->size);
		if (drc)
			rc = drc;
		else
			sb->size += planned;
	}
	free(tasks);
	if (rc == MDB_NOTFOUND)
		rc = 0;
	if (rc == MDB_CORRUPTED)
		rc = -EIO;
	walk_close(&w);
	na_store_rend(s, txn);
	if (rc == 0) {
		uint8_t *c = (uint8_t *)sb->data + count_at + 1;
		c[0] = (uint8_t)(count >> 24);
		c[1] = (uint8_t)(count >> 16);
		c[2] = (uint8_t)(count >> 8);
		c[3] = (uint8_t)count;
		na_mp_pack_cstr(pk, "next");
		if (more) {
			msgpack_pack_bin(pk, NA_KEY_BYTES);
			msgpack_pack_bin_body(pk, last.b, NA_KEY_BYTES);
		} else {
			msgpack_pack_nil(pk);
		}
	} else {
		sb->size = start;
	}
	return rc;
}

/* Counts live members (single records: 1) of every entry. */
static int count_scan(na_store *s, MDB_txn *txn, uint64_t *n)
{
	walk w;
	*n = 0;
	int rc = walk_open(&w, s, txn, false, NULL, NULL);
	const uint8_t *key;
	while (rc == 0 && (rc = walk_next(&w, &key)) == 0)
		(*n)++;
	walk_close(&w);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

int na_store_articles(na_store *s, MDB_txn *txn, uint64_t *n)
{
	MDB_val v;
	int rc = na_meta_get(s, txn, "articles", &v);
	if (rc == 0 && v.mv_size == 8) {
		*n = na_be64_get(v.mv_data);
		return 0;
	}
	if (rc && rc != MDB_NOTFOUND)
		return rc;
	return count_scan(s, txn, n); /* a read-only version 1 archive */
}

int na_store_count(na_store *s, bool has_from, int64_t from, bool has_to, int64_t to, uint64_t *n)
{
	MDB_txn *txn;
	int rc = na_store_rbegin(s, &txn);
	if (rc)
		return rc;
	*n = 0;
	if (!has_from && !has_to) {
		rc = na_store_articles(s, txn, n);
		na_store_rend(s, txn);
		return rc;
	}
	na_key lo, hi;
	if (has_to) na_key_floor(&hi, to);
	if (has_from) na_key_floor(&lo, from);
	walk w;
	rc = walk_open(&w, s, txn, false, has_from ? lo.b : NULL, NULL);
	const uint8_t *key;
	while (rc == 0 && (rc = walk_next(&w, &key)) == 0) {
		if (has_from && memcmp(key, lo.b, NA_KEY_BYTES) < 0)
			continue;
		if (has_to && memcmp(key, hi.b, NA_KEY_BYTES) >= 0)
			break;
		(*n)++;
	}
	walk_close(&w);
	if (rc == MDB_NOTFOUND)
		rc = 0;
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
	MDB_dbi all[] = { s->articles, s->guids, s->meta, s->dicts, s->log, s->guidnew };
	size_t nall = sizeof all / sizeof all[0] - !s->have_guidnew;
	for (size_t i = 0; i < nall && rc == 0; i++) {
		rc = mdb_stat(txn, all[i], &st);
		if (i == 0)
			o->records = st.ms_entries;
		o->page_bytes += pages(&st);
	}
	if (rc == 0)
		rc = na_store_articles(s, txn, &o->articles);
	if (rc == 0 && (rc = mdb_stat(txn, 0, &st)) == 0) /* the main db */
		o->page_bytes += pages(&st);
	MDB_txn *itxn;
	if (rc == 0 && s->have_index && (rc = na_store_ixbegin(s, &itxn)) == 0) {
		MDB_dbi ix[] = { s->ixmeta, s->ixpost, s->ixdocs, s->ixrange, s->ixsealed, s->ixbig };
		for (size_t i = 0; i < sizeof ix / sizeof ix[0] && rc == 0; i++)
			if ((rc = mdb_stat(itxn, ix[i], &st)) == 0)
				o->index_bytes += pages(&st);
		if (rc == 0 && (rc = mdb_stat(itxn, 0, &st)) == 0)
			o->index_bytes += pages(&st);
		na_store_ixend(s, itxn);
	}
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
