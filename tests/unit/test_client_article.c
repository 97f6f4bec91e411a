/*
 * test_client_article.c - na_article parsing and accessors, the builder.
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
#include <msgpack.h>

#include "mp.h"
#include "newsarch.h"

/* call must store into s and n */
#define ASSERT_STR(call, want)                             \
	do {                                               \
		assert_int_equal((call), 0);               \
		assert_int_equal(n, strlen(want));         \
		assert_memory_equal(s, (want), n);         \
	} while (0)

static na_article *build_full(void)
{
	na_article_builder *b;
	na_article *a = NULL;
	assert_int_equal(na_article_builder_new(&b), 0);
	assert_int_equal(na_article_builder_set_str(b, "guid", "g-1", 3), 0);
	assert_int_equal(na_article_builder_set_time(b, "published", (na_time){ 1641628320, 790000000 }), 0);
	assert_int_equal(na_article_builder_set_str(b, "title", "", 0), 0);
	assert_int_equal(na_article_builder_add_author(b, "Ann", 3), 0);
	assert_int_equal(na_article_builder_set_str(b, "body", "a\0b", 3), 0);
	assert_int_equal(na_article_builder_add_author(b, "Bob", 3), 0);
	assert_int_equal(na_article_builder_add_tag(b, "world", 5), 0);
	assert_int_equal(na_article_builder_set_raw(b, "x-score", "\xcb\x3f\xf0\0\0\0\0\0\0", 9), 0);
	assert_int_equal(na_article_builder_set_str(b, "title", "Hello", 5), 0); /* replaces */
	assert_int_equal(na_article_builder_set_time(b, "updated", (na_time){ -1, 5 }), 0);
	assert_int_equal(na_article_builder_finish(b, &a), 0);
	na_article_builder_free(b);
	return a;
}

static void test_builder_and_accessors(void **state)
{
	(void)state;
	na_article *a = build_full();
	const char *s;
	size_t n;
	na_time t;
	ASSERT_STR(na_article_get_guid(a, &s, &n), "g-1");
	ASSERT_STR(na_article_get_title(a, &s, &n), "Hello");
	assert_int_equal(na_article_get_body(a, &s, &n), 0);
	assert_int_equal(n, 3);
	assert_memory_equal(s, "a\0b", 3);
	assert_int_equal(na_article_get_url(a, &s, &n), NA_ENOFIELD);
	assert_int_equal(na_article_get_published(a, &t), 0);
	assert_int_equal(t.sec, 1641628320);
	assert_int_equal(t.nsec, 790000000);
	assert_int_equal(na_article_get_updated(a, &t), 0);
	assert_int_equal(t.sec, -1);
	assert_int_equal(t.nsec, 5);
	assert_int_equal(na_article_author_count(a), 2);
	ASSERT_STR(na_article_get_author(a, 0, &s, &n), "Ann");
	ASSERT_STR(na_article_get_author(a, 1, &s, &n), "Bob");
	assert_int_equal(na_article_get_author(a, 2, &s, &n), NA_EINVAL);
	assert_int_equal(na_article_tag_count(a), 1);
	ASSERT_STR(na_article_get_tag(a, 0, &s, &n), "world");

	/* field order: as first set; authors where the first author went */
	static const char *const order[] = { "guid", "published", "title", "authors", "body",
					     "tags", "x-score", "updated" };
	assert_int_equal(na_article_field_count(a), 8);
	for (size_t i = 0; i < 8; i++) {
		na_field f;
		assert_int_equal(na_article_get_field(a, i, &f), 0);
		assert_int_equal(f.name_len, strlen(order[i]));
		assert_memory_equal(f.name, order[i], f.name_len);
	}
	na_field f;
	assert_int_equal(na_article_find_field(a, "x-score", &f), 0);
	assert_int_equal(f.value_len, 9);
	assert_memory_equal(f.value, "\xcb\x3f\xf0\0\0\0\0\0\0", 9);
	assert_int_equal(na_article_find_field(a, "nope", &f), NA_ENOFIELD);

	/* the bytes parse back to the same article */
	const uint8_t *buf;
	size_t len;
	na_article_bytes(a, &buf, &len);
	na_article *b = NULL, *c = NULL;
	assert_int_equal(na_article_parse(buf, len, &b), 0);
	ASSERT_STR(na_article_get_title(b, &s, &n), "Hello");
	assert_int_equal(na_article_dup(b, &c), 0);
	const uint8_t *cb;
	size_t cl;
	na_article_bytes(c, &cb, &cl);
	assert_int_equal(cl, len);
	assert_memory_equal(cb, buf, len);
	na_article_free(a);
	na_article_free(b);
	na_article_free(c);
}

