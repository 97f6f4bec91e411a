/*
 * cli.h - what the newsarch command's source files share.
 *
 * Exit status of every command:
 *   0 ok, 1 not found, 2 usage error, 3 server or connection error,
 *   4 some input was rejected (import, put) or some article could not be
 *     written as JSON (export, range, get).
 */
#ifndef NA_CLI_CLI_H
#define NA_CLI_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "newsarch.h"

enum {
	EXIT_OKAY = 0,
	EXIT_NOTFOUND = 1,
	EXIT_USAGE = 2,
	EXIT_SERVER = 3,
	EXIT_REJECTED = 4,
};

typedef struct cli {
	const char *addr;        /* -s ADDR */
	/* TLS for tls:// addresses: --cacert, --cert, --key, --servername
	 * (or NEWSARCH_CACERT, NEWSARCH_CERT, NEWSARCH_KEY, NEWSARCH_SERVERNAME) */
	const char *cacert, *cert, *key, *servername;
	int argc;
	char **argv;             /* the command's arguments, argv[0] = command */
} cli;

/* Prints "newsarch CMD: message" to stderr. */
void cli_err(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Connects the synchronous client; prints the reason and returns NULL on
 * failure. */
na_client *cli_connect(const cli *c, const char *cmd);

/* Copies the TLS settings into o's tls_* fields. */
void cli_tls_options(const cli *c, na_options *o);

/* Exit status for a library error code. */
int cli_exit_for(int err);

/* Parses a --from/--to value: RFC 3339 or integer unix seconds. */
int cli_parse_time(const char *s, na_time *t);

/* Reads a whole file ("-" = stdin), at most max bytes. 0 or -1 (message
 * printed). *buf is malloc'd and NUL-terminated. */
int cli_read_file(const char *cmd, const char *path, size_t max, char **buf, size_t *len);

/* Commands. Each returns the exit status. */
int cmd_import(cli *c);
int cmd_export(cli *c);

/* ---- progress bar (stderr, only when it is a terminal) -------------- */

typedef struct progress {
	bool on;
	double t0, last;
	uint64_t total;          /* units (bytes or items); 0: unknown */
	const char *items_name;
} progress;

double cli_now(void);
void progress_init(progress *p, uint64_t total_units, const char *items_name);
void progress_update(progress *p, uint64_t done_units, uint64_t items, bool force);
void progress_end(progress *p);

#endif
