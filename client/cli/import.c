/*
 * import.c - `newsarch import`: JSON lines (plain or zstd) or text pages,
 * stored with put_batch requests kept in flight on one connection so the
 * server always has the next batch waiting while it commits one.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "json.h"
#include "lineio.h"
#include "pipeline.h"
#include "rpc.h"
#include "textimport.h"

#define BATCH_HDR 6                       /* 0x91 0xdd + u32 count */
#define BATCH_MAX_BYTES ((size_t)8 << 20) /* well under max_request_bytes */
#define TEXT_MAX_BYTES ((size_t)16 << 20)

typedef struct item {
	uint32_t file;
	uint64_t line;                    /* 0: the whole file (text pages) */
} item;

struct imp;

typedef struct batch {
	struct imp *im;
	msgpack_sbuffer buf;              /* params: [[article, ...]] */
	item *items;
	size_t n, cap;
} batch;

typedef struct imp {
	char **files;
	size_t nfiles;
	uint64_t created, updated, unchanged, rejected, lines, sent, batches;
	uint64_t answered;                /* sent articles whose outcome is known */
	na_pipe pipe;
	batch *cur;
	size_t batch_max, inflight_max;
	int fatal;
	char fatal_msg[512];
	progress prog;
	uint64_t done_bytes;              /* of finished files */
} imp;