static void test_builder_refuses(void **state)
{
	(void)state;
	na_article_builder *b;
	na_article *a = NULL;
	assert_int_equal(na_article_builder_new(&b), 0);
	char big[1100];
	memset(big, 'g', sizeof big);
	assert_int_equal(na_article_builder_set_str(b, "guid", big, 1025), NA_EINVAL);
	assert_int_equal(na_article_builder_set_str(b, "guid", big, 0), NA_EINVAL);
	assert_int_equal(na_article_builder_set_str(b, "guid", big, 1024), 0);
	assert_int_equal(na_article_builder_set_str(b, "published", "x", 1), NA_EINVAL);
	assert_int_equal(na_article_builder_set_str(b, "authors", "x", 1), NA_EINVAL);
	assert_int_equal(na_article_builder_set_str(b, "", "x", 1), NA_EINVAL);
	assert_int_equal(na_article_builder_set_time(b, "title", (na_time){ 0, 0 }), NA_EINVAL);
	assert_int_equal(na_article_builder_set_time(b, "published", (na_time){ 0, 1000000000 }), NA_EINVAL);
	assert_int_equal(na_article_builder_set_time(b, "published", (na_time){ NA_TIME_MAX_SEC + 1, 0 }), NA_EINVAL);
	assert_int_equal(na_article_builder_set_time(b, "published", (na_time){ NA_TIME_MIN_SEC - 1, 0 }), NA_EINVAL);
	assert_int_equal(na_article_builder_set_raw(b, "title", "\xa1x", 2), NA_EINVAL);
	assert_int_equal(na_article_builder_set_raw(b, "x", "\xa1x\x01", 3), NA_EINVAL); /* two objects */
	assert_int_equal(na_article_builder_set_raw(b, "x", "\xa2x", 2), NA_EINVAL);     /* truncated */
	assert_int_equal(na_article_builder_set_raw(b, "x", "\xc1", 1), NA_EINVAL);
	/* missing published and title */
	assert_int_equal(na_article_builder_finish(b, &a), NA_EINVAL);
	assert_int_equal(na_article_builder_set_time(b, "published", (na_time){ NA_TIME_MIN_SEC, 0 }), 0);
	assert_int_equal(na_article_builder_finish(b, &a), NA_EINVAL);
	assert_int_equal(na_article_builder_set_str(b, "title", "t", 1), 0);
	assert_int_equal(na_article_builder_finish(b, &a), 0);
	na_article_free(a);
	assert_int_equal(na_article_builder_unset(b, "title"), 0);
	assert_int_equal(na_article_builder_unset(b, "title"), NA_ENOFIELD);
	assert_int_equal(na_article_builder_finish(b, &a), NA_EINVAL);
	na_article_builder_reset(b);
	assert_int_equal(na_article_builder_unset(b, "guid"), NA_ENOFIELD);
	na_article_builder_free(b);
}

static void test_parse_refuses(void **state)
{
	(void)state;
	na_article *a = (na_article *)1;
	static const struct {
		const char *b;
		size_t n;
	} bad[] = {
		{ "\x90", 1 },                             /* array */
		{ "\x81\x01\x01", 3 },                     /* int key */
		{ "\x82\xa1x\x01\xa1x\x02", 7 },           /* duplicate key */
		{ "\x81\xa5title\x01", 8 },                /* title not a string */
		{ "\x81\xa4guid\xa0", 7 },                 /* empty guid */
		{ "\x81\xa9published\x01", 12 },           /* published not a timestamp */
		{ "\x81\xa7" "authors\x91\x01", 11 },      /* author not a string */
		{ "\x81\xa1x", 3 },                        /* truncated */
		{ "\x80\x80", 2 },                         /* two objects */
		{ "\xc1", 1 },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(na_article_parse(bad[i].b, bad[i].n, &a), NA_EINVAL);
	assert_ptr_equal(a, (na_article *)1); /* untouched on failure */
	/* a map with a subset of fields and unknown values is fine */
	assert_int_equal(na_article_parse("\x82\xa5title\xa1t\xa1z\x93\x01\x02\xc0", 15, &a), 0);
	assert_int_equal(na_article_field_count(a), 2);
	const char *s;
	size_t n;
	assert_int_equal(na_article_get_guid(a, &s, &n), NA_ENOFIELD);
	assert_int_equal(na_article_author_count(a), 0);
	na_article_free(a);
}

/* A map of n fields "k0".."k<n-1>" (nil values); with dup, the last key
 * repeats the first. */
static void pack_fields(msgpack_sbuffer *sb, uint32_t n, bool dup)
{
	msgpack_packer pk;
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, n);
	for (uint32_t i = 0; i < n; i++) {
		char name[16];
		int len = snprintf(name, sizeof name, "k%u", dup && i == n - 1 ? 0 : i);
		msgpack_pack_str_with_body(&pk, name, (size_t)len);
		msgpack_pack_nil(&pk);
	}
}

static void test_parse_field_limit(void **state)
{
	(void)state;
	msgpack_sbuffer sb;
	na_article *a = NULL;
	msgpack_sbuffer_init(&sb);
	pack_fields(&sb, 4096, false);
	assert_int_equal(na_article_parse(sb.data, sb.size, &a), 0);
	assert_int_equal(na_article_field_count(a), 4096);
	na_field f;
	assert_int_equal(na_article_find_field(a, "k4095", &f), 0);
	na_article_free(a);
	sb.size = 0;
	pack_fields(&sb, 4096, true); /* k0 again at the end */
	assert_int_equal(na_article_parse(sb.data, sb.size, &a), NA_EINVAL);
	sb.size = 0;
	pack_fields(&sb, 4097, false); /* more than the protocol allows */
	assert_int_equal(na_article_parse(sb.data, sb.size, &a), NA_EINVAL);
	msgpack_sbuffer_destroy(&sb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_builder_and_accessors),
		cmocka_unit_test(test_builder_refuses),
		cmocka_unit_test(test_parse_refuses),
		cmocka_unit_test(test_parse_field_limit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
