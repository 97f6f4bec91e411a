/*
 * follow.c - the follower side of replication (the design is described at
 * the top of replog.c).
 *
 * A follower holds one connection to its primary. It states its position
 * with replicate [{history, seq}], then turns every message it receives into
 * a writer job, in order: a snapshot (begin, dictionaries, rows, end) or log
 * batches. When a job has committed, the follower acknowledges its applied
 * position, which the primary uses for flow control and lag. Everything the
 * primary sends is checked like any other untrusted input; a malformed
 * message, a gap or a failed job drops the link, and the follower reconnects
 * with capped, jittered exponential backoff, resuming from its stored
 * position; the wait starts over from the shortest only after a link made
 * progress or stayed up a while, so a follower that fails right after every
 * handshake does not hammer its primary. When applies fall behind, the
 * follower stops reading (bounding its memory); the watchdog that drops a
 * silent link does not count such pauses. Reads are served throughout.
 *
 * TLS (follow = tls://HOST:PORT): at every connection attempt the follower
 * builds a client context from follow_tls_ca (else tls_ca, else the system's
 * CAs) and its optional client certificate, and puts the TLS engine
 * (proto/tls.h) between the socket and the decoder. The primary's chain and
 * name (follow_tls_name, else the host) are verified; a refused certificate
 * is logged with the reason and retried with the same backoff as any
 * failed connection. Requests queued before the handshake finishes wait in
 * `early` and go out when it does.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "follow.h"
#include "log.h"
#include "rpc.h"
#include "server.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
/* A link that moved our position forward, or stayed up this long, was a
 * good one: the next reconnect starts again from BACKOFF_MIN_MS. A
 * handshake alone proves nothing: a follower that fails right after every
 * one (out of space, a gap, a dictionary it cannot store) reconnected ten
 * times a second, each time costing the primary a handshake, all its
 * dictionaries and a batch. */
#define LINK_GOOD_MS 30000
#define INFLIGHT_MAX_BYTES (32u << 20)
#define MAX_MESSAGE (NA_MAX_ARTICLE_HARD + (4u << 20)) /* one record and its framing */

enum { F_IDLE, F_CONNECTING, F_HANDSHAKE, F_SNAPSHOT, F_STREAMING };
static const char *const state_names[] = { "connecting", "connecting", "handshake", "snapshot",
					   "streaming", "refused" };

struct na_follower {
	na_server *srv;
	char addr[256];
	char host[200];
	char port[16];
	bool is_unix;
	bool use_tls;              /* follow = tls://... */
	na_tls *tls;               /* the link's TLS session */
	msgpack_sbuffer early;     /* plaintext waiting for the TLS handshake */
	union {
		uv_handle_t h;
		uv_stream_t s;
		uv_tcp_t tcp;
		uv_pipe_t pipe;
	} h;
	bool open;                 /* handle initialised and not yet closed */
	uv_connect_t creq;
	uv_getaddrinfo_t gai;
	uv_timer_t retry;
	int state;
	bool stopping, paused;
	uint32_t gen;              /* connection generation */
	uint8_t *in;
	size_t in_len, in_cap;
	na_scan scan;
	uint64_t applied;          /* last committed sequence number */
	uint64_t head, head_time;  /* from the primary */
	uint64_t behind_since;
	uint64_t rows_applied;
	unsigned inflight;
	size_t inflight_bytes;
	unsigned backoff;
	bool gai_pending, freeing;
	bool refused;              /* would lose local writes: stopped trying */
	uint64_t last_rx;          /* loop time of the last bytes from the primary, or of
				    * reading resumed after a pause of ours */
	uint64_t linked_at;        /* loop time of this link's handshake; 0: none yet */
	unsigned link_timeout;     /* ms: LINK_TIMEOUT_MS, or the test knob */
	unsigned snapshot_stall;   /* ms: the test knob (0: none) */
};

typedef struct fjob {
	na_wjob job;
	na_follower *f;
	uint32_t gen;
	uint8_t *bytes;            /* the message the job points into */
	size_t size;
	uint64_t rows;
	bool snap_end;
	unsigned stall_ms;         /* the test knob, read on the writer thread */
} fjob;

static void schedule_retry(na_follower *f);
static void start_connect(na_follower *f);
static void resume(na_follower *f);

static void on_retry_closed(uv_handle_t *h)
{
	na_follower *f = h->data;
	free(f->in);
	na_tls_free(f->tls);
	msgpack_sbuffer_destroy(&f->early);
	free(f);
}

/* A stopped follower is freed once its link, its name lookup and its jobs
 * are all finished. */
static void maybe_free(na_follower *f)
{
	if (!f->stopping || f->open || f->gai_pending || f->inflight || f->freeing)
		return;
	f->freeing = true;
	uv_close((uv_handle_t *)&f->retry, on_retry_closed);
}

/* ---- sending ----------------------------------------------------------- */

typedef struct fwrite {
	uv_write_t req;
	char *data;
} fwrite_t;

static void on_written(uv_write_t *req, int status)
{
	(void)status;
	fwrite_t *w = (fwrite_t *)req;
	free(w->data);
	free(w);
}

static void write_raw(na_follower *f, char *data, size_t len)
{
	fwrite_t *w = malloc(sizeof *w);
	if (!w) {
		free(data);
		return;
	}
	w->data = data;
	uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
	if (uv_write(&w->req, &f->h.s, &b, 1, on_written) != 0) {
		free(w->data);
		free(w);
	}
}

