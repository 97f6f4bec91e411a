/*
 * proxy.c - test support: a TCP proxy with a cut switch (see proxy.h).
 *
 * One thread polls the listening socket, a wake-up pipe and both ends of
 * every connection pair. Each direction has a fixed buffer; a side is
 * polled for input only while its buffer has room (and, from the server,
 * while the byte budget lasts), so memory is bounded. Commands from the
 * test set fields under the mutex and write a byte to the pipe. The thread
 * also ends by itself after PROXY_MAX_MS, so it can never outlive a test
 * run by much.
 */
#include "proxy.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_PAIRS 16
#define BUF_BYTES 65536
#define PROXY_MAX_MS (10 * 60 * 1000)

typedef struct dir {
	char buf[BUF_BYTES];
	size_t len;
} dir;

typedef struct pair {
	int cfd, ufd;     /* client side, server side; -1 when unused */
	dir c2u, u2c;
	bool c_eof, u_eof;
} pair;

struct na_proxy {
	pthread_t thread;
	pthread_mutex_t lock;
	int lfd, port, upstream;
	int wake[2];
	/* under lock */
	bool stop, cut, cut_now;
	long long budget;     /* -1: unlimited */
	long long forwarded;
	int connections;
	/* thread only */
	pair pairs[MAX_PAIRS];
};

static long long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void close_pair(pair *pr)
{
	if (pr->cfd >= 0)
		close(pr->cfd);
	if (pr->ufd >= 0)
		close(pr->ufd);
	pr->cfd = pr->ufd = -1;
	pr->c2u.len = pr->u2c.len = 0;
	pr->c_eof = pr->u_eof = false;
}

static int connect_upstream(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
		close(fd);
		return -1;
	}
	set_nonblock(fd);
	return fd;
}

static void on_accept(na_proxy *p, bool refuse)
{
	int fd = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	if (refuse) {
		close(fd);
		return;
	}
	pair *slot = NULL;
	for (int i = 0; i < MAX_PAIRS && !slot; i++)
		if (p->pairs[i].cfd < 0)
			slot = &p->pairs[i];
	int ufd = slot ? connect_upstream(p->upstream) : -1;
	if (ufd < 0) {
		close(fd); /* no room or server down: the client sees a hang-up */
		return;
	}
	set_nonblock(fd);
	slot->cfd = fd;
	slot->ufd = ufd;
	pthread_mutex_lock(&p->lock);
	p->connections++;
	pthread_mutex_unlock(&p->lock);
}

/* Moves bytes from fd into d (at most max); false when the side is done. */
static bool fill(int fd, dir *d, size_t max, bool *eof)
{
	size_t room = BUF_BYTES - d->len;
	if (room > max)
		room = max;
	if (room == 0)
		return true;
	ssize_t n = read(fd, d->buf + d->len, room);
	if (n == 0) {
		*eof = true;
		return true;
	}
	if (n < 0)
		return errno == EAGAIN || errno == EINTR;
	d->len += (size_t)n;
	return true;
}

static ssize_t drain(int fd, dir *d)
{
	if (d->len == 0)
		return 0;
	ssize_t n = send(fd, d->buf, d->len, MSG_NOSIGNAL);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	memmove(d->buf, d->buf + n, d->len - (size_t)n);
	d->len -= (size_t)n;
	return n;
}

