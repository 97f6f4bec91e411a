/*
 * main.c - the newsarch command: global options, dispatch, and the small
 * commands (ping, put, get, range, delete, count, stats). import and export
 * live in import.c and export.c.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "json.h"
#include "rpc.h"
#include "timefmt.h"

#define MAX_PUT_BYTES ((size_t)64 << 20)

static const char usage_main[] =
	"usage: newsarch [-s ADDR] [TLS OPTIONS] COMMAND [ARGS]\n"
	"\n"
	"Talks to a newsarchd server. ADDR is host:port, [v6addr]:port, unix:/path,\n"
	"or tls://host:port for the server's TLS listener;\n"
	"default: $NEWSARCH_ADDR, else " NA_DEFAULT_ADDR ".\n"
	"\n"
	"TLS options (with a tls:// address; the server's certificate and name are\n"
	"always verified):\n"
	"  --cacert FILE             trusted CAs, PEM (default: the system's)\n"
	"  --cert FILE --key FILE    client certificate and key, PEM\n"
	"  --servername NAME         name the server's certificate must carry\n"
	"                            (default: the host in ADDR)\n"
	"\n"
	"commands:\n"
	"  ping                      check that the server answers\n"
	"  put [FILE|-]              store one JSON article\n"
	"  get GUID                  print an article as JSON (--field NAME: one field)\n"
	"  range [OPTIONS]           print articles in publication order, as JSON lines\n"
	"  delete GUID               delete an article\n"
	"  count [--from T] [--to T] count articles\n"
	"  stats [--json]            server statistics\n"
	"  import FILE...            store JSON lines (plain or .zst) or text pages\n"
	"  export [-o FILE]          write articles as JSON lines (.zst if FILE ends so)\n"
	"  promote                   turn a follower into a primary (new history)\n"
	"  backup DIR                have the server copy the archive into DIR (on its host)\n"
	"  verify                    check the archive's consistency online\n"
	"  metrics                   print the server's metrics (Prometheus text)\n"
	"  search QUERY [OPTIONS]    full-text search (highlighted on a terminal, else JSON lines)\n"
	"  reindex                   rebuild the server's search index online\n"
	"\n"
	"`newsarch COMMAND --help` describes a command. Times (T) are RFC 3339\n"
	"(2022-01-08T07:52:00Z, 2022-01-08, any offset) or unix seconds.\n"
	"\n"
	"environment: NEWSARCH_ADDR (server), NEWSARCH_TOKEN (authenticate with it),\n"
	"NEWSARCH_CACERT, NEWSARCH_CERT, NEWSARCH_KEY, NEWSARCH_SERVERNAME (TLS options)\n"
	"\n"
	"exit status: 0 ok, 1 not found, 2 usage error, 3 server or connection\n"
	"error, 4 some input rejected or some article not convertible.\n";

void cli_err(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "newsarch%s%s: ", cmd ? " " : "", cmd ? cmd : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

double cli_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int cli_exit_for(int err)
{
	if (err == 0)
		return EXIT_OKAY;
	if (err == NA_ENOTFOUND)
		return EXIT_NOTFOUND;
	if (err == NA_EBADREQ || err == NA_ETOOLARGE)
		return EXIT_REJECTED;
	return EXIT_SERVER;
}

void cli_tls_options(const cli *c, na_options *o)
{
	o->tls_ca_file = c->cacert;
	o->tls_cert_file = c->cert;
	o->tls_key_file = c->key;
	o->tls_server_name = c->servername;
}

na_client *cli_connect(const cli *c, const char *cmd)
{
	na_options o;
	na_client *cl = NULL;
	char err[512] = "";
	na_options_init(&o);
	cli_tls_options(c, &o);
	o.io_timeout_ms = 300000;
	o.token = getenv("NEWSARCH_TOKEN");
	if (o.token && !*o.token)
		o.token = NULL;
	int rc = na_client_connect_ex(c->addr, &o, &cl, err, sizeof err);
	if (rc) {
		cli_err(cmd, "cannot connect to %s: %s", c->addr, err[0] ? err : na_strerror(rc));
		return NULL;
	}
	return cl;
}

int cli_parse_time(const char *s, na_time *t)
{
	na_ts ts;
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (*s && !*end && !errno) {
		if (v < NA_TS_MIN_SEC || v > NA_TS_MAX_SEC)
			return -1;
		t->sec = v;
		t->nsec = 0;
		return 0;
	}
	if (na_rfc3339_parse(s, strlen(s), &ts, NULL))
		return -1;
	t->sec = ts.sec;
	t->nsec = ts.nsec;
	return 0;
}

int cli_read_file(const char *cmd, const char *path, size_t max, char **buf, size_t *len)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
	if (!f) {
		cli_err(cmd, "%s: %s", path, strerror(errno));
		return -1;
	}
	size_t cap = 1 << 16, n = 0;
	char *b = malloc(cap + 1);
	int rc = 0;
	while (b) {
		size_t r = fread(b + n, 1, cap - n, f);
		n += r;
		if (r == 0)
			break;
		if (n == cap) {
			if (cap >= max) {
				int c = fgetc(f); /* exactly max bytes is allowed */
				if (c == EOF && !ferror(f))
					break;
				cli_err(cmd, "%s: larger than %zu bytes", path, max);
				rc = -1;
				break;
			}
			size_t nc = cap * 2 > max ? max : cap * 2;
			char *nb = realloc(b, nc + 1);
			if (!nb) {
				free(b);
				b = NULL;
				break;
			}
			b = nb;
			cap = nc;
		}
	}
	if (!b) {
		cli_err(cmd, "%s: out of memory", path);
		rc = -1;
	} else if (ferror(f)) {
		cli_err(cmd, "%s: %s", path, strerror(errno));
		rc = -1;
	}
	if (f != stdin)
		fclose(f);
	if (rc) {
		free(b);
		return -1;
	}
	b[n] = '\0';
	*buf = b;
	*len = n;
	return 0;
}

/* ---- progress ------------------------------------------------------ */

void progress_init(progress *p, uint64_t total, const char *items_name)
{
	memset(p, 0, sizeof *p);
	p->on = isatty(2) && !getenv("NEWSARCH_NO_PROGRESS");
	p->t0 = p->last = cli_now();
	p->total = total;
	p->items_name = items_name;
}

