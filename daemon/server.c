/*
 * server.c - listeners, accepting clients, signals and the once-a-second
 * housekeeping tick (idle timeouts, forced close at shutdown).
 */
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <grp.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "index.h"
#include "log.h"
#include "rpc.h"
#include "server.h"
#include "verify.h"

#define SHUTDOWN_GRACE_MS 10000

/* SIGHUP: read the configuration again (file, then the same flags) and
 * apply what can change while running; say what needs a restart. */
static void reload(na_server *s)
{
	na_config n;
	bool help, version, verify;
	char err[512];
	na_config_defaults(&n);
	if (na_config_args(&n, s->argc, s->argv, &help, &version, &verify, err, sizeof err)) {
		log_error("SIGHUP: configuration not reloaded: %s", err);
		return;
	}
	na_config *c = &s->cfg;
	int changed = 0;
#define LIVE(field, fmt, cast)                                                               \
	if (n.field != c->field) {                                                           \
		log_info("SIGHUP: " #field " " fmt " -> " fmt, cast c->field, cast n.field);    \
		c->field = n.field;                                                          \
		changed++;                                                                   \
	}
	LIVE(max_request_bytes, "%zu", (size_t))
	LIVE(max_depth, "%u", (unsigned))
	LIVE(max_article_bytes, "%zu", (size_t))
	LIVE(max_batch, "%u", (unsigned))
	LIVE(output_queue_bytes, "%zu", (size_t))
	LIVE(max_connections, "%u", (unsigned))
	LIVE(max_pending, "%u", (unsigned))
	LIVE(idle_timeout, "%u", (unsigned))
	LIVE(request_timeout, "%u", (unsigned))
	LIVE(log_retention_bytes, "%zu", (size_t))
	LIVE(log_retention_age, "%u", (unsigned))
	LIVE(train_min, "%llu", (unsigned long long))
	if (n.block_bytes != c->block_bytes)
		na_compact_wrote(s, NULL); /* a pass over everything with the new size */
	LIVE(block_bytes, "%zu", (size_t))
#undef LIVE
	if (n.log_level != c->log_level) {
		log_info("SIGHUP: log_level %s -> %s", na_log_level_name(c->log_level),
			 na_log_level_name(n.log_level));
		c->log_level = n.log_level;
		na_log_set_level(n.log_level);
		changed++;
	}
	__atomic_store_n(&s->writer.log_cap, c->log_retention_bytes, __ATOMIC_RELAXED);
	/* authentication: new connections get the new tokens */
	if (n.token_file[0] && na_tokens_load_file(&n.tokens, n.token_file, err, sizeof err)) {
		log_error("SIGHUP: tokens not reloaded: %s", err);
	} else if (n.tokens.n != c->tokens.n || memcmp(&n.tokens, &c->tokens, sizeof n.tokens) != 0) {
		/* the rule applied at start holds after a reload too: dropping
		 * the last token must not open a non-loopback listener */
		const char *exposed = na_server_exposed(s, n.tokens.n, c->tls_verify_client);
		if (exposed) {
			log_error("SIGHUP: tokens not reloaded, the current %u stay: without a token "
				  "anyone reaching %s could read, write, back up and promote (set "
				  "allow_unauthenticated = yes and restart if that is intended)",
				  c->tokens.n, exposed);
		} else {
			log_info("SIGHUP: tokens reloaded (%u configured)", n.tokens.n);
			c->tokens = n.tokens;
			changed++;
		}
	}
	memset(&n.tokens, 0, sizeof n.tokens);
	changed += na_tls_reload(s, &n);
	if (strcmp(n.follow_token, c->follow_token) != 0)
		log_warn("SIGHUP: follow_token changed; it takes effect after a restart");
#define RESTART(field)                                                                       \
	if (memcmp(&n.field, &c->field, sizeof n.field) != 0)                                \
		log_warn("SIGHUP: " #field " changed; it takes effect after a restart");
	RESTART(data)
	RESTART(listen)
	RESTART(socket)
	RESTART(follow)
	RESTART(relaxed)
	RESTART(map_size)
	RESTART(max_map_size)
	RESTART(compression_level)
	RESTART(literal_compression)
	RESTART(dict_size)
	RESTART(block_level)
	RESTART(index_segment)
	RESTART(index_refresh_ms)
	RESTART(metrics_listen)
	RESTART(allow_unauthenticated)
	RESTART(socket_mode)
	RESTART(socket_group)
	RESTART(tls_listen)
#undef RESTART
	log_info("SIGHUP: configuration reloaded, %d setting%s changed", changed, changed == 1 ? "" : "s");
}

static void on_signal(uv_signal_t *h, int signum)
{
	na_server *s = h->data;
	if (signum == SIGHUP) {
		sd_notify(0, "RELOADING=1");
		reload(s);
		sd_notify(0, "READY=1");
		return;
	}
	log_info("received %s", signum == SIGINT ? "SIGINT" : "SIGTERM");
	sd_notify(0, "STOPPING=1\nSTATUS=stopping");
	na_server_shutdown(s);
}

/* STATUS= for systemctl status: role, size, replication state. */
static void notify_status(na_server *s)
{
	na_store_stats st;
	if (na_store_stats_get(&s->store, &st) != 0)
		return;
	if (s->follower)
		sd_notifyf(0, "STATUS=follower of %s (%s), %llu articles, seq %llu",
			   na_follow_addr(s), na_follow_state(s), (unsigned long long)st.articles,
			   (unsigned long long)s->seq);
	else
		sd_notifyf(0, "STATUS=primary, %llu articles, seq %llu, %u connections",
			   (unsigned long long)st.articles, (unsigned long long)s->seq, s->nconns);
}

static void on_watchdog(uv_timer_t *t)
{
	(void)t;
	sd_notify(0, "WATCHDOG=1");
}

/* writer thread: new log entries for the indexer */
static void ix_committed(void *arg, uint64_t seq)
{
	na_indexer_kick(arg, seq);
}

/* indexer thread: the index covers more of the log */
static void ix_moved(void *arg, uint64_t seq)
{
	(void)seq;
	na_server *s = arg;
	uv_async_send(&s->ix_async);
}

/* loop thread: wake the searches waiting for the index */
static void on_ix_async(uv_async_t *a)
{
	na_server *s = a->data;
	if (s->ix_parked)
		na_repl_wake_index(s, false);
}

static void on_tick(uv_timer_t *t)
{
	na_server *s = t->data;
	uint64_t now = uv_now(s->loop);
	if (!s->stopping) {
		na_repl_tick(s);
		na_repl_wake_index(s, true);
		na_compact_tick(s);
		if (++s->ticks % 5 == 0)
			notify_status(s);
		if (s->ticks % 10 == 0)
			malloc_trim(0); /* hand freed reply and batch memory back to the system */
	}
	if (s->stopping) {
		if (!s->force_close && now - s->stop_ms > SHUTDOWN_GRACE_MS) {
			log_warn("clients did not read their last replies; closing them");
			s->force_close = true;
			na_server_maybe_finish(s);
		}
		return;
	}
	if (s->cfg.request_timeout) {
		for (na_conn *c = s->conns, *next; c; c = next) {
			next = c->next;
			if (c->tls && !c->closing && !na_tls_handshake_done(c->tls) &&
			    now - c->accepted_ms > s->cfg.request_timeout * 1000ULL) {
				log_warn("%s: TLS handshake not finished within %u s (request_timeout); "
					 "closing", c->peer, s->cfg.request_timeout);
				na_conn_close(c);
				continue;
			}
			if (c->partial_since && !c->paused &&
			    now - c->partial_since > s->cfg.request_timeout * 1000ULL) {
				log_warn("%s: sent part of a request and nothing more for %u s; closing",
					 c->peer, s->cfg.request_timeout);
				na_conn_close(c);
			}
		}
	}
	if (s->cfg.idle_timeout) {
		for (na_conn *c = s->conns, *next; c; c = next) {
			next = c->next;
			if (c->pending == 0 && !c->sender &&
			    now - c->last_active > s->cfg.idle_timeout * 1000ULL) {
				log_debug("%s: idle for %u s; closing", c->peer, s->cfg.idle_timeout);
				na_conn_close(c);
			}
		}
	}
}

typedef struct verify_job {
	na_store *store;
	uint64_t articles;
	long problems;
} verify_job;

static void *verify_main(void *arg)
{
	verify_job *v = arg;
	v->problems = na_verify(v->store, stderr, &v->articles);
	return NULL;
}

/* Moves a damaged archive aside (DIR/data.mdb.damaged-TIME, kept for
 * whoever wants to salvage it: a follower that was promoted holds writes
 * nobody else has) and removes what derives from it. 0, or -1 when it
 * could not be moved. */
static int set_archive_aside(const char *dir)
{
	char from[4200], to[4300];
	snprintf(from, sizeof from, "%s/data.mdb", dir);
	snprintf(to, sizeof to, "%s/data.mdb.damaged-%lld", dir, (long long)time(NULL));
	if (rename(from, to) != 0) {
		log_error("cannot move %s aside: %s", from, strerror(errno));
		return -1;
	}
	log_warn("the damaged archive is kept as %s", to);
	static const char *const files[] = { "lock.mdb", "unsynced", "index/data.mdb",
					     "index/lock.mdb", "index/unsynced" };
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		snprintf(from, sizeof from, "%s/%s", dir, files[i]);
		unlink(from);
	}
	return 0;
}

/* The store was opened with commits from an earlier boot that were never
 * synced (relaxed durability): LMDB's pages reach the disk in no set order,
 * so the archive is verified before anything is served from it. On a
 * thread, so that systemd hears from us meanwhile (the start timeout and
 * the watchdog). Undamaged: go on. Damaged: a follower moves its archive
 * aside and starts over empty (its primary sends a snapshot); a primary
 * refuses to start. 0 or -1. */
static int after_machine_stop(na_server *s, const na_store_opts *so)
{
	const na_config *cfg = &s->cfg;
	log_warn("%s: the machine stopped while commits were not yet on disk "
		 "(durability = relaxed); verifying the archive before serving",
		 cfg->data);
	sd_notify(0, "STATUS=verifying the archive after a machine stop");
	verify_job v = { .store = &s->store };
	pthread_t th;
	if (pthread_create(&th, NULL, verify_main, &v) != 0) {
		verify_main(&v);
	} else {
		for (;;) {
			sd_notify(0, "WATCHDOG=1\nEXTEND_TIMEOUT_USEC=30000000");
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 5;
			if (pthread_timedjoin_np(th, NULL, &ts) == 0)
				break;
		}
	}
	if (v.problems == 0) {
		log_info("%s: %llu articles verified, no damage", cfg->data,
			 (unsigned long long)v.articles);
		na_store_unmark_unsynced(&s->store);
		s->store.marked = false;
		return 0;
	}
	const char *why = v.problems < 0 ? "it cannot be read" : "see above";
	na_store_close(&s->store);
	if (!cfg->follow[0]) {
		log_error("%s: the archive is damaged (%s): restore it from a follower or a backup "
			  "(newsarchd --verify lists the problems)",
			  cfg->data, why);
		return -1;
	}
	log_warn("%s: the archive is damaged (%s); a follower starts over: its primary "
		 "sends a snapshot",
		 cfg->data, why);
	/* (a promoted server still started with follow = ... would refuse that
	 * snapshot to keep its own writes, follow.c; its damaged archive is
	 * kept aside rather than removed, for the same reason) */
	if (set_archive_aside(cfg->data))
		return -1;
	const char *msg;
	int rc = na_store_open(&s->store, so, &msg);
	if (rc)
		log_error("%s: %s (%s)", cfg->data, msg, rc > 0 ? mdb_strerror(rc) : strerror(-rc));
	return rc ? -1 : 0;
}

int na_server_init(na_server *s, uv_loop_t *loop, const na_config *cfg)
{
	memset(s, 0, sizeof *s);
	s->loop = loop;
	s->cfg = *cfg;
	if (cfg->token_file[0]) {
		char err[600];
		if (na_tokens_load_file(&s->cfg.tokens, cfg->token_file, err, sizeof err)) {
			log_error("%s", err);
			return -1;
		}
	}
	if (getrandom(s->guard.key, 16, 0) != 16)
		log_warn("getrandom failed; the authentication guard uses a fixed key");
	na_store_opts so = {
		.dir = cfg->data,
		.map_size = cfg->map_size < cfg->max_map_size ? cfg->map_size : cfg->max_map_size,
		.max_map_size = cfg->max_map_size,
		.relaxed = cfg->relaxed,
		.level = cfg->compression_level,
		.block_level = cfg->block_level,
		.raw_literals = !cfg->literal_compression,
		.max_article = cfg->max_article_bytes,
		.fork_history = cfg->follow[0] == 0,
		.index_segment = cfg->index_segment,
		.index_refresh_ms = cfg->index_refresh_ms,
	};
	const char *msg;
	int rc = na_store_open(&s->store, &so, &msg);
	if (rc) {
		log_error("%s: %s (%s)", cfg->data, msg, rc > 0 ? mdb_strerror(rc) : strerror(-rc));
		return -1;
	}
	if (s->store.unclean_stop && (rc = after_machine_stop(s, &so)))
		return -1;
	if (!cfg->relaxed && s->store.marked && mdb_env_sync(s->store.env, 1) == 0) {
		/* left by a relaxed run; strict commits keep no marker */
		na_store_unmark_unsynced(&s->store);
		s->store.marked = false;
	}
	if ((rc = na_writer_start(&s->writer, &s->store, loop, cfg->relaxed))) {
		log_error("cannot start the writer: %s", rc > 0 ? mdb_strerror(rc) : strerror(-rc));
		na_store_close(&s->store);
		return -1;
	}
	uv_async_init(loop, &s->ix_async, on_ix_async);
	s->ix_async.data = s;
	uv_unref((uv_handle_t *)&s->ix_async);
	if ((rc = na_indexer_start(&s->store, ix_moved, s, &s->indexer))) {
		log_error("cannot start the indexer: %s", strerror(-rc));
		uv_close((uv_handle_t *)&s->ix_async, NULL);
		na_writer_stop(&s->writer);
		na_store_close(&s->store);
		return -1;
	}
	na_writer_set_hook(&s->writer, ix_committed, s->indexer);
	s->started_ms = uv_now(loop);
	s->trained_at = 0;
	s->seq = s->writer.seq;
	s->writer.log_cap = cfg->log_retention_bytes;
	s->last_trim_ms = uv_now(loop);
	int sigs[3] = { SIGINT, SIGTERM, SIGHUP };
	for (int i = 0; i < 3; i++) {
		uv_signal_init(loop, &s->sig[i]);
		s->sig[i].data = s;
		uv_signal_start(&s->sig[i], on_signal, sigs[i]);
	}
	uv_timer_init(loop, &s->tick);
	s->tick.data = s;
	uv_timer_start(&s->tick, on_tick, 1000, 1000);
	uv_unref((uv_handle_t *)&s->tick);
	uint64_t wd_usec = 0;
	uv_timer_init(loop, &s->watchdog);
	if (sd_watchdog_enabled(0, &wd_usec) > 0 && wd_usec > 0) {
		/* keep-alives from the loop itself: a stuck loop stops them */
		uint64_t every = wd_usec / 2000;
		uv_timer_start(&s->watchdog, on_watchdog, every ? every : 1, every ? every : 1);
		uv_unref((uv_handle_t *)&s->watchdog);
	}
	return 0;
}

static void peer_name(na_conn *c)
{
	if (c->is_unix) {
		/* The user on the other end, so that the failed-authentication
		 * guard (keyed by what precedes the last ':') tells local users
		 * apart: one of them cannot lock the others out. */
		uv_os_fd_t fd;
		struct ucred cr;
		socklen_t len = sizeof cr;
		if (uv_fileno((uv_handle_t *)&c->h.pipe, &fd) == 0 &&
		    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0)
			snprintf(c->peer, sizeof c->peer, "unix:uid=%u:pid=%d", (unsigned)cr.uid,
				 (int)cr.pid);
		else
			snprintf(c->peer, sizeof c->peer, "unix");
		return;
	}
	struct sockaddr_storage ss;
	int len = sizeof ss;
	if (uv_tcp_getpeername(&c->h.tcp, (struct sockaddr *)&ss, &len) != 0)
		return;
	char ip[INET6_ADDRSTRLEN] = "?";
	int port = 0;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		uv_ip4_name(a, ip, sizeof ip);
		port = ntohs(a->sin_port);
		snprintf(c->peer, sizeof c->peer, "%s:%d", ip, port);
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		uv_ip6_name(a, ip, sizeof ip);
		port = ntohs(a->sin6_port);
		snprintf(c->peer, sizeof c->peer, "[%s]:%d", ip, port);
	}
}

