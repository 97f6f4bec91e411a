/*
 * newsarch.h - libnewsarch, the C client library of the newsarch daemon.
 *
 * newsarchd stores news articles keyed by publication time and guid and
 * speaks MessagePack-RPC over TCP or a Unix socket (proto/PROTOCOL.md). This
 * header is the whole interface of the library:
 *
 *   1. Errors           NA_E* codes, na_strerror().
 *   2. Articles         na_article (a validated msgpack map) and its builder.
 *   3. Synchronous API  na_client: connect, ping, put, put_batch, get, delete,
 *                       count, stats, a raw call, and the range iterator.
 *   4. Protocol core    na_proto: the request/response machinery with no I/O,
 *                       for plugging the protocol into any event loop.
 *                       The libuv adapter (newsarch_uv.h) is built on it, and
 *                       so is the synchronous client. It carries no TLS:
 *                       both clients add TLS (tls:// addresses, OpenSSL 3)
 *                       between it and the socket.
 *
 * Conventions
 *
 *  - Functions return an int: 0 on success or a negative NA_E* code, and
 *    deliver results through out-parameters. Out-parameters are written only
 *    on success unless stated otherwise. Accessors that cannot fail return
 *    their value directly.
 *  - Strings from the server or inside articles are given as a pointer and a
 *    length. They are NOT NUL-terminated and may contain NUL bytes.
 *    Strings passed in as `const char *` without a length are C strings.
 *  - Ownership is stated for every pointer a function returns. "Borrowed"
 *    means: do not free, and do not use after the stated moment.
 *  - Threads: the library has no global state and may be used from many
 *    threads, but each object (na_client, na_range, na_article_builder,
 *    na_proto, ...) must be used by ONE thread at a time. A parsed na_article
 *    is immutable: several threads may read one article concurrently.
 *  - Replies are untrusted input: the library frames them with a size cap
 *    (na_options.max_response_bytes) and a nesting cap of 32, checks every
 *    length, and reports anything malformed as NA_EPROTO. It also holds
 *    the server to the protocol's limits, so that what it allocates for a
 *    reply stays proportional to the reply's size: an article has at most
 *    4096 fields, and a range or search page at most 1000 articles.
 *
 * Compile with `pkg-config --cflags --libs newsarch`.
 */
#ifndef NEWSARCH_H
#define NEWSARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NA_VERSION_MAJOR 0
#define NA_VERSION_MINOR 1
#define NA_VERSION_PATCH 0

/* =====================================================================
 * 1. Errors
 * ===================================================================== */

/*
 * Library conditions (-1 .. -99). These are detected locally.
 */
#define NA_ENOMEM (-1)    /* an allocation failed */
#define NA_EINVAL (-2)    /* bad argument (NULL where not allowed, bad address
                           * syntax, bad field value, limit exceeded locally) */
#define NA_ECONN (-3)     /* could not connect, or the connection was lost or
                           * closed by the server; see na_client_errmsg() */
#define NA_ETIMEDOUT (-4) /* the connect timeout or I/O timeout ran out */
#define NA_EPROTO (-5)    /* the server's reply broke the protocol (not
                           * msgpack, wrong shape, too large, too deep) */
#define NA_ECLOSED (-6)   /* the client was closed while the call was pending
                           * (asynchronous API only) */
#define NA_ENOFIELD (-7)  /* the article has no such field */
#define NA_ETLS (-8)      /* TLS failed: the handshake (e.g. the server's
                           * certificate was refused: unknown CA, expired,
                           * wrong name; or the server refused ours), a TLS
                           * option file could not be loaded, or a record
                           * was corrupt. The message says which. The
                           * connection is gone, as with NA_ECONN. */

/*
 * Server errors (-101 .. -110): the server answered with an error map
 * {"code", "message"}; the code is mapped to one of these and the message is
 * kept (na_client_errmsg(), or the errmsg of an asynchronous reply).
 * An error code this library does not know maps to NA_EINTERNAL.
 */
