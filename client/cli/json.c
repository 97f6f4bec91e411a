/*
 * json.c - JSON <-> MessagePack for articles (PROTOCOL.md section 6).
 *
 * Input goes through jansson (which keeps object keys in insertion order);
 * output is written straight from the msgpack bytes with the bounded
 * na_mp reader, so key order, 64-bit unsigned integers and byte-exact
 * strings survive without an intermediate tree.
 */
#include "json.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc.h"
#include "timefmt.h"

/* ---- small helpers --------------------------------------------------- */

/* A field path for messages: "authors[2]", "meta.source.name". */
typedef struct path {
	char s[256];
	size_t n;
} path;

static size_t path_push_key(path *p, const char *k, size_t kn)
{
	size_t old = p->n;
	size_t room = sizeof p->s - 1 - p->n;
	size_t want = (p->n ? 1 : 0) + kn;
	if (want > room) {
		/* keep what fits and mark the cut with "..." */
		if (room > 4) {
			if (p->n)
				p->s[p->n++] = '.';
			size_t take = sizeof p->s - 1 - p->n - 3;
			if (take > kn)
				take = kn;
			memcpy(p->s + p->n, k, take);
			p->n += take;
			memcpy(p->s + p->n, "...", 3);
			p->n += 3;
		}
	} else {
		if (p->n)
			p->s[p->n++] = '.';
		memcpy(p->s + p->n, k, kn);
		p->n += kn;
	}
	p->s[p->n] = '\0';
	return old;
}

static size_t path_push_index(path *p, size_t i)
{
	size_t old = p->n;
	int w = snprintf(p->s + p->n, sizeof p->s - p->n, "[%zu]", i);
	if (w > 0 && (size_t)w < sizeof p->s - p->n)
		p->n += (size_t)w;
	else
		p->s[p->n] = '\0';
	return old;
}

static void path_pop(path *p, size_t old)
{
	p->n = old;
	p->s[old] = '\0';
}

__attribute__((format(printf, 4, 5)))
static int jfail(char *err, size_t errcap, int code, const char *fmt, ...)
{
	if (err && errcap) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errcap, fmt, ap);
		va_end(ap);
	}
	return code;
}

/* Prefix for a message about the value at p: "title: " or "" at the top. */
#define AT(p) ((p)->n ? (p)->s : "article"), ": "

/* A short, printable excerpt of a string for messages: at most cap - 1
 * bytes and a NUL (cap >= 4), ending in "..." when the string was cut. */
static void excerpt(char *dst, size_t cap, const char *s, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char piece[8];
		size_t len;
		if (c == '"' || c == '\\') {
			piece[0] = '\\';
			piece[1] = (char)c;
			len = 2;
		} else if (c < 0x20 || c == 0x7f) {
			len = (size_t)snprintf(piece, sizeof piece, "\\u%04x", c);
		} else {
			piece[0] = (char)c;
			len = 1;
		}
		/* keep room for "..." and the NUL unless this is the last piece */
		size_t room = i + 1 < n ? 4 : 1;
		if (o + len + room > cap) {
			memcpy(dst + o, "...", 3);
			o += 3;
			break;
		}
		memcpy(dst + o, piece, len);
		o += len;
	}
	dst[o] = '\0';
}

static int put(msgpack_sbuffer *out, const void *p, size_t n)
{
	return msgpack_sbuffer_write(out, p, n) ? NA_JSON_ENOMEM : 0;
}

static int putc1(msgpack_sbuffer *out, char c)
{
	return put(out, &c, 1);
}

static int puts0(msgpack_sbuffer *out, const char *s)
{
	return put(out, s, strlen(s));
}

/* ---- UTF-8 and base64 ---------------------------------------------- */

