/*
 * test_cli.c - the newsarch command against a real newsarchd: import and
 * export of 20,000 generated articles, bad lines, re-import, text pages,
 * the small commands and the exit statuses. The CLI binary is $NEWSARCH.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <pty.h>

#include "../../client/cli/json.c"
#include "../../client/cli/timefmt.c"
#include "../support/daemon.h"
#include "newsarch.h"

static const char *cli_bin(void)
{
	const char *b = getenv("NEWSARCH");
	return b ? b : "build/newsarch";
}

typedef struct run {
	int status;       /* exit status, or -1 when killed */
	char *out, *err;  /* captured stdout / stderr, NUL-terminated */
	size_t out_len;
} run;

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *b = malloc((size_t)n + 1);
	if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
		free(b);
		b = NULL;
	}
	fclose(f);
	if (b)
		b[n] = '\0';
	if (len)
		*len = (size_t)n;
	return b;
}

/* runs $NEWSARCH with args (NULL-ended); stdin from in_path (or /dev/null) */
static run run_cli(const na_test_daemon *d, const char *in_path, ...)
{
	const char *argv[64];
	int argc = 0;
	argv[argc++] = cli_bin();
	va_list ap;
	va_start(ap, in_path);
	const char *a;
	while ((a = va_arg(ap, const char *)) && argc < 63)
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	char outp[400], errp[400];
	snprintf(outp, sizeof outp, "%s/cli.out", d->dir);
	snprintf(errp, sizeof errp, "%s/cli.err", d->dir);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int in = open(in_path ? in_path : "/dev/null", O_RDONLY);
		int out = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int err = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (in < 0 || out < 0 || err < 0)
			_exit(126);
		dup2(in, 0);
		dup2(out, 1);
		dup2(err, 2);
		unsetenv("NEWSARCH_ADDR");
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	run r = { .status = WIFEXITED(st) ? WEXITSTATUS(st) : -1 };
	r.out = slurp(outp, &r.out_len);
	r.err = slurp(errp, NULL);
	assert_non_null(r.out);
	assert_non_null(r.err);
	return r;
}

static void run_free(run *r)
{
	free(r->out);
	free(r->err);
}

static void expect_in(const char *hay, const char *needle, const char *what)
{
	if (!strstr(hay, needle))
		fail_msg("%s lacks \"%s\"; it was:\n%s", what, needle, hay);
}

static int setup(void **st)
{
	na_test_daemon *d = calloc(1, sizeof *d);
	if (!d || na_test_daemon_start(d))
		return -1;
	*st = d;
	return 0;
}

static int teardown(void **st)
{
	na_test_daemon *d = *st;
	na_test_daemon_cleanup(d);
	free(d);
	return 0;
}

/* ---- generated articles -------------------------------------------- */

/* article i as one JSON line with a variety of types and time forms */
static void gen_article(char *buf, size_t cap, int i)
{
	char when[64];
	int64_t base = 1641600000 + (int64_t)(i % 5000) * 7919 - 86400LL * 365 * (i % 7);
	switch (i % 4) {
	case 0: /* RFC 3339 UTC with a fraction */
		{
			char t[NA_RFC3339_BUFSZ];
			na_rfc3339_format((na_ts){ base, (uint32_t)(i * 1000) % 1000000000u }, t, sizeof t);
			snprintf(when, sizeof when, "\"%s\"", t);
		}
		break;
	case 1: /* an offset */
		{
			char t[NA_RFC3339_BUFSZ];
			na_rfc3339_format((na_ts){ base + 19800, 0 }, t, sizeof t);
			t[19] = '\0';
			snprintf(when, sizeof when, "\"%s+05:30\"", t);
		}
		break;
	case 2: /* unix seconds */
		snprintf(when, sizeof when, "%lld", (long long)base);
		break;
	default: /* unix seconds with a fraction; pre-1970 too */
		snprintf(when, sizeof when, "%lld.25", (long long)(base - 1700000000LL));
		break;
	}
	snprintf(buf, cap,
		 "{\"guid\":\"gen:%d\",\"published\":%s,\"title\":\"Article number %d \\u00e9\\u4e2d\","
		 "\"body\":\"Line one of %d.\\nLine two \\\"quoted\\\" \\\\ tab\\t.\","
		 "\"authors\":[\"A. Writer %d\",\"B. Editor\"],\"tags\":[\"t%d\",\"all\"],"
		 "\"updated\":%lld,\"score\":%d.5,\"count\":%d,\"neg\":-%d,\"flag\":%s,\"none\":null,"
		 "\"meta\":{\"nested\":{\"deep\":[%d,{\"x\":\"y\"}]},\"empty\":{}},"
		 "\"raw\":{\"$base64\":\"AAEC/w==\"},\"ext\":{\"$ext\":%d,\"$base64\":\"aGk=\"}}\n",
		 i, when, i, i, i % 97, i % 13, (long long)base + 60, i, i * 3, i,
		 i % 2 ? "true" : "false", i, i % 100);
}

