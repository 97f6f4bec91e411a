/*
 * test_crash.c - crash consistency. 25 times: start newsarchd on the same
 * archive, ingest while recording every acknowledgement, SIGKILL it at a
 * random moment (after a random number of acknowledged batches, with more
 * batches in flight), restart, and check that every acknowledged article is
 * present with exactly the bytes that were sent, and that the offline
 * verify finds nothing wrong.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#include "daemon.h"
#include "testrpc.h"

#define ROUNDS 25
#define BATCH 200
#define MAX_ACKED 200000

/* What was acknowledged: guid number -> content version. */
static uint32_t version_of[MAX_ACKED];
static int highest;

static void pack(msgpack_packer *pk, int id, uint32_t version)
{
	char g[32], body[160];
	snprintf(g, sizeof g, "crash-%06d", id);
	snprintf(body, sizeof body, "version %u of article %d: the quick brown fox %d", version, id,
		 id * 7919 % 1000);
	na_pack_article(pk, g, 1000000 + id, 0, "Crash test", body);
}

static int run_verify(const char *data)
{
	pid_t pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		if (null >= 0) {
			dup2(null, 1);
		}
		execl(getenv("NEWSARCHD"), "newsarchd", "--verify", "--data", data, (char *)NULL);
		_exit(127);
	}
	int st;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Every acknowledged article is there, holding the acknowledged version or
 * the one a batch in flight at the kill carried (such a write may have
 * committed without its reply getting out). Afterwards version_of holds
 * what is stored. */
static void check_all(na_test_daemon *d, int round, uint32_t inflight_version)
{
	na_trpc t;
	na_trpc_init(&t, na_test_connect_tcp(d));
	int found = 0;
	for (int id = 0; id < highest; id++) {
		if (!version_of[id])
			continue;
		msgpack_sbuffer p;
		msgpack_packer pk;
		msgpack_sbuffer_init(&p);
		msgpack_packer_init(&pk, &p, msgpack_sbuffer_write);
		char g[32];
		snprintf(g, sizeof g, "crash-%06d", id);
		na_mp_pack_cstr(&pk, g);
		msgpack_object err, res;
		assert_int_equal(na_trpc_call(&t, "get", 1, &p, &err, &res), 1);
		msgpack_sbuffer_destroy(&p);
		if (err.type != MSGPACK_OBJECT_NIL)
			fail_msg("round %d: acknowledged %s (version %u) is missing", round, g, version_of[id]);
		msgpack_sbuffer want, got;
		msgpack_sbuffer_init(&want);
		msgpack_sbuffer_init(&got);
		msgpack_packer wp, gp;
		msgpack_packer_init(&wp, &want, msgpack_sbuffer_write);
		msgpack_packer_init(&gp, &got, msgpack_sbuffer_write);
		msgpack_pack_object(&gp, res);
		uint32_t cands[2] = { version_of[id], inflight_version };
		bool ok = false;
		for (int k = 0; k < 2 && !ok; k++) {
			want.size = 0;
			pack(&wp, id, cands[k]);
			ok = want.size == got.size && memcmp(want.data, got.data, got.size) == 0;
			if (ok)
				version_of[id] = cands[k];
		}
		if (!ok)
			fail_msg("round %d: %s does not hold an acknowledged version (%u)", round, g,
				 version_of[id]);
		msgpack_sbuffer_destroy(&want);
		msgpack_sbuffer_destroy(&got);
		found++;
	}
	na_trpc_close(&t);
	assert_true(found > 0);
}

static void test_kill_during_ingest(void **state)
{
	(void)state;
	na_test_daemon d;
	memset(&d, 0, sizeof d);
	d.extra[0] = "--log-level";
	d.extra[1] = "warn";
	d.extra[2] = "--train-min";
	d.extra[3] = "1000";
	/* compaction into blocks runs between the rounds and may be killed too */
	d.extra[4] = "--block-bytes";
	d.extra[5] = "16K";
	assert_int_equal(na_test_daemon_start(&d), 0);
	srandom(4242);
	int next_id = 0;
	for (int round = 1; round <= ROUNDS; round++) {
		na_trpc t;
		na_trpc_init(&t, na_test_connect_tcp(&d));
		/* new articles are version 1; this round's rewrites are round + 1 */
		uint32_t v = (uint32_t)round + 1;
		int kill_after = 1 + (int)(random() % 12);
		int acked = 0, sent = 0;
		while (acked < kill_after) {
			while (sent - acked < 4) { /* four batches in flight */
				msgpack_sbuffer p;
				msgpack_packer pk;
				msgpack_sbuffer_init(&p);
				msgpack_packer_init(&pk, &p, msgpack_sbuffer_write);
				msgpack_pack_array(&pk, BATCH);
				int base = next_id;
				for (int i = 0; i < BATCH; i++) {
					bool fresh = i % 2 || base == 0;
					int id = fresh ? next_id++ : (int)(random() % base);
					pack(&pk, id, fresh ? 1 : v);
				}
				assert_true(na_trpc_request(&t, "put_batch", 1, &p) != 0);
				msgpack_sbuffer_destroy(&p);
				sent++;
			}
			msgpack_object o;
			assert_int_equal(na_trpc_read(&t, &o), 1);
			assert_int_equal(o.via.array.ptr[2].type, MSGPACK_OBJECT_NIL);
			msgpack_object *r = &o.via.array.ptr[3];
			for (uint32_t i = 0; i < r->via.array.size; i++) {
				const msgpack_object *g = na_obj_get(&r->via.array.ptr[i], "guid");
				const msgpack_object *st = na_obj_get(&r->via.array.ptr[i], "status");
				assert_non_null(g);
				assert_non_null(st);
				char gs[32];
				snprintf(gs, sizeof gs, "%.*s", (int)g->via.str.size, g->via.str.ptr);
				int id = atoi(gs + 6);
				assert_true(id >= 0 && id < MAX_ACKED);
				if (na_obj_streq(st, "created"))
					version_of[id] = version_of[id] ? version_of[id] : 1;
				else if (na_obj_streq(st, "updated"))
					version_of[id] = v; /* only rewrites carry a new version */
				if (id + 1 > highest)
					highest = id + 1;
			}
			acked++;
		}
		/* four batches are still in flight: the daemon dies under them */
		na_test_daemon_kill(&d);
		na_trpc_close(&t);
		assert_int_equal(run_verify(d.data), 0);
		assert_int_equal(na_test_daemon_restart(&d), 0);
		check_all(&d, round, v);
	}
	assert_int_equal(na_test_daemon_cleanup(&d), 0);
}