int na_json_utf8_valid(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;
	while (i < n) {
		unsigned char c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t k;
		uint32_t cp;
		if (c >= 0xc2 && c <= 0xdf) { k = 1; cp = c & 0x1f; }
		else if (c >= 0xe0 && c <= 0xef) { k = 2; cp = c & 0x0f; }
		else if (c >= 0xf0 && c <= 0xf4) { k = 3; cp = c & 0x07; }
		else return 0;
		if (n - i <= k)
			return 0;
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + j] & 0x3f);
		}
		if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += k + 1;
	}
	return 1;
}

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int na_json_b64_encode(msgpack_sbuffer *out, const uint8_t *p, size_t n)
{
	char q[4];
	size_t i = 0;
	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		q[0] = b64chars[v >> 18];
		q[1] = b64chars[v >> 12 & 63];
		q[2] = b64chars[v >> 6 & 63];
		q[3] = b64chars[v & 63];
		if (put(out, q, 4))
			return -1;
	}
	if (i < n) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
		q[0] = b64chars[v >> 18];
		q[1] = b64chars[v >> 12 & 63];
		q[2] = i + 1 < n ? b64chars[v >> 6 & 63] : '=';
		q[3] = '=';
		if (put(out, q, 4))
			return -1;
	}
	return 0;
}

static int b64val(char c)
{
	if (c >= 'A' && c <= 'Z') return c - 'A';
	if (c >= 'a' && c <= 'z') return c - 'a' + 26;
	if (c >= '0' && c <= '9') return c - '0' + 52;
	if (c == '+') return 62;
	if (c == '/') return 63;
	return -1;
}

int na_json_b64_decode(const char *s, size_t n, uint8_t *dst, size_t cap, size_t *outn)
{
	size_t o = 0;
	if (n % 4)
		return -1;
	for (size_t i = 0; i < n; i += 4) {
		int v[4];
		int pad = 0;
		for (int j = 0; j < 4; j++) {
			if (s[i + j] == '=' && i + 4 == n && j >= 2) {
				v[j] = 0;
				pad++;
			} else if (pad) {
				return -1; /* data after '=' */
			} else if ((v[j] = b64val(s[i + j])) < 0) {
				return -1;
			}
		}
		uint32_t x = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
		size_t k = 3 - (size_t)pad;
		if (o + k > cap)
			return -1;
		/* refuse non-canonical padding bits so decode(encode(x)) is 1:1 */
		if ((pad == 1 && (x & 0xff)) || (pad == 2 && (x & 0xffff)))
			return -1;
		dst[o++] = (uint8_t)(x >> 16);
		if (k > 1) dst[o++] = (uint8_t)(x >> 8);
		if (k > 2) dst[o++] = (uint8_t)x;
	}
	*outn = o;
	return 0;
}

/* ---- JSON -> msgpack ----------------------------------------------- */

typedef struct enc {
	msgpack_packer pk;
	msgpack_sbuffer *out;
	char *err;
	size_t errcap;
	path p;
} enc;

#define PK(call) do { if (call) return jfail(e->err, e->errcap, NA_JSON_ENOMEM, "out of memory"); } while (0)

static const char *jtype(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a real";
	case JSON_TRUE: return "true";
	case JSON_FALSE: return "false";
	case JSON_NULL: return "null";
	}
	return "?";
}

