/*
 * json.h - the JSON <-> MessagePack mapping of PROTOCOL.md section 6.
 *
 * Shared by the newsarch CLI and newsarch-bench: no globals, no I/O.
 *
 * JSON -> msgpack (articles):
 *   null, true/false, integers (int64), reals (packed as float64), strings,
 *   arrays and objects map over as themselves, object keys in the order they
 *   appear in the text. {"$base64": "..."} (that one key) becomes bin;
 *   {"$ext": N, "$base64": "..."} (those two keys, -128 <= N <= 127)
 *   becomes an extension. The top-level "published" and "updated" may be an
 *   RFC 3339 string or unix seconds (integer or real) and become timestamps.
 *   guid (string of 1..1024 bytes), published and title (string) are
 *   required. Duplicate keys are refused.
 *
 * msgpack -> JSON (any value; articles on export):
 *   timestamps become RFC 3339 UTC strings, bin {"$base64"}, other
 *   extensions {"$ext", "$base64"}; floats are printed with the fewest
 *   digits that read back to the same double (and always as reals); maps
 *   with non-string keys, strings that are not UTF-8, NaN/infinity and maps
 *   that would read back as bin/ext ({"$base64"} alone...) are refused.
 *
 * Errors: every function writes a message naming the field at fault into
 * err (errcap bytes), e.g. `published: not an RFC 3339 time: "yesterday"`.
 */
#ifndef NA_CLI_JSON_H
#define NA_CLI_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <msgpack.h>

#include "mp.h"

/* Deepest nesting accepted in an article (the article map is level 1);
 * kept below the server's max_depth so a batch never trips it. */
#define NA_JSON_MAX_DEPTH 24
/* Largest encoded article the client sends (the server default). */
#define NA_JSON_MAX_ARTICLE_BYTES (16u << 20)

/* Status codes (negative). */
enum {
	NA_JSON_OK = 0,
	NA_JSON_ESYNTAX = -1,  /* not JSON */
	NA_JSON_EVALUE = -2,   /* JSON, but not a valid article / value */
	NA_JSON_ENOMEM = -3,
};

/*
 * Parses one JSON text (an object) and appends its msgpack encoding as an
 * article to out. On error out is left as it was.
 */
int na_json_article_from_text(const char *text, size_t len, msgpack_sbuffer *out,
			      char *err, size_t errcap);

/* Same, from an already parsed jansson object. */
int na_json_article_from_json(const json_t *obj, msgpack_sbuffer *out, char *err,
			      size_t errcap);

/*
 * Appends the JSON text of the one msgpack object in buf[0..len) to out
 * (no trailing newline). path names the value in error messages ("" for
 * the top). On error out is left as it was.
 */
int na_json_from_msgpack(const uint8_t *buf, size_t len, msgpack_sbuffer *out,
			 char *err, size_t errcap);

/* Like na_json_from_msgpack but reads one object from r (advancing it). */
int na_json_from_mp(na_mp *r, msgpack_sbuffer *out, char *err, size_t errcap);

/* Appends s[0..n) as a JSON string literal (quoted, escaped); -1 when s
 * is not valid UTF-8 (nothing appended then) or on allocation failure. */
int na_json_quote(msgpack_sbuffer *out, const char *s, size_t n);

/* Base64 (RFC 4648, padded). Encode appends to out. Decode writes at most
 * cap bytes to dst, sets *n, returns -1 on a bad character or length. */
int na_json_b64_encode(msgpack_sbuffer *out, const uint8_t *p, size_t n);
int na_json_b64_decode(const char *s, size_t n, uint8_t *dst, size_t cap, size_t *outn);

/* True when s[0..n) is valid UTF-8 (no overlongs, surrogates, > U+10FFFF). */
int na_json_utf8_valid(const char *s, size_t n);

#endif