static void fmt_dur(char *b, size_t n, double s)
{
	if (s < 0 || s > 360000) {
		snprintf(b, n, "--:--");
		return;
	}
	unsigned x = (unsigned)(s + 0.5);
	if (x >= 3600)
		snprintf(b, n, "%u:%02u:%02u", x / 3600, x / 60 % 60, x % 60);
	else
		snprintf(b, n, "%u:%02u", x / 60, x % 60);
}

void progress_update(progress *p, uint64_t done, uint64_t items, bool force)
{
	if (!p->on)
		return;
	double now = cli_now();
	if (!force && now - p->last < 0.1)
		return;
	p->last = now;
	double el = now - p->t0;
	double rate = el > 0 ? items / el : 0;
	char eta[32] = "--:--", elapsed[32];
	fmt_dur(elapsed, sizeof elapsed, el);
	if (p->total && done > 0 && done <= p->total)
		fmt_dur(eta, sizeof eta, el * (double)(p->total - done) / (double)done);
	if (p->total) {
		int pct = done >= p->total ? 100 : (int)(100.0 * (double)done / (double)p->total);
		char bar[31];
		int fill = pct * 30 / 100;
		for (int i = 0; i < 30; i++)
			bar[i] = i < fill ? '#' : '.';
		bar[30] = '\0';
		fprintf(stderr, "\r[%s] %3d%%  %" PRIu64 " %s  %.0f/s  %s  ETA %s\x1b[K", bar, pct, items,
			p->items_name, rate, elapsed, eta);
	} else {
		fprintf(stderr, "\r%" PRIu64 " %s  %.0f/s  %s\x1b[K", items, p->items_name, rate, elapsed);
	}
	fflush(stderr);
}

void progress_end(progress *p)
{
	if (p->on) {
		fprintf(stderr, "\r\x1b[K");
		fflush(stderr);
	}
}

/* ---- option parsing helpers ---------------------------------------- */

/* Returns -1 to continue, else an exit status (help printed / usage error). */
static int common_opt(int ch, const char *cmd, const char *usage, cli *c)
{
	switch (ch) {
	case 'h':
		fputs(usage, stdout);
		return EXIT_OKAY;
	case 's':
		c->addr = optarg;
		return -1;
	default:
		fprintf(stderr, "%s", usage);
		(void)cmd;
		return EXIT_USAGE;
	}
}

static int parse_time_opt(const char *cmd, const char *name, const char *v, na_time *t)
{
	if (cli_parse_time(v, t)) {
		cli_err(cmd, "--%s: not an RFC 3339 time or unix seconds: \"%s\"", name, v);
		return -1;
	}
	return 0;
}

/* prints one article (msgpack) as a JSON line; 0, or -1 after a message */
static int print_article_json(const char *cmd, const na_article *a, FILE *out)
{
	const uint8_t *b;
	size_t n;
	char err[512];
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	na_article_bytes(a, &b, &n);
	if (na_json_from_msgpack(b, n, &sb, err, sizeof err)) {
		const char *g = "";
		size_t gn = 0;
		na_article_get_guid(a, &g, &gn);
		cli_err(cmd, "article %.*s: %s", (int)gn, g, err);
		msgpack_sbuffer_destroy(&sb);
		return -1;
	}
	msgpack_sbuffer_write(&sb, "\n", 1);
	fwrite(sb.data, 1, sb.size, out);
	msgpack_sbuffer_destroy(&sb);
	return 0;
}

/* ---- commands ------------------------------------------------------ */

static const struct option only_help[] = { { "help", no_argument, NULL, 'h' },
					   { "server", required_argument, NULL, 's' }, { 0 } };

static int cmd_ping(cli *c)
{
	static const char usage[] = "usage: newsarch ping\n\nChecks that the server answers; prints \"pong\" and the round trip.\n";
	int ch, r;
	while ((ch = getopt_long(c->argc, c->argv, "hs:", only_help, NULL)) != -1)
		if ((r = common_opt(ch, "ping", usage, c)) >= 0)
			return r;
	if (optind != c->argc) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	na_client *cl = cli_connect(c, "ping");
	if (!cl)
		return EXIT_SERVER;
	double t0 = cli_now();
	int rc = na_ping(cl);
	if (rc) {
		cli_err("ping", "%s: %s", na_strerror(rc), na_client_errmsg(cl));
	} else {
		printf("pong from %s in %.3f ms\n", c->addr, (cli_now() - t0) * 1e3);
	}
	na_client_close(cl);
	return cli_exit_for(rc);
}

static int cmd_put(cli *c)
{
	static const char usage[] =
		"usage: newsarch put [FILE|-]\n\n"
		"Stores one article given as a JSON object (default: read from stdin).\n"
		"guid, published and title are required; published/updated may be RFC 3339\n"
		"or unix seconds. Prints created/updated/unchanged, the guid and seq.\n";
	int ch, r;
	while ((ch = getopt_long(c->argc, c->argv, "hs:", only_help, NULL)) != -1)
		if ((r = common_opt(ch, "put", usage, c)) >= 0)
			return r;
	if (c->argc - optind > 1) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	const char *path = optind < c->argc ? c->argv[optind] : "-";
	char *text;
	size_t len;
	if (cli_read_file("put", path, MAX_PUT_BYTES, &text, &len))
		return EXIT_USAGE;
	char err[512];
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	int rc = na_json_article_from_text(text, len, &sb, err, sizeof err);
	free(text);
	if (rc) {
		cli_err("put", "%s: %s", path, err);
		msgpack_sbuffer_destroy(&sb);
		return EXIT_REJECTED;
	}
	na_article *a = NULL;
	rc = na_article_parse(sb.data, sb.size, &a);
	msgpack_sbuffer_destroy(&sb);
	if (rc) {
		cli_err("put", "%s: not a valid article (%s)", path, na_strerror(rc));
		return EXIT_REJECTED;
	}
	na_client *cl = cli_connect(c, "put");
	if (!cl) {
		na_article_free(a);
		return EXIT_SERVER;
	}
	na_put_result res;
	rc = na_put(cl, a, &res);
	const char *g;
	size_t gn;
	na_article_get_guid(a, &g, &gn);
	if (rc) {
		cli_err("put", "%.*s: %s: %s", (int)gn, g, na_strerror(rc), na_client_errmsg(cl));
	} else {
		const char *st = res.status == NA_PUT_CREATED ? "created" :
				 res.status == NA_PUT_UPDATED ? "updated" : "unchanged";
		printf("%s %.*s seq %" PRIu64 "\n", st, (int)gn, g, res.seq);
	}
	na_article_free(a);
	na_client_close(cl);
	return cli_exit_for(rc);
}

