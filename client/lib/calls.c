/*
 * calls.c - the methods' parameter encoding and result decoding, shared by
 * the synchronous client and the libuv adapter; address parsing.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- encoding ------------------------------------------------------- */

#define PK_INIT(sb)                                                  \
	msgpack_packer pk;                                           \
	msgpack_packer_init(&pk, (sb), msgpack_sbuffer_write);       \
	int bad = 0

#define PK_DONE return bad ? NA_ENOMEM : 0

int na__enc_names(msgpack_sbuffer *sb, const char *const *names, size_t n)
{
	if (n > UINT32_MAX)
		return NA_EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!names[i])
			return NA_EINVAL;
	PK_INIT(sb);
	bad |= msgpack_pack_array(&pk, n);
	for (size_t i = 0; i < n && !bad; i++)
		bad |= na_mp_pack_cstr(&pk, names[i]);
	PK_DONE;
}

int na__enc_put(msgpack_sbuffer *sb, const na_article *a)
{
	PK_INIT(sb);
	bad |= msgpack_pack_array(&pk, 1);
	bad |= msgpack_sbuffer_write(sb, (const char *)a->buf, a->len);
	PK_DONE;
}

int na__enc_put_batch(msgpack_sbuffer *sb, const na_article *const *as, size_t n)
{
	if (n > UINT32_MAX)
		return NA_EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!as[i])
			return NA_EINVAL;
	PK_INIT(sb);
	bad |= msgpack_pack_array(&pk, 1);
	bad |= msgpack_pack_array(&pk, n);
	for (size_t i = 0; i < n && !bad; i++)
		bad |= msgpack_sbuffer_write(sb, (const char *)as[i]->buf, as[i]->len);
	PK_DONE;
}

int na__enc_guid(msgpack_sbuffer *sb, const char *guid, size_t n, const char *const *fields,
		 size_t nfields)
{
	if (fields && nfields > NA_MAX_FIELDS)
		return NA_EINVAL;
	PK_INIT(sb);
	bad |= msgpack_pack_array(&pk, fields ? 2 : 1);
	bad |= na_mp_pack_str(&pk, guid, n);
	if (fields && !bad) {
		bad |= msgpack_pack_map(&pk, 1);
		bad |= na_mp_pack_cstr(&pk, "fields");
		if (!bad) {
			int rc = na__enc_names(sb, fields, nfields);
			if (rc)
				return rc;
		}
	}
	PK_DONE;
}

static int pack_time(msgpack_packer *pk, const na_time *t)
{
	return na_mp_pack_ts(pk, (na_ts){ t->sec, t->nsec });
}

int na__enc_count(msgpack_sbuffer *sb, const na_time *from, const na_time *to)
{
	if ((from && from->nsec > 999999999u) || (to && to->nsec > 999999999u))
		return NA_EINVAL;
	PK_INIT(sb);
	if (!from && !to) {
		bad |= msgpack_pack_array(&pk, 0);
		PK_DONE;
	}
	bad |= msgpack_pack_array(&pk, 1);
	bad |= msgpack_pack_map(&pk, (from != NULL) + (to != NULL));
	if (from) {
		bad |= na_mp_pack_cstr(&pk, "from");
		bad |= pack_time(&pk, from);
	}
	if (to) {
		bad |= na_mp_pack_cstr(&pk, "to");
		bad |= pack_time(&pk, to);
	}
	PK_DONE;
}

int na__enc_range(msgpack_sbuffer *sb, const na_range_opts *o, const uint8_t *fields_mp,
		  size_t fields_len, const na_cursor *after)
{
	if ((o->from && o->from->nsec > 999999999u) || (o->to && o->to->nsec > 999999999u))
		return NA_EINVAL;
	bool has_after = after && after->len > 0;
	uint32_t n = (o->from != NULL) + (o->to != NULL) + (o->page_size > 0) + o->reverse +
		     has_after + (fields_mp != NULL);
	PK_INIT(sb);
	bad |= msgpack_pack_array(&pk, 1);
	bad |= msgpack_pack_map(&pk, n);
	if (o->from) {
		bad |= na_mp_pack_cstr(&pk, "from");
		bad |= pack_time(&pk, o->from);
	}
	if (o->to) {
		bad |= na_mp_pack_cstr(&pk, "to");
		bad |= pack_time(&pk, o->to);
	}
	if (o->page_size > 0) {
		bad |= na_mp_pack_cstr(&pk, "limit");
		bad |= msgpack_pack_unsigned_int(&pk, o->page_size);
	}
	if (o->reverse) {
		bad |= na_mp_pack_cstr(&pk, "reverse");
		bad |= msgpack_pack_true(&pk);
	}
	if (has_after) {
		bad |= na_mp_pack_cstr(&pk, "after");
		bad |= msgpack_pack_bin(&pk, after->len);
		bad |= msgpack_pack_bin_body(&pk, after->bytes, after->len);
	}
	if (fields_mp) {
		bad |= na_mp_pack_cstr(&pk, "fields");
		bad |= msgpack_sbuffer_write(sb, (const char *)fields_mp, fields_len);
	}
	PK_DONE;
}

