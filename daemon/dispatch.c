/*
 * dispatch.c - from a framed request to its reply.
 *
 * Cheap requests (ping, get, stats, count of everything) are answered on
 * the loop thread. A range or a bounded count runs on libuv's worker pool
 * inside its own read transaction, so a large read never stalls other
 * clients. A write is checked on the loop thread, compressed on the worker
 * pool, then queued for the writer thread, and answered when its
 * transaction is durable. Requests of one connection may therefore be
 * answered out of order; clients match replies by msgid.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "index.h"
#include "log.h"
#include "rpc.h"
#include "search.h"
#include "server.h"
#include "verify.h"

#define VERSION "0.1.0"
/* get keeps its decode buffer up to this size between requests */
#define GETBUF_KEEP (256u << 10)

/* ---- replies -------------------------------------------------------- */

static void reply_head(msgpack_packer *pk, uint32_t msgid)
{
	msgpack_pack_array(pk, 4);
	msgpack_pack_uint8(pk, NA_RPC_RESPONSE);
	msgpack_pack_uint32(pk, msgid);
}

static void pack_error(msgpack_packer *pk, int code, const char *msg)
{
	msgpack_pack_map(pk, 2);
	na_mp_pack_cstr(pk, "code");
	na_mp_pack_cstr(pk, na_code_name(code));
	na_mp_pack_cstr(pk, "message");
	na_mp_pack_cstr(pk, msg);
}

static void pack_error_reply(msgpack_packer *pk, uint32_t msgid, int code, const char *msg)
{
	reply_head(pk, msgid);
	pack_error(pk, code, msg);
	msgpack_pack_nil(pk);
}

void na_reply_error(na_conn *c, uint32_t msgid, int code, const char *fmt, ...)
{
	if (c->method >= 0 && c->method < NA_M__COUNT)
		c->srv->metrics.errors[c->method]++;
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &c->out, msgpack_sbuffer_write);
	pack_error_reply(&pk, msgid, code, msg);
}

/* Starts an OK reply in c->out; the caller packs the result. */
static msgpack_packer ok_reply(na_conn *c, uint32_t msgid)
{
	msgpack_packer pk;
	msgpack_packer_init(&pk, &c->out, msgpack_sbuffer_write);
	reply_head(&pk, msgid);
	msgpack_pack_nil(&pk);
	return pk;
}

static const char *tname(na_mp_type t)
{
	static const char *const n[] = { "nil", "bool", "uint", "int", "float", "str",
					 "bin", "array", "map", "ext", "nothing" };
	return n[t];
}

/* ---- parameter helpers --------------------------------------------- */

typedef struct req {
	na_conn *c;
	uint64_t t0;           /* arrival, for the latency histogram */
	const uint8_t *msg;    /* the whole request, for parking */
	size_t len;
	uint32_t msgid;
	const char *method;
	na_mp *r;          /* positioned at the first parameter */
	uint32_t nparams;
} req;

/* Replies with an error; returns -1 so callers can `return fail(...)`. */
static int __attribute__((format(printf, 3, 4))) fail(req *q, int code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	na_reply_error(q->c, q->msgid, code, "%s", msg);
	return -1;
}
#define BAD(rq, ...) fail((rq), NA_CODE_BAD_REQUEST, __VA_ARGS__)
#define TOOBIG(rq, ...) fail((rq), NA_CODE_TOO_LARGE, __VA_ARGS__)

static int want_params(req *q, uint32_t min, uint32_t max)
{
	if (q->nparams < min || q->nparams > max) {
		if (min == max)
			return BAD(q, "%s: expected %u parameter%s, got %u", q->method, min,
				   min == 1 ? "" : "s", q->nparams);
		return BAD(q, "%s: expected %u to %u parameters, got %u", q->method, min, max,
			   q->nparams);
	}
	return 0;
}

static int read_guid(req *q, const char *where, const char **g, uint32_t *n)
{
	na_mp_type t = na_mp_peek(q->r);
	if (t != NA_MP_STR || na_mp_str(q->r, g, n))
		return BAD(q, "%s: guid must be a string, got %s", where, tname(t));
	if (*n == 0 || *n > NA_MAX_GUID_BYTES)
		return BAD(q, "%s: guid must be 1 to %d bytes, got %u", where, NA_MAX_GUID_BYTES, *n);
	return 0;
}

/* A time: timestamp extension or integer unix seconds -> microseconds. */
static int read_time(req *q, const char *where, int64_t *micros)
{
	na_mp_type t = na_mp_peek(q->r);
	na_ts ts = { 0, 0 };
	if (t == NA_MP_EXT) {
		int rc = na_mp_ts(q->r, &ts);
		if (rc)
			return BAD(q, "%s: expected a timestamp (ext -1)%s", where,
				   rc == NA_MP_ERANGE ? " with nanoseconds below 10^9" : "");
	} else if (t == NA_MP_INT || t == NA_MP_UINT) {
		if (na_mp_i64(q->r, &ts.sec))
			return BAD(q, "%s: integer out of range", where);
	} else {
		return BAD(q, "%s: expected a timestamp or unix seconds, got %s", where, tname(t));
	}
	if (ts.sec < NA_TS_MIN_SEC || ts.sec > NA_TS_MAX_SEC)
		return BAD(q, "%s: time is outside years 1..9999", where);
	*micros = na_ts_micros(ts);
	return 0;
}

static int read_fields(req *q, const char *where, na_fields *f)
{
	uint32_t n;
	na_mp_type t = na_mp_peek(q->r);
	if (t != NA_MP_ARRAY || na_mp_array(q->r, &n))
		return BAD(q, "%s.fields: expected an array of strings, got %s", where, tname(t));
	if (n > NA_MAX_FIELDS)
		return TOOBIG(q, "%s.fields: at most %d names, got %u", where, NA_MAX_FIELDS, n);
	f->n = n;
	for (uint32_t i = 0; i < n; i++) {
		t = na_mp_peek(q->r);
		if (t != NA_MP_STR || na_mp_str(q->r, &f->name[i].s, &f->name[i].n))
			return BAD(q, "%s.fields[%u]: expected a string, got %s", where, i, tname(t));
	}
	return 0;
}

/* ---- ping, stats ---------------------------------------------------- */

static void do_ping(req *q)
{
	msgpack_packer pk = ok_reply(q->c, q->msgid);
	na_mp_pack_cstr(&pk, "pong");
}

static void kv_u64(msgpack_packer *pk, const char *k, uint64_t v)
{
	na_mp_pack_cstr(pk, k);
	msgpack_pack_uint64(pk, v);
}

static void do_stats(req *q)
{
	if (want_params(q, 0, 0))
		return;
	na_server *s = q->c->srv;
	na_store_stats st;
	int rc = na_store_stats_get(&s->store, &st);
	if (rc) {
		na_reply_error(q->c, q->msgid, NA_CODE_INTERNAL, "stats: %s", mdb_strerror(rc));
		return;
	}
	msgpack_packer pk = ok_reply(q->c, q->msgid);
	msgpack_pack_map(&pk, 28);
	kv_u64(&pk, "articles", st.articles);
	kv_u64(&pk, "records", st.records);
	kv_u64(&pk, "blocks_compacted", s->compacted_blocks);
	na_mp_pack_cstr(&pk, "compacting");
	if (na_compact_pending(s))
		msgpack_pack_true(&pk);
	else
		msgpack_pack_false(&pk);
	kv_u64(&pk, "raw_bytes", st.raw_bytes);
	kv_u64(&pk, "stored_bytes", st.stored_bytes);
	na_mp_pack_cstr(&pk, "ratio");
	msgpack_pack_double(&pk, st.stored_bytes ? (double)st.raw_bytes / (double)st.stored_bytes : 0.0);
	kv_u64(&pk, "dictionary", st.dict);
	kv_u64(&pk, "dictionary_bytes", st.dict_bytes);
	kv_u64(&pk, "recoded", s->recoded);
	na_mp_pack_cstr(&pk, "recoding");
	if (s->recoding)
		msgpack_pack_true(&pk);
	else
		msgpack_pack_false(&pk);
	kv_u64(&pk, "map_size", st.map_size);
	kv_u64(&pk, "map_used", st.map_used);
	kv_u64(&pk, "max_map_size", s->store.max_map_size);
	kv_u64(&pk, "map_reserve", s->store.reserve_pages * s->store.psize);
	kv_u64(&pk, "page_bytes", st.page_bytes);
	kv_u64(&pk, "seq", s->seq);
	uint64_t synced = na_writer_synced_seq(&s->writer);
	kv_u64(&pk, "synced_seq", synced < s->seq ? synced : s->seq);
	kv_u64(&pk, "connections", s->nconns);
	kv_u64(&pk, "requests", s->requests);
	kv_u64(&pk, "uptime", (uv_now(s->loop) - s->started_ms) / 1000);
	na_mp_pack_cstr(&pk, "role");
	na_mp_pack_cstr(&pk, s->follower ? "follower" : "primary");
	char hx[33];
	na_hex16(s->store.history, hx);
	na_mp_pack_cstr(&pk, "history");
	na_mp_pack_cstr(&pk, hx);
	na_mp_pack_cstr(&pk, "followers");
	na_repl_stats(s, &pk);
	na_mp_pack_cstr(&pk, "replication");
	if (s->follower)
		na_follow_stats(s, &pk);
	else
		msgpack_pack_nil(&pk);
	na_mp_pack_cstr(&pk, "durability");
	na_mp_pack_cstr(&pk, s->cfg.relaxed ? "relaxed" : "strict");
	na_mp_pack_cstr(&pk, "version");
	na_mp_pack_cstr(&pk, VERSION);
	na_mp_pack_cstr(&pk, "index");
	na_ixstats ix = { 0 };
	if (s->indexer)
		na_indexer_stats(s->indexer, &ix);
	msgpack_pack_map(&pk, 10);
	na_mp_pack_cstr(&pk, "state");
	na_mp_pack_cstr(&pk, na_ixstate_name(ix.state));
	kv_u64(&pk, "seq", ix.seq);
	kv_u64(&pk, "lag", s->seq > ix.seq ? s->seq - ix.seq : 0);
	kv_u64(&pk, "articles", ix.docs);
	kv_u64(&pk, "dead", ix.dead);
	kv_u64(&pk, "rebuilt", ix.scanned);
	kv_u64(&pk, "batches", ix.batches);
	kv_u64(&pk, "segments", ix.sealed);
	kv_u64(&pk, "merged", ix.merged);
	kv_u64(&pk, "bytes", st.index_bytes);
}

