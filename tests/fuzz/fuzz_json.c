/*
 * fuzz_json.c - libFuzzer target: the CLI's JSON <-> MessagePack mapping
 * (client/cli/json.c) and RFC 3339 times (client/cli/timefmt.c).
 *
 * Every input is used five ways:
 *  - as JSON text to na_json_article_from_text; an accepted article is one
 *    msgpack map that na_json_from_msgpack writes back as JSON, and that
 *    JSON converts again to the same JSON (one round reaches a fixed point;
 *    the only refusal allowed on the way back is a timestamp outside years
 *    0001..9999, which "$ext": -1 can carry);
 *  - as MessagePack to na_json_from_msgpack; the JSON it writes parses
 *    (jansson; except "\u0000" in an object key, which jansson refuses);
 *  - as a time to na_rfc3339_parse; a parsed time formats and parses back
 *    to itself, and the first 12 bytes as {sec, nsec} to na_rfc3339_format;
 *  - as base64 to na_json_b64_decode (decode then encode gives the input);
 *  - as a string to na_json_quote (jansson reads back the same bytes).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "rpc.h"
#include "timefmt.h"

#define CHECK(x) do { if (!(x)) { fprintf(stderr, "check failed: %s (line %d)\n", #x, __LINE__); abort(); } } while (0)

static void check_err(int rc, const char *err)
{
	CHECK(rc == NA_JSON_ESYNTAX || rc == NA_JSON_EVALUE || rc == NA_JSON_ENOMEM);
	CHECK(err[0] != 0);
}

static void json_side(const uint8_t *data, size_t size)
{
	msgpack_sbuffer mp, js, mp2, js2;
	char err[512];
	msgpack_sbuffer_init(&mp);
	msgpack_sbuffer_init(&js);
	msgpack_sbuffer_init(&mp2);
	msgpack_sbuffer_init(&js2);
	err[0] = 0;
	int rc = na_json_article_from_text((const char *)data, size, &mp, err, sizeof err);
	if (rc) {
		check_err(rc, err);
		CHECK(mp.size == 0);
		goto out;
	}
	/* one map, nothing after it */
	na_mp r;
	uint32_t n;
	na_mp_init(&r, (const uint8_t *)mp.data, mp.size);
	CHECK(na_mp_peek(&r) == NA_MP_MAP);
	CHECK(na_mp_skip(&r) == 0 && na_mp_left(&r) == 0);
	na_mp_init(&r, (const uint8_t *)mp.data, mp.size);
	CHECK(na_mp_map(&r, &n) == 0 && n >= 3);

	err[0] = 0;
	rc = na_json_from_msgpack((const uint8_t *)mp.data, mp.size, &js, err, sizeof err);
	if (rc) {
		CHECK(rc == NA_JSON_EVALUE && strstr(err, "timestamp") && js.size == 0);
		goto out;
	}
	err[0] = 0;
	rc = na_json_article_from_text(js.data, js.size, &mp2, err, sizeof err);
	if (rc) {
		fprintf(stderr, "%.*s\n-> %s\n", (int)js.size, js.data, err);
		CHECK(!"the JSON written for an article does not read back");
	}
	rc = na_json_from_msgpack((const uint8_t *)mp2.data, mp2.size, &js2, err, sizeof err);
	CHECK(rc == 0);
	if (js.size != js2.size || memcmp(js.data, js2.data, js.size) != 0) {
		fprintf(stderr, "%.*s\n%.*s\n", (int)js.size, js.data, (int)js2.size, js2.data);
		CHECK(!"JSON -> msgpack -> JSON is not a fixed point");
	}
out:
	msgpack_sbuffer_destroy(&mp);
	msgpack_sbuffer_destroy(&js);
	msgpack_sbuffer_destroy(&mp2);
	msgpack_sbuffer_destroy(&js2);
}

