/*
 * config.h - newsarchd's settings: defaults, the INI file (--config) and
 * command-line flags, which override the file. Every setting can be given
 * both ways under the same name (`--max-batch 500` or `max_batch = 500`).
 */
#ifndef NA_CONFIG_H
#define NA_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "auth.h"

typedef struct na_config {
	char data[512];
	char listen[256];          /* "" or "none": no TCP listener */
	char socket[512];          /* "": no Unix socket */
	char config_file[512];
	int log_level;
	bool relaxed;              /* durability = relaxed */
	size_t map_size;
	size_t max_map_size;
	int compression_level;
	bool literal_compression;  /* Huffman-coded literals in new records */
	size_t dict_size;
	size_t block_bytes;        /* compaction target; 0: no blocks */
	int block_level;
	uint32_t index_segment;    /* docids per sealed search-index segment */
	uint32_t index_refresh_ms; /* how long new writes gather before indexing */
	uint64_t train_min;        /* articles before the first dictionary */
	size_t max_request_bytes;
	unsigned max_depth;
	size_t max_article_bytes;
	uint32_t max_batch;
	size_t output_queue_bytes;
	uint32_t max_connections;
	uint32_t max_pending;      /* requests in progress per connection */
	uint32_t idle_timeout;     /* seconds; 0: never */
	uint32_t request_timeout;  /* seconds to finish sending a begun request; 0: never */
	char follow[256];          /* primary to follow: HOST:PORT or unix:PATH */
	size_t log_retention_bytes;
	uint32_t log_retention_age; /* seconds; 0: no age limit */
	char metrics_listen[256];  /* HOST:PORT for GET /metrics; "" = off */
	na_tokens tokens;          /* token = ROLE:SECRET lines (and token_file) */
	char token_file[512];
	bool allow_unauthenticated;
	char follow_token[NA_TOKEN_MAX + 1];
	char socket_mode[8];       /* octal, e.g. 0660 */
	char socket_group[64];
	/* TLS (tls.c): a second TCP listener speaking TLS, and the follower's link */
	char tls_listen[256];      /* HOST:PORT; "": no TLS listener */
	char tls_cert[512];        /* PEM chain, leaf first */
	char tls_key[512];
	char tls_ca[512];          /* CAs for client certificates (and follow_tls_ca's default) */
	int tls_verify_client;     /* NA_TLS_VERIFY_NO / _OPTIONAL / _REQUIRE */
	char follow_tls_ca[512];   /* "": tls_ca, else the system's trust store */
	char follow_tls_cert[512]; /* client certificate presented to the primary */
	char follow_tls_key[512];
	char follow_tls_name[256]; /* name to verify; "": the host in follow */
} na_config;

void na_config_defaults(na_config *c);

/* Sets one option by name (dashes or underscores). Returns 0, or -1 with a
 * message in err naming the option and the problem. */
int na_config_set(na_config *c, const char *name, const char *value, char *err, size_t errlen);

/* Reads an INI file; unknown keys and bad values are errors naming the
 * file and line. */
int na_config_load(na_config *c, const char *path, char *err, size_t errlen);

/* Parses argv (after argv[0]). Sets the help, version and verify flags when asked.
 * --config is read first so flags override the file. */
int na_config_args(na_config *c, int argc, char **argv, bool *help, bool *version, bool *verify,
		   char *err, size_t errlen);

/* Prints --help text. */
void na_config_usage(FILE *out);

#endif