static void *proxy_main(void *arg)
{
	na_proxy *p = arg;
	long long end = mono_ms() + PROXY_MAX_MS;
	struct pollfd fds[2 + 2 * MAX_PAIRS];
	int idx[2 + 2 * MAX_PAIRS];
	while (mono_ms() < end) {
		pthread_mutex_lock(&p->lock);
		bool stop = p->stop, cut = p->cut, cut_now = p->cut_now;
		long long budget = p->budget;
		p->cut_now = false;
		pthread_mutex_unlock(&p->lock);
		if (stop)
			break;
		if (cut_now)
			for (int i = 0; i < MAX_PAIRS; i++)
				close_pair(&p->pairs[i]);
		int n = 0;
		fds[n++] = (struct pollfd){ .fd = p->wake[0], .events = POLLIN };
		fds[n++] = (struct pollfd){ .fd = p->lfd, .events = POLLIN };
		for (int i = 0; i < MAX_PAIRS; i++) {
			pair *pr = &p->pairs[i];
			if (pr->cfd < 0)
				continue;
			short ce = 0, ue = 0;
			if (!pr->c_eof && pr->c2u.len < BUF_BYTES)
				ce |= POLLIN;
			if (pr->u2c.len)
				ce |= POLLOUT;
			if (!pr->u_eof && pr->u2c.len < BUF_BYTES && budget != 0)
				ue |= POLLIN;
			if (pr->c2u.len)
				ue |= POLLOUT;
			idx[n] = i;
			fds[n++] = (struct pollfd){ .fd = pr->cfd, .events = ce };
			idx[n] = i;
			fds[n++] = (struct pollfd){ .fd = pr->ufd, .events = ue };
		}
		int pr_n = poll(fds, (nfds_t)n, 100);
		if (pr_n < 0 && errno != EINTR)
			break;
		if (pr_n <= 0)
			continue;
		if (fds[0].revents) {
			char b[64];
			if (read(p->wake[0], b, sizeof b) < 0) {
				/* nothing to do: the flags are read at the top */
			}
		}
		if (fds[1].revents & POLLIN)
			on_accept(p, cut);
		for (int k = 2; k < n; k += 2) {
			pair *pr = &p->pairs[idx[k]];
			if (pr->cfd < 0)
				continue;
			short cr = fds[k].revents, ur = fds[k + 1].revents;
			bool ok = true;
			if (cr & (POLLIN | POLLHUP | POLLERR))
				ok = fill(pr->cfd, &pr->c2u, BUF_BYTES, &pr->c_eof);
			if (ok && (ur & (POLLIN | POLLHUP | POLLERR)) && budget != 0) {
				size_t max = budget < 0 ? BUF_BYTES : (size_t)budget;
				size_t before = pr->u2c.len;
				ok = fill(pr->ufd, &pr->u2c, max, &pr->u_eof);
				long long got = (long long)(pr->u2c.len - before);
				pthread_mutex_lock(&p->lock);
				p->forwarded += got;
				if (p->budget > 0)
					p->budget = p->budget > got ? p->budget - got : 0;
				budget = p->budget;
				pthread_mutex_unlock(&p->lock);
			}
			if (ok && drain(pr->ufd, &pr->c2u) < 0)
				ok = false;
			if (ok && drain(pr->cfd, &pr->u2c) < 0)
				ok = false;
			/* one side hung up and everything it sent is delivered */
			if ((pr->c_eof && pr->c2u.len == 0) || (pr->u_eof && pr->u2c.len == 0))
				ok = false;
			if (!ok)
				close_pair(pr);
		}
	}
	for (int i = 0; i < MAX_PAIRS; i++)
		close_pair(&p->pairs[i]);
	return NULL;
}

static void wake(na_proxy *p)
{
	char c = 1;
	if (write(p->wake[1], &c, 1) < 0) {
		/* the pipe is full: the thread is awake anyway */
	}
}

na_proxy *na_proxy_start(int upstream_port)
{
	na_proxy *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->upstream = upstream_port;
	p->budget = -1;
	for (int i = 0; i < MAX_PAIRS; i++)
		p->pairs[i].cfd = p->pairs[i].ufd = -1;
	p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;
	int one = 1;
	if (p->lfd < 0 || setsockopt(p->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
	    bind(p->lfd, (struct sockaddr *)&a, sizeof a) || listen(p->lfd, 16) ||
	    getsockname(p->lfd, (struct sockaddr *)&a, &len) || pipe2(p->wake, O_CLOEXEC | O_NONBLOCK)) {
		if (p->lfd >= 0)
			close(p->lfd);
		free(p);
		return NULL;
	}
	p->port = ntohs(a.sin_port);
	pthread_mutex_init(&p->lock, NULL);
	if (pthread_create(&p->thread, NULL, proxy_main, p) != 0) {
		close(p->lfd);
		close(p->wake[0]);
		close(p->wake[1]);
		pthread_mutex_destroy(&p->lock);
		free(p);
		return NULL;
	}
	return p;
}

int na_proxy_port(const na_proxy *p)
{
	return p->port;
}

void na_proxy_cut(na_proxy *p)
{
	pthread_mutex_lock(&p->lock);
	p->cut = true;
	p->cut_now = true;
	pthread_mutex_unlock(&p->lock);
	wake(p);
}

void na_proxy_resume(na_proxy *p)
{
	pthread_mutex_lock(&p->lock);
	p->cut = false;
	pthread_mutex_unlock(&p->lock);
	wake(p);
}

void na_proxy_set_budget(na_proxy *p, long long bytes)
{
	pthread_mutex_lock(&p->lock);
	p->budget = bytes < 0 ? -1 : bytes;
	pthread_mutex_unlock(&p->lock);
	wake(p);
}

long long na_proxy_forwarded(na_proxy *p)
{
	pthread_mutex_lock(&p->lock);
	long long n = p->forwarded;
	pthread_mutex_unlock(&p->lock);
	return n;
}

int na_proxy_connections(na_proxy *p)
{
	pthread_mutex_lock(&p->lock);
	int n = p->connections;
	pthread_mutex_unlock(&p->lock);
	return n;
}

void na_proxy_stop(na_proxy *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_mutex_unlock(&p->lock);
	wake(p);
	pthread_join(p->thread, NULL);
	close(p->lfd);
	close(p->wake[0]);
	close(p->wake[1]);
	pthread_mutex_destroy(&p->lock);
	free(p);
}
