/*
 * store.h - the archive on disk: one LMDB environment and its tables, and
 * every read of it. Writes go through writer.h (one writer thread).
 */
#ifndef NA_STORE_H
#define NA_STORE_H

#include <lmdb.h>
#include <msgpack.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "article.h"
#include "codec.h"
#include "key.h"

/* 2: records may be blocks (codec.h); meta "articles" counts articles.
 * Version 1 archives (single records only) open and are upgraded. */
#define NA_SCHEMA_VERSION 3

typedef struct na_store_opts {
	const char *dir;
	size_t map_size;       /* initial map size */
	size_t max_map_size;   /* the map never grows past this */
	bool relaxed;          /* MDB_NOSYNC: commits are not fsynced */
	int level;             /* zstd level */
	int block_level;       /* zstd level of blocks (0: level) */
	bool raw_literals;     /* literal_compression = no (na_codec_set_literals) */
	size_t max_article;    /* largest article accepted, bytes */
	bool readonly;         /* open read-only (verify) */
	bool fork_history;     /* a primary: continue under a new history id */
	uint32_t index_segment; /* docids per sealed index segment (0: default) */
	uint32_t index_refresh_ms; /* new writes gather this long before indexing */
} na_store_opts;

typedef struct na_store {
	MDB_env *env;
	MDB_dbi articles;      /* key(16) -> record */
	MDB_dbi guids;         /* siphash(guid) (8, BE) -> key(16); dupsort */
	MDB_dbi guidnew;       /* the same, for entries not yet folded into guids */
	bool have_guidnew;     /* false: a read-only open of a schema 2 archive */
	MDB_dbi meta;          /* name -> value */
	MDB_dbi dicts;         /* id (4, BE) -> dictionary bytes */
	MDB_dbi log;           /* seq (8, BE) -> change */
	MDB_dbi logtime;       /* seq (8, BE) -> unix ms: when the log reached seq */
	/* The full-text index (index.h) lives in a second environment, DIR/index:
	 * its commits (the indexer's own, with their own fsyncs) never hold up
	 * the articles' writer. Derived data: missing or stale, it is rebuilt. */
	MDB_env *ixenv;
	MDB_dbi ixmeta, ixpost, ixdocs, ixrange, ixsealed, ixbig;
	unsigned ix_segshift;  /* log2 of index_segment, for a new index */
	uint32_t ix_refresh_ms; /* index_refresh_ms */
	/* Relaxed durability: DIR/unsynced exists while commits may not be on
	 * disk (written before such a commit, removed after a sync that covered
	 * every commit; the writer keeps it). Found at open from an earlier boot
	 * (unclean_stop), the machine stopped with commits unsynced, and the
	 * archive may be damaged: the server verifies it before serving. */
	char mark[4200];
	bool marked, unclean_stop;
	bool ix_unsynced;      /* index commits not yet synced (indexer thread) */
	/* the indexer found its index unfit (other articles, ahead of the
	 * archive) and has not yet recorded the rebuild in it: searches must
	 * not trust the index's meta meanwhile (search.c all_live) */
	_Atomic bool ix_unfit;
	char ix_mark[4200];    /* DIR/index/unsynced: the marker of that state */
	bool have_index;       /* false: a read-only open (no index environment) */
	na_codec *codec;
	uint8_t hash_key[16];  /* siphash key of this archive */
	uint8_t archive_id[16];
	/* Replication identity (see replog.c): the history this archive's log
	 * belongs to, and the earlier histories it continues, each with the
	 * last sequence number it shares with them. */
	uint8_t history[16];
	uint8_t chain[16 * 24];
	uint32_t chain_len;
	bool snapshot_incomplete; /* a follower died during its snapshot */
	size_t map_size;       /* current */
	size_t max_map_size;
	uint64_t reserve_pages; /* na_store_reserve */
	/* Pages of the map in use (me_last_pgno + 1), published by the writer
	 * after each commit for threads that may not call mdb_env_info while
	 * the map could be resized under them (na_store_ix_room). */
	_Atomic uint64_t used_pages;
	size_t max_article;
	unsigned psize;
	/* Readers hold this shared while a read transaction is live; the writer
	 * takes it exclusively to grow the map (LMDB requires that no
	 * transaction be active in the process while mdb_env_set_mapsize runs). */
	pthread_rwlock_t resize_lock;
	/* Reset read transactions kept for reuse (renew is much cheaper than
	 * begin: no allocation, the reader slot is kept). */
	pthread_mutex_t txn_lock;
	MDB_txn *txn_free[64];
	unsigned txn_free_n;
	MDB_txn *ixtxn_free[64]; /* the same for the index environment */
	unsigned ixtxn_free_n;
} na_store;

