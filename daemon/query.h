/*
 * query.h - the search query language: parsing a query string into a tree.
 *
 *   query    := or
 *   or       := and ( "OR" and )*
 *   and      := unary ( ["AND"] unary )*
 *   unary    := "-" primary | primary
 *   primary  := "(" or ")" | [field ":"] value
 *   value    := word | word "*" | '"' words '"'
 *   field    := "title" | "author" | "tag" | "source" | "section"
 *
 * Words are separated by white space; a word is any run of characters other
 * than white space, double quotes and parentheses. Every group of clauses
 * joined by AND needs at least one clause that is not negated. The parser
 * only builds the tree; words are analysed when the query runs, once per
 * language in the index (analyze.h).
 */
#ifndef NA_QUERY_H
#define NA_QUERY_H

#include <stddef.h>
#include <stdint.h>

#include "analyze.h"

#define NA_QUERY_MAX_BYTES 4096
#define NA_QUERY_MAX_NODES 128
#define NA_QUERY_MAX_LEAVES 32
#define NA_QUERY_MAX_DEPTH 16

typedef enum na_qkind { NA_Q_WORD, NA_Q_PHRASE, NA_Q_PREFIX, NA_Q_AND, NA_Q_OR, NA_Q_NOT } na_qkind;

/* Where a leaf looks: the text fields, or one field. */
typedef enum na_qfield {
	NA_F_TEXT, NA_F_TITLE, NA_F_AUTHOR, NA_F_TAG, NA_F_SOURCE, NA_F_SECTION
} na_qfield;

typedef struct na_qnode {
	na_qkind kind;
	na_qfield field;
	const char *text;     /* leaves: the word/phrase/prefix, in na_query.buf */
	uint32_t len;
	uint32_t pos;         /* byte offset in the query, for messages */
	uint16_t nkids;
	uint16_t kid[NA_QUERY_MAX_LEAVES]; /* AND/OR: children; NOT: kid[0] */
} na_qnode;

typedef struct na_query {
	na_qnode node[NA_QUERY_MAX_NODES];
	uint32_t n;
	uint32_t root;
	uint32_t leaves;
	char *buf;            /* a copy of the query (owned) */
} na_query;

/*
 * Parses q[0..n). 0 and a tree in *out (free with na_query_free), or -1 and
 * a message in err naming the byte position of the problem, e.g.
 * "position 7: unterminated phrase". a is used to check that every word has
 * something to search for.
 */
int na_query_parse(const char *q, size_t n, na_analyzer *a, na_query *out, char *err,
		   size_t errlen);
void na_query_free(na_query *q);

/* "title", "author", ... for messages and tests. */
const char *na_qfield_name(na_qfield f);

#endif
