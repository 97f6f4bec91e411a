/*
 * proxy.h - test support: a small TCP proxy on 127.0.0.1 between a client
 * (e.g. a follower) and a server (e.g. its primary), run by one thread with
 * poll. A test can cut the link (drop every connection and hang up on new
 * ones), restore it, and limit how many bytes go from the server to the
 * client (then the proxy stops reading from the server: the link stalls
 * without closing).
 */
#ifndef NA_TEST_PROXY_H
#define NA_TEST_PROXY_H

#include <stdint.h>

typedef struct na_proxy na_proxy;

/* Listens on a free port of 127.0.0.1 and forwards to 127.0.0.1:upstream.
 * NULL on failure. */
na_proxy *na_proxy_start(int upstream_port);
/* The port it listens on. */
int na_proxy_port(const na_proxy *p);
/* Drops every connection; new ones are accepted and closed at once. */
void na_proxy_cut(na_proxy *p);
/* Forwards again (new connections only; cut ones stay cut). */
void na_proxy_resume(na_proxy *p);
/* From now on, forward at most `bytes` more bytes from the server to the
 * client (summed over connections); -1: no limit. */
void na_proxy_set_budget(na_proxy *p, long long bytes);
/* Bytes forwarded from the server to clients so far. */
long long na_proxy_forwarded(na_proxy *p);
/* Connections accepted and forwarded so far (not counting refused ones). */
int na_proxy_connections(na_proxy *p);
/* Stops the thread, closes everything, frees p. NULL is fine. */
void na_proxy_stop(na_proxy *p);

#endif
