/*
 * pipeline.c - a pipelined connection for the CLI: socket + na_proto + poll,
 * with the TLS engine (proto/tls.h) in between for tls:// addresses: the
 * core's output is encrypted once the handshake is done, and what arrives
 * is decrypted before the core sees it.
 */
#include "pipeline.h"

#include <msgpack.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "rpc.h"
#include "tls.h"

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* non-blocking connect with a deadline; 0 or -errno-ish, fd closed on error */
static int connect_fd(int fd, const struct sockaddr *sa, socklen_t len, int timeout_ms)
{
	if (connect(fd, sa, len) == 0)
		return 0;
	if (errno != EINPROGRESS)
		return -1;
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	int n;
	do
		n = poll(&pfd, 1, timeout_ms > 0 ? timeout_ms : -1);
	while (n < 0 && errno == EINTR);
	if (n == 0) {
		errno = ETIMEDOUT;
		return -1;
	}
	int soerr = 0;
	socklen_t sl = sizeof soerr;
	if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
		return -1;
	if (soerr) {
		errno = soerr;
		return -1;
	}
	return 0;
}

static void auth_done(const na_response *r, void *ud)
{
	na_pipe *pp = ud;
	if (r->err)
		snprintf(pp->err, sizeof pp->err, "authentication failed: %s", r->errmsg);
}

int na_pipe_open(na_pipe *pp, const char *addr, int connect_timeout_ms, const na_options *tls)
{
	memset(pp, 0, sizeof *pp);
	pp->fd = -1;
	pp->io_timeout_ms = 300000;
	if (!addr)
		addr = NA_DEFAULT_ADDR;
	int fd = -1;
	const char *full = addr;
	bool use_tls = !strncmp(addr, "tls://", 6);
	if (use_tls) {
		addr += 6;
		if (!strncmp(addr, "unix:", 5)) {
			snprintf(pp->err, sizeof pp->err, "%s: TLS is for TCP addresses", full);
			return NA_EINVAL;
		}
	}
	if (!strncmp(addr, "unix:", 5)) {
		struct sockaddr_un sun = { .sun_family = AF_UNIX };
		if (strlen(addr + 5) >= sizeof sun.sun_path) {
			snprintf(pp->err, sizeof pp->err, "%s: socket path too long", addr);
			return NA_EINVAL;
		}
		strcpy(sun.sun_path, addr + 5);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0 || connect_fd(fd, (struct sockaddr *)&sun, sizeof sun, connect_timeout_ms)) {
			snprintf(pp->err, sizeof pp->err, "cannot connect to %s: %s", addr, strerror(errno));
			if (fd >= 0)
				close(fd);
			return NA_ECONN;
		}
	} else {
		char host[256];
		const char *port;
		if (addr[0] == '[') {
			const char *e = strchr(addr, ']');
			if (!e || e[1] != ':' || (size_t)(e - addr - 1) >= sizeof host) {
				snprintf(pp->err, sizeof pp->err, "bad address \"%s\" (expected [v6addr]:port)", addr);
				return NA_EINVAL;
			}
			memcpy(host, addr + 1, (size_t)(e - addr - 1));
			host[e - addr - 1] = '\0';
			port = e + 2;
		} else {
			const char *c = strrchr(addr, ':');
			if (!c || (size_t)(c - addr) >= sizeof host || c == addr) {
				snprintf(pp->err, sizeof pp->err, "bad address \"%s\" (expected host:port or unix:/path)", addr);
				return NA_EINVAL;
			}
			memcpy(host, addr, (size_t)(c - addr));
			host[c - addr] = '\0';
			port = c + 1;
		}
		struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC }, *res, *ai;
		int g = getaddrinfo(host, port, &hints, &res);
		if (g) {
			snprintf(pp->err, sizeof pp->err, "cannot resolve %s: %s", addr, gai_strerror(g));
			return NA_ECONN;
		}
		int last = 0;
		for (ai = res; ai; ai = ai->ai_next) {
			fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
			if (fd < 0)
				continue;
			if (!connect_fd(fd, ai->ai_addr, ai->ai_addrlen, connect_timeout_ms))
				break;
			last = errno;
			close(fd);
			fd = -1;
		}
		freeaddrinfo(res);
		if (fd < 0) {
			snprintf(pp->err, sizeof pp->err, "cannot connect to %s: %s", addr,
				 strerror(last ? last : ECONNREFUSED));
			return NA_ECONN;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		if (use_tls) {
			na_tls_ctx *x;
			char m[1024];
			if (na_tls_ctx_client(tls ? tls->tls_ca_file : NULL, tls ? tls->tls_cert_file : NULL,
					      tls ? tls->tls_key_file : NULL, &x, m, sizeof m)) {
				snprintf(pp->err, sizeof pp->err, "TLS: %.500s", m);
				close(fd);
				return NA_ETLS;
			}
			const char *name = tls && tls->tls_server_name && *tls->tls_server_name
						   ? tls->tls_server_name
						   : host;
			int trc = na_tls_new(x, name, &pp->tls);
			na_tls_ctx_free(x);
			if (trc) {
				snprintf(pp->err, sizeof pp->err, "TLS: cannot start a session for \"%s\"",
					 name);
				close(fd);
				return NA_ETLS;
			}
		}
	}
	int rc = na_proto_new(NA_MAX_RESPONSE_BYTES, &pp->p);
	if (rc) {
		close(fd);
		na_tls_free(pp->tls);
		pp->tls = NULL;
		snprintf(pp->err, sizeof pp->err, "%s", na_strerror(rc));
		return rc;
	}
	pp->fd = fd;
	const char *tok = getenv("NEWSARCH_TOKEN");
	if (tok && *tok) {
		/* queued first, answered first: the batches behind it are authorised */
		size_t tl = strlen(tok);
		msgpack_sbuffer sb;
		msgpack_packer pk;
		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		msgpack_pack_array(&pk, 1);
		msgpack_pack_str_with_body(&pk, tok, tl);
		rc = na_proto_call(pp->p, "auth", sb.data, sb.size, auth_done, pp, NULL);
		msgpack_sbuffer_destroy(&sb);
		if (rc) {
			snprintf(pp->err, sizeof pp->err, "%s", na_strerror(rc));
			return rc;
		}
	}
	return 0;
}