#define NA_EBADREQ (-101)         /* BAD_REQUEST: malformed request, bad field */
#define NA_EUNKNOWNMETHOD (-102)  /* UNKNOWN_METHOD */
#define NA_ENOTFOUND (-103)       /* NOT_FOUND: no article with that guid */
#define NA_ETOOLARGE (-104)       /* TOO_LARGE: a server limit was exceeded */
#define NA_ENOSPACE (-105)        /* NO_SPACE: the archive is full */
#define NA_EREADONLY (-106)       /* READONLY: server is a follower */
#define NA_EUNAUTHORIZED (-107)   /* UNAUTHORIZED */
#define NA_ETIMEOUT (-108)        /* TIMEOUT: a wait on the SERVER ran out
                                   * (compare NA_ETIMEDOUT, a local timeout) */
#define NA_EUNAVAILABLE (-109)    /* UNAVAILABLE: the server is shutting down,
                                   * or a follower still receiving a
                                   * snapshot was asked to read at once */
#define NA_EINTERNAL (-110)       /* INTERNAL: server bug or I/O error */

/* True when err is one of the server error codes above. */
#define NA_IS_SERVER_ERROR(err) ((err) <= -101 && (err) >= -110)

/*
 * Returns a static, NUL-terminated description of an error code ("ok" for 0,
 * "unknown error" for values that are not NA_E* codes). Never NULL; the
 * string lives as long as the program.
 */
const char *na_strerror(int err);

/* =====================================================================
 * 2. Articles
 * ===================================================================== */

/* A point in time: seconds and nanoseconds since 1970-01-01T00:00:00Z. */
typedef struct na_time {
	int64_t sec;
	uint32_t nsec; /* 0 .. 999,999,999 */
} na_time;

/* Article times must lie in years 0001..9999. */
#define NA_TIME_MIN_SEC (-62135596800LL)
#define NA_TIME_MAX_SEC (253402300799LL)
#define NA_GUID_MAX_BYTES 1024

/*
 * An article: the msgpack bytes of a map with string keys (no key twice),
 * plus an index of its fields. The known fields are checked for their
 * documented types when the article is parsed or built:
 *   guid, title, body, summary, url, source, section, language: string
 *   published, updated: timestamp (msgpack extension -1)
 *   authors, tags: array of strings
 * Any other field may hold any msgpack value. An article need not have every
 * required field: `get` with `fields` returns only some of them. It has at
 * most 4096 fields (the protocol's limit).
 *
 * An na_article is immutable once made.
 */
typedef struct na_article na_article;

/*
 * Parses and validates one article from buf[0..len): it must be exactly one
 * msgpack map with string keys, no duplicate key, and known fields of the
 * right types. The bytes are copied: buf may be freed after the call.
 * On success *out is a new article; free it with na_article_free().
 * Errors: NA_EINVAL (not exactly one well-formed map as described, more
 * than 4096 fields, or a NULL argument), NA_ENOMEM.
 */
int na_article_parse(const void *buf, size_t len, na_article **out);

/*
 * Makes an independent copy of a (for example, to keep an article that the
 * range iterator only lends). Free the copy with na_article_free().
 * Errors: NA_EINVAL (NULL argument), NA_ENOMEM.
 */
int na_article_dup(const na_article *a, na_article **out);

/* Frees an article made by na_article_parse, na_article_dup,
 * na_article_builder_finish or na_get. NULL is ignored. Never call it on a
 * borrowed article (from na_range_next or a callback). */
void na_article_free(na_article *a);

/*
 * The encoded article: *buf points to *len bytes of msgpack, exactly the
 * bytes that na_put sends (and that the server stores and returns).
 * Borrowed: valid as long as the article is.
 */
void na_article_bytes(const na_article *a, const uint8_t **buf, size_t *len);

/*
 * Known string fields. Each sets *s and *n to the field's string (borrowed,
 * valid as long as the article, not NUL-terminated) and returns 0, or
 * returns NA_ENOFIELD when the article has no such field.
 */
int na_article_get_guid(const na_article *a, const char **s, size_t *n);
int na_article_get_title(const na_article *a, const char **s, size_t *n);
int na_article_get_body(const na_article *a, const char **s, size_t *n);
int na_article_get_summary(const na_article *a, const char **s, size_t *n);
int na_article_get_url(const na_article *a, const char **s, size_t *n);
int na_article_get_source(const na_article *a, const char **s, size_t *n);
int na_article_get_section(const na_article *a, const char **s, size_t *n);
int na_article_get_language(const na_article *a, const char **s, size_t *n);

/*
 * Known time fields: sets *t and returns 0, or returns NA_ENOFIELD.
 */
int na_article_get_published(const na_article *a, na_time *t);
int na_article_get_updated(const na_article *a, na_time *t);

