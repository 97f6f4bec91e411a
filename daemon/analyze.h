/*
 * analyze.h - text analysis for full-text search: from a field's text to
 * the terms the index stores and queries look up.
 *
 * Text fields (title, summary, body) are split into words (runs of Unicode
 * letters, digits and combining marks; every CJK ideograph or kana is a word
 * of its own), each normalised with NFKC, case folding and accent stripping
 * (utf8proc), then stemmed with the Snowball stemmer of the article's
 * language when there is one (libstemmer). Exact-match fields (authors,
 * tags, source, section) are normalised the same way as a whole value, with
 * runs of white space collapsed, and never stemmed.
 *
 * An analyzer keeps one stemmer per language and a scratch buffer, so it
 * belongs to one thread at a time.
 */
#ifndef NA_ANALYZE_H
#define NA_ANALYZE_H

#include <stddef.h>
#include <stdint.h>

/* Longest term kept, in bytes after normalisation; longer words are dropped
 * (they still take a position). */
#define NA_TERM_MAX 64
/* Longest exact-match value kept (longer ones are cut at a character). */
#define NA_EXACT_MAX 200

typedef struct na_analyzer na_analyzer;

/* One word: its normalised (and maybe stemmed) bytes, its position among
 * the words of the text, and where it was in the text (byte offsets). */
typedef struct na_token {
	const char *term;
	size_t len;
	uint32_t pos;
	size_t start, end;
} na_token;

/* Called per word; a non-zero return stops the walk and is returned. */
typedef int (*na_token_fn)(const na_token *t, void *arg);

/* 0 and *out (free with na_analyzer_free), or -ENOMEM. */
int na_analyzer_new(na_analyzer **out);
void na_analyzer_free(na_analyzer *a);

/*
 * The two-letter code of a language value ("en", "en-GB", "English", "eng"
 * all give "en") when Snowball has a stemmer for it; otherwise "" (no
 * stemming). out must hold 3 bytes.
 */
void na_lang_code(const char *lang, size_t n, char out[3]);

/*
 * Splits text (UTF-8; invalid bytes separate words) into words, calling fn
 * for each. lang is a code from na_lang_code ("" = no stemming); stem = 0
 * turns stemming off. Positions start at pos0. Returns 0, fn's non-zero
 * value, or -ENOMEM.
 */
int na_analyze(na_analyzer *a, const char *text, size_t len, const char *lang, int stem,
	       uint32_t pos0, na_token_fn fn, void *arg);

/*
 * Normalises an exact-match value into out (NA_EXACT_MAX bytes at most):
 * NFKC, case folded, accents stripped, control characters dropped, white
 * space trimmed and collapsed to single spaces. Returns the length (0 for an
 * empty or invalid value).
 */
size_t na_exact_norm(na_analyzer *a, const char *s, size_t n, char out[NA_EXACT_MAX]);

#endif
