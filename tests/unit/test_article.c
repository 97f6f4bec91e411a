/*
 * test_article.c - the article schema (daemon/article.c): na_article_check,
 * na_article_project, na_article_guid.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <msgpack.h>

#include "article.h"
#include "rpc.h"

/* ---- building articles --------------------------------------------- */

/* Value kinds for the table-driven builder. */
enum vk { V_STR, V_INT, V_NIL, V_TS, V_STRS, V_BADSTRS, V_MAP, V_BIN, V_ARRAY_INT, V_TS_RAW };

typedef struct field {
	const char *key;
	enum vk kind;
	const char *s;      /* V_STR */
	int64_t sec;        /* V_TS */
	uint32_t nsec;
} field;

static void pack_value(msgpack_packer *pk, const field *f)
{
	switch (f->kind) {
	case V_STR: na_mp_pack_cstr(pk, f->s ? f->s : "str"); break;
	case V_INT: msgpack_pack_int(pk, 5); break;
	case V_NIL: msgpack_pack_nil(pk); break;
	case V_TS: na_mp_pack_ts(pk, (na_ts){ f->sec, f->nsec }); break;
	case V_STRS:
		msgpack_pack_array(pk, 2);
		na_mp_pack_cstr(pk, "a");
		na_mp_pack_cstr(pk, "b");
		break;
	case V_BADSTRS:
		msgpack_pack_array(pk, 2);
		na_mp_pack_cstr(pk, "a");
		msgpack_pack_int(pk, 1);
		break;
	case V_MAP:
		msgpack_pack_map(pk, 1);
		na_mp_pack_cstr(pk, "k");
		msgpack_pack_array(pk, 1);
		msgpack_pack_double(pk, 0.5);
		break;
	case V_BIN:
		msgpack_pack_bin(pk, 3);
		msgpack_pack_bin_body(pk, "xyz", 3);
		break;
	case V_ARRAY_INT:
		msgpack_pack_array(pk, 1);
		msgpack_pack_int(pk, 1);
		break;
	case V_TS_RAW: { /* 96-bit timestamp with the given raw nsec */
		uint8_t b[15] = { 0xc7, 12, 0xff };
		for (int i = 0; i < 4; i++)
			b[3 + i] = (uint8_t)(f->nsec >> (24 - 8 * i));
		for (int i = 0; i < 8; i++)
			b[7 + i] = (uint8_t)((uint64_t)f->sec >> (56 - 8 * i));
		na_mp_pack_raw(pk, b, sizeof b);
		break;
	}
	}
}

/* Packs a map of the fields into sb (cleared first). */
static void build(msgpack_sbuffer *sb, const field *fs, size_t n)
{
	msgpack_sbuffer_clear(sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, n);
	for (size_t i = 0; i < n; i++) {
		na_mp_pack_cstr(&pk, fs[i].key);
		pack_value(&pk, &fs[i]);
	}
}

/* Runs the check on an exact-size copy (ASan catches overreads). */
static int check(const msgpack_sbuffer *sb, na_article_info *info, char *err, size_t errlen)
{
	uint8_t *b = malloc(sb->size);
	assert_non_null(b);
	memcpy(b, sb->data, sb->size);
	na_mp r;
	na_mp_init(&r, b, sb->size);
	err[0] = 0;
	int rc = na_article_check(&r, info, "params[0]", err, errlen);
	if (rc == 0) {
		/* the whole map is consumed and info points into the input */
		assert_int_equal(na_mp_left(&r), 0);
		assert_ptr_equal(info->raw, b);
		assert_int_equal(info->raw_len, sb->size);
		/* make info point into sb for the caller */
		info->guid = sb->data + (info->guid - (const char *)b);
		info->raw = (const uint8_t *)sb->data;
	}
	free(b);
	return rc;
}

#define GOOD_GUID { "guid", V_STR, "urn:test:1", 0, 0 }
#define GOOD_PUB { "published", V_TS, NULL, 1700000000, 250000000 }
#define GOOD_TITLE { "title", V_STR, "A title", 0, 0 }

static void expect_error(const field *fs, size_t n, const char *want1, const char *want2)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	build(&sb, fs, n);
	na_article_info info;
	char err[512];
	int rc = check(&sb, &info, err, sizeof err);
	if (rc != -1)
		fail_msg("expected an error naming \"%s\", got success", want1);
	if (!strstr(err, want1) || (want2 && !strstr(err, want2)))
		fail_msg("error \"%s\" does not name \"%s\"%s%s", err, want1, want2 ? " / " : "",
			 want2 ? want2 : "");
	/* every message carries the caller's prefix */
	assert_non_null(strstr(err, "params[0]"));
	msgpack_sbuffer_destroy(&sb);
}

