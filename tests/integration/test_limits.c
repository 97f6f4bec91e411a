/*
 * test_limits.c - limits that protect the server: slow senders are cut off
 * after request_timeout, connections beyond max_connections get an error
 * and are closed, idle connections are closed after idle_timeout (feed
 * subscribers excepted), and a full archive refuses writes with NO_SPACE while
 * reads go on, then accepts writes again after deletes: once when the map
 * reaches max_map_size, once (as root) when the filesystem under the data
 * directory, a small tmpfs, runs out of space.
 */
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <time.h>
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

static int put_batch(na_trpc *t, int first, int n, uint64_t *seed, char *code, size_t codelen,
		     const char *why)
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
		if (e) {
			na_obj_code(e, code, codelen);
			/* the message says which limit was hit */
			const msgpack_object *m = na_obj_get(e, "message");
			assert_non_null(m);
			assert_int_equal(m->type, MSGPACK_OBJECT_STR);
			if (!memmem(m->via.str.ptr, m->via.str.size, why, strlen(why)))
				fail_msg("%.*s: %.*s (expected a message naming %s)", (int)strlen(code),
					 code, (int)m->via.str.size, m->via.str.ptr, why);
		} else
			ok++;
	}
	return ok;
}

/* Calls method with the guid full-NNNNN as its one param. */
static void guid_call(na_trpc *t, const char *method, int n, msgpack_object *err,
		      msgpack_object *res)
{
	msgpack_sbuffer p;
	msgpack_packer pk;
	msgpack_sbuffer_init(&p);
	msgpack_packer_init(&pk, &p, msgpack_sbuffer_write);
	char g[32];
	snprintf(g, sizeof g, "full-%05d", n);
	na_mp_pack_cstr(&pk, g);
	assert_int_equal(na_trpc_call(t, method, 1, &p, err, res), 1);
	msgpack_sbuffer_destroy(&p);
}

/* Fills the archive of a started daemon with batches of `batch` articles
 * until writes fail with NO_SPACE and a message containing `why`; checks
 * that reads work and everything stored is intact, and that deleting half
 * makes writes work again. Does this `cycles` times (each cycle fills the
 * room the last one freed), then checks that the offline verify of
 * `datadir` passes once the daemon stopped. */
static void fill_until_full(na_test_daemon *d, const char *datadir, const char *why, int batch,
			    int cycles)
{
	na_trpc t;
	na_trpc_init(&t, na_test_connect_tcp(d));
	uint64_t seed = 0x9e3779b97f4a7c15ULL;
	uint64_t live = 0;
	for (int cycle = 0; cycle < cycles; cycle++) {
		int base = cycle * 10000;
		char code[32] = "";
		int stored = 0;
		for (int round = 0; round < 4000 && !code[0]; round++)
			stored += put_batch(&t, base + stored, batch, &seed, code, sizeof code, why);
		assert_string_equal(code, "NO_SPACE");
		assert_true(stored > 0);
		live += (uint64_t)stored;
		/* reads keep working, and what was stored is intact */
		msgpack_object err, res;
		for (int i = 0; i < stored; i += 7) {
			guid_call(&t, "get", base + i, &err, &res);
			assert_int_equal(err.type, MSGPACK_OBJECT_NIL);
			assert_int_equal(na_obj_get(&res, "body")->via.str.size, 4000);
		}
		assert_int_equal(na_trpc_call(&t, "count", 0, NULL, &err, &res), 1);
		assert_int_equal(res.via.u64, live);
		/* stats show the reserve kept for deletes: 1/64 of the map, at
		 * least 256 KiB */
		assert_int_equal(na_trpc_call(&t, "stats", 0, NULL, &err, &res), 1);
		const msgpack_object *rv = na_obj_get(&res, "map_reserve");
		assert_non_null(rv);
		if (strcmp(why, "max_map_size") == 0)
			assert_int_equal(rv->via.u64, 256 << 10);
		/* a full archive can always be thinned: delete half of this
		 * cycle's articles, one by one */
		for (int i = 0; i < stored; i += 2) {
			guid_call(&t, "delete", base + i, &err, &res);
			if (err.type != MSGPACK_OBJECT_NIL) {
				const msgpack_object *m = na_obj_get(&err, "message");
				fail_msg("cycle %d: delete %d of %d: %.*s", cycle, i, stored,
					 m ? (int)m->via.str.size : 0, m ? m->via.str.ptr : "");
			}
			live--;
		}
		/* and writes work again */
		code[0] = 0;
		assert_int_equal(put_batch(&t, base + 9000, 5, &seed, code, sizeof code, why), 5);
		live += 5;
	}
	na_trpc_close(&t);
	/* nothing is corrupted */
	assert_int_equal(na_test_daemon_stop(d), 0);
	pid_t pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		if (null >= 0)
			dup2(null, 1);
		execl(getenv("NEWSARCHD"), "newsarchd", "--verify", "--data", datadir, (char *)NULL);
		_exit(127);
	}
	int st;
	waitpid(pid, &st, 0);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* The daemon of the map-full tests; the teardown stops it even when an
 * assertion failed. */
