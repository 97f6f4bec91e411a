/*
 * test_auth.c - tokens and roles: what an unauthenticated connection may do,
 * what each role allows, token files, followers presenting follow_token,
 * the refusal to listen beyond loopback without tokens, the per-address
 * limit on failed attempts, and the client library's token option.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon.h"
#include "newsarch.h"
#include "testrpc.h"

#define T_READ "read:reader-token-0123456789"
#define T_WRITE "write:writer-token-0123456789"
#define T_REPL "replicate:replica-token-0123456789"
#define T_ADMIN "admin:admin-token-0123456789"
#define T_FILE "file-token-abcdefghijklmnop"

static na_test_daemon D;
static char tokfile[512];

static int setup(void **state)
{
	(void)state;
	memset(&D, 0, sizeof D);
	snprintf(tokfile, sizeof tokfile, "%s/newsarch-tokens-%d", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
		 (int)getpid());
	FILE *f = fopen(tokfile, "w");
	if (!f)
		return -1;
	fprintf(f, "# test tokens\nwrite:%s\n", T_FILE);
	fclose(f);
	chmod(tokfile, 0600);
	const char *args[] = { "--token", T_READ, "--token", T_WRITE, "--token", T_REPL, "--token",
			       T_ADMIN, "--token-file", tokfile, "--log-level", "info", NULL };
	for (int i = 0; args[i]; i++)
		D.extra[i] = args[i];
	return na_test_daemon_start(&D);
}

static int teardown(void **state)
{
	(void)state;
	unlink(tokfile);
	return na_test_daemon_cleanup(&D);
}

static const char *secret(const char *spec) { return strchr(spec, ':') + 1; }

static void call(na_trpc *t, const char *method, const char *arg, const char *want_code)
{
	msgpack_sbuffer p;
	msgpack_packer pk;
	msgpack_sbuffer_init(&p);
	msgpack_packer_init(&pk, &p, msgpack_sbuffer_write);
	uint32_t n = 0;
	if (arg) {
		na_mp_pack_cstr(&pk, arg);
		n = 1;
	}
	msgpack_object err, res;
	assert_int_equal(na_trpc_call(t, method, n, &p, &err, &res), 1);
	msgpack_sbuffer_destroy(&p);
	char code[32];
	na_obj_code(&err, code, sizeof code);
	if (strcmp(code, want_code) != 0)
		fail_msg("%s(%s): expected \"%s\", got \"%s\"", method, arg ? arg : "", want_code, code);
}

static void put_one(na_trpc *t, const char *guid, const char *want_code)
{
	msgpack_sbuffer p;
	msgpack_packer pk;
	msgpack_sbuffer_init(&p);
	msgpack_packer_init(&pk, &p, msgpack_sbuffer_write);
	na_pack_article(&pk, guid, 1700000000, 0, "auth", "body");
	msgpack_object err, res;
	assert_int_equal(na_trpc_call(t, "put", 1, &p, &err, &res), 1);
	msgpack_sbuffer_destroy(&p);
	char code[32];
	na_obj_code(&err, code, sizeof code);
	if (strcmp(code, want_code) != 0)
		fail_msg("put %s: expected \"%s\", got \"%s\"", guid, want_code, code);
}

static void test_unauthenticated(void **state)
{
	(void)state;
	na_trpc t;
	na_trpc_init(&t, na_test_connect_tcp(&D));
	call(&t, "ping", NULL, "");
	call(&t, "get", "x", "UNAUTHORIZED");
	call(&t, "stats", NULL, "UNAUTHORIZED");
	put_one(&t, "unauth-1", "UNAUTHORIZED");
	na_trpc_close(&t);
}

static void test_roles(void **state)
{
	(void)state;
	na_trpc t;
	/* read */
	na_trpc_init(&t, na_test_connect_tcp(&D));
	call(&t, "auth", secret(T_READ), "");
	call(&t, "get", "nothing-here", "NOT_FOUND");
	call(&t, "stats", NULL, "");
	put_one(&t, "read-1", "UNAUTHORIZED");
	call(&t, "backup", "/nonexistent", "UNAUTHORIZED");
	na_trpc_close(&t);
	/* write (from the token file) */
	na_trpc_init(&t, na_test_connect_tcp(&D));
	call(&t, "auth", T_FILE, "");
	put_one(&t, "write-1", "");
	call(&t, "get", "write-1", "");
	call(&t, "verify", NULL, "UNAUTHORIZED");
	msgpack_object err, res;
	msgpack_sbuffer p;
	msgpack_packer pk;
	msgpack_sbuffer_init(&p);
	msgpack_packer_init(&pk, &p, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 0);
	assert_int_equal(na_trpc_call(&t, "replicate", 1, &p, &err, &res), 1);
	char code[32];
	assert_string_equal(na_obj_code(&err, code, sizeof code), "UNAUTHORIZED");
	msgpack_sbuffer_destroy(&p);
	/* a later failed auth drops the role */
	call(&t, "auth", "not-a-token-at-all-really", "UNAUTHORIZED");
	call(&t, "get", "write-1", "UNAUTHORIZED");
	na_trpc_close(&t);
	/* admin */
	na_trpc_init(&t, na_test_connect_tcp(&D));
	call(&t, "auth", secret(T_ADMIN), "");
	call(&t, "verify", NULL, "");
	put_one(&t, "admin-1", "");
	na_trpc_close(&t);
}