/* ---- tests --------------------------------------------------------- */

static void test_valid_article(void **state)
{
	(void)state;
	field fs[] = {
		{ "title", V_STR, "", 0, 0 }, /* may be empty */
		{ "x-custom", V_MAP, NULL, 0, 0 },
		{ "published", V_TS, NULL, -86400, 999999999 },
		{ "body", V_STR, "text", 0, 0 },
		{ "summary", V_STR, "s", 0, 0 },
		{ "url", V_STR, "https://example.com/", 0, 0 },
		{ "source", V_STR, "wire", 0, 0 },
		{ "section", V_STR, "world", 0, 0 },
		{ "language", V_STR, "en", 0, 0 },
		{ "authors", V_STRS, NULL, 0, 0 },
		{ "tags", V_STRS, NULL, 0, 0 },
		{ "updated", V_TS, NULL, 1, 0 },
		{ "blob", V_BIN, NULL, 0, 0 },
		{ "score", V_INT, NULL, 0, 0 },
		{ "nothing", V_NIL, NULL, 0, 0 },
		{ "guid", V_STR, "urn:x:42", 0, 0 },
	};
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	build(&sb, fs, sizeof fs / sizeof fs[0]);
	na_article_info info;
	char err[256];
	assert_int_equal(check(&sb, &info, err, sizeof err), 0);
	assert_int_equal(info.guid_len, 8);
	assert_memory_equal(info.guid, "urn:x:42", 8);
	assert_true(info.published.sec == -86400);
	assert_int_equal(info.published.nsec, 999999999);

	/* the map is consumed exactly: what follows it stays */
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_true(&pk);
	na_mp r;
	na_mp_init(&r, sb.data, sb.size);
	assert_int_equal(na_article_check(&r, &info, "a", err, sizeof err), 0);
	assert_int_equal(na_mp_left(&r), 1);
	assert_int_equal(info.raw_len, sb.size - 1);
	msgpack_sbuffer_destroy(&sb);

	/* the three required fields alone, in every time form */
	static const na_ts ts[] = { { 0, 0 }, { 1700000000, 0 }, { 1700000000, 5 },
				    { 0x400000000LL, 0 }, { NA_TS_MIN_SEC, 0 },
				    { NA_TS_MAX_SEC, 999999999 } };
	for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
		field m[] = { GOOD_GUID, { "published", V_TS, NULL, ts[i].sec, ts[i].nsec },
			      GOOD_TITLE };
		msgpack_sbuffer_init(&sb);
		build(&sb, m, 3);
		assert_int_equal(check(&sb, &info, err, sizeof err), 0);
		assert_true(info.published.sec == ts[i].sec);
		assert_int_equal(info.published.nsec, ts[i].nsec);
		msgpack_sbuffer_destroy(&sb);
	}
}

static void test_missing_required(void **state)
{
	(void)state;
	field no_guid[] = { GOOD_PUB, GOOD_TITLE, { "body", V_STR, "b", 0, 0 } };
	expect_error(no_guid, 3, "guid", "missing");
	field no_pub[] = { GOOD_GUID, GOOD_TITLE, { "updated", V_TS, NULL, 5, 0 } };
	expect_error(no_pub, 3, "published", "missing");
	field no_title[] = { GOOD_GUID, GOOD_PUB, { "body", V_STR, "b", 0, 0 } };
	expect_error(no_title, 3, "title", "missing");
	expect_error(NULL, 0, "guid", "missing");
}

