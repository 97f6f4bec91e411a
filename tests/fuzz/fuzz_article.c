/*
 * fuzz_article.c - libFuzzer target: na_article_check, na_article_guid and
 * na_article_project on random bytes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "article.h"
#include "rpc.h"

#define CHECK(x) do { if (!(x)) { fprintf(stderr, "check failed: %s (line %d)\n", #x, __LINE__); abort(); } } while (0)

static const char *const names[] = { "guid", "title", "body", "published", "tags", "x", "" };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *b = malloc(size ? size : 1);
	memcpy(b, data, size);
	na_mp r;
	na_mp_init(&r, b, size);
	na_article_info info;
	char err[256];
	err[0] = 0;
	int rc = na_article_check(&r, &info, "params[0]", err, sizeof err);
	if (rc == 0) {
		CHECK(info.raw == b && info.raw_len <= size);
		CHECK(info.guid_len >= 1 && info.guid_len <= NA_MAX_GUID_BYTES);
		CHECK(info.guid >= (const char *)b && info.guid + info.guid_len <= (const char *)b + size);
		CHECK(info.published.sec >= NA_TS_MIN_SEC && info.published.sec <= NA_TS_MAX_SEC);
		CHECK(info.published.nsec < 1000000000u);
		const char *g;
		uint32_t gn;
		CHECK(na_article_guid(info.raw, info.raw_len, &g, &gn) == 0);
		CHECK(gn == info.guid_len && g == info.guid);
	} else {
		CHECK(rc == -1 && err[0] != 0 && strlen(err) < sizeof err);
		CHECK(strncmp(err, "params[0]", 9) == 0);
	}
	/* projection: on the valid map, or on whatever the bytes are */
	na_fields f = { .n = 0 };
	unsigned mask = size ? data[0] : 0;
	for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++)
		if (mask & (1u << i)) {
			f.name[f.n].s = names[i];
			f.name[f.n].n = (uint32_t)strlen(names[i]);
			f.n++;
		}
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	const uint8_t *src = rc == 0 ? info.raw : b;
	size_t srclen = rc == 0 ? info.raw_len : size;
	int prc = na_article_project(&pk, src, srclen, &f);
	if (rc == 0) {
		/* a valid article projects to one well-formed map, no larger */
		CHECK(prc == 0);
		na_mp o;
		uint32_t n;
		na_mp_init(&o, sb.data, sb.size);
		CHECK(na_mp_map(&o, &n) == 0 && n <= f.n);
		na_mp_init(&o, sb.data, sb.size);
		CHECK(na_mp_skip(&o) == 0 && na_mp_left(&o) == 0);
		CHECK(sb.size <= srclen + 4);
	}
	msgpack_sbuffer_destroy(&sb);
	free(b);
	return 0;
}
