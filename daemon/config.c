/*
 * config.c - settings from defaults, an INI file and flags (see config.h).
 * One table describes every option: its name, type, limits and help line,
 * so --help, the file parser and the flag parser cannot disagree.
 */
#include "config.h"

#include <errno.h>
#include <ini.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mp.h"
#include "rpc.h"
#include "tls.h"

enum otype { O_STR, O_SIZE, O_U32, O_INT, O_LEVEL, O_DURABILITY, O_TOKEN, O_BOOL, O_VERIFY };

typedef struct opt {
	const char *name;
	enum otype type;
	size_t off;
	size_t min, max;       /* for numbers */
	const char *help;
} opt;

#define F(x) offsetof(na_config, x)
#define K ((size_t)1 << 10)
#define M ((size_t)1 << 20)
#define G ((size_t)1 << 30)
#define T ((size_t)1 << 40)

static const opt opts[] = {
	{ "data", O_STR, F(data), 0, 0, "data directory (created if missing)" },
	{ "listen", O_STR, F(listen), 0, 0, "TCP address HOST:PORT or [V6]:PORT; \"none\" for no TCP" },
	{ "socket", O_STR, F(socket), 0, 0, "Unix socket path (none by default)" },
	{ "log_level", O_LEVEL, F(log_level), 0, 0, "error | warn | info | debug" },
	{ "durability", O_DURABILITY, F(relaxed), 0, 0,
	  "strict (fsync before every reply) | relaxed (fsync once a second)" },
	{ "map_size", O_SIZE, F(map_size), 1 * M, 1024 * T, "initial LMDB map size" },
	{ "max_map_size", O_SIZE, F(max_map_size), 1 * M, 1024 * T,
	  "the map never grows past this; then writes fail with NO_SPACE" },
	{ "compression_level", O_INT, F(compression_level), 1, 19, "zstd level, 1..19" },
	{ "literal_compression", O_BOOL, F(literal_compression), 0, 0,
	  "no: new records store their literals raw (~12% larger, decoded in about half the time)" },
	{ "dict_size", O_SIZE, F(dict_size), 4 * K, 1 * M, "size of trained dictionaries" },
	{ "block_bytes", O_SIZE, F(block_bytes), 0, 1 * M,
	  "articles adjacent in time are compacted into blocks of about this many raw bytes; 0 = never" },
	{ "block_level", O_INT, F(block_level), 1, 19, "zstd level of blocks (compressed in the background)" },
	{ "index_segment", O_U32, F(index_segment), 16, 1u << 24,
	  "articles per sealed segment of the search index (rounded down to a power of two; "
	  "applies to a new index or after reindex)" },
	{ "index_refresh_ms", O_U32, F(index_refresh_ms), 0, 60000,
	  "once the index has caught up, new writes gather this long before they are indexed "
	  "(a search with min_seq does not wait for it)" },
	{ "train_min", O_U32, F(train_min), 100, 100000000,
	  "articles written before the first dictionary is trained" },
	{ "max_request_bytes", O_SIZE, F(max_request_bytes), 1 * K, 1 * G, "largest request message" },
	{ "max_depth", O_U32, F(max_depth), 4, NA_MP_DEPTH_CEILING, "deepest nesting in a request" },
	{ "max_article_bytes", O_SIZE, F(max_article_bytes), 256, 256 * M, "largest article" },
	{ "max_batch", O_U32, F(max_batch), 1, 1000000, "most articles in one put_batch" },
	{ "output_queue_bytes", O_SIZE, F(output_queue_bytes), 64 * K, 4 * G,
	  "replies queued for one client before its requests stop being read" },
	{ "max_connections", O_U32, F(max_connections), 1, 1000000, "concurrent connections" },
	{ "max_pending", O_U32, F(max_pending), 1, 1000000,
	  "requests in progress per connection before reading pauses" },
	{ "idle_timeout", O_U32, F(idle_timeout), 0, 86400 * 365, "seconds; 0 = never" },
	{ "request_timeout", O_U32, F(request_timeout), 0, 86400,
	  "seconds a client may take to finish sending a request it began (slow senders); 0 = never" },
	{ "follow", O_STR, F(follow), 0, 0,
	  "replicate from this primary (HOST:PORT, tls://HOST:PORT or unix:PATH) and serve reads" },
	{ "log_retention_bytes", O_SIZE, F(log_retention_bytes), 4 * K, 1024 * T,
	  "the change log is trimmed beyond this size" },
	{ "metrics_listen", O_STR, F(metrics_listen), 0, 0,
	  "HOST:PORT serving Prometheus metrics at GET /metrics (off by default)" },
	{ "token", O_TOKEN, F(tokens), 0, 0,
	  "ROLE:SECRET (read, write, replicate or admin; 16+ characters); may repeat" },
	{ "token_file", O_STR, F(token_file), 0, 0,
	  "file of ROLE:SECRET lines, readable by the service user only" },
	{ "allow_unauthenticated", O_BOOL, F(allow_unauthenticated), 0, 0,
	  "yes: listen on a non-loopback address without any token" },
	{ "follow_token", O_STR, F(follow_token), 0, 0,
	  "the token a follower presents to its primary (replicate role)" },
	{ "socket_mode", O_STR, F(socket_mode), 0, 0, "octal mode of the Unix socket [0660]" },
	{ "socket_group", O_STR, F(socket_group), 0, 0, "group owning the Unix socket" },
	{ "log_retention_age", O_U32, F(log_retention_age), 0, 86400 * 3650,
	  "seconds; log entries older than this are trimmed (0 = no age limit)" },
	{ "tls_listen", O_STR, F(tls_listen), 0, 0,
	  "TCP address HOST:PORT of a TLS listener beside listen (off by default)" },
	{ "tls_cert", O_STR, F(tls_cert), 0, 0, "PEM certificate chain of the TLS listener" },
	{ "tls_key", O_STR, F(tls_key), 0, 0, "PEM private key of tls_cert" },
	{ "tls_ca", O_STR, F(tls_ca), 0, 0,
	  "PEM CA file: client certificates are verified against it (and a tls:// follow "
	  "without follow_tls_ca)" },
	{ "tls_verify_client", O_VERIFY, F(tls_verify_client), 0, 0,
	  "no | optional | require: client certificates on the TLS listener" },
	{ "follow_tls_ca", O_STR, F(follow_tls_ca), 0, 0,
	  "PEM CA file for a tls:// primary [tls_ca, else the system's CAs]" },
	{ "follow_tls_cert", O_STR, F(follow_tls_cert), 0, 0,
	  "client certificate a follower presents to a tls:// primary" },
	{ "follow_tls_key", O_STR, F(follow_tls_key), 0, 0, "private key of follow_tls_cert" },
	{ "follow_tls_name", O_STR, F(follow_tls_name), 0, 0,
	  "name the primary's certificate must carry [the host in follow]" },
};

