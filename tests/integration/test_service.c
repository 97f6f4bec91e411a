/*
 * test_service.c - newsarchd as an operated service: the sd_notify protocol
 * (READY, STATUS, WATCHDOG, STOPPING, reload), the systemd unit, `make
 * install` / `make uninstall` with a client built against the installed
 * library, a hot backup under sustained ingest, corruption found by verify
 * (offline and online), the Prometheus endpoint, and SIGHUP reload.
 *
 * The daemons here are started by this file's own launcher (not
 * tests/support/daemon.c) because several tests need the notify socket for
 * the daemon's whole life, another binary, or another data directory. Every
 * wait is a poll on a socket, pipe or pidfd with a deadline; every child is
 * stopped by its PID; every temporary directory is removed in teardown.
 *
 * Environment (tests/run.sh): NEWSARCHD, NEWSARCH, NEWSARCH_BUILD (absolute
 * build directory), NEWSARCH_SRC (repository root).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <lmdb.h>

#include "daemon.h"
#include "testrpc.h"

extern char **environ;

/* ---- small utilities ------------------------------------------------ */

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static int left_ms(long long deadline)
{
	long long l = deadline - now_ms();
	return l < 0 ? 0 : l > 1000000 ? 1000000 : (int)l;
}

static const char *daemon_bin(void)
{
	const char *b = getenv("NEWSARCHD");
	return b && *b ? b : "build/newsarchd";
}

static const char *cli_bin(void)
{
	const char *b = getenv("NEWSARCH");
	return b && *b ? b : "build/newsarch";
}

static const char *src_dir(void)
{
	const char *s = getenv("NEWSARCH_SRC");
	return s && *s ? s : ".";
}

static int connect_port(int port)
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
	return fd;
}

/* Every temporary directory this file makes is "$TMPDIR/newsarch-svc.XXXXXX". */
static int make_tmpdir(char *out, size_t n)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(out, n, "%s/newsarch-svc.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	return mkdtemp(out) ? 0 : -1;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

static void rm_tree(char *dir)
{
	if (dir[0] == '/' && strstr(dir, "/newsarch-svc."))
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	dir[0] = 0;
}

static int write_file(const char *path, const char *text)
{
	char tmp[600];
	snprintf(tmp, sizeof tmp, "%s.new", path);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return -1;
	fputs(text, f);
	if (fclose(f) != 0)
		return -1;
	return rename(tmp, path);
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	char *buf = NULL;
	size_t cap = 0, len = 0;
	for (;;) {
		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 8192;
			char *nb = realloc(buf, cap);
			if (!nb)
				break;
			buf = nb;
		}
		size_t r = fread(buf + len, 1, cap - len - 1, f);
		len += r;
		if (r == 0)
			break;
	}
	fclose(f);
	if (buf)
		buf[len] = 0;
	return buf;
}

/* A copy of the environment without the names in `drop` and those `set`
 * assigns, plus `set` ("NAME=VALUE"; a bare "NAME" only removes). */
static char **make_env(const char *const *set, const char *const *drop)
{
	size_t n = 0, ns = 0;
	while (environ[n])
		n++;
	while (set && set[ns])
		ns++;
	char **e = calloc(n + ns + 1, sizeof *e);
	if (!e)
		return NULL;
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		const char *v = environ[i];
		size_t nl = strcspn(v, "=");
		bool skip = false;
		for (size_t j = 0; drop && drop[j] && !skip; j++)
			skip = strlen(drop[j]) == nl && strncmp(v, drop[j], nl) == 0;
		for (size_t j = 0; j < ns && !skip; j++)
			skip = strcspn(set[j], "=") == nl && strncmp(v, set[j], nl) == 0;
		if (!skip)
			e[k++] = (char *)v;
	}
	for (size_t j = 0; j < ns; j++)
		if (strchr(set[j], '='))
			e[k++] = (char *)set[j];
	e[k] = NULL;
	return e;
}

/* Waits (bounded, on a pidfd) for a child to exit. Returns its wait status,
 * or -1 on timeout (the child is then still running). */
static int wait_child(pid_t pid, int timeout_ms)
{
	int st;
	long long deadline = now_ms() + timeout_ms;
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			break;
		if (r < 0 && errno != EINTR) {
			st = -1;
			break;
		}
		if (now_ms() >= deadline) {
			st = -1;
			break;
		}
		if (pfd >= 0) {
			struct pollfd p = { .fd = pfd, .events = POLLIN };
			poll(&p, 1, left_ms(deadline));
		} else {
			poll(NULL, 0, 10); /* no pidfd (old kernel): a short bounded poll */
		}
	}
	if (pfd >= 0)
		close(pfd);
	return st;
}

/* ---- running commands ---------------------------------------------- */

typedef struct cmd_out {
	char *text; /* stdout and stderr together, NUL-ended */
	size_t len;
} cmd_out;

static void cmd_out_free(cmd_out *o)
{
	free(o->text);
	o->text = NULL;
	o->len = 0;
}

/* Runs argv (execvp) with the environment changed by `set`, reading its
 * stdout and stderr until it exits; kills it after timeout_ms. Returns the
 * exit code, or -1 when it did not exit normally (or timed out). */