/* The free pages, in bytes, that writes must leave in a map of
 * max_map_size bytes for deletes and log trims: 1/64 of it, at least
 * 256 KiB, at most 64 MiB and at most a quarter. LMDB reuses the pages a
 * commit frees only from the commit after next, so a delete right after a
 * put that took the last free page would find none to write to, and a full
 * archive could not be thinned (the writer's check_reserve). When the
 * filesystem has less room left than the map, the same is applied to the
 * filesystem's size. */
size_t na_store_reserve(size_t max_map_size);

/* Opens (creating if needed) the archive in opts->dir. 0 or a negative
 * errno / LMDB code; *msg says what failed. */
int na_store_open(na_store *s, const na_store_opts *opts, const char **msg);
void na_store_close(na_store *s);

/* Read transactions. begin takes the resize lock shared. */
int na_store_rbegin(na_store *s, MDB_txn **txn);
void na_store_rend(na_store *s, MDB_txn *txn);
/* Read transactions of the index environment (its map never grows: no
 * lock). 0 or an LMDB error; -ENOENT when the store has no index. */
int na_store_ixbegin(na_store *s, MDB_txn **txn);
void na_store_ixend(na_store *s, MDB_txn *txn);

/* A growable scratch buffer for decoded articles (owner frees data). */
typedef struct na_buf {
	uint8_t *data;
	size_t cap;
	size_t len;
} na_buf;

/* Looks a guid up. Returns 0 and fills *key, *rec and *reclen (the stored
 * record holding the article, which is a block when the article was
 * compacted into one; valid until the transaction ends) and, as a by-product of telling
 * hash collisions apart, the decoded article in *dec; MDB_NOTFOUND; or an
 * error (MDB_CORRUPTED for an unreadable record). */
int na_store_find(na_store *s, MDB_txn *txn, const char *guid, uint32_t gn, na_key *key,
		  const uint8_t **rec, size_t *reclen, na_buf *dec);

/* Where an article lives: the record holding it (a single record, or a
 * block and the member's index). rec points into the transaction's pages. */
typedef struct na_loc {
	na_key ckey;             /* the key the record is stored under */
	const uint8_t *rec;
	size_t rec_len;
	bool block;
	uint32_t member;         /* block: index of the member */
	uint32_t raw_len;        /* the article's decoded length */
} na_loc;

/* Finds the article stored under key, whether as a single record or inside
 * a block. blk: scratch for parsing (may be NULL: one on the heap is used
 * when needed); on return for a block it holds the parsed block.
 * 0, MDB_NOTFOUND, MDB_CORRUPTED, or an LMDB error. */
int na_store_locate(na_store *s, MDB_txn *txn, const na_key *key, na_loc *loc, na_block *blk);

/* Reads the article with this key into dec (growable; caller frees
 * dec->data). This is the by-key read API: it works for articles in
 * blocks. 0, MDB_NOTFOUND, MDB_CORRUPTED, -ENOMEM. */
int na_store_read_key(na_store *s, MDB_txn *txn, const na_key *key, na_buf *dec);

/* Decodes the article at loc into dec (growable). blk: the parsed block
 * when loc->block (as na_store_locate left it), else ignored. */
int na_store_read_loc(na_store *s, const na_loc *loc, const na_block *blk, na_buf *dec);

/* Calls fn for every article with key > after (all when after is NULL),
 * in key order (reverse: every article with key < after, newest first), with its decoded bytes (valid during the call), until fn
 * returns non-zero (which is then returned). Decodes each block once. */
typedef int (*na_store_walk_fn)(void *arg, const na_key *key, const uint8_t *art, size_t len);
int na_store_walk(na_store *s, MDB_txn *txn, const na_key *after, bool reverse,
		  na_store_walk_fn fn, void *arg);

/* The last article key of a stored entry (its own key for a single
 * record). 0 or MDB_CORRUPTED. */
int na_store_entry_last(na_store *s, const MDB_val *k, const MDB_val *v, na_key *last);

/* Article count (meta "articles", or a scan for an archive without it). */
int na_store_articles(na_store *s, MDB_txn *txn, uint64_t *n);

/* Decodes a single (non-block) record into a growable buffer (*buf of *cap
 * bytes, realloc'ed as needed; caller frees). 0 or negative; -EIO for a
 * block (use na_store_read_key / na_store_walk for those). */
int na_store_decode(na_store *s, const uint8_t *rec, size_t len, uint8_t **buf, size_t *cap,
		    size_t *outlen);

/* Range query parameters, decoded from a request. */
typedef struct na_range_q {
	bool has_from, has_to, reverse, has_after;
	int64_t from, to;      /* microseconds */
	na_key after;
	uint32_t limit;
	na_fields fields;      /* n == 0: whole articles */
	bool project;
	uint64_t min_seq;      /* wait until this seq is applied */
	uint32_t timeout_ms;
} na_range_q;

/* Appends the {"articles": [...], "next": ...} result of a range query to
 * sb (the articles are decoded straight into it). Returns 0 or a negative
 * error (-EIO for a corrupt record); on an error sb is as it was. */