void na_config_defaults(na_config *c)
{
	memset(c, 0, sizeof *c);
	snprintf(c->data, sizeof c->data, "./data");
	snprintf(c->listen, sizeof c->listen, "%s", NA_DEFAULT_ADDR);
	c->log_level = NA_LOG_INFO;
	c->map_size = 1 * G;
	c->max_map_size = 256 * G;
	c->compression_level = 3;
	c->literal_compression = true;
	c->dict_size = 64 * K;
	c->block_bytes = 0;
	c->block_level = 6;
	c->index_segment = 8192;
	c->index_refresh_ms = 1000;
	c->train_min = 2000;
	c->max_request_bytes = NA_MAX_REQUEST_BYTES_DEFAULT;
	c->max_depth = NA_MAX_DEPTH_DEFAULT;
	c->max_article_bytes = NA_MAX_ARTICLE_BYTES_DEFAULT;
	c->max_batch = NA_MAX_BATCH_DEFAULT;
	c->output_queue_bytes = 16 * M;
	c->max_connections = 10000;
	c->max_pending = 1024;
	c->idle_timeout = 0;
	c->request_timeout = 30;
	c->log_retention_bytes = 1 * G;
	c->log_retention_age = 7 * 86400;
	snprintf(c->socket_mode, sizeof c->socket_mode, "0660");
}

