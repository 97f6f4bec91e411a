/*
 * test_query.c - the query parser: the tree it builds for each operator,
 * and the position and wording of its errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "query.h"

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

/* The tree as an S-expression: (and a (not b)), "phrase", pre*, title:x */
static void show(const na_query *q, uint32_t id, char *out, size_t cap)
{
	const na_qnode *n = &q->node[id];
	size_t o = strlen(out);
	const char *f = n->field == NA_F_TEXT ? "" : na_qfield_name(n->field);
	switch (n->kind) {
	case NA_Q_WORD:
		snprintf(out + o, cap - o, "%s%s%.*s", f, *f ? ":" : "", (int)n->len, n->text);
		return;
	case NA_Q_PHRASE:
		snprintf(out + o, cap - o, "%s%s\"%.*s\"", f, *f ? ":" : "", (int)n->len, n->text);
		return;
	case NA_Q_PREFIX:
		snprintf(out + o, cap - o, "%s%s%.*s*", f, *f ? ":" : "", (int)n->len, n->text);
		return;
	default:
		break;
	}
	snprintf(out + o, cap - o, "(%s", n->kind == NA_Q_AND ? "and" : n->kind == NA_Q_OR ? "or" : "not");
	for (uint16_t i = 0; i < n->nkids; i++) {
		strncat(out, " ", cap - strlen(out) - 1);
		show(q, n->kid[i], out, cap);
	}
	strncat(out, ")", cap - strlen(out) - 1);
}

static void ok(const char *in, const char *want)
{
	na_query q;
	char err[256];
	if (na_query_parse(in, strlen(in), A, &q, err, sizeof err))
		fail_msg("[%s]: %s", in, err);
	char got[1024] = "";
	show(&q, q.root, got, sizeof got);
	na_query_free(&q);
	if (strcmp(got, want) != 0)
		fail_msg("[%s]: got %s, want %s", in, got, want);
}

static void bad(const char *in, const char *want)
{
	na_query q;
	char err[256];
	if (na_query_parse(in, strlen(in), A, &q, err, sizeof err) == 0) {
		na_query_free(&q);
		fail_msg("[%s] parsed; want error %s", in, want);
	}
	if (strncmp(err, want, strlen(want)) != 0)
		fail_msg("[%s]: error \"%s\", want \"%s...\"", in, err, want);
}

static void test_trees(void **s)
{
	(void)s;
	ok("cocoa", "cocoa");
	ok("  cocoa   beans ", "(and cocoa beans)");
	ok("cocoa AND beans", "(and cocoa beans)");
	ok("cocoa OR beans OR oil", "(or cocoa beans oil)");
	ok("a b OR c", "(or (and a b) c)");
	ok("a -b", "(and a (not b))");
	ok("-b a", "(and (not b) a)");
	ok("\"exact phrase\" x", "(and \"exact phrase\" x)");
	ok("econ*", "econ*");
	ok("title:cocoa author:\"Jane Doe\" tag:fx source:ap section:world",
	   "(and title:cocoa author:Jane Doe tag:fx source:ap section:world)");
	ok("title:\"big deal\"", "title:\"big deal\"");
	ok("author:jan*", "author:jan*");
	ok("(a OR b) -(c d)", "(and (or a b) (not (and c d)))");
	ok("or and", "(and or and)");          /* keywords are upper case */
	ok("10:30", "10:30");                  /* not a field name */
	ok("e-mail", "e-mail");
	ok("a OR(b)", "(or a b)");
}

static void test_errors(void **s)
{
	(void)s;
	bad("", "position 0: empty query");
	bad("\"open", "position 0: unterminated phrase");
	bad("x \"open", "position 2: unterminated phrase");
	bad("(a", "position 0: unbalanced \"(\"");
	bad("a)", "position 1: unbalanced \")\"");
	bad("-a", "position 0: a group of terms needs at least one that is not negated");
	bad("a OR -b", "position 5: a group of terms needs");
	bad("a OR", "position 2: OR needs a term after it");
	bad("OR a", "position 0: OR needs a term before it");
	bad("AND a", "position 0: AND needs a term before it");
	bad("a AND", "position 2: AND needs a term after it");
	bad("colour:red", "position 0: unknown field \"colour\"");
	bad("x title:", "position 2: title: needs a value");
	bad("*", "position 0: a lone \"*\"");
	bad("ab**", "position 0: a prefix ends with a single \"*\"");
	bad("u.s*", "position 0: a prefix must be a single word");
	bad("a - b", "position 2: \"-\" must be followed");
	bad("--a", "position 0: a group of terms needs");
	bad("!!!", "position 0: \"!!!\" has no letters or digits");
	bad("author:\"  \"", "position 0: author: needs a value");
	bad("()", "position 0: empty parentheses");
	na_query q;
	char err[128];
	assert_int_equal(na_query_parse("a\0b", 3, A, &q, err, sizeof err), -1);
	assert_string_equal(err, "position 1: NUL byte in the query");
	char deep[64] = "";
	for (int i = 0; i < 20; i++)
		strcat(deep, "(");
	strcat(deep, "a");
	bad(deep, "position 16: parentheses nested too deeply");
	char many[400] = "";
	for (int i = 0; i < 40; i++)
		strcat(many, "w ");
	bad(many, "position 64: query too complex");
	char huge[NA_QUERY_MAX_BYTES + 2];
	memset(huge, 'a', sizeof huge);
	assert_int_equal(na_query_parse(huge, sizeof huge, A, &q, err, sizeof err), -1);
	assert_non_null(strstr(err, "longer than"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_trees),
		cmocka_unit_test(test_errors),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
