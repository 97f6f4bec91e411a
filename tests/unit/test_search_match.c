/*
 * test_search_match.c - the reference semantics of a query against one
 * article (na_search_match), on hand-written articles: stemming in the
 * article's language, phrases within one field, prefixes, exact fields,
 * boolean operators. The integration test compares the index with this.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "search.h"

static na_analyzer *A;
static msgpack_sbuffer EN, FR, NOLANG;

static void pack_str(msgpack_packer *pk, const char *s)
{
	msgpack_pack_str(pk, strlen(s));
	msgpack_pack_str_body(pk, s, strlen(s));
}

static void article(msgpack_sbuffer *sb, const char *lang, const char *title, const char *summary,
		    const char *body, const char *author, const char *tag, const char *source)
{
	msgpack_sbuffer_init(sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 8);
	pack_str(&pk, "guid");
	pack_str(&pk, "g");
	pack_str(&pk, "language");
	if (lang)
		pack_str(&pk, lang);
	else
		msgpack_pack_nil(&pk);
	pack_str(&pk, "title");
	pack_str(&pk, title);
	pack_str(&pk, "summary");
	pack_str(&pk, summary);
	pack_str(&pk, "body");
	pack_str(&pk, body);
	pack_str(&pk, "authors");
	msgpack_pack_array(&pk, 2);
	pack_str(&pk, author);
	pack_str(&pk, "Second Person");
	pack_str(&pk, "tags");
	msgpack_pack_array(&pk, 1);
	pack_str(&pk, tag);
	pack_str(&pk, "source");
	pack_str(&pk, source);
}

static int setup(void **s)
{
	(void)s;
	article(&EN, "en", "Cocoa prices rising", "Traders expect more",
		"The central banks were running out of patience. Interest rates went up.", "Jane Doe",
		"Commodities", "Reuters");
	article(&FR, "fr", "Les marchés nationaux", "Résumé", "Les banques centrales", "Zoë Brontë",
		"Énergie", "AFP");
	article(&NOLANG, NULL, "Running markets", "", "e-mail from the café", "li wei", "fx", "AP");
	return na_analyzer_new(&A);
}

static int teardown(void **s)
{
	(void)s;
	msgpack_sbuffer_destroy(&EN);
	msgpack_sbuffer_destroy(&FR);
	msgpack_sbuffer_destroy(&NOLANG);
	na_analyzer_free(A);
	return 0;
}

static void check(const msgpack_sbuffer *a, const char *q, int want)
{
	na_query qq;
	char err[256];
	if (na_query_parse(q, strlen(q), A, &qq, err, sizeof err))
		fail_msg("[%s]: %s", q, err);
	int got = na_search_match(A, &qq, (const uint8_t *)a->data, a->size);
	na_query_free(&qq);
	if (got != want)
		fail_msg("[%s]: got %d, want %d", q, got, want);
}

static void test_words_and_stems(void **s)
{
	(void)s;
	check(&EN, "cocoa", 1);
	check(&EN, "COCOA", 1);
	check(&EN, "price", 1);          /* English stems: prices ~ price */
	check(&EN, "run", 1);            /* running */
	check(&EN, "bank interest", 1);
	check(&EN, "bank coffee", 0);
	check(&NOLANG, "run", 0);        /* no language: no stemming */
	check(&NOLANG, "running", 1);
	check(&NOLANG, "cafe", 1);       /* accents folded */
	check(&NOLANG, "CAFÉ", 1);
	check(&FR, "marches", 1);        /* French stem of marchés */
	check(&FR, "banque", 1);
	check(&FR, "national", 1);
	check(&EN, "traders", 1);        /* summary is searched */
}

static void test_phrases_and_fields(void **s)
{
	(void)s;
	check(&EN, "\"interest rates\"", 1);
	check(&EN, "\"rates interest\"", 0);
	check(&EN, "\"patience interest\"", 1);  /* punctuation is no barrier */
	check(&EN, "\"rising traders\"", 0);      /* title and summary are separate fields */
	check(&EN, "title:cocoa", 1);
	check(&EN, "title:bank", 0);
	check(&EN, "title:\"cocoa prices\"", 1);
	check(&NOLANG, "e-mail", 1);              /* a word split in two is a phrase */
	check(&NOLANG, "\"mail from\"", 1);
	check(&NOLANG, "mail-e", 0);
}

/* A word longer than NA_TERM_MAX bytes is not a term, but it takes a
 * position, in the article as in the query: a phrase holding one matches
 * with its other words as far apart as in the query. */
static void test_phrase_with_overlong_word(void **s)
{
	(void)s;
	char longw[NA_TERM_MAX + 8], body[256], q[256];
	memset(longw, 'x', sizeof longw - 1);
	longw[sizeof longw - 1] = 0;
	snprintf(body, sizeof body, "the alpha %s beta gamma ends", longw);
	msgpack_sbuffer a;
	article(&a, NULL, "t", "", body, "x", "y", "z");
	snprintf(q, sizeof q, "\"alpha %s beta\"", longw);
	check(&a, q, 1);
	snprintf(q, sizeof q, "\"alpha %s beta gamma\"", longw);
	check(&a, q, 1);
	snprintf(q, sizeof q, "\"%s beta\"", longw);
	check(&a, q, 1);
	snprintf(q, sizeof q, "\"alpha %s\"", longw);
	check(&a, q, 1);
	check(&a, "\"alpha beta\"", 0);              /* the long word is between them */
	snprintf(q, sizeof q, "\"alpha %s gamma\"", longw);
	check(&a, q, 0);                              /* gamma is two on */
	snprintf(q, sizeof q, "\"alpha %s %s beta\"", longw, longw);
	check(&a, q, 0);                              /* one long word, not two */
	msgpack_sbuffer_destroy(&a);
}

static void test_prefix_and_exact(void **s)
{
	(void)s;
	check(&EN, "coc*", 1);
	check(&EN, "cocoax*", 0);
	check(&EN, "title:pri*", 1);
	check(&EN, "author:\"jane doe\"", 1);
	check(&EN, "author:jane", 0);           /* exact: the whole value */
	check(&EN, "author:jan*", 1);
	check(&EN, "author:\"second person\"", 1);
	check(&FR, "author:\"zoe bronte\"", 1);
	check(&FR, "tag:energie", 1);
	check(&EN, "tag:commodities source:reuters", 1);
	check(&EN, "source:afp", 0);
	check(&EN, "section:x", 0);
}

static void test_operators(void **s)
{
	(void)s;
	check(&EN, "cocoa OR coffee", 1);
	check(&EN, "coffee OR tea", 0);
	check(&EN, "cocoa -coffee", 1);
	check(&EN, "cocoa -bank", 0);
	check(&EN, "cocoa -\"rates interest\"", 1);
	check(&EN, "cocoa -\"interest rates\"", 0);
	check(&EN, "(coffee OR cocoa) (tea OR bank)", 1);
	check(&EN, "cocoa AND -(bank coffee)", 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_words_and_stems),
		cmocka_unit_test(test_phrases_and_fields),
		cmocka_unit_test(test_phrase_with_overlong_word),
		cmocka_unit_test(test_prefix_and_exact),
		cmocka_unit_test(test_operators),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