static int parse_plain(const char *v, size_t *out)
{
	char *end;
	errno = 0;
	unsigned long long n = strtoull(v, &end, 10);
	if (errno || end == v || *v == '-' || *end || n > SIZE_MAX)
		return -1;
	*out = (size_t)n;
	return 0;
}

static int parse_size(const char *v, size_t *out)
{
	char *end;
	errno = 0;
	unsigned long long n = strtoull(v, &end, 10);
	if (errno || end == v || *v == '-')
		return -1;
	unsigned long long mul = 1;
	switch (*end) {
	case 'k': case 'K': mul = K; end++; break;
	case 'm': case 'M': mul = M; end++; break;
	case 'g': case 'G': mul = G; end++; break;
	case 't': case 'T': mul = T; end++; break;
	default: break;
	}
	if ((*end == 'b' || *end == 'B') && mul != 1)
		end++;
	if ((*end == 'i' || *end == 'I') && mul != 1 && (end[1] == 'B' || end[1] == 'b'))
		end += 2;
	if (*end || (mul > 1 && n > ~0ULL / mul))
		return -1;
	*out = (size_t)(n * mul);
	return 0;
}

int na_config_set(na_config *c, const char *name, const char *value, char *err, size_t errlen)
{
	char key[64];
	size_t n = strlen(name);
	if (n >= sizeof key) {
		snprintf(err, errlen, "unknown option \"%.40s...\"", name);
		return -1;
	}
	for (size_t i = 0; i <= n; i++)
		key[i] = name[i] == '-' ? '_' : name[i];
	const opt *o = NULL;
	for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
		if (strcmp(opts[i].name, key) == 0)
			o = &opts[i];
	if (!o) {
		snprintf(err, errlen, "unknown option \"%s\"", name);
		return -1;
	}
	char *field = (char *)c + o->off;
	size_t sz;
	switch (o->type) {
	case O_TOKEN:
		return na_token_add(&c->tokens, value, err, errlen);
	case O_BOOL:
		if (strcmp(value, "yes") == 0 || strcmp(value, "true") == 0 || strcmp(value, "1") == 0)
			*(bool *)field = true;
		else if (strcmp(value, "no") == 0 || strcmp(value, "false") == 0 || strcmp(value, "0") == 0)
			*(bool *)field = false;
		else {
			snprintf(err, errlen, "%s: expected yes or no, got \"%s\"", o->name, value);
			return -1;
		}
		return 0;
	case O_STR: {
		size_t cap = o->off == F(listen) || o->off == F(follow) || o->off == F(metrics_listen) ||
				     o->off == F(tls_listen) || o->off == F(follow_tls_name)
				     ? sizeof c->listen
			     : o->off == F(follow_token) ? sizeof c->follow_token
			     : o->off == F(socket_mode) ? sizeof c->socket_mode
			     : o->off == F(socket_group) ? sizeof c->socket_group
							 : sizeof c->data;
		if (o->off == F(socket_mode)) {
			char *e;
			long m = strtol(value, &e, 8);
			if (*e || e == value || m < 0 || m > 0777) {
				snprintf(err, errlen, "socket_mode: expected an octal mode such as 0660");
				return -1;
			}
		}
		if (strlen(value) >= cap) {
			snprintf(err, errlen, "%s: value too long", o->name);
			return -1;
		}
		strcpy(field, value);
		return 0;
	}
	case O_LEVEL: {
		int l = na_log_parse_level(value);
		if (l < 0) {
			snprintf(err, errlen, "%s: expected error, warn, info or debug, got \"%s\"",
				 o->name, value);
			return -1;
		}
		*(int *)field = l;
		return 0;
	}
	case O_VERIFY:
		if (strcmp(value, "no") == 0)
			*(int *)field = NA_TLS_VERIFY_NO;
		else if (strcmp(value, "optional") == 0)
			*(int *)field = NA_TLS_VERIFY_OPTIONAL;
		else if (strcmp(value, "require") == 0)
			*(int *)field = NA_TLS_VERIFY_REQUIRE;
		else {
			snprintf(err, errlen, "%s: expected no, optional or require, got \"%s\"",
				 o->name, value);
			return -1;
		}
		return 0;
	case O_DURABILITY:
		if (strcmp(value, "strict") == 0)
			*(bool *)field = false;
		else if (strcmp(value, "relaxed") == 0)
			*(bool *)field = true;
		else {
			snprintf(err, errlen, "%s: expected strict or relaxed, got \"%s\"", o->name, value);
			return -1;
		}
		return 0;
	case O_SIZE: case O_U32: case O_INT:
		/* suffixes for sizes only: "5m" of seconds is no number */
		if ((o->type == O_SIZE ? parse_size(value, &sz) : parse_plain(value, &sz)) ||
		    sz < o->min || sz > o->max) {
			snprintf(err, errlen, "%s: expected a number from %zu to %zu%s, got \"%s\"",
				 o->name, o->min, o->max,
				 o->type == O_SIZE ? " (suffixes K, M, G, T)" : "", value);
			return -1;
		}
		if (o->type == O_SIZE)
			*(size_t *)field = sz;
		else if (o->type == O_INT)
			*(int *)field = (int)sz;
		else if (o->off == F(train_min))
			*(uint64_t *)field = sz;
		else
			*(uint32_t *)field = (uint32_t)sz;
		return 0;
	}
	return -1;
}