/* A follower receiving a snapshot has a partial copy: get, range, count and
 * search are refused, unless they wait for a min_seq (they park before
 * this check, and run once the follower has applied it, which is after
 * the snapshot). True when refused. */
static bool refuse_partial(req *q)
{
	if (!q->c->srv->store.snapshot_incomplete)
		return false;
	na_reply_error(q->c, q->msgid, NA_CODE_UNAVAILABLE,
		       "this follower is receiving a snapshot; its copy is partial until done");
	return true;
}

/* ---- get ------------------------------------------------------------ */

static void do_get(req *q)
{
	if (want_params(q, 1, 2))
		return;
	const char *g;
	uint32_t gn;
	if (read_guid(q, "get: params[0]", &g, &gn))
		return;
	na_fields f = { .n = 0 };
	bool project = false;
	uint64_t min_seq = 0;
	uint32_t timeout_ms = 5000;
	if (q->nparams == 2) {
		uint32_t n;
		na_mp_type t = na_mp_peek(q->r);
		if (t != NA_MP_MAP || na_mp_map(q->r, &n)) {
			BAD(q, "get: params[1]: expected an options map, got %s", tname(t));
			return;
		}
		for (uint32_t i = 0; i < n; i++) {
			const char *k;
			uint32_t kn;
			if (na_mp_str(q->r, &k, &kn)) {
				BAD(q, "get: params[1]: option names must be strings");
				return;
			}
			if (na_mp_streq(k, kn, "min_seq") || na_mp_streq(k, kn, "timeout_ms")) {
				uint64_t v;
				if (na_mp_u64(q->r, &v)) {
					BAD(q, "get: params[1].%.*s: expected an unsigned integer", (int)kn, k);
					return;
				}
				if (k[0] == 'm')
					min_seq = v;
				else
					timeout_ms = v > 3600000 ? 3600000 : (uint32_t)v;
				continue;
			}
			if (!na_mp_streq(k, kn, "fields")) {
				BAD(q, "get: params[1]: unknown option \"%.*s\"", (int)(kn > 40 ? 40 : kn), k);
				return;
			}
			if (read_fields(q, "get: params[1]", &f))
				return;
			project = true;
		}
	}
	if (min_seq && na_repl_park(q->c, q->msg, q->len, q->msgid, min_seq, timeout_ms))
		return;
	if (refuse_partial(q))
		return;
	na_server *srv = q->c->srv;
	na_store *st = &srv->store;
	MDB_txn *txn;
	int rc = na_store_rbegin(st, &txn);
	if (rc) {
		na_reply_error(q->c, q->msgid, NA_CODE_INTERNAL, "get: %s", mdb_strerror(rc));
		return;
	}
	na_key key;
	const uint8_t *rec;
	size_t reclen;
	/* the loop's scratch buffer: decoded here, copied into the reply */
	na_buf *dec = &srv->getbuf;
	rc = na_store_find(st, txn, g, gn, &key, &rec, &reclen, dec);
	na_store_rend(st, txn);
	if (rc == MDB_NOTFOUND) {
		na_reply_error(q->c, q->msgid, NA_CODE_NOT_FOUND, "no article with guid \"%.*s\"",
			       (int)(gn > 200 ? 200 : gn), g);
	} else if (rc) {
		log_error("get: cannot read the article for guid %.*s: %s", (int)(gn > 200 ? 200 : gn), g,
			  mdb_strerror(rc));
		na_reply_error(q->c, q->msgid, NA_CODE_INTERNAL, "get: the stored article is unreadable");
	} else if (project) {
		msgpack_sbuffer tmp;
		msgpack_packer tp;
		msgpack_sbuffer_init(&tmp);
		msgpack_packer_init(&tp, &tmp, msgpack_sbuffer_write);
		if (na_article_project(&tp, dec->data, dec->len, &f) != 0) {
			na_reply_error(q->c, q->msgid, NA_CODE_INTERNAL, "get: the stored article is unreadable");
		} else {
			msgpack_packer pk = ok_reply(q->c, q->msgid);
			na_mp_pack_raw(&pk, tmp.data, tmp.size);
		}
		msgpack_sbuffer_destroy(&tmp);
	} else {
		msgpack_packer pk = ok_reply(q->c, q->msgid);
		na_mp_pack_raw(&pk, dec->data, dec->len);
	}
	/* keep an ordinary article's worth; give a huge one back */
	if (dec->cap > GETBUF_KEEP) {
		free(dec->data);
		*dec = (na_buf){ 0 };
	}
}

/* ---- asynchronous requests: bookkeeping ----------------------------- */

static void begin_async(na_conn *c)
{
	c->pending++;
	c->refs++;
	c->srv->inflight++;
}

/* ---- range and count (worker pool) ---------------------------------- */

typedef struct read_req {
	uv_work_t work;
	na_conn *c;
	uint32_t msgid;
	bool is_count;
	na_range_q q;
	char *names;           /* copies of the field names */
	msgpack_sbuffer out;
	uint64_t t0;
	bool failed;
} read_req;

static void read_work(uv_work_t *w)
{
	read_req *rr = w->data;
	na_store *st = &rr->c->srv->store;
	msgpack_packer pk;
	msgpack_packer_init(&pk, &rr->out, msgpack_sbuffer_write);
	int rc;
	if (rr->is_count) {
		uint64_t n;
		rc = na_store_count(st, rr->q.has_from, rr->q.from, rr->q.has_to, rr->q.to, &n);
		if (rc == 0) {
			reply_head(&pk, rr->msgid);
			msgpack_pack_nil(&pk);
			msgpack_pack_uint64(&pk, n);
		}
	} else {
		reply_head(&pk, rr->msgid);
		msgpack_pack_nil(&pk);
		rc = na_store_range(st, &rr->q, &rr->out);
	}
	if (rc) {
		rr->failed = true;
		rr->out.size = 0;
		log_error("%s failed: %s", rr->is_count ? "count" : "range",
			  rc > 0 ? mdb_strerror(rc) : strerror(-rc));
		pack_error_reply(&pk, rr->msgid, NA_CODE_INTERNAL,
				 rc == -EIO ? "a stored article is unreadable; see the server log"
					    : "read transaction failed; see the server log");
	}
}

static void read_done(uv_work_t *w, int status)
{
	(void)status;
	read_req *rr = w->data;
	na_conn *c = rr->c;
	int mid = rr->is_count ? NA_M_COUNT : NA_M_RANGE;
	if (rr->failed)
		c->srv->metrics.errors[mid]++;
	na_metrics_latency(&c->srv->metrics, mid, rr->t0);
	if (!c->closing)
		na_conn_send(c, &rr->out);
	msgpack_sbuffer_destroy(&rr->out);
	free(rr->names);
	free(rr);
	na_conn_request_done(c);
}

static void start_read(req *q, read_req *rr)
{
	rr->c = q->c;
	rr->msgid = q->msgid;
	rr->t0 = q->t0;
	rr->work.data = rr;
	msgpack_sbuffer_init(&rr->out);
	begin_async(q->c);
	uv_queue_work(q->c->srv->loop, &rr->work, read_work, read_done);
}

/* Parses the {"from","to",...} map of range and count. */
static int parse_range(req *q, na_range_q *rq, bool count)
{
	const char *m = count ? "count" : "range";
	rq->limit = NA_RANGE_LIMIT_DEFAULT;
	if (q->nparams == 0)
		return 0;
	uint32_t n;
	na_mp_type t = na_mp_peek(q->r);
	if (t == NA_MP_NIL && count)
		return na_mp_nil(q->r);
	if (t != NA_MP_MAP || na_mp_map(q->r, &n))
		return BAD(q, "%s: params[0]: expected a map, got %s", m, tname(t));
	for (uint32_t i = 0; i < n; i++) {
		const char *k;
		uint32_t kn;
		t = na_mp_peek(q->r);
		if (t != NA_MP_STR || na_mp_str(q->r, &k, &kn))
			return BAD(q, "%s: params[0]: keys must be strings", m);
		char where[64];
		snprintf(where, sizeof where, "%s: params[0].%.*s", m, (int)(kn > 16 ? 16 : kn), k);
		bool known = na_mp_streq(k, kn, "from") || na_mp_streq(k, kn, "to") ||
			     na_mp_streq(k, kn, "min_seq") || na_mp_streq(k, kn, "timeout_ms") ||
			     (!count && (na_mp_streq(k, kn, "limit") || na_mp_streq(k, kn, "reverse") ||
					 na_mp_streq(k, kn, "after") || na_mp_streq(k, kn, "fields")));
		if (!known)
			return BAD(q, "%s: params[0]: unknown key \"%.*s\"", m, (int)(kn > 40 ? 40 : kn), k);
		if (na_mp_peek(q->r) == NA_MP_NIL) { /* nil means "not given" */
			na_mp_nil(q->r);
			continue;
		}
		if (na_mp_streq(k, kn, "from")) {
			if (read_time(q, where, &rq->from))
				return -1;
			rq->has_from = true;
		} else if (na_mp_streq(k, kn, "to")) {
			if (read_time(q, where, &rq->to))
				return -1;
			rq->has_to = true;
		} else if (!count && na_mp_streq(k, kn, "limit")) {
			uint64_t l;
			if (na_mp_u64(q->r, &l))
				return BAD(q, "%s: expected a positive integer", where);
			if (l == 0)
				return BAD(q, "%s: must be at least 1", where);
			if (l > NA_RANGE_LIMIT_MAX)
				return TOOBIG(q, "%s: at most %d, got %llu", where, NA_RANGE_LIMIT_MAX,
					      (unsigned long long)l);
			rq->limit = (uint32_t)l;
		} else if (!count && na_mp_streq(k, kn, "reverse")) {
			if (na_mp_bool(q->r, &rq->reverse))
				return BAD(q, "%s: expected a boolean", where);
		} else if (!count && na_mp_streq(k, kn, "after")) {
			const uint8_t *b;
			uint32_t bn;
			if (na_mp_peek(q->r) != NA_MP_BIN || na_mp_bin(q->r, &b, &bn) ||
			    bn != NA_CURSOR_BYTES)
				return BAD(q, "%s: not a cursor returned by range", where);
			memcpy(rq->after.b, b, NA_CURSOR_BYTES);
			rq->has_after = true;
		} else if (!count && na_mp_streq(k, kn, "fields")) {
			if (read_fields(q, where, &rq->fields))
				return -1;
			rq->project = true;
		} else if (na_mp_streq(k, kn, "min_seq") || na_mp_streq(k, kn, "timeout_ms")) {
			uint64_t v;
			if (na_mp_u64(q->r, &v))
				return BAD(q, "%s: expected an unsigned integer", where);
			if (k[0] == 'm')
				rq->min_seq = v;
			else
				rq->timeout_ms = v > 3600000 ? 3600000 : (uint32_t)v;
		} else {
			return BAD(q, "%s: params[0]: unknown key \"%.*s\"", m, (int)(kn > 40 ? 40 : kn), k);
		}
	}
	return 0;
}