/*
 * Authors and tags. The count is 0 when the field is absent. The index
 * accessors set *s and *n (borrowed, valid as long as the article) and return 0,
 * or NA_EINVAL when i >= count.
 */
size_t na_article_author_count(const na_article *a);
int na_article_get_author(const na_article *a, size_t i, const char **s, size_t *n);
size_t na_article_tag_count(const na_article *a);
int na_article_get_tag(const na_article *a, size_t i, const char **s, size_t *n);

/*
 * One field of an article: its name and the raw msgpack bytes of its value.
 * All pointers are borrowed and valid as long as the article is.
 */
typedef struct na_field {
	const char *name;       /* not NUL-terminated */
	size_t name_len;
	const uint8_t *value;   /* exactly one msgpack object */
	size_t value_len;
} na_field;

/* Number of fields, known and other. */
size_t na_article_field_count(const na_article *a);
/*
 * Field number i (0 <= i < na_article_field_count(a)), in the order of the
 * encoded map. Returns 0, or NA_EINVAL when i is out of range.
 */
int na_article_get_field(const na_article *a, size_t i, na_field *out);
/*
 * The field named by the C string name. Returns 0, or NA_ENOFIELD.
 */
int na_article_find_field(const na_article *a, const char *name, na_field *out);

/*
 * The builder makes an article field by field:
 *
 *   na_article_builder *b;
 *   na_article_builder_new(&b);
 *   na_article_builder_set_str(b, "guid", guid, strlen(guid));
 *   na_article_builder_set_time(b, "published", (na_time){ t, 0 });
 *   na_article_builder_set_str(b, "title", title, strlen(title));
 *   na_article_builder_add_author(b, "Jane Doe", 8);
 *   na_article_builder_finish(b, &article);
 *   na_article_builder_free(b);
 *
 * Setting a field that is already set replaces its value (the field keeps
 * its position). Fields are encoded in the order they were first set;
 * authors and tags go where the first author / tag was added.
 * Every function copies its arguments: nothing passed in must outlive the
 * call. A failed call leaves the builder as it was.
 */
typedef struct na_article_builder na_article_builder;

/* Creates an empty builder. Free it with na_article_builder_free().
 * Errors: NA_EINVAL (out is NULL), NA_ENOMEM. */
int na_article_builder_new(na_article_builder **out);
/* Frees the builder (and whatever it holds). NULL is ignored. */
void na_article_builder_free(na_article_builder *b);
/* Forgets every field: the builder is empty again. */
void na_article_builder_reset(na_article_builder *b);

/*
 * Sets a string field: name is a C string (1..255 bytes), s/n the value
 * (may contain any bytes; n may be 0). For guid, n must be 1..1024.
 * Errors: NA_EINVAL (NULL, bad name length, name is one of published,
 * updated, authors, tags, or a bad guid length), NA_ENOMEM.
 */
int na_article_builder_set_str(na_article_builder *b, const char *name, const char *s, size_t n);

/*
 * Sets a timestamp field (encoded as msgpack timestamp, smallest form).
 * nsec must be < 1e9. For "published" and "updated" the time must lie in
 * years 0001..9999 (NA_TIME_MIN_SEC..NA_TIME_MAX_SEC).
 * Errors: NA_EINVAL (NULL, bad name, name is a known string/array field, time
 * out of range), NA_ENOMEM.
 */
int na_article_builder_set_time(na_article_builder *b, const char *name, na_time t);

/* Appends one author / tag (s/n, any bytes). Errors: NA_EINVAL (NULL),
 * NA_ENOMEM. */
int na_article_builder_add_author(na_article_builder *b, const char *s, size_t n);
int na_article_builder_add_tag(na_article_builder *b, const char *s, size_t n);

/*
 * Sets a field to an arbitrary msgpack value given as its encoded bytes
 * (mp[0..n) must be exactly one well-formed msgpack object, nesting at most
 * 30 levels). Known field names are refused: use the typed setters for them.
 * Errors: NA_EINVAL (NULL, bad name, known name, not one object), NA_ENOMEM.
 */
int na_article_builder_set_raw(na_article_builder *b, const char *name, const void *mp, size_t n);

/* Removes a field (or all authors / tags when name is "authors" / "tags").
 * Returns 0, or NA_ENOFIELD when it was not set. */
int na_article_builder_unset(na_article_builder *b, const char *name);