/* {"$base64": s} or {"$ext": n, "$base64": s}: 1 / 0 (not special) / <0 error */
static int try_special(enc *e, const json_t *obj)
{
	size_t sz = json_object_size(obj);
	if (sz != 1 && sz != 2)
		return 0;
	json_t *b = json_object_get(obj, "$base64");
	json_t *x = sz == 2 ? json_object_get(obj, "$ext") : NULL;
	if (!b || (sz == 2 && !x))
		return 0;
	if (!json_is_string(b))
		return jfail(e->err, e->errcap, NA_JSON_EVALUE, "%s%s$base64 must be a string, got %s",
			    AT(&e->p), jtype(b));
	long long type = 0;
	if (x) {
		if (!json_is_integer(x) || json_integer_value(x) < -128 || json_integer_value(x) > 127)
			return jfail(e->err, e->errcap, NA_JSON_EVALUE,
				    "%s%s$ext must be an integer from -128 to 127", AT(&e->p));
		type = json_integer_value(x);
	}
	const char *s = json_string_value(b);
	size_t n = json_string_length(b);
	size_t cap = n / 4 * 3;
	uint8_t *buf = malloc(cap ? cap : 1);
	if (!buf)
		return jfail(e->err, e->errcap, NA_JSON_ENOMEM, "out of memory");
	size_t len;
	if (na_json_b64_decode(s, n, buf, cap, &len)) {
		free(buf);
		return jfail(e->err, e->errcap, NA_JSON_EVALUE, "%s%s$base64 is not valid base64",
			    AT(&e->p));
	}
	int rc = 0;
	if (x) {
		if (type == -1) {
			na_ts ts;
			if (na_ts_decode(buf, (uint32_t)len, &ts))
				rc = jfail(e->err, e->errcap, NA_JSON_EVALUE,
					  "%s%s$ext -1 is not a valid timestamp", AT(&e->p));
		}
		if (!rc && (msgpack_pack_ext(&e->pk, len, (int8_t)type) ||
			    msgpack_pack_ext_body(&e->pk, buf, len)))
			rc = jfail(e->err, e->errcap, NA_JSON_ENOMEM, "out of memory");
	} else if (msgpack_pack_bin(&e->pk, len) || msgpack_pack_bin_body(&e->pk, buf, len)) {
		rc = jfail(e->err, e->errcap, NA_JSON_ENOMEM, "out of memory");
	}
	free(buf);
	return rc ? rc : 1;
}

static int pack_value(enc *e, const json_t *v, unsigned depth);

static int pack_object(enc *e, const json_t *obj, unsigned depth)
{
	const char *k;
	size_t kn;
	json_t *val;
	PK(msgpack_pack_map(&e->pk, json_object_size(obj)));
	json_object_keylen_foreach((json_t *)obj, k, kn, val) {
		PK(na_mp_pack_str(&e->pk, k, kn));
		size_t old = path_push_key(&e->p, k, kn);
		int rc = pack_value(e, val, depth + 1);
		if (rc)
			return rc;
		path_pop(&e->p, old);
	}
	return 0;
}

static int pack_value(enc *e, const json_t *v, unsigned depth)
{
	switch (json_typeof(v)) {
	case JSON_NULL:
		PK(msgpack_pack_nil(&e->pk));
		return 0;
	case JSON_TRUE:
		PK(msgpack_pack_true(&e->pk));
		return 0;
	case JSON_FALSE:
		PK(msgpack_pack_false(&e->pk));
		return 0;
	case JSON_INTEGER:
		PK(msgpack_pack_int64(&e->pk, json_integer_value(v)));
		return 0;
	case JSON_REAL:
		PK(msgpack_pack_double(&e->pk, json_real_value(v)));
		return 0;
	case JSON_STRING:
		PK(na_mp_pack_str(&e->pk, json_string_value(v), json_string_length(v)));
		return 0;
	case JSON_ARRAY: {
		if (depth >= NA_JSON_MAX_DEPTH)
			return jfail(e->err, e->errcap, NA_JSON_EVALUE,
				    "%s%snested deeper than %d levels", AT(&e->p), NA_JSON_MAX_DEPTH);
		size_t n = json_array_size(v);
		PK(msgpack_pack_array(&e->pk, n));
		for (size_t i = 0; i < n; i++) {
			size_t old = path_push_index(&e->p, i);
			int rc = pack_value(e, json_array_get(v, i), depth + 1);
			if (rc)
				return rc;
			path_pop(&e->p, old);
		}
		return 0;
	}
	case JSON_OBJECT: {
		int rc = try_special(e, v);
		if (rc)
			return rc < 0 ? rc : 0;
		if (depth >= NA_JSON_MAX_DEPTH)
			return jfail(e->err, e->errcap, NA_JSON_EVALUE,
				    "%s%snested deeper than %d levels", AT(&e->p), NA_JSON_MAX_DEPTH);
		return pack_object(e, v, depth);
	}
	}
	return jfail(e->err, e->errcap, NA_JSON_EVALUE, "%s%sunsupported JSON value", AT(&e->p));
}

