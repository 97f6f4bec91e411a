/*
 * writer.h - the single writer thread, with group commit.
 *
 * The event loop submits jobs; the writer takes every job queued since its
 * last commit, applies them in one LMDB transaction, commits (fsync unless
 * relaxed) and hands the jobs back to the loop through a uv_async handle,
 * where each job's done callback runs. So a reply is only ever sent for a
 * durable write, and the loop never waits for the disk.
 */
#ifndef NA_WRITER_H
#define NA_WRITER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "key.h"
#include "store.h"

typedef enum na_wop {
	NA_WOP_PUT, NA_WOP_DELETE, NA_WOP_DICT,
	/* replication (follower side, see follow.c) */
	NA_WOP_APPLY,       /* log entries from the primary */
	NA_WOP_SNAP_BEGIN,  /* wipe, adopt the primary's identity */
	NA_WOP_SNAP_ROWS,   /* articles of a snapshot */
	NA_WOP_SNAP_DICT,   /* a dictionary of a snapshot */
	NA_WOP_SNAP_END,    /* the snapshot is whole: position = its seq */
	NA_WOP_HISTORY,     /* adopt a history id (after the primary's promotion) */
	NA_WOP_PROMOTE,     /* become a primary under a new history */
	NA_WOP_TRIM,        /* log retention */
	NA_WOP_RECODE,      /* store the same articles compressed better */
	NA_WOP_COMPACT,     /* swap runs of adjacent records for blocks */
} na_wop;

/* A change-log entry as shipped between servers (see replog.c). */
typedef struct na_rentry {
	uint64_t seq;
	uint8_t op;           /* 'P', 'D' or 'Z' */
	na_key key;           /* P, D */
	bool has_old;         /* P: replaced the version at old */
	na_key old;
	const uint8_t *rec;   /* P: the record, NULL if that version is gone */
	size_t rec_len;
	uint32_t dict_id;     /* Z */
	const uint8_t *dict;
	size_t dict_len;
} na_rentry;

/* One article of a snapshot. */
typedef struct na_srow {
	na_key key;
	const uint8_t *rec;
	size_t rec_len;
} na_srow;

/* A block the compactor built (NA_WOP_COMPACT). It replaces the nsrc
 * entries stored under src_keys (16 bytes each, adjacent in key order,
 * their values hashing to src_hash with the archive's hash key) if they are
 * all still there unchanged. */
typedef struct na_cblock {
	const uint8_t *rec;
	size_t rec_len;
	const uint8_t *src_keys;
	const uint64_t *src_hash;
	uint32_t nsrc;
} na_cblock;

typedef enum na_wstatus {
	NA_WS_CREATED, NA_WS_UPDATED, NA_WS_UNCHANGED, NA_WS_DELETED, NA_WS_ABSENT
} na_wstatus;

/* One article to put or one guid to delete. Inputs are set by the caller
 * and must stay valid until done runs; outputs are set by the writer. */
typedef struct na_witem {
	/* in */
	const uint8_t *rec;   /* encoded record (put) */
	size_t rec_len;
	const uint8_t *raw;   /* the article's msgpack bytes (put) */
	size_t raw_len;
	const char *guid;
	uint32_t guid_len;
	int64_t micros;       /* publication time (put) */
	bool skip;            /* item already failed validation: leave it */
	/* out */
	int code;             /* NA_CODE_OK or an error code */
	na_wstatus status;
	uint64_t seq;
} na_witem;

/* apply_entry's answer to an entry that does not follow the last one */
#define NA_WRITER_EGAP (-10000)
/* every write's answer once a sync of relaxed commits failed */
#define NA_WRITER_ESYNC (-10003)
/* PROMOTE's answer while the archive holds a partial snapshot */
#define NA_WRITER_EPARTIAL (-10004)

typedef struct na_wjob na_wjob;
typedef void (*na_wdone)(na_wjob *job);

struct na_wjob {
	na_wjob *next;
	na_wop op;
	uint32_t n;
	na_witem *items;
	/* NA_WOP_DICT, NA_WOP_SNAP_DICT */
	uint32_t dict_id;
	const void *dict;
	size_t dict_len;
	/* NA_WOP_APPLY */
	na_rentry *entries;
	uint32_t nentries;
	/* NA_WOP_SNAP_ROWS, NA_WOP_RECODE (same content, new record bytes) */
	na_srow *rows;
	uint32_t nrows;
	/* NA_WOP_COMPACT */
	na_cblock *cblocks;
	uint32_t ncblocks;
	uint32_t compacted;      /* out: blocks swapped in */
	/* NA_WOP_SNAP_BEGIN, NA_WOP_HISTORY, NA_WOP_PROMOTE: identity; SNAP_END: seq */
	uint8_t history[16], hash_key[16];
	uint8_t chain[16 * 24];  /* (history, end seq) pairs of earlier histories */
	uint32_t chain_len;      /* pairs */
	uint64_t seq;            /* SNAP_END position; TRIM: drop entries below */
	uint64_t exact_at;       /* SNAP_END: the fuzzy copy is exact once the log
				  * is applied up to here (0: at seq) */
	uint64_t now_ms;         /* TRIM: the time to record for the head */
	uint64_t max_age_ms;     /* TRIM */
	/* optional: runs on the writer thread right after the job's group
	 * committed or failed, before done is queued for the loop */
	void (*committed)(na_wjob *job);
	/* out: a failure of the whole job (NA_CODE_OK if none) */
	int code;
	const char *msg;
	uint64_t articles;    /* article count after the commit */
	uint64_t seq_after;   /* last sequence number after the commit */
	na_wdone done;        /* runs on the loop thread */
	void *arg;
	/* replication jobs: the link they came from (0: not replication). Once
	 * one of them fails, the writer refuses the rest of that link's jobs,
	 * so nothing after a failed step is applied. */
	uint32_t link;
};

