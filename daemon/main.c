/*
 * main.c - newsarchd: read the settings, open the archive, serve until
 * SIGINT or SIGTERM, then finish in-flight writes and close cleanly.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <uv.h>

#include "config.h"
#include "log.h"
#include "server.h"
#include "verify.h"

int main(int argc, char **argv)
{
	na_config cfg;
	bool help, version, verify;
	char err[512];
	na_log_init();
	na_config_defaults(&cfg);
	if (na_config_args(&cfg, argc - 1, argv + 1, &help, &version, &verify, err, sizeof err)) {
		fprintf(stderr, "newsarchd: %s\n", err);
		return 2;
	}
	if (help) {
		na_config_usage(stdout);
		return 0;
	}
	if (version) {
		printf("newsarchd 0.1.0\n");
		return 0;
	}
	na_log_set_level(cfg.log_level);
	if (verify)
		return na_verify_offline(&cfg) == 0 ? 0 : 1;

	signal(SIGPIPE, SIG_IGN);
	uv_loop_t *loop = uv_default_loop();
	na_server srv;
	if (na_server_init(&srv, loop, &cfg) != 0)
		return 1;
	srv.argc = argc - 1;
	srv.argv = argv + 1;
	if (na_server_listen(&srv) != 0) {
		na_server_shutdown(&srv);
		uv_run(loop, UV_RUN_DEFAULT);
		na_server_free(&srv);
		uv_loop_close(loop);
		return 1;
	}
	na_store_stats st;
	na_store_stats_get(&srv.store, &st);
	log_info("newsarchd 0.1.0 ready: %llu articles in %s, durability %s",
		 (unsigned long long)st.articles, cfg.data, cfg.relaxed ? "relaxed" : "strict");
	sd_notifyf(0, "READY=1\nSTATUS=%s, %llu articles", cfg.follow[0] ? "follower" : "primary",
		   (unsigned long long)st.articles);
	uv_run(loop, UV_RUN_DEFAULT);
	/* the loop closed its signal watchers (their signals are back to the
	 * default action): a second TERM while the store and the indexer's
	 * memory are released must not turn a clean stop into a kill */
	signal(SIGTERM, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	na_server_free(&srv);
	int rc = uv_loop_close(loop);
	if (rc)
		log_warn("event loop closed with handles open: %s", uv_strerror(rc));
	log_info("stopped");
	return 0;
}
