/*
 * test_config.c - newsarchd settings (daemon/config.c): defaults, the INI
 * file, flags overriding the file, size suffixes and bad values.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"
#include "log.h"
#include "mp.h"
#include "rpc.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define GiB ((size_t)1 << 30)
#define TiB ((size_t)1 << 40)

/* A temporary file holding text; path in out (caller unlinks). */
static void write_temp(char *out, size_t outlen, const char *text)
{
	const char *dir = getenv("TMPDIR");
	snprintf(out, outlen, "%s/na-config-XXXXXX", dir && *dir ? dir : "/tmp");
	int fd = mkstemp(out);
	assert_true(fd >= 0);
	size_t n = strlen(text);
	assert_int_equal(write(fd, text, n), (ssize_t)n);
	close(fd);
}

static void test_defaults(void **state)
{
	(void)state;
	na_config c;
	memset(&c, 0xa5, sizeof c);
	na_config_defaults(&c);
	assert_string_equal(c.data, "./data");
	assert_string_equal(c.listen, NA_DEFAULT_ADDR);
	assert_string_equal(c.socket, "");
	assert_string_equal(c.config_file, "");
	assert_int_equal(c.log_level, NA_LOG_INFO);
	assert_false(c.relaxed);
	assert_int_equal(c.map_size, 1 * GiB);
	assert_int_equal(c.max_map_size, 256 * GiB);
	assert_int_equal(c.compression_level, 3);
	assert_true(c.literal_compression);
	assert_int_equal(c.dict_size, 64 * KiB);
	assert_int_equal(c.train_min, 2000);
	assert_int_equal(c.max_request_bytes, NA_MAX_REQUEST_BYTES_DEFAULT);
	assert_int_equal(c.max_depth, NA_MAX_DEPTH_DEFAULT);
	assert_int_equal(c.max_article_bytes, NA_MAX_ARTICLE_BYTES_DEFAULT);
	assert_int_equal(c.max_batch, NA_MAX_BATCH_DEFAULT);
	assert_int_equal(c.output_queue_bytes, 16 * MiB);
	assert_int_equal(c.max_connections, 10000);
	assert_int_equal(c.max_pending, 1024);
	assert_int_equal(c.idle_timeout, 0);
}

static void test_set_sizes(void **state)
{
	(void)state;
	na_config c;
	char err[256];
	na_config_defaults(&c);
	static const struct { const char *v; size_t want; } sizes[] = {
		{ "1048576", 1 * MiB }, { "1024K", 1 * MiB }, { "1024k", 1 * MiB }, { "64M", 64 * MiB },
		{ "1G", 1 * GiB }, { "2GiB", 2 * GiB }, { "2gib", 2 * GiB }, { "3GB", 3 * GiB },
		{ "1T", 1 * TiB }, { "5MiB", 5 * MiB }, { "1024T", 1024 * TiB },
	};
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		c.map_size = 0;
		if (na_config_set(&c, "map_size", sizes[i].v, err, sizeof err))
			fail_msg("map_size = %s refused: %s", sizes[i].v, err);
		assert_int_equal(c.map_size, sizes[i].want);
	}
	assert_int_equal(na_config_set(&c, "dict-size", "64K", err, sizeof err), 0);
	assert_int_equal(c.dict_size, 64 * KiB);
	assert_int_equal(na_config_set(&c, "max_article_bytes", "256", err, sizeof err), 0);
	assert_int_equal(c.max_article_bytes, 256);
	assert_int_equal(na_config_set(&c, "output-queue-bytes", "4G", err, sizeof err), 0);
	assert_int_equal(c.output_queue_bytes, 4 * GiB);
	assert_int_equal(na_config_set(&c, "max_request_bytes", "1K", err, sizeof err), 0);
	assert_int_equal(c.max_request_bytes, 1 * KiB);
	assert_int_equal(na_config_set(&c, "literal_compression", "no", err, sizeof err), 0);
	assert_false(c.literal_compression);
	assert_int_equal(na_config_set(&c, "literal-compression", "yes", err, sizeof err), 0);
	assert_true(c.literal_compression);
	assert_int_not_equal(na_config_set(&c, "literal_compression", "huffman", err, sizeof err), 0);
}