/*
 * Encodes the fields into a new article. The fields the server requires must
 * be set: guid, published and title. On success *out is a new article (free
 * it with na_article_free) and the builder is unchanged, so it can be
 * modified and finished again.
 * Errors: NA_EINVAL (a required field is missing, more than 4096 fields, or
 * out is NULL), NA_ENOMEM.
 */
int na_article_builder_finish(na_article_builder *b, na_article **out);

/* =====================================================================
 * 3. Synchronous API
 * ===================================================================== */

/*
 * A connection to newsarchd. All calls on a client block until the reply
 * arrives, the I/O timeout runs out, or the connection fails. Use one client
 * from one thread at a time (a client per thread is fine).
 *
 * Connection loss: when the connection fails (the server closed it or died,
 * a socket error occurred, or a reply broke the protocol), the call in
 * progress returns NA_ECONN (NA_EPROTO for a bad reply) and the client is
 * dead: every later call returns the same code at once, without touching
 * the network. The library never reconnects by itself; close the client and
 * connect again (the call that failed may or may not have been executed by
 * the server).
 *
 * Timeouts: when no complete reply arrives within io_timeout_ms of the
 * start of a call, the call returns NA_ETIMEDOUT (also while the server
 * keeps sending something else). The connection stays open:
 * the request may still be executed, and its late reply is recognised by its
 * msgid and dropped, so the next call works normally.
 */
typedef struct na_client na_client;

typedef struct na_options {
	int connect_timeout_ms;    /* default 5000; <= 0: wait forever */
	int io_timeout_ms;         /* per call; default 30000; <= 0: forever */
	size_t max_response_bytes; /* largest reply accepted; default 256 MiB */
	const char *token;         /* NULL: none; else na_client_connect calls
	                            * auth with it and fails with
	                            * NA_EUNAUTHORIZED when the server refuses it.
	                            * Borrowed: only read during connect. The
	                            * libuv adapter ignores it: send "auth"
	                            * with na_uv_call_raw first. */
	/*
	 * TLS, used when the address is "tls://host:port" (ignored otherwise).
	 * All are C strings or NULL, borrowed: read only while connecting.
	 * The server's certificate chain is always verified, and so is its
	 * name: tls_server_name, else the host of the address (an IP address
	 * must appear in the certificate's IP SANs). There is deliberately no
	 * option to skip verification: to trust a self-signed server, pass
	 * its certificate as tls_ca_file. TLS 1.2 is the minimum version.
	 */
	const char *tls_ca_file;     /* PEM file of trusted CAs; NULL: the
	                              * system's default trust store */
	const char *tls_cert_file;   /* PEM client certificate (chain), for
	                              * servers that require one; NULL: none */
	const char *tls_key_file;    /* its private key (PEM, unencrypted);
	                              * required with tls_cert_file */
	const char *tls_server_name; /* name to verify and send as SNI;
	                              * NULL: the host of the address */
} na_options;

/* Fills o with the defaults. */
void na_options_init(na_options *o);

/*
 * Connects to a server. addr is one of
 *   "host:port"        a host name or IPv4 address and a TCP port,
 *   "[v6addr]:port"    an IPv6 address and a port,
 *   "tls://host:port"  (or "tls://[v6addr]:port") the same over TLS, with
 *                      the tls_* options of opts (the server's
 *                      tls_listen port, not its plaintext one),
 *   "unix:/path"       a Unix stream socket,
 * or NULL for "127.0.0.1:7411". With TLS the handshake completes within the
 * connect timeout before this returns. Under TLS 1.3 a server that requires
 * a client certificate may refuse a missing or untrusted one only after
 * the handshake: the first call then fails with NA_ETLS. Host names are resolved with getaddrinfo
 * (this may block beyond the connect timeout); every address found is tried
 * in turn within the connect timeout. opts may be NULL for the defaults.
 * On success *out is a new client; close it with na_client_close().
 * Errors: NA_EINVAL (bad address syntax or out is NULL), NA_ENOMEM,
 * NA_ECONN (resolution failed, refused, unreachable...), NA_ETIMEDOUT,
 * NA_ETLS (a TLS file could not be loaded, or the handshake failed: the
 * description names the cause, e.g. "certificate has expired"),
 * NA_EUNAUTHORIZED (opts->token was refused).
 * No client exists after a failure, so there is no errmsg to read: a
 * description goes to errbuf when errbuf is not NULL (see below).
 */
