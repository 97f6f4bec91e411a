/*
 * analyze.c - words, normalisation and stemming (see analyze.h).
 *
 * ASCII words, the bulk of most news text, take a fast path (lower-casing
 * is all NFKC + case folding + accent stripping does to them); any word
 * with a non-ASCII character goes through utf8proc. Stemmers are created on
 * first use per language and kept.
 */
#include "analyze.h"

#include <errno.h>
#include <libstemmer.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <utf8proc.h>

static const struct lang {
	const char *code, *name, *alias;
} langs[] = {
	{ "ar", "arabic", "ara" },     { "hy", "armenian", "hye" },  { "eu", "basque", "eus" },
	{ "ca", "catalan", "cat" },    { "da", "danish", "dan" },    { "nl", "dutch", "nld" },
	{ "en", "english", "eng" },    { "fi", "finnish", "fin" },   { "fr", "french", "fra" },
	{ "de", "german", "deu" },     { "el", "greek", "ell" },     { "hi", "hindi", "hin" },
	{ "hu", "hungarian", "hun" },  { "id", "indonesian", "ind" }, { "ga", "irish", "gle" },
	{ "it", "italian", "ita" },    { "lt", "lithuanian", "lit" }, { "ne", "nepali", "nep" },
	{ "no", "norwegian", "nor" },  { "pt", "portuguese", "por" }, { "ro", "romanian", "ron" },
	{ "ru", "russian", "rus" },    { "sr", "serbian", "srp" },   { "es", "spanish", "spa" },
	{ "sv", "swedish", "swe" },    { "ta", "tamil", "tam" },     { "tr", "turkish", "tur" },
	{ "yi", "yiddish", "yid" },
};
#define NLANGS (sizeof langs / sizeof langs[0])

struct na_analyzer {
	struct sb_stemmer *stem[NLANGS];
	bool stem_failed[NLANGS];
	utf8proc_int32_t cps[NA_TERM_MAX * 2];
	char word[NA_TERM_MAX + 1];
};

#define NORM_OPTS (UTF8PROC_STABLE | UTF8PROC_COMPAT | UTF8PROC_COMPOSE | UTF8PROC_CASEFOLD | \
		   UTF8PROC_STRIPMARK)

int na_analyzer_new(na_analyzer **out)
{
	*out = calloc(1, sizeof **out);
	return *out ? 0 : -ENOMEM;
}

void na_analyzer_free(na_analyzer *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < NLANGS; i++)
		if (a->stem[i])
			sb_stemmer_delete(a->stem[i]);
	free(a);
}

void na_lang_code(const char *lang, size_t n, char out[3])
{
	out[0] = 0;
	/* the primary subtag: "en-GB", "en_US" -> "en" */
	size_t m = 0;
	while (m < n && lang[m] != '-' && lang[m] != '_')
		m++;
	if (m == 0 || m > 16)
		return;
	for (size_t i = 0; i < NLANGS; i++) {
		const struct lang *l = &langs[i];
		if ((m == 2 && strncasecmp(lang, l->code, 2) == 0) ||
		    (m == 3 && strncasecmp(lang, l->alias, 3) == 0) ||
		    (m == strlen(l->name) && strncasecmp(lang, l->name, m) == 0)) {
			memcpy(out, l->code, 3);
			return;
		}
	}
}

static struct sb_stemmer *stemmer(na_analyzer *a, const char *code)
{
	if (!code[0])
		return NULL;
	for (size_t i = 0; i < NLANGS; i++) {
		if (memcmp(code, langs[i].code, 2) != 0)
			continue;
		if (!a->stem[i] && !a->stem_failed[i]) {
			a->stem[i] = sb_stemmer_new(langs[i].name, "UTF_8");
			a->stem_failed[i] = a->stem[i] == NULL;
		}
		return a->stem[i];
	}
	return NULL;
}

/* Han, kana and the like: one word per character. */
static bool ideographic(utf8proc_int32_t c)
{
	return (c >= 0x3040 && c <= 0x30ff) || (c >= 0x3400 && c <= 0x4dbf) ||
	       (c >= 0x4e00 && c <= 0x9fff) || (c >= 0xf900 && c <= 0xfaff) ||
	       (c >= 0x20000 && c <= 0x3134f);
}

static bool wordchar(utf8proc_int32_t c, bool inword)
{
	switch (utf8proc_category(c)) {
	case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
	case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_ND:
	case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
		return true;
	case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
		return inword;
	default:
		return false;
	}
}