static void test_set_other_types(void **state)
{
	(void)state;
	na_config c;
	char err[256];
	na_config_defaults(&c);
	/* dashes or underscores */
	assert_int_equal(na_config_set(&c, "max-batch", "500", err, sizeof err), 0);
	assert_int_equal(c.max_batch, 500);
	assert_int_equal(na_config_set(&c, "max_batch", "1", err, sizeof err), 0);
	assert_int_equal(c.max_batch, 1);
	assert_int_equal(na_config_set(&c, "train_min", "100000000", err, sizeof err), 0);
	assert_int_equal(c.train_min, 100000000);
	assert_int_equal(na_config_set(&c, "max_depth", "64", err, sizeof err), 0);
	assert_int_equal(c.max_depth, 64);
	assert_int_equal(na_config_set(&c, "compression_level", "19", err, sizeof err), 0);
	assert_int_equal(c.compression_level, 19);
	assert_int_equal(na_config_set(&c, "idle_timeout", "0", err, sizeof err), 0);
	assert_int_equal(c.idle_timeout, 0);
	assert_int_equal(na_config_set(&c, "durability", "relaxed", err, sizeof err), 0);
	assert_true(c.relaxed);
	assert_int_equal(na_config_set(&c, "durability", "strict", err, sizeof err), 0);
	assert_false(c.relaxed);
	assert_int_equal(na_config_set(&c, "log-level", "debug", err, sizeof err), 0);
	assert_int_equal(c.log_level, NA_LOG_DEBUG);
	assert_int_equal(na_config_set(&c, "log_level", "error", err, sizeof err), 0);
	assert_int_equal(c.log_level, NA_LOG_ERROR);
	assert_int_equal(na_config_set(&c, "data", "/srv/news", err, sizeof err), 0);
	assert_string_equal(c.data, "/srv/news");
	assert_int_equal(na_config_set(&c, "listen", "none", err, sizeof err), 0);
	assert_string_equal(c.listen, "none");
	assert_int_equal(na_config_set(&c, "socket", "", err, sizeof err), 0);
	assert_string_equal(c.socket, "");
}

static void expect_bad(const char *name, const char *value, const char *want1, const char *want2)
{
	na_config c, before;
	char err[256] = "";
	na_config_defaults(&c);
	before = c;
	if (na_config_set(&c, name, value, err, sizeof err) != -1)
		fail_msg("%s = \"%s\" accepted", name, value);
	if (!strstr(err, want1) || (want2 && !strstr(err, want2)))
		fail_msg("%s = \"%s\": message \"%s\" lacks \"%s\"", name, value, err, want1);
	/* nothing changed */
	assert_memory_equal(&c, &before, sizeof c);
}

static void test_bad_values(void **state)
{
	(void)state;
	/* not numbers, bad suffixes, signs, overflow, out of range */
	static const char *const bad_sizes[] = { "", "abc", "-1", "- 1", "12X", "1KK", "1Gx", "1 G",
						  "1iB", "1.5G", "99999999999999999999",
						  "17179869184T", "0", "1023K" };
	for (size_t i = 0; i < sizeof bad_sizes / sizeof bad_sizes[0]; i++)
		expect_bad("map_size", bad_sizes[i], "map_size", "expected a number");
	expect_bad("max-map-size", "1025T", "max_map_size", NULL);
	expect_bad("max_depth", "65", "max_depth", "4 to 64");
	expect_bad("max_depth", "3", "max_depth", NULL);
	expect_bad("compression_level", "0", "compression_level", "1 to 19");
	expect_bad("compression_level", "20", "compression_level", NULL);
	expect_bad("compression_level", "-3", "compression_level", NULL);
	expect_bad("max_batch", "0", "max_batch", NULL);
	expect_bad("max_batch", "1000001", "max_batch", NULL);
	expect_bad("max_batch", "4294967297", "max_batch", NULL);
	expect_bad("train_min", "99", "train_min", NULL);
	expect_bad("dict_size", "2M", "dict_size", NULL);
	expect_bad("max_request_bytes", "2G", "max_request_bytes", NULL);
	expect_bad("output_queue_bytes", "63K", "output_queue_bytes", NULL);
	expect_bad("idle_timeout", "31536001", "idle_timeout", NULL);
	/* size suffixes are for sizes: "5m" of seconds would be 60 days */
	expect_bad("idle_timeout", "5m", "idle_timeout", "expected a number");
	expect_bad("log_retention_age", "1k", "log_retention_age", NULL);
	expect_bad("compression_level", "1K", "compression_level", NULL);
	expect_bad("max_batch", "1K", "max_batch", NULL);
	expect_bad("durability", "fast", "durability", "strict or relaxed");
	expect_bad("log_level", "loud", "log_level", "\"loud\"");
	/* unknown options, also very long names */
	expect_bad("max_bach", "5", "unknown option", "max_bach");
	expect_bad("", "5", "unknown option", NULL);
	char longname[200];
	memset(longname, 'x', sizeof longname - 1);
	longname[sizeof longname - 1] = 0;
	expect_bad(longname, "5", "unknown option", "xxxx");
	/* strings that do not fit */
	char longval[600];
	memset(longval, 'd', sizeof longval - 1);
	longval[sizeof longval - 1] = 0;
	expect_bad("data", longval, "data", "too long");
	expect_bad("socket", longval, "socket", "too long");
	longval[300] = 0; /* fits data and socket (512), not listen (256) */
	expect_bad("listen", longval, "listen", "too long");
	na_config c;
	char err[256];
	na_config_defaults(&c);
	assert_int_equal(na_config_set(&c, "socket", longval, err, sizeof err), 0);
	assert_int_equal(strlen(c.socket), 300);
}