/* canonical form of a JSON article line: JSON -> msgpack -> JSON */
static char *canonical(const char *line)
{
	char err[512];
	msgpack_sbuffer mp, js;
	msgpack_sbuffer_init(&mp);
	msgpack_sbuffer_init(&js);
	if (na_json_article_from_text(line, strlen(line), &mp, err, sizeof err))
		fail_msg("generated article does not map: %s: %s", err, line);
	if (na_json_from_msgpack((const uint8_t *)mp.data, mp.size, &js, err, sizeof err))
		fail_msg("generated article does not map back: %s", err);
	msgpack_sbuffer_write(&js, "", 1);
	msgpack_sbuffer_destroy(&mp);
	return js.data;
}

#define NGEN 20000

static void test_import_export_20000(void **st)
{
	na_test_daemon *d = *st;
	char path[400], exp1[400], exp2[400];
	snprintf(path, sizeof path, "%s/gen.jsonl", d->dir);
	snprintf(exp1, sizeof exp1, "%s/export1.jsonl.zst", d->dir);
	snprintf(exp2, sizeof exp2, "%s/export2.jsonl", d->dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	char **want = calloc(NGEN, sizeof *want);
	assert_non_null(want);
	char line[4096];
	for (int i = 0; i < NGEN; i++) {
		gen_article(line, sizeof line, i);
		fputs(line, f);
		want[i] = canonical(line);
	}
	fclose(f);

	run r = run_cli(d, NULL, "-s", d->addr, "import", "--batch", "700", path, NULL);
	if (r.status != 0)
		fail_msg("import exit %d: %s", r.status, r.err);
	expect_in(r.out, "created 20000 / updated 0 / unchanged 0 / rejected 0", "import summary");
	run_free(&r);
	r = run_cli(d, NULL, "-s", d->addr, "count", NULL);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.out, "20000\n");
	run_free(&r);

	/* export (zstd) and compare every article field by field, in order */
	r = run_cli(d, NULL, "-s", d->addr, "export", "-o", exp1, NULL);
	if (r.status != 0)
		fail_msg("export exit %d: %s", r.status, r.err);
	run_free(&r);
	char cmd[2000];
	snprintf(cmd, sizeof cmd, "zstd -q -dc '%s' > '%s'", exp1, exp2);
	assert_int_equal(system(cmd), 0);
	size_t len;
	char *text = slurp(exp2, &len);
	assert_non_null(text);
	int n = 0;
	na_ts prev = { INT64_MIN, 0 };
	for (char *save = NULL, *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		json_error_t je;
		json_t *o = json_loads(l, 0, &je);
		assert_non_null(o);
		const char *g = json_string_value(json_object_get(o, "guid"));
		assert_non_null(g);
		int i = atoi(g + 4);
		assert_true(i >= 0 && i < NGEN && want[i]);
		json_t *w = json_loads(want[i], 0, &je);
		/* field by field, in the same order */
		assert_int_equal(json_object_size(o), json_object_size(w));
		void *io = json_object_iter(o), *iw = json_object_iter(w);
		for (; io && iw; io = json_object_iter_next(o, io), iw = json_object_iter_next(w, iw)) {
			if (strcmp(json_object_iter_key(io), json_object_iter_key(iw)))
				fail_msg("%s: key %s where %s was expected", g, json_object_iter_key(io),
					 json_object_iter_key(iw));
			if (!json_equal(json_object_iter_value(io), json_object_iter_value(iw)))
				fail_msg("%s: field %s differs", g, json_object_iter_key(io));
		}
		assert_string_equal(l, want[i]); /* and byte for byte */
		/* publication order */
		const char *p = json_string_value(json_object_get(o, "published"));
		na_ts t;
		assert_int_equal(na_rfc3339_parse(p, strlen(p), &t, NULL), 0);
		assert_true(t.sec > prev.sec || (t.sec == prev.sec && t.nsec >= prev.nsec));
		prev = t;
		free(want[i]);
		want[i] = NULL;
		json_decref(o);
		json_decref(w);
		n++;
	}
	assert_int_equal(n, NGEN);
	free(text);
	free(want);

	/* export | import into an empty archive reproduces it exactly */
	na_test_daemon d2 = { 0 };
	assert_int_equal(na_test_daemon_start(&d2), 0);
	snprintf(cmd, sizeof cmd,
		 "'%s' -s %s export | '%s' -s %s import - > '%s/pipe.out' 2>&1 && "
		 "'%s' -s %s export -o '%s/export3.jsonl' 2>/dev/null",
		 cli_bin(), d->addr, cli_bin(), d2.addr, d->dir, cli_bin(), d2.addr, d->dir);
	assert_int_equal(system(cmd), 0);
	char e3[400];
	snprintf(e3, sizeof e3, "%s/export3.jsonl", d->dir);
	char *a = slurp(exp2, NULL), *b = slurp(e3, NULL);
	assert_non_null(a);
	assert_non_null(b);
	assert_string_equal(a, b);
	free(a);
	free(b);
	na_test_daemon_cleanup(&d2);

	/* a second import changes nothing and says so */
	r = run_cli(d, NULL, "-s", d->addr, "import", path, NULL);
	assert_int_equal(r.status, 0);
	expect_in(r.out, "created 0 / updated 0 / unchanged 20000 / rejected 0", "re-import summary");
	expect_in(r.out, "nothing new", "re-import summary");
	run_free(&r);
}

