/*
 * bench.h - newsarch-bench: shared types of the corpus loader (corpus.c),
 * the pipelined RPC connection (conn.c), the latency histogram (hist.c),
 * the workloads/report (main.c) and the replication / CLI import
 * measurements with their helpers for run.sh (repl.c).
 */
#ifndef NA_BENCH_H
#define NA_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "mp.h"

/* ---- corpus ---------------------------------------------------------- */

/* Longest JSON line accepted (bytes, without the newline). */
#define BENCH_MAX_LINE (64u << 20)
/* Most base lines read from a corpus file. */
#define BENCH_MAX_BASE 10000000u
/* Most articles after scaling (bounds every per-article array). */
#define BENCH_MAX_ARTICLES 50000000u

typedef struct bench_corpus {
	/* every article (after scaling), msgpack, laid end to end */
	uint8_t *data;
	size_t len, cap;
	size_t *off;           /* n + 1 offsets into data */
	uint32_t *json_len;    /* source JSON bytes of each article (line + '\n') */
	uint32_t *guid_off;    /* guid string bytes: data + off[i] + guid_off[i] */
	uint16_t *guid_len;
	int64_t *sorted_us;    /* publication times (µs), sorted ascending */
	size_t n;
	/* what it was made from */
	size_t base_n;
	unsigned scale;
	uint64_t base_json_bytes;
	uint64_t json_bytes;   /* sum of json_len */
	int64_t shift_sec;     /* copy k is shifted by k * shift_sec */
	bool synthetic;
	char source[512];
} bench_corpus;

/* Loads JSON lines from path (plain or zstd, told by the magic number), or
 * generates `synthetic` articles when path is NULL, then scales: copy k of
 * every article is published k * (time span + 1 day) later and has "-k"
 * appended to its guid. scale 0 means: enough copies for `target` articles.
 * The result is capped at `cap` articles (0: no cap).
 * Returns 0, or -1 with a message in err. */
int bench_corpus_load(bench_corpus *c, const char *path, size_t synthetic, unsigned scale,
		      size_t target, size_t cap, char *err, size_t errcap);
void bench_corpus_free(bench_corpus *c);

/* ---- latency histogram ---------------------------------------------- */

/* Log-linear buckets of nanoseconds: 64 sub-buckets per power of two
 * (better than 1.6% resolution), 2^0 .. 2^40 ns. Fixed size, no allocation. */
#define HIST_SUB_BITS 6
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_POW 41
#define HIST_BUCKETS (HIST_POW * HIST_SUB)

typedef struct hist {
	uint64_t count;
	uint64_t b[HIST_BUCKETS];
} hist;

void hist_add(hist *h, uint64_t ns);
void hist_merge(hist *dst, const hist *src);
/* Value (ns) at quantile q (0..1); 0 when empty. */
double hist_quantile(const hist *h, double q);

/* ---- connection ------------------------------------------------------ */

/* A non-blocking MessagePack-RPC connection with one outgoing request at a
 * time in its send buffer (plus an optional body that is not copied) and
 * any number of replies being read. */
typedef struct bconn {
	int fd;
	na_scan scan;
	uint8_t *in;
	size_t in_off, in_len, in_cap;  /* unread bytes: in[in_off .. in_len) */
	/* outgoing: ob[0..ob_len) then ext[0..ext_len) */
	uint8_t *ob;
	size_t ob_len, ob_cap;
	const uint8_t *ext;
	size_t ext_len;
	size_t sent;
	uint64_t bytes_in, bytes_out;
} bconn;

/* Largest reply accepted. */
#define BENCH_MAX_REPLY (64u << 20)

int bc_resolve(const char *addr, struct sockaddr_storage *ss, socklen_t *len, char *err,
	       size_t errcap);