/* ---- decoding ------------------------------------------------------- */

int na__dec_pong(const uint8_t *res, size_t len)
{
	na_mp r;
	const char *s;
	uint32_t n;
	na_mp_init(&r, res, len);
	if (na_mp_str(&r, &s, &n) || !na_mp_streq(s, n, "pong"))
		return NA_EPROTO;
	return 0;
}

/* Reads the fields of a put result map whose count was read already. */
static int put_fields(na_mp *r, uint32_t n, na_put_result *out)
{
	bool have_status = false, have_seq = false;
	for (uint32_t i = 0; i < n; i++) {
		const char *k, *v;
		uint32_t kn, vn;
		if (na_mp_str(r, &k, &kn))
			return NA_EPROTO;
		if (na_mp_streq(k, kn, "status")) {
			if (na_mp_str(r, &v, &vn))
				return NA_EPROTO;
			if (na_mp_streq(v, vn, "created"))
				out->status = NA_PUT_CREATED;
			else if (na_mp_streq(v, vn, "updated"))
				out->status = NA_PUT_UPDATED;
			else if (na_mp_streq(v, vn, "unchanged"))
				out->status = NA_PUT_UNCHANGED;
			else
				return NA_EPROTO;
			have_status = true;
		} else if (na_mp_streq(k, kn, "seq")) {
			if (na_mp_u64(r, &out->seq))
				return NA_EPROTO;
			have_seq = true;
		} else if (na_mp_skip(r)) {
			return NA_EPROTO;
		}
	}
	out->err = 0;
	out->errmsg = "";
	return have_status && have_seq ? 0 : NA_EPROTO;
}

int na__dec_put(const uint8_t *res, size_t len, na_put_result *out)
{
	na_mp r;
	uint32_t n;
	na_mp_init(&r, res, len);
	if (na_mp_map(&r, &n))
		return NA_EPROTO;
	return put_fields(&r, n, out);
}

/* Reads an error map {"code", "message"}; *msg, *mn may stay NULL/0. */
static int error_map(na_mp *r, int *err, const char **msg, uint32_t *mn)
{
	uint32_t n;
	const char *code = NULL;
	uint32_t cn = 0;
	if (na_mp_map(r, &n))
		return NA_EPROTO;
	for (uint32_t i = 0; i < n; i++) {
		const char *k;
		uint32_t kn;
		if (na_mp_str(r, &k, &kn))
			return NA_EPROTO;
		if (na_mp_streq(k, kn, "code")) {
			if (na_mp_str(r, &code, &cn))
				return NA_EPROTO;
		} else if (na_mp_streq(k, kn, "message")) {
			if (na_mp_str(r, msg, mn))
				return NA_EPROTO;
		} else if (na_mp_skip(r)) {
			return NA_EPROTO;
		}
	}
	if (!code)
		return NA_EPROTO;
	*err = na__code_to_err(na_code_parse(code, cn));
	if (!*msg) {
		*msg = code;
		*mn = cn;
	}
	return 0;
}

int na__dec_batch(const uint8_t *res, size_t len, size_t n, na_put_result *out, char **arena)
{
	na_mp r;
	uint32_t an;
	char *ar = NULL;
	size_t used = 0;
	*arena = NULL;
	na_mp_init(&r, res, len);
	if (na_mp_array(&r, &an) || an != n)
		return NA_EPROTO;
	/* two passes: the first finds the messages' total size */
	size_t need = 0;
	for (int pass = 0; pass < 2; pass++) {
		na_mp_init(&r, res, len);
		na_mp_array(&r, &an);
		for (size_t i = 0; i < n; i++) {
			uint32_t mn;
			if (na_mp_map(&r, &mn))
				goto bad;
			/* {"error": {...}} or {"guid", "status", "seq"} */
			const uint8_t *save = r.p;
			const char *k;
			uint32_t kn;
			if (mn == 1 && !na_mp_str(&r, &k, &kn) && na_mp_streq(k, kn, "error")) {
				const char *msg = NULL;
				uint32_t ml = 0;
				int err;
				if (error_map(&r, &err, &msg, &ml))
					goto bad;
				if (pass == 0) {
					need += (size_t)ml + 1;
				} else {
					out[i].err = err;
					out[i].status = 0;
					out[i].seq = 0;
					memcpy(ar + used, msg, ml);
					ar[used + ml] = '\0';
					out[i].errmsg = ar + used;
					used += (size_t)ml + 1;
				}
				continue;
			}
			r.p = save;
			r.err = 0;
			na_put_result tmp;
			if (put_fields(&r, mn, &tmp))
				goto bad;
			if (pass == 1)
				out[i] = tmp;
		}
		if (na_mp_left(&r) != 0)
			goto bad;
		if (pass == 0 && need) {
			ar = malloc(need);
			if (!ar)
				return NA_ENOMEM;
		}
	}
	*arena = ar;
	return 0;
bad:
	free(ar);
	return NA_EPROTO;
}