static void test_ini_file(void **state)
{
	(void)state;
	char path[512];
	write_temp(path, sizeof path,
		   "; newsarchd settings\n"
		   "# comments of both kinds\n"
		   "data = /var/lib/newsarch\n"
		   "\n"
		   "[limits]\n"
		   "max_batch = 500\n"
		   "map-size = 2GiB\n"
		   "durability = relaxed\n"
		   "max_article_bytes=64K\n");
	na_config c;
	char err[256];
	na_config_defaults(&c);
	assert_int_equal(na_config_load(&c, path, err, sizeof err), 0);
	assert_string_equal(c.data, "/var/lib/newsarch");
	assert_int_equal(c.max_batch, 500);
	assert_int_equal(c.map_size, 2 * GiB);
	assert_true(c.relaxed);
	assert_int_equal(c.max_article_bytes, 64 * KiB);
	/* untouched settings keep their defaults */
	assert_int_equal(c.max_depth, NA_MAX_DEPTH_DEFAULT);
	unlink(path);
}

static void test_ini_errors(void **state)
{
	(void)state;
	char path[512], err[512];
	na_config c;
	/* an unknown key: file, line and key named */
	write_temp(path, sizeof path, "max_batch = 5\n\n# x\nmax_bach = 7\n");
	na_config_defaults(&c);
	assert_int_equal(na_config_load(&c, path, err, sizeof err), -1);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, ":4:"));
	assert_non_null(strstr(err, "max_bach"));
	unlink(path);
	/* a bad value */
	write_temp(path, sizeof path, "[a]\ncompression_level = 99\n");
	na_config_defaults(&c);
	assert_int_equal(na_config_load(&c, path, err, sizeof err), -1);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, ":2:"));
	assert_non_null(strstr(err, "compression_level"));
	unlink(path);
	/* a line that is not name = value */
	write_temp(path, sizeof path, "max_batch = 5\nthis is not a setting\n");
	na_config_defaults(&c);
	assert_int_equal(na_config_load(&c, path, err, sizeof err), -1);
	assert_non_null(strstr(err, ":2:"));
	assert_non_null(strstr(err, "name = value"));
	unlink(path);
	/* an indented line, which inih would append to the value before it
	 * (data would become "/srv/a\nmap_size = 2G" and map_size unset) */
	write_temp(path, sizeof path, "data = /srv/a\n    map_size = 2G\n");
	na_config_defaults(&c);
	assert_int_equal(na_config_load(&c, path, err, sizeof err), -1);
	assert_non_null(strstr(err, ":2:"));
	assert_non_null(strstr(err, "indented"));
	unlink(path);
	/* indented comments and blank lines are fine */
	write_temp(path, sizeof path, "max_batch = 5\n   # note\n \t \nmax_pending = 9\n");
	na_config_defaults(&c);
	assert_int_equal(na_config_load(&c, path, err, sizeof err), 0);
	assert_int_equal(c.max_batch, 5);
	assert_int_equal(c.max_pending, 9);
	unlink(path);
	/* a line longer than inih's buffer, which it would split in two */
	char longline[1200];
	snprintf(longline, sizeof longline, "max_batch = 5\ntoken = read:%01000d\n", 7);
	write_temp(path, sizeof path, longline);
	na_config_defaults(&c);
	assert_int_equal(na_config_load(&c, path, err, sizeof err), -1);
	assert_non_null(strstr(err, ":2:"));
	assert_non_null(strstr(err, "too long"));
	unlink(path);
	/* a missing file */
	na_config_defaults(&c);
	assert_int_equal(na_config_load(&c, path, err, sizeof err), -1);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "cannot open"));
}

