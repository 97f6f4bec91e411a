/*
 * pipeline.h - one non-blocking connection driven by libnewsarch's protocol
 * core (na_proto) and poll(2), so the CLI can keep several requests in
 * flight (import) while it reads and converts its input.
 */
#ifndef NA_CLI_PIPELINE_H
#define NA_CLI_PIPELINE_H

#include <stddef.h>

#include "newsarch.h"

struct na_tls;

typedef struct na_pipe {
	int fd;
	na_proto *p;
	struct na_tls *tls;     /* tls:// addresses: the engine between */
	int io_timeout_ms;      /* no progress for this long: NA_ETIMEDOUT */
	char err[512];
} na_pipe;

/* Connects to addr ("host:port", "[v6]:port", "tls://host:port",
 * "unix:/path"). With tls://, tls (may be NULL) gives the tls_* options of
 * na_options; the handshake then runs in the first pumps, before the
 * queued requests go out. 0 or a negative NA_E* code with pp->err set. */
int na_pipe_open(na_pipe *pp, const char *addr, int connect_timeout_ms, const na_options *tls);

/*
 * Moves bytes: writes pending output, reads and feeds replies (callbacks
 * run here). Waits at most timeout_ms (-1: until something happened) for
 * the socket. Returns 0, or a negative code when the connection is lost
 * (every pending callback has then been called with it).
 */
int na_pipe_pump(na_pipe *pp, int timeout_ms);

/* Pumps until fewer than max_pending calls are pending. */
int na_pipe_wait_below(na_pipe *pp, size_t max_pending);

/* Frees the core (failing pending calls with NA_ECLOSED) and closes. */
void na_pipe_close(na_pipe *pp);

#endif