static void test_bad_lines(void **st)
{
	na_test_daemon *d = *st;
	char path[400];
	snprintf(path, sizeof path, "%s/bad.jsonl", d->dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("{\"guid\":\"ok1\",\"published\":\"2022-01-08T07:52:00Z\",\"title\":\"one\"}\n"   /* 1 */
	      "{\"guid\":\"broken\",\"published\":\n"                                              /* 2 */
	      "{\"guid\":\"ok2\",\"published\":1641628320,\"title\":\"two\"}\n"                  /* 3 */
	      "{\"published\":\"2022-01-08\",\"title\":\"no guid\"}\n"                            /* 4 */
	      "{\"guid\":\"ok3\",\"published\":\"2022-01-08\",\"title\":\"three\"}\n"            /* 5 */
	      "{\"guid\":\"baddate\",\"published\":\"yesterday\",\"title\":\"x\"}\n"             /* 6 */
	      "\n"                                                                                 /* 7 */
	      "{\"guid\":\"ok4\",\"published\":\"2022-01-09T00:00:00+01:00\",\"title\":\"four\"}\n" /* 8 */
	      "{\"guid\":\"srvbad\",\"published\":0,\"title\":\"x\",\"authors\":[1,2]}\n"         /* 9 */
	      "{\"guid\":\"ok5\",\"published\":0,\"title\":\"five\"}",                            /* 10, no \n */
	      f);
	fclose(f);
	run r = run_cli(d, NULL, "-s", d->addr, "import", "--batch", "2", path, NULL);
	if (r.status != 4)
		fail_msg("exit %d\nstdout: %s\nstderr: %s", r.status, r.out, r.err);
	char want[600];
	snprintf(want, sizeof want, "%s:2: bad JSON", path);
	expect_in(r.err, want, "stderr");
	snprintf(want, sizeof want, "%s:4: guid: missing", path);
	expect_in(r.err, want, "stderr");
	snprintf(want, sizeof want, "%s:6: published: not an RFC 3339 time: \"yesterday\"", path);
	expect_in(r.err, want, "stderr");
	snprintf(want, sizeof want, "%s:9: refused by the server: BAD_REQUEST", path);
	expect_in(r.err, want, "stderr");
	expect_in(r.out, "created 5 / updated 0 / unchanged 0 / rejected 4", "summary");
	/* exactly four lines reported */
	int nl = 0;
	for (const char *p = r.err; *p; p++)
		nl += *p == '\n';
	assert_int_equal(nl, 4);
	run_free(&r);
	const char *ok[] = { "ok1", "ok2", "ok3", "ok4", "ok5" };
	for (size_t i = 0; i < 5; i++) {
		r = run_cli(d, NULL, "-s", d->addr, "get", "--field", "guid", ok[i], NULL);
		assert_int_equal(r.status, 0);
		snprintf(want, sizeof want, "%s\n", ok[i]);
		assert_string_equal(r.out, want);
		run_free(&r);
	}
	r = run_cli(d, NULL, "-s", d->addr, "count", NULL);
	assert_string_equal(r.out, "5\n");
	run_free(&r);

	/* an over-long line is reported by number; the rest is stored */
	snprintf(path, sizeof path, "%s/long.jsonl", d->dir);
	f = fopen(path, "w");
	fputs("{\"guid\":\"l1\",\"published\":0,\"title\":\"a\"}\n{\"guid\":\"l2\",\"published\":0,\"title\":\"", f);
	for (int i = 0; i < 5000; i++)
		fputc('x', f);
	fputs("\"}\n{\"guid\":\"l3\",\"published\":0,\"title\":\"c\"}\n", f);
	fclose(f);
	r = run_cli(d, NULL, "-s", d->addr, "import", "--max-line", "1000", path, NULL);
	assert_int_equal(r.status, 4);
	snprintf(want, sizeof want, "%s:2: line longer than 1000 bytes", path);
	expect_in(r.err, want, "stderr");
	expect_in(r.out, "created 2 / updated 0 / unchanged 0 / rejected 1", "summary");
	run_free(&r);
}

static void test_small_commands(void **st)
{
	na_test_daemon *d = *st;
	char path[400];
	snprintf(path, sizeof path, "%s/one.json", d->dir);
	FILE *f = fopen(path, "w");
	fputs("{\"guid\":\"https://example.org/a\",\"published\":\"2022-01-08T13:22:00+05:30\","
	      "\"title\":\"T\",\"body\":\"Para one.\\n\\nPara two.\"}\n", f);
	fclose(f);
	run r = run_cli(d, NULL, "-s", d->addr, "ping", NULL);
	assert_int_equal(r.status, 0);
	expect_in(r.out, "pong", "ping");
	run_free(&r);
	r = run_cli(d, path, "-s", d->addr, "put", NULL); /* from stdin */
	assert_int_equal(r.status, 0);
	expect_in(r.out, "created https://example.org/a", "put");
	run_free(&r);
	r = run_cli(d, NULL, "-s", d->addr, "put", path, NULL);
	assert_int_equal(r.status, 0);
	expect_in(r.out, "unchanged", "put again");
	run_free(&r);
	r = run_cli(d, NULL, "-s", d->addr, "get", "https://example.org/a", NULL);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.out, "{\"guid\":\"https://example.org/a\",\"published\":\"2022-01-08T07:52:00Z\","
			    "\"title\":\"T\",\"body\":\"Para one.\\n\\nPara two.\"}\n");
	run_free(&r);
	r = run_cli(d, NULL, "-s", d->addr, "get", "--field", "body", "https://example.org/a", NULL);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.out, "Para one.\n\nPara two.\n");
	run_free(&r);
	r = run_cli(d, NULL, "-s", d->addr, "get", "--field", "nosuch", "https://example.org/a", NULL);
	assert_int_equal(r.status, 1);
	run_free(&r);
	r = run_cli(d, NULL, "-s", d->addr, "range", "--from", "2022-01-08", "--to", "2022-01-09",
		    "--fields", "guid,published", NULL);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.out, "{\"guid\":\"https://example.org/a\",\"published\":\"2022-01-08T07:52:00Z\"}\n");
	run_free(&r);
	r = run_cli(d, NULL, "-s", d->addr, "count", "--from", "2022-01-08T08:00:00Z", NULL);
	assert_string_equal(r.out, "0\n");
	run_free(&r);
	r = run_cli(d, NULL, "-s", d->addr, "stats", "--json", NULL);
	assert_int_equal(r.status, 0);
	expect_in(r.out, "\"articles\":1", "stats --json");
	run_free(&r);
	r = run_cli(d, NULL, "-s", d->addr, "stats", NULL);
	assert_int_equal(r.status, 0);
	expect_in(r.out, "articles", "stats");
	run_free(&r);
	/* search: JSON lines when not on a terminal; --min-seq waits for the index */
	r = run_cli(d, NULL, "-s", d->addr, "search", "--min-seq", "1", "PARA two", NULL);
	assert_int_equal(r.status, 0);
	expect_in(r.out, "\"guid\":\"https://example.org/a\"", "search");
	run_free(&r);
	r = run_cli(d, NULL, "-s", d->addr, "search", "--min-seq", "1", "--fields", "guid",
		    "--order", "relevance", "\"one para\" -three", NULL);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.out, "{\"guid\":\"https://example.org/a\"}\n");
	run_free(&r);
	r = run_cli(d, NULL, "-s", d->addr, "search", "--min-seq", "1", "para -two", NULL);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.out, "");
	run_free(&r);
	r = run_cli(d, NULL, "-s", d->addr, "search", "para (", NULL);
	assert_int_equal(r.status, 4);
	expect_in(r.err, "position 6", "bad query");
	run_free(&r);
	r = run_cli(d, NULL, "-s", d->addr, "search", "--order", "sideways", "x", NULL);
	assert_int_equal(r.status, 2);
	run_free(&r);
	r = run_cli(d, NULL, "-s", d->addr, "reindex", NULL);
	assert_int_equal(r.status, 0);
	expect_in(r.out, "reindexing started", "reindex");
	run_free(&r);
	r = run_cli(d, NULL, "-s", d->addr, "delete", "https://example.org/a", NULL);
	assert_int_equal(r.status, 0);
	run_free(&r);
	r = run_cli(d, NULL, "-s", d->addr, "delete", "https://example.org/a", NULL);
	assert_int_equal(r.status, 1);
	run_free(&r);

	/* range --limit pages through the iterator */
	snprintf(path, sizeof path, "%s/many.jsonl", d->dir);
	f = fopen(path, "w");
	for (int i = 0; i < 2500; i++)
		fprintf(f, "{\"guid\":\"m%d\",\"published\":%d,\"title\":\"\"}\n", i, 1000000 + i);
	fclose(f);
	r = run_cli(d, NULL, "-s", d->addr, "import", path, NULL);
	assert_int_equal(r.status, 0);
	run_free(&r);
	r = run_cli(d, NULL, "-s", d->addr, "range", "--limit", "2300", "--reverse", "--fields", "guid", NULL);
	assert_int_equal(r.status, 0);
	int n = 0;
	for (const char *p = r.out; *p; p++)
		n += *p == '\n';
	assert_int_equal(n, 2300);
	assert_memory_equal(r.out, "{\"guid\":\"m2499\"}\n", 16);
	run_free(&r);
}

