/*
 * replog.c - the primary side of replication: shipping the change log to
 * followers and to change-feed subscribers.
 *
 * How replication works
 * =====================
 *
 * The log. Every committed change (put, replace, delete, new dictionary)
 * takes the next sequence number and writes a log entry under it in the
 * same LMDB transaction as the change (writer.c). A put entry names the key
 * of the stored version; because a key ends with the sequence number that
 * created it and is never reused, the version at a key never changes: it is
 * either there, holding exactly the bytes that entry wrote, or gone because
 * a later entry removed it. The sender reads the record from the articles
 * table when it ships the entry, so the log costs ~40 bytes per change, not a
 * second copy of every article, and followers receive the stored
 * (compressed) bytes and never recompress.
 *
 * Positions and histories. Each archive is created with a random 128-bit
 * history id. A position is (history, seq): "I hold the effect of entries
 * 1..seq of that history". A follower stores its position in the same
 * transaction as the entries it applies (meta "seq" and "history"), so a
 * crash can neither skip nor repeat an entry; re-sent entries at or below
 * the position are ignored, and an entry that does not directly follow it
 * is a gap, which aborts the link (never resume across a gap).
 *
 * Handshake. The follower connects as a client and calls
 * replicate [{history, seq}]. The primary answers with mode "stream" when it
 * can continue from there: same history (or an earlier history this one
 * continues, up to the point where they forked, see promotion) and every
 * entry after seq still in the log. Otherwise it answers "snapshot": the
 * follower is empty, on another history (another archive, or an old primary
 * with writes nobody else has), or behind the log's retention.
 *
 * Snapshots. The snapshot is read in chunks of keys, each chunk in a fresh
 * read transaction, so a slow follower never pins old pages and the primary
 * keeps writing meanwhile. It is fuzzy: it starts at S0, the head when it
 * began, and a chunk reflects whatever was committed when it was read. After
 * the last chunk the follower's position is set to S0 and the log is
 * streamed from S0+1. Replaying those entries over the fuzzy copy converges
 * to the primary's state because applying an entry is idempotent on keys
 * (insert a version that is already there: nothing; remove one that is gone:
 * nothing). Until the snapshot is whole, the follower's meta carries a
 * "snapshot" mark: if it dies meanwhile, it starts over with a new snapshot.
 * Dictionaries travel before the first record that uses them. Rows are
 * stored entries: single records or whole blocks (a follower keeps blocks
 * as they come when they overlap nothing it has, else stores their members
 * one by one). The snapshot cursor is the last article shipped; when the
 * compactor packed it together with later ones between two chunks, the
 * block holding it is sent again whole and the follower skips what it has.
 *
 * Blocks are local: compaction writes no log entry, and a log entry names
 * an article key. When that article sits in a block by the time the entry
 * is shipped, the sender sends it as a raw single record (decoding each
 * block once for a run of entries that fall into it); the follower stores
 * it as a single record and its own compactor packs it again.
 *
 * Streaming is push. After each commit the primary sends new entries to
 * every connected follower in batches ("log" notifications). The follower
 * applies a batch in one transaction and acknowledges the applied position
 * ("ack" notifications). The primary keeps at most WINDOW_ENTRIES entries
 * (or WINDOW_ROWS snapshot rows) unacknowledged and produces a batch only
 * while the connection's output queue is under half of output_queue_bytes,
 * so its memory per follower is bounded and a stuck follower costs nothing
 * but a stalled cursor. Writes never wait for followers (unless a client
 * asks for it, below).
 *
 * Retention. The log is trimmed by the writer: beyond log_retention_bytes in
 * the same transaction as new entries, and entries older than
 * log_retention_age on a once-a-minute tick (the "logtime" table remembers
 * when the log reached which seq). The primary's disk wins over a lagging
 * follower: when it returns behind the oldest entry, it gets a snapshot.
 *
 * Promotion. promote turns a follower into a primary under a new history id
 * and records (old history, position) in its chain. A follower of the old
 * primary that presents (old history, s) with s <= that position shares
 * everything up to s and continues by streaming; one with s beyond it (an
 * old primary that took writes that never replicated) is re-bootstrapped
 * with a snapshot, never merged. Followers of the promoted server are
 * disconnected at promotion and adopt the new history on their next
 * handshake.
 *
 * Failures. Link cut or primary down: the follower keeps serving reads and
 * reconnects with capped, jittered exponential backoff, resuming from its
 * stored position. Follower killed at any point: its position is exactly
 * what was committed with the entries. Primary killed: acknowledged writes
 * were fsynced before the reply; followers reconnect when it returns.
 * Follower pointed at another archive: different history, so a snapshot
 * replaces its content entirely.
 *
 * Visibility. stats on the primary lists each follower with its acknowledged
 * position and lag in entries and seconds; heartbeats every second carry the
 * primary's head and clock so a follower knows its own lag.
 *
 * Waiting. put/put_batch may ask (opts {"replicas": N, "timeout_ms": T}) to
 * be answered only once N followers have applied the write; the reply says
 * how many did. Reads may pass min_seq to wait until this server has
 * applied that sequence number (read-your-writes on a follower).
 *
 * The change feed is the same stream for clients: subscribe [{seq}] sends
 * "log" notifications from seq+1 with articles decoded, no snapshot.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "index.h"
#include "log.h"
#include "rpc.h"
#include "server.h"

#define CHUNK_BYTES (256u << 10)
#define CHUNK_ITEMS 2000
#define WINDOW_ENTRIES 20000
#define WINDOW_ROWS 20000
/* output caps a sender fills in one turn of the event loop at most */
#define PUMP_PASSES 4