static void do_range(req *q, bool count)
{
	if (want_params(q, 0, 1))
		return;
	na_range_q rq;
	memset(&rq, 0, sizeof rq);
	rq.timeout_ms = 5000;
	if (parse_range(q, &rq, count))
		return;
	if (rq.min_seq && na_repl_park(q->c, q->msg, q->len, q->msgid, rq.min_seq, rq.timeout_ms))
		return;
	if (refuse_partial(q))
		return;
	if (count && !rq.has_from && !rq.has_to) {
		uint64_t n;
		int rc = na_store_count(&q->c->srv->store, false, 0, false, 0, &n);
		if (rc) {
			na_reply_error(q->c, q->msgid, NA_CODE_INTERNAL, "count: %s", mdb_strerror(rc));
			return;
		}
		msgpack_packer pk = ok_reply(q->c, q->msgid);
		msgpack_pack_uint64(&pk, n);
		return;
	}
	read_req *rr = calloc(1, sizeof *rr);
	size_t total = 0;
	for (uint32_t i = 0; i < rq.fields.n; i++)
		total += rq.fields.name[i].n;
	/* never NULL when there are names: even "" must point somewhere
	 * (names + 0 and memcpy on NULL are undefined) */
	char *names = rq.fields.n ? malloc(total ? total : 1) : NULL;
	if (!rr || (rq.fields.n && !names)) {
		free(rr);
		free(names);
		na_reply_error(q->c, q->msgid, NA_CODE_INTERNAL, "out of memory");
		return;
	}
	/* the request buffer is reused: keep our own copy of the names */
	size_t off = 0;
	for (uint32_t i = 0; i < rq.fields.n; i++) {
		memcpy(names + off, rq.fields.name[i].s, rq.fields.name[i].n);
		rq.fields.name[i].s = names + off;
		off += rq.fields.name[i].n;
	}
	rr->q = rq;
	rr->names = names;
	rr->is_count = count;
	start_read(q, rr);
}

/* ---- writes: put, put_batch, delete ---------------------------------- */

typedef struct write_req write_req;
struct write_req {
	uv_work_t work;
	na_wjob job;
	na_conn *c;
	uint32_t msgid;
	int kind;              /* 0 put, 1 put_batch, 2 delete */
	na_witem *items;
	char **errs;           /* per item: NULL or a message (put_batch) */
	uint8_t *raw;          /* the articles' bytes (or guids), copied */
	uint8_t *recs;         /* encoded records */
	size_t *rec_off;
	uint64_t raw_sum, stored_sum, dict_records;
	bool encode_failed;
	uint32_t replicas;     /* wait for this many followers (0: no wait) */
	uint32_t timeout_ms;
	uint64_t t0;
	bool ready;            /* compressed: may go to the writer */
	bool held;             /* waits for the first dictionary (seed_hold) */
	write_req *qnext;      /* arrival order (server's wq list) */
};

static void free_write_req(write_req *w)
{
	if (w->errs)
		for (uint32_t i = 0; i < w->job.n; i++)
			free(w->errs[i]);
	free(w->errs);
	free(w->items);
	free(w->raw);
	free(w->recs);
	free(w->rec_off);
	free(w);
}

static const char *status_name(na_wstatus s)
{
	switch (s) {
	case NA_WS_CREATED: return "created";
	case NA_WS_UPDATED: return "updated";
	case NA_WS_UNCHANGED: return "unchanged";
	default: return "?";
	}
}

static void pack_put_result(msgpack_packer *pk, const na_witem *it)
{
	msgpack_pack_map(pk, 3);
	na_mp_pack_cstr(pk, "guid");
	na_mp_pack_str(pk, it->guid, it->guid_len);
	na_mp_pack_cstr(pk, "status");
	na_mp_pack_cstr(pk, status_name(it->status));
	na_mp_pack_cstr(pk, "seq");
	msgpack_pack_uint64(pk, it->seq);
}

static void write_done(na_wjob *job)
{
	write_req *w = job->arg;
	na_conn *c = w->c;
	na_server *s = c->srv;
	int mid = w->kind == 0 ? NA_M_PUT : w->kind == 1 ? NA_M_PUT_BATCH : NA_M_DELETE;
	if (job->code != NA_CODE_OK)
		s->metrics.errors[mid]++;
	na_metrics_latency(&s->metrics, mid, w->t0);
	if (job->code == NA_CODE_OK && w->kind != 2) {
		s->dict_raw += w->raw_sum;
		s->dict_stored += w->stored_sum;
		s->dict_records += w->dict_records;
	}
	if (job->code == NA_CODE_OK && job->seq_after) {
		na_repl_committed(s, job->seq_after);
		/* the lowest key stored (a delete's key is not known here) */
		bool any = false, unknown = w->kind == 2;
		na_key lo, k;
		for (uint32_t i = 0; i < job->n && !unknown; i++) {
			const na_witem *it = &w->items[i];
			if (it->skip || (it->status != NA_WS_CREATED && it->status != NA_WS_UPDATED))
				continue;
			na_key_make(&k, it->micros, it->seq);
			if (!any || memcmp(k.b, lo.b, NA_KEY_BYTES) < 0)
				lo = k;
			any = true;
			unknown |= it->status == NA_WS_UPDATED; /* the old version left a gap */
		}
		if (any || unknown)
			na_compact_wrote(s, unknown ? NULL : &lo);
	}
	if (job->code == NA_CODE_OK && w->replicas && !c->closing && w->kind != 2) {
		/* hold the reply until enough followers have it */
		msgpack_sbuffer body;
		msgpack_sbuffer_init(&body);
		msgpack_packer bp;
		msgpack_packer_init(&bp, &body, msgpack_sbuffer_write);
		uint64_t top = 0;
		if (w->kind == 1) {
			msgpack_pack_array(&bp, job->n);
			for (uint32_t i = 0; i < job->n; i++) {
				if (w->errs[i]) {
					msgpack_pack_map(&bp, 1);
					na_mp_pack_cstr(&bp, "error");
					pack_error(&bp, w->items[i].code, w->errs[i]);
				} else {
					pack_put_result(&bp, &w->items[i]);
					if (w->items[i].seq > top)
						top = w->items[i].seq;
				}
			}
		} else {
			pack_put_result(&bp, &w->items[0]);
			top = w->items[0].seq;
			/* keep the three pairs, drop the map header (0x83) */
			memmove(body.data, body.data + 1, body.size - 1);
			body.size--;
		}
		na_repl_wait(c, w->msgid, top, w->replicas, w->timeout_ms, w->kind == 1, body.data,
			     body.size);
		msgpack_sbuffer_destroy(&body);
		uint64_t articles = job->articles;
		free_write_req(w);
		na_conn_request_done(c);
		na_train_maybe(s, articles);
		return;
	}
	if (!c->closing) {
		msgpack_packer pk;
		msgpack_packer_init(&pk, &c->out, msgpack_sbuffer_write);
		if (w->kind == 1) {
			reply_head(&pk, w->msgid);
			msgpack_pack_nil(&pk);
			msgpack_pack_array(&pk, job->n);
			for (uint32_t i = 0; i < job->n; i++) {
				if (w->errs[i] || job->code != NA_CODE_OK) {
					msgpack_pack_map(&pk, 1);
					na_mp_pack_cstr(&pk, "error");
					if (w->errs[i])
						pack_error(&pk, w->items[i].code, w->errs[i]);
					else
						pack_error(&pk, job->code, job->msg);
				} else {
					pack_put_result(&pk, &w->items[i]);
				}
			}
		} else if (job->code != NA_CODE_OK) {
			pack_error_reply(&pk, w->msgid, job->code, job->msg);
		} else if (w->kind == 0) {
			reply_head(&pk, w->msgid);
			msgpack_pack_nil(&pk);
			pack_put_result(&pk, &w->items[0]);
		} else {
			reply_head(&pk, w->msgid);
			msgpack_pack_nil(&pk);
			msgpack_pack_map(&pk, 2);
			na_mp_pack_cstr(&pk, "deleted");
			if (w->items[0].status == NA_WS_DELETED)
				msgpack_pack_true(&pk);
			else
				msgpack_pack_false(&pk);
			na_mp_pack_cstr(&pk, "seq");
			if (w->items[0].status == NA_WS_DELETED)
				msgpack_pack_uint64(&pk, w->items[0].seq);
			else
				msgpack_pack_nil(&pk);
		}
	}
	uint64_t articles = job->articles;
	bool ok = job->code == NA_CODE_OK && w->kind != 2;
	free_write_req(w);
	na_conn_request_done(c);
	if (ok)
		na_train_maybe(s, articles);
}