static int run_cmd(const char *const *argv, const char *const *set, cmd_out *o, int timeout_ms)
{
	static const char *const drop[] = { "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "NOTIFY_SOCKET",
					    "WATCHDOG_USEC", "WATCHDOG_PID", NULL };
	o->text = calloc(1, 1);
	o->len = 0;
	char **env = make_env(set, drop);
	int pfd[2];
	if (!env || !o->text || pipe2(pfd, O_CLOEXEC) != 0) {
		free(env);
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		free(env);
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (pid == 0) {
		int nul = open("/dev/null", O_RDONLY);
		if (nul >= 0)
			dup2(nul, 0);
		dup2(pfd[1], 1);
		dup2(pfd[1], 2);
		environ = env;
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	free(env);
	close(pfd[1]);
	long long deadline = now_ms() + timeout_ms;
	bool timed_out = false;
	for (;;) {
		struct pollfd p = { .fd = pfd[0], .events = POLLIN };
		int pr = poll(&p, 1, left_ms(deadline));
		if (pr == 0) {
			timed_out = true;
			break;
		}
		if (pr < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		char buf[8192];
		ssize_t r = read(pfd[0], buf, sizeof buf);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		char *nt = realloc(o->text, o->len + (size_t)r + 1);
		if (!nt)
			break;
		o->text = nt;
		memcpy(o->text + o->len, buf, (size_t)r);
		o->len += (size_t)r;
		o->text[o->len] = 0;
	}
	close(pfd[0]);
	int st = timed_out ? -1 : wait_child(pid, left_ms(deadline) + 1000);
	if (st == -1) {
		fprintf(stderr, "%s: timed out after %d ms; killed\n", argv[0], timeout_ms);
		kill(pid, SIGKILL);
		wait_child(pid, 10000);
		return -1;
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* N from the "N articles checked, M problem(s)" summary, or -1 */
static long long checked_count(const char *text)
{
	const char *p = strstr(text, " articles checked, ");
	if (!p)
		return -1;
	while (p > text && isdigit((unsigned char)p[-1]))
		p--;
	return isdigit((unsigned char)*p) ? strtoll(p, NULL, 10) : -1;
}

static void show_cmd(const char *what, int rc, const cmd_out *o)
{
	fprintf(stderr, "---- %s: exit %d ----\n%s\n----\n", what, rc, o->text ? o->text : "");
}

/* ---- daemons with their own notify socket ----------------------------- */

#define SVC_MSGS 64

typedef struct svc {
	pid_t pid;               /* 0 when not running */
	int status;              /* wait status once reaped */
	int nfd;                 /* the NOTIFY_SOCKET, bound for the svc's life */
	int port;
	char dir[256];           /* temp dir (removed in teardown) */
	char data[800];          /* --data; dir/data unless changed before launch */
	char sock[320];
	char nsock[320];
	char log[320];           /* the daemon's stderr and stdout */
	char addr[64];           /* 127.0.0.1:PORT */
	char msgs[SVC_MSGS][512];/* notify datagrams other than WATCHDOG=1, in order */
	int nmsgs;
	unsigned watchdogs;      /* WATCHDOG=1 datagrams seen */
} svc;

static int svc_init(svc *s)
{
	memset(s, 0, sizeof *s);
	s->nfd = -1;
	if (make_tmpdir(s->dir, sizeof s->dir))
		return -1;
	snprintf(s->data, sizeof s->data, "%s/data", s->dir);
	snprintf(s->sock, sizeof s->sock, "%s/newsarchd.sock", s->dir);
	snprintf(s->nsock, sizeof s->nsock, "%s/notify.sock", s->dir);
	snprintf(s->log, sizeof s->log, "%s/daemon.log", s->dir);
	s->port = na_test_free_port();
	if (s->port < 0)
		return -1;
	snprintf(s->addr, sizeof s->addr, "127.0.0.1:%d", s->port);
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	if (strlen(s->nsock) >= sizeof un.sun_path)
		return -1;
	memcpy(un.sun_path, s->nsock, strlen(s->nsock) + 1);
	s->nfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s->nfd < 0 || bind(s->nfd, (struct sockaddr *)&un, sizeof un) != 0)
		return -1;
	return 0;
}

static void svc_dump_log(const svc *s)
{
	char *t = read_file(s->log);
	fprintf(stderr, "---- daemon log %s ----\n%s----\n", s->log, t ? t : "(none)\n");
	free(t);
}

/* Reads notify datagrams until one after index `from` contains `needle`
 * (and not `exclude`), for at most timeout_ms. Returns its index (or
 * SVC_MSGS for WATCHDOG=1, which is only counted), -1 on timeout or when the
 * daemon exited first. Datagrams already read are looked at first. */
static int svc_await(svc *s, int from, const char *needle, const char *exclude, int timeout_ms)
{
	bool wd = strcmp(needle, "WATCHDOG=1") == 0;
	if (wd && s->watchdogs > 0)
		return SVC_MSGS;
	for (int i = from; i < s->nmsgs; i++)
		if (strstr(s->msgs[i], needle) && !(exclude && strstr(s->msgs[i], exclude)))
			return i;
	long long deadline = now_ms() + timeout_ms;
	for (;;) {
		struct pollfd p = { .fd = s->nfd, .events = POLLIN };
		int wait = left_ms(deadline);
		int pr = poll(&p, 1, wait > 100 ? 100 : wait);
		if (pr > 0) {
			char buf[512];
			ssize_t got = recv(s->nfd, buf, sizeof buf - 1, 0);
			if (got <= 0)
				continue;
			buf[got] = 0;
			if (strcmp(buf, "WATCHDOG=1") == 0) {
				s->watchdogs++;
				if (wd)
					return SVC_MSGS;
				continue;
			}
			int idx = s->nmsgs < SVC_MSGS ? s->nmsgs++ : SVC_MSGS - 1;
			memcpy(s->msgs[idx], buf, (size_t)got + 1);
			if (idx >= from && strstr(buf, needle) && !(exclude && strstr(buf, exclude)))
				return idx;
			continue;
		}
		if (s->pid) {
			int st;
			if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
				s->pid = 0;
				s->status = st;
				continue; /* drain what it sent before exiting */
			}
		} else if (pr == 0) {
			return -1; /* exited, nothing more queued */
		}
		if (now_ms() >= deadline)
			return -1;
	}
}

/* Starts `bin` on s->data with NOTIFY_SOCKET set (plus `set`, see make_env),
 * `--data --listen --socket` and `extra`; with watchdog_pid, the child sets
 * WATCHDOG_PID to its own PID before exec. Waits for READY=1 (30 s). */
static int svc_launch(svc *s, const char *bin, const char *const *extra, const char *const *set,
		      bool watchdog_pid)
{
	static const char *const drop[] = { "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID",
					    "LISTEN_FDS", "LISTEN_PID", NULL };
	const char *vars[8];
	int nv = 0;
	char notify[400], wdpid[40] = "WATCHDOG_PID=";
	snprintf(notify, sizeof notify, "NOTIFY_SOCKET=%s", s->nsock);
	vars[nv++] = notify;
	if (watchdog_pid)
		vars[nv++] = wdpid; /* digits filled in by the child */
	for (int i = 0; set && set[i] && nv < 7; i++)
		vars[nv++] = set[i];
	vars[nv] = NULL;
	char **env = make_env(vars, drop);
	const char *argv[48];
	int n = 0;
	argv[n++] = bin;
	argv[n++] = "--data";
	argv[n++] = s->data;
	argv[n++] = "--listen";
	argv[n++] = s->addr;
	argv[n++] = "--socket";
	argv[n++] = s->sock;
	for (int i = 0; extra && extra[i] && n < 46; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	int lfd = open(s->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (!env || lfd < 0) {
		free(env);
		if (lfd >= 0)
			close(lfd);
		return -1;
	}
	s->nmsgs = 0;
	s->watchdogs = 0;
	pid_t pid = fork();
	if (pid == 0) {
		if (watchdog_pid) {
			char digits[16];
			int k = 0;
			for (pid_t me = getpid(); me > 0 && k < 15; me /= 10)
				digits[k++] = (char)('0' + me % 10);
			size_t off = strlen("WATCHDOG_PID=");
			while (k > 0)
				wdpid[off++] = digits[--k];
			wdpid[off] = 0;
		}
		int nul = open("/dev/null", O_RDONLY);
		if (nul >= 0)
			dup2(nul, 0);
		dup2(lfd, 1);
		dup2(lfd, 2);
		execve(bin, (char *const *)argv, env);
		_exit(127);
	}
	free(env);
	close(lfd);
	if (pid < 0)
		return -1;
	s->pid = pid;
	s->status = 0;
	if (svc_await(s, 0, "READY=1", NULL, 30000) < 0) {
		fprintf(stderr, "%s did not send READY=1\n", bin);
		svc_dump_log(s);
		if (s->pid) {
			kill(s->pid, SIGKILL);
			wait_child(s->pid, 10000);
			s->pid = 0;
		}
		return -1;
	}
	return 0;
}

static int svc_start(svc *s, const char *const *extra)
{
	return svc_launch(s, daemon_bin(), extra, NULL, false);
}

/* SIGTERM, then wait (bounded) for the exit; returns the wait status, or
 * -1 (after SIGKILL) when it did not exit in time. */
static int svc_stop(svc *s)
{
	if (!s->pid)
		return s->status;
	kill(s->pid, SIGTERM);
	int st = wait_child(s->pid, 30000);
	if (st == -1) {
		fprintf(stderr, "newsarchd %d did not exit after SIGTERM; killing it\n", (int)s->pid);
		kill(s->pid, SIGKILL);
		wait_child(s->pid, 10000);
	}
	s->pid = 0;
	s->status = st;
	return st;
}

/* Stops and requires exit status 0 (under the sanitizers: no leak, no error). */
static void svc_stop_clean(svc *s)
{
	int st = svc_stop(s);
	if (!(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
		svc_dump_log(s);
		fail_msg("newsarchd did not exit cleanly (wait status %d)", st);
	}
}

static void svc_cleanup(svc *s)
{
	if (s->pid) {
		kill(s->pid, SIGKILL);
		wait_child(s->pid, 10000);
		s->pid = 0;
	}
	if (s->nfd >= 0)
		close(s->nfd);
	s->nfd = -1;
	rm_tree(s->dir);
}

/* ---- RPC helpers ----------------------------------------------------- */

typedef struct params {
	msgpack_sbuffer sb;
	msgpack_packer pk;
} params;

static void p_init(params *p)
{
	msgpack_sbuffer_init(&p->sb);
	msgpack_packer_init(&p->pk, &p->sb, msgpack_sbuffer_write);
}

static void p_free(params *p) { msgpack_sbuffer_destroy(&p->sb); }

static void rpc_open(na_trpc *t, const svc *s)
{
	int fd = connect_port(s->port);
	assert_true(fd >= 0);
	na_trpc_init(t, fd);
	t->timeout_ms = 30000;
}

static void err_text(const msgpack_object *err, char *buf, size_t n)
{
	char code[32];
	const msgpack_object *m = na_obj_get(err, "message");
	snprintf(buf, n, "%s: %.*s", na_obj_code(err, code, sizeof code),
		 m && m->type == MSGPACK_OBJECT_STR ? (int)m->via.str.size : 0,
		 m && m->type == MSGPACK_OBJECT_STR ? m->via.str.ptr : "");
}

/* The article each test stores under number i of a series. */
static void article_fields(const char *prefix, unsigned i, char *guid, size_t gn, int64_t *sec,
			   uint32_t *nsec, char *title, size_t tn, char *body, size_t bn)
{
	snprintf(guid, gn, "%s-%07u", prefix, i);
	*sec = 1600000000 + (int64_t)i * 7;
	*nsec = (i % 1000) * 1000;
	snprintf(title, tn, "%s article %u", prefix, i);
	size_t len = 20 + (i * 37) % 300;
	if (len >= bn)
		len = bn - 1;
	for (size_t k = 0; k < len; k++)
		body[k] = (char)('a' + (i + k * 7) % 26);
	body[len] = 0;
}

static void pack_series(msgpack_packer *pk, const char *prefix, unsigned i)
{
	char guid[64], title[96], body[400];
	int64_t sec;
	uint32_t nsec;
	article_fields(prefix, i, guid, sizeof guid, &sec, &nsec, title, sizeof title, body, sizeof body);
	na_pack_article(pk, guid, sec, nsec, title, body);
}

/* put_batch of articles [first, first+n) of a series; 0 when every one was
 * created, else -1 with a message in why. */
static int put_series(na_trpc *t, const char *prefix, unsigned first, unsigned n, char *why,
		      size_t wn)
{
	params p;
	p_init(&p);
	msgpack_pack_array(&p.pk, n);
	for (unsigned i = 0; i < n; i++)
		pack_series(&p.pk, prefix, first + i);
	msgpack_object err, res;
	int rc = na_trpc_call(t, "put_batch", 1, &p.sb, &err, &res);
	p_free(&p);
	if (rc != 1) {
		snprintf(why, wn, "put_batch: no reply (%d)", rc);
		return -1;
	}
	if (err.type != MSGPACK_OBJECT_NIL) {
		err_text(&err, why, wn);
		return -1;
	}
	if (res.type != MSGPACK_OBJECT_ARRAY || res.via.array.size != n) {
		snprintf(why, wn, "put_batch: reply is not an array of %u", n);
		return -1;
	}
	for (unsigned i = 0; i < n; i++)
		if (!na_obj_streq(na_obj_get(&res.via.array.ptr[i], "status"), "created")) {
			snprintf(why, wn, "put_batch: item %u not created", i);
			return -1;
		}
	return 0;
}

/* get guid number i of a series: 1 when the bytes equal what was put, 0 when
 * they differ, -1 on an error reply (message in why). */
static int get_series(na_trpc *t, const char *prefix, unsigned i, char *why, size_t wn)
{
	char guid[64], title[96], body[400];
	int64_t sec;
	uint32_t nsec;
	article_fields(prefix, i, guid, sizeof guid, &sec, &nsec, title, sizeof title, body, sizeof body);
	params want, p;
	p_init(&want);
	na_pack_article(&want.pk, guid, sec, nsec, title, body);
	p_init(&p);
	na_mp_pack_cstr(&p.pk, guid);
	msgpack_object err, res;
	int rc = na_trpc_call(t, "get", 1, &p.sb, &err, &res);
	p_free(&p);
	if (rc != 1) {
		p_free(&want);
		snprintf(why, wn, "get %s: no reply", guid);
		return -1;
	}
	if (err.type != MSGPACK_OBJECT_NIL) {
		p_free(&want);
		char e[300];
		err_text(&err, e, sizeof e);
		snprintf(why, wn, "get %s: %s", guid, e);
		return -1;
	}
	params got;
	p_init(&got);
	msgpack_pack_object(&got.pk, res);
	int same = got.sb.size == want.sb.size && memcmp(got.sb.data, want.sb.data, got.sb.size) == 0;
	if (!same)
		snprintf(why, wn, "get %s: %zu bytes differ from the %zu put", guid, got.sb.size,
			 want.sb.size);
	p_free(&got);
	p_free(&want);
	return same;
}

/* ---- fixtures -------------------------------------------------------- */

static svc SV[2];
static char TMP[2][300];

typedef struct ingest {
	pthread_t th;
	bool started;
	int port;
	atomic_bool stop;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned *acked;       /* series numbers in the order acknowledged */
	size_t nacked, cap;
	unsigned batches;
	char error[300];       /* set by the thread on failure */
} ingest;

static ingest IN;

static void ingest_stop(ingest *w)
{
	if (!w->started)
		return;
	atomic_store(&w->stop, true);
	pthread_join(w->th, NULL);
	w->started = false;
}

static int setup(void **state)
{
	(void)state;
	for (int i = 0; i < 2; i++) {
		memset(&SV[i], 0, sizeof SV[i]);
		SV[i].nfd = -1;
		TMP[i][0] = 0;
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	ingest_stop(&IN);
	free(IN.acked);
	IN.acked = NULL;
	for (int i = 0; i < 2; i++)
		if (SV[i].pid) {
			kill(SV[i].pid, SIGKILL);
			wait_child(SV[i].pid, 10000);
			SV[i].pid = 0;
		}
	for (int i = 0; i < 2; i++)
		svc_cleanup(&SV[i]);
	for (int i = 0; i < 2; i++)
		rm_tree(TMP[i]);
	return 0;
}

/* ---- 1. sd_notify ----------------------------------------------------- */

static void test_sd_notify(void **state)
{
	(void)state;
	svc *s = &SV[0];
	assert_int_equal(svc_init(s), 0);
	static const char *const set[] = { "WATCHDOG_USEC=200000", NULL };
	assert_int_equal(svc_launch(s, daemon_bin(), NULL, set, true), 0);

	/* READY=1 means the listener is bound and accepting: connect at once */
	int fd = connect_port(s->port);
	if (fd < 0)
		fail_msg("READY=1 arrived but connecting to %s failed: %s", s->addr, strerror(errno));
	na_trpc t;
	na_trpc_init(&t, fd);
	t.timeout_ms = 10000;
	msgpack_object err, res;
	assert_int_equal(na_trpc_call(&t, "ping", 0, NULL, &err, &res), 1);
	assert_true(na_obj_streq(&res, "pong"));

	/* the tick reports STATUS= every 5 s (a datagram of its own) */
	long long t0 = now_ms();
	int i = svc_await(s, 0, "STATUS=", "READY=1", 15000);
	if (i < 0) {
		svc_dump_log(s);
		fail_msg("no STATUS= datagram within 15 s of READY=1");
	}
	fprintf(stderr, "STATUS after %lld ms: %s\n", now_ms() - t0, s->msgs[i]);
	assert_non_null(strstr(s->msgs[i], "primary"));

	/* WATCHDOG_USEC=200000: keep-alives every 100 ms, so by now many */
	if (svc_await(s, 0, "WATCHDOG=1", NULL, 5000) < 0)
		fail_msg("no WATCHDOG=1 with WATCHDOG_USEC=200000 and WATCHDOG_PID set");
	fprintf(stderr, "%u WATCHDOG=1 keep-alives so far\n", s->watchdogs);
	assert_true(s->watchdogs >= 3);
	na_trpc_close(&t);

	/* SIGTERM: STOPPING=1, then exit 0 */
	kill(s->pid, SIGTERM);
	if (svc_await(s, 0, "STOPPING=1", NULL, 15000) < 0) {
		svc_dump_log(s);
		fail_msg("no STOPPING=1 after SIGTERM");
	}
	svc_stop_clean(s);
}

/* ---- 2. systemd-analyze verify ----------------------------------------- */

static bool find_in_path(const char *name, char *out, size_t n)
{
	const char *path = getenv("PATH");
	if (!path)
		path = "/usr/bin:/bin";
	while (*path) {
		size_t l = strcspn(path, ":");
		if (l > 0) {
			snprintf(out, n, "%.*s/%s", (int)l, path, name);
			if (access(out, X_OK) == 0)
				return true;
		}
		path += l;
		if (*path == ':')
			path++;
	}
	return false;
}

static void test_unit_verifies(void **state)
{
	(void)state;
	char sa[600];
	if (!find_in_path("systemd-analyze", sa, sizeof sa)) {
		fprintf(stderr, "skipped: systemd-analyze is not installed\n");
		skip();
	}
	char unit_src[600], *unit;
	snprintf(unit_src, sizeof unit_src, "%s/deploy/newsarchd.service", src_dir());
	assert_non_null(unit = read_file(unit_src));
	char bin[512];
	if (!realpath(daemon_bin(), bin)) {
		free(unit);
		fail_msg("%s: %s", daemon_bin(), strerror(errno));
	}
	/* ExecStart's /usr/local/bin/newsarchd -> this build's daemon */
	static const char from[] = "/usr/local/bin/newsarchd";
	size_t cap = strlen(unit) * 2 + 4096, len = 0;
	char *out = malloc(cap);
	assert_non_null(out);
	int replaced = 0;
	for (const char *p = unit; *p;) {
		const char *m = strstr(p, from);
		size_t keep = m ? (size_t)(m - p) : strlen(p);
		memcpy(out + len, p, keep);
		len += keep;
		p += keep;
		if (m) {
			len += (size_t)snprintf(out + len, cap - len, "%s", bin);
			p += strlen(from);
			replaced++;
		}
	}
	out[len] = 0;
	free(unit);
	assert_true(replaced >= 1);
	assert_int_equal(make_tmpdir(TMP[0], sizeof TMP[0]), 0);
	char path[400];
	snprintf(path, sizeof path, "%s/newsarchd.service", TMP[0]);
	int wr = write_file(path, out);
	free(out);
	assert_int_equal(wr, 0);

	const char *argv[] = { sa, "verify", "--man=no", path, NULL };
	cmd_out o;
	int rc = run_cmd(argv, NULL, &o, 60000);
	if (rc != 0 || o.len != 0) {
		show_cmd("systemd-analyze verify", rc, &o);
		cmd_out_free(&o);
		fail_msg("systemd-analyze verify: exit %d, %s output", rc, rc == 0 ? "unexpected" : "and");
	}
	cmd_out_free(&o);
}

/* ---- 3. make install / uninstall ----------------------------------------- */

static int count_files(const char *path, const struct stat *sb, int flag, struct FTW *ftw);
static char LEFT[2048];
static size_t NLEFT;

static int count_files(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	if (flag == FTW_F || flag == FTW_SL || flag == FTW_SLN) {
		NLEFT++;
		size_t l = strlen(LEFT);
		snprintf(LEFT + l, sizeof LEFT - l, "  %s\n", path);
	}
	return 0;
}

static void test_make_install(void **state)
{
	(void)state;
	const char *build = getenv("NEWSARCH_BUILD");
	if (!build || !*build)
		fail_msg("NEWSARCH_BUILD is not set (tests/run.sh sets it)");
	char bcopy[512];
	snprintf(bcopy, sizeof bcopy, "%s", build);
	size_t bl = strlen(bcopy);
	while (bl > 1 && bcopy[bl - 1] == '/')
		bcopy[--bl] = 0;
	const char *base = strrchr(bcopy, '/') ? strrchr(bcopy, '/') + 1 : bcopy;
	bool asan = strcmp(base, "build-asan") == 0;

	char *T = TMP[0];
	assert_int_equal(make_tmpdir(TMP[0], sizeof TMP[0]), 0);
	char bvar[560], dvar[340];
	snprintf(bvar, sizeof bvar, "B=%s", base);
	snprintf(dvar, sizeof dvar, "DESTDIR=%s", T);
	const char *mk[] = { "make", "-s", "-C", src_dir(), "install", bvar, dvar, "PREFIX=/usr",
			     asan ? "SAN=1" : NULL, NULL };
	cmd_out o;
	int rc = run_cmd(mk, NULL, &o, 300000);
	if (rc != 0) {
		show_cmd("make install", rc, &o);
		cmd_out_free(&o);
		fail_msg("make install failed");
	}
	cmd_out_free(&o);

	static const char *const expect[] = {
		"usr/bin/newsarchd", "usr/bin/newsarch", "usr/lib/libnewsarch.a",
		"usr/lib/libnewsarch.so", "usr/lib/libnewsarch.so.1", "usr/lib/pkgconfig/newsarch.pc",
		"usr/include/newsarch.h", "usr/lib/systemd/system/newsarchd.service",
		"etc/newsarch/newsarchd.conf", NULL };
	char p[700];
	for (int i = 0; expect[i]; i++) {
		snprintf(p, sizeof p, "%s/%s", T, expect[i]);
		if (access(p, F_OK) != 0)
			fail_msg("make install did not install %s", expect[i]);
	}
	/* the unit names the installed daemon (PREFIX honoured) */
	snprintf(p, sizeof p, "%s/usr/lib/systemd/system/newsarchd.service", T);
	char *unit = read_file(p);
	assert_non_null(unit);
	bool ok = strstr(unit, "ExecStart=/usr/bin/newsarchd ") && !strstr(unit, "/usr/local/");
	free(unit);
	if (!ok)
		fail_msg("installed unit does not start /usr/bin/newsarchd");

	/* the installed daemon, with the installed configuration file */
	svc *s = &SV[0];
	assert_int_equal(svc_init(s), 0);
	char dbin[600], cbin[600], conf[600];
	snprintf(dbin, sizeof dbin, "%s/usr/bin/newsarchd", T);
	snprintf(cbin, sizeof cbin, "%s/usr/bin/newsarch", T);
	snprintf(conf, sizeof conf, "%s/etc/newsarch/newsarchd.conf", T);
	const char *extra[] = { "--config", conf, NULL };
	assert_int_equal(svc_launch(s, dbin, extra, NULL, false), 0);

	const char *ping[] = { cbin, "-s", s->addr, "ping", NULL };
	rc = run_cmd(ping, NULL, &o, 30000);
	if (rc != 0 || !strstr(o.text, "pong")) {
		show_cmd("installed newsarch ping", rc, &o);
		cmd_out_free(&o);
		fail_msg("the installed newsarch could not ping the installed newsarchd");
	}
	cmd_out_free(&o);

	/* build the example against the installed library via pkg-config */
	char pcpath[400], sysroot[400], ldpath[400];
	snprintf(pcpath, sizeof pcpath, "PKG_CONFIG_PATH=%s/usr/lib/pkgconfig", T);
	snprintf(sysroot, sizeof sysroot, "PKG_CONFIG_SYSROOT_DIR=%s", T);
	snprintf(ldpath, sizeof ldpath, "LD_LIBRARY_PATH=%s/usr/lib", T);
	const char *pcenv[] = { pcpath, sysroot, NULL };
	const char *pc[] = { "pkg-config", "--cflags", "--libs", "newsarch", NULL };
	rc = run_cmd(pc, pcenv, &o, 30000);
	if (rc != 0) {
		show_cmd("pkg-config", rc, &o);
		cmd_out_free(&o);
		fail_msg("pkg-config --cflags --libs newsarch failed");
	}
	char incl[400], libd[400];
	snprintf(incl, sizeof incl, "-I%s/usr/include", T);
	snprintf(libd, sizeof libd, "-L%s/usr/lib", T);
	if (!strstr(o.text, incl) || !strstr(o.text, libd) || !strstr(o.text, "-lnewsarch")) {
		show_cmd("pkg-config", rc, &o);
		cmd_out_free(&o);
		fail_msg("pkg-config flags do not point into the installed tree");
	}
	const char *cc[64];
	int n = 0;
	char exe[400], example[600];
	snprintf(exe, sizeof exe, "%s/na_example", T);
	snprintf(example, sizeof example, "%s/client/examples/na_example.c", src_dir());
	cc[n++] = "cc";
	cc[n++] = "-Wall";
	cc[n++] = "-Wextra";
	cc[n++] = "-o";
	cc[n++] = exe;
	cc[n++] = example;
	if (asan)
		cc[n++] = "-fsanitize=address,undefined";
	for (char *sv = NULL, *tok = strtok_r(o.text, " \t\n", &sv); tok && n < 62;
	     tok = strtok_r(NULL, " \t\n", &sv))
		cc[n++] = tok;
	cc[n] = NULL;
	cmd_out co;
	rc = run_cmd(cc, NULL, &co, 120000);
	cmd_out_free(&o);
	if (rc != 0) {
		show_cmd("cc na_example.c", rc, &co);
		cmd_out_free(&co);
		fail_msg("na_example.c does not build against the installed library");
	}
	cmd_out_free(&co);

	const char *ex[] = { exe, s->addr, NULL };
	const char *exenv[] = { ldpath, NULL };
	rc = run_cmd(ex, exenv, &o, 30000);
	ok = rc == 0 && strstr(o.text, "put example-") && strstr(o.text, "created") &&
	     strstr(o.text, "Hello from libnewsarch") && strstr(o.text, "1 article(s) in the last day");
	if (!ok) {
		show_cmd("na_example", rc, &o);
		cmd_out_free(&o);
		fail_msg("na_example against the installed daemon failed");
	}
	cmd_out_free(&o);
	svc_stop_clean(s);

	/* uninstall: nothing of ours under usr/, the configuration kept */
	mk[4] = "uninstall";
	rc = run_cmd(mk, NULL, &o, 120000);
	if (rc != 0) {
		show_cmd("make uninstall", rc, &o);
		cmd_out_free(&o);
		fail_msg("make uninstall failed");
	}
	cmd_out_free(&o);
	snprintf(p, sizeof p, "%s/usr", T);
	LEFT[0] = 0;
	NLEFT = 0;
	nftw(p, count_files, 16, FTW_PHYS);
	if (NLEFT)
		fail_msg("make uninstall left %zu file(s):\n%s", NLEFT, LEFT);
	snprintf(p, sizeof p, "%s/etc/newsarch/newsarchd.conf", T);
	if (access(p, F_OK) != 0)
		fail_msg("make uninstall removed the configuration file");
}

/* ---- 4. hot backup during sustained ingest -------------------------------- */

#define INGEST_BATCH 40

static void *ingest_main(void *arg)
{
	ingest *w = arg;
	na_trpc t;
	int fd = connect_port(w->port);
	if (fd < 0) {
		snprintf(w->error, sizeof w->error, "writer: cannot connect");
		goto wake;
	}
	na_trpc_init(&t, fd);
	t.timeout_ms = 30000;
	for (unsigned next = 0; !atomic_load(&w->stop) && next < 2000000; next += INGEST_BATCH) {
		char why[300];
		if (put_series(&t, "hb", next, INGEST_BATCH, why, sizeof why)) {
			snprintf(w->error, sizeof w->error, "writer: %.280s", why);
			break;
		}
		pthread_mutex_lock(&w->mu);
		if (w->nacked + INGEST_BATCH > w->cap) {
			size_t nc = w->cap ? w->cap * 2 : 4096;
			unsigned *na = realloc(w->acked, nc * sizeof *na);
			if (!na) {
				pthread_mutex_unlock(&w->mu);
				snprintf(w->error, sizeof w->error, "writer: out of memory");
				break;
			}
			w->acked = na;
			w->cap = nc;
		}
		for (unsigned i = 0; i < INGEST_BATCH; i++)
			w->acked[w->nacked++] = next + i;
		w->batches++;
		pthread_cond_broadcast(&w->cv);
		pthread_mutex_unlock(&w->mu);
	}
	na_trpc_close(&t);
wake:
	pthread_mutex_lock(&w->mu);
	if (!w->error[0] && !atomic_load(&w->stop))
		snprintf(w->error, sizeof w->error, "writer: ran out of guids");
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

static void test_hot_backup(void **state)
{
	(void)state;
	svc *s = &SV[0];
	assert_int_equal(svc_init(s), 0);
	static const char *const extra[] = { "--log-level", "warn", NULL };
	assert_int_equal(svc_start(s, extra), 0);

	ingest *w = &IN;
	memset(w, 0, sizeof *w);
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	w->port = s->port;
	atomic_store(&w->stop, false);
	assert_int_equal(pthread_create(&w->th, NULL, ingest_main, w), 0);
	w->started = true;

	/* let the ingest run for a while (bounded) */
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 30;
	pthread_mutex_lock(&w->mu);
	while (w->nacked < 1200 && !w->error[0])
		if (pthread_cond_timedwait(&w->cv, &w->mu, &dl) == ETIMEDOUT)
			break;
	size_t before = w->nacked;
	unsigned *snap = malloc((before ? before : 1) * sizeof *snap);
	if (snap)
		memcpy(snap, w->acked, before * sizeof *snap);
	bool failed = w->error[0] != 0;
	pthread_mutex_unlock(&w->mu);
	assert_non_null(snap);
	if (failed || before < 1200) {
		free(snap);
		ingest_stop(w);
		fail_msg("ingest did not get going: %s (%zu acknowledged)", w->error, before);
	}

	/* backup on a connection of its own while the writer keeps going */
	char bdir[700];
	snprintf(bdir, sizeof bdir, "%s/backup", s->dir);
	na_trpc b;
	rpc_open(&b, s);
	b.timeout_ms = 60000;
	params p;
	p_init(&p);
	na_mp_pack_cstr(&p.pk, bdir);
	msgpack_object err, res;
	int rc = na_trpc_call(&b, "backup", 1, &p.sb, &err, &res);
	p_free(&p);
	pthread_mutex_lock(&w->mu);
	size_t after = w->nacked;
	pthread_mutex_unlock(&w->mu);
	ingest_stop(w);
	fprintf(stderr, "backup: %zu guids acknowledged before, %zu when it returned; writer: %s\n",
		before, after, w->error[0] ? w->error : "ok");
	if (rc != 1) {
		free(snap);
		fail_msg("backup: no reply");
	}
	if (err.type != MSGPACK_OBJECT_NIL) {
		char e[400];
		err_text(&err, e, sizeof e);
		free(snap);
		fail_msg("backup: %s", e);
	}
	const msgpack_object *path = na_obj_get(&res, "path"), *bytes = na_obj_get(&res, "bytes");
	bool shape = na_obj_streq(path, bdir) && bytes && bytes->type == MSGPACK_OBJECT_POSITIVE_INTEGER;
	char mdb[720];
	snprintf(mdb, sizeof mdb, "%s/data.mdb", bdir);
	struct stat sb;
	bool size_ok = stat(mdb, &sb) == 0 && bytes && (uint64_t)sb.st_size == bytes->via.u64 &&
		       sb.st_size > 0;
	na_trpc_close(&b);
	if (!shape || !size_ok) {
		free(snap);
		fail_msg("backup reply is not {path: %s, bytes: size of data.mdb}", bdir);
	}
	if (w->error[0]) {
		free(snap);
		fail_msg("%s", w->error);
	}

	/* the copy is consistent */
	const char *vf[] = { daemon_bin(), "--verify", "--data", bdir, NULL };
	cmd_out o;
	rc = run_cmd(vf, NULL, &o, 60000);
	if (rc != 0 || !strstr(o.text, " 0 problems") || checked_count(o.text) < (long long)before) {
		show_cmd("newsarchd --verify on the backup", rc, &o);
		cmd_out_free(&o);
		free(snap);
		fail_msg("the backup does not verify");
	}
	cmd_out_free(&o);
	svc_stop_clean(s);

	/* and serves every guid acknowledged before the backup began */
	svc *r = &SV[1];
	if (svc_init(r) != 0) {
		free(snap);
		fail_msg("svc_init");
	}
	snprintf(r->data, sizeof r->data, "%s", bdir);
	if (svc_start(r, extra) != 0) {
		free(snap);
		fail_msg("newsarchd does not start on the backup");
	}
	na_trpc t;
	rpc_open(&t, r);
	size_t bad = 0;
	char why[400] = "";
	for (size_t i = 0; i < before; i++) {
		char w1[400];
		if (get_series(&t, "hb", snap[i], w1, sizeof w1) != 1 && bad++ == 0)
			snprintf(why, sizeof why, "%s", w1);
	}
	na_trpc_close(&t);
	free(snap);
	if (bad)
		fail_msg("%zu of %zu articles acknowledged before the backup are missing or differ; "
			 "first: %s", bad, before, why);
	svc_stop_clean(r);
}

/* ---- 5. verify finds corruption -------------------------------------- */

#define VC_N 12
#define VC_BAD 5

static void test_verify_corruption(void **state)
{
	(void)state;
	svc *s = &SV[0];
	assert_int_equal(svc_init(s), 0);
	static const char *const extra[] = { "--log-level", "warn", NULL };
	assert_int_equal(svc_start(s, extra), 0);
	na_trpc t;
	rpc_open(&t, s);
	char why[400];
	if (put_series(&t, "vc", 0, VC_N, why, sizeof why))
		fail_msg("%s", why);
	na_trpc_close(&t);
	svc_stop_clean(s);

	/* clean first */
	const char *vf[] = { daemon_bin(), "--verify", "--data", s->data, NULL };
	cmd_out o;
	int rc = run_cmd(vf, NULL, &o, 60000);
	if (rc != 0 || checked_count(o.text) != VC_N || !strstr(o.text, " 0 problems")) {
		show_cmd("newsarchd --verify (clean)", rc, &o);
		cmd_out_free(&o);
		fail_msg("a fresh archive does not verify");
	}
	cmd_out_free(&o);

	/* overwrite record VC_BAD (keys sort by time: the series' order) */
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_cursor *cur;
	MDB_val k, v;
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
	if ((rc = mdb_env_open(env, s->data, 0, 0640)) != 0) {
		mdb_env_close(env);
		fail_msg("mdb_env_open %s: %s", s->data, mdb_strerror(rc));
	}
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "articles", 0, &dbi), 0);
	assert_int_equal(mdb_cursor_open(txn, dbi, &cur), 0);
	int idx = 0;
	char hex[40] = "";
	uint8_t key[16];
	size_t vlen = 0;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT), idx++) {
		if (idx == VC_BAD && k.mv_size == sizeof key) {
			memcpy(key, k.mv_data, sizeof key);
			vlen = v.mv_size;
		}
	}
	mdb_cursor_close(cur);
	if (idx != VC_N || vlen == 0) {
		mdb_txn_abort(txn);
		mdb_env_close(env);
		fail_msg("expected %d records of 16-byte keys, found %d", VC_N, idx);
	}
	for (size_t i = 0; i < sizeof key; i++)
		snprintf(hex + 2 * i, 3, "%02x", key[i]);
	uint8_t *junk = malloc(vlen);
	assert_non_null(junk);
	uint32_t x = 0x9e3779b9u;
	for (size_t i = 0; i < vlen; i++) {
		x = x * 1664525u + 1013904223u;
		junk[i] = (uint8_t)(x >> 24);
	}
	junk[0] = 0xEE; /* no record format has this header */
	MDB_val kk = { sizeof key, key }, vv = { vlen, junk };
	rc = mdb_put(txn, dbi, &kk, &vv, 0);
	if (rc == 0)
		rc = mdb_txn_commit(txn);
	else
		mdb_txn_abort(txn);
	mdb_env_close(env);
	free(junk);
	if (rc)
		fail_msg("overwriting the record: %s", mdb_strerror(rc));

	char needle[64];
	snprintf(needle, sizeof needle, "article key %s", hex);
	rc = run_cmd(vf, NULL, &o, 60000);
	if (rc == 0 || !strstr(o.text, needle) || checked_count(o.text) != VC_N) {
		show_cmd("newsarchd --verify (corrupt)", rc, &o);
		cmd_out_free(&o);
		fail_msg("offline verify did not report \"%s\" with a non-zero exit", needle);
	}
	cmd_out_free(&o);

	/* online: newsarch verify exits 4 and names the same key */
	assert_int_equal(svc_start(s, extra), 0);
	const char *cv[] = { cli_bin(), "-s", s->addr, "verify", NULL };
	rc = run_cmd(cv, NULL, &o, 60000);
	if (rc != 4 || !strstr(o.text, needle) || checked_count(o.text) != VC_N) {
		show_cmd("newsarch verify", rc, &o);
		cmd_out_free(&o);
		fail_msg("newsarch verify did not exit 4 naming \"%s\"", needle);
	}
	cmd_out_free(&o);

	/* the other articles are still readable, the broken one is an error */
	rpc_open(&t, s);
	for (unsigned i = 0; i < VC_N; i++) {
		rc = get_series(&t, "vc", i, why, sizeof why);
		if (i == VC_BAD ? rc != -1 : rc != 1)
			fail_msg("article %u: %s", i, rc == 1 ? "read back although corrupted" : why);
	}
	msgpack_object err, res;
	assert_int_equal(na_trpc_call(&t, "ping", 0, NULL, &err, &res), 1);
	na_trpc_close(&t);
	svc_stop_clean(s);
}

/* ---- 6. /metrics ------------------------------------------------------ */

typedef struct http_resp {
	int status;
	char ctype[128];
	long clen;
	char *raw;
	const char *body;
	size_t blen;
} http_resp;

static void http_free(http_resp *h)
{
	free(h->raw);
	memset(h, 0, sizeof *h);
}

/* Sends req, reads until the server closes (bounded), parses the head. */
static int http_do(int port, const char *req, http_resp *h)
{
	memset(h, 0, sizeof *h);
	h->clen = -1;
	int fd = connect_port(port);
	if (fd < 0)
		return -1;
	size_t n = strlen(req), off = 0;
	while (off < n) {
		ssize_t w = write(fd, req + off, n - off);
		if (w <= 0) {
			close(fd);
			return -1;
		}
		off += (size_t)w;
	}
	size_t cap = 65536, len = 0;
	char *buf = malloc(cap);
	long long deadline = now_ms() + 10000;
	int rc = -1;
	while (buf) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, left_ms(deadline)) <= 0)
			break;
		if (cap - len < 4096) {
			char *nb = realloc(buf, cap * 2);
			if (!nb)
				break;
			buf = nb;
			cap *= 2;
		}
		ssize_t r = read(fd, buf + len, cap - len - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			rc = 0;
			break;
		}
		len += (size_t)r;
	}
	close(fd);
	if (!buf)
		return -1;
	buf[len] = 0;
	h->raw = buf;
	if (rc != 0)
		return -1;
	char *head_end = strstr(buf, "\r\n\r\n");
	if (!head_end || sscanf(buf, "HTTP/1.1 %d", &h->status) != 1)
		return -1;
	*head_end = 0;
	h->body = head_end + 4;
	h->blen = len - (size_t)(h->body - buf);
	for (char *line = strstr(buf, "\r\n"); line && line < head_end; line = strstr(line, "\r\n")) {
		line += 2;
		if (strncasecmp(line, "Content-Type:", 13) == 0) {
			const char *v = line + 13;
			while (*v == ' ')
				v++;
			snprintf(h->ctype, sizeof h->ctype, "%.*s", (int)strcspn(v, "\r"), v);
		} else if (strncasecmp(line, "Content-Length:", 15) == 0) {
			h->clen = strtol(line + 15, NULL, 10);
		}
	}
	return 0;
}

#define MAX_FAMS 96
#define MAX_HSERIES 128

typedef struct expo {
	struct {
		char name[128];
		char type[32];
	} fam[MAX_FAMS];
	int nfam;
	struct {
		char fam[128];
		char labels[256];
		double last_le, last, inf, count;
		int nb;
		bool has_inf, has_count;
	} hs[MAX_HSERIES];
	int nhs;
	unsigned samples;
} expo;

static bool metric_name_ok(const char *s, size_t n)
{
	if (n == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_' || s[0] == ':'))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == ':'))
			return false;
	return true;
}

static int fam_find(const expo *e, const char *name, size_t n)
{
	for (int i = 0; i < e->nfam; i++)
		if (strlen(e->fam[i].name) == n && strncmp(e->fam[i].name, name, n) == 0)
			return i;
	return -1;
}

static bool ends_with(const char *s, size_t n, const char *suf, size_t *base)
{
	size_t l = strlen(suf);
	if (n <= l || strncmp(s + n - l, suf, l) != 0)
		return false;
	*base = n - l;
	return true;
}

/* Parses the labels at *p ("{...}"): copies them without `le` into rest and
 * le's value into le (empty when absent). Returns false when malformed. */
static bool parse_labels(const char **pp, char *rest, size_t rn, char *le, size_t ln)
{
	const char *p = *pp;
	size_t rl = 0;
	rest[0] = le[0] = 0;
	if (*p != '{')
		return true;
	p++;
	while (*p != '}') {
		const char *nm = p;
		if (!(isalpha((unsigned char)*p) || *p == '_'))
			return false;
		while (isalnum((unsigned char)*p) || *p == '_')
			p++;
		size_t nl = (size_t)(p - nm);
		if (*p++ != '=' || *p++ != '"')
			return false;
		char val[256];
		size_t vl = 0;
		while (*p && *p != '"') {
			if (*p == '\\') {
				p++;
				if (*p != '\\' && *p != '"' && *p != 'n')
					return false;
			}
			if (*p == '\n' || !*p)
				return false;
			if (vl < sizeof val - 1)
				val[vl++] = *p;
			p++;
		}
		if (*p++ != '"')
			return false;
		val[vl] = 0;
		if (nl == 2 && strncmp(nm, "le", 2) == 0)
			snprintf(le, ln, "%.60s", val);
		else if (rl < rn)
			rl += (size_t)snprintf(rest + rl, rn - rl, "%.*s=%s,", (int)nl, nm, val);
		if (*p == ',')
			p++;
		else if (*p != '}')
			return false;
	}
	*pp = p + 1;
	return true;
}

/* Checks the exposition; returns NULL or what is wrong (in why). */
static const char *expo_check(const char *body, expo *e, char *why, size_t wn)
{
	memset(e, 0, sizeof *e);
	int lineno = 0;
	for (const char *line = body; *line;) {
		const char *nl = strchr(line, '\n');
		if (!nl) {
			snprintf(why, wn, "the exposition does not end with a newline");
			return why;
		}
		size_t len = (size_t)(nl - line);
		lineno++;
		char l[1024];
		if (len >= sizeof l) {
			snprintf(why, wn, "line %d is too long", lineno);
			return why;
		}
		memcpy(l, line, len);
		l[len] = 0;
		line = nl + 1;
		if (len == 0)
			continue;
		if (strncmp(l, "# TYPE ", 7) == 0) {
			char name[200], type[32], more[8];
			if (sscanf(l + 7, "%199s %31s %7s", name, type, more) != 2 ||
			    !metric_name_ok(name, strlen(name))) {
				snprintf(why, wn, "line %d: bad TYPE line: %.200s", lineno, l);
				return why;
			}
			if (strcmp(type, "counter") && strcmp(type, "gauge") && strcmp(type, "histogram")) {
				snprintf(why, wn, "line %d: type %s is not counter|gauge|histogram", lineno, type);
				return why;
			}
			if (fam_find(e, name, strlen(name)) >= 0) {
				snprintf(why, wn, "line %d: second TYPE for %s", lineno, name);
				return why;
			}
			if (e->nfam == MAX_FAMS || strlen(name) >= sizeof e->fam[0].name) {
				snprintf(why, wn, "too many families");
				return why;
			}
			snprintf(e->fam[e->nfam].name, sizeof e->fam[0].name, "%.127s", name);
			snprintf(e->fam[e->nfam].type, sizeof e->fam[0].type, "%s", type);
			e->nfam++;
			continue;
		}
		if (l[0] == '#')
			continue; /* HELP and comments */
		/* a sample: name{labels} value */
		const char *p = l;
		size_t n = strcspn(p, "{ ");
		if (!metric_name_ok(p, n)) {
			snprintf(why, wn, "line %d: bad metric name: %.200s", lineno, l);
			return why;
		}
		int f = fam_find(e, p, n);
		size_t base = 0;
		const char *suffix = "";
		if (f < 0 || strcmp(e->fam[f].type, "histogram") == 0) {
			f = -1;
			static const char *const sufs[] = { "_bucket", "_sum", "_count" };
			for (int i = 0; i < 3 && f < 0; i++)
				if (ends_with(p, n, sufs[i], &base)) {
					int g = fam_find(e, p, base);
					if (g >= 0 && strcmp(e->fam[g].type, "histogram") == 0) {
						f = g;
						suffix = sufs[i];
					}
				}
		}
		if (f < 0) {
			snprintf(why, wn, "line %d: sample %.*s has no preceding # TYPE", lineno, (int)n, p);
			return why;
		}
		p += n;
		char rest[256], le[64];
		if (!parse_labels(&p, rest, sizeof rest, le, sizeof le) || *p != ' ') {
			snprintf(why, wn, "line %d: bad labels: %.200s", lineno, l);
			return why;
		}
		char *end;
		double v = strtod(p + 1, &end);
		while (*end == ' ')
			end++;
		if (end == p + 1 || (*end && strspn(end, "-0123456789") != strlen(end))) {
			snprintf(why, wn, "line %d: bad value: %.200s", lineno, l);
			return why;
		}
		if (strcmp(e->fam[f].type, "counter") == 0 && !(v >= 0)) {
			snprintf(why, wn, "line %d: negative counter: %.200s", lineno, l);
			return why;
		}
		e->samples++;
		if (!*suffix || strcmp(suffix, "_sum") == 0)
			continue;
		int h = -1;
		for (int i = 0; i < e->nhs && h < 0; i++)
			if (strcmp(e->hs[i].fam, e->fam[f].name) == 0 && strcmp(e->hs[i].labels, rest) == 0)
				h = i;
		if (h < 0) {
			if (e->nhs == MAX_HSERIES) {
				snprintf(why, wn, "too many histogram series");
				return why;
			}
			h = e->nhs++;
			memcpy(e->hs[h].fam, e->fam[f].name, sizeof e->hs[h].fam);
			snprintf(e->hs[h].labels, sizeof e->hs[h].labels, "%s", rest);
		}
		if (strcmp(suffix, "_count") == 0) {
			e->hs[h].has_count = true;
			e->hs[h].count = v;
			continue;
		}
		/* _bucket */
		if (!le[0] || e->hs[h].has_inf) {
			snprintf(why, wn, "line %d: %s: %.200s", lineno, le[0] ? "bucket after +Inf" : "bucket without le",
				 l);
			return why;
		}
		if (v < e->hs[h].last) {
			snprintf(why, wn, "line %d: buckets decrease: %.200s", lineno, l);
			return why;
		}
		e->hs[h].last = v;
		if (strcmp(le, "+Inf") == 0) {
			e->hs[h].has_inf = true;
			e->hs[h].inf = v;
		} else {
			char *le_end;
			double b = strtod(le, &le_end);
			if (*le_end || (e->hs[h].nb && b <= e->hs[h].last_le)) {
				snprintf(why, wn, "line %d: bucket bounds not increasing: %.200s", lineno, l);
				return why;
			}
			e->hs[h].last_le = b;
		}
		e->hs[h].nb++;
	}
	for (int i = 0; i < e->nhs; i++) {
		if (!e->hs[i].has_inf || !e->hs[i].has_count || e->hs[i].inf != e->hs[i].count) {
			snprintf(why, wn, "histogram %s{%s}: %s", e->hs[i].fam, e->hs[i].labels,
				 !e->hs[i].has_inf ? "no le=\"+Inf\" bucket" :
				 !e->hs[i].has_count ? "no _count" : "+Inf bucket differs from _count");
			return why;
		}
	}
	return NULL;
}

/* The value of the sample line that starts with exactly `series` + ' '. */
static bool sample_value(const char *body, const char *series, double *v)
{
	size_t n = strlen(series);
	for (const char *l = body; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (strncmp(l, series, n) == 0 && l[n] == ' ') {
			*v = strtod(l + n + 1, NULL);
			return true;
		}
	return false;
}

static void scrape(int port, http_resp *h, expo *e)
{
	assert_int_equal(http_do(port, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n", h), 0);
	if (h->status != 200)
		fail_msg("GET /metrics: status %d", h->status);
	if (strncmp(h->ctype, "text/plain", 10) != 0)
		fail_msg("GET /metrics: Content-Type %s", h->ctype);
	if (h->clen != (long)h->blen)
		fail_msg("GET /metrics: Content-Length %ld, body %zu bytes", h->clen, h->blen);
	char why[400];
	if (expo_check(h->body, e, why, sizeof why))
		fail_msg("GET /metrics: %s", why);
}

static void test_metrics(void **state)
{
	(void)state;
	svc *s = &SV[0];
	assert_int_equal(svc_init(s), 0);
	int mport = na_test_free_port();
	for (int i = 0; i < 10 && mport == s->port; i++)
		mport = na_test_free_port();
	assert_true(mport > 0 && mport != s->port);
	char ml[64];
	snprintf(ml, sizeof ml, "127.0.0.1:%d", mport);
	const char *extra[] = { "--metrics-listen", ml, "--log-level", "warn", NULL };
	assert_int_equal(svc_start(s, extra), 0);

	na_trpc t;
	rpc_open(&t, s);
	char why[400];
	if (put_series(&t, "mx", 0, 17, why, sizeof why))
		fail_msg("%s", why);
	msgpack_object err, res;
	assert_int_equal(na_trpc_call(&t, "ping", 0, NULL, &err, &res), 1);

	static http_resp h1, h2;
	static expo e1, e2;
	scrape(mport, &h1, &e1);
	assert_true(e1.nfam >= 5);
	assert_true(e1.nhs >= 1);
	double p1, p2, arts;
	static const char ping_ok[] = "newsarch_requests_total{method=\"ping\",outcome=\"ok\"}";
	assert_true(sample_value(h1.body, ping_ok, &p1));
	assert_true(sample_value(h1.body, "newsarch_articles", &arts));
	assert_true(arts == 17);
	assert_true(p1 >= 1);
	int fi = fam_find(&e1, "newsarch_requests_total", strlen("newsarch_requests_total"));
	assert_true(fi >= 0 && strcmp(e1.fam[fi].type, "counter") == 0);
	fi = fam_find(&e1, "newsarch_articles", strlen("newsarch_articles"));
	assert_true(fi >= 0 && strcmp(e1.fam[fi].type, "gauge") == 0);

	const int pings = 7;
	for (int i = 0; i < pings; i++) {
		assert_int_equal(na_trpc_call(&t, "ping", 0, NULL, &err, &res), 1);
		assert_true(na_obj_streq(&res, "pong"));
	}
	scrape(mport, &h2, &e2);
	assert_true(sample_value(h2.body, ping_ok, &p2));
	if (p2 - p1 != pings)
		fail_msg("ping ok counter went from %g to %g after %d pings", p1, p2, pings);
	double arts2, cnt;
	assert_true(sample_value(h2.body, "newsarch_articles", &arts2));
	assert_true(arts2 == 17);
	assert_true(sample_value(h2.body,
				 "newsarch_request_duration_seconds_count{method=\"ping\"}", &cnt));
	assert_true(cnt == p2);
	http_free(&h1);
	na_trpc_close(&t);

	/* everything but GET /metrics is refused */
	static const struct {
		const char *req;
		int status;
	} bad[] = {
		{ "GET /other HTTP/1.1\r\nHost: x\r\n\r\n", 404 },
		{ "GET /metrics/x HTTP/1.1\r\n\r\n", 404 },
		{ "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 405 },
		{ "GARBAGE\r\n\r\n", 400 },
		{ "GET /metrics SPDY/9\r\n\r\n", 400 },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		http_resp h;
		if (http_do(mport, bad[i].req, &h) != 0) {
			http_free(&h);
			fail_msg("request %zu: no complete response", i);
		}
		int st = h.status;
		http_free(&h);
		if (st != bad[i].status)
			fail_msg("%.*s: status %d, expected %d", (int)strcspn(bad[i].req, "\r"), bad[i].req,
				 st, bad[i].status);
	}

	/* `newsarch metrics` prints the same families */
	const char *cm[] = { cli_bin(), "-s", s->addr, "metrics", NULL };
	cmd_out o;
	int rc = run_cmd(cm, NULL, &o, 30000);
	static expo e3;
	const char *bad3 = rc == 0 ? expo_check(o.text, &e3, why, sizeof why) : "exit status";
	if (bad3) {
		show_cmd("newsarch metrics", rc, &o);
		cmd_out_free(&o);
		http_free(&h2);
		fail_msg("newsarch metrics: %s", bad3);
	}
	cmd_out_free(&o);
	http_free(&h2);
	if (e3.nfam != e2.nfam)
		fail_msg("newsarch metrics has %d families, GET /metrics %d", e3.nfam, e2.nfam);
	for (int i = 0; i < e2.nfam; i++) {
		int j = fam_find(&e3, e2.fam[i].name, strlen(e2.fam[i].name));
		if (j < 0 || strcmp(e3.fam[j].type, e2.fam[i].type) != 0)
			fail_msg("family %s (%s) missing from newsarch metrics", e2.fam[i].name,
				 e2.fam[i].type);
	}
	svc_stop_clean(s);
}

/* ---- 7. SIGHUP ------------------------------------------------------ */

static void test_sighup_reload(void **state)
{
	(void)state;
	svc *s = &SV[0];
	assert_int_equal(svc_init(s), 0);
	char conf[400];
	snprintf(conf, sizeof conf, "%s/newsarchd.conf", s->dir);
	assert_int_equal(write_file(conf, "[limits]\nmax_batch = 5\n"), 0);
	const char *extra[] = { "--config", conf, NULL };
	assert_int_equal(svc_start(s, extra), 0);

	na_trpc t;
	rpc_open(&t, s);
	char why[400];
	params p;
	p_init(&p);
	msgpack_pack_array(&p.pk, 6);
	for (unsigned i = 0; i < 6; i++)
		pack_series(&p.pk, "hup", i);
	msgpack_object err, res;
	assert_int_equal(na_trpc_call(&t, "put_batch", 1, &p.sb, &err, &res), 1);
	p_free(&p);
	char code[32];
	if (strcmp(na_obj_code(&err, code, sizeof code), "TOO_LARGE") != 0)
		fail_msg("put_batch of 6 with max_batch = 5: expected TOO_LARGE, got \"%s\"", code);
	if (put_series(&t, "hup", 100, 5, why, sizeof why))
		fail_msg("put_batch of 5 with max_batch = 5: %s", why);

	assert_int_equal(write_file(conf, "[limits]\nmax_batch = 10\n"), 0);
	int from = s->nmsgs;
	kill(s->pid, SIGHUP);
	/* the reload is done when READY=1 follows RELOADING=1 */
	int r = svc_await(s, from, "RELOADING=1", NULL, 10000);
	if (r < 0 || svc_await(s, r, "READY=1", NULL, 10000) < 0) {
		svc_dump_log(s);
		fail_msg("no RELOADING=1 then READY=1 after SIGHUP");
	}
	/* READY=1 is sent after the new limits are in place: the first try works */
	if (put_series(&t, "hup", 200, 6, why, sizeof why))
		fail_msg("put_batch of 6 after max_batch = 10 and SIGHUP: %s", why);
	na_trpc_close(&t);

	svc_stop_clean(s);
	char *log = read_file(s->log);
	assert_non_null(log);
	bool mentions = strstr(log, "max_batch 5 -> 10") != NULL;
	if (!mentions) {
		svc_dump_log(s);
		free(log);
		fail_msg("the daemon log does not mention max_batch 5 -> 10");
	}
	free(log);
	/* no watchdog was asked for, so none was sent */
	assert_int_equal(s->watchdogs, 0);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_sd_notify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unit_verifies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_make_install, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hot_backup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify_corruption, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sighup_reload, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