/* a single field printed "raw": strings as their bytes, times as RFC 3339,
 * anything else as JSON; then a newline */
static int print_field_raw(const na_field *f)
{
	na_mp r;
	na_mp_init(&r, f->value, f->value_len);
	if (na_mp_peek(&r) == NA_MP_STR) {
		const char *s;
		uint32_t n;
		na_mp_str(&r, &s, &n);
		fwrite(s, 1, n, stdout);
		fputc('\n', stdout);
		return 0;
	}
	if (na_mp_peek(&r) == NA_MP_EXT) {
		na_mp r2 = r;
		na_ts ts;
		char buf[NA_RFC3339_BUFSZ];
		if (!na_mp_ts(&r2, &ts) && na_rfc3339_format(ts, buf, sizeof buf) > 0) {
			printf("%s\n", buf);
			return 0;
		}
	}
	char err[512];
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	if (na_json_from_msgpack(f->value, f->value_len, &sb, err, sizeof err)) {
		cli_err("get", "%.*s: %s", (int)f->name_len, f->name, err);
		msgpack_sbuffer_destroy(&sb);
		return -1;
	}
	fwrite(sb.data, 1, sb.size, stdout);
	fputc('\n', stdout);
	msgpack_sbuffer_destroy(&sb);
	return 0;
}

static int cmd_get(cli *c)
{
	static const char usage[] =
		"usage: newsarch get [--field NAME] GUID\n\n"
		"Prints the article as one line of JSON. With --field, prints only that\n"
		"field: a string as its raw text, a time as RFC 3339, anything else as JSON.\n"
		"Exit status 1 when there is no such article or field.\n";
	static const struct option opts[] = { { "help", no_argument, NULL, 'h' },
		{ "server", required_argument, NULL, 's' }, { "field", required_argument, NULL, 'f' }, { 0 } };
	const char *field = NULL;
	int ch, r;
	while ((ch = getopt_long(c->argc, c->argv, "hs:f:", opts, NULL)) != -1) {
		if (ch == 'f') {
			field = optarg;
			continue;
		}
		if ((r = common_opt(ch, "get", usage, c)) >= 0)
			return r;
	}
	if (c->argc - optind != 1) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	const char *guid = c->argv[optind];
	size_t gl = strlen(guid);
	if (gl == 0 || gl > NA_GUID_MAX_BYTES) {
		cli_err("get", "a guid is 1 to %d bytes", NA_GUID_MAX_BYTES);
		return EXIT_USAGE;
	}
	na_client *cl = cli_connect(c, "get");
	if (!cl)
		return EXIT_SERVER;
	na_article *a = NULL;
	int rc = na_get(cl, guid, gl, field ? &field : NULL, field ? 1 : 0, &a);
	int ex;
	if (rc == NA_ENOTFOUND) {
		cli_err("get", "no article with guid \"%s\"", guid);
		ex = EXIT_NOTFOUND;
	} else if (rc) {
		cli_err("get", "%s: %s", na_strerror(rc), na_client_errmsg(cl));
		ex = cli_exit_for(rc);
	} else if (field) {
		na_field f;
		if (na_article_find_field(a, field, &f)) {
			cli_err("get", "article \"%s\" has no field \"%s\"", guid, field);
			ex = EXIT_NOTFOUND;
		} else {
			ex = print_field_raw(&f) ? EXIT_REJECTED : EXIT_OKAY;
		}
	} else {
		ex = print_article_json("get", a, stdout) ? EXIT_REJECTED : EXIT_OKAY;
	}
	na_article_free(a);
	na_client_close(cl);
	return ex;
}

static int split_fields(const char *cmd, char *list, const char **names, size_t *n)
{
	*n = 0;
	for (char *save = NULL, *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (*n == NA_MAX_FIELDS) {
			cli_err(cmd, "--fields: at most %d names", NA_MAX_FIELDS);
			return -1;
		}
		names[(*n)++] = t;
	}
	if (!*n) {
		cli_err(cmd, "--fields: no names");
		return -1;
	}
	return 0;
}

