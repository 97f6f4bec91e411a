/*
 * test_cli_lineio.c - the CLI's bounded line reader (plain and zstd input)
 * and its plain/zstd writer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../client/cli/lineio.c"

static char dir[] = "/tmp/na-lineio-XXXXXX";

static int setup(void **st)
{
	(void)st;
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **st)
{
	(void)st;
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static const char *path_of(const char *name)
{
	static char p[256];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	return p;
}

static void write_file(const char *name, const void *data, size_t n)
{
	FILE *f = fopen(path_of(name), "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, n, f), n);
	fclose(f);
}

static void write_zst(const char *name, const char *data, size_t n)
{
	size_t cap = ZSTD_compressBound(n);
	void *c = malloc(cap);
	size_t z = ZSTD_compress(c, cap, data, n, 3);
	assert_false(ZSTD_isError(z));
	write_file(name, c, z);
	free(c);
}

/* the text: "a\r\n\nline3" plus a long line and a final line without \n */
static char *sample(size_t longlen, size_t *n)
{
	char *t = malloc(longlen + 64);
	size_t o = 0;
	o += (size_t)sprintf(t + o, "a\r\n\nline3\n");
	memset(t + o, 'x', longlen);
	o += longlen;
	o += (size_t)sprintf(t + o, "\nlast");
	*n = o;
	return t;
}

static void check_lines(const char *name, size_t longlen, size_t max_line)
{
	na_lines r;
	const char *l;
	size_t n;
	assert_int_equal(na_lines_open(&r, path_of(name), max_line), 0);
	assert_int_equal(na_lines_next(&r, &l, &n), NA_LINES_LINE);
	assert_int_equal(n, 1);
	assert_memory_equal(l, "a", 1);
	assert_int_equal(na_lines_next(&r, &l, &n), NA_LINES_LINE);
	assert_int_equal(n, 0);
	assert_int_equal(na_lines_next(&r, &l, &n), NA_LINES_LINE);
	assert_int_equal(n, 5);
	assert_int_equal(r.lineno, 3);
	int k = na_lines_next(&r, &l, &n);
	if (longlen > max_line) {
		assert_int_equal(k, NA_LINES_ETOOLONG);
		assert_non_null(strstr(r.err, "line longer than"));
	} else {
		assert_int_equal(k, NA_LINES_LINE);
		assert_int_equal(n, longlen);
		assert_true(l[0] == 'x' && l[n - 1] == 'x');
	}
	assert_int_equal(r.lineno, 4);
	assert_int_equal(na_lines_next(&r, &l, &n), NA_LINES_LINE);
	assert_int_equal(n, 4);
	assert_memory_equal(l, "last", 4);
	assert_int_equal(r.lineno, 5);
	assert_int_equal(na_lines_next(&r, &l, &n), NA_LINES_EOF);
	na_lines_close(&r);
}

static void test_plain_and_zstd(void **st)
{
	(void)st;
	size_t sizes[] = { 10, 1000, 300000, 3000000 };
	for (size_t i = 0; i < 4; i++) {
		size_t n;
		char *t = sample(sizes[i], &n);
		write_file("p.jsonl", t, n);
		write_zst("z.jsonl.zst", t, n);
		write_file("z-no-ext", "", 0);
		check_lines("p.jsonl", sizes[i], 1 << 20);
		check_lines("z.jsonl.zst", sizes[i], 1 << 20);
		check_lines("p.jsonl", sizes[i], 500);
		check_lines("z.jsonl.zst", sizes[i], 500);
		/* zstd is detected by its magic, whatever the name */
		write_zst("z-no-ext", t, n);
		check_lines("z-no-ext", sizes[i], 1 << 20);
		free(t);
	}
}

static void test_errors(void **st)
{
	(void)st;
	na_lines r;
	const char *l;
	size_t n;
	assert_int_equal(na_lines_open(&r, path_of("missing"), 0), -1);
	assert_non_null(strstr(r.err, "No such file"));
	write_file("fake.zst", "{\"plain\":1}\n", 12);
	assert_int_equal(na_lines_open(&r, path_of("fake.zst"), 0), -1);
	assert_non_null(strstr(r.err, "not zstd"));
	/* a truncated zstd stream: the lines before the cut, then an error */
	size_t tn;
	char *t = sample(100000, &tn);
	size_t cap = ZSTD_compressBound(tn);
	char *c = malloc(cap);
	size_t z = ZSTD_compress(c, cap, t, tn, 3);
	write_file("cut.zst", c, z - 10);
	assert_int_equal(na_lines_open(&r, path_of("cut.zst"), 0), 0);
	int k, lines = 0;
	while ((k = na_lines_next(&r, &l, &n)) == NA_LINES_LINE)
		lines++;
	assert_int_equal(k, NA_LINES_EIO);
	assert_non_null(strstr(r.err, "zstd"));
	(void)lines; /* a cut inside the only block may hide every line */
	na_lines_close(&r);
	/* corrupt data after a good magic */
	memset(c + 8, 0xff, z - 8 > 64 ? 64 : z - 8);
	write_file("bad.zst", c, z);
	assert_int_equal(na_lines_open(&r, path_of("bad.zst"), 0), 0);
	while ((k = na_lines_next(&r, &l, &n)) == NA_LINES_LINE)
		;
	assert_int_equal(k, NA_LINES_EIO);
	na_lines_close(&r);
	free(c);
	free(t);
}

static void test_writer(void **st)
{
	(void)st;
	na_out w;
	size_t n;
	char *t = sample(2000000, &n);
	assert_int_equal(na_out_open(&w, path_of("out.jsonl.zst")), 0);
	for (size_t o = 0; o < n; o += 4097)
		assert_int_equal(na_out_write(&w, t + o, n - o < 4097 ? n - o : 4097), 0);
	assert_int_equal(na_out_close(&w), 0);
	check_lines("out.jsonl.zst", 2000000, 1 << 22);
	assert_int_equal(na_out_open(&w, path_of("out.jsonl")), 0);
	assert_int_equal(na_out_write(&w, t, n), 0);
	assert_int_equal(na_out_close(&w), 0);
	check_lines("out.jsonl", 2000000, 1 << 22);
	assert_int_equal(na_out_open(&w, path_of("nodir/x.jsonl")), -1);
	assert_non_null(strstr(w.err, "nodir"));
	na_out_close(&w);
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_and_zstd),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_writer),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