static void on_connection(uv_stream_t *server, int status)
{
	na_server *s = server->data;
	if (status < 0) {
		log_warn("accept failed: %s", uv_strerror(status));
		return;
	}
	na_conn *c = na_conn_new(s);
	if (!c)
		return;
	c->is_unix = server->type == UV_NAMED_PIPE;
	if (c->is_unix)
		uv_pipe_init(s->loop, &c->h.pipe, 0);
	else
		uv_tcp_init(s->loop, &c->h.tcp);
	c->h.handle.data = c;
	if (uv_accept(server, &c->h.stream) != 0) {
		na_conn_close(c);
		return;
	}
	if (!c->is_unix)
		uv_tcp_nodelay(&c->h.tcp, 1);
	peer_name(c);
	s->metrics.accepted++;
	if (server == (uv_stream_t *)&s->tls_tcp) {
		if (s->nconns > s->cfg.max_connections) {
			/* no plaintext notification on a TLS port: just hang up */
			log_warn("%s: refused: %u connections is the limit", c->peer,
				 s->cfg.max_connections);
			na_conn_close(c);
			return;
		}
		if (na_tls_new(s->tls_ctx, NULL, &c->tls) != 0) {
			log_warn("%s: cannot set up TLS (out of memory); closing", c->peer);
			na_conn_close(c);
			return;
		}
		na_conn_start(c);
		return;
	}
	if (s->nconns > s->cfg.max_connections) {
		/* no request yet, so no msgid: a notification says why */
		msgpack_packer pk;
		msgpack_packer_init(&pk, &c->out, msgpack_sbuffer_write);
		msgpack_pack_array(&pk, 3);
		msgpack_pack_uint8(&pk, NA_RPC_NOTIFY);
		na_mp_pack_cstr(&pk, "error");
		msgpack_pack_array(&pk, 1);
		msgpack_pack_map(&pk, 2);
		na_mp_pack_cstr(&pk, "code");
		na_mp_pack_cstr(&pk, "UNAVAILABLE");
		na_mp_pack_cstr(&pk, "message");
		na_mp_pack_cstr(&pk, "too many connections (max_connections)");
		na_conn_flush(c);
		log_warn("%s: refused: %u connections is the limit", c->peer, s->cfg.max_connections);
		na_conn_close(c);
		return;
	}
	na_conn_start(c);
}