static void test_wrong_types(void **state)
{
	(void)state;
	static const char *const strs[] = { "guid", "title", "body", "summary", "url",
					    "source", "section", "language" };
	static const enum vk not_str[] = { V_INT, V_NIL, V_BIN, V_STRS, V_MAP, V_TS };
	for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
		for (size_t k = 0; k < sizeof not_str / sizeof not_str[0]; k++) {
			field fs[] = { GOOD_GUID, GOOD_PUB, GOOD_TITLE, { strs[i], not_str[k], NULL, 0, 0 } };
			/* replace the required one if it is one of them */
			size_t n = 4;
			for (size_t j = 0; j < 3; j++)
				if (strcmp(fs[j].key, strs[i]) == 0) {
					fs[j] = fs[3];
					n = 3;
				}
			char name[32];
			snprintf(name, sizeof name, "params[0].%s", strs[i]);
			expect_error(fs, n, name, "expected a string");
		}
	static const char *const lists[] = { "authors", "tags" };
	static const enum vk not_list[] = { V_STR, V_INT, V_NIL, V_MAP, V_ARRAY_INT };
	for (size_t i = 0; i < 2; i++) {
		for (size_t k = 0; k < sizeof not_list / sizeof not_list[0]; k++) {
			field fs[] = { GOOD_GUID, GOOD_PUB, GOOD_TITLE, { lists[i], not_list[k], NULL, 0, 0 } };
			char name[32];
			snprintf(name, sizeof name, "params[0].%s", lists[i]);
			expect_error(fs, 4, name, "string");
		}
		field fs[] = { GOOD_GUID, GOOD_PUB, GOOD_TITLE, { lists[i], V_BADSTRS, NULL, 0, 0 } };
		char name[32];
		snprintf(name, sizeof name, "params[0].%s[1]", lists[i]);
		expect_error(fs, 4, name, "expected a string, got uint");
	}
	static const char *const times[] = { "published", "updated" };
	static const enum vk not_ts[] = { V_STR, V_INT, V_NIL, V_BIN, V_MAP };
	for (size_t i = 0; i < 2; i++)
		for (size_t k = 0; k < sizeof not_ts / sizeof not_ts[0]; k++) {
			field fs[] = { GOOD_GUID, GOOD_TITLE, GOOD_PUB, { times[i], not_ts[k], "2020-01-01", 0, 0 } };
			size_t n = i == 0 ? 3 : 4;
			if (i == 0)
				fs[2] = fs[3];
			char name[32];
			snprintf(name, sizeof name, "params[0].%s", times[i]);
			expect_error(fs, n, name, "timestamp");
		}
	/* an extension that is not a timestamp */
	{
		msgpack_sbuffer sb;
		msgpack_sbuffer_init(&sb);
		msgpack_packer pk;
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		msgpack_pack_map(&pk, 3);
		na_mp_pack_cstr(&pk, "guid");
		na_mp_pack_cstr(&pk, "g");
		na_mp_pack_cstr(&pk, "title");
		na_mp_pack_cstr(&pk, "t");
		na_mp_pack_cstr(&pk, "published");
		msgpack_pack_ext(&pk, 4, 1);
		msgpack_pack_ext_body(&pk, "abcd", 4);
		na_article_info info;
		char err[256];
		assert_int_equal(check(&sb, &info, err, sizeof err), -1);
		assert_non_null(strstr(err, "published"));
		msgpack_sbuffer_destroy(&sb);
	}
}

static void test_guid_limits(void **state)
{
	(void)state;
	field empty[] = { { "guid", V_STR, "", 0, 0 }, GOOD_PUB, GOOD_TITLE };
	expect_error(empty, 3, "params[0].guid", "got 0");
	char *g = malloc(1026);
	memset(g, 'g', 1025);
	g[1025] = 0;
	field big[] = { { "guid", V_STR, g, 0, 0 }, GOOD_PUB, GOOD_TITLE };
	expect_error(big, 3, "params[0].guid", "1025");
	g[1024] = 0; /* 1024 bytes is the limit, allowed */
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	build(&sb, big, 3);
	na_article_info info;
	char err[256];
	assert_int_equal(check(&sb, &info, err, sizeof err), 0);
	assert_int_equal(info.guid_len, NA_MAX_GUID_BYTES);
	msgpack_sbuffer_destroy(&sb);
	free(g);
}

static void test_time_range(void **state)
{
	(void)state;
	static const struct { int64_t sec; uint32_t nsec; bool ok; } t[] = {
		{ NA_TS_MIN_SEC - 1, 999999999, false },
		{ NA_TS_MIN_SEC, 0, true },
		{ NA_TS_MAX_SEC, 999999999, true },
		{ NA_TS_MAX_SEC + 1, 0, false },
		{ INT64_MIN, 0, false },
		{ INT64_MAX, 0, false },
		{ 0x3ffffffffLL, 0, true }, /* year 2514, 64-bit form */
	};
	for (int which = 0; which < 2; which++)
		for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
			field fs[] = { GOOD_GUID, GOOD_TITLE, GOOD_PUB,
				       { which ? "updated" : "published", V_TS, NULL, t[i].sec, t[i].nsec } };
			size_t n = 4;
			if (!which) {
				fs[2] = fs[3];
				n = 3;
			}
			if (t[i].ok) {
				msgpack_sbuffer sb;
				msgpack_sbuffer_init(&sb);
				build(&sb, fs, n);
				na_article_info info;
				char err[256];
				if (check(&sb, &info, err, sizeof err))
					fail_msg("%lld s refused: %s", (long long)t[i].sec, err);
				msgpack_sbuffer_destroy(&sb);
			} else {
				expect_error(fs, n, which ? "params[0].updated" : "params[0].published",
					     "outside years 1..9999");
			}
		}
	/* nanoseconds >= 10^9 */
	field ns[] = { GOOD_GUID, GOOD_TITLE, { "published", V_TS_RAW, NULL, 100, 1000000000u } };
	expect_error(ns, 3, "params[0].published", "nanoseconds");
	field ns2[] = { GOOD_GUID, GOOD_TITLE, GOOD_PUB, { "updated", V_TS_RAW, NULL, 100, 0xffffffffu } };
	expect_error(ns2, 4, "params[0].updated", "nanoseconds");
}

