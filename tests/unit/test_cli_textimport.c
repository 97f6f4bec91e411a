/*
 * test_cli_textimport.c - `import --format text`: every page under
 * tests/data/text/NAME.txt is extracted and compared with
 * NAME.expected.json (field by field and in key order, after both went
 * through the JSON -> msgpack article mapping). An expected file of the
 * form {"error": "text"} means the page must be refused with a message
 * containing that text. The expected guid "GUID" stands for the derived
 * content guid ("text:" + 16 hex digits).
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../client/cli/json.c"
#include "../../client/cli/textimport.c"
#include "../../client/cli/timefmt.c"

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 1 << 16, n = 0;
	char *b = malloc(cap);
	size_t r;
	while (b && (r = fread(b + n, 1, cap - n, f)) > 0) {
		n += r;
		if (n == cap) {
			char *nb = realloc(b, cap *= 2);
			if (!nb) { free(b); b = NULL; }
			b = nb;
		}
	}
	fclose(f);
	if (b) b[n] = '\0';
	*len = n;
	return b;
}

static const char *data_dir(void)
{
	static char dir[4096];
	const char *src = getenv("NEWSARCH_SRC");
	snprintf(dir, sizeof dir, "%s/tests/data/text", src ? src : ".");
	return dir;
}

/* article JSON -> canonical JSON text via msgpack (key order kept) */
static char *canon(json_t *o)
{
	char err[512];
	msgpack_sbuffer mp, js;
	msgpack_sbuffer_init(&mp);
	msgpack_sbuffer_init(&js);
	if (na_json_article_from_json(o, &mp, err, sizeof err))
		fail_msg("article does not map: %s", err);
	if (na_json_from_msgpack((const uint8_t *)mp.data, mp.size, &js, err, sizeof err))
		fail_msg("article does not map back: %s", err);
	msgpack_sbuffer_write(&js, "", 1);
	msgpack_sbuffer_destroy(&mp);
	return js.data;
}

static int extract(const char *text, size_t len, const na_text_opts *o, json_t **out, char *err)
{
	return na_text_extract(text, len, o, out, err, 512);
}

static void check_page(const char *dir, const char *name)
{
	char path[4200], err[512] = "";
	size_t tlen, elen;
	snprintf(path, sizeof path, "%s/%s.txt", dir, name);
	char *text = slurp(path, &tlen);
	assert_non_null(text);
	snprintf(path, sizeof path, "%s/%s.expected.json", dir, name);
	char *exp = slurp(path, &elen);
	if (!exp)
		fail_msg("%s: no expected file %s", name, path);
	json_error_t je;
	json_t *e = json_loadb(exp, elen, 0, &je);
	if (!e)
		fail_msg("%s: bad expected JSON: %s", name, je.text);
	na_text_opts opts = { 0 };
	json_t *got = NULL;
	int rc = extract(text, tlen, &opts, &got, err);
	json_t *want_err = json_object_get(e, "error");
	if (want_err) {
		if (rc == 0)
			fail_msg("%s: accepted, expected refusal: %s", name, json_dumps(got, 0));
		if (!strstr(err, json_string_value(want_err)))
			fail_msg("%s: message \"%s\" lacks \"%s\"", name, err, json_string_value(want_err));
	} else {
		if (rc)
			fail_msg("%s: refused: %s", name, err);
		const char *g = json_string_value(json_object_get(got, "guid"));
		assert_non_null(g);
		assert_int_equal(strlen(g), 21);
		assert_memory_equal(g, "text:", 5);
		assert_int_equal(strspn(g + 5, "0123456789abcdef"), 16);
		if (!strcmp(json_string_value(json_object_get(e, "guid")), "GUID"))
			json_object_set_new(e, "guid", json_string(g));
		char *a = canon(got), *b = canon(e);
		if (strcmp(a, b))
			fail_msg("%s differs\n got:  %s\n want: %s", name, a, b);
		/* the same file gives the same article again */
		json_t *again = NULL;
		assert_int_equal(extract(text, tlen, &opts, &again, err), 0);
		assert_true(json_equal(again, got));
		json_decref(again);
		free(a);
		free(b);
		json_decref(got);
	}
	json_decref(e);
	free(exp);
	free(text);
}

static void test_every_page(void **st)
{
	(void)st;
	const char *dir = data_dir();
	DIR *d = opendir(dir);
	if (!d)
		fail_msg("cannot open %s (set NEWSARCH_SRC)", dir);
	struct dirent *de;
	int pages = 0;
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		if (n < 5 || strcmp(de->d_name + n - 4, ".txt"))
			continue;
		char name[256];
		snprintf(name, sizeof name, "%.*s", (int)(n - 4), de->d_name);
		print_message("page %s\n", name);
		check_page(dir, name);
		pages++;
	}
	closedir(d);
	assert_true(pages >= 8);
}

