/*
 * server.h - the event loop side of newsarchd: listeners, connections and
 * the requests in flight. conn.c owns connections, dispatch.c turns
 * requests into store reads and writer jobs.
 */
#ifndef NA_SERVER_H
#define NA_SERVER_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "metrics.h"
#include "mp.h"
#include "store.h"
#include "tls.h"
#include "writer.h"

typedef struct na_server na_server;
typedef struct na_conn na_conn;

struct na_conn {
	union {
		uv_handle_t handle;
		uv_stream_t stream;
		uv_tcp_t tcp;
		uv_pipe_t pipe;
	} h;
	na_server *srv;
	uint8_t *in;               /* request bytes received, not yet handled */
	size_t in_len, in_cap;
	na_scan scan;
	msgpack_sbuffer out;       /* replies not yet handed to uv_write */
	size_t out_queued;         /* bytes handed to uv_write, not yet written */
	unsigned pending;          /* requests waiting for a worker or the writer */
	size_t parked_bytes;       /* copies of reads waiting for min_seq */
	int refs;                  /* the handle + one per pending request */
	bool closing, paused, is_unix;
	bool defer;             /* na_conn_flush_deferred under way */
	bool tls_started;          /* the first TLS bytes were checked */
	bool tls_eof;              /* close_notify came while paused: close once drained */
	uint64_t last_active;      /* loop time (ms) of the last request */
	uint64_t partial_since;    /* loop time a partial request began waiting; 0: none */
	char peer[64];
	/* test hook: when set, replies go here instead of the socket */
	void (*sink)(na_conn *c, const void *data, size_t len);
	struct na_sender *sender; /* set when this client follows our log */
	int method;                /* metrics: the request being answered (-1: none) */
	int role;                  /* NA_ROLE_*: what this connection may call */
	na_tls *tls;               /* set on connections from the TLS listener */
	uint64_t accepted_ms;      /* loop time of the accept (TLS handshake deadline) */
	na_conn *prev, *next;
};

typedef struct na_sender na_sender;
typedef struct na_follower na_follower;
typedef struct na_parked na_parked;
typedef struct na_wait na_wait;

struct na_server {
	uv_loop_t *loop;
	na_config cfg;
	na_store store;
	na_writer writer;
	uv_tcp_t tcp;
	uv_pipe_t pipe;
	bool have_tcp, have_pipe;
	bool tcp_public, tls_public; /* listen / tls_listen bound to a non-loopback address */
	uv_signal_t sig[3];
	uv_timer_t tick;
	uv_timer_t watchdog;
	uv_async_t ix_async;    /* the indexer moved on (from its thread) */
	uv_tcp_t metrics_tcp;
	bool have_metrics;
	uv_tcp_t tls_tcp;          /* the TLS listener (tls_listen) */
	bool have_tls;
	na_tls_ctx *tls_ctx;       /* certificate, key and client policy; replaced on SIGHUP */
	na_metrics metrics;
	uint64_t ticks;
	int argc;                  /* for SIGHUP: the flags, read again */
	char **argv;
	na_conn *conns;
	uint32_t nconns;
	uint64_t requests;
	uint64_t started_ms;       /* uv_now at start */
	uint64_t inflight;         /* requests waiting for workers/writer */
	bool stopping, force_close;
	bool promoting;            /* promote accepted, new history not yet committed */
	na_guard guard;            /* failed authentications per address */
	uint64_t stop_ms;          /* uv_now when the stop began */
	/* replication (replog.c: we are read from; follow.c: we read) */
	na_sender *senders;
	na_follower *follower;     /* NULL on a primary */
	na_parked *parked;         /* reads waiting for min_seq */
	na_wait *waits;            /* writes waiting for followers */
	struct write_req *wq_head, *wq_tail; /* writes in arrival order, until submitted */
	uint64_t seq;              /* last committed sequence number */
	uint64_t last_trim_ms;
	/* dictionary training */
	bool training;
	uint64_t trained_at;       /* article count when the current dict was trained */
	double trained_ratio;
	uint64_t dict_raw, dict_stored, dict_records;  /* since the current dict */
	uint64_t recoded;          /* articles re-encoded with a dictionary */
	bool recoding;             /* a re-encoding pass is running */
	/* the first dictionary, trained from the first articles written
	 * (dispatch.c): samples gathered as they arrive, and the writes that
	 * wait for it while it trains */
	uint8_t *seed;             /* samples laid end to end */
	size_t *seed_sizes;
	size_t seed_used;
	unsigned seed_n;
	uint64_t seed_seen;        /* articles that arrived while gathering */
	bool seed_off;             /* trained, failed or not wanted: gather no more */
	bool seeding;              /* training on the samples; writes wait */
	uint32_t held;             /* write requests waiting for it */
	/* loop-thread scratch (conn.c, dispatch.c): the read buffer a
	 * connection with nothing buffered reads into, and the buffer get
	 * decodes into; both reused, so a request allocates neither */
	uint8_t *rbuf;
	na_buf getbuf;
	/* full-text search (index.c, search.c) */
	struct na_indexer *indexer;
	na_parked *ix_parked;      /* searches waiting for the index to cover min_seq */
	/* compaction into blocks (compact.c) */
	struct compact_req *compact; /* the pass in progress */
	bool compact_waiting;      /* its next chunk waits for the tick */
	bool compact_dirty;        /* written since the pass began */
	bool compact_lo_set;       /* ... and nothing below compact_lo */
	na_key compact_lo;
	uint64_t compact_seen_seq; /* follower: seq when last marked */
	uint64_t last_write_ms;    /* loop time of the last acknowledged write */
	uint64_t compacted_blocks, compact_stale;
	double compact_ratio;      /* of the blocks made so far (0: none yet) */
};

