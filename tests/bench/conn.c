/*
 * conn.c - newsarch-bench: a non-blocking, pipelined MessagePack-RPC
 * connection over loopback TCP (see bench.h).
 *
 * Replies are framed with the shared bounded framer (na_scan), so a broken
 * server cannot make the bench allocate more than BENCH_MAX_REPLY plus one
 * read. Every wait is a poll with a timeout.
 */
#include "bench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "rpc.h"

#define READ_CHUNK (256u << 10)

uint64_t bench_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int bc_resolve(const char *addr, struct sockaddr_storage *ss, socklen_t *len, char *err,
	       size_t errcap)
{
	char host[128];
	const char *colon;
	memset(ss, 0, sizeof *ss);
	if (addr[0] == '[') {
		const char *end = strchr(addr, ']');
		if (!end || end[1] != ':' || (size_t)(end - addr - 1) >= sizeof host)
			goto bad;
		memcpy(host, addr + 1, (size_t)(end - addr - 1));
		host[end - addr - 1] = 0;
		colon = end + 1;
	} else {
		colon = strrchr(addr, ':');
		if (!colon || (size_t)(colon - addr) >= sizeof host)
			goto bad;
		memcpy(host, addr, (size_t)(colon - addr));
		host[colon - addr] = 0;
	}
	char *e;
	long port = strtol(colon + 1, &e, 10);
	if (*e || colon[1] == 0 || port <= 0 || port > 65535)
		goto bad;
	if (strcmp(host, "localhost") == 0)
		snprintf(host, sizeof host, "127.0.0.1");
	struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
		if ((ntohl(a4->sin_addr.s_addr) >> 24) != 127) {
			snprintf(err, errcap, "%s: the bench only talks to loopback addresses", addr);
			return -1;
		}
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)port);
		*len = sizeof *a4;
		return 0;
	}
	if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
		if (!IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr)) {
			snprintf(err, errcap, "%s: the bench only talks to loopback addresses", addr);
			return -1;
		}
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		*len = sizeof *a6;
		return 0;
	}
bad:
	snprintf(err, errcap, "%s: expected HOST:PORT with a numeric loopback address", addr);
	return -1;
}

int bc_open(bconn *c, const struct sockaddr_storage *ss, socklen_t len)
{
	memset(c, 0, sizeof *c);
	c->fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -1;
	if (connect(c->fd, (const struct sockaddr *)ss, len) != 0) {
		int e = errno;
		close(c->fd);
		c->fd = -1;
		errno = e;
		return -1;
	}
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	int fl = fcntl(c->fd, F_GETFL);
	fcntl(c->fd, F_SETFL, fl | O_NONBLOCK);
	na_scan_init(&c->scan, BENCH_MAX_REPLY, NA_MP_DEPTH_CEILING);
	return 0;
}

void bc_close(bconn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->in);
	free(c->ob);
	c->in = c->ob = NULL;
}

static int ob_write(void *data, const char *p, size_t n)
{
	bconn *c = data;
	if (c->ob_cap - c->ob_len < n) {
		size_t want = c->ob_cap ? c->ob_cap : 4096;
		while (want - c->ob_len < n) {
			if (want > (1u << 30))
				return -1;
			want *= 2;
		}
		uint8_t *nb = realloc(c->ob, want);
		if (!nb)
			return -1;
		c->ob = nb;
		c->ob_cap = want;
	}
	memcpy(c->ob + c->ob_len, p, n);
	c->ob_len += n;
	return 0;
}

void bc_begin(bconn *c, uint32_t msgid, const char *method, uint32_t nparams,
	      msgpack_packer *pk)
{
	c->ob_len = 0;
	c->ext = NULL;
	c->ext_len = 0;
	c->sent = 0;
	msgpack_packer_init(pk, c, ob_write);
	msgpack_pack_array(pk, 4);
	msgpack_pack_uint8(pk, NA_RPC_REQUEST);
	msgpack_pack_uint32(pk, msgid);
	na_mp_pack_cstr(pk, method);
	msgpack_pack_array(pk, nparams);
}

void bc_begin_notify(bconn *c, const char *method, uint32_t nparams, msgpack_packer *pk)
{
	c->ob_len = 0;
	c->ext = NULL;
	c->ext_len = 0;
	c->sent = 0;
	msgpack_packer_init(pk, c, ob_write);
	msgpack_pack_array(pk, 3);
	msgpack_pack_uint8(pk, NA_RPC_NOTIFY);
	na_mp_pack_cstr(pk, method);
	msgpack_pack_array(pk, nparams);
}

