/*
 * metrics.c - counters and latency histograms, rendered in the Prometheus
 * text format, served by the `metrics` method and, when metrics_listen is
 * set, by a minimal HTTP/1.1 responder that answers GET /metrics and
 * refuses everything else. All counters live on the loop thread.
 */
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "server.h"

static const char *const method_names[NA_M__COUNT] = {
	"ping", "put", "put_batch", "get", "range", "delete", "count", "stats", "replicate",
	"subscribe", "promote", "backup", "verify", "metrics", "auth", "search", "reindex", "other",
};

/* upper bounds of the latency buckets, seconds */
static const double bounds[NA_M_BUCKETS] = { 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
					     0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0 };

void na_metrics_latency(na_metrics *m, int method, uint64_t start_ns)
{
	if (method < 0 || method >= NA_M__COUNT)
		return;
	double s = (double)(uv_hrtime() - start_ns) / 1e9;
	int b = 0;
	while (b < NA_M_BUCKETS && s > bounds[b])
		b++;
	m->lat[method][b]++;
	m->lat_sum[method] += s;
}

static void gauge(FILE *f, const char *name, const char *help, const char *type, double v)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, v);
}

int na_metrics_render(na_server *s, char **out, size_t *len)
{
	FILE *f = open_memstream(out, len);
	if (!f)
		return -1;
	na_metrics *m = &s->metrics;
	fputs("# HELP newsarch_requests_total Requests by method and outcome.\n"
	      "# TYPE newsarch_requests_total counter\n", f);
	for (int i = 0; i < NA_M__COUNT; i++) {
		fprintf(f, "newsarch_requests_total{method=\"%s\",outcome=\"ok\"} %llu\n", method_names[i],
			(unsigned long long)(m->requests[i] - m->errors[i]));
		fprintf(f, "newsarch_requests_total{method=\"%s\",outcome=\"error\"} %llu\n",
			method_names[i], (unsigned long long)m->errors[i]);
	}
	fputs("# HELP newsarch_request_duration_seconds Time from a request's arrival to its reply.\n"
	      "# TYPE newsarch_request_duration_seconds histogram\n", f);
	for (int i = 0; i < NA_M__COUNT; i++) {
		uint64_t cum = 0;
		for (int b = 0; b < NA_M_BUCKETS; b++) {
			cum += m->lat[i][b];
			fprintf(f, "newsarch_request_duration_seconds_bucket{method=\"%s\",le=\"%g\"} %llu\n",
				method_names[i], bounds[b], (unsigned long long)cum);
		}
		cum += m->lat[i][NA_M_BUCKETS];
		fprintf(f, "newsarch_request_duration_seconds_bucket{method=\"%s\",le=\"+Inf\"} %llu\n",
			method_names[i], (unsigned long long)cum);
		fprintf(f, "newsarch_request_duration_seconds_sum{method=\"%s\"} %.9f\n", method_names[i],
			m->lat_sum[i]);
		fprintf(f, "newsarch_request_duration_seconds_count{method=\"%s\"} %llu\n",
			method_names[i], (unsigned long long)cum);
	}
	gauge(f, "newsarch_received_bytes_total", "Bytes read from clients.", "counter",
	      (double)m->bytes_in);
	gauge(f, "newsarch_sent_bytes_total", "Bytes written to clients.", "counter",
	      (double)m->bytes_out);
	gauge(f, "newsarch_connections_accepted_total", "Connections accepted.", "counter",
	      (double)m->accepted);
	gauge(f, "newsarch_connections", "Open client connections.", "gauge", (double)s->nconns);
	gauge(f, "newsarch_tls_errors_total",
	      "TLS connections closed because the handshake or a record failed.", "counter",
	      (double)m->tls_errors);
	na_store_stats st;
	if (na_store_stats_get(&s->store, &st) == 0) {
		gauge(f, "newsarch_articles", "Articles in the archive.", "gauge", (double)st.articles);
		gauge(f, "newsarch_raw_bytes", "Sum of article sizes as sent.", "gauge",
		      (double)st.raw_bytes);
		gauge(f, "newsarch_stored_bytes", "Sum of article sizes as stored (compressed).",
		      "gauge", (double)st.stored_bytes);
		gauge(f, "newsarch_map_size_bytes", "LMDB map size.", "gauge", (double)st.map_size);
		gauge(f, "newsarch_map_used_bytes", "Bytes of the LMDB map in use.", "gauge",
		      (double)st.map_used);
		gauge(f, "newsarch_page_bytes", "Bytes of pages the tables use.", "gauge",
		      (double)st.page_bytes);
	}
	gauge(f, "newsarch_seq", "Last committed change-log sequence number.", "gauge",
	      (double)s->seq);
	gauge(f, "newsarch_uptime_seconds", "Seconds since start.", "gauge",
	      (double)(uv_now(s->loop) - s->started_ms) / 1000.0);
	gauge(f, "newsarch_follower", "1 when this server follows a primary.", "gauge",
	      s->follower ? 1.0 : 0.0);
	na_repl_metrics(s, f);
	if (s->follower)
		na_follow_metrics(s, f);
	return fclose(f) == 0 ? 0 : -1;
}

/* ---- HTTP ------------------------------------------------------------ */