int na__dec_delete(const uint8_t *res, size_t len, int *deleted, uint64_t *seq)
{
	na_mp r;
	uint32_t n;
	bool del = false, have_del = false;
	uint64_t sq = 0;
	na_mp_init(&r, res, len);
	if (na_mp_map(&r, &n))
		return NA_EPROTO;
	for (uint32_t i = 0; i < n; i++) {
		const char *k;
		uint32_t kn;
		if (na_mp_str(&r, &k, &kn))
			return NA_EPROTO;
		if (na_mp_streq(k, kn, "deleted")) {
			if (na_mp_bool(&r, &del))
				return NA_EPROTO;
			have_del = true;
		} else if (na_mp_streq(k, kn, "seq")) {
			if (na_mp_peek(&r) == NA_MP_NIL)
				na_mp_nil(&r);
			else if (na_mp_u64(&r, &sq))
				return NA_EPROTO;
		} else if (na_mp_skip(&r)) {
			return NA_EPROTO;
		}
	}
	if (!have_del)
		return NA_EPROTO;
	if (deleted)
		*deleted = del;
	if (seq)
		*seq = del ? sq : 0;
	return 0;
}

int na__dec_count(const uint8_t *res, size_t len, uint64_t *out)
{
	na_mp r;
	na_mp_init(&r, res, len);
	if (na_mp_u64(&r, out) || na_mp_left(&r))
		return NA_EPROTO;
	return 0;
}

int na__dec_stats(const uint8_t *res, size_t len, na_server_stats **out)
{
	na_server_stats *s = calloc(1, sizeof *s + len);
	if (!s)
		return NA_ENOMEM;
	uint8_t *raw = (uint8_t *)(s + 1);
	memcpy(raw, res, len);
	s->raw = raw;
	s->raw_len = len;
	static const struct {
		const char *k;
		size_t off;
	} u64s[] = {
#define F(x) { #x, offsetof(na_server_stats, x) }
		F(articles), F(raw_bytes), F(stored_bytes), F(dictionary), F(dictionary_bytes),
		F(map_size), F(map_used), F(page_bytes), F(seq), F(connections), F(requests),
		F(uptime),
#undef F
	};
	na_mp r;
	uint32_t n;
	na_mp_init(&r, raw, len);
	if (na_mp_map(&r, &n))
		goto bad;
	for (uint32_t i = 0; i < n; i++) {
		const char *k;
		uint32_t kn;
		if (na_mp_str(&r, &k, &kn))
			goto bad;
		na_mp_type t = na_mp_peek(&r);
		bool done = false;
		for (size_t j = 0; j < sizeof u64s / sizeof u64s[0] && !done; j++) {
			if (!na_mp_streq(k, kn, u64s[j].k))
				continue;
			done = true;
			if (t == NA_MP_UINT)
				na_mp_u64(&r, (uint64_t *)((char *)s + u64s[j].off));
			else
				na_mp_skip(&r);
		}
		if (done)
			continue;
		if (na_mp_streq(k, kn, "ratio") && t == NA_MP_FLOAT) {
			na_mp_f64(&r, &s->ratio);
		} else if (na_mp_streq(k, kn, "ratio") && t == NA_MP_UINT) {
			uint64_t v;
			na_mp_u64(&r, &v);
			s->ratio = (double)v;
		} else if (na_mp_streq(k, kn, "role") && t == NA_MP_STR) {
			uint32_t l;
			na_mp_str(&r, &s->role, &l);
			s->role_len = l;
		} else if (na_mp_streq(k, kn, "version") && t == NA_MP_STR) {
			uint32_t l;
			na_mp_str(&r, &s->version, &l);
			s->version_len = l;
		} else {
			na_mp_skip(&r);
		}
	}
	if (r.err || na_mp_left(&r))
		goto bad;
	*out = s;
	return 0;
bad:
	free(s);
	return NA_EPROTO;
}

void na_server_stats_free(na_server_stats *s) { free(s); }