/* Worker pool: compress every valid item. */
static void encode_work(uv_work_t *uw)
{
	write_req *w = uw->data;
	na_codec *codec = w->c->srv->store.codec;
	uint32_t cur = na_codec_current_dict(codec);
	for (uint32_t i = 0; i < w->job.n; i++) {
		na_witem *it = &w->items[i];
		if (it->skip)
			continue;
		size_t len;
		uint8_t *dst = w->recs + w->rec_off[i];
		if (na_codec_encode(codec, it->raw, it->raw_len, dst, &len)) {
			w->encode_failed = true;
			return;
		}
		it->rec = dst;
		it->rec_len = len;
		if (cur && dst[0] == NA_REC_ZSTD_DICT) {
			w->raw_sum += it->raw_len;
			w->stored_sum += len;
			w->dict_records++;
		}
	}
}

/* Writes reach the writer in the order they arrived, whichever worker
 * finished compressing first: a client that pipelines two puts of one guid
 * must find the second one stored. */
static void submit_in_order(na_server *s)
{
	while (s->wq_head && s->wq_head->ready) {
		write_req *w = s->wq_head;
		s->wq_head = w->qnext;
		if (!s->wq_head)
			s->wq_tail = NULL;
		if (w->encode_failed) {
			w->job.code = NA_CODE_INTERNAL;
			w->job.msg = "could not compress an article";
			write_done(&w->job);
			continue;
		}
		na_writer_submit(&s->writer, &w->job);
	}
}

static void enqueue_write(na_server *s, write_req *w)
{
	w->qnext = NULL;
	if (s->wq_tail)
		s->wq_tail->qnext = w;
	else
		s->wq_head = w;
	s->wq_tail = w;
}

static void encode_done(uv_work_t *uw, int status)
{
	(void)status;
	write_req *w = uw->data;
	w->ready = true;
	submit_in_order(w->c->srv);
}

static bool seed_hold(na_server *s, write_req *w);

/* Validates put / put_batch items and queues them. */
static void do_put(req *q, bool batch)
{
	na_conn *c = q->c;
	na_server *s = c->srv;
	if (want_params(q, 1, 2))
		return;
	uint32_t n = 1;
	uint32_t replicas = 0, timeout_ms = 5000;
	if (q->nparams == 2) {
		/* options come after the article(s): read them from a copy of the cursor */
		na_mp o = *q->r;
		if (na_mp_skip(&o)) {
			BAD(q, "%s: params[0] is truncated", q->method);
			return;
		}
		uint32_t on;
		if (na_mp_peek(&o) != NA_MP_MAP || na_mp_map(&o, &on)) {
			BAD(q, "%s: params[1]: expected an options map", q->method);
			return;
		}
		for (uint32_t i = 0; i < on; i++) {
			const char *k;
			uint32_t kn;
			uint64_t v;
			if (na_mp_str(&o, &k, &kn) || na_mp_u64(&o, &v)) {
				BAD(q, "%s: params[1]: options are names with unsigned integer values",
				    q->method);
				return;
			}
			if (na_mp_streq(k, kn, "replicas") && v <= 1000)
				replicas = (uint32_t)v;
			else if (na_mp_streq(k, kn, "timeout_ms") && v <= 3600000)
				timeout_ms = (uint32_t)v;
			else {
				BAD(q, "%s: params[1]: unknown option or value out of range: \"%.*s\"",
				    q->method, (int)(kn > 40 ? 40 : kn), k);
				return;
			}
		}
	}
	if (batch) {
		na_mp_type t = na_mp_peek(q->r);
		if (t != NA_MP_ARRAY || na_mp_array(q->r, &n)) {
			BAD(q, "put_batch: params[0]: expected an array of articles, got %s", tname(t));
			return;
		}
		if (n > s->cfg.max_batch) {
			TOOBIG(q, "put_batch: %u articles exceed max_batch (%u)", n, s->cfg.max_batch);
			return;
		}
		if (n == 0) {
			msgpack_packer pk = ok_reply(c, q->msgid);
			msgpack_pack_array(&pk, 0);
			return;
		}
	}
	write_req *w = calloc(1, sizeof *w);
	if (!w)
		goto oom;
	w->c = c;
	w->msgid = q->msgid;
	w->kind = batch ? 1 : 0;
	w->replicas = replicas;
	w->timeout_ms = timeout_ms;
	w->t0 = q->t0;
	w->job.n = n;
	w->items = calloc(n, sizeof *w->items);
	w->errs = calloc(n, sizeof *w->errs);
	w->rec_off = calloc(n, sizeof *w->rec_off);
	/* the params are one contiguous run of bytes: copy it once */
	const uint8_t *base = q->r->p;
	size_t span = na_mp_left(q->r);
	w->raw = malloc(span ? span : 1);
	if (!w->items || !w->errs || !w->rec_off || !w->raw)
		goto oom;
	memcpy(w->raw, base, span);
	na_mp r;
	na_mp_init(&r, w->raw, span);
	size_t rec_total = 0;
	uint32_t valid = 0;
	for (uint32_t i = 0; i < n; i++) {
		na_witem *it = &w->items[i];
		na_article_info info;
		char where[48], err[512];
		if (batch)
			snprintf(where, sizeof where, "put_batch: params[0][%u]", i);
		else
			snprintf(where, sizeof where, "put: params[0]");
		const uint8_t *start = r.p, *obj;
		size_t objlen;
		/* measure first: an oversized item is refused before any parsing */
		if (na_mp_raw(&r, &obj, &objlen)) {
			free_write_req(w);
			BAD(q, "%s: truncated", where);
			return;
		}
		r.p = start;
		if (objlen > s->cfg.max_article_bytes) {
			snprintf(err, sizeof err, "%s: article of %zu bytes exceeds max_article_bytes (%zu)",
				 where, objlen, s->cfg.max_article_bytes);
			r.p = start + objlen;
			if (!batch) {
				free_write_req(w);
				TOOBIG(q, "%s", err);
				return;
			}
			it->skip = true;
			it->code = NA_CODE_TOO_LARGE;
			w->errs[i] = strdup(err);
			continue;
		}
		if (na_article_check(&r, &info, where, err, sizeof err)) {
			/* skip the rest of the bad item so the next one can be read */
			r.p = start;
			r.err = 0;
			if (na_mp_skip(&r)) {
				free_write_req(w);
				BAD(q, "%s: truncated", where);
				return;
			}
			if (!batch) {
				free_write_req(w);
				BAD(q, "%s", err);
				return;
			}
			it->skip = true;
			it->code = NA_CODE_BAD_REQUEST;
			w->errs[i] = strdup(err);
			continue;
		}
		it->raw = info.raw;
		it->raw_len = info.raw_len;
		it->guid = info.guid;
		it->guid_len = info.guid_len;
		it->micros = na_ts_micros(info.published);
		w->rec_off[i] = rec_total;
		rec_total += na_codec_bound(info.raw_len);
		valid++;
	}
	if (valid == 0) { /* nothing to write: answer now */
		w->job.arg = w;
		w->job.code = NA_CODE_OK;
		begin_async(c);
		write_done(&w->job);
		return;
	}
	w->recs = malloc(rec_total);
	if (!w->recs)
		goto oom;
	w->job.op = NA_WOP_PUT;
	w->job.items = w->items;
	w->job.done = write_done;
	w->job.arg = w;
	w->work.data = w;
	begin_async(c);
	enqueue_write(s, w);
	if (seed_hold(s, w)) {
		w->held = true;
		s->held++;
		return;
	}
	uv_queue_work(s->loop, &w->work, encode_work, encode_done);
	return;
oom:
	if (w)
		free_write_req(w);
	na_reply_error(c, q->msgid, NA_CODE_INTERNAL, "out of memory");
}

static void do_delete(req *q)
{
	if (want_params(q, 1, 1))
		return;
	const char *g;
	uint32_t gn;
	if (read_guid(q, "delete: params[0]", &g, &gn))
		return;
	write_req *w = calloc(1, sizeof *w);
	if (w) {
		w->items = calloc(1, sizeof *w->items);
		w->raw = malloc(gn);
	}
	if (!w || !w->items || !w->raw) {
		if (w)
			free_write_req(w);
		na_reply_error(q->c, q->msgid, NA_CODE_INTERNAL, "out of memory");
		return;
	}
	memcpy(w->raw, g, gn);
	w->c = q->c;
	w->msgid = q->msgid;
	w->kind = 2;
	w->t0 = q->t0;
	w->items[0].guid = (const char *)w->raw;
	w->items[0].guid_len = gn;
	w->job.op = NA_WOP_DELETE;
	w->job.n = 1;
	w->job.items = w->items;
	w->job.done = write_done;
	w->job.arg = w;
	begin_async(q->c);
	w->ready = true; /* nothing to compress, but it waits its turn */
	enqueue_write(q->c->srv, w);
	submit_in_order(q->c->srv);
}

/* ---- dictionary training ------------------------------------------- */

typedef struct train_req {
	uv_work_t work;
	na_wjob job;
	na_server *s;
	void *dict;
	size_t dict_len;
	unsigned samples;
	uint64_t articles;     /* in the archive (or arrived) when it began */
	bool seed;             /* the first dictionary, from s->seed: writes wait */
	uint8_t *buf;          /* seed samples (owned) */
	size_t *sizes;
	int rc;
} train_req;

/* Samples per training: zstd's dictionaries gain well under 1% from more
 * (2.49 against 2.50 for 4,000 against 18,000 news articles), while the
 * training time grows with them. */
#define TRAIN_MAX_SAMPLES 4000
#define TRAIN_MAX_BYTES (4u << 20)

/* Worker pool: train on the most recent articles. */
typedef struct train_walk {
	size_t *sizes;
	uint8_t *buf;
	size_t used;
	unsigned n;
} train_walk;

