/*
 * proto.c - the protocol core: requests out, replies in, no I/O.
 *
 * Pending calls live in an open-addressing hash table keyed by msgid
 * (linear probing, backward-shift deletion), so replies can be matched in
 * any order. Received bytes are framed with na_scan (size and depth capped
 * from headers alone) and read with na_mp.
 */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MSG_MAX 2048

typedef struct slot {
	uint32_t msgid;
	bool used;
	na_response_cb cb; /* NULL: cancelled */
	void *ud;
} slot;

struct na_proto {
	na_scan scan;
	uint8_t *in;
	size_t in_len, in_cap;
	msgpack_sbuffer out;
	size_t out_off;
	slot *tab;
	size_t cap, count, live;
	uint32_t next_id;
	int dead;
	bool in_feed;
	char errmsg[MSG_MAX];
	char msg[MSG_MAX]; /* message of the reply being dispatched */
};

/* ---- msgid table ---------------------------------------------------- */

static size_t home(const na_proto *p, uint32_t id)
{
	return (size_t)((id * 2654435761u) & (uint32_t)(p->cap - 1));
}

static slot *tab_find(na_proto *p, uint32_t id)
{
	if (p->cap == 0)
		return NULL;
	for (size_t i = home(p, id);; i = (i + 1) & (p->cap - 1)) {
		if (!p->tab[i].used)
			return NULL;
		if (p->tab[i].msgid == id)
			return &p->tab[i];
	}
}

static void tab_put(na_proto *p, slot s)
{
	size_t i = home(p, s.msgid);
	while (p->tab[i].used)
		i = (i + 1) & (p->cap - 1);
	s.used = true;
	p->tab[i] = s;
}

static int tab_grow(na_proto *p)
{
	if ((p->count + 1) * 10 <= p->cap * 7)
		return 0;
	size_t ncap = p->cap ? p->cap * 2 : 64;
	slot *old = p->tab, *nt = calloc(ncap, sizeof *nt);
	size_t ocap = p->cap;
	if (!nt)
		return NA_ENOMEM;
	p->tab = nt;
	p->cap = ncap;
	for (size_t i = 0; i < ocap; i++)
		if (old[i].used)
			tab_put(p, old[i]);
	free(old);
	return 0;
}

/* Removes the entry at s and returns it. */
static slot tab_take(na_proto *p, slot *s)
{
	slot r = *s;
	size_t mask = p->cap - 1;
	size_t hole = (size_t)(s - p->tab);
	size_t i = hole;
	p->tab[hole].used = false;
	for (;;) {
		i = (i + 1) & mask;
		if (!p->tab[i].used)
			break;
		size_t h = home(p, p->tab[i].msgid);
		/* move i into the hole unless its home lies cyclically in (hole, i] */
		bool stays = hole <= i ? (h > hole && h <= i) : (h > hole || h <= i);
		if (!stays) {
			p->tab[hole] = p->tab[i];
			p->tab[i].used = false;
			hole = i;
		}
	}
	p->count--;
	if (r.cb)
		p->live--;
	return r;
}

/* ---- lifecycle ------------------------------------------------------ */

int na_proto_new(size_t max_response_bytes, na_proto **out)
{
	if (!out)
		return NA_EINVAL;
	na_proto *p = calloc(1, sizeof *p);
	if (!p)
		return NA_ENOMEM;
	na_scan_init(&p->scan, max_response_bytes ? max_response_bytes : NA_MAX_RESPONSE_BYTES,
		     NA_MAX_DEPTH_DEFAULT);
	msgpack_sbuffer_init(&p->out);
	p->next_id = 1;
	*out = p;
	return 0;
}

static void deliver_error(slot s, int err, const char *msg)
{
	if (!s.cb)
		return;
	na_response r = { .msgid = s.msgid, .err = err, .errmsg = msg };
	s.cb(&r, s.ud);
}

void na_proto_fail(na_proto *p, int err, const char *msg)
{
	if (!p || p->dead)
		return;
	p->dead = err < 0 ? err : NA_ECONN;
	snprintf(p->errmsg, sizeof p->errmsg, "%s", msg ? msg : na_strerror(p->dead));
	/* no call can be added once dead, so this ends; callbacks may take
	 * entries themselves (cancel), hence the rescans */
	while (p->count > 0) {
		for (size_t i = 0; i < p->cap; i++)
			while (p->tab[i].used)
				deliver_error(tab_take(p, &p->tab[i]), p->dead, p->errmsg);
	}
}

