/*
 * daemon.c - test support: start, stop and kill a real newsarchd.
 *
 * Readiness is the sd_notify protocol: the test binds a datagram socket,
 * passes it as NOTIFY_SOCKET and waits (poll, bounded) for READY=1, so no
 * test sleeps to wait for the daemon.
 */
#include "daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>

int na_test_free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;
	int port = -1;
	if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

long na_test_rss_kb(pid_t pid)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	long kb = -1;
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "VmRSS: %ld", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static void dump_log(const na_test_daemon *d)
{
	FILE *f = fopen(d->log, "r");
	if (!f)
		return;
	char line[1024];
	fprintf(stderr, "---- daemon log %s ----\n", d->log);
	while (fgets(line, sizeof line, f))
		fputs(line, stderr);
	fclose(f);
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static int launch(na_test_daemon *d)
{
	const char *bin = getenv("NEWSARCHD");
	if (!bin)
		bin = "build/newsarchd";
	char nsock[320];
	snprintf(nsock, sizeof nsock, "%s/notify.sock", d->dir);
	unlink(nsock);
	int nfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	if (nfd < 0 || strlen(nsock) >= sizeof un.sun_path)
		return -1;
	memcpy(un.sun_path, nsock, strlen(nsock) + 1);
	if (bind(nfd, (struct sockaddr *)&un, sizeof un) != 0) {
		close(nfd);
		return -1;
	}
	char listen[64];
	snprintf(listen, sizeof listen, "127.0.0.1:%d", d->port);
	const char *argv[48];
	int n = 0;
	argv[n++] = bin;
	argv[n++] = "--data";
	argv[n++] = d->data;
	argv[n++] = "--listen";
	argv[n++] = listen;
	argv[n++] = "--socket";
	argv[n++] = d->sock;
	for (int i = 0; d->extra[i] && n < 46; i++)
		argv[n++] = d->extra[i];
	argv[n] = NULL;

	pid_t pid = fork();
	if (pid < 0) {
		close(nfd);
		return -1;
	}
	if (pid == 0) {
		int lfd = open(d->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (lfd >= 0) {
			dup2(lfd, 2);
			close(lfd);
		}
		setenv("NOTIFY_SOCKET", nsock, 1);
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	d->pid = pid;
	long long deadline = now_ms() + 30000;
	int rc = -1;
	while (now_ms() < deadline) {
		struct pollfd p = { .fd = nfd, .events = POLLIN };
		int pr = poll(&p, 1, 200);
		if (pr > 0) {
			char buf[4096];
			ssize_t got = recv(nfd, buf, sizeof buf - 1, 0);
			if (got > 0) {
				buf[got] = 0;
				if (strstr(buf, "READY=1")) {
					rc = 0;
					break;
				}
			}
		}
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			d->pid = 0;
			break;
		}
	}
	close(nfd);
	if (rc != 0) {
		dump_log(d);
		if (d->pid)
			na_test_daemon_kill(d);
	}
	return rc;
}

int na_test_daemon_start(na_test_daemon *d)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(d->dir, sizeof d->dir, "%s/newsarch-test.XXXXXX", tmp ? tmp : "/tmp");
	if (!mkdtemp(d->dir))
		return -1;
	snprintf(d->data, sizeof d->data, "%s/data", d->dir);
	snprintf(d->sock, sizeof d->sock, "%s/newsarchd.sock", d->dir);
	snprintf(d->log, sizeof d->log, "%s/daemon.log", d->dir);
	snprintf(d->uaddr, sizeof d->uaddr, "unix:%s", d->sock);
	d->port = na_test_free_port();
	if (d->port < 0)
		return -1;
	snprintf(d->addr, sizeof d->addr, "127.0.0.1:%d", d->port);
	d->pid = 0;
	return launch(d);
}

int na_test_daemon_restart(na_test_daemon *d)
{
	if (d->pid)
		na_test_daemon_stop(d);
	return launch(d);
}

int na_test_daemon_stop(na_test_daemon *d)
{
	if (!d->pid)
		return -1;
	int st = -1;
	kill(d->pid, SIGTERM);
	while (waitpid(d->pid, &st, 0) < 0 && errno == EINTR)
		;
	d->pid = 0;
	return st;
}

void na_test_daemon_kill(na_test_daemon *d)
{
	if (!d->pid)
		return;
	kill(d->pid, SIGKILL);
	while (waitpid(d->pid, NULL, 0) < 0 && errno == EINTR)
		;
	d->pid = 0;
}

int na_test_daemon_cleanup(na_test_daemon *d)
{
	int rc = 0;
	if (d->pid) {
		int st = na_test_daemon_stop(d);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fprintf(stderr, "newsarchd did not exit cleanly (status %d)\n", st);
			dump_log(d);
			rc = -1;
		}
	}
	const char *keep = getenv("NA_TEST_KEEP"); /* debugging: keep data and log */
	if (keep && *keep)
		fprintf(stderr, "kept %s\n", d->dir);
	else if (d->dir[0] && strncmp(d->dir, "/", 1) == 0 && strstr(d->dir, "newsarch-test.")) {
		char cmd[600];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", d->dir);
	}
	d->dir[0] = 0;
	return rc;
}

int na_test_connect_tcp(const na_test_daemon *d)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)d->port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int na_test_connect_unix(const na_test_daemon *d)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	if (fd < 0 || strlen(d->sock) >= sizeof un.sun_path) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	memcpy(un.sun_path, d->sock, strlen(d->sock) + 1);
	if (connect(fd, (struct sockaddr *)&un, sizeof un) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int na_test_damage_article(const char *data)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_cursor *cur;
	MDB_val k, v;
	char junk[64];
	memset(junk, 0xee, sizeof junk);
	MDB_val jv = { sizeof junk, junk };
	if (mdb_env_create(&env))
		return -1;
	int rc = mdb_env_set_maxdbs(env, 16);
	if (!rc)
		rc = mdb_env_set_mapsize(env, 1u << 30);
	if (!rc)
		rc = mdb_env_open(env, data, 0, 0640);
	if (!rc && !(rc = mdb_txn_begin(env, NULL, 0, &txn))) {
		if (!(rc = mdb_dbi_open(txn, "articles", 0, &dbi)) &&
		    !(rc = mdb_cursor_open(txn, dbi, &cur))) {
			if (!(rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)))
				rc = mdb_cursor_put(cur, &k, &jv, MDB_CURRENT);
			mdb_cursor_close(cur);
		}
		rc = rc ? (mdb_txn_abort(txn), rc) : mdb_txn_commit(txn);
	}
	mdb_env_close(env);
	return rc ? -1 : 0;
}

int na_test_mark_unsynced_earlier_boot(const char *data)
{
	char mark[400];
	snprintf(mark, sizeof mark, "%s/unsynced", data);
	FILE *f = fopen(mark, "w");
	if (!f)
		return -1;
	fputs("00000000-0000-0000-0000-000000000000", f);
	return fclose(f) ? -1 : 0;
}