static na_test_daemon full_d;

static int full_teardown(void **state)
{
	(void)state;
	if (full_d.dir[0])
		na_test_daemon_cleanup(&full_d);
	return 0;
}

static void start_small_map(void)
{
	memset(&full_d, 0, sizeof full_d);
	full_d.extra[0] = "--map-size";
	full_d.extra[1] = "1M";
	full_d.extra[2] = "--max-map-size";
	full_d.extra[3] = "4M";
	assert_int_equal(na_test_daemon_start(&full_d), 0);
}

/* The map reaches max_map_size. */
static void test_disk_full(void **state)
{
	(void)state;
	start_small_map();
	fill_until_full(&full_d, full_d.data, "max_map_size", 10, 1);
	assert_int_equal(na_test_daemon_cleanup(&full_d), 0);
}

/* The same with one article per request, three times over: each time,
 * deletes must go through (before the writer kept a reserve of free pages,
 * the first delete after a full map sometimes found none to write to). */
static void test_disk_full_by_one(void **state)
{
	(void)state;
	start_small_map();
	fill_until_full(&full_d, full_d.data, "max_map_size", 1, 3);
	assert_int_equal(na_test_daemon_cleanup(&full_d), 0);
}

/* The filesystem fills up long before the map does: the data directory is
 * a 3 MiB tmpfs (needs root to mount; skipped otherwise). The teardown
 * stops the daemon and unmounts even when an assertion failed. */
static struct {
	na_test_daemon d;
	char mnt[64];
	bool mounted;
} fs;

static int filesystem_teardown(void **state);

static void filesystem_full(const char *durability)
{
	memset(&fs, 0, sizeof fs);
	snprintf(fs.mnt, sizeof fs.mnt, "/tmp/newsarch-tmpfs-XXXXXX");
	if (geteuid() != 0 || !mkdtemp(fs.mnt)) {
		skip();
		return;
	}
	if (mount("tmpfs", fs.mnt, "tmpfs", 0, "size=3m,mode=0700") != 0) {
		rmdir(fs.mnt);
		skip();
		return;
	}
	fs.mounted = true;
	fs.d.extra[0] = "--data";
	fs.d.extra[1] = fs.mnt;
	fs.d.extra[2] = "--map-size";
	fs.d.extra[3] = "64M";
	fs.d.extra[4] = "--durability";
	fs.d.extra[5] = durability;
	assert_int_equal(na_test_daemon_start(&fs.d), 0);
	fill_until_full(&fs.d, fs.mnt, "filesystem", 1, 3);
	assert_int_equal(na_test_daemon_cleanup(&fs.d), 0);
}

static void test_filesystem_full(void **state)
{
	(void)state;
	filesystem_full("strict");
}

/* Relaxed: a commit needs the unsynced marker on disk first, and a
 * filesystem filled by something else may refuse to create it; a delete
 * must still go through (such commits are synced one by one). */