void na_proto_free(na_proto *p)
{
	if (!p)
		return;
	na_proto_fail(p, NA_ECLOSED, "client closed");
	free(p->tab);
	free(p->in);
	msgpack_sbuffer_destroy(&p->out);
	free(p);
}

int na_proto_dead(const na_proto *p) { return p->dead; }
const char *na_proto_errmsg(const na_proto *p) { return p->dead ? p->errmsg : ""; }
size_t na_proto_pending(const na_proto *p) { return p->live; }

int na_proto_cancel(na_proto *p, uint32_t msgid)
{
	slot *s = tab_find(p, msgid);
	if (!s || !s->cb)
		return NA_EINVAL;
	s->cb = NULL;
	s->ud = NULL;
	p->live--;
	return 0;
}

/* ---- output --------------------------------------------------------- */

int na_proto_call(na_proto *p, const char *method, const void *params, size_t params_len,
		  na_response_cb cb, void *ud, uint32_t *msgid)
{
	if (!p || !method || !cb || (!params && params_len))
		return NA_EINVAL;
	if (p->dead)
		return p->dead;
	static const uint8_t empty[] = { 0x90 };
	if (!params) {
		params = empty;
		params_len = 1;
	}
	na_mp r;
	na_mp_init(&r, params, params_len);
	if (na_mp_peek(&r) != NA_MP_ARRAY || na_mp_skip(&r) || na_mp_left(&r) != 0)
		return NA_EINVAL;
	if (tab_grow(p))
		return NA_ENOMEM;
	uint32_t id = p->next_id;
	while (tab_find(p, id))
		id++;
	p->next_id = id + 1;

	size_t save = p->out.size;
	msgpack_packer pk;
	msgpack_packer_init(&pk, &p->out, msgpack_sbuffer_write);
	if (msgpack_pack_array(&pk, 4) || msgpack_pack_uint8(&pk, NA_RPC_REQUEST) ||
	    msgpack_pack_uint32(&pk, id) || na_mp_pack_cstr(&pk, method) ||
	    msgpack_sbuffer_write(&p->out, params, params_len)) {
		p->out.size = save;
		return NA_ENOMEM;
	}
	tab_put(p, (slot){ .msgid = id, .cb = cb, .ud = ud });
	p->count++;
	p->live++;
	if (msgid)
		*msgid = id;
	return 0;
}

void na_proto_output(na_proto *p, const uint8_t **buf, size_t *len)
{
	*buf = (const uint8_t *)p->out.data + p->out_off;
	*len = p->out.size - p->out_off;
}

void na_proto_consume(na_proto *p, size_t n)
{
	size_t left = p->out.size - p->out_off;
	if (n > left)
		n = left;
	p->out_off += n;
	if (p->out_off == p->out.size) {
		p->out_off = 0;
		p->out.size = 0;
		if (p->out.alloc > (1u << 20)) { /* give back a burst's memory */
			msgpack_sbuffer_destroy(&p->out);
			msgpack_sbuffer_init(&p->out);
		}
	} else if (p->out_off > (64u << 10) && p->out_off > p->out.size / 2) {
		memmove(p->out.data, p->out.data + p->out_off, p->out.size - p->out_off);
		p->out.size -= p->out_off;
		p->out_off = 0;
	}
}

/* ---- input ---------------------------------------------------------- */

