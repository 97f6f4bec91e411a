/*
 * test_cli_json.c - the JSON <-> MessagePack mapping of the newsarch CLI.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../client/cli/json.c"
#include "../../client/cli/timefmt.c"

static char err[512];

/* JSON text -> msgpack, asserting success. Caller destroys sb. */
static void to_mp(const char *json, msgpack_sbuffer *sb)
{
	msgpack_sbuffer_init(sb);
	err[0] = 0;
	int rc = na_json_article_from_text(json, strlen(json), sb, err, sizeof err);
	if (rc)
		fail_msg("import of %s failed: %s", json, err);
}

/* msgpack -> JSON text (malloc'ed). */
static char *to_json(const msgpack_sbuffer *sb)
{
	msgpack_sbuffer out;
	msgpack_sbuffer_init(&out);
	int rc = na_json_from_msgpack((const uint8_t *)sb->data, sb->size, &out, err, sizeof err);
	if (rc)
		fail_msg("export failed: %s", err);
	msgpack_sbuffer_write(&out, "", 1);
	return out.data;
}

/* expects a failure whose message contains want */
static void assert_import_error(const char *json, int code, const char *want)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_sbuffer_write(&sb, "xy", 2); /* output left as it was on error */
	err[0] = 0;
	int rc = na_json_article_from_text(json, strlen(json), &sb, err, sizeof err);
	if (rc != code)
		fail_msg("%s: rc %d, expected %d (%s)", json, rc, code, err);
	if (!strstr(err, want))
		fail_msg("%s: message \"%s\" lacks \"%s\"", json, err, want);
	assert_int_equal(sb.size, 2);
	msgpack_sbuffer_destroy(&sb);
}

/* export of hand-packed msgpack must fail naming want */
static void assert_export_error(const msgpack_sbuffer *sb, const char *want)
{
	msgpack_sbuffer out;
	msgpack_sbuffer_init(&out);
	int rc = na_json_from_msgpack((const uint8_t *)sb->data, sb->size, &out, err, sizeof err);
	assert_int_equal(rc, NA_JSON_EVALUE);
	if (!strstr(err, want))
		fail_msg("message \"%s\" lacks \"%s\"", err, want);
	assert_int_equal(out.size, 0);
	msgpack_sbuffer_destroy(&out);
}

static void round_trip(const char *in, const char *expect_out)
{
	msgpack_sbuffer sb, sb2;
	to_mp(in, &sb);
	char *out = to_json(&sb);
	assert_string_equal(out, expect_out ? expect_out : in);
	/* and the exported JSON imports to the same bytes */
	to_mp(out, &sb2);
	assert_int_equal(sb.size, sb2.size);
	assert_memory_equal(sb.data, sb2.data, sb.size);
	free(out);
	msgpack_sbuffer_destroy(&sb);
	msgpack_sbuffer_destroy(&sb2);
}

static void test_every_type(void **st)
{
	(void)st;
	round_trip("{\"guid\":\"g\",\"published\":0,\"title\":\"h\u00e9llo \u20ac\"}",
		   "{\"guid\":\"g\",\"published\":\"1970-01-01T00:00:00Z\",\"title\":\"h\xc3\xa9llo \xe2\x82\xac\"}");
	round_trip("{\"guid\":\"g1\",\"published\":\"2022-01-08T07:52:00Z\",\"title\":\"T\","
		   "\"n\":null,\"t\":true,\"f\":false,\"i\":-42,\"u\":42,\"big\":9223372036854775807,"
		   "\"neg\":-9223372036854775808,\"r\":0.1,\"r2\":-2.5e-300,\"r3\":1.0,\"r4\":1e+300,"
		   "\"s\":\"h\xc3\xa9llo \\\"q\\\" \\\\ \\n\\t\\u0001\\u007f \xe2\x82\xac\","
		   "\"a\":[1,\"two\",[3,[]],{}],\"o\":{\"x\":{\"y\":{\"z\":[null]}}},"
		   "\"bin\":{\"$base64\":\"AAECAwT/\"},\"bin0\":{\"$base64\":\"\"},"
		   "\"ext\":{\"$ext\":5,\"$base64\":\"aGk=\"},\"extn\":{\"$ext\":-128,\"$base64\":\"AQ==\"}}",
		   NULL);
}