/* Sends the ciphertext the TLS engine holds. */
static void tls_send(na_follower *f)
{
	size_t len;
	uint8_t *b = na_tls_output_release(f->tls, &len);
	if (b)
		write_raw(f, (char *)b, len);
}

static void drop_link(na_follower *f, const char *why);

static void send_bytes(na_follower *f, msgpack_sbuffer *sb)
{
	if (!f->open || f->state < F_HANDSHAKE) {
		msgpack_sbuffer_destroy(sb);
		return;
	}
	if (f->tls) {
		if (!na_tls_handshake_done(f->tls)) {
			msgpack_sbuffer_write(&f->early, sb->data, sb->size);
			msgpack_sbuffer_destroy(sb);
			return;
		}
		int rc = na_tls_write(f->tls, sb->data, sb->size);
		msgpack_sbuffer_destroy(sb);
		if (rc) {
			char why[320];
			snprintf(why, sizeof why, "TLS: %s", na_tls_errmsg(f->tls));
			drop_link(f, why);
			return;
		}
		tls_send(f);
		return;
	}
	size_t len = sb->size;
	write_raw(f, msgpack_sbuffer_release(sb), len);
}

static void send_ack(na_follower *f)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 3);
	msgpack_pack_uint8(&pk, NA_RPC_NOTIFY);
	na_mp_pack_cstr(&pk, "ack");
	msgpack_pack_array(&pk, 2);
	msgpack_pack_uint64(&pk, f->applied);
	msgpack_pack_uint64(&pk, f->rows_applied);
	send_bytes(f, &sb);
}

/* ---- test knobs --------------------------------------------------------- */

/*
 * Two environment variables, for tests only (newsarchd(8), ENVIRONMENT),
 * read once when following starts. Tests cannot otherwise make the
 * follower's own pauses outlast the watchdog without minutes of data and
 * a slow disk:
 *   NEWSARCHD_TEST_LINK_TIMEOUT_MS   the watchdog's limit instead of 10 s;
 *   NEWSARCHD_TEST_SNAPSHOT_STALL_MS the writer thread stops this long
 *                                    after applying the start of a snapshot,
 *                                    as a very slow disk would, while the
 *                                    rows keep arriving.
 * They are environment variables rather than settings so that they appear
 * in no configuration; a set one is logged as a warning.
 */
static unsigned env_ms(const char *name, unsigned def)
{
	const char *v = getenv(name);
	if (!v || !*v)
		return def;
	char *end;
	errno = 0;
	unsigned long n = strtoul(v, &end, 10);
	if (errno || *end || v[0] == '-' || n == 0 || n > 600000) {
		log_warn("%s: ignoring \"%s\" (expected 1 to 600000 ms)", name, v);
		return def;
	}
	log_warn("%s=%lu: a setting for tests, not for production", name, n);
	return (unsigned)n;
}