static int do_write(bconn *c)
{
	while (bc_sending(c)) {
		struct iovec iov[2];
		int n = 0;
		if (c->sent < c->ob_len) {
			iov[n].iov_base = c->ob + c->sent;
			iov[n].iov_len = c->ob_len - c->sent;
			n++;
			if (c->ext_len) {
				iov[n].iov_base = (void *)c->ext;
				iov[n].iov_len = c->ext_len;
				n++;
			}
		} else {
			size_t o = c->sent - c->ob_len;
			iov[n].iov_base = (void *)(c->ext + o);
			iov[n].iov_len = c->ext_len - o;
			n++;
		}
		ssize_t w = writev(c->fd, iov, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -1;
		}
		c->sent += (size_t)w;
		c->bytes_out += (uint64_t)w;
	}
	return 0;
}

static int do_read(bconn *c)
{
	for (int rounds = 0; rounds < 64; rounds++) {
		if (c->in_off > 0 && c->in_off == c->in_len) {
			c->in_off = c->in_len = 0;
		}
		if (c->in_cap - c->in_len < READ_CHUNK) {
			/* compact first; grow only when the unread part needs it */
			if (c->in_off > 0) {
				memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
				c->in_len -= c->in_off;
				c->in_off = 0;
			}
			if (c->in_cap - c->in_len < READ_CHUNK) {
				size_t want = c->in_cap ? c->in_cap * 2 : 2 * READ_CHUNK;
				if (want > BENCH_MAX_REPLY + 2 * READ_CHUNK) {
					errno = EMSGSIZE;
					return -1;
				}
				uint8_t *nb = realloc(c->in, want);
				if (!nb)
					return -1;
				c->in = nb;
				c->in_cap = want;
			}
		}
		ssize_t r = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
		if (r == 0) {
			errno = ECONNRESET;
			return -1;
		}
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -1;
		}
		c->in_len += (size_t)r;
		c->bytes_in += (uint64_t)r;
		if ((size_t)r < c->in_cap - c->in_len)
			return 0; /* drained */
	}
	return 0;
}

int bc_flush(bconn *c)
{
	return bc_sending(c) ? do_write(c) : 0;
}

int bc_pump(bconn *c, bool want_read, int timeout_ms)
{
	if (bc_sending(c) && do_write(c))
		return -1;
	struct pollfd p = { .fd = c->fd, .events = (short)((want_read ? POLLIN : 0) |
							   (bc_sending(c) ? POLLOUT : 0)) };
	if (p.events == 0)
		return 0;
	int pr;
	do
		pr = poll(&p, 1, timeout_ms);
	while (pr < 0 && errno == EINTR);
	if (pr < 0)
		return -1;
	if (pr == 0) {
		errno = ETIMEDOUT;
		return -1;
	}
	if (p.revents & (POLLERR | POLLNVAL)) {
		errno = ECONNRESET;
		return -1;
	}
	if ((p.revents & POLLOUT) && do_write(c))
		return -1;
	if (p.revents & (POLLIN | POLLHUP))
		return do_read(c);
	return 0;
}

int bc_reply(bconn *c, const uint8_t **msg, size_t *len)
{
	if (c->in_off == c->in_len)
		return 0;
	size_t mlen;
	int rc = na_scan_feed(&c->scan, c->in + c->in_off, c->in_len - c->in_off, &mlen);
	if (rc < 0)
		return -1;
	if (rc == 0)
		return 0;
	*msg = c->in + c->in_off;
	*len = mlen;
	c->in_off += mlen;
	return 1;
}

int bc_parse_reply(const uint8_t *msg, size_t len, na_mp *r, uint32_t *msgid, bool *is_error)
{
	na_mp_init(r, msg, len);
	uint32_t n;
	uint64_t type, id;
	if (na_mp_array(r, &n) || n != 4 || na_mp_u64(r, &type) || type != NA_RPC_RESPONSE ||
	    na_mp_u64(r, &id) || id > UINT32_MAX)
		return -1;
	*msgid = (uint32_t)id;
	if (na_mp_peek(r) == NA_MP_NIL) {
		na_mp_nil(r);
		*is_error = false;
	} else {
		*is_error = true;
	}
	return r->err ? -1 : 0;
}

int bc_call(bconn *c, uint32_t msgid, const char *method, const void *params, size_t plen,
	    uint32_t nparams, const uint8_t **msg, size_t *len, int timeout_ms)
{
	msgpack_packer pk;
	bc_begin(c, msgid, method, nparams, &pk);
	if (plen && ob_write(c, params, plen))
		return -1;
	uint64_t deadline = bench_now_ns() + (uint64_t)timeout_ms * 1000000u;
	for (;;) {
		int rc;
		while ((rc = bc_reply(c, msg, len)) == 1) {
			na_mp r;
			uint32_t id;
			bool e;
			if (bc_parse_reply(*msg, *len, &r, &id, &e) == 0 && id == msgid)
				return 1;
		}
		if (rc < 0)
			return -1;
		uint64_t now = bench_now_ns();
		if (now >= deadline) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (bc_pump(c, true, (int)((deadline - now) / 1000000u) + 1))
			return -1;
	}
}