static int cmd_range(cli *c)
{
	static const char usage[] =
		"usage: newsarch range [--from T] [--to T] [--limit N] [--reverse] [--fields a,b,c]\n\n"
		"Prints the articles with from <= published < to in publication order\n"
		"(newest first with --reverse), one JSON object per line. --limit is the\n"
		"total number printed (default: all); --fields keeps only those fields.\n";
	static const struct option opts[] = { { "help", no_argument, NULL, 'h' },
		{ "server", required_argument, NULL, 's' }, { "from", required_argument, NULL, 'F' },
		{ "to", required_argument, NULL, 'T' }, { "limit", required_argument, NULL, 'n' },
		{ "reverse", no_argument, NULL, 'r' }, { "fields", required_argument, NULL, 'f' }, { 0 } };
	na_time from, to;
	bool hf = false, ht = false, rev = false;
	uint64_t limit = UINT64_MAX;
	char *fields = NULL;
	int ch, r;
	while ((ch = getopt_long(c->argc, c->argv, "hs:n:r", opts, NULL)) != -1) {
		switch (ch) {
		case 'F':
			if (parse_time_opt("range", "from", optarg, &from))
				return EXIT_USAGE;
			hf = true;
			continue;
		case 'T':
			if (parse_time_opt("range", "to", optarg, &to))
				return EXIT_USAGE;
			ht = true;
			continue;
		case 'n': {
			char *e;
			errno = 0;
			unsigned long long v = strtoull(optarg, &e, 10);
			if (!*optarg || *e || errno || optarg[0] == '-') {
				cli_err("range", "--limit: not a number: \"%s\"", optarg);
				return EXIT_USAGE;
			}
			limit = v;
			continue;
		}
		case 'r':
			rev = true;
			continue;
		case 'f':
			fields = optarg;
			continue;
		}
		if ((r = common_opt(ch, "range", usage, c)) >= 0)
			return r;
	}
	if (optind != c->argc) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	const char *names[NA_MAX_FIELDS];
	size_t nnames = 0;
	if (fields && split_fields("range", fields, names, &nnames))
		return EXIT_USAGE;
	if (limit == 0)
		return EXIT_OKAY;
	na_client *cl = cli_connect(c, "range");
	if (!cl)
		return EXIT_SERVER;
	na_range_opts o = { .from = hf ? &from : NULL, .to = ht ? &to : NULL,
			    .page_size = limit < NA_RANGE_LIMIT_MAX ? (unsigned)limit : NA_RANGE_LIMIT_MAX,
			    .reverse = rev, .fields = fields ? names : NULL, .nfields = nnames };
	na_range *it = NULL;
	int rc = na_range_open(cl, &o, &it);
	uint64_t printed = 0;
	int ex = EXIT_OKAY;
	const na_article *a;
	while (!rc && printed < limit && (rc = na_range_next(it, &a)) == 1) {
		rc = 0;
		if (print_article_json("range", a, stdout))
			ex = EXIT_REJECTED;
		printed++;
	}
	if (rc < 0) {
		cli_err("range", "%s: %s", na_strerror(rc), na_client_errmsg(cl));
		ex = cli_exit_for(rc);
	}
	na_range_close(it);
	na_client_close(cl);
	if (fflush(stdout)) {
		cli_err("range", "write: %s", strerror(errno));
		return EXIT_SERVER;
	}
	return ex;
}

static int cmd_delete(cli *c)
{
	static const char usage[] =
		"usage: newsarch delete GUID\n\nDeletes the article. Exit status 1 when there was none.\n";
	int ch, r;
	while ((ch = getopt_long(c->argc, c->argv, "hs:", only_help, NULL)) != -1)
		if ((r = common_opt(ch, "delete", usage, c)) >= 0)
			return r;
	if (c->argc - optind != 1) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	const char *guid = c->argv[optind];
	size_t gl = strlen(guid);
	if (gl == 0 || gl > NA_GUID_MAX_BYTES) {
		cli_err("delete", "a guid is 1 to %d bytes", NA_GUID_MAX_BYTES);
		return EXIT_USAGE;
	}
	na_client *cl = cli_connect(c, "delete");
	if (!cl)
		return EXIT_SERVER;
	int deleted = 0;
	uint64_t seq = 0;
	int rc = na_delete(cl, guid, gl, &deleted, &seq);
	int ex;
	if (rc) {
		cli_err("delete", "%s: %s", na_strerror(rc), na_client_errmsg(cl));
		ex = cli_exit_for(rc);
	} else if (!deleted) {
		cli_err("delete", "no article with guid \"%s\"", guid);
		ex = EXIT_NOTFOUND;
	} else {
		printf("deleted %s seq %" PRIu64 "\n", guid, seq);
		ex = EXIT_OKAY;
	}
	na_client_close(cl);
	return ex;
}

static int cmd_count(cli *c)
{
	static const char usage[] =
		"usage: newsarch count [--from T] [--to T]\n\nPrints the number of articles with from <= published < to.\n";
	static const struct option opts[] = { { "help", no_argument, NULL, 'h' },
		{ "server", required_argument, NULL, 's' }, { "from", required_argument, NULL, 'F' },
		{ "to", required_argument, NULL, 'T' }, { 0 } };
	na_time from, to;
	bool hf = false, ht = false;
	int ch, r;
	while ((ch = getopt_long(c->argc, c->argv, "hs:", opts, NULL)) != -1) {
		if (ch == 'F') {
			if (parse_time_opt("count", "from", optarg, &from))
				return EXIT_USAGE;
			hf = true;
			continue;
		}
		if (ch == 'T') {
			if (parse_time_opt("count", "to", optarg, &to))
				return EXIT_USAGE;
			ht = true;
			continue;
		}
		if ((r = common_opt(ch, "count", usage, c)) >= 0)
			return r;
	}
	if (optind != c->argc) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	na_client *cl = cli_connect(c, "count");
	if (!cl)
		return EXIT_SERVER;
	uint64_t n = 0;
	int rc = na_count(cl, hf ? &from : NULL, ht ? &to : NULL, &n);
	if (rc)
		cli_err("count", "%s: %s", na_strerror(rc), na_client_errmsg(cl));
	else
		printf("%" PRIu64 "\n", n);
	na_client_close(cl);
	return cli_exit_for(rc);
}

static void human_bytes(char *b, size_t n, uint64_t v)
{
	static const char *const u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double x = (double)v;
	int i = 0;
	while (x >= 1024 && i < 4) {
		x /= 1024;
		i++;
	}
	if (i == 0)
		snprintf(b, n, "%" PRIu64 " B", v);
	else
		snprintf(b, n, "%.1f %s (%" PRIu64 ")", x, u[i], v);
}