typedef struct ini_ctx {
	na_config *c;
	const char *path;
	char *err;
	size_t errlen;
	int failed;
	FILE *f;
	int line, bad_line;    /* line being parsed, line of the bad setting */
	char msg[256];         /* the first bad setting's message */
} ini_ctx;

/* inih's reader callback: fgets that counts lines, so a bad setting can
 * be reported with its line number */
static char *read_line(char *str, int num, void *stream)
{
	ini_ctx *x = stream;
	char *r = fgets(str, num, x->f);
	if (!r || x->failed)
		return NULL;
	x->line++;
	/* inih would split a longer line in two, and take an indented line
	 * for the continuation of the value before it: both would change a
	 * setting without a word */
	const char *why = NULL;
	if (!strchr(r, '\n') && !feof(x->f))
		why = "line too long";
	else if (r[0] == ' ' || r[0] == '\t') {
		const char *p = r + strspn(r, " \t\r\n");
		if (*p && *p != ';' && *p != '#')
			why = "an indented line (inih would take it for the continuation of the "
			      "value before it); remove the indentation";
	}
	if (why) {
		if (why[0] == 'l')
			snprintf(x->msg, sizeof x->msg, "line too long (at most %d bytes)", num - 2);
		else
			snprintf(x->msg, sizeof x->msg, "%s", why);
		x->failed = 1;
		x->bad_line = x->line;
		return NULL;
	}
	return r;
}

static int on_ini(void *user, const char *section, const char *name, const char *value)
{
	(void)section;
	ini_ctx *x = user;
	if (x->failed)
		return 0;
	if (na_config_set(x->c, name, value, x->msg, sizeof x->msg)) {
		x->failed = 1;
		x->bad_line = x->line;
		return 0;
	}
	return 1;
}

int na_config_load(na_config *c, const char *path, char *err, size_t errlen)
{
	ini_ctx x = { .c = c, .path = path, .err = err, .errlen = errlen };
	x.f = fopen(path, "r");
	if (!x.f) {
		snprintf(err, errlen, "%s: cannot open the configuration file", path);
		return -1;
	}
	int rc = ini_parse_stream(read_line, &x, on_ini, &x);
	fclose(x.f);
	if (rc < 0) {
		snprintf(err, errlen, "%s: cannot read the configuration file", path);
		return -1;
	}
	if (x.failed) {
		snprintf(err, errlen, "%s:%d: %s", path, x.bad_line, x.msg);
		return -1;
	}
	if (rc > 0) {
		snprintf(err, errlen, "%s:%d: not a valid \"name = value\" line", path, rc);
		return -1;
	}
	return 0;
}