static void test_types_in_msgpack(void **st)
{
	(void)st;
	msgpack_sbuffer sb;
	to_mp("{\"guid\":\"g\",\"published\":0,\"title\":\"\",\"i\":300,\"r\":1.5,"
	      "\"b\":{\"$base64\":\"AAE=\"},\"e\":{\"$ext\":7,\"$base64\":\"AAE=\"}}", &sb);
	na_mp r;
	uint32_t n;
	const char *k;
	uint32_t kn;
	na_mp_init(&r, sb.data, sb.size);
	assert_int_equal(na_mp_map(&r, &n), 0);
	assert_int_equal(n, 7);
	na_mp_str(&r, &k, &kn);
	assert_true(na_mp_streq(k, kn, "guid"));
	na_mp_skip(&r);
	na_mp_str(&r, &k, &kn);
	assert_true(na_mp_streq(k, kn, "published"));
	na_ts ts;
	assert_int_equal(na_mp_ts(&r, &ts), 0);
	assert_int_equal(ts.sec, 0);
	na_mp_skip(&r); na_mp_skip(&r); /* title */
	na_mp_skip(&r);
	uint64_t u;
	assert_int_equal(na_mp_u64(&r, &u), 0);
	assert_int_equal(u, 300);
	na_mp_skip(&r);
	double d;
	assert_int_equal(na_mp_peek(&r), NA_MP_FLOAT);
	assert_int_equal(na_mp_f64(&r, &d), 0);
	assert_true(d == 1.5);
	na_mp_skip(&r);
	const uint8_t *b;
	assert_int_equal(na_mp_bin(&r, &b, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(b[1], 1);
	na_mp_skip(&r);
	int8_t et;
	assert_int_equal(na_mp_ext(&r, &et, &b, &n), 0);
	assert_int_equal(et, 7);
	assert_int_equal(n, 2);
	assert_int_equal(r.err, 0);
	assert_int_equal(na_mp_left(&r), 0);
	msgpack_sbuffer_destroy(&sb);
}

static void test_key_order(void **st)
{
	(void)st;
	/* many keys in an order no hash would produce; jansson must keep it */
	char in[8192];
	size_t o = (size_t)snprintf(in, sizeof in,
				    "{\"title\":\"x\",\"published\":\"2022-01-08T07:52:00Z\",\"guid\":\"g\"");
	for (int i = 99; i >= 0; i--)
		o += (size_t)snprintf(in + o, sizeof in - o, ",\"k%02d\":{\"z\":%d,\"a\":%d}", i, i, -i);
	snprintf(in + o, sizeof in - o, "}");
	round_trip(in, NULL);
}

static void test_times(void **st)
{
	(void)st;
	/* any offset; date only; unix seconds (integer and real) */
	round_trip("{\"guid\":\"g\",\"published\":\"2022-01-08T13:22:00+05:30\",\"title\":\"\"}",
		   "{\"guid\":\"g\",\"published\":\"2022-01-08T07:52:00Z\",\"title\":\"\"}");
	round_trip("{\"guid\":\"g\",\"published\":\"2022-01-08\",\"title\":\"\",\"updated\":1641628320}",
		   "{\"guid\":\"g\",\"published\":\"2022-01-08T00:00:00Z\",\"title\":\"\","
		   "\"updated\":\"2022-01-08T07:52:00Z\"}");
	round_trip("{\"guid\":\"g\",\"published\":1641628320.25,\"title\":\"\"}",
		   "{\"guid\":\"g\",\"published\":\"2022-01-08T07:52:00.25Z\",\"title\":\"\"}");
	round_trip("{\"guid\":\"g\",\"published\":-1.5,\"title\":\"\"}",
		   "{\"guid\":\"g\",\"published\":\"1969-12-31T23:59:58.5Z\",\"title\":\"\"}");
	round_trip("{\"guid\":\"g\",\"published\":\"1987-02-26T15:01:01.790Z\",\"title\":\"\"}",
		   "{\"guid\":\"g\",\"published\":\"1987-02-26T15:01:01.79Z\",\"title\":\"\"}");
	round_trip("{\"guid\":\"g\",\"published\":\"2262-04-11T23:47:16.854775807Z\",\"title\":\"\"}",
		   NULL); /* 96-bit form */
	/* nested "published" is not a time: it stays a string */
	round_trip("{\"guid\":\"g\",\"published\":0,\"title\":\"\",\"m\":{\"published\":\"2022-01-08\"}}",
		   "{\"guid\":\"g\",\"published\":\"1970-01-01T00:00:00Z\",\"title\":\"\","
		   "\"m\":{\"published\":\"2022-01-08\"}}");
	/* a timestamp elsewhere can be given as $ext -1 */
	round_trip("{\"guid\":\"g\",\"published\":{\"$ext\":-1,\"$base64\":\"AAAAAQ==\"},\"title\":\"\"}",
		   "{\"guid\":\"g\",\"published\":\"1970-01-01T00:00:01Z\",\"title\":\"\"}");
}

static void test_errors_name_fields(void **st)
{
	(void)st;
	assert_import_error("{\"guid\":\"g\",\"published\":\"yesterday\",\"title\":\"\"}", NA_JSON_EVALUE,
			    "published: not an RFC 3339 time: \"yesterday\"");
	assert_import_error("{\"guid\":\"g\",\"published\":0,\"updated\":\"2022-02-30\",\"title\":\"\"}",
			    NA_JSON_EVALUE, "updated: not an RFC 3339 time: \"2022-02-30\" (day");
	assert_import_error("{\"guid\":\"g\",\"published\":true,\"title\":\"\"}", NA_JSON_EVALUE,
			    "published: expected an RFC 3339 time or unix seconds, got true");
	assert_import_error("{\"guid\":\"g\",\"published\":1e300,\"title\":\"\"}", NA_JSON_EVALUE,
			    "published: ");
	assert_import_error("{\"guid\":\"g\",\"published\":253402300800,\"title\":\"\"}", NA_JSON_EVALUE,
			    "outside years");
	assert_import_error("{\"published\":0,\"title\":\"\"}", NA_JSON_EVALUE, "guid: missing");
	assert_import_error("{\"guid\":7,\"published\":0,\"title\":\"\"}", NA_JSON_EVALUE,
			    "guid: expected a string, got an integer");
	assert_import_error("{\"guid\":\"\",\"published\":0,\"title\":\"\"}", NA_JSON_EVALUE,
			    "guid: must be 1 to 1024 bytes");
	assert_import_error("{\"guid\":\"g\",\"title\":\"\"}", NA_JSON_EVALUE, "published: missing");
	assert_import_error("{\"guid\":\"g\",\"published\":0}", NA_JSON_EVALUE, "title: missing");
	assert_import_error("{\"guid\":\"g\",\"published\":0,\"title\":null}", NA_JSON_EVALUE,
			    "title: expected a string, got null");
	assert_import_error("[1]", NA_JSON_EVALUE, "expected a JSON object");
	assert_import_error("{\"guid\":\"g\",", NA_JSON_ESYNTAX, "bad JSON");
	assert_import_error("{\"guid\":\"g\",\"guid\":\"h\",\"published\":0,\"title\":\"\"}",
			    NA_JSON_ESYNTAX, "duplicate");
	assert_import_error("{\"guid\":\"g\",\"published\":0,\"title\":\"\",\"a\":[0,{\"b\":{\"$base64\":\"@@\"}}]}",
			    NA_JSON_EVALUE, "a[1].b: $base64 is not valid base64");
	assert_import_error("{\"guid\":\"g\",\"published\":0,\"title\":\"\",\"x\":{\"$ext\":300,\"$base64\":\"\"}}",
			    NA_JSON_EVALUE, "x: $ext must be an integer from -128 to 127");
	assert_import_error("{\"guid\":\"g\",\"published\":0,\"title\":\"\",\"x\":{\"$ext\":-1,\"$base64\":\"AAE=\"}}",
			    NA_JSON_EVALUE, "x: $ext -1 is not a valid timestamp");
	/* too deep */
	char deep[256] = "{\"guid\":\"g\",\"published\":0,\"title\":\"\",\"d\":";
	size_t o = strlen(deep);
	for (int i = 0; i < 30; i++) deep[o++] = '[';
	for (int i = 0; i < 30; i++) deep[o++] = ']';
	deep[o++] = '}';
	deep[o] = 0;
	assert_import_error(deep, NA_JSON_EVALUE, "d[0][0]");
	assert_import_error(deep, NA_JSON_EVALUE, "nested deeper");
	/* a guid of 1025 bytes */
	char *big = malloc(1200);
	memcpy(big, "{\"guid\":\"", 9);
	memset(big + 9, 'a', 1025);
	strcpy(big + 9 + 1025, "\",\"published\":0,\"title\":\"\"}");
	assert_import_error(big, NA_JSON_EVALUE, "guid: must be 1 to 1024 bytes, got 1025");
	free(big);
}

static void test_special_objects(void **st)
{
	(void)st;
	/* objects that merely contain $base64 among other keys stay maps */
	round_trip("{\"guid\":\"g\",\"published\":0,\"title\":\"\",\"m\":{\"$base64\":\"AA==\",\"x\":1}}",
		   "{\"guid\":\"g\",\"published\":\"1970-01-01T00:00:00Z\",\"title\":\"\","
		   "\"m\":{\"$base64\":\"AA==\",\"x\":1}}");
	/* base64 of every length remainder */
	const char *b64[] = { "", "AA==", "AAE=", "AAEC", "/+/+/w==" };
	for (size_t i = 0; i < sizeof b64 / sizeof *b64; i++) {
		char in[256];
		snprintf(in, sizeof in,
			 "{\"guid\":\"g\",\"published\":\"1970-01-01T00:00:00Z\",\"title\":\"\",\"b\":{\"$base64\":\"%s\"}}",
			 b64[i]);
		round_trip(in, NULL);
	}
	/* non-canonical base64 is refused (so export reproduces input) */
	assert_import_error("{\"guid\":\"g\",\"published\":0,\"title\":\"\",\"b\":{\"$base64\":\"AB==\"}}",
			    NA_JSON_EVALUE, "b: $base64");
	assert_import_error("{\"guid\":\"g\",\"published\":0,\"title\":\"\",\"b\":{\"$base64\":\"AAA\"}}",
			    NA_JSON_EVALUE, "b: $base64");
}

static void test_export_refusals(void **st)
{
	(void)st;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	/* non-string key */
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 1);
	na_mp_pack_cstr(&pk, "meta");
	msgpack_pack_map(&pk, 1);
	msgpack_pack_int(&pk, 1);
	msgpack_pack_int(&pk, 2);
	assert_export_error(&sb, "meta: map key 0 is not a string");
	msgpack_sbuffer_destroy(&sb);
	/* invalid UTF-8 */
	msgpack_sbuffer_init(&sb);
	msgpack_pack_map(&pk, 1);
	na_mp_pack_cstr(&pk, "body");
	na_mp_pack_str(&pk, "\xff\xfe", 2);
	assert_export_error(&sb, "body: string is not valid UTF-8");
	msgpack_sbuffer_destroy(&sb);
	/* NaN */
	msgpack_sbuffer_init(&sb);
	msgpack_pack_array(&pk, 2);
	msgpack_pack_int(&pk, 1);
	msgpack_pack_double(&pk, NAN);
	assert_export_error(&sb, "[1]: NaN");
	msgpack_sbuffer_destroy(&sb);
	/* a map that would read back as bin */
	msgpack_sbuffer_init(&sb);
	msgpack_pack_map(&pk, 1);
	na_mp_pack_cstr(&pk, "x");
	msgpack_pack_map(&pk, 1);
	na_mp_pack_cstr(&pk, "$base64");
	na_mp_pack_cstr(&pk, "AA==");
	assert_export_error(&sb, "x: a map with only the keys $base64");
	msgpack_sbuffer_destroy(&sb);
	/* truncated msgpack */
	msgpack_sbuffer_init(&sb);
	msgpack_pack_array(&pk, 3);
	msgpack_pack_int(&pk, 1);
	assert_export_error(&sb, "malformed");
	msgpack_sbuffer_destroy(&sb);
	/* regression (fuzz_json): a truncated string, map key or bin went on
	 * as a NULL pointer into the UTF-8 check, the quoting or base64 (UBSan) */
	static const char *const truncated[] = {
		"\xaf\xb4JDRA==",          /* str of 15, 7 bytes */
		"\x81\xa9" "body",         /* key of 9, 4 bytes */
		"\x92\xc0\xc5\xc7\x03:x", /* bin16 of 50947, 3 bytes */
	};
	for (size_t i = 0; i < sizeof truncated / sizeof *truncated; i++) {
		msgpack_sbuffer_init(&sb);
		msgpack_sbuffer_write(&sb, truncated[i], strlen(truncated[i]));
		assert_export_error(&sb, "malformed");
		msgpack_sbuffer_destroy(&sb);
	}
}

static void test_export_plain_values(void **st)
{
	(void)st;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 6);
	msgpack_pack_uint64(&pk, UINT64_MAX);
	msgpack_pack_float(&pk, 0.5f);
	msgpack_pack_double(&pk, 100.0);
	msgpack_pack_double(&pk, -0.0);
	na_mp_pack_ts(&pk, (na_ts){ 541350061, 790000000 });
	na_mp_pack_str(&pk, "a\0b", 3);
	char *out = to_json(&sb);
	assert_string_equal(out, "[18446744073709551615,0.5,100.0,-0.0,\"1987-02-26T15:01:01.79Z\","
			    "\"a\\u0000b\"]");
	free(out);
	msgpack_sbuffer_destroy(&sb);
}