static void test_text_pages(void **st)
{
	na_test_daemon *d = *st;
	const char *src = getenv("NEWSARCH_SRC");
	char a[600], b[600];
	snprintf(a, sizeof a, "%s/tests/data/text/us_paper.txt", src ? src : ".");
	snprintf(b, sizeof b, "%s/tests/data/text/no_date.txt", src ? src : ".");
	run r = run_cli(d, NULL, "-s", d->addr, "import", "--format", "text", a, b, NULL);
	assert_int_equal(r.status, 4);
	expect_in(r.err, "no_date.txt: no publication date found", "stderr");
	expect_in(r.out, "created 1 / updated 0 / unchanged 0 / rejected 1", "summary");
	run_free(&r);
	r = run_cli(d, NULL, "-s", d->addr, "import", "--format", "text", "--url",
		    "https://courier.example/garage", "--source", "Lakeside Courier", a, NULL);
	assert_int_equal(r.status, 0);
	run_free(&r);
	r = run_cli(d, NULL, "-s", d->addr, "get", "--field", "published", "https://courier.example/garage", NULL);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.out, "2022-01-08T12:52:00Z\n");
	run_free(&r);
}

static void test_exit_statuses(void **st)
{
	na_test_daemon *d = *st;
	run r = run_cli(d, NULL, "-s", d->addr, "get", "no-such-guid", NULL);
	assert_int_equal(r.status, 1);
	expect_in(r.err, "no article with guid \"no-such-guid\"", "stderr");
	run_free(&r);
	r = run_cli(d, NULL, "frobnicate", NULL);
	assert_int_equal(r.status, 2);
	expect_in(r.err, "unknown command", "stderr");
	run_free(&r);
	r = run_cli(d, NULL, "get", NULL);
	assert_int_equal(r.status, 2);
	run_free(&r);
	r = run_cli(d, NULL, "range", "--limit", "ten", NULL);
	assert_int_equal(r.status, 2);
	expect_in(r.err, "--limit", "stderr");
	run_free(&r);
	r = run_cli(d, NULL, "count", "--from", "yesterday", NULL);
	assert_int_equal(r.status, 2);
	expect_in(r.err, "--from", "stderr");
	run_free(&r);
	r = run_cli(d, NULL, "import", NULL);
	assert_int_equal(r.status, 2);
	run_free(&r);
	const char *cmds[] = { "ping", "put", "get", "range", "delete", "count", "stats", "import", "export" };
	for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++) {
		r = run_cli(d, NULL, cmds[i], "--help", NULL);
		assert_int_equal(r.status, 0);
		expect_in(r.out, "usage: newsarch", cmds[i]);
		run_free(&r);
	}
	/* no daemon: a port nothing listens on (bound, never listened) */
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof sin;
	assert_int_equal(bind(s, (struct sockaddr *)&sin, sizeof sin), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&sin, &sl), 0);
	char addr[64];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(sin.sin_port));
	const char *need[] = { "ping", "count", "stats", "export" };
	for (size_t i = 0; i < 4; i++) {
		r = run_cli(d, NULL, "-s", addr, need[i], NULL);
		assert_int_equal(r.status, 3);
		expect_in(r.err, "cannot connect", need[i]);
		run_free(&r);
	}
	r = run_cli(d, "/dev/null", "-s", addr, "import", "-", NULL);
	assert_int_equal(r.status, 3);
	run_free(&r);
	close(s);
}