/* published / updated: RFC 3339 string, unix seconds or a $ext -1 object */
static int pack_time(enc *e, const char *name, const json_t *v)
{
	na_ts ts;
	if (json_is_string(v)) {
		const char *why = NULL;
		const char *s = json_string_value(v);
		size_t n = json_string_length(v);
		if (na_rfc3339_parse(s, n, &ts, &why)) {
			char ex[96];
			excerpt(ex, sizeof ex, s, n);
			return jfail(e->err, e->errcap, NA_JSON_EVALUE,
				    "%s: not an RFC 3339 time: \"%s\" (%s)", name, ex, why);
		}
	} else if (json_is_integer(v)) {
		long long x = json_integer_value(v);
		if (x < NA_TS_MIN_SEC || x > NA_TS_MAX_SEC)
			return jfail(e->err, e->errcap, NA_JSON_EVALUE,
				    "%s: %lld seconds is outside years 0001..9999", name, x);
		ts.sec = x;
		ts.nsec = 0;
	} else if (json_is_real(v)) {
		double x = json_real_value(v);
		if (!(x >= (double)NA_TS_MIN_SEC && x < (double)NA_TS_MAX_SEC + 1.0))
			return jfail(e->err, e->errcap, NA_JSON_EVALUE,
				    "%s: %.17g seconds is outside years 0001..9999", name, x);
		double fl = floor(x);
		ts.sec = (int64_t)fl;
		double ns = nearbyint((x - fl) * 1e9);
		if (ns >= 1e9) {
			ts.sec++;
			ns = 0;
		}
		ts.nsec = (uint32_t)ns;
		if (ts.sec > NA_TS_MAX_SEC)
			return jfail(e->err, e->errcap, NA_JSON_EVALUE,
				    "%s: %.17g seconds is outside years 0001..9999", name, x);
	} else if (json_is_object(v) && json_object_get(v, "$ext")) {
		json_t *x = json_object_get(v, "$ext");
		if (!json_is_integer(x) || json_integer_value(x) != -1)
			return jfail(e->err, e->errcap, NA_JSON_EVALUE,
				    "%s: expected an RFC 3339 time or unix seconds, got an extension object",
				    name);
		int rc = try_special(e, v);
		return rc < 0 ? rc : rc == 1 ? 0 :
			jfail(e->err, e->errcap, NA_JSON_EVALUE, "%s: bad timestamp object", name);
	} else {
		return jfail(e->err, e->errcap, NA_JSON_EVALUE,
			    "%s: expected an RFC 3339 time or unix seconds, got %s", name, jtype(v));
	}
	PK(na_mp_pack_ts(&e->pk, ts));
	return 0;
}

