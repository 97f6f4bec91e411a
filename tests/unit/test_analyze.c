/*
 * test_analyze.c - the text analyser: word splitting, NFKC + case folding +
 * accent stripping, stemming per language, positions and offsets, exact
 * field normalisation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "analyze.h"

typedef struct got {
	char terms[64][NA_TERM_MAX + 1];
	uint32_t pos[64];
	size_t start[64], end[64];
	size_t n;
} got;

static int collect(const na_token *t, void *arg)
{
	got *g = arg;
	if (g->n >= 64)
		return 1;
	memcpy(g->terms[g->n], t->term, t->len);
	g->terms[g->n][t->len] = 0;
	g->pos[g->n] = t->pos;
	g->start[g->n] = t->start;
	g->end[g->n] = t->end;
	g->n++;
	return 0;
}

static na_analyzer *A;

static int setup(void **s)
{
	(void)s;
	return na_analyzer_new(&A);
}

static int teardown(void **s)
{
	(void)s;
	na_analyzer_free(A);
	return 0;
}

/* Analyses text and checks the terms against a space-separated list. */
static void expect(const char *text, const char *lang, int stem, const char *want)
{
	got g = { .n = 0 };
	assert_int_equal(na_analyze(A, text, strlen(text), lang, stem, 0, collect, &g), 0);
	char joined[1024] = "";
	for (size_t i = 0; i < g.n; i++) {
		if (i)
			strcat(joined, " ");
		strcat(joined, g.terms[i]);
	}
	if (strcmp(joined, want) != 0)
		fail_msg("analyse [%s] lang [%s] stem %d: got [%s], want [%s]", text, lang, stem, joined, want);
}

static void test_words_and_folding(void **s)
{
	(void)s;
	expect("Hello, World! 42 times", "", 0, "hello world 42 times");
	expect("Café ÉCOLE naïve Zürich garçon", "", 0, "cafe ecole naive zurich garcon");
	expect("ﬁnance Ｆｕｌｌ", "", 0, "finance full");     /* NFKC: ligature, full width */
	expect("Straße", "", 0, "strasse");                   /* case folding */
	expect("e-mail U.S. 4.5", "", 0, "e mail u s 4 5");
	expect("東京タワー", "", 0, "東 京 タ ワ ー");           /* one word per ideograph/kana */
	expect("", "", 0, "");
	expect("-- !! ..", "", 0, "");
	/* invalid UTF-8 separates words instead of failing */
	expect("ab\xff" "cd", "", 0, "ab cd");
	/* combining marks belong to the word and are stripped */
	expect("cafe\xcc\x81 x", "", 0, "cafe x");
}

static void test_stemming(void **s)
{
	(void)s;
	expect("running runs markets banking", "en", 1, "run run market bank");
	expect("running runs", "en", 0, "running runs");
	expect("running runs", "", 1, "running runs");  /* no language: no stemming */
	expect("nationales", "fr", 1, "national");
	char code[3];
	na_lang_code("en-GB", 5, code);
	assert_string_equal(code, "en");
	na_lang_code("English", 7, code);
	assert_string_equal(code, "en");
	na_lang_code("fra", 3, code);
	assert_string_equal(code, "fr");
	na_lang_code("xx", 2, code);
	assert_string_equal(code, "");
	na_lang_code("", 0, code);
	assert_string_equal(code, "");
}

static void test_positions_and_offsets(void **s)
{
	(void)s;
	got g = { .n = 0 };
	const char *t = "Big  café, x";
	assert_int_equal(na_analyze(A, t, strlen(t), "", 0, 10, collect, &g), 0);
	assert_int_equal(g.n, 3);
	assert_int_equal(g.pos[0], 10);
	assert_int_equal(g.pos[2], 12);
	assert_int_equal(g.start[1], 5);
	assert_int_equal(g.end[1], 10); /* "café" is 5 bytes */
	/* a word longer than NA_TERM_MAX is dropped but takes a position */
	char longw[200];
	memset(longw, 'a', 100);
	strcpy(longw + 100, " b");
	g.n = 0;
	assert_int_equal(na_analyze(A, longw, strlen(longw), "", 0, 0, collect, &g), 0);
	assert_int_equal(g.n, 1);
	assert_int_equal(g.pos[0], 1);
}

static void test_exact_norm(void **s)
{
	(void)s;
	char out[NA_EXACT_MAX];
	const char *v = "  Zoë   BRONTË\t";
	size_t n = na_exact_norm(A, v, strlen(v), out);
	assert_int_equal(n, 10);
	assert_memory_equal(out, "zoe bronte", 10);
	/* a value cut inside a character is invalid: nothing to match */
	assert_int_equal(na_exact_norm(A, v, 5, out), 0);
	assert_int_equal(na_exact_norm(A, "   ", 3, out), 0);
	char big[1000];
	memset(big, 'x', sizeof big);
	assert_int_equal(na_exact_norm(A, big, sizeof big, out), NA_EXACT_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_words_and_folding),
		cmocka_unit_test(test_stemming),
		cmocka_unit_test(test_positions_and_offsets),
		cmocka_unit_test(test_exact_norm),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
