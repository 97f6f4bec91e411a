/*
 * test_limits.c - limits that protect the server: slow senders are cut off
 * after request_timeout, connections beyond max_connections get an error
 * and are closed, and a full archive (max_map_size) refuses writes with
 * NO_SPACE while reads go on, then accepts writes again after deletes.
 */
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon.h"
#include "testrpc.h"

static void ping_ok(na_trpc *t)
{
	msgpack_object err, res;
	assert_int_equal(na_trpc_call(t, "ping", 0, NULL, &err, &res), 1);
	assert_true(na_obj_streq(&res, "pong"));
}

static void test_slow_sender_is_cut_off(void **state)
{
	(void)state;
	na_test_daemon d;
	memset(&d, 0, sizeof d);
	d.extra[0] = "--request-timeout";
	d.extra[1] = "1";
	assert_int_equal(na_test_daemon_start(&d), 0);
	na_trpc slow, other;
	na_trpc_init(&slow, na_test_connect_tcp(&d));
	na_trpc_init(&other, na_test_connect_tcp(&d));
	/* the first bytes of [0, 1, "ping", []] and then nothing */
	static const uint8_t part[] = { 0x94, 0x00, 0x01 };
	assert_int_equal(na_trpc_send(&slow, part, sizeof part), 0);
	/* meanwhile another client is served */
	ping_ok(&other);
	/* the server hangs up on the slow one (the read waits for that) */
	slow.timeout_ms = 15000;
	msgpack_object o;
	assert_int_equal(na_trpc_read(&slow, &o), 0);
	ping_ok(&other);
	na_trpc_close(&slow);
	na_trpc_close(&other);
	assert_int_equal(na_test_daemon_cleanup(&d), 0);
}

static void test_max_connections(void **state)
{
	(void)state;
	na_test_daemon d;
	memset(&d, 0, sizeof d);
	d.extra[0] = "--max-connections";
	d.extra[1] = "2";
	assert_int_equal(na_test_daemon_start(&d), 0);
	na_trpc a, b, c;
	na_trpc_init(&a, na_test_connect_tcp(&d));
	na_trpc_init(&b, na_test_connect_tcp(&d));
	ping_ok(&a);
	ping_ok(&b);
	na_trpc_init(&c, na_test_connect_tcp(&d));
	msgpack_object o;
	assert_int_equal(na_trpc_read(&c, &o), 1); /* [2, "error", [{code, message}]] */
	assert_int_equal(o.type, MSGPACK_OBJECT_ARRAY);
	assert_int_equal(o.via.array.size, 3);
	assert_int_equal(o.via.array.ptr[0].via.u64, 2);
	char code[32];
	assert_string_equal(na_obj_code(&o.via.array.ptr[2].via.array.ptr[0], code, sizeof code),
			    "UNAVAILABLE");
	assert_int_equal(na_trpc_read(&c, &o), 0); /* then closed */
	na_trpc_close(&c);
	/* the two admitted clients are unaffected; a slot frees when one leaves */
	ping_ok(&a);
	na_trpc_close(&b);
	bool admitted = false;
	for (int i = 0; i < 200 && !admitted; i++) { /* the close reaches the server asynchronously */
		na_trpc_init(&c, na_test_connect_tcp(&d));
		msgpack_object err, res;
		admitted = na_trpc_call(&c, "ping", 0, NULL, &err, &res) == 1 &&
			   na_obj_streq(&res, "pong");
		na_trpc_close(&c);
	}
	assert_true(admitted);
	na_trpc_close(&a);
	assert_int_equal(na_test_daemon_cleanup(&d), 0);
}