static void test_duplicate_keys(void **state)
{
	(void)state;
	field two_titles[] = { GOOD_GUID, GOOD_TITLE, GOOD_PUB, { "title", V_STR, "other", 0, 0 } };
	expect_error(two_titles, 4, "\"title\"", "twice");
	field two_guids[] = { GOOD_GUID, GOOD_TITLE, GOOD_PUB, { "guid", V_STR, "urn:other", 0, 0 } };
	expect_error(two_guids, 4, "\"guid\"", "twice");
	field two_unknown[] = { GOOD_GUID, GOOD_TITLE, GOOD_PUB, { "zz", V_INT, NULL, 0, 0 },
				{ "zz", V_NIL, NULL, 0, 0 } };
	expect_error(two_unknown, 5, "\"zz\"", "twice");

	/* more than 32 keys (the heap path) */
	char names[40][8];
	field many[43] = { GOOD_GUID, GOOD_TITLE, GOOD_PUB };
	for (int i = 0; i < 40; i++) {
		snprintf(names[i], sizeof names[i], "k%02d", i);
		many[3 + i] = (field){ names[i], V_INT, NULL, 0, 0 };
	}
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	build(&sb, many, 43);
	na_article_info info;
	char err[256];
	assert_int_equal(check(&sb, &info, err, sizeof err), 0);
	msgpack_sbuffer_destroy(&sb);
	many[42].key = "k07"; /* the last one repeats an early one */
	expect_error(many, 43, "\"k07\"", "twice");
	many[42].key = "title";
	many[42].kind = V_STR;
	expect_error(many, 43, "\"title\"", "twice");
	/* and an error early in a long map does not leak the key table */
	many[42].key = "k39";
	many[20].kind = V_NIL;
	many[20].key = "body";
	expect_error(many, 43, "params[0].body", "expected a string");
}

static void test_bad_shapes(void **state)
{
	(void)state;
	na_article_info info;
	char err[256];
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);

	/* not a map */
	msgpack_pack_array(&pk, 0);
	assert_int_equal(check(&sb, &info, err, sizeof err), -1);
	assert_non_null(strstr(err, "must be a map"));
	assert_non_null(strstr(err, "array"));

	/* a non-string key */
	msgpack_sbuffer_clear(&sb);
	msgpack_pack_map(&pk, 4);
	na_mp_pack_cstr(&pk, "guid");
	na_mp_pack_cstr(&pk, "g");
	msgpack_pack_int(&pk, 7);
	na_mp_pack_cstr(&pk, "v");
	na_mp_pack_cstr(&pk, "title");
	na_mp_pack_cstr(&pk, "t");
	na_mp_pack_cstr(&pk, "published");
	na_mp_pack_ts(&pk, (na_ts){ 1, 0 });
	assert_int_equal(check(&sb, &info, err, sizeof err), -1);
	assert_non_null(strstr(err, "field 1"));
	assert_non_null(strstr(err, "keys must be strings"));

	/* a map that announces more fields than there are bytes */
	uint8_t lie[] = { 0xde, 0x10, 0x00, 0xa1, 'a', 0x01 };
	uint8_t *b = malloc(sizeof lie);
	memcpy(b, lie, sizeof lie);
	na_mp r;
	na_mp_init(&r, b, sizeof lie);
	assert_int_equal(na_article_check(&r, &info, "x", err, sizeof err), -1);
	assert_non_null(strstr(err, "announces"));
	free(b);

	/* every truncation of a valid article fails without overreading */
	field fs[] = { GOOD_GUID, GOOD_PUB, GOOD_TITLE, { "tags", V_STRS, NULL, 0, 0 },
		       { "x", V_MAP, NULL, 0, 0 }, { "updated", V_TS, NULL, 9, 9 } };
	build(&sb, fs, 6);
	for (size_t len = 0; len < sb.size; len++) {
		uint8_t *t = malloc(len ? len : 1);
		memcpy(t, sb.data, len);
		na_mp_init(&r, t, len);
		assert_int_equal(na_article_check(&r, &info, "cut", err, sizeof err), -1);
		assert_true(strlen(err) > 0);
		free(t);
	}
	/* messages are cut to errlen, always terminated */
	char small[12];
	field nog[] = { GOOD_PUB, GOOD_TITLE };
	build(&sb, nog, 2);
	na_mp_init(&r, sb.data, sb.size);
	memset(small, 'X', sizeof small);
	assert_int_equal(na_article_check(&r, &info, "params[0]", small, sizeof small), -1);
	assert_int_equal(strlen(small), sizeof small - 1);
	msgpack_sbuffer_destroy(&sb);
}