static void report(imp *im, uint32_t file, uint64_t line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void report(imp *im, uint32_t file, uint64_t line, const char *fmt, ...)
{
	va_list ap;
	if (im->prog.on)
		fputs("\r\x1b[K", stderr);
	if (line)
		fprintf(stderr, "%s:%" PRIu64 ": ", im->files[file], line);
	else
		fprintf(stderr, "%s: ", im->files[file]);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static batch *batch_new(imp *im)
{
	batch *b = calloc(1, sizeof *b);
	if (!b)
		return NULL;
	b->im = im;
	msgpack_sbuffer_init(&b->buf);
	if (msgpack_sbuffer_write(&b->buf, "\x91\xdd\0\0\0\0", BATCH_HDR)) {
		free(b);
		return NULL;
	}
	return b;
}

static void batch_free(batch *b)
{
	if (!b)
		return;
	msgpack_sbuffer_destroy(&b->buf);
	free(b->items);
	free(b);
}

/* reads item i's result map; reports failures */
static void item_result(imp *im, const item *it, na_mp *r)
{
	uint32_t n = 0;
	if (na_mp_map(r, &n)) {
		report(im, it->file, it->line, "unreadable reply from the server");
		im->rejected++;
		return;
	}
	bool done = false;
	for (uint32_t k = 0; k < n; k++) {
		const char *key;
		uint32_t kn;
		if (na_mp_str(r, &key, &kn))
			break;
		if (na_mp_streq(key, kn, "status") && na_mp_peek(r) == NA_MP_STR) {
			const char *s;
			uint32_t sn;
			na_mp_str(r, &s, &sn);
			if (na_mp_streq(s, sn, "created")) im->created++;
			else if (na_mp_streq(s, sn, "updated")) im->updated++;
			else im->unchanged++;
			done = true;
		} else if (na_mp_streq(key, kn, "error") && na_mp_peek(r) == NA_MP_MAP) {
			uint32_t en = 0;
			const char *code = "?", *msg = "";
			uint32_t cn = 1, mn = 0;
			na_mp_map(r, &en);
			for (uint32_t e = 0; e < en; e++) {
				const char *ek;
				uint32_t ekn;
				if (na_mp_str(r, &ek, &ekn))
					break;
				if (na_mp_streq(ek, ekn, "code") && na_mp_peek(r) == NA_MP_STR)
					na_mp_str(r, &code, &cn);
				else if (na_mp_streq(ek, ekn, "message") && na_mp_peek(r) == NA_MP_STR)
					na_mp_str(r, &msg, &mn);
				else
					na_mp_skip(r);
			}
			report(im, it->file, it->line, "refused by the server: %.*s: %.*s", (int)cn, code,
			       (int)mn, msg);
			im->rejected++;
			done = true;
		} else {
			na_mp_skip(r);
		}
	}
	if (!done) {
		report(im, it->file, it->line, "unreadable reply from the server");
		im->rejected++;
	}
}

static void batch_done(const na_response *resp, void *ud)
{
	batch *b = ud;
	imp *im = b->im;
	if (resp->err && !NA_IS_SERVER_ERROR(resp->err)) {
		/* the connection is gone: outcome unknown */
		if (!im->fatal) {
			im->fatal = resp->err;
			snprintf(im->fatal_msg, sizeof im->fatal_msg, "%s", resp->errmsg);
		}
	} else if (resp->err && resp->err != NA_EBADREQ && resp->err != NA_ETOOLARGE) {
		/* not about these articles: the server will not take any (a
		 * follower, a bad token, no space, shutting down): stop, exit 3 */
		im->answered += b->n;
		if (!im->fatal) {
			im->fatal = resp->err;
			snprintf(im->fatal_msg, sizeof im->fatal_msg, "the server refused a batch: %s: %s",
				 na_strerror(resp->err), resp->errmsg);
		}
	} else if (resp->err) {
		im->answered += b->n;
		for (size_t i = 0; i < b->n; i++) {
			report(im, b->items[i].file, b->items[i].line, "refused by the server (whole batch): %s: %s",
			       na_strerror(resp->err), resp->errmsg);
			im->rejected++;
		}
	} else {
		na_mp r;
		uint32_t n = 0;
		na_mp_init(&r, resp->result, resp->result_len);
		if (na_mp_array(&r, &n) || n != b->n) {
			if (!im->fatal) {
				im->fatal = NA_EPROTO;
				snprintf(im->fatal_msg, sizeof im->fatal_msg,
					 "put_batch answered %u results for %zu articles", n, b->n);
			}
		} else {
			im->answered += b->n;
			for (size_t i = 0; i < b->n; i++)
				item_result(im, &b->items[i], &r);
		}
	}
	batch_free(b);
}

static int send_batch(imp *im)
{
	batch *b = im->cur;
	if (!b || !b->n)
		return 0;
	im->cur = NULL;
	uint32_t n = (uint32_t)b->n;
	uint8_t *h = (uint8_t *)b->buf.data;
	h[2] = (uint8_t)(n >> 24);
	h[3] = (uint8_t)(n >> 16);
	h[4] = (uint8_t)(n >> 8);
	h[5] = (uint8_t)n;
	/* keep at most inflight_max batches at the server */
	int rc = na_pipe_wait_below(&im->pipe, im->inflight_max);
	if (rc || im->fatal) {
		batch_free(b);
		return rc ? rc : im->fatal;
	}
	rc = na_proto_call(im->pipe.p, "put_batch", b->buf.data, b->buf.size, batch_done, b, NULL);
	if (rc) {
		batch_free(b);
		snprintf(im->fatal_msg, sizeof im->fatal_msg, "cannot send: %s", na_strerror(rc));
		im->fatal = rc;
		return rc;
	}
	im->sent += n;
	im->batches++;
	/* start writing now; replies are read as they come */
	return na_pipe_pump(&im->pipe, 0);
}

/* appends one converted article (msgpack in sb) to the current batch */
static int add_article(imp *im, uint32_t file, uint64_t line, const msgpack_sbuffer *sb)
{
	if (im->cur && (im->cur->n == im->batch_max || im->cur->buf.size + sb->size > BATCH_MAX_BYTES)) {
		int rc = send_batch(im);
		if (rc)
			return rc;
	}
	if (!im->cur && !(im->cur = batch_new(im)))
		return NA_ENOMEM;
	batch *b = im->cur;
	if (b->n == b->cap) {
		size_t nc = b->cap ? b->cap * 2 : 64;
		item *ni = realloc(b->items, nc * sizeof *ni);
		if (!ni)
			return NA_ENOMEM;
		b->items = ni;
		b->cap = nc;
	}
	if (msgpack_sbuffer_write(&b->buf, sb->data, sb->size))
		return NA_ENOMEM;
	b->items[b->n++] = (item){ file, line };
	return 0;
}

static int import_jsonl(imp *im, uint32_t fi, size_t max_line)
{
	na_lines r;
	if (na_lines_open(&r, im->files[fi], max_line)) {
		report(im, fi, 0, "%s", r.err + (strncmp(r.err, im->files[fi], strlen(im->files[fi])) ? 0 :
					      strlen(im->files[fi]) + 2));
		im->rejected++;
		return 0;
	}
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	char err[600];
	int rc = 0;
	for (;;) {
		const char *line;
		size_t len;
		int k = na_lines_next(&r, &line, &len);
		if (k == NA_LINES_EOF)
			break;
		if (k == NA_LINES_ETOOLONG) {
			report(im, fi, r.lineno, "%s", r.err);
			im->lines++;
			im->rejected++;
			continue;
		}
		if (k < 0) {
			report(im, fi, r.lineno + 1, "%s", r.err);
			im->rejected++;
			break;
		}
		size_t i = 0;
		while (i < len && (line[i] == ' ' || line[i] == '\t'))
			i++;
		if (i == len)
			continue; /* blank line */
		im->lines++;
		sb.size = 0;
		if (na_json_article_from_text(line, len, &sb, err, sizeof err)) {
			report(im, fi, r.lineno, "%s", err);
			im->rejected++;
		} else if ((rc = add_article(im, fi, r.lineno, &sb))) {
			break;
		}
		progress_update(&im->prog, im->done_bytes + r.raw_read, im->lines, false);
		if (im->fatal)
			break;
	}
	im->done_bytes += r.raw_read;
	na_lines_close(&r);
	msgpack_sbuffer_destroy(&sb);
	return rc;
}

static int import_text(imp *im, uint32_t fi, const na_text_opts *to)
{
	char *text;
	size_t len;
	char err[600];
	im->lines++;
	if (cli_read_file("import", im->files[fi], TEXT_MAX_BYTES, &text, &len)) {
		im->rejected++;
		return 0;
	}
	json_t *o = NULL;
	int rc = 0;
	if (na_text_extract(text, len, to, &o, err, sizeof err)) {
		report(im, fi, 0, "%s", err);
		im->rejected++;
	} else {
		msgpack_sbuffer sb;
		msgpack_sbuffer_init(&sb);
		if (na_json_article_from_json(o, &sb, err, sizeof err)) {
			report(im, fi, 0, "%s", err);
			im->rejected++;
		} else {
			rc = add_article(im, fi, 0, &sb);
		}
		msgpack_sbuffer_destroy(&sb);
	}
	json_decref(o);
	free(text);
	im->done_bytes += len;
	progress_update(&im->prog, im->done_bytes, im->lines, false);
	return rc;
}

static const char usage[] =
	"usage: newsarch import [OPTIONS] FILE...\n"
	"\n"
	"Stores articles. FILE is JSON lines, one article per line, plain or\n"
	"zstd-compressed (detected from the data; \"-\" reads stdin). With --format\n"
	"text, each FILE is one news page saved as plain text.\n"
	"\n"
	"  --batch N        articles per put_batch request (default 1000, max 10000)\n"
	"  --inflight N     batches sent ahead of the replies (default 16, at most 64)\n"
	"  --max-line N     longest accepted line in bytes (default 64 MiB)\n"
	"  --format F       json (default) or text\n"
	"  --source S, --url U, --guid G\n"
	"                   (text) set these fields; guid defaults to the url, else to\n"
	"                   \"text:\" + a hash of the file's bytes\n"
	"  --tz ZONE        (text) zone of times the page gives without one\n"
	"                   (IST, +05:30, UTC-4...; default UTC; not ET/CT/MT/PT,\n"
	"                   whose offset changes: give EST or EDT, say)\n"
	"\n"
	"Each rejected line is reported as FILE:LINE: reason; the others are stored.\n"
	"Prints created / updated / unchanged / rejected. Exit status 4 when any\n"
	"line was rejected, 3 on a server or connection error, or when the server\n"
	"refuses a whole batch for a reason that is not the articles (a follower,\n"
	"no space, no permission): the import stops there.\n";

int cmd_import(cli *c)
{
	static const struct option opts[] = { { "help", no_argument, NULL, 'h' },
		{ "server", required_argument, NULL, 's' }, { "batch", required_argument, NULL, 'b' },
		{ "inflight", required_argument, NULL, 'i' }, { "max-line", required_argument, NULL, 'm' },
		{ "format", required_argument, NULL, 'f' }, { "source", required_argument, NULL, 'S' },
		{ "url", required_argument, NULL, 'U' }, { "guid", required_argument, NULL, 'G' },
		{ "tz", required_argument, NULL, 'z' }, { 0 } };
	imp im = { .batch_max = 1000, .inflight_max = 16 };
	size_t max_line = NA_LINE_MAX_DEFAULT;
	bool text = false;
	na_text_opts to = { 0 };
	int ch;
	while ((ch = getopt_long(c->argc, c->argv, "hs:", opts, NULL)) != -1) {
		char *e = NULL;
		unsigned long long v = 0;
		if (ch == 'b' || ch == 'i' || ch == 'm') {
			errno = 0;
			v = strtoull(optarg, &e, 10);
			if (!*optarg || *e || errno || optarg[0] == '-' || v == 0) {
				cli_err("import", "--%s: not a positive number: \"%s\"",
					ch == 'b' ? "batch" : ch == 'i' ? "inflight" : "max-line", optarg);
				return EXIT_USAGE;
			}
		}
		switch (ch) {
		case 'h':
			fputs(usage, stdout);
			return EXIT_OKAY;
		case 's':
			c->addr = optarg;
			break;
		case 'b':
			if (v > NA_MAX_BATCH_DEFAULT) {
				cli_err("import", "--batch: at most %d", NA_MAX_BATCH_DEFAULT);
				return EXIT_USAGE;
			}
			im.batch_max = (size_t)v;
			break;
		case 'i':
			im.inflight_max = v > 64 ? 64 : (size_t)v;
			break;
		case 'm':
			max_line = v > ((size_t)1 << 30) ? ((size_t)1 << 30) : (size_t)v;
			break;
		case 'f':
			if (!strcmp(optarg, "text")) text = true;
			else if (!strcmp(optarg, "json") || !strcmp(optarg, "jsonl")) text = false;
			else {
				cli_err("import", "--format: json or text, not \"%s\"", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'S': to.source = optarg; break;
		case 'U': to.url = optarg; break;
		case 'G': to.guid = optarg; break;
		case 'z':
			switch (na_text_zone_offset(optarg, &to.default_offset_min)) {
			case 0:
				break;
			case -2:
				cli_err("import", "--tz: \"%s\" follows daylight saving time; give the "
					"zone in force (EST or EDT, say) or an offset such as -05:00",
					optarg);
				return EXIT_USAGE;
			default:
				cli_err("import", "--tz: unknown zone \"%s\"", optarg);
				return EXIT_USAGE;
			}
			break;
		default:
			fputs(usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= c->argc) {
		cli_err("import", "no FILE given");
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	if (!text && (to.source || to.url || to.guid)) {
		cli_err("import", "--source, --url and --guid go with --format text");
		return EXIT_USAGE;
	}
	im.files = c->argv + optind;
	im.nfiles = (size_t)(c->argc - optind);
	if (to.guid && im.nfiles > 1) {
		cli_err("import", "--guid names one article: give one FILE");
		return EXIT_USAGE;
	}
	uint64_t total = 0;
	for (size_t i = 0; i < im.nfiles; i++) {
		struct stat st;
		if (strcmp(im.files[i], "-") && !stat(im.files[i], &st) && S_ISREG(st.st_mode))
			total += (uint64_t)st.st_size;
	}
	na_options tls;
	na_options_init(&tls);
	cli_tls_options(c, &tls);
	int rc = na_pipe_open(&im.pipe, c->addr, 5000, &tls);
	if (rc) {
		cli_err("import", "%s", im.pipe.err);
		return EXIT_SERVER;
	}
	progress_init(&im.prog, total, "articles");
	double t0 = cli_now();
	for (size_t i = 0; i < im.nfiles && !rc && !im.fatal; i++)
		rc = text ? import_text(&im, (uint32_t)i, &to) : import_jsonl(&im, (uint32_t)i, max_line);
	if (!rc && !im.fatal)
		rc = send_batch(&im);
	if (!rc && !im.fatal)
		rc = na_pipe_wait_below(&im.pipe, 0);
	progress_update(&im.prog, total, im.lines, true);
	progress_end(&im.prog);
	double el = cli_now() - t0;
	batch_free(im.cur);
	im.cur = NULL;
	if (!im.fatal && rc) {
		im.fatal = rc;
		snprintf(im.fatal_msg, sizeof im.fatal_msg, "%s", im.pipe.err[0] ? im.pipe.err : na_strerror(rc));
	}
	na_pipe_close(&im.pipe); /* fails what is still pending (connection lost) */
	printf("%" PRIu64 " articles in %.2f s (%.0f/s): created %" PRIu64 " / updated %" PRIu64
	       " / unchanged %" PRIu64 " / rejected %" PRIu64 "\n",
	       im.lines, el, el > 0 ? im.lines / el : 0.0, im.created, im.updated, im.unchanged,
	       im.rejected);
	if (im.fatal) {
		cli_err("import", "%s%s; %" PRIu64 " sent articles have an unknown outcome",
			im.fatal == NA_ENOMEM ? "out of memory: " : "", im.fatal_msg,
			im.sent - im.answered);
		return EXIT_SERVER;
	}
	if (im.created + im.updated == 0 && im.unchanged > 0)
		printf("nothing new: all %" PRIu64 " stored articles were already there unchanged\n",
		       im.unchanged);
	fflush(stdout);
	return im.rejected ? EXIT_REJECTED : EXIT_OKAY;
}