static int put_batch(na_trpc *t, int first, int n, uint64_t *seed, char *code, size_t codelen)
{
	msgpack_sbuffer p;
	msgpack_packer pk;
	msgpack_sbuffer_init(&p);
	msgpack_packer_init(&pk, &p, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, n);
	static char body[4001];
	for (int i = 0; i < n; i++) {
		for (int k = 0; k < 4000; k++) { /* xorshift letters: compress poorly */
			*seed ^= *seed << 13;
			*seed ^= *seed >> 7;
			*seed ^= *seed << 17;
			body[k] = (char)('a' + *seed % 26);
		}
		char g[32];
		snprintf(g, sizeof g, "full-%05d", first + i);
		na_pack_article(&pk, g, 1000 + first + i, 0, "filling", body);
	}
	msgpack_object err, res;
	int rc = na_trpc_call(t, "put_batch", 1, &p, &err, &res);
	msgpack_sbuffer_destroy(&p);
	assert_int_equal(rc, 1);
	assert_int_equal(err.type, MSGPACK_OBJECT_NIL);
	code[0] = 0;
	int ok = 0;
	for (uint32_t i = 0; i < res.via.array.size; i++) {
		const msgpack_object *e = na_obj_get(&res.via.array.ptr[i], "error");
		if (e)
			na_obj_code(e, code, codelen);
		else
			ok++;
	}
	return ok;
}

static void test_disk_full(void **state)
{
	(void)state;
	na_test_daemon d;
	memset(&d, 0, sizeof d);
	d.extra[0] = "--map-size";
	d.extra[1] = "1M";
	d.extra[2] = "--max-map-size";
	d.extra[3] = "4M";
	assert_int_equal(na_test_daemon_start(&d), 0);
	na_trpc t;
	na_trpc_init(&t, na_test_connect_tcp(&d));
	uint64_t seed = 0x9e3779b97f4a7c15ULL;
	char code[32] = "";
	int stored = 0;
	for (int round = 0; round < 400 && !code[0]; round++)
		stored += put_batch(&t, stored, 10, &seed, code, sizeof code);
	assert_string_equal(code, "NO_SPACE");
	assert_true(stored > 0);
	/* reads keep working, and what was stored is intact */
	msgpack_sbuffer p;
	msgpack_packer pk;
	msgpack_object err, res;
	for (int i = 0; i < stored; i += 7) {
		msgpack_sbuffer_init(&p);
		msgpack_packer_init(&pk, &p, msgpack_sbuffer_write);
		char g[32];
		snprintf(g, sizeof g, "full-%05d", i);
		na_mp_pack_cstr(&pk, g);
		assert_int_equal(na_trpc_call(&t, "get", 1, &p, &err, &res), 1);
		msgpack_sbuffer_destroy(&p);
		assert_int_equal(err.type, MSGPACK_OBJECT_NIL);
		assert_int_equal(na_obj_get(&res, "body")->via.str.size, 4000);
	}
	assert_int_equal(na_trpc_call(&t, "count", 0, NULL, &err, &res), 1);
	assert_int_equal(res.via.u64, (uint64_t)stored);
	/* delete half; writes work again */
	for (int i = 0; i < stored; i += 2) {
		msgpack_sbuffer_init(&p);
		msgpack_packer_init(&pk, &p, msgpack_sbuffer_write);
		char g[32];
		snprintf(g, sizeof g, "full-%05d", i);
		na_mp_pack_cstr(&pk, g);
		assert_int_equal(na_trpc_call(&t, "delete", 1, &p, &err, &res), 1);
		msgpack_sbuffer_destroy(&p);
		assert_int_equal(err.type, MSGPACK_OBJECT_NIL);
	}
	code[0] = 0;
	assert_int_equal(put_batch(&t, 100000, 5, &seed, code, sizeof code), 5);
	na_trpc_close(&t);
	/* nothing is corrupted */
	assert_int_equal(na_test_daemon_stop(&d), 0);
	pid_t pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		if (null >= 0)
			dup2(null, 1);
		execl(getenv("NEWSARCHD"), "newsarchd", "--verify", "--data", d.data, (char *)NULL);
		_exit(127);
	}
	int st;
	waitpid(pid, &st, 0);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_int_equal(na_test_daemon_cleanup(&d), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_slow_sender_is_cut_off),
		cmocka_unit_test(test_max_connections),
		cmocka_unit_test(test_disk_full),
	};
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("limits", tests, NULL, NULL);
}