/* regression (fuzz_json): the excerpt of a bad time in the error message
 * wrote its NUL past the end of its buffer when a six-byte escape landed
 * just before the cut. Every length of control characters around the cut
 * must give a bounded, terminated message. */
static void test_excerpt_bounds(void **state)
{
	(void)state;
	for (size_t n = 0; n < 6 * 40; n++) {
		size_t plain = n % 6, ctl = 10 + n / 6; /* every alignment */
		char json[400];
		size_t o = (size_t)snprintf(json, sizeof json, "{\"guid\": \"g\", \"published\": \"");
		for (size_t i = 0; i < plain; i++)
			json[o++] = 'x';
		for (size_t i = 0; i < ctl; i++)
			json[o++] = 0x7f;
		o += (size_t)snprintf(json + o, sizeof json - o, "00\", \"title\": \"t\"}");
		msgpack_sbuffer sb;
		msgpack_sbuffer_init(&sb);
		char err[512];
		int rc = na_json_article_from_text(json, o, &sb, err, sizeof err);
		msgpack_sbuffer_destroy(&sb);
		assert_int_equal(rc, NA_JSON_EVALUE);
		assert_non_null(strstr(err, "not an RFC 3339 time"));
		/* whole when the escaped string fits with room for "..." to
		 * spare, cut when it does not fit in 95 bytes */
		size_t escaped = plain + 6 * ctl + 2;
		bool cut = strstr(err, "...\"") != NULL;
		if (escaped <= 92)
			assert_false(cut);
		if (escaped > 95)
			assert_true(cut);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_type),
		cmocka_unit_test(test_types_in_msgpack),
		cmocka_unit_test(test_key_order),
		cmocka_unit_test(test_times),
		cmocka_unit_test(test_errors_name_fields),
		cmocka_unit_test(test_special_objects),
		cmocka_unit_test(test_export_refusals),
		cmocka_unit_test(test_export_plain_values),
		cmocka_unit_test(test_excerpt_bounds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
