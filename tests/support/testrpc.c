/*
 * testrpc.c - test support: a blocking MessagePack-RPC peer (see testrpc.h).
 */
#include "testrpc.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void na_trpc_init(na_trpc *t, int fd)
{
	memset(t, 0, sizeof *t);
	t->fd = fd;
	t->next_id = 1;
	t->timeout_ms = 60000;
	na_scan_init(&t->scan, 512u << 20, 64);
	msgpack_unpacked_init(&t->msg);
}

void na_trpc_close(na_trpc *t)
{
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
	free(t->buf);
	t->buf = NULL;
	free(t->msgbytes);
	t->msgbytes = NULL;
	msgpack_unpacked_destroy(&t->msg);
}

int na_trpc_send(na_trpc *t, const void *p, size_t n)
{
	const char *c = p;
	while (n > 0) {
		ssize_t w = write(t->fd, c, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

uint32_t na_trpc_request(na_trpc *t, const char *method, uint32_t nparams,
			 const msgpack_sbuffer *params)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	uint32_t id = t->next_id++;
	msgpack_pack_array(&pk, 4);
	msgpack_pack_uint8(&pk, 0);
	msgpack_pack_uint32(&pk, id);
	na_mp_pack_cstr(&pk, method);
	msgpack_pack_array(&pk, nparams);
	if (params && params->size)
		msgpack_sbuffer_write(&sb, params->data, params->size);
	int rc = na_trpc_send(t, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
	return rc ? 0 : id;
}

int na_trpc_read(na_trpc *t, msgpack_object *out)
{
	for (;;) {
		size_t mlen;
		int rc = na_scan_feed(&t->scan, t->buf, t->len, &mlen);
		if (rc < 0)
			return -1;
		if (rc == 1) {
			/* unpacked strings point into the bytes: give them their own copy */
			msgpack_unpacked_destroy(&t->msg);
			msgpack_unpacked_init(&t->msg);
			free(t->msgbytes);
			t->msgbytes = malloc(mlen ? mlen : 1);
			if (!t->msgbytes)
				return -1;
			memcpy(t->msgbytes, t->buf, mlen);
			size_t off = 0;
			if (msgpack_unpack_next(&t->msg, t->msgbytes, mlen, &off) !=
			    MSGPACK_UNPACK_SUCCESS)
				return -1;
			memmove(t->buf, t->buf + mlen, t->len - mlen);
			t->len -= mlen;
			*out = t->msg.data;
			return 1;
		}
		if (t->cap - t->len < 65536) {
			size_t want = t->cap ? t->cap * 2 : 131072;
			uint8_t *nb = realloc(t->buf, want);
			if (!nb)
				return -1;
			t->buf = nb;
			t->cap = want;
		}
		struct pollfd p = { .fd = t->fd, .events = POLLIN };
		int pr = poll(&p, 1, t->timeout_ms);
		if (pr <= 0)
			return -1;
		ssize_t r = read(t->fd, t->buf + t->len, t->cap - t->len);
		if (r == 0)
			return 0;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return errno == ECONNRESET ? 0 : -1;
		}
		t->len += (size_t)r;
	}
}

int na_trpc_wait(na_trpc *t, uint32_t msgid, msgpack_object *err, msgpack_object *result)
{
	for (;;) {
		msgpack_object o;
		int rc = na_trpc_read(t, &o);
		if (rc <= 0)
			return rc;
		if (o.type != MSGPACK_OBJECT_ARRAY || o.via.array.size != 4)
			continue;
		msgpack_object *a = o.via.array.ptr;
		if (a[0].via.u64 != 1 || a[1].via.u64 != msgid)
			continue;
		*err = a[2];
		*result = a[3];
		return 1;
	}
}

int na_trpc_call(na_trpc *t, const char *method, uint32_t nparams, const msgpack_sbuffer *params,
		 msgpack_object *err, msgpack_object *result)
{
	uint32_t id = na_trpc_request(t, method, nparams, params);
	if (!id)
		return -1;
	return na_trpc_wait(t, id, err, result);
}

const msgpack_object *na_obj_get(const msgpack_object *map, const char *key)
{
	if (!map || map->type != MSGPACK_OBJECT_MAP)
		return NULL;
	size_t kl = strlen(key);
	for (uint32_t i = 0; i < map->via.map.size; i++) {
		const msgpack_object *k = &map->via.map.ptr[i].key;
		if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == kl &&
		    memcmp(k->via.str.ptr, key, kl) == 0)
			return &map->via.map.ptr[i].val;
	}
	return NULL;
}

bool na_obj_streq(const msgpack_object *o, const char *s)
{
	return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s) &&
	       memcmp(o->via.str.ptr, s, o->via.str.size) == 0;
}

const char *na_obj_code(const msgpack_object *err, char *buf, size_t n)
{
	const msgpack_object *c = na_obj_get(err, "code");
	buf[0] = 0;
	if (c && c->type == MSGPACK_OBJECT_STR && c->via.str.size < n) {
		memcpy(buf, c->via.str.ptr, c->via.str.size);
		buf[c->via.str.size] = 0;
	}
	return buf;
}

void na_pack_article(msgpack_packer *pk, const char *guid, int64_t sec, uint32_t nsec,
		     const char *title, const char *body)
{
	msgpack_pack_map(pk, body ? 4 : 3);
	na_mp_pack_cstr(pk, "guid");
	na_mp_pack_cstr(pk, guid);
	na_mp_pack_cstr(pk, "published");
	na_ts ts = { sec, nsec };
	na_mp_pack_ts(pk, ts);
	na_mp_pack_cstr(pk, "title");
	na_mp_pack_cstr(pk, title);
	if (body) {
		na_mp_pack_cstr(pk, "body");
		na_mp_pack_cstr(pk, body);
	}
}