static void proto_error(na_proto *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void proto_error(na_proto *p, const char *fmt, ...)
{
	char m[MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m, sizeof m, fmt, ap);
	va_end(ap);
	na_proto_fail(p, NA_EPROTO, m);
}

static void copy_msg(char *dst, const char *s, uint32_t n)
{
	if (n > MSG_MAX - 1)
		n = MSG_MAX - 1;
	memcpy(dst, s, n);
	dst[n] = '\0';
}

/* Handles one framed message. */
static void dispatch(na_proto *p, const uint8_t *m, size_t len)
{
	na_mp r;
	uint32_t n;
	uint64_t type, id;
	na_mp_init(&r, m, len);
	if (na_mp_array(&r, &n) || na_mp_u64(&r, &type)) {
		proto_error(p, "reply is not a MessagePack-RPC message");
		return;
	}
	if (type == NA_RPC_NOTIFY && n == 3)
		return; /* notifications are not used by this client: ignored */
	if (type != NA_RPC_RESPONSE || n != 4) {
		proto_error(p, "reply is not a response [1, msgid, error, result]");
		return;
	}
	if (na_mp_u64(&r, &id) || id > UINT32_MAX) {
		proto_error(p, "response msgid is not a 32-bit unsigned integer");
		return;
	}
	na_response resp = { .msgid = (uint32_t)id, .errmsg = "" };
	if (na_mp_peek(&r) == NA_MP_NIL) {
		na_mp_nil(&r);
	} else {
		uint32_t ne;
		const char *code = NULL;
		uint32_t code_len = 0;
		p->msg[0] = '\0';
		if (na_mp_map(&r, &ne)) {
			proto_error(p, "response %u: error is neither nil nor a map", resp.msgid);
			return;
		}
		for (uint32_t i = 0; i < ne && !r.err; i++) {
			const char *k, *v;
			uint32_t kn, vn;
			if (na_mp_str(&r, &k, &kn))
				break;
			if (na_mp_streq(k, kn, "code") && na_mp_peek(&r) == NA_MP_STR) {
				na_mp_str(&r, &code, &code_len);
			} else if (na_mp_streq(k, kn, "message") && na_mp_peek(&r) == NA_MP_STR) {
				na_mp_str(&r, &v, &vn);
				copy_msg(p->msg, v, vn);
			} else {
				na_mp_skip(&r);
			}
		}
		if (r.err || !code) {
			proto_error(p, "response %u: error map without a string code", resp.msgid);
			return;
		}
		resp.err = na__code_to_err(na_code_parse(code, code_len));
		if (!p->msg[0])
			copy_msg(p->msg, code, code_len);
		resp.errmsg = p->msg;
	}
	if (na_mp_raw(&r, &resp.result, &resp.result_len) || na_mp_left(&r) != 0) {
		proto_error(p, "response %u: malformed result", resp.msgid);
		return;
	}
	slot *s = tab_find(p, resp.msgid);
	if (!s) {
		proto_error(p, "response to msgid %u, which is not pending", resp.msgid);
		return;
	}
	slot taken = tab_take(p, s);
	if (taken.cb)
		taken.cb(&resp, taken.ud);
}

int na_proto_feed(na_proto *p, const void *data, size_t len)
{
	if (!p || (!data && len))
		return NA_EINVAL;
	if (p->dead)
		return p->dead;
	if (p->in_feed)
		return NA_EINVAL;
	if (len > SIZE_MAX - p->in_len)
		return NA_ENOMEM;
	if (p->in_len + len > p->in_cap) {
		size_t cap = p->in_cap ? p->in_cap : 4096;
		while (cap < p->in_len + len)
			cap = cap > SIZE_MAX / 2 ? p->in_len + len : cap * 2;
		uint8_t *b = realloc(p->in, cap);
		if (!b) {
			na_proto_fail(p, NA_ENOMEM, "out of memory buffering a reply");
			return p->dead;
		}
		p->in = b;
		p->in_cap = cap;
	}
	if (len)
		memcpy(p->in + p->in_len, data, len);
	p->in_len += len;

	p->in_feed = true;
	size_t off = 0;
	while (!p->dead && off < p->in_len) {
		size_t mlen = 0;
		int rc = na_scan_feed(&p->scan, p->in + off, p->in_len - off, &mlen);
		if (rc == 0)
			break;
		if (rc < 0) {
			proto_error(p, "%s", rc == NA_MP_ETOOBIG ? "reply larger than max_response_bytes"
					   : rc == NA_MP_EDEPTH ? "reply nested too deeply"
								: "reply is not valid MessagePack");
			break;
		}
		dispatch(p, p->in + off, mlen);
		off += mlen;
	}
	p->in_feed = false;
	if (p->dead) {
		p->in_len = 0;
		return p->dead;
	}
	if (off) {
		memmove(p->in, p->in + off, p->in_len - off);
		p->in_len -= off;
	}
	if (p->in_cap > (1u << 20) && p->in_len < p->in_cap / 4) {
		size_t cap = p->in_len > 65536 ? p->in_len : 65536;
		uint8_t *b = realloc(p->in, cap);
		if (b) {
			p->in = b;
			p->in_cap = cap;
		}
	}
	return 0;
}