/* Parses HOST:PORT or [V6]:PORT. */
static int parse_hostport(const char *a, char *host, size_t hl, int *port)
{
	const char *colon;
	if (a[0] == '[') {
		const char *end = strchr(a, ']');
		if (!end || end[1] != ':' || (size_t)(end - a - 1) >= hl)
			return -1;
		memcpy(host, a + 1, (size_t)(end - a - 1));
		host[end - a - 1] = 0;
		colon = end + 1;
	} else {
		colon = strrchr(a, ':');
		if (!colon || (size_t)(colon - a) >= hl)
			return -1;
		memcpy(host, a, (size_t)(colon - a));
		host[colon - a] = 0;
	}
	char *e;
	long p = strtol(colon + 1, &e, 10);
	if (*e || p < 0 || p > 65535 || colon[1] == 0)
		return -1;
	*port = (int)p;
	return 0;
}

const char *na_server_exposed(const na_server *s, unsigned ntokens, int verify)
{
	if (ntokens > 0 || s->cfg.allow_unauthenticated)
		return NULL;
	if (s->tcp_public)
		return s->cfg.listen;
	if (s->tls_public && verify != NA_TLS_VERIFY_REQUIRE)
		return s->cfg.tls_listen;
	return NULL;
}

/* Binds and listens on a TCP address; 0 or -1 (logged). what: option name. */
static int listen_tcp(na_server *s, uv_tcp_t *h, bool *have, const char *what, const char *addr,
		      bool tls)
{
	char host[128];
	int port;
	struct sockaddr_storage ss;
	if (parse_hostport(addr, host, sizeof host, &port) ||
	    (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 &&
	     uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0)) {
		log_error("%s: \"%s\" is not HOST:PORT with a numeric address", what, addr);
		return -1;
	}
	bool loopback = strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0;
	if (tls)
		s->tls_public = !loopback;
	else
		s->tcp_public = !loopback;
	if (!loopback && s->cfg.tokens.n == 0) {
		if (tls && s->cfg.tls_verify_client == NA_TLS_VERIFY_REQUIRE) {
			log_warn("%s: no token configured: every client holding a certificate signed "
				 "by tls_ca may read, write, back up and promote (tls_ca must be a "
				 "private CA for client certificates)", addr);
		} else if (!s->cfg.allow_unauthenticated) {
			log_error("refusing to listen on %s without authentication: configure a "
				  "token%s (or set allow_unauthenticated = yes)", addr,
				  tls ? " or tls_verify_client = require" : "");
			return -1;
		} else {
			log_warn("listening on %s WITHOUT AUTHENTICATION (allow_unauthenticated = yes): "
				 "anyone who can reach it can read, write, back up and promote", addr);
		}
	}
	uv_tcp_init(s->loop, h);
	h->data = s;
	*have = true;
	int rc = uv_tcp_bind(h, (struct sockaddr *)&ss, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)h, 511, on_connection);
	if (rc) {
		log_error("cannot listen on %s: %s", addr, uv_strerror(rc));
		return -1;
	}
	log_info("listening on %s%s", tls ? "tls://" : "", addr);
	return 0;
}