/* Opens the store and starts the writer; listeners are separate. */
int na_server_init(na_server *s, uv_loop_t *loop, const na_config *cfg);
/* Binds the configured listeners. 0 or -1 (logged). */
int na_server_listen(na_server *s);
/* Begins a graceful stop: no new requests, finish those in flight, close. */
void na_server_shutdown(na_server *s);
/* Frees what init allocated; call after the loop has stopped. */
void na_server_free(na_server *s);
/*
 * The authentication rule of the listeners, for SIGHUP: with ntokens tokens
 * and client-certificate policy verify, would a non-loopback listener bound
 * at start serve anyone as admin without allow_unauthenticated? Returns
 * that listener's address (borrowed from s->cfg), or NULL when none would.
 */
const char *na_server_exposed(const na_server *s, unsigned ntokens, int verify);

/* conn.c */
na_conn *na_conn_new(na_server *s);
void na_conn_start(na_conn *c);
void na_conn_feed(na_conn *c, const uint8_t *data, size_t len); /* tests/fuzz */
void na_conn_close(na_conn *c);
void na_conn_flush(na_conn *c);
/* Like na_conn_flush, but always through a queued write, never written at
 * once: its write callback then runs on a later turn of the loop. */
void na_conn_flush_deferred(na_conn *c);
/* Queues a finished reply buffer, taking its memory (out is left empty). */
void na_conn_send(na_conn *c, msgpack_sbuffer *out);
void na_conn_unref(na_conn *c);
/* A request finished asynchronously: account for it, flush, resume. */
void na_conn_request_done(na_conn *c);
/* During a stop: closes what can be closed, ends the loop when all is. */
void na_server_maybe_finish(na_server *s);

/* tlsconf.c: the daemon's TLS settings (the engine is proto/tls.c) */
/* Builds s->tls_ctx from the configuration. 0 or -1 (logged). */
int na_tls_setup(na_server *s);
/* SIGHUP: rebuilds the context from n's files and policy; on success the
 * new one serves new connections and n's TLS settings are copied into
 * s->cfg; on failure the old one stays (logged). Returns settings changed. */
int na_tls_reload(na_server *s, const na_config *n);
/* A client context for the follower's tls:// link from cfg. 0 or -1 with err. */
int na_tls_follow_ctx(const na_config *cfg, na_tls_ctx **out, char *err, size_t errlen);
void na_tls_teardown(na_server *s);

/* replog.c */
void na_repl_start(na_conn *c, uint32_t msgid, na_mp *r, uint32_t nparams, bool subscribe);
void na_repl_ack(na_conn *c, na_mp *r, uint32_t nparams);
void na_repl_pump(na_sender *x);
void na_repl_committed(na_server *s, uint64_t seq);   /* after every commit */
void na_repl_conn_closed(na_conn *c);
void na_repl_tick(na_server *s);
void na_repl_stats(na_server *s, msgpack_packer *pk); /* "replication" value */
/* Parks a read until seq min_seq is applied (copying msg); 1 if parked. */
int na_repl_park(na_conn *c, const uint8_t *msg, size_t len, uint32_t msgid, uint64_t min_seq,
		 uint32_t timeout_ms);
/* Holds a write reply until `need` followers applied seq. `body` is the
 * packed result: the three key/value pairs of a put result (batch=false) or
 * the results array (batch=true). */
void na_repl_wait(na_conn *c, uint32_t msgid, uint64_t seq, uint32_t need, uint32_t timeout_ms,
		  bool batch, const char *body, size_t len);
void na_repl_shutdown(na_server *s);
/* Parks a search until the index covers min_seq; 1 if parked. */
int na_repl_park_index(na_conn *c, const uint8_t *msg, size_t len, uint32_t msgid,
		       uint64_t min_seq, uint32_t timeout_ms);
/* The index moved (or the tick): answers searches that can go now. */
void na_repl_wake_index(na_server *s, bool timeouts);
void na_repl_metrics(na_server *s, FILE *f);

/* follow.c */
int na_follow_start(na_server *s, const char *addr);
void na_follow_stop(na_server *s);
void na_follow_stats(na_server *s, msgpack_packer *pk);
void na_follow_metrics(na_server *s, FILE *f);
const char *na_follow_addr(const na_server *s);
const char *na_follow_state(const na_server *s);

/* dispatch.c: handles one framed request; replies go into c->out. */
void na_dispatch(na_conn *c, const uint8_t *msg, size_t len);
/* Error reply for a request whose msgid is known. */
void na_reply_error(na_conn *c, uint32_t msgid, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* compact.c: background packing of adjacent articles into blocks. */
/* Records a write (lo: the lowest article key it stored, NULL: unknown). */
void na_compact_wrote(na_server *s, const na_key *lo);
/* Starts a pass if one is due and none runs. */
void na_compact_kick(na_server *s);
/* Once a second: resumes a pass that waited for writes to pause. */
void na_compact_tick(na_server *s);
/* A pass runs or is due. */
bool na_compact_pending(const na_server *s);
/* At shutdown, after the loop: frees a pass that was waiting. */
void na_compact_free(na_server *s);
/* After writes: train or retrain the compression dictionary if due. */
void na_train_maybe(na_server *s, uint64_t articles);

#endif