static int train_sample(void *arg, const na_key *key, const uint8_t *art, size_t len)
{
	(void)key;
	train_walk *tw = arg;
	if (tw->used + len <= TRAIN_MAX_BYTES) {
		memcpy(tw->buf + tw->used, art, len);
		tw->used += len;
		tw->sizes[tw->n++] = len;
	}
	return tw->n >= TRAIN_MAX_SAMPLES;
}

static void train_work(uv_work_t *uw)
{
	train_req *t = uw->data;
	na_store *st = &t->s->store;
	if (t->seed) {
		t->rc = na_codec_train(t->buf, t->sizes, t->samples, t->s->cfg.dict_size, true,
				       &t->dict, &t->dict_len);
		return;
	}
	train_walk tw = { .sizes = malloc(sizeof(size_t) * TRAIN_MAX_SAMPLES),
			  .buf = malloc(TRAIN_MAX_BYTES) };
	MDB_txn *txn = NULL;
	t->rc = -ENOMEM;
	if (!tw.sizes || !tw.buf)
		goto out;
	if ((t->rc = na_store_rbegin(st, &txn)))
		goto out;
	/* newest first, whether stored singly or in blocks */
	na_store_walk(st, txn, NULL, true, train_sample, &tw);
	na_store_rend(st, txn);
	t->samples = tw.n;
	t->rc = na_codec_train(tw.buf, tw.sizes, tw.n, t->s->cfg.dict_size, false, &t->dict,
			       &t->dict_len);
out:
	free(tw.sizes);
	free(tw.buf);
}

/* ---- recompression --------------------------------------------------- */

/*
 * Articles stored before the first dictionary existed (an import outruns
 * the training) are re-encoded with it afterwards, a chunk at a time: a
 * worker reads and re-compresses up to RECODE_SCAN records from a fresh read
 * transaction, the writer swaps the bytes in place, and the next chunk
 * starts where this one stopped.
 */
#define RECODE_SCAN 4000

typedef struct recode_req {
	uv_work_t work;
	na_wjob job;
	na_server *s;
	na_key from;
	bool started, done;
	uint8_t *blob;
	size_t blob_len;
	uint32_t n;
} recode_req;

static void recode_step(na_server *s, recode_req *r);

static void recode_work(uv_work_t *uw)
{
	recode_req *r = uw->data;
	na_store *st = &r->s->store;
	uint32_t dict = na_codec_current_dict(st->codec);
	MDB_txn *txn;
	MDB_cursor *cur;
	r->done = true;
	if (!dict || na_store_rbegin(st, &txn))
		return;
	if (mdb_cursor_open(txn, st->articles, &cur)) {
		na_store_rend(st, txn);
		return;
	}
	MDB_val k = { NA_KEY_BYTES, r->from.b }, v;
	int rc = r->started ? mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE) : mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	if (rc == 0 && r->started && memcmp(k.mv_data, r->from.b, NA_KEY_BYTES) == 0)
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	na_buf dec = { 0 };
	size_t cap = 0;
	r->blob = NULL;
	r->blob_len = 0;
	r->n = 0;
	uint32_t scanned = 0;
	while (rc == 0 && scanned < RECODE_SCAN) {
		na_rec rec;
		scanned++;
		memcpy(r->from.b, k.mv_data, NA_KEY_BYTES);
		if (k.mv_size == NA_KEY_BYTES && na_rec_parse(st->codec, v.mv_data, v.mv_size, &rec) == 0 &&
		    rec.fmt != NA_REC_ZSTD_DICT && rec.raw_len >= 64 &&
		    na_store_decode(st, v.mv_data, v.mv_size, &dec.data, &dec.cap, &dec.len) == 0) {
			size_t need = r->blob_len + NA_KEY_BYTES + 8 + na_codec_bound(dec.len);
			if (need > cap) {
				size_t nc = cap ? cap * 2 : (1u << 20);
				while (nc < need)
					nc *= 2;
				uint8_t *nb = realloc(r->blob, nc);
				if (!nb)
					break;
				r->blob = nb;
				cap = nc;
			}
			/* [key][len (8)][record] */
			uint8_t *p = r->blob + r->blob_len;
			size_t len;
			if (na_codec_encode(st->codec, dec.data, dec.len, p + NA_KEY_BYTES + 8, &len) == 0 &&
			    p[NA_KEY_BYTES + 8] == NA_REC_ZSTD_DICT && len < v.mv_size) {
				memcpy(p, k.mv_data, NA_KEY_BYTES);
				na_be64_put(p + NA_KEY_BYTES, len);
				r->blob_len += NA_KEY_BYTES + 8 + len;
				r->n++;
			}
		}
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	r->done = rc != 0;
	r->started = true;
	free(dec.data);
	mdb_cursor_close(cur);
	na_store_rend(st, txn);
}

static void recode_written(na_wjob *job)
{
	recode_req *r = job->arg;
	if (job->code == NA_CODE_OK)
		r->s->recoded += job->nrows;
	free(job->rows);
	job->rows = NULL;
	free(r->blob);
	r->blob = NULL;
	if (job->code != NA_CODE_OK || r->done || r->s->stopping) {
		r->s->recoding = false;
		free(r);
		return;
	}
	recode_step(r->s, r);
}

static void recode_done(uv_work_t *uw, int status)
{
	(void)status;
	recode_req *r = uw->data;
	na_server *s = r->s;
	if (s->stopping || (r->n == 0 && r->done)) {
		s->recoding = false;
		free(r->blob);
		free(r);
		return;
	}
	memset(&r->job, 0, sizeof r->job);
	r->job.op = NA_WOP_RECODE;
	r->job.rows = calloc(r->n ? r->n : 1, sizeof *r->job.rows);
	if (!r->job.rows) {
		s->recoding = false;
		free(r->blob);
		free(r);
		return;
	}
	size_t off = 0;
	for (uint32_t i = 0; i < r->n; i++) {
		na_srow *row = &r->job.rows[i];
		memcpy(row->key.b, r->blob + off, NA_KEY_BYTES);
		row->rec_len = na_be64_get(r->blob + off + NA_KEY_BYTES);
		row->rec = r->blob + off + NA_KEY_BYTES + 8;
		off += NA_KEY_BYTES + 8 + row->rec_len;
	}
	r->job.nrows = r->n;
	r->job.done = recode_written;
	r->job.arg = r;
	na_writer_submit(&s->writer, &r->job);
}

static void recode_step(na_server *s, recode_req *r)
{
	r->work.data = r;
	uv_queue_work(s->loop, &r->work, recode_work, recode_done);
}

static void recode_start(na_server *s)
{
	recode_req *r = calloc(1, sizeof *r);
	if (!r)
		return;
	r->s = s;
	s->recoding = true;
	recode_step(s, r);
}

static void train_free(train_req *t)
{
	free(t->dict);
	free(t->buf);
	free(t->sizes);
	free(t);
}

/* The first dictionary is in use, or could not be made: the writes that
 * waited for it go on to be compressed, in their order. */
static void seed_release(na_server *s)
{
	s->seeding = false;
	s->seed_off = true;
	for (write_req *w = s->wq_head; w && s->held; w = w->qnext) {
		if (!w->held)
			continue;
		w->held = false;
		s->held--;
		uv_queue_work(s->loop, &w->work, encode_work, encode_done);
	}
}

static void dict_stored(na_wjob *job)
{
	train_req *t = job->arg;
	na_server *s = t->s;
	if (job->code == NA_CODE_OK) {
		int rc = na_codec_add_dict(s->store.codec, job->dict_id, t->dict, t->dict_len);
		if (rc == 0) {
			na_codec_use_dict(s->store.codec, job->dict_id);
			log_info("compression dictionary %u in use (%zu bytes, trained on %u articles)",
				 job->dict_id, t->dict_len, t->samples);
		} else {
			log_error("dictionary %u was stored but cannot be loaded (%d)", job->dict_id, rc);
		}
		s->trained_at = t->seed ? t->articles : job->articles;
		s->dict_raw = s->dict_stored = s->dict_records = 0;
		s->trained_ratio = 0;
		if (job->dict_id == 1)
			recode_start(s); /* what was stored before any dictionary */
		/* the 'Z' entry took a sequence number: ship it now, not with
		 * the next write (which may never come) */
		na_repl_committed(s, job->seq_after);
	} else {
		log_warn("could not store the new dictionary: %s", job->msg);
	}
	s->training = false;
	if (t->seed)
		seed_release(s);
	train_free(t);
}

static void train_done(uv_work_t *uw, int status)
{
	(void)status;
	train_req *t = uw->data;
	na_server *s = t->s;
	if (t->rc || s->stopping) {
		if (t->rc)
			log_warn("dictionary training failed on %u samples (%d); will retry later",
				 t->samples, t->rc);
		s->training = false;
		/* retry once the archive has grown by half */
		s->trained_at = t->articles ? t->articles : 1;
		if (t->seed)
			seed_release(s);
		train_free(t);
		return;
	}
	t->job.op = NA_WOP_DICT;
	t->job.dict_id = na_codec_max_dict(s->store.codec) + 1;
	t->job.dict = t->dict;
	t->job.dict_len = t->dict_len;
	t->job.done = dict_stored;
	t->job.arg = t;
	na_writer_submit(&s->writer, &t->job);
}

static void seed_drop(na_server *s)
{
	s->seed_off = true;
	free(s->seed);
	free(s->seed_sizes);
	s->seed = NULL;
	s->seed_sizes = NULL;
}

/*
 * The first dictionary, trained before a bulk load outruns it. Left to
 * na_train_maybe, it would be trained from the archive once train_min
 * articles are stored; at full speed the next hundred thousand articles
 * arrive before it is ready, are stored without it, and are re-encoded
 * afterwards: a rewrite of nearly the whole archive in place, which leaves
 * its pages a fifth emptier. Instead, the first train_min articles that
 * arrive (at most TRAIN_MAX_SAMPLES and TRAIN_MAX_BYTES of them) are kept
 * as samples; then a quick training starts, and the writes arriving while
 * it runs wait for it (about a tenth of a second, once in the archive's
 * life) rather than be stored without it. Returns true when w must wait:
 * seed_release queues it when the dictionary is in use (or failed).
 */