static int run_args(na_config *c, char *err, size_t errlen, bool *help, bool *version,
		    bool *verify, int argc, ...)
{
	char *argv[32];
	va_list ap;
	va_start(ap, argc);
	for (int i = 0; i < argc; i++)
		argv[i] = va_arg(ap, char *);
	va_end(ap);
	argv[argc] = NULL;
	na_config_defaults(c);
	return na_config_args(c, argc, argv, help, version, verify, err, errlen);
}

static void test_args(void **state)
{
	(void)state;
	char path[512], err[512];
	write_temp(path, sizeof path, "max_batch = 500\nmax_depth = 10\nlog_level = warn\n");
	na_config c;
	bool help, version, verify;
	/* flags override the file whatever their order */
	assert_int_equal(run_args(&c, err, sizeof err, &help, &version, &verify, 5,
				  "--max-batch", "700", "--config", path, "--map-size=4G"), 0);
	assert_int_equal(c.max_batch, 700);
	assert_int_equal(c.max_depth, 10);
	assert_int_equal(c.map_size, 4 * GiB);
	assert_int_equal(c.log_level, NA_LOG_WARN);
	assert_string_equal(c.config_file, path);
	assert_false(help || version || verify);
	assert_int_equal(run_args(&c, err, sizeof err, &help, &version, &verify, 4,
				  "-c", path, "--max_batch", "9"), 0);
	assert_int_equal(c.max_batch, 9);
	assert_int_equal(c.max_depth, 10);
	/* help, version, verify */
	assert_int_equal(run_args(&c, err, sizeof err, &help, &version, &verify, 3,
				  "--help", "--version", "--verify"), 0);
	assert_true(help && version && verify);
	assert_int_equal(run_args(&c, err, sizeof err, &help, &version, &verify, 1, "-h"), 0);
	assert_true(help);
	/* errors name the option */
	assert_int_equal(run_args(&c, err, sizeof err, &help, &version, &verify, 2,
				  "--max-depth", "100"), -1);
	assert_non_null(strstr(err, "max_depth"));
	assert_int_equal(run_args(&c, err, sizeof err, &help, &version, &verify, 1,
				  "--max-depth"), -1);
	assert_non_null(strstr(err, "--max-depth"));
	assert_non_null(strstr(err, "needs a value"));
	assert_int_equal(run_args(&c, err, sizeof err, &help, &version, &verify, 2,
				  "--nope", "1"), -1);
	assert_non_null(strstr(err, "unknown option"));
	assert_non_null(strstr(err, "nope"));
	assert_int_equal(run_args(&c, err, sizeof err, &help, &version, &verify, 1, "stray"), -1);
	assert_non_null(strstr(err, "stray"));
	assert_int_equal(run_args(&c, err, sizeof err, &help, &version, &verify, 1, "--config"), -1);
	assert_non_null(strstr(err, "--config"));
	/* a bad file named by --config fails before any flag is applied */
	unlink(path);
	assert_int_equal(run_args(&c, err, sizeof err, &help, &version, &verify, 2,
				  "--config", path), -1);
	assert_non_null(strstr(err, "cannot open"));
}

static void test_usage(void **state)
{
	(void)state;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	na_config_usage(f);
	fclose(f);
	/* every option is listed as a flag, with its default */
	static const char *const flags[] = { "--data", "--listen", "--socket", "--log-level",
					     "--durability", "--map-size", "--max-map-size",
					     "--compression-level", "--dict-size", "--train-min",
					     "--max-request-bytes", "--max-depth",
					     "--max-article-bytes", "--max-batch",
					     "--output-queue-bytes", "--max-connections",
					     "--max-pending", "--idle-timeout" };
	for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
		if (!strstr(buf, flags[i]))
			fail_msg("usage lacks %s", flags[i]);
	assert_non_null(strstr(buf, "[10000]"));
	assert_non_null(strstr(buf, "[2000]"));
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_set_sizes),
		cmocka_unit_test(test_set_other_types),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_ini_file),
		cmocka_unit_test(test_ini_errors),
		cmocka_unit_test(test_args),
		cmocka_unit_test(test_usage),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