static void test_filesystem_full_relaxed(void **state)
{
	(void)state;
	filesystem_full("relaxed");
	filesystem_teardown(NULL); /* unmount the first tmpfs before the second */
	memset(&fs, 0, sizeof fs);
	snprintf(fs.mnt, sizeof fs.mnt, "/tmp/newsarch-tmpfs-XXXXXX");
	assert_non_null(mkdtemp(fs.mnt));
	assert_int_equal(mount("tmpfs", fs.mnt, "tmpfs", 0, "size=8m,mode=0700"), 0);
	fs.mounted = true;
	char data[128], mark[160], filler[160];
	snprintf(data, sizeof data, "%s/data", fs.mnt);
	snprintf(mark, sizeof mark, "%s/unsynced", data);
	snprintf(filler, sizeof filler, "%s/filler", fs.mnt);
	const char *args[] = { "--data", data, "--map-size", "4M", "--durability", "relaxed", NULL };
	for (int i = 0; args[i]; i++)
		fs.d.extra[i] = args[i];
	assert_int_equal(na_test_daemon_start(&fs.d), 0);
	na_trpc t;
	na_trpc_init(&t, na_test_connect_tcp(&fs.d));
	uint64_t seed = 1;
	char code[32] = "";
	assert_int_equal(put_batch(&t, 0, 30, &seed, code, sizeof code, "filesystem"), 30);
	/* deletes leave free pages in the file for the next ones to reuse */
	msgpack_object err, res;
	for (int i = 10; i < 30; i++) {
		guid_call(&t, "delete", i, &err, &res);
		assert_int_equal(err.type, MSGPACK_OBJECT_NIL);
	}
	/* the sync removes the marker (polled, with a deadline) */
	struct stat sb;
	for (int i = 0; i < 100 && stat(mark, &sb) == 0; i++) {
		struct timespec ts = { 0, 100 * 1000000 };
		nanosleep(&ts, NULL);
	}
	assert_int_not_equal(stat(mark, &sb), 0);
	/* someone else fills the filesystem */
	int fd = open(filler, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	static char block[64 << 10];
	while (write(fd, block, sizeof block) > 0)
		;
	while (write(fd, block, 512) > 0)
		;
	close(fd);
	guid_call(&t, "delete", 1, &err, &res);
	assert_int_equal(err.type, MSGPACK_OBJECT_NIL);
	assert_true(na_obj_get(&res, "deleted")->via.boolean);
	guid_call(&t, "get", 0, &err, &res);
	assert_int_equal(err.type, MSGPACK_OBJECT_NIL);
	na_trpc_close(&t);
	unlink(filler);
	assert_int_equal(na_test_daemon_cleanup(&fs.d), 0);
}

static int filesystem_teardown(void **state)
{
	(void)state;
	if (fs.d.dir[0])
		na_test_daemon_cleanup(&fs.d);
	if (fs.mounted) {
		umount2(fs.mnt, MNT_DETACH);
		rmdir(fs.mnt);
	}
	return 0;
}

/* idle_timeout closes a connection that sent nothing for that long, but not
 * a change-feed subscriber, which only receives. The subscriber is opened
 * first, so it has been idle longer than the plain connection when that
 * one is closed; a later put reaching it proves it is still open. */
static void test_idle_timeout(void **state)
{
	(void)state;
	na_test_daemon d;
	memset(&d, 0, sizeof d);
	d.extra[0] = "--idle-timeout";
	d.extra[1] = "1";
	assert_int_equal(na_test_daemon_start(&d), 0);
	msgpack_sbuffer p;
	msgpack_packer pk;
	msgpack_object err, res;
	na_trpc sub;
	na_trpc_init(&sub, na_test_connect_tcp(&d));
	msgpack_sbuffer_init(&p);
	msgpack_packer_init(&pk, &p, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 0);
	assert_int_equal(na_trpc_call(&sub, "subscribe", 1, &p, &err, &res), 1);
	msgpack_sbuffer_destroy(&p);
	assert_int_equal(err.type, MSGPACK_OBJECT_NIL);

	int fd = na_test_connect_tcp(&d);
	assert_true(fd >= 0);
	na_trpc plain;
	na_trpc_init(&plain, fd);
	ping_ok(&plain);
	/* wait (bounded) for the server to close the idle connection */
	struct pollfd pf = { .fd = fd, .events = POLLIN };
	assert_int_equal(poll(&pf, 1, 20000), 1);
	char b;
	assert_int_equal(recv(fd, &b, 1, 0), 0);
	na_trpc_close(&plain);

	/* the subscriber still receives */
	na_trpc w;
	na_trpc_init(&w, na_test_connect_tcp(&d));
	uint64_t seed = 1;
	char code[32];
	assert_int_equal(put_batch(&w, 0, 1, &seed, code, sizeof code, ""), 1);
	na_trpc_close(&w);
	bool got = false;
	for (int k = 0; k < 100 && !got; k++) {
		msgpack_object o;
		assert_int_equal(na_trpc_read(&sub, &o), 1);
		got = o.type == MSGPACK_OBJECT_ARRAY && o.via.array.size == 3 &&
		      na_obj_streq(&o.via.array.ptr[1], "log");
	}
	assert_true(got);
	na_trpc_close(&sub);
	assert_int_equal(na_test_daemon_cleanup(&d), 0);
}

/* Writes waiting for replicas end on the once-a-second tick. Ending one
 * resumes its connection (it was at max_pending), which then reads a bad
 * byte and is closed, and closing a feed subscriber ends its other waits
 * from inside the first pass over them (under ASan the server used to read
 * a freed wait here). The server must go on serving. */
static void test_waits_end_while_connection_closes(void **state)
{
	(void)state;
	na_test_daemon d;
	memset(&d, 0, sizeof d);
	d.extra[0] = "--max-pending";
	d.extra[1] = "4";
	assert_int_equal(na_test_daemon_start(&d), 0);
	na_trpc t;
	na_trpc_init(&t, na_test_connect_tcp(&d));
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 0);
	msgpack_object err, res;
	assert_int_equal(na_trpc_call(&t, "subscribe", 1, &sb, &err, &res), 1);
	assert_int_equal(err.type, MSGPACK_OBJECT_NIL);
	/* four puts that wait for a replica nobody has, then a byte that is
	 * not MessagePack, in one send: the byte waits behind them */
	msgpack_sbuffer_clear(&sb);
	static const uint32_t timeout[4] = { 1100, 1100, 60000, 60000 };
	for (uint32_t i = 0; i < 4; i++) {
		msgpack_pack_array(&pk, 4);
		msgpack_pack_uint8(&pk, 0);
		msgpack_pack_uint32(&pk, 100 + i);
		na_mp_pack_cstr(&pk, "put");
		msgpack_pack_array(&pk, 2);
		char guid[32];
		snprintf(guid, sizeof guid, "urn:wait:%u", i);
		na_pack_article(&pk, guid, 1700000000 + i, 0, "waiting", NULL);
		msgpack_pack_map(&pk, 2);
		na_mp_pack_cstr(&pk, "replicas");
		msgpack_pack_uint32(&pk, 1);
		na_mp_pack_cstr(&pk, "timeout_ms");
		msgpack_pack_uint32(&pk, timeout[i]);
	}
	msgpack_sbuffer_write(&sb, "\xc1", 1);
	assert_int_equal(na_trpc_send(&t, sb.data, sb.size), 0);
	msgpack_sbuffer_destroy(&sb);
	/* replies and feed notifications, then the server hangs up */
	t.timeout_ms = 15000;
	msgpack_object o;
	int r;
	while ((r = na_trpc_read(&t, &o)) == 1)
		;
	assert_int_equal(r, 0);
	na_trpc_close(&t);
	na_trpc other;
	na_trpc_init(&other, na_test_connect_tcp(&d));
	ping_ok(&other);
	na_trpc_close(&other);
	assert_int_equal(na_test_daemon_cleanup(&d), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_slow_sender_is_cut_off),
		cmocka_unit_test(test_max_connections),
		cmocka_unit_test(test_idle_timeout),
		cmocka_unit_test(test_waits_end_while_connection_closes),
		cmocka_unit_test_teardown(test_disk_full, full_teardown),
		cmocka_unit_test_teardown(test_disk_full_by_one, full_teardown),
		cmocka_unit_test_teardown(test_filesystem_full, filesystem_teardown),
		cmocka_unit_test_teardown(test_filesystem_full_relaxed, filesystem_teardown),
	};
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("limits", tests, NULL, NULL);
}