/* The writer thread's pause after a job (NEWSARCHD_TEST_SNAPSHOT_STALL_MS). */
static void stall(na_wjob *j)
{
	const fjob *fj = j->arg;
	struct timespec ts = { fj->stall_ms / 1000, (long)(fj->stall_ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* ---- the link ---------------------------------------------------------- */

static void on_closed(uv_handle_t *h)
{
	na_follower *f = h->data;
	f->open = false;
	f->in_len = 0;
	na_tls_free(f->tls);
	f->tls = NULL;
	msgpack_sbuffer_clear(&f->early);
	if (f->stopping) {
		maybe_free(f);
		return;
	}
	schedule_retry(f);
}

/* Drops the link (if up) and arranges a reconnect. */
static void drop_link(na_follower *f, const char *why)
{
	if (why)
		log_warn("replication from %s: %s", f->addr, why);
	if (f->linked_at && uv_now(f->srv->loop) - f->linked_at >= LINK_GOOD_MS)
		f->backoff = BACKOFF_MIN_MS;
	f->linked_at = 0;
	f->gen++;
	f->state = F_IDLE;
	if (f->open && !uv_is_closing(&f->h.h))
		uv_close(&f->h.h, on_closed);
	else if (!f->open && !f->stopping)
		schedule_retry(f);
}

static void on_retry(uv_timer_t *t)
{
	na_follower *f = t->data;
	if (f->stopping)
		return;
	if (f->inflight > 0) { /* let the old link's jobs land first */
		uv_timer_start(&f->retry, on_retry, 20, 0);
		return;
	}
	start_connect(f);
}

/*
 * The retry timer also watches the link: a connect or handshake that gets
 * no answer within LINK_TIMEOUT_MS (a peer whose backlog drops our SYNs, a
 * primary that accepts and never answers), or a link that has been silent
 * that long although the primary sends a heartbeat every second, is dropped
 * and retried. Silence is only measured while we read: when we stopped
 * reading ourselves because applies are waiting (process_input), the
 * heartbeats wait in the socket, and a slow disk is no reason to drop the
 * link (during a snapshot every drop began a new snapshot, so on a slow
 * disk it never finished). The clock starts again when reading resumes.
 */
#define LINK_TIMEOUT_MS 10000

static void on_watch(uv_timer_t *t)
{
	na_follower *f = t->data;
	if (f->stopping || f->state == F_IDLE)
		return;
	uint64_t now = uv_now(f->srv->loop);
	uint64_t limit = f->link_timeout;
	if (f->paused) {
		uv_timer_start(&f->retry, on_watch, limit + 10, 0);
		return;
	}
	if (f->gai_pending || now - f->last_rx < limit) {
		uint64_t left = f->gai_pending ? limit : limit - (now - f->last_rx);
		uv_timer_start(&f->retry, on_watch, left + 10, 0);
		return;
	}
	drop_link(f, f->state < F_SNAPSHOT ? "no answer from the primary; retrying"
					   : "the primary has been silent too long; reconnecting");
}

static void watch(na_follower *f)
{
	f->last_rx = uv_now(f->srv->loop);
	uv_timer_start(&f->retry, on_watch, f->link_timeout + 10, 0);
}

static void schedule_retry(na_follower *f)
{
	if (f->stopping || f->refused)
		return;
	uint32_t r = 0;
	if (getrandom(&r, sizeof r, 0) != sizeof r)
		r = 0;
	unsigned base = f->backoff;
	unsigned delay = base / 2 + (base ? r % base : 0); /* 50% .. 150% */
	f->backoff = base * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : base * 2;
	f->state = F_IDLE;
	uv_timer_start(&f->retry, on_retry, delay, 0);
}

/* ---- applying what arrives ---------------------------------------------- */

static void job_done(na_wjob *j)
{
	fjob *fj = j->arg;
	na_follower *f = fj->f;
	na_server *s = f->srv;
	f->inflight--;
	f->inflight_bytes -= fj->size;
	if (j->code == NA_CODE_OK) {
		/* progress on the current link (see LINK_GOOD_MS): a whole
		 * snapshot, or entries beyond our position; a partial snapshot is
		 * not (the next one wipes it), nor a re-sent dictionary */
		if (fj->gen == f->gen &&
		    (fj->snap_end || (j->op == NA_WOP_APPLY && j->seq_after > f->applied)))
			f->backoff = BACKOFF_MIN_MS;
		f->applied = j->seq_after;
		f->rows_applied += fj->rows;
		if (j->op == NA_WOP_SNAP_BEGIN) {
			/* our content is being replaced: our position starts over
			 * (na_repl_committed only moves it forward), and whoever
			 * follows or subscribes to us is on the old content */
			s->seq = j->seq_after;
			for (na_conn *o = s->conns, *next; o; o = next) {
				next = o->next;
				if (o->sender)
					na_conn_close(o);
			}
		}
		if (fj->snap_end && fj->gen == f->gen) {
			f->state = F_STREAMING;
			log_info("replication from %s: snapshot complete at seq %llu", f->addr,
				 (unsigned long long)f->applied);
		}
		if (f->applied >= f->head)
			f->behind_since = 0;
		/* a follower's position is what it applied: after a re-bootstrap
		 * from another archive it can be lower than before */
		s->seq = f->applied;
		na_repl_committed(s, f->applied);
		if (fj->gen == f->gen)
			send_ack(f);
	} else if (fj->gen == f->gen) {
		drop_link(f, j->msg ? j->msg : "a replicated change failed to apply");
	}
	free(fj->bytes);
	free(j->entries);
	free(j->rows);
	free(fj);
	if (f->stopping) {
		maybe_free(f);
		return;
	}
	if (f->paused && f->inflight_bytes < INFLIGHT_MAX_BYTES / 2 && f->open &&
	    !uv_is_closing(&f->h.h)) {
		f->paused = false;
		resume(f);
	}
}

static fjob *new_job(na_follower *f, na_wop op, const uint8_t *msg, size_t len, const uint8_t **base)
{
	fjob *fj = calloc(1, sizeof *fj);
	if (!fj)
		return NULL;
	fj->bytes = malloc(len ? len : 1);
	if (!fj->bytes) {
		free(fj);
		return NULL;
	}
	if (len)
		memcpy(fj->bytes, msg, len);
	*base = fj->bytes;
	fj->size = len;
	fj->f = f;
	fj->gen = f->gen;
	fj->job.op = op;
	fj->job.done = job_done;
	fj->job.arg = fj;
	fj->job.link = f->gen;
	return fj;
}

static void submit(na_follower *f, fjob *fj)
{
	f->inflight++;
	f->inflight_bytes += fj->size;
	na_writer_submit(&f->srv->writer, &fj->job);
}

static void free_job(fjob *fj)
{
	free(fj->bytes);
	free(fj->job.entries);
	free(fj->job.rows);
	free(fj);
}

static int read_key(na_mp *r, na_key *k)
{
	const uint8_t *b;
	uint32_t n;
	if (na_mp_bin(r, &b, &n) || n != NA_KEY_BYTES)
		return -1;
	memcpy(k->b, b, NA_KEY_BYTES);
	return 0;
}

/* ---- decoding (pure: see follow.h) ------------------------------------ */

int na_follow_parse_hello(na_mp *r, na_follow_hello *h)
{
	uint32_t n;
	memset(h, 0, sizeof *h);
	if (na_mp_map(r, &n))
		return -1;
	uint32_t hn = 0;
	for (uint32_t i = 0; i < n; i++) {
		const char *k;
		uint32_t kl;
		if (na_mp_str(r, &k, &kl))
			return -1;
		if (na_mp_streq(k, kl, "mode")) { if (na_mp_str(r, &h->mode, &h->mode_n)) return -1; }
		else if (na_mp_streq(k, kl, "history")) { if (na_mp_bin(r, &h->history, &hn)) return -1; }
		else if (na_mp_streq(k, kl, "chain")) { if (na_mp_bin(r, &h->chain, &h->chain_bytes)) return -1; }
		else if (na_mp_streq(k, kl, "hash_key")) { if (na_mp_bin(r, &h->hash_key, &h->hash_key_n)) return -1; }
		else if (na_mp_streq(k, kl, "seq")) { if (na_mp_u64(r, &h->seq)) return -1; }
		else if (na_mp_streq(k, kl, "head")) { if (na_mp_u64(r, &h->head)) return -1; }
		else if (na_mp_skip(r)) return -1;
	}
	if (!h->mode || !h->history || hn != 16 || !h->chain || h->chain_bytes % 24 ||
	    h->chain_bytes > 16 * 24)
		return -1;
	return 0;
}

int na_follow_parse_rows(const uint8_t *p, size_t len, na_srow **rows, uint32_t *nrows)
{
	na_mp r;
	na_mp_init(&r, p, len);
	uint32_t n;
	/* a row is at least array(2) + bin8(16 key) + bin8: 21 bytes */
	if (na_mp_array(&r, &n) || n > na_mp_left(&r) / 21)
		return -1;
	na_srow *v = calloc(n ? n : 1, sizeof *v);
	if (!v)
		return -1;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t two, rl;
		na_srow *row = &v[i];
		if (na_mp_array(&r, &two) || two != 2 || read_key(&r, &row->key) ||
		    na_mp_bin(&r, &row->rec, &rl)) {
			free(v);
			return -1;
		}
		row->rec_len = rl;
	}
	*rows = v;
	*nrows = n;
	return 0;
}

int na_follow_parse_log(const uint8_t *p, size_t len, uint32_t np, na_rentry **entries,
			uint32_t *nentries, bool *has_head, uint64_t *head, uint64_t *time)
{
	na_mp r;
	na_mp_init(&r, p, len);
	uint32_t n;
	/* an entry is at least array(3) + seq + "D" + bin8(16 key): 21 bytes */
	if (np < 1 || na_mp_array(&r, &n) || n > na_mp_left(&r) / 21)
		return -1;
	na_rentry *v = calloc(n ? n : 1, sizeof *v);
	if (!v)
		return -1;
	for (uint32_t i = 0; i < n; i++) {
		na_rentry *e = &v[i];
		uint32_t an, on, bl;
		const char *op;
		if (na_mp_array(&r, &an) || an < 3 || na_mp_u64(&r, &e->seq) || na_mp_str(&r, &op, &on) ||
		    on != 1)
			goto bad;
		e->op = (uint8_t)op[0];
		if (e->op == 'P' && an == 5) {
			if (read_key(&r, &e->key))
				goto bad;
			if (na_mp_peek(&r) == NA_MP_NIL) na_mp_nil(&r);
			else if (read_key(&r, &e->old)) goto bad;
			else e->has_old = true;
			if (na_mp_peek(&r) == NA_MP_NIL) na_mp_nil(&r);
			else if (na_mp_bin(&r, &e->rec, &bl)) goto bad;
			else e->rec_len = bl;
		} else if (e->op == 'D' && an == 3) {
			if (read_key(&r, &e->key))
				goto bad;
		} else if (e->op == 'Z' && an == 4) {
			uint64_t id;
			if (na_mp_u64(&r, &id) || id == 0 || id > NA_MAX_DICTS ||
			    na_mp_bin(&r, &e->dict, &bl) || bl == 0)
				goto bad;
			e->dict_id = (uint32_t)id;
			e->dict_len = bl;
		} else {
			goto bad;
		}
	}
	*entries = v;
	*nentries = n;
	*has_head = np >= 3 && na_mp_u64(&r, head) == 0 && na_mp_u64(&r, time) == 0;
	return 0;
bad:
	free(v);
	return -1;
}

/* ---- the messages -------------------------------------------------------- */

/* The reply to replicate. */
static int on_handshake(na_follower *f, na_mp *r)
{
	na_follow_hello h;
	if (na_follow_parse_hello(r, &h))
		return -1;
	const char *mode = h.mode;
	uint32_t mode_n = h.mode_n;
	const uint8_t *hist = h.history, *chain = h.chain, *hkey = h.hash_key;
	uint32_t cn = h.chain_bytes, kn = h.hash_key_n;
	uint64_t seq = h.seq, head = h.head;
	f->head = head;
	/* the backoff is reset by progress, not here (see LINK_GOOD_MS) */
	f->linked_at = uv_now(f->srv->loop) ? uv_now(f->srv->loop) : 1;
	na_store *st = &f->srv->store;
	if (na_mp_streq(mode, mode_n, "snapshot")) {
		if (!hkey || kn != 16)
			return -1;
		/* A promoted archive continues the primary's history: taking a
		 * snapshot from that primary would throw away what was written
		 * here since the promotion. Refuse, loudly. */
		for (uint32_t i = 0; i < st->chain_len; i++)
			if (memcmp(st->chain + i * 24, hist, 16) == 0 &&
			    memcmp(st->history, hist, 16) != 0 && f->srv->seq > 0) {
				log_error("replication from %s: this archive was promoted from that "
					  "server's history and has writes of its own; refusing to "
					  "replace it with a snapshot (remove follow, or empty the data "
					  "directory to follow again)", f->addr);
				f->refused = true;
				return -1;
			}
		const uint8_t *base;
		fjob *fj = new_job(f, NA_WOP_SNAP_BEGIN, NULL, 0, &base);
		if (!fj)
			return -1;
		memcpy(fj->job.history, hist, 16);
		memcpy(fj->job.hash_key, hkey, 16);
		memcpy(fj->job.chain, chain, cn);
		fj->job.chain_len = cn / 24;
		if (f->snapshot_stall) {
			fj->stall_ms = f->snapshot_stall;
			fj->job.committed = stall;
		}
		f->rows_applied = 0;
		f->state = F_SNAPSHOT;
		log_info("replication from %s: receiving a snapshot at seq %llu", f->addr,
			 (unsigned long long)seq);
		submit(f, fj);
		return 0;
	}
	if (!na_mp_streq(mode, mode_n, "stream"))
		return -1;
	f->state = F_STREAMING;
	if (memcmp(hist, st->history, 16) != 0 || cn / 24 != st->chain_len ||
	    memcmp(chain, st->chain, cn) != 0) {
		/* the primary continues our history under a new id (promotion) */
		const uint8_t *base;
		fjob *fj = new_job(f, NA_WOP_HISTORY, NULL, 0, &base);
		if (!fj)
			return -1;
		memcpy(fj->job.history, hist, 16);
		memcpy(fj->job.chain, chain, cn);
		fj->job.chain_len = cn / 24;
		submit(f, fj);
	}
	log_info("replication from %s: streaming from seq %llu (primary at %llu)", f->addr,
		 (unsigned long long)seq, (unsigned long long)head);
	return 0;
}

static int on_rows(na_follower *f, const uint8_t *msg, size_t len, size_t params_off)
{
	const uint8_t *base;
	fjob *fj = new_job(f, NA_WOP_SNAP_ROWS, msg, len, &base);
	if (!fj)
		return -1;
	if (na_follow_parse_rows(base + params_off, len - params_off, &fj->job.rows,
				 &fj->job.nrows)) {
		free_job(fj);
		return -1;
	}
	fj->rows = fj->job.nrows;
	submit(f, fj);
	return 0;
}

static int on_log(na_follower *f, const uint8_t *msg, size_t len, size_t params_off, uint32_t np)
{
	const uint8_t *base;
	fjob *fj = new_job(f, NA_WOP_APPLY, msg, len, &base);
	if (!fj)
		return -1;
	uint64_t head = 0, t = 0;
	bool has_head;
	if (na_follow_parse_log(base + params_off, len - params_off, np, &fj->job.entries,
				&fj->job.nentries, &has_head, &head, &t)) {
		free_job(fj);
		return -1;
	}
	if (has_head) {
		f->head = head > f->head ? head : f->head;
		f->head_time = t;
	}
	if (f->head > f->applied && !f->behind_since)
		f->behind_since = uv_now(f->srv->loop) ? uv_now(f->srv->loop) : 1;
	submit(f, fj);
	return 0;
}

/* One message from the primary. */
static int on_message(na_follower *f, const uint8_t *msg, size_t len)
{
	na_mp r;
	na_mp_init(&r, msg, len);
	uint32_t n, np;
	uint64_t type;
	if (na_mp_array(&r, &n) || na_mp_u64(&r, &type))
		return -1;
	if (type == NA_RPC_RESPONSE && n == 4 && f->state == F_HANDSHAKE) {
		uint64_t id;
		if (na_mp_u64(&r, &id) || (id != 1 && id != 2))
			return -1;
		if (id == 2) { /* the answer to auth */
			if (na_mp_peek(&r) == NA_MP_NIL)
				return 0;
			log_error("replication from %s: the primary refused follow_token", f->addr);
			return -1;
		}
		if (na_mp_peek(&r) != NA_MP_NIL) {
			uint32_t em;
			const char *k, *v;
			uint32_t kl, vl;
			if (na_mp_map(&r, &em) == 0)
				for (uint32_t i = 0; i < em; i++)
					if (na_mp_str(&r, &k, &kl) == 0 && na_mp_str(&r, &v, &vl) == 0 &&
					    na_mp_streq(k, kl, "message"))
						log_warn("replication from %s refused: %.*s", f->addr,
							 (int)(vl > 200 ? 200 : vl), v);
			return -1;
		}
		if (na_mp_nil(&r))
			return -1;
		return on_handshake(f, &r);
	}
	if (type != NA_RPC_NOTIFY || n != 3)
		return -1;
	const char *m;
	uint32_t mn;
	if (na_mp_str(&r, &m, &mn) || na_mp_array(&r, &np))
		return -1;
	size_t off = (size_t)(r.p - msg);
	if (na_mp_streq(m, mn, "heartbeat")) {
		uint64_t head, t;
		if (np != 2 || na_mp_u64(&r, &head) || na_mp_u64(&r, &t))
			return -1;
		if (head > f->head)
			f->head = head;
		f->head_time = t;
		if (f->head > f->applied && !f->behind_since)
			f->behind_since = uv_now(f->srv->loop) ? uv_now(f->srv->loop) : 1;
		return 0;
	}
	if (na_mp_streq(m, mn, "log") && f->state == F_STREAMING)
		return on_log(f, msg, len, off, np);
	bool dict = na_mp_streq(m, mn, "dict");
	/* dictionaries come ahead of the records that need them, also while
	 * streaming (a record re-encoded after its 'Z' entry was written) */
	if (f->state != F_SNAPSHOT && !(dict && f->state == F_STREAMING))
		return -1;
	if (na_mp_streq(m, mn, "rows"))
		return np == 1 ? on_rows(f, msg, len, off) : -1;
	if (dict) {
		const uint8_t *base;
		fjob *fj = new_job(f, NA_WOP_SNAP_DICT, msg, len, &base);
		if (!fj)
			return -1;
		na_mp_init(&r, base + off, len - off);
		uint64_t id;
		const uint8_t *d;
		uint32_t dl;
		if (np != 2 || na_mp_u64(&r, &id) || id == 0 || id > NA_MAX_DICTS ||
		    na_mp_bin(&r, &d, &dl) || dl == 0) {
			free_job(fj);
			return -1;
		}
		fj->job.dict_id = (uint32_t)id;
		fj->job.dict = d;
		fj->job.dict_len = dl;
		submit(f, fj);
		return 0;
	}
	if (na_mp_streq(m, mn, "snapshot_end")) {
		uint64_t seq, dict, exact = 0;
		if (np < 1 || na_mp_u64(&r, &seq))
			return -1;
		/* [S0, dict, S1]: S1 (later primaries) is where the copy is exact */
		if (np >= 3 && (na_mp_u64(&r, &dict) || na_mp_u64(&r, &exact)))
			return -1;
		const uint8_t *base;
		fjob *fj = new_job(f, NA_WOP_SNAP_END, NULL, 0, &base);
		if (!fj)
			return -1;
		fj->job.seq = seq;
		fj->job.exact_at = exact;
		fj->snap_end = true;
		f->state = F_STREAMING; /* log batches may follow right away */
		submit(f, fj);
		return 0;
	}
	return -1;
}

static void process_input(na_follower *f)
{
	size_t off = 0;
	uint32_t gen = f->gen;
	while (off < f->in_len && gen == f->gen && !f->paused) {
		size_t mlen;
		int rc = na_scan_feed(&f->scan, f->in + off, f->in_len - off, &mlen);
		if (rc == 0)
			break;
		if (rc < 0 || on_message(f, f->in + off, mlen) != 0) {
			drop_link(f, "malformed or unexpected message from the primary");
			return;
		}
		off += mlen;
		if (f->inflight_bytes >= INFLIGHT_MAX_BYTES) {
			f->paused = true;
			uv_read_stop(&f->h.s);
			log_debug("replication from %s: %zu bytes wait to be applied; reading paused",
				  f->addr, f->inflight_bytes);
		}
	}
	if (gen != f->gen)
		return;
	memmove(f->in, f->in + off, f->in_len - off);
	f->in_len -= off;
}

/* ciphertext from the primary, fed to the engine at once (one loop thread) */
static uint8_t tls_rbuf[65536];

static int grow_in(na_follower *f)
{
	if (f->in_cap - f->in_len >= 65536)
		return 0;
	size_t want = f->in_cap ? f->in_cap * 2 : 262144;
	if (want < f->in_len + 65536)
		want = f->in_len + 65536;
	uint8_t *n = realloc(f->in, want);
	if (!n)
		return -1;
	f->in = n;
	f->in_cap = want;
	return 0;
}

/* Ciphertext arrived: decrypt it into f->in. 0, or -1 after dropping the link. */
static int tls_input(na_follower *f, const uint8_t *p, size_t n)
{
	bool was_done = na_tls_handshake_done(f->tls);
	if (na_tls_feed(f->tls, p, n)) {
		drop_link(f, "out of memory for TLS input");
		return -1;
	}
	for (;;) {
		if (grow_in(f)) {
			drop_link(f, "out of memory for TLS input");
			return -1;
		}
		size_t got;
		int rc = na_tls_read(f->tls, f->in + f->in_len, f->in_cap - f->in_len, &got);
		if (rc == NA_TLS_EOF) {
			drop_link(f, "primary closed the TLS session");
			return -1;
		}
		if (rc) {
			tls_send(f); /* the alert */
			log_error("replication from %s: TLS: %s; retrying", f->addr,
				  na_tls_errmsg(f->tls));
			drop_link(f, NULL);
			return -1;
		}
		if (got == 0)
			break;
		f->in_len += got;
	}
	if (!was_done && na_tls_handshake_done(f->tls)) {
		char d[300];
		na_tls_describe(f->tls, d, sizeof d);
		log_info("replication from %s: TLS established (%s)", f->addr, d);
		if (f->early.size) {
			uint32_t gen = f->gen;
			msgpack_sbuffer early = f->early;
			msgpack_sbuffer_init(&f->early);
			send_bytes(f, &early);
			if (gen != f->gen)
				return -1; /* the send failed and dropped the link */
		}
	}
	tls_send(f);
	return 0;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	(void)hint;
	na_follower *f = h->data;
	if (f->tls) {
		*buf = uv_buf_init((char *)tls_rbuf, sizeof tls_rbuf);
		return;
	}
	if (f->in_cap - f->in_len < 65536) {
		size_t want = f->in_cap ? f->in_cap * 2 : 262144;
		if (want < f->in_len + 65536)
			want = f->in_len + 65536;
		uint8_t *n = realloc(f->in, want);
		if (!n) {
			*buf = uv_buf_init(NULL, 0);
			return;
		}
		f->in = n;
		f->in_cap = want;
	}
	*buf = uv_buf_init((char *)f->in + f->in_len, (unsigned)(f->in_cap - f->in_len));
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	na_follower *f = st->data;
	if (nread < 0) {
		drop_link(f, nread == UV_EOF ? "primary closed the connection" : uv_strerror((int)nread));
		return;
	}
	f->last_rx = uv_now(f->srv->loop);
	if (f->tls) {
		if (nread == 0 || tls_input(f, (const uint8_t *)buf->base, (size_t)nread))
			return;
	} else {
		f->in_len += (size_t)nread;
	}
	process_input(f);
}

static void resume(na_follower *f)
{
	process_input(f);
	if (!f->paused && f->open && !uv_is_closing(&f->h.h)) {
		log_debug("replication from %s: reading resumed", f->addr);
		f->last_rx = uv_now(f->srv->loop); /* the pause was ours (see on_watch) */
		uv_read_start(&f->h.s, on_alloc, on_read);
	}
}

static void on_connected(uv_connect_t *req, int status)
{
	na_follower *f = req->data;
	if (status < 0 || f->stopping) {
		if (!f->stopping)
			log_debug("replication from %s: cannot connect: %s", f->addr, uv_strerror(status));
		drop_link(f, NULL);
		return;
	}
	f->state = F_HANDSHAKE;
	na_scan_init(&f->scan, MAX_MESSAGE, NA_MP_DEPTH_CEILING);
	if (!f->is_unix)
		uv_tcp_nodelay(&f->h.tcp, 1);
	if (f->use_tls) {
		/* a fresh context each time: renewed files apply on reconnect */
		na_tls_ctx *x;
		char err[1024];
		if (na_tls_follow_ctx(&f->srv->cfg, &x, err, sizeof err)) {
			log_error("replication from %s: %s", f->addr, err);
			drop_link(f, NULL);
			return;
		}
		const char *name = f->srv->cfg.follow_tls_name[0] ? f->srv->cfg.follow_tls_name
								     : f->host;
		int rc = na_tls_new(x, name, &f->tls);
		na_tls_ctx_free(x);
		if (rc) {
			drop_link(f, "cannot start TLS (bad follow_tls_name, or out of memory)");
			return;
		}
		tls_send(f); /* the ClientHello */
	}
	na_store *st = &f->srv->store;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	if (f->srv->cfg.follow_token[0]) {
		/* auth (msgid 2) goes first; the server answers requests in order */
		msgpack_pack_array(&pk, 4);
		msgpack_pack_uint8(&pk, NA_RPC_REQUEST);
		msgpack_pack_uint32(&pk, 2);
		na_mp_pack_cstr(&pk, "auth");
		msgpack_pack_array(&pk, 1);
		na_mp_pack_cstr(&pk, f->srv->cfg.follow_token);
	}
	msgpack_pack_array(&pk, 4);
	msgpack_pack_uint8(&pk, NA_RPC_REQUEST);
	msgpack_pack_uint32(&pk, 1);
	na_mp_pack_cstr(&pk, "replicate");
	msgpack_pack_array(&pk, 1);
	msgpack_pack_map(&pk, 2);
	na_mp_pack_cstr(&pk, "history");
	if (st->snapshot_incomplete) {
		msgpack_pack_nil(&pk); /* our copy is partial: ask for a snapshot */
	} else {
		msgpack_pack_bin(&pk, 16);
		msgpack_pack_bin_body(&pk, st->history, 16);
	}
	na_mp_pack_cstr(&pk, "seq");
	msgpack_pack_uint64(&pk, f->applied);
	send_bytes(f, &sb);
	uv_read_start(&f->h.s, on_alloc, on_read);
}

static void connect_to(na_follower *f, const struct sockaddr *sa)
{
	f->creq.data = f;
	int rc;
	if (f->is_unix) {
		uv_pipe_init(f->srv->loop, &f->h.pipe, 0);
		f->h.h.data = f;
		f->open = true;
		uv_pipe_connect(&f->creq, &f->h.pipe, f->host, on_connected);
		return;
	}
	uv_tcp_init(f->srv->loop, &f->h.tcp);
	f->h.h.data = f;
	f->open = true;
	rc = uv_tcp_connect(&f->creq, &f->h.tcp, sa, on_connected);
	if (rc)
		drop_link(f, uv_strerror(rc));
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	na_follower *f = req->data;
	f->gai_pending = false;
	if (f->stopping) {
		uv_freeaddrinfo(res);
		maybe_free(f);
		return;
	}
	if (status < 0 || !res) {
		log_warn("replication from %s: cannot resolve %s: %s", f->addr, f->host,
			 uv_strerror(status));
		uv_freeaddrinfo(res);
		schedule_retry(f);
		return;
	}
	connect_to(f, res->ai_addr);
	uv_freeaddrinfo(res);
}

static void start_connect(na_follower *f)
{
	f->state = F_CONNECTING;
	watch(f);
	f->in_len = 0;
	f->paused = false; /* a pause belonged to the previous link */
	if (f->is_unix) {
		connect_to(f, NULL);
		return;
	}
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	f->gai.data = f;
	int rc = uv_getaddrinfo(f->srv->loop, &f->gai, on_resolved, f->host, f->port, &hints);
	f->gai_pending = rc == 0;
	if (rc) {
		log_warn("replication from %s: %s", f->addr, uv_strerror(rc));
		schedule_retry(f);
	}
}

int na_follow_start(na_server *s, const char *addr)
{
	na_follower *f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	f->srv = s;
	snprintf(f->addr, sizeof f->addr, "%s", addr);
	msgpack_sbuffer_init(&f->early);
	if (strncmp(addr, "tls://", 6) == 0) {
		char err[1024];
		na_tls_ctx *x;
		addr += 6;
		f->use_tls = true;
		if (strncmp(addr, "unix:", 5) == 0) {
			log_error("follow: TLS over a Unix socket is not supported (use unix:PATH)");
			free(f);
			return -1;
		}
		/* check the files now, so a broken setting stops the start */
		if (na_tls_follow_ctx(&s->cfg, &x, err, sizeof err)) {
			log_error("follow: %s", err);
			free(f);
			return -1;
		}
		na_tls_ctx_free(x);
	}
	if (strncmp(addr, "unix:", 5) == 0) {
		f->is_unix = true;
		snprintf(f->host, sizeof f->host, "%s", addr + 5);
	} else {
		const char *colon = strrchr(addr, ':');
		const char *h = addr, *he = colon;
		if (addr[0] == '[') {
			h = addr + 1;
			he = strchr(addr, ']');
			if (!he || he[1] != ':')
				he = NULL;
			colon = he ? he + 1 : NULL;
		}
		if (!colon || !he || he == h || (size_t)(he - h) >= sizeof f->host ||
		    strlen(colon + 1) == 0 || strlen(colon + 1) >= sizeof f->port) {
			log_error("follow: \"%s\" is not HOST:PORT, [V6]:PORT, tls://HOST:PORT or "
				  "unix:PATH", f->addr);
			free(f);
			return -1;
		}
		memcpy(f->host, h, (size_t)(he - h));
		snprintf(f->port, sizeof f->port, "%s", colon + 1);
	}
	f->applied = s->seq;
	f->gen = 1;
	f->backoff = BACKOFF_MIN_MS;
	f->link_timeout = env_ms("NEWSARCHD_TEST_LINK_TIMEOUT_MS", LINK_TIMEOUT_MS);
	f->snapshot_stall = env_ms("NEWSARCHD_TEST_SNAPSHOT_STALL_MS", 0);
	uv_timer_init(s->loop, &f->retry);
	f->retry.data = f;
	s->follower = f;
	log_info("following %s from seq %llu", addr, (unsigned long long)f->applied);
	start_connect(f);
	return 0;
}

const char *na_follow_state(const na_server *s)
{
	if (!s->follower)
		return "none";
	return s->follower->refused ? "refused" : state_names[s->follower->state];
}

const char *na_follow_addr(const na_server *s)
{
	return s->follower ? s->follower->addr : NULL;
}

void na_follow_stop(na_server *s)
{
	na_follower *f = s->follower;
	if (!f)
		return;
	s->follower = NULL; /* from now on this server is no follower */
	f->stopping = true;
	f->gen++;
	uv_timer_stop(&f->retry);
	if (f->open && !uv_is_closing(&f->h.h))
		uv_close(&f->h.h, on_closed);
	if (f->gai_pending)
		uv_cancel((uv_req_t *)&f->gai);
	maybe_free(f);
}

void na_follow_stats(na_server *s, msgpack_packer *pk)
{
	na_follower *f = s->follower;
	uint64_t now = uv_now(s->loop);
	msgpack_pack_map(pk, 6);
	na_mp_pack_cstr(pk, "primary");
	na_mp_pack_cstr(pk, f->addr);
	na_mp_pack_cstr(pk, "state");
	na_mp_pack_cstr(pk, f->refused ? "refused" : state_names[f->state]);
	na_mp_pack_cstr(pk, "applied_seq");
	msgpack_pack_uint64(pk, f->applied);
	na_mp_pack_cstr(pk, "primary_seq");
	msgpack_pack_uint64(pk, f->head);
	na_mp_pack_cstr(pk, "lag_entries");
	msgpack_pack_uint64(pk, f->head > f->applied ? f->head - f->applied : 0);
	na_mp_pack_cstr(pk, "lag_seconds");
	msgpack_pack_double(pk, f->behind_since && f->head > f->applied
				    ? (double)(now - f->behind_since) / 1000.0 : 0.0);
}

void na_follow_metrics(na_server *s, FILE *f)
{
	na_follower *x = s->follower;
	uint64_t now = uv_now(s->loop);
	fprintf(f, "# HELP newsarch_replication_applied_seq Last entry applied from the primary.\n"
		   "# TYPE newsarch_replication_applied_seq gauge\n"
		   "newsarch_replication_applied_seq %llu\n",
		(unsigned long long)x->applied);
	fprintf(f, "# HELP newsarch_replication_primary_seq The primary's last known position.\n"
		   "# TYPE newsarch_replication_primary_seq gauge\n"
		   "newsarch_replication_primary_seq %llu\n",
		(unsigned long long)x->head);
	fprintf(f, "# HELP newsarch_replication_lag_entries Entries behind the primary.\n"
		   "# TYPE newsarch_replication_lag_entries gauge\n"
		   "newsarch_replication_lag_entries %llu\n",
		(unsigned long long)(x->head > x->applied ? x->head - x->applied : 0));
	fprintf(f, "# HELP newsarch_replication_lag_seconds How long this follower has been behind.\n"
		   "# TYPE newsarch_replication_lag_seconds gauge\n"
		   "newsarch_replication_lag_seconds %.3f\n",
		x->behind_since && x->head > x->applied ? (double)(now - x->behind_since) / 1000.0 : 0.0);
}