static bool seed_hold(na_server *s, write_req *w)
{
	if (s->seed_off)
		return false;
	if (s->seeding)
		return true;
	if (na_codec_current_dict(s->store.codec) || s->follower ||
	    s->cfg.train_min > TRAIN_MAX_SAMPLES) {
		seed_drop(s);
		return false;
	}
	if (s->training) /* the archive's own articles are training it */
		return false;
	if (!s->seed) {
		s->seed = malloc(TRAIN_MAX_BYTES);
		s->seed_sizes = malloc(sizeof(size_t) * TRAIN_MAX_SAMPLES);
		if (!s->seed || !s->seed_sizes) {
			seed_drop(s);
			return false;
		}
	}
	for (uint32_t i = 0; i < w->job.n; i++) {
		const na_witem *it = &w->items[i];
		if (it->skip)
			continue;
		s->seed_seen++;
		if (s->seed_n < TRAIN_MAX_SAMPLES && s->seed_used + it->raw_len <= TRAIN_MAX_BYTES) {
			memcpy(s->seed + s->seed_used, it->raw, it->raw_len);
			s->seed_used += it->raw_len;
			s->seed_sizes[s->seed_n++] = it->raw_len;
		}
	}
	if (s->seed_seen < s->cfg.train_min || s->stopping)
		return false;
	train_req *t = calloc(1, sizeof *t);
	if (!t) {
		seed_drop(s);
		return false;
	}
	t->s = s;
	t->seed = true;
	t->buf = s->seed;
	t->sizes = s->seed_sizes;
	t->samples = s->seed_n;
	t->articles = s->seed_seen;
	s->seed = NULL;
	s->seed_sizes = NULL;
	t->work.data = t;
	s->training = s->seeding = true;
	uv_queue_work(s->loop, &t->work, train_work, train_done);
	return true;
}

void na_train_maybe(na_server *s, uint64_t articles)
{
	if (s->training || s->stopping || articles < s->cfg.train_min)
		return;
	bool due = false;
	uint32_t cur = na_codec_current_dict(s->store.codec);
	if (cur == 0) {
		/* first dictionary; after a failed try, wait for 50% more data */
		due = s->trained_at == 0 || articles >= s->trained_at + s->trained_at / 2 + 1;
	} else if (s->dict_records >= 5000) {
		double ratio = s->dict_stored ? (double)s->dict_raw / (double)s->dict_stored : 0;
		if (s->trained_ratio == 0) {
			s->trained_ratio = ratio; /* baseline: the first records */
		} else if (ratio < 0.8 * s->trained_ratio && articles >= s->trained_at * 2 &&
			   na_codec_max_dict(s->store.codec) < NA_MAX_DICTS) {
			log_info("compression ratio drifted from %.2f to %.2f: retraining",
				 s->trained_ratio, ratio);
			due = true;
		}
		s->dict_raw = s->dict_stored = s->dict_records = 0;
	}
	if (!due)
		return;
	train_req *t = calloc(1, sizeof *t);
	if (!t)
		return;
	t->s = s;
	t->articles = articles;
	t->work.data = t;
	s->training = true;
	uv_queue_work(s->loop, &t->work, train_work, train_done);
}

/* ---- backup and verify (worker pool) ------------------------------- */

typedef struct admin_req {
	uv_work_t work;
	na_conn *c;
	uint32_t msgid;
	bool verify;
	char dir[512];
	msgpack_sbuffer out;
} admin_req;

/* fsyncs a directory, so the entries made in it survive a power loss; 0 or
 * an errno. */
static int fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	int rc = fsync(fd) == 0 ? 0 : errno;
	close(fd);
	return rc;
}

/* Writes the compacted copy of the archive to DIR/data.mdb and makes it
 * durable before the reply says it exists: the file, its entry in DIR and,
 * when DIR was just created, DIR's entry in its parent. A failed backup
 * leaves nothing half-written behind. 0, or an LMDB error / errno with
 * *step naming what failed. */
static int backup_write(na_store *st, const char *dir, bool created, uint64_t *bytes,
			const char **step)
{
	char path[600], parent[600];
	snprintf(path, sizeof path, "%s/data.mdb", dir);
	snprintf(parent, sizeof parent, "%s", dir);
	size_t n = strlen(parent);
	while (n > 1 && parent[n - 1] == '/')
		parent[--n] = 0;
	char *slash = strrchr(parent, '/');
	if (!slash)
		snprintf(parent, sizeof parent, ".");
	else
		slash[slash == parent] = 0; /* "/x" -> "/" */
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
	if (fd < 0) {
		int e = errno;
		*step = "create data.mdb";
		if (created)
			rmdir(dir);
		return e;
	}
	pthread_rwlock_rdlock(&st->resize_lock);
	int rc = mdb_env_copyfd2(st->env, fd, MDB_CP_COMPACT);
	pthread_rwlock_unlock(&st->resize_lock);
	struct stat sb;
	if (rc == 0 && (fsync(fd) != 0 || fstat(fd, &sb) != 0)) {
		rc = errno;
		*step = "sync";
	}
	if (close(fd) != 0 && rc == 0) {
		rc = errno;
		*step = "sync";
	}
	if (rc == 0 && ((rc = fsync_dir(dir)) || (created && (rc = fsync_dir(parent)))))
		*step = "sync of the directory";
	if (rc) {
		unlink(path);
		if (created)
			rmdir(dir);
		return rc;
	}
	*bytes = (uint64_t)sb.st_size;
	return 0;
}

static void admin_work(uv_work_t *w)
{
	admin_req *a = w->data;
	na_store *st = &a->c->srv->store;
	msgpack_packer pk;
	msgpack_packer_init(&pk, &a->out, msgpack_sbuffer_write);
	if (a->verify) {
		char *text = NULL;
		size_t tlen = 0;
		FILE *f = open_memstream(&text, &tlen);
		uint64_t articles = 0;
		long problems = f ? na_verify(st, f, &articles) : -ENOMEM;
		if (f)
			fclose(f);
		if (problems < 0) {
			pack_error_reply(&pk, a->msgid, NA_CODE_INTERNAL, "verify: cannot read the archive");
			free(text);
			return;
		}
		reply_head(&pk, a->msgid);
		msgpack_pack_nil(&pk);
		msgpack_pack_map(&pk, 3);
		kv_u64(&pk, "articles", articles);
		kv_u64(&pk, "problems", (uint64_t)problems);
		na_mp_pack_cstr(&pk, "report");
		uint32_t lines = 0;
		for (size_t i = 0; i < tlen; i++)
			lines += text[i] == '\n';
		if (lines > 1000)
			lines = 1000;
		msgpack_pack_array(&pk, lines);
		char *p = text;
		for (uint32_t i = 0; i < lines; i++) {
			char *nl = strchr(p, '\n');
			na_mp_pack_str(&pk, p, (size_t)(nl - p));
			p = nl + 1;
		}
		free(text);
		return;
	}
	/* backup: a compacted, consistent copy made from one read transaction */
	bool created = false;
	struct stat sb;
	if (stat(a->dir, &sb) == 0) {
		bool empty = S_ISDIR(sb.st_mode);
		DIR *dir = empty ? opendir(a->dir) : NULL;
		struct dirent *de;
		while (dir && (de = readdir(dir)))
			if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
				empty = false;
		if (dir)
			closedir(dir);
		if (!empty) {
			pack_error_reply(&pk, a->msgid, NA_CODE_BAD_REQUEST,
					 "backup: the target exists and is not an empty directory");
			return;
		}
	} else if (mkdir(a->dir, 0750) != 0) {
		char msg[700];
		snprintf(msg, sizeof msg, "backup: cannot create %s: %s", a->dir, strerror(errno));
		pack_error_reply(&pk, a->msgid, NA_CODE_BAD_REQUEST, msg);
		return;
	} else {
		created = true;
	}
	uint64_t bytes = 0;
	const char *step = "copy";
	int rc = backup_write(st, a->dir, created, &bytes, &step);
	if (rc) {
		char msg[700];
		snprintf(msg, sizeof msg, "backup: %s failed: %s", step, mdb_strerror(rc));
		pack_error_reply(&pk, a->msgid, NA_CODE_INTERNAL, msg);
		return;
	}
	reply_head(&pk, a->msgid);
	msgpack_pack_nil(&pk);
	msgpack_pack_map(&pk, 2);
	na_mp_pack_cstr(&pk, "path");
	na_mp_pack_cstr(&pk, a->dir);
	kv_u64(&pk, "bytes", bytes);
}

static void admin_done(uv_work_t *w, int status)
{
	(void)status;
	admin_req *a = w->data;
	na_conn *c = a->c;
	if (!c->closing)
		msgpack_sbuffer_write(&c->out, a->out.data, a->out.size);
	msgpack_sbuffer_destroy(&a->out);
	free(a);
	na_conn_request_done(c);
}

static void do_admin(req *q, bool verify)
{
	admin_req *a = calloc(1, sizeof *a);
	if (!a) {
		na_reply_error(q->c, q->msgid, NA_CODE_INTERNAL, "out of memory");
		return;
	}
	if (!verify) {
		const char *d;
		uint32_t dn;
		if (q->nparams != 1 || na_mp_peek(q->r) != NA_MP_STR || na_mp_str(q->r, &d, &dn) ||
		    dn == 0 || dn >= sizeof a->dir || memchr(d, 0, dn)) {
			free(a);
			BAD(q, "backup: expected one parameter, the target directory on the server");
			return;
		}
		memcpy(a->dir, d, dn);
	} else if (want_params(q, 0, 0)) {
		free(a);
		return;
	}
	a->c = q->c;
	a->msgid = q->msgid;
	a->verify = verify;
	a->work.data = a;
	msgpack_sbuffer_init(&a->out);
	begin_async(q->c);
	uv_queue_work(q->c->srv->loop, &a->work, admin_work, admin_done);
}

