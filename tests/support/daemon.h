/*
 * daemon.h - test support: run a real newsarchd in a temporary directory.
 *
 * The daemon binary is $NEWSARCHD (tests/run.sh sets it). A started daemon
 * listens on 127.0.0.1:<free port> and on <dir>/newsarchd.sock; start
 * returns only once the daemon sent READY=1 on a NOTIFY_SOCKET owned by the
 * test (no sleeps). stop sends SIGTERM and reaps the process by its PID.
 */
#ifndef NA_TEST_DAEMON_H
#define NA_TEST_DAEMON_H

#include <stddef.h>
#include <sys/types.h>

typedef struct na_test_daemon {
	pid_t pid;              /* 0 when not running */
	int port;               /* TCP port on 127.0.0.1 */
	char dir[256];          /* temp dir; data lives in dir/data */
	char data[300];         /* dir/data */
	char sock[300];         /* dir/newsarchd.sock */
	char addr[64];          /* "127.0.0.1:PORT" */
	char uaddr[310];        /* "unix:" + sock */
	char log[300];          /* dir/daemon.log: the daemon's stderr */
	const char *extra[32];  /* extra command-line arguments, NULL-ended */
} na_test_daemon;

/* Creates a temp dir, picks a free port, starts the daemon with
 * `--data dir/data --listen 127.0.0.1:PORT --socket dir/newsarchd.sock`
 * plus d->extra (set before the call), and waits for READY=1 (30 s at most).
 * Returns 0, or -1 (with the daemon log printed to stderr). */
int na_test_daemon_start(na_test_daemon *d);
/* Starts again on the same directory and port (after stop or kill). */
int na_test_daemon_restart(na_test_daemon *d);
/* SIGTERM and wait; returns the exit status (as from waitpid), -1 if none. */
int na_test_daemon_stop(na_test_daemon *d);
/* SIGKILL and wait. */
void na_test_daemon_kill(na_test_daemon *d);
/* Stops if running and removes the temp directory. Returns 0, or -1 when
 * the daemon did not exit with status 0 (its log is then printed): under
 * the sanitizers that is how a leak or memory error in the daemon shows. */
int na_test_daemon_cleanup(na_test_daemon *d);
/* A TCP port on 127.0.0.1 that nothing listens on right now; -1 on failure. */
int na_test_free_port(void);
/* VmRSS of a process in kB, -1 if unknown. */
long na_test_rss_kb(pid_t pid);
/* A blocking TCP connection to the daemon; -1 on failure. */
int na_test_connect_tcp(const na_test_daemon *d);
/* A blocking Unix-socket connection to the daemon; -1 on failure. */
int na_test_connect_unix(const na_test_daemon *d);
/* Damage a stopped daemon's archive in data: junk in place of the first
 * article's record (verify finds it). 0 or -1. */
int na_test_damage_article(const char *data);
/* Leave in data what a machine that stopped with relaxed commits unsynced
 * leaves: the archive's marker, written in another boot. 0 or -1. */
int na_test_mark_unsynced_earlier_boot(const char *data);

#endif