static void test_library_token(void **state)
{
	(void)state;
	na_options o;
	na_options_init(&o);
	o.token = secret(T_WRITE);
	na_client *c;
	assert_int_equal(na_client_connect(D.addr, &o, &c), 0);
	assert_int_equal(na_ping(c), 0);
	uint64_t n;
	assert_int_equal(na_count(c, NULL, NULL, &n), 0);
	assert_true(n >= 1);
	na_client_close(c);
	o.token = "wrong-token-wrong-token";
	char err[256];
	assert_int_equal(na_client_connect_ex(D.addr, &o, &c, err, sizeof err), NA_EUNAUTHORIZED);
	assert_non_null(strstr(err, "authentication failed"));
	/* without a token: connected, but reads are refused */
	assert_int_equal(na_client_connect(D.addr, NULL, &c), 0);
	assert_int_equal(na_count(c, NULL, NULL, &n), NA_EUNAUTHORIZED);
	na_client_close(c);
}

static bool log_has(const char *path, const char *needle)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	char line[1024];
	bool found = false;
	while (!found && fgets(line, sizeof line, f))
		found = strstr(line, needle) != NULL;
	fclose(f);
	return found;
}

static void pause_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
	nanosleep(&ts, NULL);
}

static void test_follower_token(void **state)
{
	(void)state;
	char follow[64];
	snprintf(follow, sizeof follow, "%s", D.addr);
	/* with the replicate token it converges */
	na_test_daemon f;
	memset(&f, 0, sizeof f);
	const char *args[] = { "--follow", follow, "--follow-token", secret(T_REPL), NULL };
	for (int i = 0; args[i]; i++)
		f.extra[i] = args[i];
	assert_int_equal(na_test_daemon_start(&f), 0);
	na_trpc t;
	na_trpc_init(&t, na_test_connect_tcp(&D));
	call(&t, "auth", secret(T_ADMIN), "");
	put_one(&t, "to-follow", "");
	na_trpc_close(&t);
	na_client *c; /* the follower itself has no tokens: anyone may read it */
	assert_int_equal(na_client_connect(f.addr, NULL, &c), 0);
	int found = -1;
	for (int i = 0; i < 2000 && found != 0; i++) { /* bounded poll on an observable state */
		na_article *a;
		found = na_get(c, "to-follow", 9, NULL, 0, &a);
		if (found == 0)
			na_article_free(a);
		else
			pause_ms(5);
	}
	assert_int_equal(found, 0);
	na_client_close(c);
	assert_int_equal(na_test_daemon_cleanup(&f), 0);

	/* without a token the primary refuses it, and says so */
	na_test_daemon g;
	memset(&g, 0, sizeof g);
	g.extra[0] = "--follow";
	g.extra[1] = follow;
	assert_int_equal(na_test_daemon_start(&g), 0);
	bool refused = false;
	for (int i = 0; i < 2000 && !refused; i++) {
		refused = log_has(g.log, "needs the replicate role");
		if (!refused)
			pause_ms(5);
	}
	assert_true(refused);
	assert_int_equal(na_test_daemon_cleanup(&g), 0);
}

