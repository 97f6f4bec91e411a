/*
 * export.c - `newsarch export`: every article of a time range, in
 * publication order, as JSON lines (zstd when the output name ends in .zst).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "json.h"
#include "lineio.h"
#include "rpc.h"

static const char usage[] =
	"usage: newsarch export [--from T] [--to T] [-o FILE]\n"
	"\n"
	"Writes the articles with from <= published < to, oldest first, one JSON\n"
	"object per line, to FILE (zstd-compressed when it ends in .zst) or stdout.\n"
	"`newsarch export | newsarch import -` into an empty archive gives back its\n"
	"articles as far as JSON carries them (see newsarch(1): timestamps outside\n"
	"published/updated come back as strings, float32 as float64).\n"
	"An article that cannot be written as JSON is reported and skipped (exit 4).\n";

int cmd_export(cli *c)
{
	static const struct option opts[] = { { "help", no_argument, NULL, 'h' },
		{ "server", required_argument, NULL, 's' }, { "from", required_argument, NULL, 'F' },
		{ "to", required_argument, NULL, 'T' }, { "output", required_argument, NULL, 'o' }, { 0 } };
	na_time from, to;
	bool hf = false, ht = false;
	const char *outp = NULL;
	int ch;
	while ((ch = getopt_long(c->argc, c->argv, "hs:o:", opts, NULL)) != -1) {
		switch (ch) {
		case 'h':
			fputs(usage, stdout);
			return EXIT_OKAY;
		case 's':
			c->addr = optarg;
			break;
		case 'o':
			outp = optarg;
			break;
		case 'F':
		case 'T':
			if (cli_parse_time(optarg, ch == 'F' ? &from : &to)) {
				cli_err("export", "--%s: not an RFC 3339 time or unix seconds: \"%s\"",
					ch == 'F' ? "from" : "to", optarg);
				return EXIT_USAGE;
			}
			if (ch == 'F') hf = true; else ht = true;
			break;
		default:
			fputs(usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != c->argc) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	na_client *cl = cli_connect(c, "export");
	if (!cl)
		return EXIT_SERVER;
	progress pr;
	progress_init(&pr, 0, "articles");
	if ((!outp || !strcmp(outp, "-")) && isatty(1))
		pr.on = false; /* the articles go to the same terminal */
	if (pr.on) {
		uint64_t total = 0;
		if (!na_count(cl, hf ? &from : NULL, ht ? &to : NULL, &total))
			pr.total = total;
	}
	na_out w;
	if (na_out_open(&w, outp)) {
		cli_err("export", "%s", w.err);
		na_out_close(&w);
		na_client_close(cl);
		return EXIT_USAGE;
	}
	na_range_opts o = { .from = hf ? &from : NULL, .to = ht ? &to : NULL,
			    .page_size = NA_RANGE_LIMIT_MAX };
	na_range *it = NULL;
	int rc = na_range_open(cl, &o, &it);
	uint64_t n = 0, skipped = 0;
	int ex = EXIT_OKAY;
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	char err[512];
	const na_article *a;
	double t0 = cli_now();
	while (!rc && (rc = na_range_next(it, &a)) == 1) {
		rc = 0;
		const uint8_t *b;
		size_t len;
		na_article_bytes(a, &b, &len);
		if (na_json_from_msgpack(b, len, &sb, err, sizeof err)) {
			const char *g = "";
			size_t gn = 0;
			na_article_get_guid(a, &g, &gn);
			if (pr.on)
				fputs("\r\x1b[K", stderr);
			cli_err("export", "article %.*s skipped: %s", (int)gn, g, err);
			skipped++;
			continue;
		}
		msgpack_sbuffer_write(&sb, "\n", 1);
		n++;
		if (sb.size >= (1u << 20)) {
			if (na_out_write(&w, sb.data, sb.size)) {
				cli_err("export", "%s: %s", outp ? outp : "<stdout>", w.err);
				ex = EXIT_SERVER;
				break;
			}
			sb.size = 0;
		}
		progress_update(&pr, n + skipped, n, false);
	}
	if (rc < 0) {
		cli_err("export", "%s: %s", na_strerror(rc), na_client_errmsg(cl));
		ex = cli_exit_for(rc);
	}
	if (ex == EXIT_OKAY && sb.size && na_out_write(&w, sb.data, sb.size)) {
		cli_err("export", "%s: %s", outp ? outp : "<stdout>", w.err);
		ex = EXIT_SERVER;
	}
	if (na_out_close(&w) && ex == EXIT_OKAY) {
		cli_err("export", "%s: %s", outp ? outp : "<stdout>", w.err);
		ex = EXIT_SERVER;
	}
	progress_end(&pr);
	msgpack_sbuffer_destroy(&sb);
	na_range_close(it);
	na_client_close(cl);
	double el = cli_now() - t0;
	if (ex == EXIT_OKAY || ex == EXIT_REJECTED) {
		fprintf(stderr, "exported %" PRIu64 " articles in %.2f s (%.0f/s)", n, el, el > 0 ? n / el : 0.0);
		if (skipped)
			fprintf(stderr, ", %" PRIu64 " skipped", skipped);
		fputc('\n', stderr);
	}
	if (ex == EXIT_OKAY && skipped)
		ex = EXIT_REJECTED;
	return ex;
}