static int cmd_stats(cli *c)
{
	static const char usage[] =
		"usage: newsarch stats [--json]\n\nPrints the server's statistics as a table, or as one JSON object.\n";
	static const struct option opts[] = { { "help", no_argument, NULL, 'h' },
		{ "server", required_argument, NULL, 's' }, { "json", no_argument, NULL, 'j' }, { 0 } };
	bool json = false;
	int ch, r;
	while ((ch = getopt_long(c->argc, c->argv, "hs:", opts, NULL)) != -1) {
		if (ch == 'j') {
			json = true;
			continue;
		}
		if ((r = common_opt(ch, "stats", usage, c)) >= 0)
			return r;
	}
	if (optind != c->argc) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	na_client *cl = cli_connect(c, "stats");
	if (!cl)
		return EXIT_SERVER;
	na_server_stats *s = NULL;
	int rc = na_stats(cl, &s);
	int ex = EXIT_OKAY;
	char err[512];
	if (rc) {
		cli_err("stats", "%s: %s", na_strerror(rc), na_client_errmsg(cl));
		ex = cli_exit_for(rc);
	} else if (json) {
		msgpack_sbuffer sb;
		msgpack_sbuffer_init(&sb);
		if (na_json_from_msgpack(s->raw, s->raw_len, &sb, err, sizeof err)) {
			cli_err("stats", "%s", err);
			ex = EXIT_SERVER;
		} else {
			printf("%.*s\n", (int)sb.size, sb.data);
		}
		msgpack_sbuffer_destroy(&sb);
	} else {
		/* every key of the map, in the server's order */
		na_mp m;
		uint32_t n = 0;
		na_mp_init(&m, s->raw, s->raw_len);
		na_mp_map(&m, &n);
		for (uint32_t i = 0; i < n && !m.err; i++) {
			const char *k;
			uint32_t kn;
			if (na_mp_str(&m, &k, &kn))
				break;
			char val[128];
			uint64_t u;
			double d;
			const char *sv;
			uint32_t sn;
			bool bytes = (kn >= 6 && !memcmp(k + kn - 6, "_bytes", 6)) ||
				     (kn >= 5 && !memcmp(k + kn - 5, "_size", 5)) ||
				     na_mp_streq(k, kn, "map_used");
			na_mp_type t = na_mp_peek(&m);
			if (t == NA_MP_UINT && !na_mp_u64(&m, &u)) {
				if (bytes)
					human_bytes(val, sizeof val, u);
				else if (na_mp_streq(k, kn, "uptime"))
					snprintf(val, sizeof val, "%" PRIu64 " s", u);
				else
					snprintf(val, sizeof val, "%" PRIu64, u);
			} else if (t == NA_MP_FLOAT && !na_mp_f64(&m, &d)) {
				snprintf(val, sizeof val, "%.2f", d);
			} else if (t == NA_MP_STR && !na_mp_str(&m, &sv, &sn)) {
				snprintf(val, sizeof val, "%.*s", (int)(sn > 100 ? 100 : sn), sv);
			} else {
				msgpack_sbuffer sb;
				msgpack_sbuffer_init(&sb);
				na_mp c2 = m;
				if (na_json_from_mp(&c2, &sb, err, sizeof err))
					snprintf(val, sizeof val, "?");
				else
					snprintf(val, sizeof val, "%.*s", (int)(sb.size > 100 ? 100 : sb.size), sb.data);
				msgpack_sbuffer_destroy(&sb);
				na_mp_skip(&m);
			}
			printf("%-18.*s %s\n", (int)kn, k, val);
		}
	}
	na_server_stats_free(s);
	na_client_close(cl);
	return ex;
}

static int cmd_promote(cli *c)
{
	static const char usage[] =
		"usage: newsarch promote\n\nTurns the follower at -s ADDR into a primary: it stops following,\n"
		"accepts writes, and starts a new history that continues the old one up\n"
		"to its position, so the other followers can follow it without a snapshot.\n";
	int ch, r;
	while ((ch = getopt_long(c->argc, c->argv, "hs:", only_help, NULL)) != -1)
		if ((r = common_opt(ch, "promote", usage, c)) >= 0)
			return r;
	if (optind != c->argc) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	na_client *cl = cli_connect(c, "promote");
	if (!cl)
		return EXIT_SERVER;
	const uint8_t *res;
	size_t len;
	int rc = na_call_raw(cl, "promote", NULL, 0, &res, &len);
	if (rc) {
		cli_err("promote", "%s: %s", na_strerror(rc), na_client_errmsg(cl));
	} else {
		na_mp m;
		uint32_t n;
		const char *hist = "?";
		uint32_t hn = 1;
		uint64_t seq = 0;
		na_mp_init(&m, res, len);
		if (na_mp_map(&m, &n) == 0)
			for (uint32_t i = 0; i < n; i++) {
				const char *k;
				uint32_t kn;
				if (na_mp_str(&m, &k, &kn))
					break;
				if (na_mp_streq(k, kn, "history"))
					na_mp_str(&m, &hist, &hn);
				else if (na_mp_streq(k, kn, "seq"))
					na_mp_u64(&m, &seq);
				else
					na_mp_skip(&m);
			}
		printf("promoted: history %.*s from seq %llu\n", (int)hn, hist, (unsigned long long)seq);
	}
	na_client_close(cl);
	return cli_exit_for(rc);
}

/* Runs a method without parameters (or with one string) for the admin
 * commands; on success res and len hold the raw result (borrowed). */
static int admin_call(cli *c, const char *cmd, const char *usage, int nargs, const char *method,
		      na_client **clp, const uint8_t **res, size_t *len)
{
	int ch, r;
	while ((ch = getopt_long(c->argc, c->argv, "hs:", only_help, NULL)) != -1)
		if ((r = common_opt(ch, cmd, usage, c)) >= 0)
			return r;
	if (c->argc - optind != nargs) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	na_client *cl = cli_connect(c, cmd);
	if (!cl)
		return EXIT_SERVER;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, (size_t)nargs);
	for (int i = 0; i < nargs; i++)
		na_mp_pack_cstr(&pk, c->argv[optind + i]);
	int rc = na_call_raw(cl, method, sb.data, sb.size, res, len);
	msgpack_sbuffer_destroy(&sb);
	if (rc) {
		cli_err(cmd, "%s: %s", na_strerror(rc), na_client_errmsg(cl));
		na_client_close(cl);
		return cli_exit_for(rc);
	}
	*clp = cl;
	return -1;
}

/* Finds key in a result map: returns a reader positioned on its value. */
static bool result_get(const uint8_t *res, size_t len, const char *key, na_mp *out)
{
	na_mp m;
	uint32_t n;
	na_mp_init(&m, res, len);
	if (na_mp_map(&m, &n))
		return false;
	for (uint32_t i = 0; i < n; i++) {
		const char *k;
		uint32_t kn;
		if (na_mp_str(&m, &k, &kn))
			return false;
		if (na_mp_streq(k, kn, key)) {
			*out = m;
			return true;
		}
		if (na_mp_skip(&m))
			return false;
	}
	return false;
}