/* ---- auth ----------------------------------------------------------- */

static void do_auth(req *q)
{
	na_conn *c = q->c;
	na_server *s = c->srv;
	const char *tok;
	uint32_t n;
	if (q->nparams != 1 || na_mp_peek(q->r) != NA_MP_STR || na_mp_str(q->r, &tok, &n)) {
		BAD(q, "auth: expected one parameter, the token (a string)");
		return;
	}
	if (s->cfg.tokens.n == 0) {
		msgpack_packer pk = ok_reply(c, q->msgid);
		msgpack_pack_map(&pk, 1);
		na_mp_pack_cstr(&pk, "role");
		na_mp_pack_cstr(&pk, na_role_name(c->role));
		return;
	}
	uint64_t now = uv_now(s->loop);
	if (na_guard_blocked(&s->guard, c->peer, now)) {
		na_reply_error(c, q->msgid, NA_CODE_UNAUTHORIZED,
			       "auth: too many failed attempts from this address; try again later");
		return;
	}
	int role = n <= NA_TOKEN_MAX ? na_tokens_check(&s->cfg.tokens, tok, n) : -1;
	if (role < 0) {
		log_warn("%s: failed authentication", c->peer);
		na_guard_fail(&s->guard, c->peer, now);
		c->role = NA_ROLE_NONE;
		na_reply_error(c, q->msgid, NA_CODE_UNAUTHORIZED, "auth: unknown token");
		return;
	}
	c->role = role;
	log_debug("%s: authenticated as %s", c->peer, na_role_name(role));
	msgpack_packer pk = ok_reply(c, q->msgid);
	msgpack_pack_map(&pk, 1);
	na_mp_pack_cstr(&pk, "role");
	na_mp_pack_cstr(&pk, na_role_name(role));
}

/* ---- metrics -------------------------------------------------------- */

static void do_metrics(req *q)
{
	if (want_params(q, 0, 0))
		return;
	char *text = NULL;
	size_t len = 0;
	if (na_metrics_render(q->c->srv, &text, &len) != 0) {
		free(text);
		na_reply_error(q->c, q->msgid, NA_CODE_INTERNAL, "metrics: out of memory");
		return;
	}
	msgpack_packer pk = ok_reply(q->c, q->msgid);
	na_mp_pack_str(&pk, text, len);
	free(text);
}

/* ---- promote ------------------------------------------------------- */

typedef struct promote_req {
	na_wjob job;
	na_conn *c;
	uint32_t msgid;
} promote_req;

static void promoted(na_wjob *job)
{
	promote_req *p = job->arg;
	na_conn *c = p->c;
	na_server *s = c->srv;
	if (job->code == NA_CODE_OK) {
		s->promoting = false;
	} else if (job->code == NA_CODE_UNAVAILABLE) {
		/* a snapshot began just before: nothing changed, so go on
		 * following and let it finish */
		s->promoting = false;
		log_warn("promotion refused: %s; following %s again", job->msg, s->cfg.follow);
		if (na_follow_start(s, s->cfg.follow) != 0)
			log_error("cannot follow %s again; writes stay refused until a restart",
				  s->cfg.follow);
	} else {
		log_error("promotion failed (%s); writes stay refused until a restart", job->msg);
	}
	if (job->code == NA_CODE_OK) {
		char hx[33];
		na_hex16(s->store.history, hx);
		log_info("promoted to primary: history %s from seq %llu", hx,
			 (unsigned long long)job->seq_after);
		/* our own followers re-attach and learn the new history */
		for (na_conn *o = s->conns, *next; o; o = next) {
			next = o->next;
			if (o->sender && o != c)
				na_conn_close(o);
		}
		if (!c->closing) {
			msgpack_packer pk = ok_reply(c, p->msgid);
			msgpack_pack_map(&pk, 2);
			na_mp_pack_cstr(&pk, "history");
			na_mp_pack_cstr(&pk, hx);
			na_mp_pack_cstr(&pk, "seq");
			msgpack_pack_uint64(&pk, job->seq_after);
		}
	} else if (!c->closing) {
		na_reply_error(c, p->msgid, job->code, "promote: %s", job->msg);
	}
	free(p);
	na_conn_request_done(c);
}

static void do_promote(req *q)
{
	na_server *s = q->c->srv;
	if (want_params(q, 0, 0))
		return;
	if (!s->follower) {
		BAD(q, s->promoting ? "promote: already in progress" : "promote: this server is already a primary");
		return;
	}
	if (s->store.snapshot_incomplete) {
		na_reply_error(q->c, q->msgid, NA_CODE_UNAVAILABLE,
			       "promote: this server holds a partial copy (snapshot in progress)");
		return;
	}
	promote_req *p = calloc(1, sizeof *p);
	if (!p || getrandom(p->job.history, 16, 0) != 16) {
		free(p);
		na_reply_error(q->c, q->msgid, NA_CODE_INTERNAL, "promote: out of memory");
		return;
	}
	s->promoting = true; /* writes stay refused until the new history commits */
	na_follow_stop(s);
	p->c = q->c;
	p->msgid = q->msgid;
	p->job.op = NA_WOP_PROMOTE;
	p->job.done = promoted;
	p->job.arg = p;
	begin_async(q->c);
	na_writer_submit(&s->writer, &p->job);
}

/* ---- search (worker pool), reindex ------------------------------------ */

typedef struct search_req {
	uv_work_t work;
	na_conn *c;
	uint32_t msgid;
	na_search_q q;
	char *copy;            /* the query text and field names, copied */
	msgpack_sbuffer out;
	uint64_t t0;
	bool failed;
} search_req;

static void search_work(uv_work_t *w)
{
	search_req *sr = w->data;
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sr->out, msgpack_sbuffer_write);
	na_analyzer *an = NULL;
	char err[300] = "";
	int rc = na_analyzer_new(&an);
	if (rc == 0) {
		reply_head(&pk, sr->msgid);
		msgpack_pack_nil(&pk);
		rc = na_search_run(&sr->c->srv->store, an, &sr->q, &pk, err, sizeof err);
	}
	na_analyzer_free(an);
	if (rc) {
		sr->failed = true;
		sr->out.size = 0;
		if (rc == -EINVAL || rc == -ETIMEDOUT) {
			/* -ETIMEDOUT: a rebuild began after the request's min_seq
			 * was found covered (na_search_run) */
			char msg[340];
			snprintf(msg, sizeof msg, "search: %s", err);
			pack_error_reply(&pk, sr->msgid,
					 rc == -EINVAL ? NA_CODE_BAD_REQUEST : NA_CODE_TIMEOUT, msg);
			return;
		}
		log_error("search failed: %s", rc > 0 ? mdb_strerror(rc) : strerror(-rc));
		pack_error_reply(&pk, sr->msgid, NA_CODE_INTERNAL,
				 rc == -EIO ? "search: the index or an article is unreadable; see the server log"
					    : "search: read failed; see the server log");
	}
}

static void search_done(uv_work_t *w, int status)
{
	(void)status;
	search_req *sr = w->data;
	na_conn *c = sr->c;
	if (sr->failed)
		c->srv->metrics.errors[NA_M_SEARCH]++;
	na_metrics_latency(&c->srv->metrics, NA_M_SEARCH, sr->t0);
	if (!c->closing)
		na_conn_send(c, &sr->out);
	msgpack_sbuffer_destroy(&sr->out);
	free(sr->copy);
	free(sr);
	na_conn_request_done(c);
}