/* articles the CLI cannot write as JSON are reported and skipped */
static void test_export_unconvertible(void **st)
{
	na_test_daemon *d = *st;
	na_client *c = NULL;
	char err[256];
	assert_int_equal(na_client_connect_ex(d->addr, NULL, &c, err, sizeof err), 0);
	for (int i = 0; i < 3; i++) {
		msgpack_sbuffer sb;
		msgpack_packer pk;
		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		msgpack_pack_array(&pk, 1);
		msgpack_pack_map(&pk, i == 1 ? 4 : 3);
		char g[16];
		snprintf(g, sizeof g, "w%d", i);
		na_mp_pack_cstr(&pk, "guid");
		na_mp_pack_cstr(&pk, g);
		na_mp_pack_cstr(&pk, "published");
		na_mp_pack_ts(&pk, (na_ts){ 1000 + i, 0 });
		na_mp_pack_cstr(&pk, "title");
		na_mp_pack_cstr(&pk, "x");
		if (i == 1) { /* a nested map with an integer key */
			na_mp_pack_cstr(&pk, "m");
			msgpack_pack_map(&pk, 1);
			msgpack_pack_int(&pk, 1);
			msgpack_pack_int(&pk, 2);
		}
		assert_int_equal(na_call_raw(c, "put", sb.data, sb.size, NULL, NULL), 0);
		msgpack_sbuffer_destroy(&sb);
	}
	na_client_close(c);
	run r = run_cli(d, NULL, "-s", d->addr, "export", NULL);
	assert_int_equal(r.status, 4);
	expect_in(r.err, "article w1 skipped: m: map key 0 is not a string", "stderr");
	assert_string_equal(r.out, "{\"guid\":\"w0\",\"published\":\"1970-01-01T00:16:40Z\",\"title\":\"x\"}\n"
			    "{\"guid\":\"w2\",\"published\":\"1970-01-01T00:16:42Z\",\"title\":\"x\"}\n");
	run_free(&r);
}