static int cmd_backup(cli *c)
{
	static const char usage[] =
		"usage: newsarch backup DIR\n\nAsks the server to write a compacted, consistent copy of the archive into\n"
		"DIR, a directory on the server's host that the server can create (or an\n"
		"empty one). The server keeps serving reads and writes meanwhile. To restore,\n"
		"start newsarchd with --data DIR.\n";
	na_client *cl;
	const uint8_t *res;
	size_t len;
	int r = admin_call(c, "backup", usage, 1, "backup", &cl, &res, &len);
	if (r >= 0)
		return r;
	na_mp v;
	uint64_t bytes = 0;
	if (result_get(res, len, "bytes", &v))
		na_mp_u64(&v, &bytes);
	printf("backup written to %s (%llu bytes)\n", c->argv[optind], (unsigned long long)bytes);
	na_client_close(cl);
	return EXIT_OKAY;
}

static int cmd_verify(cli *c)
{
	static const char usage[] =
		"usage: newsarch verify\n\nChecks the archive inside one read transaction: every record decodes and is a\n"
		"valid article, the guid index and the articles agree both ways, the change\n"
		"log is well formed, and every dictionary a record names exists. Prints each\n"
		"problem; exits 0 when there is none, 4 otherwise.\n";
	na_client *cl;
	const uint8_t *res;
	size_t len;
	int r = admin_call(c, "verify", usage, 0, "verify", &cl, &res, &len);
	if (r >= 0)
		return r;
	na_mp v;
	uint64_t articles = 0, problems = 0;
	if (result_get(res, len, "articles", &v))
		na_mp_u64(&v, &articles);
	if (result_get(res, len, "problems", &v))
		na_mp_u64(&v, &problems);
	uint32_t n;
	if (result_get(res, len, "report", &v) && na_mp_array(&v, &n) == 0)
		for (uint32_t i = 0; i < n; i++) {
			const char *line;
			uint32_t ln;
			if (na_mp_str(&v, &line, &ln))
				break;
			printf("%.*s\n", (int)ln, line);
		}
	printf("%llu articles checked, %llu problem%s\n", (unsigned long long)articles,
	       (unsigned long long)problems, problems == 1 ? "" : "s");
	na_client_close(cl);
	return problems ? EXIT_REJECTED : EXIT_OKAY;
}

static int cmd_metrics(cli *c)
{
	static const char usage[] =
		"usage: newsarch metrics\n\nPrints the server's metrics in the Prometheus text format, e.g. for\n"
		"node_exporter's textfile collector:\n"
		"  newsarch metrics > /var/lib/node_exporter/newsarch.prom.tmp && mv ...\n";
	na_client *cl;
	const uint8_t *res;
	size_t len;
	int r = admin_call(c, "metrics", usage, 0, "metrics", &cl, &res, &len);
	if (r >= 0)
		return r;
	na_mp v;
	const char *text;
	uint32_t tn;
	na_mp_init(&v, res, len);
	if (na_mp_str(&v, &text, &tn) == 0)
		fwrite(text, 1, tn, stdout);
	na_client_close(cl);
	return EXIT_OKAY;
}

/* ---- search ------------------------------------------------------------ */

#define HL_MAX 32

/* The words of a query worth highlighting: not negated, no operators, no
 * field names; lower-cased ASCII, a trailing '*' marks a prefix. */
static size_t highlight_words(const char *q, char words[HL_MAX][64], bool prefix[HL_MAX])
{
	size_t n = 0;
	const char *p = q;
	while (*p && n < HL_MAX) {
		while (*p && (isspace((unsigned char)*p) || *p == '(' || *p == ')' || *p == '"'))
			p++;
		if (!*p)
			break;
		bool neg = *p == '-';
		const char *start = p;
		while (*p && !isspace((unsigned char)*p) && *p != '(' && *p != ')' && *p != '"')
			p++;
		const char *colon = memchr(start, ':', (size_t)(p - start));
		if (colon)
			start = colon + 1;
		if (neg || (p - start == 2 && !strncmp(start, "OR", 2)) ||
		    (p - start == 3 && !strncmp(start, "AND", 3)))
			continue;
		/* split on punctuation like the server does */
		const char *w = start;
		while (w < p && n < HL_MAX) {
			while (w < p && !isalnum((unsigned char)*w) && !((unsigned char)*w & 0x80))
				w++;
			size_t k = 0;
			while (w < p && (isalnum((unsigned char)*w) || ((unsigned char)*w & 0x80)) && k < 63)
				words[n][k++] = (char)tolower((unsigned char)*w++);
			if (k) {
				words[n][k] = 0;
				prefix[n] = w < p && *w == '*';
				n++;
			}
		}
	}
	return n;
}

/* Does the text word t[0..len) match a query word? Stems differ from the
 * words they come from only at the end: compare all but a short ending. */
static bool hl_match(const char *t, size_t len, char words[HL_MAX][64], const bool *prefix, size_t n)
{
	char low[64];
	if (len == 0 || len >= sizeof low)
		return false;
	for (size_t i = 0; i < len; i++)
		low[i] = (char)tolower((unsigned char)t[i]);
	for (size_t i = 0; i < n; i++) {
		size_t wl = strlen(words[i]);
		size_t need = prefix[i] || wl <= 4 ? wl : wl - 2 > 4 ? wl - 2 : 4;
		if (len < need || memcmp(low, words[i], need) != 0)
			continue;
		if (prefix[i] || wl <= 4 ? (prefix[i] || len == wl) : len <= wl + 4)
			return true;
	}
	return false;
}

/* Prints s[0..len) with matching words in bold yellow, newlines as spaces. */
/* Writes stored text to a terminal: control characters (C0, DEL, C1) and
 * bytes that are not UTF-8 become '?', so an article cannot send escape
 * sequences (retitle the window, hide what follows). \n, \r and \t are
 * spaces. */