typedef struct na_writer {
	na_store *store;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	na_wjob *head, *tail;     /* submitted */
	na_wjob *done_head, *done_tail;
	bool stop, started;
	bool relaxed;
	uv_async_t async;
	size_t log_cap;           /* trim the log beyond these bytes (0: never) */
	/* writer-thread state (mirrors meta, restored when a txn is aborted) */
	uint64_t seq, raw_bytes, stored_bytes, articles;
	uint64_t exact_at;        /* meta "exact_at": a follower's snapshot is not
				   * exact before seq reaches it (0: it is) */
	na_key max_key;           /* the highest article key (have_max) */
	bool have_max;
	bool any_blocks;          /* meta "blocks": the archive has stored blocks */
	/* the guid index's two tables (store.h): where the next fold starts
	 * (a hint: 0 at start-up, and an aborted transaction may move it),
	 * whether this group puts into guids directly, and how many entries
	 * it put into guidnew */
	uint64_t fold_pos;
	bool guid_direct;
	uint64_t guidnew_puts;
	/* replicated dictionaries this group registered with the codec (its
	 * records need them to be read within the transaction): dropped again
	 * if it does not commit; the last one becomes current once it has */
	uint32_t *grp_dicts;
	size_t grp_ndicts, grp_cap;
	uint32_t grp_use;
	na_buf scratch;           /* decoded articles, reused */
	na_buf blockbuf, blockbuf2; /* blocks being rewritten */
	na_block *blk;            /* a parsed block */
	uint32_t broken_link;     /* a replication link whose job failed */
	/* relaxed durability: commits are not synced; a syncer thread flushes
	 * them once a second, beside the writer rather than in its way */
	pthread_t syncer;
	pthread_mutex_t sync_lock;
	pthread_cond_t sync_cond;
	bool sync_stop, syncer_on;
	bool unsynced;            /* under sync_lock: commits since the last sync */
	unsigned committing;      /* under sync_lock: a commit is under way */
	bool mark_failed;         /* under sync_lock: the marker could not be written */
	uint64_t unsynced_seq;    /* under sync_lock: the last seq committed */
	_Atomic uint64_t synced_seq; /* every seq up to here is on disk */
	_Atomic int sync_error;   /* a failed sync (na_writer_sync): writes refused */
	/* statistics */
	uint64_t commits, committed_items;
	/* optional: told (on the writer thread, under lock) of every commit's
	 * last seq; set with na_writer_set_hook */
	void (*on_commit)(void *arg, uint64_t seq);
	void *on_commit_arg;
} na_writer;

/* Starts the writer thread; done callbacks will run on loop. */
int na_writer_start(na_writer *w, na_store *s, uv_loop_t *loop, bool relaxed);

/* The highest seq known to be on disk, any thread. With strict durability
 * every commit is synced before it is reported, so this is UINT64_MAX
 * ("all of them"); with relaxed, the seq of the last commit the syncer
 * thread's latest flush covered. */
uint64_t na_writer_synced_seq(na_writer *w);
/* Queues a job (loop thread). */
void na_writer_submit(na_writer *w, na_wjob *job);
/* Finishes every queued job, runs their callbacks, stops the thread and
 * closes the async handle. Also frees a writer used only with apply_now. */
void na_writer_stop(na_writer *w);

/* Sets (fn != NULL) or removes the commit hook. Once it returns, a removed
 * hook is not running and will not run again. */
void na_writer_set_hook(na_writer *w, void (*fn)(void *arg, uint64_t seq), void *arg);

/* Relaxed durability: flushes every commit so far to disk (the sync thread
 * calls it once a second, the writer once more when it stops). 0, or the
 * LMDB error / errno. A failure is final: the kernel may already have
 * dropped pages it could not write, and a later sync would report success
 * without them, so the error is logged and every later write job fails
 * with NA_CODE_INTERNAL until the daemon restarts (reads go on). */
int na_writer_sync(na_writer *w);

/* Applies jobs synchronously on the calling thread (tests, tools). */
int na_writer_apply_now(na_writer *w, na_wjob *job);

#endif