enum { S_SNAPSHOT, S_STREAM };

struct na_sender {
	na_conn *c;
	na_server *srv;
	bool subscribe;
	bool acks;                /* it acknowledged at least once */
	int state;
	uint64_t next_seq;        /* next log entry to send */
	uint64_t acked_seq;       /* the follower's applied position */
	uint64_t snap_seq;        /* S0 */
	na_key cursor;            /* last snapshot key sent */
	bool cursor_set;
	uint32_t dict_sent;       /* dictionaries sent during the snapshot */
	uint64_t rows_sent, rows_acked;
	uint64_t behind_since;    /* ms; 0 when caught up */
	uint64_t started_ms;
	na_sender *next;
};

struct na_parked {
	na_parked *next;
	na_conn *c;
	uint8_t *msg;
	size_t len;
	uint32_t msgid;
	uint64_t min_seq;
	uint64_t deadline;
};

struct na_wait {
	na_wait *next;
	na_conn *c;
	uint32_t msgid;
	uint64_t seq;
	uint32_t need;
	uint32_t got;       /* followers that had it when the wait ended */
	uint64_t deadline;
	bool batch;
	char *body;
	size_t len;
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void pack_bin(msgpack_packer *pk, const void *p, size_t n)
{
	msgpack_pack_bin(pk, n);
	msgpack_pack_bin_body(pk, p, n);
}

/* ---- handshake ------------------------------------------------------- */

/* Can a follower at (hist, seq) continue by streaming? */
static bool can_stream(na_server *s, const uint8_t *hist, uint64_t seq, uint64_t first)
{
	na_store *st = &s->store;
	uint64_t head = s->seq;
	bool known = memcmp(hist, st->history, 16) == 0;
	if (known && seq > head)
		return false; /* it has entries we do not */
	for (uint32_t i = 0; !known && i < st->chain_len; i++)
		if (memcmp(hist, st->chain + i * 24, 16) == 0) {
			uint64_t end = na_be64_get(st->chain + i * 24 + 16);
			if (seq > end)
				return false; /* diverged after the fork */
			known = true;
		}
	if (!known || st->snapshot_incomplete)
		return false;
	if (seq == head)
		return true;
	return first != 0 && seq + 1 >= first; /* every entry after seq is still here */
}

void na_repl_start(na_conn *c, uint32_t msgid, na_mp *r, uint32_t nparams, bool subscribe)
{
	na_server *s = c->srv;
	const char *m = subscribe ? "subscribe" : "replicate";
	if (c->sender) {
		na_reply_error(c, msgid, NA_CODE_BAD_REQUEST, "%s: this connection already streams", m);
		return;
	}
	if (!subscribe && s->store.snapshot_incomplete) {
		na_reply_error(c, msgid, NA_CODE_UNAVAILABLE, "%s: this server has no complete copy yet", m);
		return;
	}
	const uint8_t *hist = NULL;
	uint64_t seq = 0;
	bool have_seq = false;
	uint32_t n = 0;
	if (nparams != 1 || na_mp_peek(r) != NA_MP_MAP || na_mp_map(r, &n)) {
		na_reply_error(c, msgid, NA_CODE_BAD_REQUEST, "%s: expected one map parameter", m);
		return;
	}
	for (uint32_t i = 0; i < n; i++) {
		const char *k;
		uint32_t kn, bn;
		if (na_mp_str(r, &k, &kn)) {
			na_reply_error(c, msgid, NA_CODE_BAD_REQUEST, "%s: keys must be strings", m);
			return;
		}
		if (na_mp_streq(k, kn, "history")) {
			if (na_mp_peek(r) == NA_MP_NIL) {
				na_mp_nil(r);
				continue;
			}
			if (na_mp_bin(r, &hist, &bn) || bn != 16) {
				na_reply_error(c, msgid, NA_CODE_BAD_REQUEST, "%s: history must be 16 bytes", m);
				return;
			}
		} else if (na_mp_streq(k, kn, "seq")) {
			if (na_mp_u64(r, &seq)) {
				na_reply_error(c, msgid, NA_CODE_BAD_REQUEST, "%s: seq must be an unsigned integer", m);
				return;
			}
			have_seq = true;
		} else if (na_mp_skip(r)) {
			na_reply_error(c, msgid, NA_CODE_BAD_REQUEST, "%s: malformed parameter", m);
			return;
		}
	}
	MDB_txn *txn;
	uint64_t first = 0;
	if (na_store_rbegin(&s->store, &txn) == 0) {
		na_store_log_first(&s->store, txn, &first);
		na_store_rend(&s->store, txn);
	}
	bool stream;
	if (subscribe) {
		if (!have_seq)
			seq = s->seq; /* from now on */
		if (hist && memcmp(hist, s->store.history, 16) != 0 && !can_stream(s, hist, seq, first)) {
			na_reply_error(c, msgid, NA_CODE_BAD_REQUEST,
				       "subscribe: position is on another history");
			return;
		}
		if (seq > s->seq || (seq < s->seq && (first == 0 || seq + 1 < first))) {
			na_reply_error(c, msgid, NA_CODE_NOT_FOUND,
				       "subscribe: seq %llu is outside the log (%llu..%llu); read the archive "
				       "with range and subscribe from the seq stats reports",
				       (unsigned long long)seq, (unsigned long long)(first ? first - 1 : s->seq),
				       (unsigned long long)s->seq);
			return;
		}
		stream = true;
	} else {
		stream = hist && have_seq && can_stream(s, hist, seq, first);
	}
	na_sender *x = calloc(1, sizeof *x);
	if (!x) {
		na_reply_error(c, msgid, NA_CODE_INTERNAL, "out of memory");
		return;
	}
	x->c = c;
	x->srv = s;
	x->subscribe = subscribe;
	x->started_ms = now_ms();
	if (stream) {
		x->state = S_STREAM;
		x->next_seq = seq + 1;
		x->acked_seq = seq;
	} else {
		x->state = S_SNAPSHOT;
		x->snap_seq = s->seq;
		x->acked_seq = 0;
	}
	c->sender = x;
	x->next = s->senders;
	s->senders = x;
	/* the reply: how the stream will go */
	msgpack_packer pk;
	msgpack_packer_init(&pk, &c->out, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 4);
	msgpack_pack_uint8(&pk, NA_RPC_RESPONSE);
	msgpack_pack_uint32(&pk, msgid);
	msgpack_pack_nil(&pk);
	msgpack_pack_map(&pk, stream ? 5 : 6);
	na_mp_pack_cstr(&pk, "mode");
	na_mp_pack_cstr(&pk, stream ? "stream" : "snapshot");
	na_mp_pack_cstr(&pk, "history");
	pack_bin(&pk, s->store.history, 16);
	na_mp_pack_cstr(&pk, "chain");
	pack_bin(&pk, s->store.chain, (size_t)s->store.chain_len * 24);
	na_mp_pack_cstr(&pk, "seq");
	msgpack_pack_uint64(&pk, stream ? seq : x->snap_seq);
	na_mp_pack_cstr(&pk, "head");
	msgpack_pack_uint64(&pk, s->seq);
	if (!stream) {
		na_mp_pack_cstr(&pk, "hash_key");
		pack_bin(&pk, s->store.hash_key, 16);
	}
	log_info("%s: %s %s from seq %llu", c->peer, subscribe ? "subscribed" : "follower attached",
		 stream ? "streaming" : "snapshot", (unsigned long long)(stream ? seq : x->snap_seq));
	na_repl_pump(x);
}

/* ---- producing batches ------------------------------------------------ */

static void notify_head(msgpack_packer *pk, const char *method, uint32_t nparams)
{
	msgpack_pack_array(pk, 3);
	msgpack_pack_uint8(pk, NA_RPC_NOTIFY);
	na_mp_pack_cstr(pk, method);
	msgpack_pack_array(pk, nparams);
}

static int send_dict(na_sender *x, MDB_txn *txn, uint32_t id)
{
	uint8_t ib[4] = { (uint8_t)(id >> 24), (uint8_t)(id >> 16), (uint8_t)(id >> 8), (uint8_t)id };
	MDB_val k = { 4, ib }, v;
	int rc = mdb_get(txn, x->srv->store.dicts, &k, &v);
	if (rc)
		return rc;
	msgpack_packer pk;
	msgpack_packer_init(&pk, &x->c->out, msgpack_sbuffer_write);
	notify_head(&pk, "dict", 2);
	msgpack_pack_uint32(&pk, id);
	pack_bin(&pk, v.mv_data, v.mv_size);
	return 0;
}

/* One chunk of a snapshot. 1: more to do, 0: done for now, <0: error. */
static int snap_chunk(na_sender *x)
{
	na_store *st = &x->srv->store;
	MDB_txn *txn;
	MDB_cursor *cur;
	int rc = na_store_rbegin(st, &txn);
	if (rc)
		return -1;
	/* the head these rows reflect: once the follower has applied the log
	 * up to the last chunk's head, its fuzzy copy is exact */
	uint64_t head = 0;
	if ((rc = na_meta_get_u64(st, txn, "seq", &head)) ||
	    (rc = mdb_cursor_open(txn, st->articles, &cur))) {
		na_store_rend(st, txn);
		return -1;
	}
	msgpack_sbuffer rows;
	msgpack_sbuffer_init(&rows);
	msgpack_packer rp;
	msgpack_packer_init(&rp, &rows, msgpack_sbuffer_write);
	MDB_val k, v;
	uint32_t n = 0;
	na_block *blk = malloc(sizeof *blk);
	if (!blk) {
		mdb_cursor_close(cur);
		na_store_rend(st, txn);
		msgpack_sbuffer_destroy(&rows);
		return -1;
	}
	if (x->cursor_set) {
		/* cursor is the last article shipped; the compactor may have
		 * packed it with later ones since: resend such a block whole
		 * (the follower keeps what it already has) */
		k.mv_size = NA_KEY_BYTES;
		k.mv_data = x->cursor.b;
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		if (rc == 0 && memcmp(k.mv_data, x->cursor.b, NA_KEY_BYTES) == 0) {
			if (!na_rec_is_block(v.mv_data, v.mv_size))
				rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
		} else if (rc == 0 || rc == MDB_NOTFOUND) {
			MDB_val pk, pv;
			int pr = mdb_cursor_get(cur, &pk, &pv, rc == 0 ? MDB_PREV : MDB_LAST);
			na_key pl;
			if (pr == 0 && na_rec_is_block(pv.mv_data, pv.mv_size) &&
			    na_store_entry_last(st, &pk, &pv, &pl) == 0 &&
			    memcmp(pl.b, x->cursor.b, NA_KEY_BYTES) > 0) {
				k = pk;
				v = pv;
				rc = 0;
			} else if (pr == 0 && rc == 0) {
				rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
			}
		}
	} else {
		rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	}
	while (rc == 0 && n < CHUNK_ITEMS && rows.size < CHUNK_BYTES) {
		na_rec r;
		na_key last;
		if (k.mv_size != NA_KEY_BYTES || na_store_entry_last(st, &k, &v, &last)) {
			rc = -1;
			break;
		}
		if (na_rec_is_block(v.mv_data, v.mv_size)) {
			if (na_block_parse(st->codec, v.mv_data, v.mv_size, blk)) {
				rc = -1;
				break;
			}
			r.fmt = blk->kind;
			r.dict = blk->dict;
		} else if (na_rec_parse(st->codec, v.mv_data, v.mv_size, &r)) {
			rc = -1;
			break;
		}
		while (r.fmt == NA_REC_ZSTD_DICT && x->dict_sent < r.dict) {
			if (send_dict(x, txn, x->dict_sent + 1) != 0 && x->dict_sent + 1 == r.dict) {
				rc = -1;
				break;
			}
			x->dict_sent++;
		}
		if (rc)
			break;
		msgpack_pack_array(&rp, 2);
		pack_bin(&rp, k.mv_data, NA_KEY_BYTES);
		pack_bin(&rp, v.mv_data, v.mv_size);
		x->cursor = last;
		x->cursor_set = true;
		n++;
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	free(blk);
	bool done = rc == MDB_NOTFOUND;
	uint32_t cur_dict = 0;
	if (done) {
		/* the dictionary new records use, even if no record uses it yet */
		uint64_t d = 0;
		na_meta_get_u64(st, txn, "dict", &d);
		cur_dict = (uint32_t)d;
		while (x->dict_sent < cur_dict) {
			send_dict(x, txn, x->dict_sent + 1);
			x->dict_sent++;
		}
	}
	mdb_cursor_close(cur);
	na_store_rend(st, txn);
	if (rc != 0 && !done) {
		msgpack_sbuffer_destroy(&rows);
		return -1;
	}
	msgpack_packer pk;
	msgpack_packer_init(&pk, &x->c->out, msgpack_sbuffer_write);
	if (n) {
		notify_head(&pk, "rows", 1);
		msgpack_pack_array(&pk, n);
		na_mp_pack_raw(&pk, rows.data, rows.size);
		x->rows_sent += n;
	}
	msgpack_sbuffer_destroy(&rows);
	if (done) {
		notify_head(&pk, "snapshot_end", 3);
		msgpack_pack_uint64(&pk, x->snap_seq);
		msgpack_pack_uint32(&pk, cur_dict);
		msgpack_pack_uint64(&pk, head > x->snap_seq ? head : x->snap_seq);
		x->state = S_STREAM;
		x->next_seq = x->snap_seq + 1;
		log_info("%s: snapshot sent (%llu articles), streaming from %llu", x->c->peer,
			 (unsigned long long)x->rows_sent, (unsigned long long)x->next_seq);
	}
	return 1;
}

/* One batch of log entries. 1: more to do, 0: nothing new, <0: error. */
static int log_chunk(na_sender *x)
{
	na_server *s = x->srv;
	na_store *st = &s->store;
	if (x->next_seq > s->seq)
		return 0;
	MDB_txn *txn;
	MDB_cursor *cur;
	if (na_store_rbegin(st, &txn))
		return -1;
	if (mdb_cursor_open(txn, st->log, &cur)) {
		na_store_rend(st, txn);
		return -1;
	}
	uint8_t kb[8];
	na_be64_put(kb, x->next_seq);
	MDB_val k = { 8, kb }, v;
	int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY);
	if (rc == MDB_NOTFOUND) {
		/* trimmed while we were away: never skip, start over */
		mdb_cursor_close(cur);
		na_store_rend(st, txn);
		log_warn("%s: log entry %llu is no longer retained; dropping the link", x->c->peer,
			 (unsigned long long)x->next_seq);
		return -1;
	}
	msgpack_sbuffer ents;
	msgpack_sbuffer_init(&ents);
	msgpack_packer ep;
	msgpack_packer_init(&ep, &ents, msgpack_sbuffer_write);
	uint32_t n = 0;
	na_buf dec = { 0 }, blkbuf = { 0 };
	na_block *blk = malloc(sizeof *blk);
	bool have_blk = false;
	const uint8_t *blk_rec = NULL;
	while (rc == 0 && n < CHUNK_ITEMS && ents.size < CHUNK_BYTES) {
		uint64_t seq = k.mv_size == 8 ? na_be64_get(k.mv_data) : 0;
		const uint8_t *e = v.mv_data;
		if (seq != x->next_seq || v.mv_size < 1) {
			rc = -1;
			break;
		}
		if (e[0] == 'P' && (v.mv_size == 17 || v.mv_size == 33)) {
			/* the version named, wherever it is stored now: a single
			 * record ships as stored; an article the compactor packed
			 * into a block ships as a raw single record (the follower
			 * compacts on its own). Consecutive entries usually fall in
			 * one block, so the last decoded block is kept. */
			na_key ak;
			memcpy(ak.b, e + 1, NA_KEY_BYTES);
			na_loc loc;
			const uint8_t *art = NULL, *recp = NULL;
			size_t artlen = 0, reclen = 0;
			int gr = blk ? na_store_locate(st, txn, &ak, &loc, blk) : -ENOMEM;
			if (gr == 0 && loc.block) {
				if (!have_blk || blk_rec != loc.rec) {
					have_blk = false;
					if (blkbuf.cap < blk->raw_len) {
						uint8_t *nb = realloc(blkbuf.data, blk->raw_len);
						if (!nb) {
							rc = -1;
							break;
						}
						blkbuf.data = nb;
						blkbuf.cap = blk->raw_len;
					}
					if (na_block_decode(st->codec, blk, blkbuf.data, blkbuf.cap) == 0) {
						have_blk = true;
						blk_rec = loc.rec;
					} else {
						gr = MDB_CORRUPTED;
					}
				}
				if (gr == 0) {
					art = blkbuf.data + blk->m[loc.member].off;
					artlen = blk->m[loc.member].len;
				}
			} else if (gr == 0) {
				recp = loc.rec;
				reclen = loc.rec_len;
			}
			na_rec rh;
			/* The bytes shipped are today's: a record re-encoded after a
			 * dictionary appeared may name a dictionary whose 'Z' entry
			 * comes later in the log. Send such dictionaries first. */
			if (!x->subscribe && recp && na_rec_parse(st->codec, recp, reclen, &rh) == 0 &&
			    rh.fmt == NA_REC_ZSTD_DICT)
				while (x->dict_sent < rh.dict) {
					if (send_dict(x, txn, x->dict_sent + 1) != 0 &&
					    x->dict_sent + 1 == rh.dict) {
						rc = -1;
						break;
					}
					x->dict_sent++;
				}
			if (rc)
				break;
			if (x->subscribe && recp) {
				if (na_store_decode(st, recp, reclen, &dec.data, &dec.cap, &dec.len))
					gr = MDB_CORRUPTED;
				art = dec.data;
				artlen = dec.len;
			}
			if (gr != 0 && gr != MDB_NOTFOUND) {
				/* nil would say "removed since": the follower would drop
				 * an article the primary still has. Stop the link
				 * instead; it retries from here when it reconnects. */
				log_error("replication: cannot read the version of entry %llu: %s",
					  (unsigned long long)seq,
					  gr == -ENOMEM ? "out of memory" : mdb_strerror(gr));
				rc = -1;
				break;
			}
			msgpack_pack_array(&ep, 5);
			msgpack_pack_uint64(&ep, seq);
			na_mp_pack_cstr(&ep, "P");
			pack_bin(&ep, e + 1, NA_KEY_BYTES);
			if (v.mv_size == 33)
				pack_bin(&ep, e + 17, NA_KEY_BYTES);
			else
				msgpack_pack_nil(&ep);
			if (gr != 0) {
				msgpack_pack_nil(&ep);
			} else if (x->subscribe) {
				na_mp_pack_raw(&ep, art, artlen);
			} else if (recp) {
				pack_bin(&ep, recp, reclen);
			} else {
				/* a raw single record: format byte, varint length, bytes */
				uint8_t h[6];
				size_t hn = 0;
				uint32_t l = (uint32_t)artlen;
				h[hn++] = NA_REC_RAW;
				while (l >= 0x80) {
					h[hn++] = (uint8_t)(l | 0x80);
					l >>= 7;
				}
				h[hn++] = (uint8_t)l;
				msgpack_pack_bin(&ep, hn + artlen);
				msgpack_pack_bin_body(&ep, h, hn);
				msgpack_pack_bin_body(&ep, art, artlen);
			}
		} else if (e[0] == 'D' && v.mv_size == 17) {
			msgpack_pack_array(&ep, 3);
			msgpack_pack_uint64(&ep, seq);
			na_mp_pack_cstr(&ep, "D");
			pack_bin(&ep, e + 1, NA_KEY_BYTES);
		} else if (e[0] == 'Z' && v.mv_size == 5) {
			uint32_t id = (uint32_t)e[1] << 24 | (uint32_t)e[2] << 16 | (uint32_t)e[3] << 8 | e[4];
			uint8_t ib[4] = { e[1], e[2], e[3], e[4] };
			MDB_val dk = { 4, ib }, dv;
			if (mdb_get(txn, st->dicts, &dk, &dv)) {
				rc = -1;
				break;
			}
			msgpack_pack_array(&ep, 4);
			msgpack_pack_uint64(&ep, seq);
			na_mp_pack_cstr(&ep, "Z");
			msgpack_pack_uint32(&ep, id);
			if (x->subscribe)
				msgpack_pack_nil(&ep); /* feed readers get articles decoded */
			else
				pack_bin(&ep, dv.mv_data, dv.mv_size);
		} else {
			rc = -1;
			break;
		}
		n++;
		x->next_seq++;
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	free(dec.data);
	free(blkbuf.data);
	free(blk);
	mdb_cursor_close(cur);
	na_store_rend(st, txn);
	if (rc != 0 && rc != MDB_NOTFOUND) {
		msgpack_sbuffer_destroy(&ents);
		log_error("%s: log entry %llu is malformed", x->c->peer, (unsigned long long)x->next_seq);
		return -1;
	}
	msgpack_packer pk;
	msgpack_packer_init(&pk, &x->c->out, msgpack_sbuffer_write);
	notify_head(&pk, "log", 3);
	msgpack_pack_array(&pk, n);
	na_mp_pack_raw(&pk, ents.data, ents.size);
	msgpack_pack_uint64(&pk, s->seq);
	msgpack_pack_uint64(&pk, now_ms());
	msgpack_sbuffer_destroy(&ents);
	return x->next_seq <= s->seq ? 1 : 0;
}

void na_repl_pump(na_sender *x)
{
	na_conn *c = x->c;
	na_server *s = x->srv;
	size_t cap = s->cfg.output_queue_bytes / 2;
	bool room;
	int passes = 0;
again:
	room = true;
	while (!c->closing && (room = c->out.size + c->out_queued < cap)) {
		int more;
		if (x->state == S_SNAPSHOT) {
			if (x->rows_sent - x->rows_acked >= WINDOW_ROWS)
				break;
			more = snap_chunk(x);
		} else {
			if (x->next_seq - 1 - x->acked_seq >= WINDOW_ENTRIES && !x->subscribe)
				break;
			/* a feed reader that never acknowledges is paced by its
			 * socket alone (the output cap above), never stalled */
			if (x->subscribe && x->acks &&
			    x->next_seq - 1 - x->acked_seq >= WINDOW_ENTRIES)
				break;
			more = log_chunk(x);
		}
		if (more < 0) {
			na_conn_flush(c);
			na_conn_close(c);
			return;
		}
		if (more == 0)
			break;
	}
	if (!room && !c->closing && ++passes == PUMP_PASSES) {
		/* enough for one turn of the loop: the rest follows from the
		 * write callback, after other clients had theirs */
		na_conn_flush_deferred(c);
		return;
	}
	na_conn_flush(c);
	/* Stopped for room, and the socket took it all at once: no write is
	 * queued, so no write callback will pump again (on a fast link a
	 * snapshot used to wait for the follower's next ack). Go on. */
	if (!room && !c->closing && c->out.size + c->out_queued < cap)
		goto again;
}

/* ---- acknowledgements, waits, parked reads ---------------------------- */

static uint32_t followers_at(na_server *s, uint64_t seq)
{
	uint32_t n = 0;
	for (na_sender *x = s->senders; x; x = x->next)
		if (!x->subscribe && x->state == S_STREAM && x->acked_seq >= seq)
			n++;
	return n;
}

static void finish_wait(na_server *s, na_wait *w, uint32_t got)
{
	(void)s;
	na_conn *c = w->c;
	if (!c->closing) {
		msgpack_packer pk;
		msgpack_packer_init(&pk, &c->out, msgpack_sbuffer_write);
		msgpack_pack_array(&pk, 4);
		msgpack_pack_uint8(&pk, NA_RPC_RESPONSE);
		msgpack_pack_uint32(&pk, w->msgid);
		msgpack_pack_nil(&pk);
		if (w->batch) {
			msgpack_pack_map(&pk, 2);
			na_mp_pack_cstr(&pk, "results");
			na_mp_pack_raw(&pk, w->body, w->len);
		} else {
			msgpack_pack_map(&pk, 4);
			na_mp_pack_raw(&pk, w->body, w->len);
		}
		na_mp_pack_cstr(&pk, "replicas");
		msgpack_pack_uint32(&pk, got);
	}
	free(w->body);
	free(w);
	na_conn_request_done(c);
}

static void check_waits(na_server *s, bool timeouts)
{
	/* Unlink every wait that is over first, then finish them: finishing one
	 * lets its connection run the requests it had buffered, which may close
	 * another connection and so come back here and free waits of the list
	 * being walked. */
	uint64_t now = uv_now(s->loop);
	na_wait **pp = &s->waits, *done = NULL, **tail = &done;
	while (*pp) {
		na_wait *w = *pp;
		w->got = followers_at(s, w->seq);
		if (w->got >= w->need || (timeouts && now >= w->deadline) || w->c->closing ||
		    s->stopping) {
			*pp = w->next;
			w->next = NULL;
			*tail = w;
			tail = &w->next;
			continue;
		}
		pp = &w->next;
	}
	while (done) {
		na_wait *w = done;
		done = w->next;
		finish_wait(s, w, w->got);
	}
}

void na_repl_wait(na_conn *c, uint32_t msgid, uint64_t seq, uint32_t need, uint32_t timeout_ms,
		  bool batch, const char *body, size_t len)
{
	na_server *s = c->srv;
	na_wait *w = calloc(1, sizeof *w);
	char *b = malloc(len ? len : 1);
	if (!w || !b) {
		free(w);
		free(b);
		na_reply_error(c, msgid, NA_CODE_INTERNAL, "out of memory");
		return;
	}
	memcpy(b, body, len);
	*w = (na_wait){ .c = c, .msgid = msgid, .seq = seq, .need = need,
			.deadline = uv_now(s->loop) + timeout_ms, .batch = batch, .body = b, .len = len };
	c->pending++;
	c->refs++;
	s->inflight++;
	w->next = s->waits;
	s->waits = w;
	check_waits(s, false);
}

void na_repl_ack(na_conn *c, na_mp *r, uint32_t nparams)
{
	na_sender *x = c->sender;
	uint64_t seq, rows = 0;
	if (!x || nparams < 1 || na_mp_u64(r, &seq))
		return;
	if (nparams >= 2 && na_mp_u64(r, &rows))
		return;
	x->acks = true;
	/* nobody can have applied what was not sent yet */
	if (x->state == S_STREAM && seq > x->next_seq - 1)
		seq = x->next_seq - 1;
	if (x->state == S_SNAPSHOT)
		seq = 0;
	if (rows > x->rows_sent)
		rows = x->rows_sent;
	if (seq > x->acked_seq)
		x->acked_seq = seq;
	if (rows > x->rows_acked)
		x->rows_acked = rows;
	if (x->acked_seq >= x->srv->seq)
		x->behind_since = 0;
	check_waits(x->srv, false);
	na_repl_pump(x);
}

/* Answers the requests parked on *list that position `at` now covers (by
 * running them), or whose deadline passed (timeouts) or whose connection
 * is closing (with TIMEOUT naming `what`). At shutdown every one is
 * answered; dispatch_stopping says whether covered ones still run then. */
static void wake_list(na_server *s, na_parked **list, uint64_t at, bool timeouts,
		      bool dispatch_stopping, const char *what)
{
	uint64_t now = uv_now(s->loop);
	na_parked **pp = list;
	na_parked *ready = NULL;
	while (*pp) {
		na_parked *p = *pp;
		if (p->min_seq <= at || (timeouts && now >= p->deadline) || p->c->closing ||
		    s->stopping) {
			*pp = p->next;
			p->next = ready;
			ready = p;
			continue;
		}
		pp = &p->next;
	}
	while (ready) {
		na_parked *p = ready;
		ready = p->next;
		na_conn *c = p->c;
		c->parked_bytes -= p->len;
		if (!c->closing) {
			if (p->min_seq <= at && (dispatch_stopping || !s->stopping))
				na_dispatch(c, p->msg, p->len);
			else
				na_reply_error(c, p->msgid, NA_CODE_TIMEOUT,
					       "%smin_seq %llu not reached in time (at %llu)", what,
					       (unsigned long long)p->min_seq, (unsigned long long)at);
		}
		free(p->msg);
		free(p);
		na_conn_request_done(c);
	}
}

static void wake_parked(na_server *s, bool timeouts)
{
	wake_list(s, &s->parked, s->seq, timeouts, true, "");
}

/* Parks a copy of the request on *list until `covered` reaches min_seq;
 * 0 when it already has (run it now), 1 when parked or answered. */
static int park_on(na_parked **list, uint64_t covered, na_conn *c, const uint8_t *msg,
		   size_t len, uint32_t msgid, uint64_t min_seq, uint32_t timeout_ms)
{
	na_server *s = c->srv;
	if (min_seq <= covered)
		return 0;
	na_parked *p = calloc(1, sizeof *p);
	uint8_t *m = malloc(len);
	if (!p || !m) {
		free(p);
		free(m);
		na_reply_error(c, msgid, NA_CODE_INTERNAL, "out of memory");
		return 1;
	}
	memcpy(m, msg, len);
	*p = (na_parked){ .c = c, .msg = m, .len = len, .msgid = msgid, .min_seq = min_seq,
			  .deadline = uv_now(s->loop) + timeout_ms };
	c->pending++;
	c->refs++;
	c->parked_bytes += len;
	s->inflight++;
	p->next = *list;
	*list = p;
	return 1;
}

int na_repl_park(na_conn *c, const uint8_t *msg, size_t len, uint32_t msgid, uint64_t min_seq,
		 uint32_t timeout_ms)
{
	return park_on(&c->srv->parked, c->srv->seq, c, msg, len, msgid, min_seq, timeout_ms);
}

/* Searches wait for the index (index.c) the same way reads wait for the
 * log: parked on their own list, answered when the index covers their
 * min_seq, or with TIMEOUT. */
/* The indexer hurries for the searches still parked, and only for them:
 * min_seq is the client's, so a far-off one must stop counting once its
 * search has timed out. */
static void ix_hurry_update(na_server *s)
{
	uint64_t want = 0;
	for (const na_parked *p = s->ix_parked; p; p = p->next)
		if (p->min_seq > want)
			want = p->min_seq;
	na_indexer_hurry(s->indexer, want);
}

int na_repl_park_index(na_conn *c, const uint8_t *msg, size_t len, uint32_t msgid,
		       uint64_t min_seq, uint32_t timeout_ms)
{
	int rc = park_on(&c->srv->ix_parked, na_indexer_seq(c->srv->indexer), c, msg, len, msgid,
			 min_seq, timeout_ms);
	if (rc)
		ix_hurry_update(c->srv);
	return rc;
}

void na_repl_wake_index(na_server *s, bool timeouts)
{
	bool had = s->ix_parked != NULL;
	wake_list(s, &s->ix_parked, na_indexer_seq(s->indexer), timeouts, false,
		  "search: the index: ");
	if (had)
		ix_hurry_update(s);
}

/* ---- events ------------------------------------------------------------ */

void na_repl_committed(na_server *s, uint64_t seq)
{
	if (seq > s->seq)
		s->seq = seq;
	uint64_t now = uv_now(s->loop);
	for (na_sender *x = s->senders, *next; x; x = next) {
		next = x->next; /* pump may close and unlink */
		if (x->state == S_STREAM && x->acked_seq < s->seq && !x->behind_since)
			x->behind_since = now ? now : 1;
		na_repl_pump(x);
	}
	if (s->parked)
		wake_parked(s, false);
}

void na_repl_conn_closed(na_conn *c)
{
	na_sender *x = c->sender;
	if (!x)
		return;
	na_server *s = c->srv;
	for (na_sender **pp = &s->senders; *pp; pp = &(*pp)->next)
		if (*pp == x) {
			*pp = x->next;
			break;
		}
	log_info("%s: %s detached at seq %llu", c->peer, x->subscribe ? "subscriber" : "follower",
		 (unsigned long long)x->acked_seq);
	c->sender = NULL;
	free(x);
	check_waits(s, false);
}

static void trim_done(na_wjob *j)
{
	free(j);
}

void na_repl_tick(na_server *s)
{
	uint64_t wall = now_ms();
	for (na_sender *x = s->senders; x; x = x->next) {
		if (x->c->closing)
			continue;
		msgpack_packer pk;
		msgpack_packer_init(&pk, &x->c->out, msgpack_sbuffer_write);
		notify_head(&pk, "heartbeat", 2);
		msgpack_pack_uint64(&pk, s->seq);
		msgpack_pack_uint64(&pk, wall);
		na_conn_flush(x->c);
	}
	check_waits(s, true);
	wake_parked(s, true);
	/* age-based retention, once a minute */
	uint64_t now = uv_now(s->loop);
	if (!s->stopping && now - s->last_trim_ms >= 60000) {
		s->last_trim_ms = now;
		na_wjob *j = calloc(1, sizeof *j);
		if (j) {
			j->op = NA_WOP_TRIM;
			j->now_ms = wall;
			j->max_age_ms = (uint64_t)s->cfg.log_retention_age * 1000;
			j->done = trim_done;
			j->arg = j;
			na_writer_submit(&s->writer, j);
		}
	}
}

void na_repl_shutdown(na_server *s)
{
	check_waits(s, true);
	wake_parked(s, true);
	na_repl_wake_index(s, true);
}

void na_repl_stats(na_server *s, msgpack_packer *pk)
{
	uint32_t n = 0;
	for (na_sender *x = s->senders; x; x = x->next)
		n++;
	msgpack_pack_array(pk, n);
	uint64_t now = uv_now(s->loop);
	for (na_sender *x = s->senders; x; x = x->next) {
		msgpack_pack_map(pk, 7);
		na_mp_pack_cstr(pk, "address");
		na_mp_pack_cstr(pk, x->c->peer);
		na_mp_pack_cstr(pk, "kind");
		na_mp_pack_cstr(pk, x->subscribe ? "subscriber" : "follower");
		na_mp_pack_cstr(pk, "state");
		na_mp_pack_cstr(pk, x->state == S_SNAPSHOT ? "snapshot" : "streaming");
		na_mp_pack_cstr(pk, "acked_seq");
		msgpack_pack_uint64(pk, x->acked_seq);
		na_mp_pack_cstr(pk, "lag_entries");
		msgpack_pack_uint64(pk, s->seq > x->acked_seq ? s->seq - x->acked_seq : 0);
		na_mp_pack_cstr(pk, "lag_bytes");
		msgpack_pack_uint64(pk, x->c->out.size + x->c->out_queued);
		na_mp_pack_cstr(pk, "lag_seconds");
		msgpack_pack_double(pk, x->behind_since && x->acked_seq < s->seq
					    ? (double)(now - x->behind_since) / 1000.0 : 0.0);
	}
}

void na_repl_metrics(na_server *s, FILE *f)
{
	uint64_t now = uv_now(s->loop);
	fputs("# HELP newsarch_follower_acked_seq Position each connected follower acknowledged.\n"
	      "# TYPE newsarch_follower_acked_seq gauge\n", f);
	for (na_sender *x = s->senders; x; x = x->next)
		fprintf(f, "newsarch_follower_acked_seq{address=\"%s\",kind=\"%s\"} %llu\n", x->c->peer,
			x->subscribe ? "subscriber" : "follower", (unsigned long long)x->acked_seq);
	fputs("# HELP newsarch_follower_lag_entries Entries a follower is behind.\n"
	      "# TYPE newsarch_follower_lag_entries gauge\n", f);
	for (na_sender *x = s->senders; x; x = x->next)
		fprintf(f, "newsarch_follower_lag_entries{address=\"%s\",kind=\"%s\"} %llu\n", x->c->peer,
			x->subscribe ? "subscriber" : "follower",
			(unsigned long long)(s->seq > x->acked_seq ? s->seq - x->acked_seq : 0));
	fputs("# HELP newsarch_follower_lag_seconds How long a follower has been behind.\n"
	      "# TYPE newsarch_follower_lag_seconds gauge\n", f);
	for (na_sender *x = s->senders; x; x = x->next)
		fprintf(f, "newsarch_follower_lag_seconds{address=\"%s\",kind=\"%s\"} %.3f\n", x->c->peer,
			x->subscribe ? "subscriber" : "follower",
			x->behind_since && x->acked_seq < s->seq ? (double)(now - x->behind_since) / 1000.0
								 : 0.0);
}