int na_client_connect(const char *addr, const na_options *opts, na_client **out);

/*
 * Like na_client_connect, and on failure writes a NUL-terminated
 * description of the failure to errbuf[0..errlen) (truncated to fit).
 */
int na_client_connect_ex(const char *addr, const na_options *opts, na_client **out,
			 char *errbuf, size_t errlen);

/* Closes the connection and frees the client. Everything the client lent
 * (articles, results, raw replies) becomes invalid. A range iterator that
 * is still open must be closed first. NULL is ignored. */
void na_client_close(na_client *c);

/*
 * The message of the last failed call on c: the server's message for a
 * server error, or a description of a local failure. "" after a success.
 * Borrowed: NUL-terminated, valid until the next call on c (truncated to
 * about 2 KiB).
 */
const char *na_client_errmsg(const na_client *c);

/* Sends ping and checks the answer "pong".
 * Errors: NA_ECONN, NA_ETIMEDOUT, NA_EPROTO, server errors. */
int na_ping(na_client *c);

/* How a put was applied. */
typedef enum na_put_status {
	NA_PUT_CREATED = 1,   /* new guid */
	NA_PUT_UPDATED = 2,   /* guid existed, article replaced */
	NA_PUT_UNCHANGED = 3  /* identical bytes were already stored */
} na_put_status;

/* Result of storing one article. */
typedef struct na_put_result {
	int err;               /* 0, or the server error for this item (batch) */
	na_put_status status;  /* valid when err == 0 */
	uint64_t seq;          /* change-log sequence of the stored version */
	const char *errmsg;    /* err != 0: the server's message (borrowed, see
	                        * the call), NUL-terminated; else "" */
} na_put_result;

/*
 * Stores an article (created, replaced, or left unchanged when the stored
 * bytes are identical); returns after the server made it durable.
 * On success fills *res (may be NULL); res->errmsg is "".
 * Errors: NA_EINVAL (NULL article), NA_ECONN, NA_ETIMEDOUT, NA_EPROTO, and
 * the server's NA_EBADREQ (article refused; the message names the field),
 * NA_ETOOLARGE, NA_ENOSPACE, NA_EREADONLY, NA_EUNAVAILABLE, NA_EINTERNAL.
 */
int na_put(na_client *c, const na_article *a, na_put_result *res);

/*
 * Stores n articles (1 .. the server's max_batch, 10,000 by default) in one
 * request and one transaction. results must have room for n entries: entry i
 * receives item i's outcome; an item refused by the server has err != 0 and
 * errmsg set, and does not stop the others. errmsg strings are borrowed from
 * the client: valid until the next call on c.
 * Returns 0 when the request as a whole was answered (even if some items
 * failed), else an error and results are unspecified.
 * Errors: NA_EINVAL (NULL argument, n == 0), NA_ENOMEM, NA_ECONN,
 * NA_ETIMEDOUT, NA_EPROTO (e.g. the reply has a different number of items),
 * server errors (NA_ETOOLARGE for too many items or bytes, NA_EBADREQ...).
 */
int na_put_batch(na_client *c, const na_article *const *articles, size_t n,
		 na_put_result *results);

/*
 * Fetches the article with guid guid[0..guid_len). With fields != NULL, only
 * the nfields named fields (C strings; at most 64) that exist are returned.
 * On success *out is a new article owned by the caller (na_article_free).
 * Errors: NA_EINVAL (NULL, guid_len 0 or > 1024), NA_ENOMEM, NA_ENOTFOUND,
 * NA_ECONN, NA_ETIMEDOUT, NA_EPROTO (reply is not a valid article, e.g. one
 * of more than 4096 fields), other server errors (NA_EBADREQ, NA_ETOOLARGE
 * for too many fields).
 */
int na_get(na_client *c, const char *guid, size_t guid_len, const char *const *fields,
	   size_t nfields, na_article **out);

/*
 * Deletes the article with that guid. *deleted (may be NULL) is set to 1 if
 * it existed, else 0; *seq (may be NULL) to the sequence number of the
 * deletion, or 0 when nothing was deleted. Deleting a missing guid is not an
 * error. Errors: NA_EINVAL, NA_ECONN, NA_ETIMEDOUT, NA_EPROTO, server errors.
 */