/* a minimal page around one date line -> published (and updated) */
static void date_case(const char *dateline, const char *want_pub, const char *want_upd, int tz)
{
	char page[1024], err[512] = "";
	snprintf(page, sizeof page, "Headline of the test story\n%s\nFirst paragraph of the body.\n",
		 dateline);
	na_text_opts o = { .default_offset_min = tz };
	json_t *got = NULL;
	int rc = extract(page, strlen(page), &o, &got, err);
	if (!want_pub) {
		if (!rc)
			fail_msg("\"%s\" accepted as %s", dateline,
				 json_string_value(json_object_get(got, "published")));
		return;
	}
	if (rc)
		fail_msg("\"%s\": %s", dateline, err);
	const char *p = json_string_value(json_object_get(got, "published"));
	if (strcmp(p, want_pub))
		fail_msg("\"%s\": published %s, want %s", dateline, p, want_pub);
	json_t *u = json_object_get(got, "updated");
	if (want_upd && (!u || strcmp(json_string_value(u), want_upd)))
		fail_msg("\"%s\": updated %s, want %s", dateline, u ? json_string_value(u) : "none",
			 want_upd);
	if (!want_upd && u)
		fail_msg("\"%s\": unexpected updated", dateline);
	assert_string_equal(json_string_value(json_object_get(got, "title")), "Headline of the test story");
	assert_string_equal(json_string_value(json_object_get(got, "body")), "First paragraph of the body.");
	json_decref(got);
}

static void test_date_lines(void **st)
{
	(void)st;
	date_case("Published 13:22 IST, January 8th 2022", "2022-01-08T07:52:00Z", NULL, 0);
	date_case("Jan. 8, 2022 7:52 a.m. ET", "2022-01-08T12:52:00Z", NULL, 0);
	date_case("Jan. 8, 2022 7:52 p.m. EST", "2022-01-09T00:52:00Z", NULL, 0);
	date_case("July 8, 2022 12:05 a.m. ET", "2022-07-08T04:05:00Z", NULL, 0);   /* EDT */
	date_case("March 13, 2022 3:00 a.m. ET", "2022-03-13T07:00:00Z", NULL, 0);  /* DST began 2am */
	date_case("March 12, 2022 3:00 a.m. ET", "2022-03-12T08:00:00Z", NULL, 0);
	date_case("Nov. 6, 2022 12:30 p.m. CT", "2022-11-06T18:30:00Z", NULL, 0);   /* DST over */
	date_case("April 10, 1995 9:00 AM PT", "1995-04-10T16:00:00Z", NULL, 0);  /* old US rule */
	date_case("08/01/2022 13:22", "2022-01-08T13:22:00Z", NULL, 0);          /* dd/mm, UTC */
	date_case("08/01/2022 13:22", "2022-01-08T07:52:00Z", NULL, 330);        /* --tz IST */
	date_case("01/08/2022 8:22 a.m. ET", "2022-01-08T13:22:00Z", NULL, 0);   /* mm/dd in US */
	date_case("13/01/2022", "2022-01-13T00:00:00Z", NULL, 0);                /* only d/m fits */
	date_case("01/13/2022", "2022-01-13T00:00:00Z", NULL, 0);                /* only m/d fits */
	date_case("13.01.2022 09:00 CET", "2022-01-13T08:00:00Z", NULL, 0);
	date_case("2022-01-08", "2022-01-08T00:00:00Z", NULL, 0);
	date_case("2022-01-08T13:22:05.5+05:30", "2022-01-08T07:52:05Z", NULL, 0);
	date_case("Saturday, 8 January 2022, 14:05 GMT", "2022-01-08T14:05:00Z", NULL, 0);
	date_case("8th of January, 2022 at 6pm BST", "2022-01-08T17:00:00Z", NULL, 0);
	date_case("Sat 9 Jul 2022 18.05 BST", "2022-07-09T17:05:00Z", NULL, 0);
	date_case("2022/01/08 09:30 JST", "2022-01-08T00:30:00Z", NULL, 0);
	date_case("January 8, 2022 10:00 AEST", "2022-01-08T00:00:00Z", NULL, 0);
	date_case("January 8, 2022 10:00 UTC+5:30", "2022-01-08T04:30:00Z", NULL, 0);
	date_case("January 8, 2022 10:00 GMT-4", "2022-01-08T14:00:00Z", NULL, 0);
	date_case("Sept. 30, 2021 11:59 p.m. PT", "2021-10-01T06:59:00Z", NULL, 0);
	date_case("Updated 15:40 IST, January 8th 2022", "2022-01-08T10:10:00Z", NULL, 0); /* alone */
	date_case("Posted 2022-01-08 10:00Z | Updated 2022-01-08 12:00Z", "2022-01-08T10:00:00Z",
		  "2022-01-08T12:00:00Z", 0);
	/* not dates: no year, impossible day, words only, a number that is no time */
	date_case("January 8 at 13:22", NULL, NULL, 0);
	date_case("February 30, 2022", NULL, NULL, 0);
	date_case("yesterday afternoon", NULL, NULL, 0);
	date_case("Updated 3 hours ago", NULL, NULL, 0);
}