/* a "server" that accepts and hangs up at once: the CLI reports a lost
 * connection with status 3 */
static void test_connection_lost(void **st)
{
	na_test_daemon *d = *st;
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof sin;
	assert_int_equal(bind(s, (struct sockaddr *)&sin, sizeof sin), 0);
	assert_int_equal(listen(s, 4), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&sin, &sl), 0);
	char addr[64];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(sin.sin_port));
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		for (int i = 0; i < 2; i++) {
			int a = accept(s, NULL, NULL);
			if (a >= 0) {
				char b[256];
				(void)!read(a, b, sizeof b); /* wait for the first request */
				close(a);
			}
		}
		_exit(0);
	}
	close(s);
	char path[400];
	snprintf(path, sizeof path, "%s/few.jsonl", d->dir);
	FILE *f = fopen(path, "w");
	fputs("{\"guid\":\"a\",\"published\":0,\"title\":\"\"}\n", f);
	fclose(f);
	run r = run_cli(d, NULL, "-s", addr, "import", path, NULL);
	assert_int_equal(r.status, 3);
	expect_in(r.err, "closed the connection", "import stderr");
	expect_in(r.err, "unknown outcome", "import stderr");
	run_free(&r);
	r = run_cli(d, NULL, "-s", addr, "ping", NULL);
	assert_int_equal(r.status, 3);
	run_free(&r);
	int stw;
	assert_int_equal(waitpid(pid, &stw, 0), pid);
}