int na_delete(na_client *c, const char *guid, size_t guid_len, int *deleted, uint64_t *seq);

/*
 * Counts the articles with from <= published < to. from / to may be NULL for
 * an open end. Errors: NA_EINVAL (NULL c or out), NA_ECONN, NA_ETIMEDOUT,
 * NA_EPROTO, server errors.
 */
int na_count(na_client *c, const na_time *from, const na_time *to, uint64_t *out);

/*
 * Server statistics. The known keys of the stats map are decoded into the
 * fields below; a key the server did not send (or sent with another type)
 * leaves its field 0 / NULL. The whole map is kept in raw/raw_len for other
 * keys (na_server_stats_find). The strings point into raw.
 */
typedef struct na_server_stats {
	uint64_t articles, raw_bytes, stored_bytes;
	double ratio;
	uint64_t dictionary, dictionary_bytes;
	uint64_t map_size, map_used, page_bytes;
	uint64_t seq, connections, requests, uptime;
	const char *role; size_t role_len;       /* "primary" or "follower" */
	const char *version; size_t version_len;
	const uint8_t *raw; size_t raw_len;      /* the stats map as sent */
} na_server_stats;

/*
 * Fetches the statistics. *out is a new object owned by the caller, freed
 * with na_server_stats_free (which also frees the strings and raw bytes).
 * Errors: NA_EINVAL, NA_ENOMEM, NA_ECONN, NA_ETIMEDOUT, NA_EPROTO (not a
 * map with string keys), server errors.
 */
int na_stats(na_client *c, na_server_stats **out);
void na_server_stats_free(na_server_stats *s);
/*
 * Raw value of any key of the stats map (C string key): *val and *len are the
 * msgpack bytes of the value, borrowed from s. Returns 0 or NA_ENOFIELD.
 */
int na_server_stats_find(const na_server_stats *s, const char *key, const uint8_t **val,
			 size_t *len);

/*
 * Calls any method. params[0..params_len) must be one msgpack ARRAY (the
 * method's parameters); NULL/0 sends an empty array. On success *result /
 * *result_len (either may be NULL) receive the raw msgpack bytes of the
 * result, borrowed from the client: valid until the next call on c.
 * Errors: NA_EINVAL (params not exactly one array, NULL method), NA_ENOMEM,
 * NA_ECONN, NA_ETIMEDOUT, NA_EPROTO, and whatever server error the method
 * produces (NA_EUNKNOWNMETHOD for an unknown method).
 */
int na_call_raw(na_client *c, const char *method, const void *params, size_t params_len,
		const uint8_t **result, size_t *result_len);

/* ---- range iterator ------------------------------------------------ */

/*
 * Options of a range scan. Zero-initialise and set what you need:
 *   na_range_opts o = { .from = &since, .page_size = 500 };
 * The pointed-to values are copied by na_range_open.
 */
typedef struct na_range_opts {
	const na_time *from;         /* NULL: from the beginning */
	const na_time *to;           /* NULL: to the end (exclusive bound) */
	unsigned page_size;          /* articles per request; 0: server default
	                              * (100). The server allows at most 1000
	                              * and answers NA_ETOOLARGE beyond. */
	bool reverse;                /* newest first */
	const char *const *fields;   /* NULL: whole articles; else the names */
	size_t nfields;              /* of the fields to return (at most 64) */
} na_range_opts;

/* An opaque position in a range scan, as returned by the server. */
typedef struct na_cursor {
	size_t len;                  /* 0: no cursor */
	uint8_t bytes[64];
} na_cursor;

/*
 * A scan over the articles with from <= published < to, in publication
 * order (or reverse). The iterator fetches one page at a time and follows
 * the server's cursor, so memory stays constant (one page) however many
 * articles the range holds. Pages are consistent one by one, not across
 * pages (articles written during the scan may or may not be seen).
 */
typedef struct na_range na_range;

/*
 * Opens a scan on c. No request is sent before the first na_range_next.
 * The iterator uses c for its requests: c must stay open until the iterator
 * is closed; other calls on c may be made in between na_range_next calls.
 * On success *out is a new iterator; close it with na_range_close.
 * Errors: NA_EINVAL (NULL c or out, nfields > 64, a NULL field name),
 * NA_ENOMEM.
 */
int na_range_open(na_client *c, const na_range_opts *opts, na_range **out);