static void msgpack_side(const uint8_t *data, size_t size)
{
	msgpack_sbuffer js;
	char err[512];
	msgpack_sbuffer_init(&js);
	err[0] = 0;
	int rc = na_json_from_msgpack(data, size, &js, err, sizeof err);
	if (rc) {
		check_err(rc, err);
		CHECK(js.size == 0);
	} else {
		/* integers above INT64_MAX are valid JSON jansson only reads as
		 * reals; "\u0000" in an object key is valid JSON jansson refuses */
		json_error_t je;
		json_t *v = json_loadb(js.data, js.size,
				       JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, &je);
		if (!v && !strstr(je.text, "NUL byte in object key")) {
			fprintf(stderr, "%.*s\n-> %s\n", (int)js.size, js.data, je.text);
			CHECK(!"na_json_from_msgpack wrote something that is not JSON");
		}
		json_decref(v);
	}
	msgpack_sbuffer_destroy(&js);
}

static void time_side(const uint8_t *data, size_t size)
{
	na_ts ts, back;
	const char *why = NULL;
	char buf[NA_RFC3339_BUFSZ];
	if (na_rfc3339_parse((const char *)data, size, &ts, &why) == 0) {
		CHECK(ts.sec >= NA_TS_MIN_SEC && ts.sec <= NA_TS_MAX_SEC && ts.nsec < 1000000000u);
		int len = na_rfc3339_format(ts, buf, sizeof buf);
		CHECK(len > 0 && (size_t)len < sizeof buf);
		CHECK(na_rfc3339_parse(buf, (size_t)len, &back, &why) == 0);
		CHECK(back.sec == ts.sec && back.nsec == ts.nsec);
	} else {
		CHECK(why != NULL && why[0] != 0);
	}
	if (size >= 12) {
		int64_t sec;
		uint32_t nsec;
		memcpy(&sec, data, 8);
		memcpy(&nsec, data + 8, 4);
		/* bring most inputs into range */
		if (size & 1)
			sec = sec % (NA_TS_MAX_SEC + 1);
		na_ts t = { .sec = sec, .nsec = nsec % 1000000000u };
		int len = na_rfc3339_format(t, buf, sizeof buf);
		if (t.sec >= NA_TS_MIN_SEC && t.sec <= NA_TS_MAX_SEC) {
			CHECK(len > 0 && (size_t)len < sizeof buf);
			CHECK(na_rfc3339_parse(buf, (size_t)len, &back, &why) == 0);
			CHECK(back.sec == t.sec && back.nsec == t.nsec);
			/* the calendar agrees with itself */
			int64_t days = t.sec / 86400 - (t.sec % 86400 < 0), y;
			unsigned m, d;
			na_cal_civil_from_days(days, &y, &m, &d);
			CHECK(m >= 1 && m <= 12 && d >= 1 && d <= na_cal_days_in_month(y, m));
			CHECK(na_cal_days_from_civil(y, m, d) == days);
		} else {
			CHECK(len == -1);
		}
	}
}

static void b64_side(const uint8_t *data, size_t size)
{
	size_t cap = size / 4 * 3, n = 0;
	uint8_t *dec = malloc(cap ? cap : 1);
	CHECK(dec);
	if (na_json_b64_decode((const char *)data, size, dec, cap, &n) == 0) {
		CHECK(n <= cap);
		msgpack_sbuffer sb;
		msgpack_sbuffer_init(&sb);
		CHECK(na_json_b64_encode(&sb, dec, n) == 0);
		CHECK(sb.size == size && (size == 0 || memcmp(sb.data, data, size) == 0));
		msgpack_sbuffer_destroy(&sb);
	}
	free(dec);
}

static void quote_side(const uint8_t *data, size_t size)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	int valid = na_json_utf8_valid((const char *)data, size);
	int rc = na_json_quote(&sb, (const char *)data, size);
	if (!valid) {
		CHECK(rc == -1 && sb.size == 0);
	} else {
		CHECK(rc == 0);
		json_error_t je;
		json_t *v = json_loadb(sb.data, sb.size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
		CHECK(v && json_is_string(v));
		CHECK(json_string_length(v) == size &&
		      (size == 0 || memcmp(json_string_value(v), data, size) == 0));
		json_decref(v);
	}
	msgpack_sbuffer_destroy(&sb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* a private copy, so reads past the end are caught */
	uint8_t *b = malloc(size ? size : 1);
	CHECK(b);
	memcpy(b, data, size);
	json_side(b, size);
	msgpack_side(b, size);
	time_side(b, size);
	b64_side(b, size);
	quote_side(b, size);
	free(b);
	return 0;
}