static void do_search(req *q)
{
	if (want_params(q, 1, 1))
		return;
	na_search_q sq;
	memset(&sq, 0, sizeof sq);
	sq.limit = NA_SEARCH_LIMIT_DEFAULT;
	uint64_t min_seq = 0;
	uint32_t timeout_ms = 5000;
	bool have_q = false;
	uint32_t n;
	na_mp_type t = na_mp_peek(q->r);
	if (t != NA_MP_MAP || na_mp_map(q->r, &n)) {
		BAD(q, "search: params[0]: expected a map, got %s", tname(t));
		return;
	}
	for (uint32_t i = 0; i < n; i++) {
		const char *k;
		uint32_t kn;
		t = na_mp_peek(q->r);
		if (t != NA_MP_STR || na_mp_str(q->r, &k, &kn)) {
			BAD(q, "search: params[0]: keys must be strings");
			return;
		}
		char where[64];
		snprintf(where, sizeof where, "search: params[0].%.*s", (int)(kn > 16 ? 16 : kn), k);
		if (na_mp_peek(q->r) == NA_MP_NIL) {
			na_mp_nil(q->r);
			continue;
		}
		if (na_mp_streq(k, kn, "q")) {
			const char *s;
			uint32_t sn;
			if (na_mp_peek(q->r) != NA_MP_STR || na_mp_str(q->r, &s, &sn)) {
				BAD(q, "%s: expected a string", where);
				return;
			}
			if (sn > NA_QUERY_MAX_BYTES) {
				TOOBIG(q, "%s: at most %d bytes, got %u", where, NA_QUERY_MAX_BYTES, sn);
				return;
			}
			sq.q = s;
			sq.qlen = sn;
			have_q = true;
		} else if (na_mp_streq(k, kn, "from")) {
			if (read_time(q, where, &sq.from))
				return;
			sq.has_from = true;
		} else if (na_mp_streq(k, kn, "to")) {
			if (read_time(q, where, &sq.to))
				return;
			sq.has_to = true;
		} else if (na_mp_streq(k, kn, "limit")) {
			uint64_t l;
			if (na_mp_u64(q->r, &l) || l == 0) {
				BAD(q, "%s: expected a positive integer", where);
				return;
			}
			if (l > NA_SEARCH_LIMIT_MAX) {
				TOOBIG(q, "%s: at most %d, got %llu", where, NA_SEARCH_LIMIT_MAX,
				       (unsigned long long)l);
				return;
			}
			sq.limit = (uint32_t)l;
		} else if (na_mp_streq(k, kn, "order")) {
			const char *s;
			uint32_t sn;
			if (na_mp_peek(q->r) != NA_MP_STR || na_mp_str(q->r, &s, &sn)) {
				BAD(q, "%s: expected \"newest\", \"oldest\" or \"relevance\"", where);
				return;
			}
			if (na_mp_streq(s, sn, "newest"))
				sq.order = NA_ORDER_NEWEST;
			else if (na_mp_streq(s, sn, "oldest"))
				sq.order = NA_ORDER_OLDEST;
			else if (na_mp_streq(s, sn, "relevance"))
				sq.order = NA_ORDER_RELEVANCE;
			else {
				BAD(q, "%s: expected \"newest\", \"oldest\" or \"relevance\", got \"%.*s\"",
				    where, (int)(sn > 20 ? 20 : sn), s);
				return;
			}
		} else if (na_mp_streq(k, kn, "after")) {
			const uint8_t *b;
			uint32_t bn;
			if (na_mp_peek(q->r) != NA_MP_BIN || na_mp_bin(q->r, &b, &bn) ||
			    (bn != 16 && bn != 24)) {
				BAD(q, "%s: not a cursor returned by search", where);
				return;
			}
			memcpy(sq.after, b, bn);
			sq.after_len = bn;
			sq.has_after = true;
		} else if (na_mp_streq(k, kn, "fields")) {
			if (read_fields(q, where, &sq.fields))
				return;
			sq.project = true;
		} else if (na_mp_streq(k, kn, "min_seq") || na_mp_streq(k, kn, "timeout_ms")) {
			uint64_t v;
			if (na_mp_u64(q->r, &v)) {
				BAD(q, "%s: expected an unsigned integer", where);
				return;
			}
			if (k[0] == 'm')
				min_seq = v;
			else
				timeout_ms = v > 60000 ? 60000 : (uint32_t)v;
		} else {
			BAD(q, "search: params[0]: unknown key \"%.*s\"", (int)(kn > 40 ? 40 : kn), k);
			return;
		}
	}
	if (!have_q) {
		BAD(q, "search: params[0].q: the query is required");
		return;
	}
	/* a follower receiving a snapshot has a partial copy: a search may
	 * wait for its index (min_seq), else it is refused like other reads */
	if (min_seq && na_repl_park_index(q->c, q->msg, q->len, q->msgid, min_seq, timeout_ms))
		return;
	if (refuse_partial(q))
		return;
	search_req *sr = calloc(1, sizeof *sr);
	size_t total = sq.qlen;
	for (uint32_t i = 0; i < sq.fields.n; i++)
		total += sq.fields.name[i].n;
	char *copy = malloc(total ? total : 1);
	if (!sr || !copy) {
		free(sr);
		free(copy);
		na_reply_error(q->c, q->msgid, NA_CODE_INTERNAL, "out of memory");
		return;
	}
	/* the request buffer is reused: keep our own copy of the strings */
	size_t off = 0;
	memcpy(copy, sq.q, sq.qlen);
	sq.q = copy;
	off = sq.qlen;
	for (uint32_t i = 0; i < sq.fields.n; i++) {
		memcpy(copy + off, sq.fields.name[i].s, sq.fields.name[i].n);
		sq.fields.name[i].s = copy + off;
		off += sq.fields.name[i].n;
	}
	sr->q = sq;
	sr->q.min_seq = min_seq; /* checked again in the index's own snapshot */
	sr->copy = copy;
	sr->c = q->c;
	sr->msgid = q->msgid;
	sr->t0 = q->t0;
	sr->work.data = sr;
	msgpack_sbuffer_init(&sr->out);
	begin_async(q->c);
	uv_queue_work(q->c->srv->loop, &sr->work, search_work, search_done);
}

static void do_reindex(req *q)
{
	if (want_params(q, 0, 0))
		return;
	na_server *s = q->c->srv;
	if (!s->indexer) {
		na_reply_error(q->c, q->msgid, NA_CODE_UNAVAILABLE, "reindex: the indexer is not running");
		return;
	}
	na_indexer_reindex(s->indexer);
	log_info("%s: reindex requested", q->c->peer);
	msgpack_packer pk = ok_reply(q->c, q->msgid);
	msgpack_pack_map(&pk, 2);
	na_mp_pack_cstr(&pk, "reindexing");
	msgpack_pack_true(&pk);
	kv_u64(&pk, "seq", s->seq);
}

/* ---- the dispatcher ------------------------------------------------- */

void na_dispatch(na_conn *c, const uint8_t *msg, size_t len)
{
	c->method = -1; /* errors before the method is known count for no method */
	na_mp r;
	na_mp_init(&r, msg, len);
	uint32_t n;
	uint64_t type, id;
	if (na_mp_peek(&r) != NA_MP_ARRAY || na_mp_array(&r, &n) || n < 2 || na_mp_u64(&r, &type)) {
		log_warn("%s: message is not a MessagePack-RPC request; closing", c->peer);
		na_conn_close(c);
		return;
	}
	if (type == NA_RPC_NOTIFY) {
		/* the only notification we take: a follower's acknowledgement */
		const char *m;
		uint32_t mn, np;
		if (n == 3 && na_mp_str(&r, &m, &mn) == 0 && na_mp_streq(m, mn, "ack") &&
		    na_mp_array(&r, &np) == 0)
			na_repl_ack(c, &r, np);
		return;
	}
	if (na_mp_u64(&r, &id) || id > UINT32_MAX) {
		log_warn("%s: request without a valid msgid; closing", c->peer);
		na_conn_close(c);
		return;
	}
	req q = { .c = c, .msg = msg, .len = len, .msgid = (uint32_t)id, .r = &r };
	if (type != NA_RPC_REQUEST || n != 4) {
		BAD(&q, "a request is [0, msgid, method, params]");
		return;
	}
	const char *m;
	uint32_t mn;
	na_mp_type t = na_mp_peek(&r);
	if (t != NA_MP_STR || na_mp_str(&r, &m, &mn)) {
		BAD(&q, "method must be a string, got %s", tname(t));
		return;
	}
	t = na_mp_peek(&r);
	if (t != NA_MP_ARRAY || na_mp_array(&r, &q.nparams)) {
		BAD(&q, "params must be an array, got %s", tname(t));
		return;
	}
	static const struct { const char *name; int id; } methods[] = {
		{ "ping", 0 }, { "put", 1 }, { "put_batch", 2 }, { "get", 3 }, { "range", 4 },
		{ "delete", 5 }, { "count", 6 }, { "stats", 7 }, { "replicate", 8 },
		{ "subscribe", 9 }, { "promote", 10 }, { "backup", 11 }, { "verify", 12 },
		{ "metrics", 13 }, { "auth", 14 }, { "search", 15 }, { "reindex", 16 },
	};
	/* the role each method needs (see auth.c) */
	static const int needs[] = { NA_ROLE_NONE, NA_ROLE_WRITE, NA_ROLE_WRITE, NA_ROLE_READ,
				     NA_ROLE_READ, NA_ROLE_WRITE, NA_ROLE_READ, NA_ROLE_READ,
				     NA_ROLE_REPLICATE, NA_ROLE_REPLICATE, NA_ROLE_ADMIN,
				     NA_ROLE_ADMIN, NA_ROLE_ADMIN, NA_ROLE_READ, NA_ROLE_NONE,
				     NA_ROLE_READ, NA_ROLE_ADMIN };
	int mid = -1;
	for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
		if (na_mp_streq(m, mn, methods[i].name)) {
			q.method = methods[i].name;
			mid = methods[i].id;
		}
	uint64_t t0 = uv_hrtime();
	c->method = mid < 0 ? NA_M_OTHER : mid;
	c->srv->metrics.requests[c->method]++;
	if (mid < 0) {
		na_reply_error(c, q.msgid, NA_CODE_UNKNOWN_METHOD, "unknown method \"%.*s\"",
			       (int)(mn > 64 ? 64 : mn), m);
		c->method = -1;
		return;
	}
	unsigned pending = c->pending;
	q.t0 = t0;
	if (!na_role_allows(c->role, needs[mid])) {
		na_reply_error(c, q.msgid, NA_CODE_UNAUTHORIZED, "%s needs the %s role%s", q.method,
			       na_role_name(needs[mid]),
			       c->role == NA_ROLE_NONE ? "; authenticate first with auth" : "");
		c->method = -1;
		return;
	}
	if (c->srv->stopping && mid != 0) {
		na_reply_error(c, q.msgid, NA_CODE_UNAVAILABLE, "the server is shutting down");
		c->method = -1;
		return;
	}
	if ((c->srv->follower || c->srv->promoting) && (mid == 1 || mid == 2 || mid == 5)) {
		if (c->srv->promoting) {
			na_reply_error(c, q.msgid, NA_CODE_READONLY,
				       "this server is being promoted; writes are refused until it is done");
			c->method = -1;
			return;
		}
		na_reply_error(c, q.msgid, NA_CODE_READONLY,
			       "this server is a follower of %s: send writes there",
			       na_follow_addr(c->srv));
		c->method = -1;
		return;
	}
	switch (mid) {
	case 0: do_ping(&q); break;
	case 1: do_put(&q, false); break;
	case 2: do_put(&q, true); break;
	case 3: do_get(&q); break;
	case 4: do_range(&q, false); break;
	case 5: do_delete(&q); break;
	case 6: do_range(&q, true); break;
	case 7: do_stats(&q); break;
	case 8: na_repl_start(c, q.msgid, &r, q.nparams, false); break;
	case 9: na_repl_start(c, q.msgid, &r, q.nparams, true); break;
	case 10: do_promote(&q); break;
	case 11: do_admin(&q, false); break;
	case 12: do_admin(&q, true); break;
	case 13: do_metrics(&q); break;
	case 14: do_auth(&q); break;
	case 15: do_search(&q); break;
	case 16: do_reindex(&q); break;
	}
	if (c->pending == pending) /* answered right away */
		na_metrics_latency(&c->srv->metrics, mid, t0);
	c->method = -1;
}