/*
 * Advances the scan. Returns 1 and sets *out to the next article, 0 at the
 * end of the range, or a negative error (NA_ECONN, NA_ETIMEDOUT, NA_EPROTO,
 * server errors such as NA_ETOOLARGE for a page_size above 1000 or
 * NA_EBADREQ; message in na_client_errmsg). NA_EPROTO includes a page of
 * more than 1000 articles, and more than 16 empty pages in a row that do
 * not end the range (a server that would keep the call looping). After 0
 * or an error, further calls return the same value. The article is
 * borrowed: valid until the next na_range_next or na_range_close on this
 * iterator (na_article_dup to keep it).
 */
int na_range_next(na_range *it, const na_article **out);

/* Frees the iterator and the page it holds. NULL is ignored. */
void na_range_close(na_range *it);

/* ---- full-text search ----------------------------------------------- */

/* Result order of a search. */
typedef enum na_search_order {
	NA_SEARCH_NEWEST = 0,        /* publication time, newest first */
	NA_SEARCH_OLDEST = 1,        /* publication time, oldest first */
	NA_SEARCH_RELEVANCE = 2,     /* BM25 score, best first */
} na_search_order;

/*
 * Options of a search. Zero-initialise and set what you need:
 *   na_search_opts o = { .query = "cocoa -futures", .limit = 50 };
 * The query language is described in PROTOCOL.md ("search"). The
 * pointed-to values are copied by na_search_open.
 */
typedef struct na_search_opts {
	const char *query;           /* required, at most 4096 bytes */
	const na_time *from;         /* NULL: no lower bound */
	const na_time *to;           /* NULL: no upper bound (exclusive) */
	unsigned limit;              /* articles per request; 0: server default
	                              * (20); at most 1000 */
	na_search_order order;
	const char *const *fields;   /* NULL: whole articles; else the names */
	size_t nfields;              /* of the fields to return (at most 64) */
	uint64_t min_seq;            /* wait until the index covers this seq */
	unsigned timeout_ms;         /* how long to wait for min_seq; 0: 5000 */
} na_search_opts;

/*
 * An iterator over the articles matching a query, in the requested order,
 * one page per request, following the server's cursor (pages are consistent
 * one by one, like na_range).
 */
typedef struct na_search na_search;

/*
 * Opens a search on c. No request is sent before the first na_search_next;
 * c must stay open until the iterator is closed. On success *out is a new
 * iterator, closed with na_search_close.
 * Errors: NA_EINVAL (NULL c, out or query, a query over 4096 bytes,
 * nfields > 64, a NULL field name, an order out of range), NA_ENOMEM.
 */
int na_search_open(na_client *c, const na_search_opts *opts, na_search **out);

/*
 * Advances the search. Returns 1 and sets *out to the next matching
 * article, 0 after the last one, or a negative error: NA_EBADREQ for a
 * malformed query (na_client_errmsg says at which position), NA_ETIMEDOUT
 * when the index did not reach min_seq in time, NA_ECONN, NA_EPROTO (also
 * for a page of more than 1000 articles, or more than 16 empty pages in a
 * row that do not end the search), other server errors. After 0 or an
 * error, further calls return the same value.
 * The article is borrowed: valid until the next na_search_next or
 * na_search_close (na_article_dup to keep it).
 */
int na_search_next(na_search *it, const na_article **out);

/* The server's estimate of how many articles match, from the latest page
 * (0 before the first). Exact for queries without phrases when the whole
 * window was scanned (relevance order always scans it). */
uint64_t na_search_total(const na_search *it);

/* Frees the iterator and the page it holds. NULL is ignored. */
void na_search_close(na_search *it);

/*
 * Asks the server to rebuild its full-text index (admin role). The server
 * answers at once and rebuilds online; stats "index" shows the progress.
 * Errors: NA_EINVAL, NA_ECONN, NA_ETIMEDOUT, NA_EPROTO, NA_EUNAUTHORIZED,
 * other server errors.
 */
int na_reindex(na_client *c);

/* =====================================================================
 * 4. Protocol core (no I/O)
 * ===================================================================== */

