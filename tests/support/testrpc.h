/*
 * testrpc.h - test support: a small blocking MessagePack-RPC peer that talks to
 * newsarchd over a raw socket, so daemon tests do not depend on libnewsarch
 * and can send any bytes they like (including malformed ones).
 */
#ifndef NA_TEST_RPC_H
#define NA_TEST_RPC_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mp.h"

typedef struct na_trpc {
	int fd;
	uint8_t *buf;
	size_t len, cap;
	na_scan scan;
	msgpack_unpacked msg;  /* the last message read */
	char *msgbytes;        /* its bytes, which msg points into */
	uint32_t next_id;
	int timeout_ms;
} na_trpc;

/* Wraps a connected socket (takes ownership of fd). */
void na_trpc_init(na_trpc *t, int fd);
void na_trpc_close(na_trpc *t);
/* Sends raw bytes. 0 or -1. */
int na_trpc_send(na_trpc *t, const void *p, size_t n);
/* Sends [0, msgid, method, params] where params are nparams objects already
 * packed in `params` (may be NULL when nparams is 0). Returns the msgid. */
uint32_t na_trpc_request(na_trpc *t, const char *method, uint32_t nparams,
			 const msgpack_sbuffer *params);
/* Reads the next message. 1 with *out (valid until the next read), 0 on EOF,
 * -1 on error or timeout. */
int na_trpc_read(na_trpc *t, msgpack_object *out);
/* Reads messages until the response to msgid; sets *err and *result (one of
 * them nil). Other responses are discarded. 1, 0 on EOF, -1 on error. */
int na_trpc_wait(na_trpc *t, uint32_t msgid, msgpack_object *err, msgpack_object *result);
/* request + wait */
int na_trpc_call(na_trpc *t, const char *method, uint32_t nparams, const msgpack_sbuffer *params,
		 msgpack_object *err, msgpack_object *result);

/* Helpers on objects. */
const msgpack_object *na_obj_get(const msgpack_object *map, const char *key);
bool na_obj_streq(const msgpack_object *o, const char *s);
/* The "code" of an error map, or "" */
const char *na_obj_code(const msgpack_object *err, char *buf, size_t n);

/* Packs a test article. nsec may be 0. body may be NULL. */
void na_pack_article(msgpack_packer *pk, const char *guid, int64_t sec, uint32_t nsec,
		     const char *title, const char *body);

#endif