static void put_safe(FILE *f, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < len) {
		unsigned c = p[i];
		size_t n = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3
			   : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
		bool ok = n > 0 && i + n <= len;
		for (size_t k = 1; ok && k < n; k++)
			ok = (p[i + k] & 0xc0) == 0x80;
		if (ok && n == 2 && c == 0xc2 && p[i + 1] < 0xa0)
			ok = false; /* U+0080..U+009F */
		if (!ok) {
			fputc('?', f);
			i++;
		} else if (n == 1 && (c == '\n' || c == '\r' || c == '\t')) {
			fputc(' ', f);
			i++;
		} else if (n == 1 && (c < 0x20 || c == 0x7f)) {
			fputc('?', f);
			i++;
		} else {
			fwrite(p + i, 1, n, f);
			i += n;
		}
	}
}

static void print_hl(FILE *f, const char *s, size_t len, char words[HL_MAX][64], const bool *prefix,
		     size_t n)
{
	size_t i = 0;
	while (i < len) {
		size_t j = i;
		while (j < len && (isalnum((unsigned char)s[j]) || ((unsigned char)s[j] & 0x80)))
			j++;
		if (j > i) {
			bool m = hl_match(s + i, j - i, words, prefix, n);
			if (m)
				fputs("\033[1;33m", f);
			put_safe(f, s + i, j - i);
			if (m)
				fputs("\033[0m", f);
			i = j;
			continue;
		}
		put_safe(f, s + i, 1);
		i++;
	}
}

static void print_hit(const na_article *a, const char *q)
{
	char words[HL_MAX][64];
	bool prefix[HL_MAX];
	size_t nw = highlight_words(q, words, prefix);
	na_time t;
	char when[64] = "";
	if (na_article_get_published(a, &t) == 0)
		na_rfc3339_format((na_ts){ t.sec, t.nsec }, when, sizeof when);
	const char *title = "", *body = NULL, *guid = "";
	size_t tl = 0, bl = 0, gl = 0;
	na_article_get_title(a, &title, &tl);
	na_article_get_guid(a, &guid, &gl);
	if (na_article_get_body(a, &body, &bl) && na_article_get_summary(a, &body, &bl))
		body = NULL;
	printf("\033[2m%s\033[0m  ", when);
	print_hl(stdout, title, tl, words, prefix, nw);
	fputs("  \033[2m", stdout);
	put_safe(stdout, guid, gl);
	fputs("\033[0m\n", stdout);
	if (body && bl) {
		/* a snippet around the first match */
		size_t at = 0;
		for (size_t i = 0; i < bl; i++) {
			if (!(isalnum((unsigned char)body[i]) || ((unsigned char)body[i] & 0x80)) ||
			    (i > 0 && (isalnum((unsigned char)body[i - 1]) || ((unsigned char)body[i - 1] & 0x80))))
				continue;
			size_t j = i;
			while (j < bl && (isalnum((unsigned char)body[j]) || ((unsigned char)body[j] & 0x80)))
				j++;
			if (hl_match(body + i, j - i, words, prefix, nw)) {
				at = i;
				break;
			}
		}
		size_t start = at > 80 ? at - 80 : 0;
		while (start > 0 && start < at && !isspace((unsigned char)body[start - 1]))
			start++;
		size_t end = start + 240 < bl ? start + 240 : bl;
		while (end < bl && end > start && ((unsigned char)body[end] & 0xc0) == 0x80)
			end++; /* not inside a UTF-8 character */
		printf("    %s", start ? "..." : "");
		print_hl(stdout, body + start, end - start, words, prefix, nw);
		printf("%s\n", end < bl ? "..." : "");
	}
}

static int cmd_search(cli *c)
{
	static const char usage[] =
		"usage: newsarch search QUERY [--from T] [--to T] [--limit N]\n"
		"                             [--order newest|oldest|relevance] [--fields a,b,c] [--json]\n"
		"                             [--min-seq SEQ]\n\n"
		"Prints the articles matching QUERY (default: the 20 newest). On a terminal\n"
		"each hit is its time, title and a snippet with the matching words\n"
		"highlighted; otherwise (or with --json) one JSON object per line.\n\n"
		"QUERY: words (all must match), a OR b, -word (must not), \"exact phrase\",\n"
		"prefix*, and title:, author:, tag:, source:, section: before a word or\n"
		"a quoted value; parentheses group. --min-seq waits (up to 30 s) until the\n"
		"server's index covers that sequence number (as printed by put).\n";
	static const struct option opts[] = { { "help", no_argument, NULL, 'h' },
		{ "server", required_argument, NULL, 's' }, { "from", required_argument, NULL, 'F' },
		{ "to", required_argument, NULL, 'T' }, { "limit", required_argument, NULL, 'n' },
		{ "order", required_argument, NULL, 'o' }, { "fields", required_argument, NULL, 'f' },
		{ "json", no_argument, NULL, 'j' }, { "min-seq", required_argument, NULL, 'm' }, { 0 } };
	na_time from, to;
	uint64_t min_seq = 0;
	bool hf = false, ht = false, json = !isatty(STDOUT_FILENO);
	uint64_t limit = 20;
	na_search_order order = NA_SEARCH_NEWEST;
	char *fields = NULL;
	int ch, r;
	while ((ch = getopt_long(c->argc, c->argv, "hs:n:", opts, NULL)) != -1) {
		switch (ch) {
		case 'F':
			if (parse_time_opt("search", "from", optarg, &from))
				return EXIT_USAGE;
			hf = true;
			continue;
		case 'T':
			if (parse_time_opt("search", "to", optarg, &to))
				return EXIT_USAGE;
			ht = true;
			continue;
		case 'n': {
			char *e;
			errno = 0;
			unsigned long long v = strtoull(optarg, &e, 10);
			if (!*optarg || *e || errno || optarg[0] == '-') {
				cli_err("search", "--limit: not a number: \"%s\"", optarg);
				return EXIT_USAGE;
			}
			limit = v;
			continue;
		}
		case 'o':
			if (!strcmp(optarg, "newest"))
				order = NA_SEARCH_NEWEST;
			else if (!strcmp(optarg, "oldest"))
				order = NA_SEARCH_OLDEST;
			else if (!strcmp(optarg, "relevance"))
				order = NA_SEARCH_RELEVANCE;
			else {
				cli_err("search", "--order: expected newest, oldest or relevance, got \"%s\"", optarg);
				return EXIT_USAGE;
			}
			continue;
		case 'f':
			fields = optarg;
			continue;
		case 'j':
			json = true;
			continue;
		case 'm': {
			char *e;
			errno = 0;
			unsigned long long v = strtoull(optarg, &e, 10);
			if (!*optarg || *e || errno || optarg[0] == '-') {
				cli_err("search", "--min-seq: not a number: \"%s\"", optarg);
				return EXIT_USAGE;
			}
			min_seq = v;
			continue;
		}
		}
		if ((r = common_opt(ch, "search", usage, c)) >= 0)
			return r;
	}
	if (optind + 1 != c->argc) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	const char *query = c->argv[optind];
	const char *names[NA_MAX_FIELDS];
	size_t nnames = 0;
	if (fields && split_fields("search", fields, names, &nnames))
		return EXIT_USAGE;
	if (limit == 0)
		return EXIT_OKAY;
	na_client *cl = cli_connect(c, "search");
	if (!cl)
		return EXIT_SERVER;
	na_search_opts o = { .query = query, .from = hf ? &from : NULL, .to = ht ? &to : NULL,
			     .limit = limit < 1000 ? (unsigned)limit : 1000, .order = order,
			     .fields = fields ? names : NULL, .nfields = nnames, .min_seq = min_seq,
			     .timeout_ms = 30000 };
	na_search *it = NULL;
	int rc = na_search_open(cl, &o, &it);
	uint64_t printed = 0;
	int ex = EXIT_OKAY;
	const na_article *a;
	while (!rc && printed < limit && (rc = na_search_next(it, &a)) == 1) {
		rc = 0;
		if (json) {
			if (print_article_json("search", a, stdout))
				ex = EXIT_REJECTED;
		} else {
			print_hit(a, query);
		}
		printed++;
	}
	if (rc < 0) {
		cli_err("search", "%s: %s", na_strerror(rc), na_client_errmsg(cl));
		ex = cli_exit_for(rc);
	} else if (!json) {
		printf("\033[2m%llu shown, about %llu matching\033[0m\n", (unsigned long long)printed,
		       (unsigned long long)na_search_total(it));
	}
	na_search_close(it);
	na_client_close(cl);
	if (fflush(stdout)) {
		cli_err("search", "write: %s", strerror(errno));
		return EXIT_SERVER;
	}
	return ex;
}