static void test_options_and_refusals(void **st)
{
	(void)st;
	const char *page = "Bridge reopens after repairs\nBy Ann Lee\n2022-05-01 10:00 UTC\nThe bridge is open.\n";
	char err[512];
	json_t *a = NULL, *b = NULL;
	na_text_opts o = { 0 };
	assert_int_equal(extract(page, strlen(page), &o, &a, err), 0);
	/* a different text gives a different guid */
	assert_int_equal(extract(page, strlen(page) - 1, &o, &b, err), 0);
	assert_string_not_equal(json_string_value(json_object_get(a, "guid")),
				json_string_value(json_object_get(b, "guid")));
	json_decref(a);
	json_decref(b);
	/* --url is the guid unless --guid is given; both set their fields */
	o.url = "https://news.example/bridge";
	o.source = "Example News";
	assert_int_equal(extract(page, strlen(page), &o, &a, err), 0);
	char *c = canon(a);
	assert_string_equal(c, "{\"guid\":\"https://news.example/bridge\",\"published\":\"2022-05-01T10:00:00Z\","
			    "\"title\":\"Bridge reopens after repairs\",\"authors\":[\"Ann Lee\"],"
			    "\"body\":\"The bridge is open.\",\"source\":\"Example News\","
			    "\"url\":\"https://news.example/bridge\"}");
	free(c);
	json_decref(a);
	o.guid = "bridge-1";
	assert_int_equal(extract(page, strlen(page), &o, &a, err), 0);
	assert_string_equal(json_string_value(json_object_get(a, "guid")), "bridge-1");
	json_decref(a);
	/* refusals */
	assert_int_not_equal(extract("\xff\xfe bad", 6, &o, &a, err), 0);
	assert_non_null(strstr(err, "UTF-8"));
	assert_int_not_equal(extract("", 0, &o, &a, err), 0);
	assert_non_null(strstr(err, "no publication date"));
	const char *nohead = "2022-05-01\n";
	assert_int_not_equal(extract(nohead, strlen(nohead), &o, &a, err), 0);
	assert_non_null(strstr(err, "headline"));
	/* zone names for --tz */
	int m;
	assert_int_equal(na_text_zone_offset("IST", &m), 0);
	assert_int_equal(m, 330);
	assert_int_equal(na_text_zone_offset("+05:30", &m), 0);
	assert_int_equal(m, 330);
	assert_int_equal(na_text_zone_offset("UTC-4", &m), 0);
	assert_int_equal(m, -240);
	assert_int_equal(na_text_zone_offset("Mars", &m), -1);
	/* a zone whose offset changes with daylight saving time has no one
	 * offset: ET in July is -04:00, in January -05:00 */
	assert_int_equal(na_text_zone_offset("ET", &m), -2);
	assert_int_equal(na_text_zone_offset("PT", &m), -2);
	assert_int_equal(na_text_zone_offset("EDT", &m), 0);
	assert_int_equal(m, -240);
}

/* pages glued together from date, zone, byline and clutter fragments at
 * random (fixed seed): nothing may crash, leak or read out of bounds, and
 * every accepted page must map to a valid article */
static void test_token_soup(void **st)
{
	(void)st;
	static const char *const tok[] = { "2022", "-", "01", "/", ".", ":", "T", "Z", "+05:30",
		"-0800", "13", "22", "7", "a.m.", "pm", "p.m", "IST", "ET", "PT", "UTC", "GMT+",
		"January", "Jan.", "Sept", "8th", "of", ",", " ", " ", " ", "\n", "\n", "\n\n", "By",
		"and", "Ann Lee", "Published", "Updated", "| ", " | ", "\xc2\xb7", "\xe2\x80\xa2",
		"Advertisement", "Home > World", "Photo:", "(Getty Images)", "Related:", "\t",
		"\xc2\xa0", "\xef\xbb\xbf", "The council met on Friday.", "9999", "0001", "12/31/9999",
		"31", "99", "(", ")", "Read more", "\r" };
	uint64_t x = 88172645463325252ull;
	char page[2048];
	for (int it = 0; it < 20000; it++) {
		size_t n = 0;
		int k = 1 + (int)(x % 60);
		for (int j = 0; j < k; j++) {
			x ^= x << 13; x ^= x >> 7; x ^= x << 17;
			const char *t = tok[x % (sizeof tok / sizeof *tok)];
			size_t tl = strlen(t);
			if (n + tl >= sizeof page)
				break;
			memcpy(page + n, t, tl);
			n += tl;
		}
		json_t *o = NULL;
		char err[512];
		na_text_opts opts = { .default_offset_min = (int)(x % 1441) - 720 };
		/* exactly n bytes, no terminator after them */
		char *exact = malloc(n ? n : 1);
		memcpy(exact, page, n);
		if (extract(exact, n, &opts, &o, err) == 0) {
			char *c = canon(o);
			free(c);
			json_decref(o);
		} else {
			assert_true(err[0] != '\0');
		}
		free(exact);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_page),
		cmocka_unit_test(test_date_lines),
		cmocka_unit_test(test_options_and_refusals),
		cmocka_unit_test(test_token_soup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