#define HTTP_MAX_REQUEST 8192
#define HTTP_TIMEOUT_MS 5000

typedef struct hconn {
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_write_t wr;
	na_server *s;
	char buf[HTTP_MAX_REQUEST];
	size_t len;
	char *resp;
	int closing;
} hconn;

static void h_closed(uv_handle_t *h)
{
	hconn *c = h->data;
	if (++c->closing == 3) { /* tcp and timer both closed */
		free(c->resp);
		free(c);
	}
}

static void h_close(hconn *c)
{
	if (c->closing)
		return;
	c->closing = 1;
	uv_close((uv_handle_t *)&c->tcp, h_closed);
	uv_close((uv_handle_t *)&c->timer, h_closed);
}

static void h_written(uv_write_t *w, int status)
{
	(void)status;
	h_close(w->data);
}

static void h_respond(hconn *c, int code, const char *reason, const char *ctype, const char *body,
		      size_t blen)
{
	char head[256];
	int hl = snprintf(head, sizeof head,
			  "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
			  "Connection: close\r\n\r\n",
			  code, reason, ctype, blen);
	c->resp = malloc((size_t)hl + blen);
	if (!c->resp) {
		h_close(c);
		return;
	}
	memcpy(c->resp, head, (size_t)hl);
	memcpy(c->resp + hl, body, blen);
	uv_buf_t b = uv_buf_init(c->resp, (unsigned)((size_t)hl + blen));
	c->wr.data = c;
	uv_read_stop((uv_stream_t *)&c->tcp);
	if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, h_written) != 0)
		h_close(c);
}

static void h_error(hconn *c, int code, const char *reason)
{
	char body[128];
	int n = snprintf(body, sizeof body, "%d %s\n", code, reason);
	h_respond(c, code, reason, "text/plain; charset=utf-8", body, (size_t)n);
}

/* A request is whole at the empty line; only its first line matters. */
static void h_handle(hconn *c)
{
	char *eol = memchr(c->buf, '\n', c->len);
	if (!eol) {
		h_error(c, 400, "Bad Request");
		return;
	}
	size_t ll = (size_t)(eol - c->buf);
	if (ll && c->buf[ll - 1] == '\r')
		ll--;
	char line[512];
	if (ll >= sizeof line) {
		h_error(c, 414, "URI Too Long");
		return;
	}
	memcpy(line, c->buf, ll);
	line[ll] = 0;
	char *sp1 = strchr(line, ' '), *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
	if (!sp1 || !sp2 || strchr(sp2 + 1, ' ') ||
	    (strcmp(sp2 + 1, "HTTP/1.1") != 0 && strcmp(sp2 + 1, "HTTP/1.0") != 0)) {
		h_error(c, 400, "Bad Request");
		return;
	}
	*sp1 = *sp2 = 0;
	const char *method = line, *path = sp1 + 1;
	if (strcmp(path, "/metrics") != 0) {
		h_error(c, 404, "Not Found");
		return;
	}
	if (strcmp(method, "GET") != 0) {
		h_error(c, 405, "Method Not Allowed");
		return;
	}
	char *text = NULL;
	size_t tlen = 0;
	if (na_metrics_render(c->s, &text, &tlen) != 0) {
		free(text);
		h_error(c, 500, "Internal Server Error");
		return;
	}
	h_respond(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", text, tlen);
	free(text);
}

static void h_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	(void)hint;
	hconn *c = h->data;
	*buf = uv_buf_init(c->buf + c->len, (unsigned)(sizeof c->buf - c->len));
}

static void h_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
	(void)buf;
	hconn *c = st->data;
	if (n < 0) {
		h_close(c);
		return;
	}
	c->len += (size_t)n;
	if (memmem(c->buf, c->len, "\r\n\r\n", 4) || memmem(c->buf, c->len, "\n\n", 2)) {
		h_handle(c);
		return;
	}
	if (c->len == sizeof c->buf)
		h_error(c, 431, "Request Header Fields Too Large");
}

static void h_timeout(uv_timer_t *t)
{
	h_close(t->data);
}

static void h_accept(uv_stream_t *server, int status)
{
	na_server *s = server->data;
	if (status < 0)
		return;
	hconn *c = calloc(1, sizeof *c);
	if (!c)
		return;
	c->s = s;
	uv_tcp_init(s->loop, &c->tcp);
	uv_timer_init(s->loop, &c->timer);
	c->tcp.data = c->timer.data = c;
	if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 || s->stopping) {
		h_close(c);
		return;
	}
	uv_timer_start(&c->timer, h_timeout, HTTP_TIMEOUT_MS, 0);
	uv_read_start((uv_stream_t *)&c->tcp, h_alloc, h_read);
}

int na_metrics_listen(na_server *s, const struct sockaddr *addr)
{
	uv_tcp_init(s->loop, &s->metrics_tcp);
	s->metrics_tcp.data = s;
	s->have_metrics = true;
	int rc = uv_tcp_bind(&s->metrics_tcp, addr, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&s->metrics_tcp, 64, h_accept);
	if (rc) {
		log_error("cannot serve metrics on %s: %s", s->cfg.metrics_listen, uv_strerror(rc));
		return -1;
	}
	log_info("metrics at http://%s/metrics", s->cfg.metrics_listen);
	return 0;
}