static int lost(na_pipe *pp, int code, const char *why)
{
	snprintf(pp->err, sizeof pp->err, "%s", why);
	na_proto_fail(pp->p, code, why);
	return code;
}

static int tls_lost(na_pipe *pp, int rc)
{
	char m[400];
	if (rc == NA_TLS_EOF)
		return lost(pp, NA_ECONN, "the server closed the connection");
	snprintf(m, sizeof m, "TLS: %s", rc == NA_TLS_NOMEM ? "out of memory" : na_tls_errmsg(pp->tls));
	return lost(pp, NA_ETLS, m);
}

/* TLS: moves the core's output into the engine once the handshake is done;
 * then points out/olen at the ciphertext to send. */
static int tls_out(na_pipe *pp, const uint8_t **out, size_t *olen)
{
	na_proto_output(pp->p, out, olen);
	if (*olen && na_tls_handshake_done(pp->tls)) {
		int rc = na_tls_write(pp->tls, *out, *olen);
		if (rc)
			return tls_lost(pp, rc);
		na_proto_consume(pp->p, *olen);
	}
	na_tls_output(pp->tls, out, olen);
	return 0;
}

/* TLS: r bytes of ciphertext arrived; decrypt them into the core. */
static int tls_in(na_pipe *pp, const uint8_t *buf, size_t r)
{
	uint8_t plain[1 << 14];
	if (na_tls_feed(pp->tls, buf, r))
		return lost(pp, NA_ENOMEM, "out of memory");
	for (;;) {
		size_t got;
		int rc = na_tls_read(pp->tls, plain, sizeof plain, &got);
		if (rc) {
			const uint8_t *o;
			size_t on;
			na_tls_output(pp->tls, &o, &on); /* the alert, best effort */
			if (on && send(pp->fd, o, on, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
				on = 0;
			return tls_lost(pp, rc);
		}
		if (got == 0)
			return 0;
		rc = na_proto_feed(pp->p, plain, got);
		if (rc) {
			snprintf(pp->err, sizeof pp->err, "%s", na_proto_errmsg(pp->p));
			return rc;
		}
	}
}

int na_pipe_pump(na_pipe *pp, int timeout_ms)
{
	int dead = na_proto_dead(pp->p);
	if (dead)
		return dead;
	const uint8_t *out;
	size_t olen;
	if (pp->tls) {
		int rc = tls_out(pp, &out, &olen);
		if (rc)
			return rc;
	} else {
		na_proto_output(pp->p, &out, &olen);
	}
	struct pollfd pfd = { .fd = pp->fd, .events = POLLIN | (olen ? POLLOUT : 0) };
	int n = poll(&pfd, 1, timeout_ms);
	if (n < 0) {
		if (errno == EINTR)
			return 0;
		return lost(pp, NA_ECONN, strerror(errno));
	}
	if (n == 0)
		return 0;
	if (pfd.revents & POLLOUT) {
		if (!pp->tls)
			na_proto_output(pp->p, &out, &olen);
		ssize_t w = send(pp->fd, out, olen, MSG_NOSIGNAL);
		if (w < 0 && errno != EAGAIN && errno != EINTR) {
			char m[300];
			snprintf(m, sizeof m, "connection lost while sending: %s", strerror(errno));
			return lost(pp, NA_ECONN, m);
		}
		if (w > 0 && pp->tls)
			na_tls_consume(pp->tls, (size_t)w);
		else if (w > 0)
			na_proto_consume(pp->p, (size_t)w);
	}
	if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
		uint8_t buf[1 << 16];
		for (int i = 0; i < 64; i++) {
			ssize_t r = recv(pp->fd, buf, sizeof buf, 0);
			if (r > 0) {
				int rc = pp->tls ? tls_in(pp, buf, (size_t)r)
						 : na_proto_feed(pp->p, buf, (size_t)r);
				if (rc) {
					snprintf(pp->err, sizeof pp->err, "%s", na_proto_errmsg(pp->p));
					return rc;
				}
				if ((size_t)r < sizeof buf)
					break;
				continue;
			}
			if (r == 0)
				return lost(pp, NA_ECONN, "the server closed the connection");
			if (errno == EAGAIN || errno == EINTR)
				break;
			char m[300];
			snprintf(m, sizeof m, "connection lost: %s", strerror(errno));
			return lost(pp, NA_ECONN, m);
		}
	}
	return 0;
}

int na_pipe_wait_below(na_pipe *pp, size_t max_pending)
{
	int64_t last = now_ms();
	size_t before = na_proto_pending(pp->p);
	while (na_proto_pending(pp->p) >= max_pending || max_pending == 0) {
		if (max_pending == 0 && na_proto_pending(pp->p) == 0)
			break;
		int rc = na_pipe_pump(pp, 1000);
		if (rc)
			return rc;
		size_t now = na_proto_pending(pp->p);
		if (now != before) {
			before = now;
			last = now_ms();
		} else if (pp->io_timeout_ms > 0 && now_ms() - last > pp->io_timeout_ms) {
			char m[128];
			snprintf(m, sizeof m, "no reply from the server for %d s", pp->io_timeout_ms / 1000);
			return lost(pp, NA_ETIMEDOUT, m);
		}
	}
	return 0;
}

void na_pipe_close(na_pipe *pp)
{
	if (pp->p)
		na_proto_free(pp->p);
	pp->p = NULL;
	na_tls_free(pp->tls);
	pp->tls = NULL;
	if (pp->fd >= 0)
		close(pp->fd);
	pp->fd = -1;
}