int na_json_article_from_json(const json_t *obj, msgpack_sbuffer *out, char *err, size_t errcap)
{
	enc e = { .out = out, .err = err, .errcap = errcap };
	size_t start = out->size;
	int rc = 0;

	if (!json_is_object(obj))
		return jfail(err, errcap, NA_JSON_EVALUE, "article: expected a JSON object, got %s",
			    jtype(obj));
	json_t *g = json_object_get(obj, "guid");
	if (!g)
		return jfail(err, errcap, NA_JSON_EVALUE, "guid: missing");
	if (!json_is_string(g))
		return jfail(err, errcap, NA_JSON_EVALUE, "guid: expected a string, got %s", jtype(g));
	if (json_string_length(g) == 0 || json_string_length(g) > NA_MAX_GUID_BYTES)
		return jfail(err, errcap, NA_JSON_EVALUE, "guid: must be 1 to %d bytes, got %zu",
			    NA_MAX_GUID_BYTES, json_string_length(g));
	if (!json_object_get(obj, "published"))
		return jfail(err, errcap, NA_JSON_EVALUE, "published: missing");
	json_t *t = json_object_get(obj, "title");
	if (!t)
		return jfail(err, errcap, NA_JSON_EVALUE, "title: missing");
	if (!json_is_string(t))
		return jfail(err, errcap, NA_JSON_EVALUE, "title: expected a string, got %s", jtype(t));

	msgpack_packer_init(&e.pk, out, msgpack_sbuffer_write);
	const char *k;
	size_t kn;
	json_t *val;
	if (msgpack_pack_map(&e.pk, json_object_size(obj))) {
		rc = jfail(err, errcap, NA_JSON_ENOMEM, "out of memory");
		goto out;
	}
	json_object_keylen_foreach((json_t *)obj, k, kn, val) {
		if (na_mp_pack_str(&e.pk, k, kn)) {
			rc = jfail(err, errcap, NA_JSON_ENOMEM, "out of memory");
			goto out;
		}
		bool is_time = (kn == 9 && !memcmp(k, "published", 9)) ||
			       (kn == 7 && !memcmp(k, "updated", 7));
		size_t old = path_push_key(&e.p, k, kn);
		rc = is_time ? pack_time(&e, e.p.s, val) : pack_value(&e, val, 1);
		if (rc)
			goto out;
		path_pop(&e.p, old);
	}
	if (out->size - start > NA_JSON_MAX_ARTICLE_BYTES)
		rc = jfail(err, errcap, NA_JSON_EVALUE,
			  "article: %zu bytes encoded, more than the %u-byte limit",
			  out->size - start, NA_JSON_MAX_ARTICLE_BYTES);
out:
	if (rc)
		out->size = start;
	return rc;
}

int na_json_article_from_text(const char *text, size_t len, msgpack_sbuffer *out, char *err,
			      size_t errcap)
{
	json_error_t je;
	json_t *obj = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
	if (!obj)
		return jfail(err, errcap, NA_JSON_ESYNTAX, "bad JSON: %s (column %d)", je.text,
			    je.column);
	int rc = na_json_article_from_json(obj, out, err, errcap);
	json_decref(obj);
	return rc;
}

/* ---- msgpack -> JSON ----------------------------------------------- */

typedef struct dec {
	na_mp *r;
	msgpack_sbuffer *out;
	char *err;
	size_t errcap;
	path p;
} dec;

#define OUT(call) do { if (call) return jfail(d->err, d->errcap, NA_JSON_ENOMEM, "out of memory"); } while (0)

int na_json_quote(msgpack_sbuffer *out, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	if (!na_json_utf8_valid(s, n))
		return -1;
	size_t start = out->size;
	if (putc1(out, '"'))
		goto nomem;
	size_t run = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f)
			continue;
		if (put(out, s + run, i - run))
			goto nomem;
		run = i + 1;
		char esc[6] = { '\\', 0 };
		size_t k = 2;
		switch (c) {
		case '"': esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\n': esc[1] = 'n'; break;
		case '\t': esc[1] = 't'; break;
		case '\r': esc[1] = 'r'; break;
		case '\b': esc[1] = 'b'; break;
		case '\f': esc[1] = 'f'; break;
		default:
			esc[1] = 'u';
			esc[2] = '0';
			esc[3] = '0';
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			k = 6;
		}
		if (put(out, esc, k))
			goto nomem;
	}
	if (put(out, s + run, n - run) || putc1(out, '"'))
		goto nomem;
	return 0;
nomem:
	out->size = start;
	return -1;
}

/* Shortest "%.*g" that reads back as x; always looks like a real. */
static int put_double(msgpack_sbuffer *out, double x)
{
	char buf[40];
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, sizeof buf, "%.*g", prec, x);
		if (strtod(buf, NULL) == x)
			break;
	}
	/* %g switched to an exponent for an integral value with trailing
	 * zeros (100 -> "1e+02"): write it out while that stays short */
	if (strchr(buf, 'e') && fabs(x) >= 1 && fabs(x) < 1e16)
		snprintf(buf, sizeof buf, "%.0f", x);
	if (!strpbrk(buf, ".eEn"))
		strcat(buf, ".0");
	return puts0(out, buf);
}

