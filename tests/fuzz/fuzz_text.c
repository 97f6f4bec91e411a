/*
 * fuzz_text.c - libFuzzer target: the text-page article extractor
 * (client/cli/textimport.c, `newsarch import --format text`).
 *
 * Byte 0 picks the options (bit 0: a guid, bit 1: a url, bit 2: a source,
 * bits 3..7: the default zone); the rest is the page. The first line of the
 * page (up to 15 bytes) is also given to na_text_zone_offset.
 *
 * Invariants: a page is either refused with a message or gives a JSON
 * object whose fields come in the documented order (guid, published,
 * updated, title, authors, body, source, url; body always there), whose
 * times are RFC 3339 UTC strings, and which na_json_article_from_json
 * accepts and na_json_from_msgpack writes back.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "textimport.h"
#include "timefmt.h"

#define CHECK(x) do { if (!(x)) { fprintf(stderr, "check failed: %s (line %d)\n", #x, __LINE__); abort(); } } while (0)

static const int offsets[] = { 0, 60, -300, 330, -480, 345, 840, -720, 1439, -1439 };
static const char *const order[] = { "guid", "published", "updated", "title", "authors",
				     "body", "source", "url" };

static void check_article(json_t *o, const na_text_opts *opts)
{
	CHECK(json_is_object(o));
	size_t next = 0;
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v) {
		while (next < sizeof order / sizeof *order && strcmp(order[next], k) != 0)
			next++;
		CHECK(next < sizeof order / sizeof *order); /* known, in order */
		next++;
		if (!strcmp(k, "published") || !strcmp(k, "updated")) {
			na_ts ts;
			CHECK(json_is_string(v));
			CHECK(na_rfc3339_parse(json_string_value(v), json_string_length(v), &ts, NULL) == 0);
		} else if (!strcmp(k, "authors")) {
			CHECK(json_is_array(v) && json_array_size(v) > 0);
			for (size_t i = 0; i < json_array_size(v); i++) {
				json_t *a = json_array_get(v, i);
				CHECK(json_is_string(a) && json_string_length(a) > 0);
			}
		} else {
			CHECK(json_is_string(v));
		}
	}
	CHECK(json_object_get(o, "guid") && json_object_get(o, "published") &&
	      json_object_get(o, "title") && json_object_get(o, "body"));
	CHECK(json_string_length(json_object_get(o, "title")) > 0);
	if (opts->guid)
		CHECK(!strcmp(json_string_value(json_object_get(o, "guid")), opts->guid));
	CHECK(!opts->url == !json_object_get(o, "url"));
	CHECK(!opts->source == !json_object_get(o, "source"));

	msgpack_sbuffer mp, js;
	char err[512];
	msgpack_sbuffer_init(&mp);
	msgpack_sbuffer_init(&js);
	err[0] = 0;
	int rc = na_json_article_from_json(o, &mp, err, sizeof err);
	if (rc) {
		fprintf(stderr, "article refused: %s\n", err);
		CHECK(!"na_text_extract gave an article na_json_article_from_json refuses");
	}
	rc = na_json_from_msgpack((const uint8_t *)mp.data, mp.size, &js, err, sizeof err);
	CHECK(rc == 0);
	msgpack_sbuffer_destroy(&mp);
	msgpack_sbuffer_destroy(&js);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	unsigned sel = data[0];
	na_text_opts opts = {
		.guid = sel & 1 ? "urn:fuzz:1" : NULL,
		.url = sel & 2 ? "https://news.example/a/1" : NULL,
		.source = sel & 4 ? "Example News" : NULL,
		.default_offset_min = offsets[(sel >> 3) % (sizeof offsets / sizeof *offsets)],
	};
	size_t len = size - 1;
	char *text = malloc(len ? len : 1); /* exact size: overreads are caught */
	CHECK(text);
	memcpy(text, data + 1, len);

	json_t *o = NULL;
	char err[512];
	err[0] = 0;
	int rc = na_text_extract(text, len, &opts, &o, err, sizeof err);
	if (rc == 0) {
		CHECK(o != NULL);
		check_article(o, &opts);
		json_decref(o);
	} else {
		CHECK(rc < 0 && o == NULL && err[0] != 0 && strlen(err) < sizeof err);
	}

	char zname[16];
	size_t zn = 0;
	while (zn < len && zn < sizeof zname - 1 && text[zn] != '\n' && text[zn] != '\0')
		zn++;
	memcpy(zname, text, zn);
	zname[zn] = '\0';
	int minutes = 12345;
	if (na_text_zone_offset(zname, &minutes) == 0)
		CHECK(minutes > -24 * 60 && minutes < 24 * 60);
	else
		CHECK(minutes == 12345);
	free(text);
	return 0;
}
