/*
 * tlsconf.c - the daemon's TLS settings: the server context behind tls_listen,
 * its reload on SIGHUP, and the client context of a tls:// follower link.
 *
 * The engine itself (memory BIOs, handshake, records) is proto/tls.c, shared
 * with libnewsarch; conn.c puts it between a client socket and the request
 * machinery, follow.c between the follower's socket and its decoder.
 *
 * One server context serves every TLS connection. SIGHUP builds a new one
 * from the (possibly changed) tls_cert, tls_key, tls_ca and
 * tls_verify_client, re-reading the files, so a renewed certificate at the
 * same path is picked up without a restart. New connections get the new
 * context; established ones keep theirs (each SSL holds a reference). If the
 * new files do not load, the old context stays and the error is logged. The
 * same happens when the new tls_verify_client would leave a non-loopback
 * TLS listener without any authentication (no token, policy below require):
 * the rule checked at start (server.c) is not undone by a reload. Tokens and
 * the policy are each checked against the other's current value, so a
 * SIGHUP that changes both in a way that is only safe together keeps one of
 * them (logged); a second SIGHUP then applies it.
 *
 * The follower builds its client context at every connection attempt from
 * the current settings, so renewed CA or client certificate files (and
 * follow_tls_* changed by SIGHUP) apply from its next reconnect.
 */
#include <string.h>

#include "log.h"
#include "server.h"

static const char *const verify_names[] = { "no", "optional", "require" };

int na_tls_setup(na_server *s)
{
	const na_config *c = &s->cfg;
	char err[1024];
	if (na_tls_ctx_server(c->tls_cert, c->tls_key, c->tls_ca, c->tls_verify_client, &s->tls_ctx,
			      err, sizeof err)) {
		log_error("tls_listen: %s", err);
		return -1;
	}
	log_info("TLS: certificate %s, client certificates: %s", c->tls_cert,
		 verify_names[c->tls_verify_client]);
	return 0;
}

int na_tls_reload(na_server *s, const na_config *n)
{
	na_config *c = &s->cfg;
	int changed = 0;
#define COPY_STR(f)                                                                              \
	if (strcmp(c->f, n->f) != 0) {                                                           \
		memcpy(c->f, n->f, sizeof c->f);                                                 \
		changed++;                                                                       \
	}
	COPY_STR(follow_tls_ca)
	COPY_STR(follow_tls_cert)
	COPY_STR(follow_tls_key)
	COPY_STR(follow_tls_name)
	if (changed)
		log_info("SIGHUP: follow_tls_* changed; the follower uses them from its next "
			 "connection");
	if (!s->tls_ctx) {
		if (strcmp(c->tls_cert, n->tls_cert) || strcmp(c->tls_key, n->tls_key) ||
		    strcmp(c->tls_ca, n->tls_ca) || c->tls_verify_client != n->tls_verify_client)
			log_warn("SIGHUP: TLS settings changed but no TLS listener runs (tls_listen "
				 "takes effect after a restart)");
		return changed;
	}
	/* a weaker client policy must not open a non-loopback TLS listener
	 * that has no token behind it (the rule applied at start) */
	const char *exposed = na_server_exposed(s, c->tokens.n, n->tls_verify_client);
	if (exposed) {
		log_error("SIGHUP: TLS settings not reloaded, keeping the current certificate and "
			  "tls_verify_client = %s: with tls_verify_client = %s and no token anyone "
			  "reaching %s could read, write, back up and promote",
			  verify_names[c->tls_verify_client], verify_names[n->tls_verify_client], exposed);
		return changed;
	}
	na_tls_ctx *x;
	char err[1024];
	if (na_tls_ctx_server(n->tls_cert, n->tls_key, n->tls_ca, n->tls_verify_client, &x, err,
			      sizeof err)) {
		log_error("SIGHUP: TLS certificate not reloaded, keeping the current one: %s", err);
		return changed;
	}
	na_tls_ctx_free(s->tls_ctx);
	s->tls_ctx = x;
	COPY_STR(tls_cert)
	COPY_STR(tls_key)
	COPY_STR(tls_ca)
#undef COPY_STR
	if (c->tls_verify_client != n->tls_verify_client) {
		c->tls_verify_client = n->tls_verify_client;
		changed++;
	}
	log_info("SIGHUP: TLS certificate %s reloaded (client certificates: %s); new connections "
		 "use it", c->tls_cert, verify_names[c->tls_verify_client]);
	return changed + 1;
}

int na_tls_follow_ctx(const na_config *cfg, na_tls_ctx **out, char *err, size_t errlen)
{
	const char *ca = cfg->follow_tls_ca[0] ? cfg->follow_tls_ca : cfg->tls_ca;
	return na_tls_ctx_client(ca, cfg->follow_tls_cert, cfg->follow_tls_key, out, err, errlen);
}

void na_tls_teardown(na_server *s)
{
	na_tls_ctx_free(s->tls_ctx);
	s->tls_ctx = NULL;
}
