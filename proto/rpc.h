/*
 * rpc.h - the MessagePack-RPC vocabulary shared by newsarchd and libnewsarch:
 * message types, error codes and their wire names, default address and the
 * protocol limits. proto/PROTOCOL.md is the prose version of this file.
 */
#ifndef NA_PROTO_RPC_H
#define NA_PROTO_RPC_H

#include <stddef.h>
#include <stdint.h>

#define NA_RPC_REQUEST 0
#define NA_RPC_RESPONSE 1
#define NA_RPC_NOTIFY 2

#define NA_DEFAULT_HOST "127.0.0.1"
#define NA_DEFAULT_PORT 7411
#define NA_DEFAULT_ADDR "127.0.0.1:7411"

/* Protocol limits (server defaults; several are configurable). */
#define NA_MAX_REQUEST_BYTES_DEFAULT (32u << 20) /* one request message */
#define NA_MAX_RESPONSE_BYTES (256u << 20)       /* what a client accepts */
#define NA_MAX_DEPTH_DEFAULT 32                  /* container nesting */
#define NA_MAX_GUID_BYTES 1024
#define NA_MAX_ARTICLE_BYTES_DEFAULT (16u << 20) /* one encoded article */
#define NA_MAX_ARTICLE_HARD (256u << 20)         /* no setting allows more */
#define NA_MAX_BATCH_DEFAULT 10000               /* put_batch items */
#define NA_RANGE_LIMIT_DEFAULT 100
#define NA_RANGE_LIMIT_MAX 1000
#define NA_RANGE_MAX_BYTES (64u << 20)           /* a range page stops growing here */
#define NA_MAX_FIELDS 64                         /* names in "fields" */
#define NA_MAX_ARTICLE_FIELDS 4096               /* keys in one article map */
#define NA_CURSOR_BYTES 16                       /* range cursor (bin) */
/* Publication times must fall in years 0001..9999 (RFC 3339's range). */
#define NA_TS_MIN_SEC (-62135596800LL)           /* 0001-01-01T00:00:00Z */
#define NA_TS_MAX_SEC (253402300799LL)           /* 9999-12-31T23:59:59Z */

/* Error codes; on the wire they travel as their names. */
typedef enum na_code {
	NA_CODE_OK = 0,
	NA_CODE_BAD_REQUEST,
	NA_CODE_UNKNOWN_METHOD,
	NA_CODE_NOT_FOUND,
	NA_CODE_TOO_LARGE,
	NA_CODE_NO_SPACE,
	NA_CODE_READONLY,
	NA_CODE_UNAUTHORIZED,
	NA_CODE_TIMEOUT,
	NA_CODE_UNAVAILABLE,
	NA_CODE_INTERNAL,
	NA_CODE__COUNT
} na_code;

/* Wire name of a code ("BAD_REQUEST"...); "INTERNAL" for unknown values. */
const char *na_code_name(int code);
/* Code for a wire name of n bytes; NA_CODE_INTERNAL when unknown. */
int na_code_parse(const char *name, size_t n);

#endif