int na_config_args(na_config *c, int argc, char **argv, bool *help, bool *version, bool *verify,
		   char *err, size_t errlen)
{
	*help = *version = *verify = false;
	for (int i = 0; i < argc; i++) {
		const char *file = NULL;
		if (strcmp(argv[i], "--config") == 0 || strcmp(argv[i], "-c") == 0) {
			if (i + 1 >= argc) {
				snprintf(err, errlen, "--config needs a file name");
				return -1;
			}
			file = argv[i + 1];
		} else if (strncmp(argv[i], "--config=", 9) == 0) {
			file = argv[i] + 9;
		}
		if (file) {
			snprintf(c->config_file, sizeof c->config_file, "%s", file);
			if (na_config_load(c, file, err, errlen))
				return -1;
		}
	}
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) { *help = true; continue; }
		if (strcmp(a, "--version") == 0) { *version = true; continue; }
		if (strcmp(a, "--verify") == 0) { *verify = true; continue; }
		if (strcmp(a, "--config") == 0 || strcmp(a, "-c") == 0) { i++; continue; }
		if (strncmp(a, "--config=", 9) == 0) continue;
		if (strncmp(a, "--", 2) != 0) {
			snprintf(err, errlen, "unexpected argument \"%s\" (see --help)", a);
			return -1;
		}
		const char *name = a + 2, *eq = strchr(name, '=');
		char nbuf[64];
		const char *val;
		if (eq) {
			size_t nl = (size_t)(eq - name);
			if (nl >= sizeof nbuf) {
				snprintf(err, errlen, "unknown option \"%s\"", a);
				return -1;
			}
			memcpy(nbuf, name, nl);
			nbuf[nl] = 0;
			name = nbuf;
			val = eq + 1;
		} else {
			if (i + 1 >= argc) {
				snprintf(err, errlen, "%s needs a value", a);
				return -1;
			}
			val = argv[++i];
		}
		if (na_config_set(c, name, val, err, errlen))
			return -1;
	}
	return 0;
}

void na_config_usage(FILE *out)
{
	fprintf(out,
		"usage: newsarchd [--config FILE] [--OPTION VALUE]... [--verify]\n"
		"\n"
		"The news-archive daemon. Serves MessagePack-RPC on TCP and a Unix socket.\n"
		"Every option below may also be set in the configuration file as\n"
		"\"option = value\"; flags override the file.\n\n"
		"  --config FILE         read settings from FILE (INI)\n"
		"  --verify              check the archive in --data offline and exit\n"
		"  --help, --version\n\n");
	na_config c;
	na_config_defaults(&c);
	for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
		char flag[64], def[64] = "";
		const opt *o = &opts[i];
		snprintf(flag, sizeof flag, "--%s", o->name);
		for (char *p = flag; *p; p++)
			if (*p == '_')
				*p = '-';
		const char *field = (const char *)&c + o->off;
		switch (o->type) {
		case O_STR: snprintf(def, sizeof def, "%s", field); break;
		case O_SIZE: snprintf(def, sizeof def, "%zu", *(const size_t *)field); break;
		case O_INT: snprintf(def, sizeof def, "%d", *(const int *)field); break;
		case O_U32:
			if (o->off == F(train_min))
				snprintf(def, sizeof def, "%llu", (unsigned long long)c.train_min);
			else
				snprintf(def, sizeof def, "%u", *(const uint32_t *)field);
			break;
		case O_LEVEL: snprintf(def, sizeof def, "info"); break;
		case O_TOKEN: break;
		case O_BOOL: snprintf(def, sizeof def, "%s", *(const bool *)field ? "yes" : "no"); break;
		case O_DURABILITY: snprintf(def, sizeof def, "strict"); break;
		case O_VERIFY: snprintf(def, sizeof def, "no"); break;
		}
		fprintf(out, "  %-22s %s%s%s%s\n", flag, o->help, def[0] ? " [" : "", def,
			def[0] ? "]" : "");
	}
}