static int emit(dec *d, unsigned depth);

static int emit_ext(dec *d)
{
	int8_t type;
	const uint8_t *data;
	uint32_t n;
	if (na_mp_ext(d->r, &type, &data, &n))
		return jfail(d->err, d->errcap, NA_JSON_EVALUE, "%s%sbad extension", AT(&d->p));
	if (type == -1) {
		na_ts ts;
		char buf[NA_RFC3339_BUFSZ];
		int len;
		if (na_ts_decode(data, n, &ts) || (len = na_rfc3339_format(ts, buf, sizeof buf)) < 0)
			return jfail(d->err, d->errcap, NA_JSON_EVALUE,
				    "%s%stimestamp outside years 0001..9999 or malformed", AT(&d->p));
		OUT(putc1(d->out, '"') || put(d->out, buf, (size_t)len) || putc1(d->out, '"'));
		return 0;
	}
	char hdr[32];
	snprintf(hdr, sizeof hdr, "{\"$ext\":%d,\"$base64\":\"", type);
	OUT(puts0(d->out, hdr) || na_json_b64_encode(d->out, data, n) || puts0(d->out, "\"}"));
	return 0;
}

/* A map that would read back as bin/ext: keys exactly {"$base64"} or
 * {"$ext","$base64"}. r is at the first key; it is not advanced. */
static bool ambiguous_map(const na_mp *r, uint32_t n)
{
	if (n != 1 && n != 2)
		return false;
	na_mp c = *r;
	bool b64 = false, ext = false;
	for (uint32_t i = 0; i < n; i++) {
		const char *k;
		uint32_t kn;
		if (na_mp_peek(&c) != NA_MP_STR || na_mp_str(&c, &k, &kn))
			return false;
		if (na_mp_streq(k, kn, "$base64"))
			b64 = true;
		else if (na_mp_streq(k, kn, "$ext"))
			ext = true;
		if (na_mp_skip(&c))
			return false;
	}
	return b64 && (n == 1 || ext);
}