int na_server_listen(na_server *s)
{
	const na_config *cfg = &s->cfg;
	if (cfg->listen[0] && strcmp(cfg->listen, "none") != 0) {
		if (listen_tcp(s, &s->tcp, &s->have_tcp, "listen", cfg->listen, false))
			return -1;
	}
	if (cfg->tls_listen[0]) {
		if (na_tls_setup(s))
			return -1;
		if (listen_tcp(s, &s->tls_tcp, &s->have_tls, "tls_listen", cfg->tls_listen, true))
			return -1;
	}
	if (cfg->socket[0]) {
		struct stat st;
		/* a socket left by a previous run would make bind fail */
		if (lstat(cfg->socket, &st) == 0 && S_ISSOCK(st.st_mode))
			unlink(cfg->socket);
		uv_pipe_init(s->loop, &s->pipe, 0);
		s->pipe.data = s;
		s->have_pipe = true;
		int rc = uv_pipe_bind(&s->pipe, cfg->socket);
		if (rc == 0)
			rc = uv_listen((uv_stream_t *)&s->pipe, 511, on_connection);
		if (rc) {
			log_error("cannot listen on %s: %s", cfg->socket, uv_strerror(rc));
			return -1;
		}
		if (chmod(cfg->socket, (mode_t)strtol(cfg->socket_mode, NULL, 8)) != 0)
			log_warn("cannot set the mode of %s: %s", cfg->socket, strerror(errno));
		if (cfg->socket_group[0]) {
			struct group *g = getgrnam(cfg->socket_group);
			if (!g || chown(cfg->socket, (uid_t)-1, g->gr_gid) != 0) {
				log_error("cannot give %s to group %s", cfg->socket, cfg->socket_group);
				return -1;
			}
		}
		log_info("listening on unix:%s", cfg->socket);
	}
	if (!s->have_tcp && !s->have_pipe && !s->have_tls) {
		log_error("nothing to listen on: set listen, tls_listen or socket");
		return -1;
	}
	if (cfg->metrics_listen[0]) {
		char host[128];
		int port;
		struct sockaddr_storage ss;
		if (parse_hostport(cfg->metrics_listen, host, sizeof host, &port) ||
		    (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 &&
		     uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0)) {
			log_error("metrics_listen: \"%s\" is not HOST:PORT with a numeric address",
				  cfg->metrics_listen);
			return -1;
		}
		if (na_metrics_listen(s, (struct sockaddr *)&ss) != 0)
			return -1;
	}
	if (cfg->follow[0] && na_follow_start(s, cfg->follow) != 0)
		return -1;
	return 0;
}

void na_server_free(na_server *s)
{
	na_compact_free(s);
	if (s->cfg.socket[0] && s->have_pipe)
		unlink(s->cfg.socket);
	na_tls_teardown(s);
	na_store_close(&s->store);
	free(s->rbuf);
	free(s->seed);
	free(s->seed_sizes);
	s->seed = NULL;
	s->seed_sizes = NULL;
	s->rbuf = NULL;
	free(s->getbuf.data);
	s->getbuf = (na_buf){ 0 };
}