static int cmd_reindex(cli *c)
{
	static const char usage[] =
		"usage: newsarch reindex\n\nAsks the server to rebuild its full-text search index from the\n"
		"stored articles (admin role). The server keeps serving; `newsarch stats`\n"
		"shows the progress under \"index\".\n";
	int ch, r;
	while ((ch = getopt_long(c->argc, c->argv, "hs:", only_help, NULL)) != -1)
		if ((r = common_opt(ch, "reindex", usage, c)) >= 0)
			return r;
	if (optind != c->argc) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	na_client *cl = cli_connect(c, "reindex");
	if (!cl)
		return EXIT_SERVER;
	int rc = na_reindex(cl);
	if (rc)
		cli_err("reindex", "%s: %s", na_strerror(rc), na_client_errmsg(cl));
	else
		printf("reindexing started\n");
	na_client_close(cl);
	return rc ? cli_exit_for(rc) : EXIT_OKAY;
}

int main(int argc, char **argv)
{
	cli c = { .addr = getenv("NEWSARCH_ADDR") };
	if (!c.addr || !*c.addr)
		c.addr = NA_DEFAULT_ADDR;
	const char **envs[] = { &c.cacert, &c.cert, &c.key, &c.servername };
	const char *envnames[] = { "NEWSARCH_CACERT", "NEWSARCH_CERT", "NEWSARCH_KEY",
				   "NEWSARCH_SERVERNAME" };
	for (int i = 0; i < 4; i++) {
		const char *v = getenv(envnames[i]);
		*envs[i] = v && *v ? v : NULL;
	}
	enum { O_CACERT = 256, O_CERT, O_KEY, O_SERVERNAME };
	static const struct option gopts[] = { { "help", no_argument, NULL, 'h' },
		{ "server", required_argument, NULL, 's' },
		{ "cacert", required_argument, NULL, O_CACERT },
		{ "cert", required_argument, NULL, O_CERT },
		{ "key", required_argument, NULL, O_KEY },
		{ "servername", required_argument, NULL, O_SERVERNAME }, { 0 } };
	int ch;
	while ((ch = getopt_long(argc, argv, "+hs:", gopts, NULL)) != -1) {
		switch (ch) {
		case 'h':
			fputs(usage_main, stdout);
			return EXIT_OKAY;
		case 's': c.addr = optarg; continue;
		case O_CACERT: c.cacert = optarg; continue;
		case O_CERT: c.cert = optarg; continue;
		case O_KEY: c.key = optarg; continue;
		case O_SERVERNAME: c.servername = optarg; continue;
		default:
			fputs(usage_main, stderr);
			return EXIT_USAGE;
		}
	}
	if (!c.cert != !c.key) {
		cli_err(NULL, "--cert and --key go together");
		return EXIT_USAGE;
	}
	if (optind >= argc) {
		fputs(usage_main, stderr);
		return EXIT_USAGE;
	}
	static const struct {
		const char *name;
		int (*fn)(cli *);
	} cmds[] = { { "ping", cmd_ping }, { "put", cmd_put }, { "get", cmd_get },
		     { "range", cmd_range }, { "delete", cmd_delete }, { "count", cmd_count },
		     { "stats", cmd_stats }, { "import", cmd_import }, { "export", cmd_export },
		     { "promote", cmd_promote }, { "backup", cmd_backup }, { "verify", cmd_verify },
		     { "metrics", cmd_metrics }, { "search", cmd_search }, { "reindex", cmd_reindex } };
	const char *name = argv[optind];
	if (!strcmp(name, "help")) {
		fputs(usage_main, stdout);
		return EXIT_OKAY;
	}
	c.argc = argc - optind;
	c.argv = argv + optind;
	optind = 0; /* GNU getopt: reinitialise for the command's options */
	for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++)
		if (!strcmp(cmds[i].name, name))
			return cmds[i].fn(&c);
	cli_err(NULL, "unknown command \"%s\" (see newsarch --help)", name);
	return EXIT_USAGE;
}