/*
 * na_proto turns calls into request bytes and received bytes into replies,
 * and leaves the moving of bytes to the caller:
 *
 *   na_proto_call(p, "ping", NULL, 0, cb, ud, NULL);   queue a request
 *   na_proto_output(p, &buf, &len); write(fd, buf, len) -> w;
 *   na_proto_consume(p, w);                             w bytes were sent
 *   n = read(fd, ...); na_proto_feed(p, data, n);       callbacks run here
 *   on EOF / error: na_proto_fail(p, NA_ECONN, "...");  pending calls fail
 *
 * Any number of requests may be pending. Replies are matched to requests by
 * msgid through a table, so they may arrive in any order. Every callback
 * given to na_proto_call is called exactly once: with the reply, or with an
 * error from na_proto_fail / a protocol error / na_proto_free - unless the
 * call is cancelled with na_proto_cancel first.
 *
 * When a reply cannot be framed or read (not msgpack, larger than
 * max_response_bytes, nested deeper than 32, not [1, msgid, error, result],
 * or a msgid that was never sent), the stream cannot be trusted any more:
 * every pending callback gets NA_EPROTO and the core is dead (see below).
 */
typedef struct na_proto na_proto;

/* One reply, given to a callback. Everything is borrowed: valid only
 * during the callback. */
typedef struct na_response {
	uint32_t msgid;
	int err;                 /* 0, a server error, or a library error */
	const char *errmsg;      /* NUL-terminated: the server's message or a
	                          * description of the local failure; "" if ok */
	const uint8_t *result;   /* err == 0: msgpack bytes of the result */
	size_t result_len;
} na_response;

typedef void (*na_response_cb)(const na_response *r, void *ud);

/*
 * Creates a core. max_response_bytes: largest reply accepted (0: 256 MiB).
 * Errors: NA_EINVAL (out NULL), NA_ENOMEM.
 */
int na_proto_new(size_t max_response_bytes, na_proto **out);

/*
 * Fails every pending call with NA_ECLOSED (callbacks run inside this
 * call), then frees the core. NULL is ignored. Must not be called from a
 * callback of the same core.
 */
void na_proto_free(na_proto *p);

/*
 * Queues a request [0, msgid, method, params]. params[0..params_len) must be
 * exactly one msgpack array (NULL/0: an empty array); it is copied. cb
 * (required) will be called exactly once with ud. The msgid chosen is
 * stored in *msgid when msgid is not NULL.
 * May be called from a callback.
 * Errors (cb will then NOT be called): NA_EINVAL (NULL method or cb, params
 * not one array), NA_ENOMEM, and the core's death code when it is dead.
 */
int na_proto_call(na_proto *p, const char *method, const void *params, size_t params_len,
		  na_response_cb cb, void *ud, uint32_t *msgid);

/*
 * The bytes waiting to be sent: *buf / *len (len 0 when none). Borrowed:
 * valid until the next na_proto_* call on p.
 */
void na_proto_output(na_proto *p, const uint8_t **buf, size_t *len);

/* Marks the first n bytes of the output as sent (n <= the output length). */
void na_proto_consume(na_proto *p, size_t n);

/*
 * Processes received bytes: buffers them and calls the callbacks of every
 * reply that is now complete (in the order the replies arrived). data is
 * copied as needed. Returns 0 while the core is alive, else its death
 * code: NA_EPROTO when these bytes broke the protocol (every pending call
 * has then been failed), NA_ENOMEM when they could not be buffered, or the
 * code given to na_proto_fail (also when a callback called it). NA_EINVAL
 * for a NULL argument or a call from a callback.
 */
int na_proto_feed(na_proto *p, const void *data, size_t len);

/*
 * Declares the connection lost: every pending callback is called (now) with
 * err (a negative code) and the message msg (may be NULL), and the core is
 * dead: later na_proto_call and na_proto_feed return err. Calling it on a
 * dead core does nothing. May be called from a callback.
 */
void na_proto_fail(na_proto *p, int err, const char *msg);

/*
 * Forgets a pending call: its callback will not be called, and its reply,
 * if one comes, is dropped silently. Returns 0, or NA_EINVAL when msgid is
 * not pending. May be called from a callback.
 */
int na_proto_cancel(na_proto *p, uint32_t msgid);

/* Number of calls whose callback is still due (cancelled ones excluded). */
size_t na_proto_pending(const na_proto *p);

/* 0 while alive, else the code the core died with. */
int na_proto_dead(const na_proto *p);

/* The message the core died with ("" while alive). Borrowed from p. */
const char *na_proto_errmsg(const na_proto *p);

#ifdef __cplusplus
}
#endif

#endif /* NEWSARCH_H */