/* newsarch search on a terminal writes stored text there: control
 * characters in an article (ESC, BEL, C1) must not reach it as such. */
static void test_search_terminal_output(void **st)
{
	na_test_daemon *d = *st;
	char path[400];
	snprintf(path, sizeof path, "%s/esc.json", d->dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("{\"guid\":\"urn:esc\\u001b[2J\",\"published\":\"2022-01-08T13:22:00Z\","
	      "\"title\":\"\\u001b]2;pwned\\u0007\\u001b[8mhidden zebracity \\u009b31m\","
	      "\"body\":\"zebracity \\u001b[41m alarm\"}\n", f);
	fclose(f);
	run r = run_cli(d, NULL, "-s", d->addr, "put", path, NULL);
	assert_int_equal(r.status, 0);
	run_free(&r);
	int master;
	pid_t pid = forkpty(&master, NULL, NULL, NULL);
	assert_true(pid >= 0);
	if (pid == 0) {
		unsetenv("NEWSARCH_ADDR");
		execl(cli_bin(), "newsarch", "-s", d->addr, "search", "--min-seq", "1", "zebracity",
		      (char *)NULL);
		_exit(127);
	}
	char out[8192];
	size_t n = 0;
	ssize_t got;
	while (n < sizeof out - 1 && (got = read(master, out + n, sizeof out - 1 - n)) > 0)
		n += (size_t)got;
	out[n] = 0;
	close(master);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	expect_in(out, "zebracity", "search on a terminal");
	/* the only escapes are the CLI's own: dim, bold yellow, reset */
	for (char *e = strchr(out, '\033'); e; e = strchr(e + 1, '\033'))
		if (strncmp(e, "\033[2m", 4) && strncmp(e, "\033[1;33m", 7) && strncmp(e, "\033[0m", 4))
			fail_msg("an escape sequence from the article reached the terminal: %.12s", e + 1);
	assert_null(strchr(out, '\007'));
	assert_null(strstr(out, "\xc2\x9b"));
}

/* import stops at a refusal that is not about the articles (a follower,
 * a bad token, a full archive): exit 3, said once, not once per line */
static na_test_daemon fol; /* test_import_refused_by_server's follower */

static int teardown_fol(void **st)
{
	if (fol.dir[0])
		na_test_daemon_cleanup(&fol); /* also after a failed assertion */
	memset(&fol, 0, sizeof fol);
	return teardown(st);
}

static void test_import_refused_by_server(void **st)
{
	na_test_daemon *d = *st;
	memset(&fol, 0, sizeof fol);
	fol.extra[0] = "--follow";
	fol.extra[1] = d->addr;
	assert_int_equal(na_test_daemon_start(&fol), 0);
	char path[400], line[600];
	snprintf(path, sizeof path, "%s/many.jsonl", d->dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	for (int i = 0; i < 50; i++) {
		gen_article(line, sizeof line, 900000 + i);
		fputs(line, f);
		fputc('\n', f);
	}
	fclose(f);
	run r = run_cli(&fol, NULL, "-s", fol.addr, "import", path, NULL);
	assert_int_equal(r.status, 3);
	expect_in(r.err, "read-only", "import into a follower");
	assert_null(strstr(strstr(r.err, "read-only") + 1, "read-only"));
	run_free(&r);
	assert_int_equal(na_test_daemon_cleanup(&fol), 0);
	memset(&fol, 0, sizeof fol);
}

/* a file of exactly the largest size accepted is accepted */
static void test_file_of_the_largest_size(void **st)
{
	na_test_daemon *d = *st;
	char path[400];
	snprintf(path, sizeof path, "%s/big.json", d->dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	const size_t max = (size_t)64 << 20; /* put's limit */
	const char *head = "{\"guid\":\"urn:big\",\"published\":\"2022-01-08T13:22:00Z\","
			   "\"title\":\"big\",\"body\":\"";
	fputs(head, f);
	size_t fill = max - strlen(head) - 3;
	for (size_t i = 0; i < fill; i++)
		fputc('a' + (int)(i % 26), f);
	fputs("\"}\n", f);
	fclose(f);
	struct stat sb;
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal((size_t)sb.st_size, max);
	run r = run_cli(d, NULL, "-s", d->addr, "put", path, NULL);
	/* read whole: what the server says of a 64 MiB article is its business */
	assert_null(strstr(r.err, "larger than"));
	run_free(&r);
	f = fopen(path, "a");
	fputc('\n', f);
	fclose(f);
	r = run_cli(d, NULL, "-s", d->addr, "put", path, NULL);
	expect_in(r.err, "larger than", "put of one byte more");
	run_free(&r);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_import_export_20000, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_small_commands, setup, teardown),
		cmocka_unit_test_setup_teardown(test_text_pages, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exit_statuses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_export_unconvertible, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connection_lost, setup, teardown),
		cmocka_unit_test_setup_teardown(test_search_terminal_output, setup, teardown),
		cmocka_unit_test_setup_teardown(test_import_refused_by_server, setup, teardown_fol),
		cmocka_unit_test_setup_teardown(test_file_of_the_largest_size, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