int na_store_range(na_store *s, const na_range_q *q, msgpack_sbuffer *sb);
/* Counts articles with from <= published < to. */
int na_store_count(na_store *s, bool has_from, int64_t from, bool has_to, int64_t to,
		   uint64_t *n);

typedef struct na_store_stats {
	uint64_t articles, raw_bytes, stored_bytes, seq;
	uint64_t index_bytes;  /* pages of the full-text index tables */
	uint64_t records;      /* entries of the articles table: singles + blocks */
	uint64_t map_size, map_used, page_bytes;
	uint32_t dict;
	size_t dict_bytes;
} na_store_stats;
int na_store_stats_get(na_store *s, na_store_stats *st);

/* meta table helpers (inside a transaction) */
int na_meta_get_u64(na_store *s, MDB_txn *txn, const char *name, uint64_t *v);
int na_meta_put_u64(na_store *s, MDB_txn *txn, const char *name, uint64_t v);

uint64_t na_store_guid_hash(const na_store *s, const char *guid, uint32_t n);

/* The guid index is two tables of the same layout: guids, the large one,
 * and guidnew, where new entries go. A new entry in guids would land on a
 * random page of a large table, so a commit of n new articles would copy
 * and write ~n of its pages; in guidnew (an eighth of the index, or
 * NA_GUIDNEW_MIN entries in a small archive) the same inserts share far
 * fewer pages, and na_guid_fold moves entries on to guids in hash order,
 * a run of neighbouring hashes at a time, which lands on neighbouring
 * pages. (A commit that rewrites most of guids anyway puts into it
 * directly: the writer decides, see writer.c.) An entry is in exactly one
 * of the two; readers look in both, inside one transaction, so a fold
 * (done by the writer in the transaction of a commit) is invisible to
 * them. Writer thread only, in a write transaction. h is the guid's hash. */

/* Adds h -> key to the index: to guidnew, or to guids when direct (for a
 * transaction that rewrites most of guids anyway). 0 or an LMDB error. */
int na_guid_put(na_store *s, MDB_txn *txn, uint64_t h, const na_key *key, bool direct);
/* Removes h -> key from whichever table holds it: 0, MDB_NOTFOUND when
 * neither does, or an LMDB error. */
int na_guid_del(na_store *s, MDB_txn *txn, uint64_t h, const na_key *key);
/* When guidnew holds more than its share of the index (an eighth, at least
 * NA_GUIDNEW_MIN entries), moves entries from it to guids until it is
 * back at its share, in hash order from *pos (wrapping around at the
 * end); *pos is left at the last hash moved (0 after the end), where the
 * next fold resumes. A pair already in guids is just dropped from
 * guidnew, and a malformed entry is dropped with a warning, so damage
 * there cannot stop writes. 0 or an LMDB error. */
#define NA_GUIDNEW_MIN 8192
int na_guid_fold(na_store *s, MDB_txn *txn, uint64_t *pos);

/* The index environment is not synced on each commit (store.c explains
 * why that is safe). Before a commit that will not be synced, the indexer
 * calls na_store_ix_mark (a no-op while a mark is up); na_store_ix_sync
 * syncs what is committed and takes the mark down. Indexer thread only
 * (and na_store_close after it stopped). 0 or a negative errno / LMDB
 * error. */
int na_store_ix_mark(na_store *s);
int na_store_ix_sync(na_store *s);
/* Whether the filesystem of the index has room for an index commit of
 * about need bytes and still keeps a reserve (1/32 of the archive's size,
 * 256 KiB to 64 MiB, and at least na_store_reserve of the filesystem's
 * size) for the archive: the index can wait, a delete that frees space
 * must not find the disk taken by the index. */
bool na_store_ix_room(na_store *s, size_t need);
/* The archive's marker (mark above): written and fsynced (0 or -errno), or
 * removed. */
int na_store_mark_unsynced(na_store *s);
void na_store_unmark_unsynced(na_store *s);

/* The index environment's meta table (ix_* entries, see index.h). A
 * missing u64 reads as 0. */
int na_ixmeta_get_u64(na_store *s, MDB_txn *txn, const char *name, uint64_t *v);
int na_ixmeta_put_u64(na_store *s, MDB_txn *txn, const char *name, uint64_t v);
int na_ixmeta_get(na_store *s, MDB_txn *txn, const char *name, MDB_val *v);
int na_ixmeta_put(na_store *s, MDB_txn *txn, const char *name, const void *p, size_t n);

/* Raw meta access (inside a transaction). */
int na_meta_get(na_store *s, MDB_txn *txn, const char *name, MDB_val *v);
int na_meta_put(na_store *s, MDB_txn *txn, const char *name, const void *p, size_t n);
/* Oldest sequence number still in the log (0 when the log is empty). */
int na_store_log_first(na_store *s, MDB_txn *txn, uint64_t *seq);
/* Hex of 16 bytes into out[33]. */
void na_hex16(const uint8_t *b, char *out);

#endif