/* Normalises the word s[0..n) into a->word; returns its length, or 0 when
 * it is too long or normalises to nothing. */
static size_t norm_word(na_analyzer *a, const char *s, size_t n, bool ascii)
{
	if (ascii) {
		if (n > NA_TERM_MAX)
			return 0;
		for (size_t i = 0; i < n; i++) {
			char c = s[i];
			a->word[i] = c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
		}
		return n;
	}
	if (n > NA_TERM_MAX * 4)
		return 0;
	utf8proc_ssize_t k = utf8proc_decompose((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n,
						a->cps, NA_TERM_MAX * 2, NORM_OPTS);
	if (k <= 0 || k > NA_TERM_MAX * 2)
		return 0;
	utf8proc_ssize_t m = utf8proc_reencode(a->cps, k, NORM_OPTS);
	if (m <= 0 || m > NA_TERM_MAX)
		return 0;
	memcpy(a->word, a->cps, (size_t)m);
	return (size_t)m;
}

int na_analyze(na_analyzer *a, const char *text, size_t len, const char *lang, int stem,
	       uint32_t pos0, na_token_fn fn, void *arg)
{
	struct sb_stemmer *st = stem ? stemmer(a, lang) : NULL;
	const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)text;
	size_t i = 0;
	uint32_t pos = pos0;
	while (i < len) {
		/* skip to the start of a word */
		utf8proc_int32_t c;
		utf8proc_ssize_t cl;
		if (p[i] < 0x80) {
			unsigned char b = p[i];
			if (!((b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9'))) {
				i++;
				continue;
			}
			c = b;
			cl = 1;
		} else {
			cl = utf8proc_iterate(p + i, (utf8proc_ssize_t)(len - i), &c);
			if (cl <= 0) {
				i++;
				continue;
			}
			if (!wordchar(c, false)) {
				i += (size_t)cl;
				continue;
			}
		}
		size_t start = i;
		bool ascii = c < 0x80;
		i += (size_t)cl;
		if (!ideographic(c)) {
			while (i < len) {
				if (p[i] < 0x80) {
					unsigned char b = p[i];
					if ((b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') ||
					    (b >= '0' && b <= '9')) {
						i++;
						continue;
					}
					break;
				}
				cl = utf8proc_iterate(p + i, (utf8proc_ssize_t)(len - i), &c);
				if (cl <= 0 || !wordchar(c, true) || ideographic(c))
					break;
				ascii = false;
				i += (size_t)cl;
			}
		}
		size_t wl = norm_word(a, text + start, i - start, ascii);
		if (wl) {
			const char *term = a->word;
			size_t tl = wl;
			if (st) {
				const sb_symbol *r = sb_stemmer_stem(st, (const sb_symbol *)a->word, (int)wl);
				if (!r)
					return -ENOMEM;
				int rl = sb_stemmer_length(st);
				if (rl > 0) {
					term = (const char *)r;
					tl = (size_t)rl;
				}
			}
			na_token t = { term, tl, pos, start, i };
			int rc = fn(&t, arg);
			if (rc)
				return rc;
		}
		pos++;
	}
	return 0;
}

size_t na_exact_norm(na_analyzer *a, const char *s, size_t n, char out[NA_EXACT_MAX])
{
	(void)a;
	utf8proc_uint8_t *m = NULL;
	if (n > 4096)
		n = 4096;
	utf8proc_ssize_t k = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &m,
					  NORM_OPTS);
	if (k < 0) {
		free(m);
		return 0;
	}
	size_t o = 0;
	bool space = false;
	for (utf8proc_ssize_t i = 0; i < k;) {
		utf8proc_int32_t c;
		utf8proc_ssize_t cl = utf8proc_iterate(m + i, k - i, &c);
		if (cl <= 0)
			break;
		utf8proc_category_t cat = utf8proc_category(c);
		bool ws = cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL ||
			  cat == UTF8PROC_CATEGORY_ZP || c == '\t' || c == '\n' || c == '\r';
		if (ws) {
			space = o > 0;
		} else if (cat != UTF8PROC_CATEGORY_CC && cat != UTF8PROC_CATEGORY_CF) {
			size_t need = (size_t)cl + (space ? 1 : 0);
			if (o + need > NA_EXACT_MAX)
				break;
			if (space)
				out[o++] = ' ';
			space = false;
			memcpy(out + o, m + i, (size_t)cl);
			o += (size_t)cl;
		}
		i += cl;
	}
	free(m);
	return o;
}