static void test_project(void **state)
{
	(void)state;
	field fs[] = { GOOD_GUID, GOOD_PUB, GOOD_TITLE, { "body", V_STR, "the body", 0, 0 },
		       { "x-extra", V_MAP, NULL, 0, 0 }, { "tags", V_STRS, NULL, 0, 0 } };
	msgpack_sbuffer src, out, want;
	msgpack_sbuffer_init(&src);
	msgpack_sbuffer_init(&out);
	msgpack_sbuffer_init(&want);
	build(&src, fs, 6);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &out, msgpack_sbuffer_write);

	/* named fields in stored order, not request order; unknown names and
	 * names that are prefixes of field names are ignored */
	na_fields f = { .n = 5 };
	f.name[0].s = "tags"; f.name[0].n = 4;
	f.name[1].s = "x-extra"; f.name[1].n = 7;
	f.name[2].s = "guid"; f.name[2].n = 4;
	f.name[3].s = "nope"; f.name[3].n = 4;
	f.name[4].s = "tit"; f.name[4].n = 3;
	assert_int_equal(na_article_project(&pk, (const uint8_t *)src.data, src.size, &f), 0);
	field kept[] = { fs[0], fs[4], fs[5] };
	build(&want, kept, 3);
	assert_int_equal(out.size, want.size);
	assert_memory_equal(out.data, want.data, want.size);

	/* no names: an empty map */
	msgpack_sbuffer_clear(&out);
	na_fields none = { .n = 0 };
	assert_int_equal(na_article_project(&pk, (const uint8_t *)src.data, src.size, &none), 0);
	assert_int_equal(out.size, 1);
	assert_int_equal((uint8_t)out.data[0], 0x80);

	/* all names: the same bytes */
	msgpack_sbuffer_clear(&out);
	na_fields all = { .n = 6 };
	for (int i = 0; i < 6; i++) {
		all.name[i].s = fs[i].key;
		all.name[i].n = (uint32_t)strlen(fs[i].key);
	}
	assert_int_equal(na_article_project(&pk, (const uint8_t *)src.data, src.size, &all), 0);
	assert_int_equal(out.size, src.size);
	assert_memory_equal(out.data, src.data, src.size);

	/* a value that is not a map */
	uint8_t arr[] = { 0x90 };
	assert_int_equal(na_article_project(&pk, arr, 1, &f), -1);
	msgpack_sbuffer_destroy(&src);
	msgpack_sbuffer_destroy(&out);
	msgpack_sbuffer_destroy(&want);
}

static void test_guid_lookup(void **state)
{
	(void)state;
	field fs[] = { GOOD_TITLE, { "x", V_MAP, NULL, 0, 0 }, GOOD_PUB,
		       { "guid", V_STR, "urn:found", 0, 0 } };
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	build(&sb, fs, 4);
	const char *g;
	uint32_t gn;
	assert_int_equal(na_article_guid((const uint8_t *)sb.data, sb.size, &g, &gn), 0);
	assert_int_equal(gn, 9);
	assert_memory_equal(g, "urn:found", 9);
	build(&sb, fs, 3);
	assert_int_equal(na_article_guid((const uint8_t *)sb.data, sb.size, &g, &gn), -1);
	uint8_t notmap[] = { 0xa1, 'x' };
	assert_int_equal(na_article_guid(notmap, 2, &g, &gn), -1);
	msgpack_sbuffer_destroy(&sb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_article),
		cmocka_unit_test(test_missing_required),
		cmocka_unit_test(test_wrong_types),
		cmocka_unit_test(test_guid_limits),
		cmocka_unit_test(test_time_range),
		cmocka_unit_test(test_duplicate_keys),
		cmocka_unit_test(test_bad_shapes),
		cmocka_unit_test(test_project),
		cmocka_unit_test(test_guid_lookup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