static void test_refusals_at_start(void **state)
{
	(void)state;
	/* a token file others can read */
	char loose[600];
	snprintf(loose, sizeof loose, "%s.loose", tokfile);
	FILE *fp = fopen(loose, "w");
	assert_non_null(fp);
	fprintf(fp, "read:%s\n", T_FILE);
	fclose(fp);
	chmod(loose, 0644);
	na_test_daemon d;
	memset(&d, 0, sizeof d);
	d.extra[0] = "--token-file";
	d.extra[1] = loose;
	assert_int_not_equal(na_test_daemon_start(&d), 0);
	assert_true(log_has(d.log, "must not be accessible by group or others"));
	na_test_daemon_cleanup(&d);
	unlink(loose);
	/* a non-loopback address with no token: refused before binding */
	na_test_daemon e;
	memset(&e, 0, sizeof e);
	e.extra[0] = "--listen";
	e.extra[1] = "0.0.0.0:1";
	assert_int_not_equal(na_test_daemon_start(&e), 0);
	assert_true(log_has(e.log, "refusing to listen on 0.0.0.0:1 without authentication"));
	na_test_daemon_cleanup(&e);
}

static void test_guessing_is_limited(void **state)
{
	(void)state;
	na_trpc t;
	na_trpc_init(&t, na_test_connect_tcp(&D));
	for (int i = 0; i < 5; i++)
		call(&t, "auth", "guess-guess-guess-guess", "UNAUTHORIZED");
	/* now even the right token is refused from this address for a while */
	call(&t, "auth", secret(T_ADMIN), "UNAUTHORIZED");
	call(&t, "get", "write-1", "UNAUTHORIZED");
	call(&t, "ping", NULL, "");
	na_trpc_close(&t);
	/* the failures were logged with the address, never the token */
	assert_true(log_has(D.log, "failed authentication"));
	assert_false(log_has(D.log, "guess-guess"));
}

/* Failed attempts over the Unix socket count against the local user who
 * made them, not against every local client: another user guessing cannot
 * lock the archive's own users out. Needs root, to guess as another user. */
static void test_unix_users_guarded_apart(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip();
	char dir[sizeof D.sock];
	snprintf(dir, sizeof dir, "%s", D.sock);
	*strrchr(dir, '/') = 0;
	assert_int_equal(chmod(dir, 0711), 0);
	assert_int_equal(chmod(D.sock, 0666), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (setgid(65534) != 0 || setuid(65534) != 0)
			_exit(2);
		na_trpc t;
		int fd = na_test_connect_unix(&D);
		if (fd < 0)
			_exit(3);
		na_trpc_init(&t, fd);
		msgpack_sbuffer p;
		msgpack_packer pk;
		msgpack_sbuffer_init(&p);
		msgpack_packer_init(&pk, &p, msgpack_sbuffer_write);
		na_mp_pack_cstr(&pk, "guess-guess-guess-guess");
		char code[32] = "";
		for (int i = 0; i < 6; i++) {
			msgpack_object err, res;
			if (na_trpc_call(&t, "auth", 1, &p, &err, &res) != 1)
				_exit(4);
			na_obj_code(&err, code, sizeof code);
		}
		_exit(strcmp(code, "UNAUTHORIZED") == 0 ? 0 : 5);
	}
	int st = 0;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_true(log_has(D.log, "unix:uid=65534"));
	/* root, on the same socket, is not refused */
	na_trpc t;
	na_trpc_init(&t, na_test_connect_unix(&D));
	call(&t, "auth", secret(T_ADMIN), "");
	put_one(&t, "unix-1", "");
	na_trpc_close(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unauthenticated),
		cmocka_unit_test(test_roles),
		cmocka_unit_test(test_library_token),
		cmocka_unit_test(test_follower_token),
		cmocka_unit_test(test_refusals_at_start),
		cmocka_unit_test(test_unix_users_guarded_apart),
		cmocka_unit_test(test_guessing_is_limited), /* last: it blocks 127.0.0.1 */
	};
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("auth", tests, setup, teardown);
}
