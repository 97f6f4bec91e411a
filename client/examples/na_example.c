/*
 * na_example.c - a tour of libnewsarch: connect, build and store an
 * article, read it back, then list the articles of the last day.
 *
 *   na_example [ADDR]     ADDR defaults to 127.0.0.1:7411 (or unix:/path)
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "newsarch.h"

static int fail(const char *what, int rc, na_client *c)
{
	fprintf(stderr, "%s: %s (%s)\n", what, na_strerror(rc), c ? na_client_errmsg(c) : "");
	return 1;
}

int main(int argc, char **argv)
{
	const char *addr = argc > 1 ? argv[1] : NULL;
	char err[256];
	na_client *c;
	int rc = na_client_connect_ex(addr, NULL, &c, err, sizeof err);
	if (rc) {
		fprintf(stderr, "connect: %s (%s)\n", na_strerror(rc), err);
		return 1;
	}

	/* build an article */
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	char guid[64];
	snprintf(guid, sizeof guid, "example-%lld", (long long)now.tv_sec);
	na_article_builder *b;
	na_article *a = NULL;
	if ((rc = na_article_builder_new(&b)))
		return fail("builder", rc, c);
	na_article_builder_set_str(b, "guid", guid, strlen(guid));
	na_article_builder_set_time(b, "published", (na_time){ now.tv_sec, (uint32_t)now.tv_nsec });
	na_article_builder_set_str(b, "title", "Hello from libnewsarch", 22);
	na_article_builder_set_str(b, "body", "An example article.", 19);
	na_article_builder_add_author(b, "na_example", 10);
	na_article_builder_add_tag(b, "example", 7);
	rc = na_article_builder_finish(b, &a);
	na_article_builder_free(b);
	if (rc)
		return fail("finish", rc, c);

	/* store it */
	na_put_result res;
	rc = na_put(c, a, &res);
	na_article_free(a);
	if (rc)
		return fail("put", rc, c);
	printf("put %s: %s, seq %" PRIu64 "\n", guid,
	       res.status == NA_PUT_CREATED ? "created" :
	       res.status == NA_PUT_UPDATED ? "updated" : "unchanged", res.seq);

	/* read it back */
	na_article *got;
	if ((rc = na_get(c, guid, strlen(guid), NULL, 0, &got)))
		return fail("get", rc, c);
	const char *s;
	size_t n;
	if (na_article_get_title(got, &s, &n) == 0)
		printf("get %s: \"%.*s\"\n", guid, (int)n, s);
	na_article_free(got);

	/* everything published during the last day, newest first */
	na_time from = { now.tv_sec - 86400, 0 };
	na_range *it;
	na_range_opts o = { .from = &from, .reverse = true, .page_size = 500 };
	if ((rc = na_range_open(c, &o, &it)))
		return fail("range", rc, c);
	const na_article *x;
	size_t count = 0;
	while ((rc = na_range_next(it, &x)) == 1) {
		na_time t = { 0, 0 };
		na_article_get_published(x, &t);
		if (na_article_get_title(x, &s, &n) != 0) {
			s = "";
			n = 0;
		}
		printf("  %lld  %.*s\n", (long long)t.sec, (int)n, s);
		count++;
	}
	na_range_close(it);
	if (rc < 0)
		return fail("range", rc, c);
	printf("%zu article(s) in the last day\n", count);
	na_client_close(c);
	return 0;
}