int na_server_stats_find(const na_server_stats *s, const char *key, const uint8_t **val,
			 size_t *len)
{
	if (!s || !key || !val || !len)
		return NA_EINVAL;
	na_mp r;
	uint32_t n;
	na_mp_init(&r, s->raw, s->raw_len);
	if (na_mp_map(&r, &n))
		return NA_ENOFIELD;
	for (uint32_t i = 0; i < n; i++) {
		const char *k;
		uint32_t kn;
		const uint8_t *v;
		size_t vn;
		if (na_mp_str(&r, &k, &kn) || na_mp_raw(&r, &v, &vn))
			return NA_ENOFIELD;
		if (na_mp_streq(k, kn, key)) {
			*val = v;
			*len = vn;
			return 0;
		}
	}
	return NA_ENOFIELD;
}

int na__dec_page(const uint8_t *res, size_t len, const uint8_t **arts, size_t *arts_len,
		 uint32_t *nart, na_cursor *next)
{
	na_mp r;
	uint32_t n;
	bool have_arts = false;
	next->len = 0;
	na_mp_init(&r, res, len);
	if (na_mp_map(&r, &n))
		return NA_EPROTO;
	for (uint32_t i = 0; i < n; i++) {
		const char *k;
		uint32_t kn;
		if (na_mp_str(&r, &k, &kn))
			return NA_EPROTO;
		if (na_mp_streq(k, kn, "articles")) {
			const uint8_t *start;
			/* no limit of range or search allows more: this bounds
			 * what a caller allocates per article of the page */
			if (na_mp_array(&r, nart) || *nart > NA_RANGE_LIMIT_MAX)
				return NA_EPROTO;
			start = r.p;
			for (uint32_t j = 0; j < *nart; j++)
				if (na_mp_skip(&r))
					return NA_EPROTO;
			*arts = start;
			*arts_len = (size_t)(r.p - start);
			have_arts = true;
		} else if (na_mp_streq(k, kn, "next")) {
			if (na_mp_peek(&r) == NA_MP_NIL) {
				na_mp_nil(&r);
				next->len = 0;
			} else {
				const uint8_t *b;
				uint32_t bn;
				if (na_mp_bin(&r, &b, &bn) || bn == 0 || bn > sizeof next->bytes)
					return NA_EPROTO;
				memcpy(next->bytes, b, bn);
				next->len = bn;
			}
		} else if (na_mp_skip(&r)) {
			return NA_EPROTO;
		}
	}
	if (!have_arts || na_mp_left(&r))
		return NA_EPROTO;
	return 0;
}

int na__page_article(na_mp *r, na_article *a)
{
	const uint8_t *obj;
	size_t n;
	if (na_mp_raw(r, &obj, &n))
		return NA_EPROTO;
	int rc = na__article_index(a, obj, n);
	return rc == NA_EINVAL ? NA_EPROTO : rc;
}

/* ---- addresses ------------------------------------------------------ */

int na__addr_parse(const char *addr, na__addr *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	if (!addr)
		addr = NA_DEFAULT_ADDR;
	if (strncmp(addr, "tls://", 6) == 0) {
		addr += 6;
		out->tls = 1;
		if (strncmp(addr, "unix:", 5) == 0) {
			snprintf(err, errlen, "bad address \"tls://%s\": TLS is for TCP (use unix:/path "
					      "without tls://)", addr);
			return NA_EINVAL;
		}
	}
	if (strncmp(addr, "unix:", 5) == 0) {
		const char *path = addr + 5;
		size_t n = strlen(path);
		if (n == 0 || n >= sizeof out->path) {
			snprintf(err, errlen, "bad unix socket path in \"%s\"", addr);
			return NA_EINVAL;
		}
		out->is_unix = 1;
		memcpy(out->path, path, n + 1);
		return 0;
	}
	const char *host, *port;
	size_t hn;
	if (addr[0] == '[') {
		const char *close = strchr(addr, ']');
		if (!close || close[1] != ':') {
			snprintf(err, errlen, "bad address \"%s\": expected [v6addr]:port", addr);
			return NA_EINVAL;
		}
		host = addr + 1;
		hn = (size_t)(close - host);
		port = close + 2;
	} else {
		const char *colon = strrchr(addr, ':');
		if (!colon || memchr(addr, ':', (size_t)(colon - addr))) {
			snprintf(err, errlen, "bad address \"%s\": expected host:port, [v6addr]:port "
				 "or unix:/path", addr);
			return NA_EINVAL;
		}
		host = addr;
		hn = (size_t)(colon - addr);
		port = colon + 1;
	}
	size_t pn = strlen(port);
	char *end;
	long pv = pn ? strtol(port, &end, 10) : 0;
	if (hn == 0 || hn >= sizeof out->host || pn == 0 || pn >= sizeof out->port || *end ||
	    pv < 1 || pv > 65535 || port[0] == '+' || port[0] == '-' || port[0] == ' ') {
		snprintf(err, errlen, "bad address \"%s\": bad host or port", addr);
		return NA_EINVAL;
	}
	memcpy(out->host, host, hn);
	memcpy(out->port, port, pn + 1);
	return 0;
}