static bool exists(const char *path)
{
	struct stat sb;
	return stat(path, &sb) == 0;
}

static bool log_has(const char *path, const char *needle)
{
	FILE *f = fopen(path, "r");
	char line[4096];
	bool found = false;
	while (f && !found && fgets(line, sizeof line, f))
		found = strstr(line, needle) != NULL;
	if (f)
		fclose(f);
	return found;
}

static int put_some(na_test_daemon *d, int first, int n)
{
	na_trpc t;
	na_trpc_init(&t, na_test_connect_tcp(d));
	msgpack_sbuffer p;
	msgpack_packer pk;
	msgpack_sbuffer_init(&p);
	msgpack_packer_init(&pk, &p, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, (uint32_t)n);
	for (int i = first; i < first + n; i++)
		pack(&pk, i, 1);
	msgpack_object err, res;
	int rc = na_trpc_call(&t, "put_batch", 1, &p, &err, &res) == 1 &&
			 err.type == MSGPACK_OBJECT_NIL ? 0 : -1;
	msgpack_sbuffer_destroy(&p);
	na_trpc_close(&t);
	return rc;
}

/* Relaxed durability keeps DIR/unsynced while commits may not be on disk.
 * Found from an earlier boot, the server verifies the archive before
 * serving: it goes on when nothing is damaged and refuses to start when
 * something is, rather than serve torn pages. */
static void test_machine_stop_with_relaxed_commits(void **state)
{
	(void)state;
	na_test_daemon d;
	memset(&d, 0, sizeof d);
	d.extra[0] = "--durability";
	d.extra[1] = "relaxed";
	assert_int_equal(na_test_daemon_start(&d), 0);
	char mark[400];
	snprintf(mark, sizeof mark, "%s/unsynced", d.data);
	/* the marker is on disk before the first unsynced commit, so before
	 * its acknowledgement */
	int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	assert_true(in >= 0);
	assert_true(inotify_add_watch(in, d.data, IN_CREATE) >= 0);
	assert_int_equal(put_some(&d, 0, 300), 0);
	char ev[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool created = false;
	ssize_t got;
	while ((got = read(in, ev, sizeof ev)) > 0)
		for (char *q = ev; q < ev + got;) {
			struct inotify_event *e = (struct inotify_event *)q;
			created |= e->len && strcmp(e->name, "unsynced") == 0;
			q += sizeof *e + e->len;
		}
	close(in);
	assert_true(created);
	/* the once-a-second sync covers the batch and removes the marker */
	for (int i = 0; i < 100 && exists(mark); i++) {
		struct timespec ts = { 0, 100 * 1000000 };
		nanosleep(&ts, NULL); /* polling a condition, with a deadline */
	}
	assert_false(exists(mark));
	assert_int_equal(put_some(&d, 300, 300), 0);
	na_test_daemon_kill(&d);

	/* no damage: verified, served, marker gone */
	assert_int_equal(na_test_mark_unsynced_earlier_boot(d.data), 0);
	assert_int_equal(na_test_daemon_restart(&d), 0);
	assert_true(log_has(d.log, "verifying the archive before serving"));
	assert_true(log_has(d.log, "600 articles verified, no damage"));
	assert_false(exists(mark));
	highest = 600;
	for (int i = 0; i < 600; i++)
		version_of[i] = 1;
	check_all(&d, 0, 1);
	memset(version_of, 0, sizeof version_of);
	highest = 0;
	assert_int_equal(na_test_daemon_stop(&d), 0);
	assert_false(exists(mark)); /* a clean stop leaves none */

	/* a torn record: the server refuses to start */
	assert_int_equal(na_test_damage_article(d.data), 0);
	assert_int_equal(na_test_mark_unsynced_earlier_boot(d.data), 0);
	fprintf(stderr, "(a refused start and its log follow: expected)\n");
	assert_int_equal(na_test_daemon_restart(&d), -1);
	assert_true(log_has(d.log, "the archive is damaged"));
	assert_true(exists(mark)); /* still: the next start checks again */
	na_test_daemon_cleanup(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_machine_stop_with_relaxed_commits),
		cmocka_unit_test(test_kill_during_ingest),
	};
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("crash", tests, NULL, NULL);
}
