/*
 * metrics.h - request counters and latency histograms (see metrics.c).
 */
#ifndef NA_METRICS_H
#define NA_METRICS_H

#include <stdint.h>
#include <stdio.h>
#include <uv.h>

/* method ids: the dispatcher's table order, then "other" */
enum { NA_M_PING, NA_M_PUT, NA_M_PUT_BATCH, NA_M_GET, NA_M_RANGE, NA_M_DELETE, NA_M_COUNT,
       NA_M_STATS, NA_M_REPLICATE, NA_M_SUBSCRIBE, NA_M_PROMOTE, NA_M_BACKUP, NA_M_VERIFY,
       NA_M_METRICS, NA_M_AUTH, NA_M_SEARCH, NA_M_REINDEX, NA_M_OTHER, NA_M__COUNT };
#define NA_M_BUCKETS 13

typedef struct na_metrics {
	uint64_t requests[NA_M__COUNT];
	uint64_t errors[NA_M__COUNT];
	uint64_t lat[NA_M__COUNT][NA_M_BUCKETS + 1];
	double lat_sum[NA_M__COUNT];
	uint64_t bytes_in, bytes_out, accepted;
	uint64_t tls_errors;        /* TLS handshakes or sessions that failed */
} na_metrics;

struct na_server;
/* Records a reply's latency; start_ns from uv_hrtime() at arrival. */
void na_metrics_latency(na_metrics *m, int method, uint64_t start_ns);
/* Renders all metrics as Prometheus text into a malloc'ed buffer. */
int na_metrics_render(struct na_server *s, char **out, size_t *len);
/* Serves GET /metrics on addr. 0 or -1 (logged). */
int na_metrics_listen(struct na_server *s, const struct sockaddr *addr);

#endif