static int emit(dec *d, unsigned depth)
{
	na_mp *r = d->r;
	if (depth > NA_MP_DEPTH_CEILING)
		return jfail(d->err, d->errcap, NA_JSON_EVALUE, "%s%snested too deeply", AT(&d->p));
	switch (na_mp_peek(r)) {
	case NA_MP_NIL:
		na_mp_nil(r);
		OUT(puts0(d->out, "null"));
		return 0;
	case NA_MP_BOOL: {
		bool b = false;
		na_mp_bool(r, &b);
		OUT(puts0(d->out, b ? "true" : "false"));
		return 0;
	}
	case NA_MP_UINT: {
		uint64_t u = 0;
		char buf[24];
		na_mp_u64(r, &u);
		snprintf(buf, sizeof buf, "%" PRIu64, u);
		OUT(puts0(d->out, buf));
		return 0;
	}
	case NA_MP_INT: {
		int64_t i = 0;
		char buf[24];
		na_mp_i64(r, &i);
		snprintf(buf, sizeof buf, "%" PRId64, i);
		OUT(puts0(d->out, buf));
		return 0;
	}
	case NA_MP_FLOAT: {
		double x = 0;
		na_mp_f64(r, &x);
		if (!isfinite(x))
			return jfail(d->err, d->errcap, NA_JSON_EVALUE,
				    "%s%s%s cannot be written as JSON", AT(&d->p),
				    isnan(x) ? "NaN" : "infinity");
		OUT(put_double(d->out, x));
		return 0;
	}
	case NA_MP_STR: {
		const char *s = NULL;
		uint32_t n = 0;
		if (na_mp_str(r, &s, &n)) /* truncated */
			return jfail(d->err, d->errcap, NA_JSON_EVALUE, "%s%smalformed MessagePack",
				    AT(&d->p));
		if (!na_json_utf8_valid(s, n))
			return jfail(d->err, d->errcap, NA_JSON_EVALUE, "%s%sstring is not valid UTF-8",
				    AT(&d->p));
		OUT(na_json_quote(d->out, s, n));
		return 0;
	}
	case NA_MP_BIN: {
		const uint8_t *b = NULL;
		uint32_t n = 0;
		if (na_mp_bin(r, &b, &n)) /* truncated */
			return jfail(d->err, d->errcap, NA_JSON_EVALUE, "%s%smalformed MessagePack",
				    AT(&d->p));
		OUT(puts0(d->out, "{\"$base64\":\"") || na_json_b64_encode(d->out, b, n) ||
		    puts0(d->out, "\"}"));
		return 0;
	}
	case NA_MP_ARRAY: {
		uint32_t n = 0;
		na_mp_array(r, &n);
		OUT(putc1(d->out, '['));
		for (uint32_t i = 0; i < n; i++) {
			if (i)
				OUT(putc1(d->out, ','));
			size_t old = path_push_index(&d->p, i);
			int rc = emit(d, depth + 1);
			if (rc)
				return rc;
			path_pop(&d->p, old);
		}
		OUT(putc1(d->out, ']'));
		return 0;
	}
	case NA_MP_MAP: {
		uint32_t n = 0;
		na_mp_map(r, &n);
		if (ambiguous_map(r, n))
			return jfail(d->err, d->errcap, NA_JSON_EVALUE,
				    "%s%sa map with only the keys $base64/$ext would read back as binary",
				    AT(&d->p));
		OUT(putc1(d->out, '{'));
		for (uint32_t i = 0; i < n; i++) {
			const char *k = NULL;
			uint32_t kn = 0;
			if (na_mp_peek(r) != NA_MP_STR)
				return jfail(d->err, d->errcap, NA_JSON_EVALUE,
					    "%s%smap key %u is not a string", AT(&d->p), i);
			if (na_mp_str(r, &k, &kn)) /* truncated */
				return jfail(d->err, d->errcap, NA_JSON_EVALUE,
					    "%s%smalformed MessagePack", AT(&d->p));
			if (!na_json_utf8_valid(k, kn))
				return jfail(d->err, d->errcap, NA_JSON_EVALUE,
					    "%s%smap key %u is not valid UTF-8", AT(&d->p), i);
			if (i)
				OUT(putc1(d->out, ','));
			OUT(na_json_quote(d->out, k, kn) || putc1(d->out, ':'));
			size_t old = path_push_key(&d->p, k, kn);
			int rc = emit(d, depth + 1);
			if (rc)
				return rc;
			path_pop(&d->p, old);
		}
		OUT(putc1(d->out, '}'));
		return 0;
	}
	case NA_MP_EXT:
		return emit_ext(d);
	default:
		break;
	}
	return jfail(d->err, d->errcap, NA_JSON_EVALUE, "%s%smalformed MessagePack", AT(&d->p));
}

int na_json_from_mp(na_mp *r, msgpack_sbuffer *out, char *err, size_t errcap)
{
	dec d = { .r = r, .out = out, .err = err, .errcap = errcap };
	size_t start = out->size;
	int rc = emit(&d, 0);
	if (!rc && r->err)
		rc = jfail(err, errcap, NA_JSON_EVALUE, "malformed MessagePack");
	if (rc)
		out->size = start;
	return rc;
}

int na_json_from_msgpack(const uint8_t *buf, size_t len, msgpack_sbuffer *out, char *err,
			 size_t errcap)
{
	na_mp r;
	size_t start = out->size;
	na_mp_init(&r, buf, len);
	int rc = na_json_from_mp(&r, out, err, errcap);
	if (!rc && na_mp_left(&r)) {
		out->size = start;
		rc = jfail(err, errcap, NA_JSON_EVALUE, "trailing bytes after the MessagePack value");
	}
	return rc;
}