/* Connects (blocking), then makes the socket non-blocking. 0 or -1. */
int bc_open(bconn *c, const struct sockaddr_storage *ss, socklen_t len);
void bc_close(bconn *c);
/* True while a request is (partly) unsent. */
static inline bool bc_sending(const bconn *c) { return c->sent < c->ob_len + c->ext_len; }
/* Starts a request: packs [0, msgid, method, [ into c->ob; the caller
 * appends nparams parameters with bc_packer, or sets an external body. */
void bc_begin(bconn *c, uint32_t msgid, const char *method, uint32_t nparams,
	      msgpack_packer *pk);
/* Starts a notification [2, method, [ (no reply comes), like bc_begin. */
void bc_begin_notify(bconn *c, const char *method, uint32_t nparams, msgpack_packer *pk);
/* Writes what the socket takes now without waiting. 0 or -1. */
int bc_flush(bconn *c);
/* Waits (at most timeout_ms) until the socket can move data, then writes
 * what is pending and reads what arrived. 0, or -1 on error / EOF / timeout
 * (errno says which; ETIMEDOUT for the timeout). */
int bc_pump(bconn *c, bool want_read, int timeout_ms);
/* One complete reply, if buffered: 1 and *msg, *len (valid until the next
 * bc_pump), 0 if none, -1 if the bytes are not MessagePack. */
int bc_reply(bconn *c, const uint8_t **msg, size_t *len);
/* Blocking call helper for setup work: sends a request and waits for the
 * reply with the same msgid, up to timeout_ms. Returns 1 with *msg and *len. */
int bc_call(bconn *c, uint32_t msgid, const char *method, const void *params, size_t plen,
	    uint32_t nparams, const uint8_t **msg, size_t *len, int timeout_ms);

/* Parses a reply [1, msgid, error, result]: sets *msgid, *is_error, and
 * leaves r positioned at the result (or at the error when is_error). */
int bc_parse_reply(const uint8_t *msg, size_t len, na_mp *r, uint32_t *msgid, bool *is_error);

/* Monotonic clock, nanoseconds. */
uint64_t bench_now_ns(void);

/* ---- /proc (main.c) --------------------------------------------------- */

/* CPU time (clock ticks) of a whole process and of its main thread. */
typedef struct cpu_sample {
	bool ok;
	uint64_t total, loop;
} cpu_sample;

cpu_sample bench_read_cpu(long pid);
double bench_loadavg1(void);

/* ---- replication, CLI import, report helpers (repl.c) ---------------- */

/* newsarch-bench --repl MODE ...: load | catchup | wait-streaming | lag */
int bench_repl_main(int argc, char **argv);

/* ---- search.c: full-text search ---------------------------------------- */

typedef struct bench_search_row {
	char name[48];
	uint64_t queries;
	double rate, p50_us, p99_us, mean_total;
} bench_search_row;

typedef struct bench_search_result {
	bool done;
	char err[160];
	double catchup_s, index_rate;
	uint64_t articles, index_docs, index_bytes, stored_bytes, page_bytes;
	bench_search_row rows[8];
	unsigned nrows;
} bench_search_result;

/* Waits for the index to cover the server's log, then times searches for
 * `seconds` per query kind. ingest_t0/t1: when the ingest began and ended
 * (bench_now_ns), 0 when there was none. 0 or -1 (message in out->err). */
int bench_search(const struct sockaddr_storage *ss, socklen_t sslen, const bench_corpus *c,
		 uint64_t ingest_t0, uint64_t ingest_t1, double seconds, bench_search_result *out);
void bench_search_print(const bench_search_result *r);
/* newsarch-bench --time-import ... -- CMD ARGS... */
int bench_time_import(int argc, char **argv);
/* newsarch-bench --report ROWS MAIN_OUTPUT */
int bench_report(int argc, char **argv);
/* newsarch-bench --add-row ROWS NAME REASON: a row for a skipped measurement */
int bench_add_row(int argc, char **argv);

/* ---- Redis / PostgreSQL side of make bench-compare (peers.c) ------- */

/* newsarch-bench --peer MODE ...: export | redis-get | redis-range |
 * redis-catchup | redis-lag */
int bench_peer_main(int argc, char **argv);

#endif
