/*
 * test_tls.c - TLS end to end with real newsarchd processes on loopback and
 * certificates generated at test time (tests/support/certs.c): the client
 * library over tls://, plaintext and TLS listeners side by side, refused
 * certificates (unknown CA, wrong name, expired), client certificates
 * required, garbage and stalled handshakes on the TLS port, a large range
 * through TLS under a small output cap, SIGHUP reloading the certificate,
 * followers over TLS (and one that must refuse its primary), and the CLI.
 *
 * Nothing sleeps to synchronise: waits are bounded polls of an observable
 * condition (a log line, stats, end of file on a socket).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "certs.h"
#include "daemon.h"
#include "mp.h"
#include "newsarch.h"
#include "newsarch_uv.h"
#include "testrpc.h"
#include "tls.h"

#define WAIT_MS 60000
#define BASE_SEC 1600000000

static na_test_certs C;
static char certdir[256];

enum { NDAEMONS = 2 };
static na_test_daemon D[NDAEMONS];
static int TP[NDAEMONS];          /* each daemon's TLS port */
static char TADDR[NDAEMONS][64];  /* "tls://127.0.0.1:PORT" */

static long long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* The pause between two polls of a bounded wait loop. */
static void poll_pause(void)
{
	struct timespec ts = { 0, 5 * 1000000 };
	nanosleep(&ts, NULL);
}

static int group_setup(void **st)
{
	(void)st;
	const char *tmp = getenv("TMPDIR");
	snprintf(certdir, sizeof certdir, "%s/newsarch-test.XXXXXX", tmp ? tmp : "/tmp");
	if (!mkdtemp(certdir))
		return -1;
	return na_test_certs_make(certdir, &C);
}

static int group_teardown(void **st)
{
	(void)st;
	char cmd[400];
	if (strstr(certdir, "newsarch-test.")) {
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", certdir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", certdir);
	}
	return 0;
}

static int setup(void **st)
{
	(void)st;
	memset(D, 0, sizeof D);
	return 0;
}

static int teardown(void **st)
{
	(void)st;
	int rc = 0;
	for (int i = 0; i < NDAEMONS; i++)
		if (D[i].dir[0] && na_test_daemon_cleanup(&D[i]) != 0)
			rc = -1;
	return rc;
}

/* Starts D[i] with a TLS listener using cert/key, plus extra arguments
 * (NULL-ended). */
static void start_tls(int i, const char *cert, const char *key, ...)
{
	na_test_daemon *d = &D[i];
	static char listen[NDAEMONS][64];
	memset(d, 0, sizeof *d);
	TP[i] = na_test_free_port();
	assert_true(TP[i] > 0);
	snprintf(listen[i], sizeof listen[i], "127.0.0.1:%d", TP[i]);
	snprintf(TADDR[i], sizeof TADDR[i], "tls://127.0.0.1:%d", TP[i]);
	int n = 0;
	d->extra[n++] = "--tls-listen";
	d->extra[n++] = listen[i];
	d->extra[n++] = "--tls-cert";
	d->extra[n++] = cert;
	d->extra[n++] = "--tls-key";
	d->extra[n++] = key;
	va_list ap;
	va_start(ap, key);
	const char *a;
	while ((a = va_arg(ap, const char *)) && n < 30)
		d->extra[n++] = a;
	va_end(ap);
	d->extra[n] = NULL;
	assert_int_equal(na_test_daemon_start(d), 0);
}

/* How many lines of D[i]'s log contain needle. */
static int log_count(int i, const char *needle)
{
	FILE *f = fopen(D[i].log, "r");
	if (!f)
		return 0;
	char line[2048];
	int n = 0;
	while (fgets(line, sizeof line, f))
		n += strstr(line, needle) != NULL;
	fclose(f);
	return n;
}

/* Waits until D[i]'s log has at least n lines containing needle. */
static void wait_log(int i, const char *needle, int n)
{
	long long end = mono_ms() + WAIT_MS;
	while (mono_ms() < end) {
		if (log_count(i, needle) >= n)
			return;
		poll_pause();
	}
	fail_msg("daemon %d never logged \"%s\" %d times; log %s", i, needle, n, D[i].log);
}

typedef struct tlsopt {
	const char *ca, *cert, *key, *name;
} tlsopt;

/* Connects with the given TLS settings; returns the code, err gets the text. */
static int try_connect(const char *addr, tlsopt t, na_client **out, char *err, size_t errlen)
{
	na_options o;
	na_options_init(&o);
	o.tls_ca_file = t.ca;
	o.tls_cert_file = t.cert;
	o.tls_key_file = t.key;
	o.tls_server_name = t.name;
	*out = NULL;
	return na_client_connect_ex(addr, &o, out, err, errlen);
}

static na_client *must_connect(const char *addr, tlsopt t)
{
	na_client *c;
	char err[512];
	int rc = try_connect(addr, t, &c, err, sizeof err);
	if (rc)
		fail_msg("connect %s: %s (%s)", addr, na_strerror(rc), err);
	return c;
}

static na_article *article(int i, size_t body_len)
{
	char guid[64], title[64];
	snprintf(guid, sizeof guid, "tls-%06d", i);
	snprintf(title, sizeof title, "title %d", i);
	char *body = malloc(body_len + 1);
	assert_non_null(body);
	for (size_t k = 0; k < body_len; k++)
		body[k] = (char)('a' + (k * 7 + (size_t)i) % 26);
	na_article_builder *b;
	na_article *a;
	assert_int_equal(na_article_builder_new(&b), 0);
	assert_int_equal(na_article_builder_set_str(b, "guid", guid, strlen(guid)), 0);
	assert_int_equal(na_article_builder_set_time(b, "published",
						     (na_time){ BASE_SEC + i, 0 }), 0);
	assert_int_equal(na_article_builder_set_str(b, "title", title, strlen(title)), 0);
	assert_int_equal(na_article_builder_set_str(b, "body", body, body_len), 0);
	assert_int_equal(na_article_builder_finish(b, &a), 0);
	na_article_builder_free(b);
	free(body);
	return a;
}

static void put_n(na_client *c, int from, int n, size_t body_len)
{
	for (int i = from; i < from + n; i++) {
		na_article *a = article(i, body_len);
		na_put_result r;
		int rc = na_put(c, a, &r);
		if (rc)
			fail_msg("put %d: %s: %s", i, na_strerror(rc), na_client_errmsg(c));
		na_article_free(a);
	}
}

/* get guid i and compare the title */
static void check_get(na_client *c, int i)
{
	char guid[64], title[64];
	snprintf(guid, sizeof guid, "tls-%06d", i);
	snprintf(title, sizeof title, "title %d", i);
	na_article *a;
	int rc = na_get(c, guid, strlen(guid), NULL, 0, &a);
	if (rc)
		fail_msg("get %s: %s: %s", guid, na_strerror(rc), na_client_errmsg(c));
	const char *s;
	size_t n;
	assert_int_equal(na_article_get_title(a, &s, &n), 0);
	assert_int_equal(n, strlen(title));
	assert_memory_equal(s, title, n);
	na_article_free(a);
}

static void expect_in(const char *hay, const char *needle)
{
	if (!strstr(hay, needle))
		fail_msg("expected \"%s\" in \"%s\"", needle, hay);
}

/* ---- client over TLS ------------------------------------------------------ */

static void test_roundtrip_and_both_listeners(void **st)
{
	(void)st;
	start_tls(0, C.server_cert, C.server_key, NULL);
	tlsopt t = { .ca = C.ca };
	na_client *tc = must_connect(TADDR[0], t);
	na_client *pc = must_connect(D[0].addr, (tlsopt){ 0 });
	/* both at once: what one writes, the other reads */
	assert_int_equal(na_ping(tc), 0);
	put_n(tc, 0, 10, 200);
	put_n(pc, 10, 10, 200);
	for (int i = 0; i < 20; i++) {
		check_get(tc, i);
		check_get(pc, i);
	}
	uint64_t n = 0;
	assert_int_equal(na_count(tc, NULL, NULL, &n), 0);
	assert_int_equal(n, 20);
	/* the name in the certificate works as well as the address */
	char a[64];
	snprintf(a, sizeof a, "tls://localhost:%d", TP[0]);
	na_client *lc = must_connect(a, t);
	check_get(lc, 3);
	na_client_close(lc);
	na_client_close(tc);
	na_client_close(pc);
	/* a plaintext client on the TLS port gets nowhere, and is logged */
	na_client *bad;
	char err[512];
	char plain_on_tls[64];
	snprintf(plain_on_tls, sizeof plain_on_tls, "127.0.0.1:%d", TP[0]);
	int rc = try_connect(plain_on_tls, (tlsopt){ 0 }, &bad, err, sizeof err);
	if (rc == 0) {
		assert_int_equal(na_ping(bad), NA_ECONN);
		na_client_close(bad);
	}
	wait_log(0, "a plaintext MessagePack-RPC client on the TLS port?", 1);
	/* and a TLS client on the plaintext port fails cleanly */
	char tls_on_plain[80];
	snprintf(tls_on_plain, sizeof tls_on_plain, "tls://%s", D[0].addr);
	rc = try_connect(tls_on_plain, t, &bad, err, sizeof err);
	assert_true(rc == NA_ETLS || rc == NA_ECONN);
	assert_null(bad);
}

static void test_refused_certificates(void **st)
{
	(void)st;
	start_tls(0, C.server_cert, C.server_key, NULL);
	start_tls(1, C.expired_cert, C.expired_key, NULL);
	na_client *c;
	char err[512];
	/* a CA that did not sign the server's certificate */
	int rc = try_connect(TADDR[0], (tlsopt){ .ca = C.wrong_ca }, &c, err, sizeof err);
	assert_int_equal(rc, NA_ETLS);
	assert_null(c);
	expect_in(err, "certificate was refused");
	expect_in(err, "unable to get local issuer certificate");
	/* the right CA but another name */
	rc = try_connect(TADDR[0], (tlsopt){ .ca = C.ca, .name = "archive.example.org" }, &c, err,
			 sizeof err);
	assert_int_equal(rc, NA_ETLS);
	expect_in(err, "hostname mismatch");
	/* an expired certificate */
	rc = try_connect(TADDR[1], (tlsopt){ .ca = C.ca }, &c, err, sizeof err);
	assert_int_equal(rc, NA_ETLS);
	expect_in(err, "certificate has expired");
	/* a CA file that does not exist */
	rc = try_connect(TADDR[0], (tlsopt){ .ca = "/nonexistent/ca.pem" }, &c, err, sizeof err);
	assert_int_equal(rc, NA_ETLS);
	expect_in(err, "/nonexistent/ca.pem");
	/* tls:// on a Unix socket is a usage error */
	rc = try_connect("tls://unix:/tmp/x.sock", (tlsopt){ .ca = C.ca }, &c, err, sizeof err);
	assert_int_equal(rc, NA_EINVAL);
	/* the server keeps serving */
	c = must_connect(TADDR[0], (tlsopt){ .ca = C.ca });
	assert_int_equal(na_ping(c), 0);
	na_client_close(c);
}

/* A refused client certificate shows at connect (TLS 1.2) or on the first
 * call (TLS 1.3): either way NA_ETLS naming the cause. */
static void expect_refused_client(const char *addr, tlsopt t, const char *why)
{
	na_client *c;
	char err[512];
	int rc = try_connect(addr, t, &c, err, sizeof err);
	if (rc == 0) {
		rc = na_ping(c);
		snprintf(err, sizeof err, "%s", na_client_errmsg(c));
		na_client_close(c);
	}
	assert_int_equal(rc, NA_ETLS);
	expect_in(err, why);
}

static void test_client_certificates(void **st)
{
	(void)st;
	start_tls(0, C.server_cert, C.server_key, "--tls-ca", C.ca, "--tls-verify-client", "require",
		  NULL);
	expect_refused_client(TADDR[0], (tlsopt){ .ca = C.ca }, "certificate required");
	wait_log(0, "peer did not return a certificate", 1);
	/* a certificate from a CA the server does not trust */
	expect_refused_client(TADDR[0], (tlsopt){ .ca = C.ca, .cert = C.wrong_server_cert,
						  .key = C.wrong_server_key },
			      "unknown ca");
	wait_log(0, "unable to get local issuer certificate", 1);
	/* the right one */
	na_client *c = must_connect(TADDR[0], (tlsopt){ .ca = C.ca, .cert = C.client_cert,
							.key = C.client_key });
	put_n(c, 0, 3, 100);
	check_get(c, 2);
	na_client_close(c);
	/* a key that does not belong to the certificate is a local error */
	char err[512];
	int rc = try_connect(TADDR[0],
			     (tlsopt){ .ca = C.ca, .cert = C.client_cert, .key = C.server_key }, &c,
			     err, sizeof err);
	assert_int_equal(rc, NA_ETLS);
	expect_in(err, "mismatch");
	/* the plaintext listener still works without any certificate */
	c = must_connect(D[0].addr, (tlsopt){ 0 });
	check_get(c, 1);
	na_client_close(c);

	/* optional: no certificate is fine, a wrong one is not */
	assert_int_equal(na_test_daemon_cleanup(&D[0]), 0);
	start_tls(0, C.server_cert, C.server_key, "--tls-ca", C.ca, "--tls-verify-client",
		  "optional", NULL);
	c = must_connect(TADDR[0], (tlsopt){ .ca = C.ca });
	assert_int_equal(na_ping(c), 0);
	na_client_close(c);
	expect_refused_client(TADDR[0], (tlsopt){ .ca = C.ca, .cert = C.wrong_server_cert,
						  .key = C.wrong_server_key },
			      "unknown ca");
}

/* ---- bad peers on the TLS port ------------------------------------------- */

/* Reads from fd until end of file (or an error), at most WAIT_MS. 0 on EOF. */
static int wait_eof(int fd)
{
	long long end = mono_ms() + WAIT_MS;
	char buf[4096];
	while (mono_ms() < end) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int n = poll(&p, 1, 200);
		if (n <= 0)
			continue;
		ssize_t r = read(fd, buf, sizeof buf);
		if (r == 0 || (r < 0 && errno == ECONNRESET))
			return 0;
		if (r < 0 && errno != EINTR && errno != EAGAIN)
			return -1;
	}
	return -1;
}

static int connect_port(int port)
{
	na_test_daemon t = { .port = port };
	return na_test_connect_tcp(&t);
}

static void test_garbage_and_stalled_handshakes(void **st)
{
	(void)st;
	start_tls(0, C.server_cert, C.server_key, "--request-timeout", "1", NULL);
	/* a good client, connected before the trouble starts */
	na_client *good = must_connect(TADDR[0], (tlsopt){ .ca = C.ca });
	put_n(good, 0, 1, 50);

	/* 1. garbage instead of a ClientHello: closed at once */
	int fd = connect_port(TP[0]);
	assert_true(fd >= 0);
	static const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	assert_int_equal(write(fd, junk, sizeof junk - 1), (ssize_t)(sizeof junk - 1));
	assert_int_equal(wait_eof(fd), 0);
	close(fd);
	wait_log(0, "not a TLS ClientHello (first byte 0x47)", 1);

	/* 1b. a handshake record holding garbage: OpenSSL refuses it */
	fd = connect_port(TP[0]);
	assert_true(fd >= 0);
	static const uint8_t bad_hello[] = { 0x16, 0x03, 0x01, 0x00, 0x08, 'g', 'a', 'r',
					     'b', 'a', 'g', 'e', '!' };
	assert_int_equal(write(fd, bad_hello, sizeof bad_hello), (ssize_t)sizeof bad_hello);
	assert_int_equal(wait_eof(fd), 0);
	close(fd);
	wait_log(0, "TLS handshake failed", 1);

	/* 2. a record header claiming a huge handshake message, then silence */
	fd = connect_port(TP[0]);
	assert_true(fd >= 0);
	static const uint8_t partial[] = { 0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00 };
	assert_int_equal(write(fd, partial, sizeof partial), (ssize_t)sizeof partial);
	assert_int_equal(wait_eof(fd), 0); /* bounded by request_timeout */
	close(fd);
	wait_log(0, "TLS handshake not finished", 1);

	/* 3. connect and say nothing at all */
	fd = connect_port(TP[0]);
	assert_true(fd >= 0);
	assert_int_equal(wait_eof(fd), 0);
	close(fd);
	wait_log(0, "TLS handshake not finished", 2);

	/* 4. a proper client still gets in */
	na_client *c = must_connect(TADDR[0], (tlsopt){ .ca = C.ca });
	assert_int_equal(na_ping(c), 0);
	na_client_close(c);

	/* the good client never noticed */
	check_get(good, 0);
	put_n(good, 1, 1, 50);
	check_get(good, 1);
	na_client_close(good);
	/* nor does a new one */
	c = must_connect(TADDR[0], (tlsopt){ .ca = C.ca });
	check_get(c, 1);
	na_client_close(c);
}

/* ---- requests followed at once by close_notify ----------------------------- */

/* Sends everything the engine holds on a blocking socket. */
static void send_all(int fd, na_tls *t)
{
	const uint8_t *b;
	size_t n;
	na_tls_output(t, &b, &n);
	while (n > 0) {
		ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
		assert_true(w > 0);
		na_tls_consume(t, (size_t)w);
		na_tls_output(t, &b, &n);
	}
}

/*
 * A client that sends a put and its close_notify in one write (a script
 * piping one request into a TLS tool does that) gets the put stored, as a
 * plaintext client that sends a put and closes does: the server used to
 * see the close_notify in the same read and hang up without serving what
 * came before it.
 */
/* A TLS session on a blocking socket to port, driven by hand with the
 * engine, handshake done (the client's Finished still in the output). */
static na_tls *raw_tls_open(int port, int *fdp)
{
	int fd = connect_port(port);
	assert_true(fd >= 0);
	na_tls_ctx *cx;
	char err[512];
	if (na_tls_ctx_client(C.ca, NULL, NULL, &cx, err, sizeof err))
		fail_msg("client ctx: %s", err);
	na_tls *t;
	assert_int_equal(na_tls_new(cx, "127.0.0.1", &t), 0);
	na_tls_ctx_free(cx);
	uint8_t buf[16384];
	size_t got;
	long long end = mono_ms() + WAIT_MS;
	while (!na_tls_handshake_done(t)) {
		send_all(fd, t);
		struct pollfd p = { .fd = fd, .events = POLLIN };
		assert_true(mono_ms() < end);
		if (poll(&p, 1, 200) <= 0)
			continue;
		ssize_t r = recv(fd, buf, sizeof buf, 0);
		assert_true(r > 0);
		assert_int_equal(na_tls_feed(t, buf, (size_t)r), 0);
		assert_int_equal(na_tls_read(t, buf, sizeof buf, &got), 0);
	}
	*fdp = fd;
	return t;
}

static void test_request_then_close_notify(void **st)
{
	(void)st;
	start_tls(0, C.server_cert, C.server_key, NULL);
	int fd;
	na_tls *t = raw_tls_open(TP[0], &fd);
	/* the client's last handshake message, the put and the close_notify:
	 * one send, so one read on the server in practice */
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 4);
	msgpack_pack_uint8(&pk, 0);
	msgpack_pack_uint32(&pk, 1);
	na_mp_pack_cstr(&pk, "put");
	msgpack_pack_array(&pk, 1);
	na_pack_article(&pk, "tls-then-close", BASE_SEC, 0, "sent with its close_notify", NULL);
	assert_int_equal(na_tls_write(t, sb.data, sb.size), 0);
	msgpack_sbuffer_destroy(&sb);
	na_tls_shutdown(t);
	send_all(fd, t);
	assert_int_equal(wait_eof(fd), 0);
	close(fd);
	na_tls_free(t);
	/* the put was served (its commit may land just after the hang-up) */
	na_client *c = must_connect(D[0].addr, (tlsopt){ 0 });
	long long end = mono_ms() + WAIT_MS;
	na_article *a = NULL;
	int rc;
	while ((rc = na_get(c, "tls-then-close", 14, NULL, 0, &a)) == NA_ENOTFOUND &&
	       mono_ms() < end)
		poll_pause();
	if (rc)
		fail_msg("the put sent with close_notify was not stored: %s", na_strerror(rc));
	na_article_free(a);
	na_client_close(c);
}

/*
 * request_timeout also cuts off a peer that stops in the middle of a TLS
 * record after the handshake: no plaintext arrives, yet the request has
 * begun. (It used to keep the connection forever, each byte of the record
 * counting as activity.)
 */
static void test_partial_record_is_cut_off(void **st)
{
	(void)st;
	start_tls(0, C.server_cert, C.server_key, "--request-timeout", "1", NULL);
	int fd;
	na_tls *t = raw_tls_open(TP[0], &fd);
	send_all(fd, t); /* the client's Finished */
	static const uint8_t ping[] = { 0x94, 0x00, 0x01, 0xa4, 'p', 'i', 'n', 'g', 0x90 };
	assert_int_equal(na_tls_write(t, ping, sizeof ping), 0);
	const uint8_t *b;
	size_t n;
	na_tls_output(t, &b, &n);
	assert_true(n > 1);
	assert_int_equal(send(fd, b, n - 1, MSG_NOSIGNAL), (ssize_t)(n - 1));
	assert_int_equal(wait_eof(fd), 0);
	wait_log(0, "sent part of a request and nothing more", 1);
	close(fd);
	na_tls_free(t);
}

/* ---- a large range through TLS under a small output cap ------------------ */

static void test_large_range(void **st)
{
	(void)st;
	start_tls(0, C.server_cert, C.server_key, "--output-queue-bytes", "65536", NULL);
	na_client *c = must_connect(TADDR[0], (tlsopt){ .ca = C.ca });
	enum { N = 400, BODY = 20000 };
	na_article *batch[50];
	na_put_result res[50];
	for (int i = 0; i < N; i += 50) {
		for (int k = 0; k < 50; k++)
			batch[k] = article(i + k, BODY);
		int rc = na_put_batch(c, (const na_article *const *)batch, 50, res);
		if (rc)
			fail_msg("put_batch: %s: %s", na_strerror(rc), na_client_errmsg(c));
		for (int k = 0; k < 50; k++) {
			assert_int_equal(res[k].err, 0);
			na_article_free(batch[k]);
		}
	}
	/* pages of 500 articles of 20 KB: ~10 MB replies, hundreds of records */
	na_range_opts o = { .page_size = 500 };
	na_range *it;
	assert_int_equal(na_range_open(c, &o, &it), 0);
	const na_article *a;
	int n = 0, rc;
	while ((rc = na_range_next(it, &a)) == 1) {
		na_article *want = article(n, BODY);
		const uint8_t *x, *y;
		size_t xl, yl;
		na_article_bytes(a, &x, &xl);
		na_article_bytes(want, &y, &yl);
		assert_int_equal(xl, yl);
		assert_memory_equal(x, y, xl);
		na_article_free(want);
		n++;
	}
	if (rc != 0)
		fail_msg("range: %s: %s", na_strerror(rc), na_client_errmsg(c));
	assert_int_equal(n, N);
	na_range_close(it);
	na_client_close(c);
}

/* ---- SIGHUP reloads the certificate -------------------------------------- */

static void copy_file(const char *from, const char *to)
{
	FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
	assert_non_null(a);
	assert_non_null(b);
	char buf[8192];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, a)) > 0)
		assert_int_equal(fwrite(buf, 1, n, b), n);
	fclose(a);
	assert_int_equal(fclose(b), 0);
}

static void test_sighup_reloads_certificate(void **st)
{
	(void)st;
	/* the daemon reads its certificate from paths we overwrite later */
	char cert[300], key[300];
	snprintf(cert, sizeof cert, "%s/live.pem", certdir);
	snprintf(key, sizeof key, "%s/live.key", certdir);
	copy_file(C.server_cert, cert);
	copy_file(C.server_key, key);
	start_tls(0, cert, key, NULL);
	na_client *old = must_connect(TADDR[0], (tlsopt){ .ca = C.ca });
	assert_int_equal(na_ping(old), 0);

	/* a broken pair is refused and the old certificate stays */
	copy_file(C.wrong_server_cert, cert);
	kill(D[0].pid, SIGHUP);
	wait_log(0, "TLS certificate not reloaded", 1);
	na_client *c = must_connect(TADDR[0], (tlsopt){ .ca = C.ca });
	na_client_close(c);

	/* a renewed certificate (from the other CA) serves new connections */
	copy_file(C.wrong_server_key, key);
	kill(D[0].pid, SIGHUP);
	wait_log(0, "reloaded (client certificates", 1);
	char err[512];
	int rc = try_connect(TADDR[0], (tlsopt){ .ca = C.ca }, &c, err, sizeof err);
	assert_int_equal(rc, NA_ETLS);
	c = must_connect(TADDR[0], (tlsopt){ .ca = C.wrong_ca });
	assert_int_equal(na_ping(c), 0);
	na_client_close(c);
	/* the connection made before keeps working */
	assert_int_equal(na_ping(old), 0);
	na_client_close(old);
}

/* ---- SIGHUP cannot undo the listen-time authentication rule --------------- */

static void write_conf(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fchmod(fileno(f), 0600), 0);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

/*
 * The daemon counts only 127.0.0.0/8 and ::1 as loopback, so listening on
 * the IPv4-mapped loopback address [::ffff:127.0.0.1] applies the rules for
 * a public address while staying reachable from this machine alone.
 * 1. A public plaintext listener with a token: a reload that drops the
 *    last token is refused and the token keeps guarding every connection.
 * 2. A public TLS listener without tokens, allowed because
 *    tls_verify_client = require: a reload to "no" is refused and clients
 *    without a certificate stay out.
 */
static void test_sighup_keeps_authentication(void **st)
{
	(void)st;
	char conf[300], line[1200], l0[64], l1[64], taddr[64];
	/* 1 */
	snprintf(conf, sizeof conf, "%s/auth0.conf", certdir);
	write_conf(conf, "token = admin:reload-test-secret-0123456789\n");
	int p0 = na_test_free_port();
	assert_true(p0 > 0);
	snprintf(l0, sizeof l0, "[::ffff:127.0.0.1]:%d", p0);
	na_test_daemon *d = &D[0];
	memset(d, 0, sizeof *d);
	d->extra[0] = "--config";
	d->extra[1] = conf;
	d->extra[2] = "--listen";
	d->extra[3] = l0;
	d->extra[4] = NULL;
	assert_int_equal(na_test_daemon_start(d), 0);
	write_conf(conf, "# no token any more\n");
	kill(d->pid, SIGHUP);
	wait_log(0, "tokens not reloaded", 1);
	assert_int_equal(log_count(0, "tokens reloaded"), 0);
	na_client *c = must_connect(d->uaddr, (tlsopt){ 0 });
	uint64_t n;
	assert_int_equal(na_count(c, NULL, NULL, &n), NA_EUNAUTHORIZED);
	na_client_close(c);

	/* 2 */
	snprintf(conf, sizeof conf, "%s/auth1.conf", certdir);
	snprintf(line, sizeof line, "tls_ca = %s\ntls_verify_client = require\n", C.ca);
	write_conf(conf, line);
	int p1 = na_test_free_port();
	assert_true(p1 > 0);
	snprintf(l1, sizeof l1, "[::ffff:127.0.0.1]:%d", p1);
	snprintf(taddr, sizeof taddr, "tls://127.0.0.1:%d", p1);
	d = &D[1];
	memset(d, 0, sizeof *d);
	int k = 0;
	d->extra[k++] = "--config";
	d->extra[k++] = conf;
	d->extra[k++] = "--tls-listen";
	d->extra[k++] = l1;
	d->extra[k++] = "--tls-cert";
	d->extra[k++] = C.server_cert;
	d->extra[k++] = "--tls-key";
	d->extra[k++] = C.server_key;
	d->extra[k] = NULL;
	assert_int_equal(na_test_daemon_start(d), 0);
	assert_true(log_count(1, "no token configured") >= 1);
	expect_refused_client(taddr, (tlsopt){ .ca = C.ca }, "certificate required");
	snprintf(line, sizeof line, "tls_ca = %s\ntls_verify_client = no\n", C.ca);
	write_conf(conf, line);
	kill(d->pid, SIGHUP);
	wait_log(1, "TLS settings not reloaded", 1);
	expect_refused_client(taddr, (tlsopt){ .ca = C.ca }, "certificate required");
	c = must_connect(taddr, (tlsopt){ .ca = C.ca, .cert = C.client_cert, .key = C.client_key });
	assert_int_equal(na_count(c, NULL, NULL, &n), 0);
	na_client_close(c);
	/* "optional" is refused the same way */
	snprintf(line, sizeof line, "tls_ca = %s\ntls_verify_client = optional\n", C.ca);
	write_conf(conf, line);
	kill(d->pid, SIGHUP);
	wait_log(1, "TLS settings not reloaded", 2);
	expect_refused_client(taddr, (tlsopt){ .ca = C.ca }, "certificate required");
}

/* ---- replication over TLS ------------------------------------------------- */

typedef struct fstate {
	char state[32];
	uint64_t articles, seq;
} fstate;

static int get_state(int i, fstate *s)
{
	memset(s, 0, sizeof *s);
	na_client *c;
	char err[256];
	if (try_connect(D[i].addr, (tlsopt){ 0 }, &c, err, sizeof err))
		return -1;
	na_server_stats *st;
	if (na_stats(c, &st)) {
		na_client_close(c);
		return -1;
	}
	s->articles = st->articles;
	s->seq = st->seq;
	const uint8_t *v;
	size_t vl;
	if (na_server_stats_find(st, "replication", &v, &vl) == 0) {
		na_mp r;
		uint32_t n;
		na_mp_init(&r, v, vl);
		if (na_mp_map(&r, &n) == 0)
			for (uint32_t k = 0; k < n; k++) {
				const char *key, *val;
				uint32_t kl, vlen;
				if (na_mp_str(&r, &key, &kl))
					break;
				if (na_mp_streq(key, kl, "state") && na_mp_str(&r, &val, &vlen) == 0) {
					snprintf(s->state, sizeof s->state, "%.*s", (int)vlen, val);
					continue;
				}
				if (na_mp_skip(&r))
					break;
			}
	}
	na_server_stats_free(st);
	na_client_close(c);
	return 0;
}

static void wait_caught_up(int p, int f)
{
	long long end = mono_ms() + WAIT_MS;
	fstate ps = { 0 }, fs = { 0 };
	while (mono_ms() < end) {
		if (get_state(p, &ps) == 0 && get_state(f, &fs) == 0 &&
		    strcmp(fs.state, "streaming") == 0 && fs.seq == ps.seq &&
		    fs.articles == ps.articles)
			return;
		poll_pause();
	}
	fail_msg("follower did not catch up: primary seq %llu articles %llu, follower %s seq %llu "
		 "articles %llu",
		 (unsigned long long)ps.seq, (unsigned long long)ps.articles, fs.state,
		 (unsigned long long)fs.seq, (unsigned long long)fs.articles);
}

static void test_follower_over_tls(void **st)
{
	(void)st;
	/* the primary requires client certificates from everyone on TLS */
	start_tls(0, C.server_cert, C.server_key, "--tls-ca", C.ca, "--tls-verify-client", "require",
		  NULL);
	na_client *p = must_connect(TADDR[0], (tlsopt){ .ca = C.ca, .cert = C.client_cert,
							.key = C.client_key });
	put_n(p, 0, 300, 3000); /* bootstrap by snapshot */
	na_test_daemon *f = &D[1];
	memset(f, 0, sizeof *f);
	int n = 0;
	f->extra[n++] = "--follow";
	f->extra[n++] = TADDR[0];
	f->extra[n++] = "--follow-tls-ca";
	f->extra[n++] = C.ca;
	f->extra[n++] = "--follow-tls-cert";
	f->extra[n++] = C.client_cert;
	f->extra[n++] = "--follow-tls-key";
	f->extra[n++] = C.client_key;
	f->extra[n] = NULL;
	assert_int_equal(na_test_daemon_start(f), 0);
	wait_caught_up(0, 1);
	assert_true(log_count(1, "TLS established") >= 1);
	/* streaming */
	put_n(p, 300, 100, 3000);
	wait_caught_up(0, 1);
	na_client *fc = must_connect(f->addr, (tlsopt){ 0 });
	for (int i = 0; i < 400; i += 37)
		check_get(fc, i);
	check_get(fc, 399);
	na_client_close(fc);
	na_client_close(p);
}

static void test_follower_refuses_wrong_primary(void **st)
{
	(void)st;
	start_tls(0, C.server_cert, C.server_key, NULL);
	na_client *p = must_connect(D[0].addr, (tlsopt){ 0 });
	put_n(p, 0, 5, 100);
	na_client_close(p);
	na_test_daemon *f = &D[1];
	memset(f, 0, sizeof *f);
	int n = 0;
	f->extra[n++] = "--follow";
	f->extra[n++] = TADDR[0];
	f->extra[n++] = "--tls-ca"; /* the default for follow_tls_ca */
	f->extra[n++] = C.wrong_ca;
	f->extra[n] = NULL;
	assert_int_equal(na_test_daemon_start(f), 0);
	/* refused, clearly, and retried (with backoff) */
	wait_log(1, "the server's certificate was refused: unable to get local issuer certificate", 3);
	fstate fs;
	assert_int_equal(get_state(1, &fs), 0);
	assert_int_equal(fs.articles, 0);
	assert_string_not_equal(fs.state, "streaming");
	/* the primary saw the follower hang up on it */
	wait_log(0, "TLS handshake failed", 1);
	assert_int_equal(na_test_daemon_cleanup(f), 0);

	/* the right CA but a name the certificate does not carry */
	memset(f, 0, sizeof *f);
	n = 0;
	f->extra[n++] = "--follow";
	f->extra[n++] = TADDR[0];
	f->extra[n++] = "--follow-tls-ca";
	f->extra[n++] = C.ca;
	f->extra[n++] = "--follow-tls-name";
	f->extra[n++] = "primary.example.org";
	f->extra[n] = NULL;
	assert_int_equal(na_test_daemon_start(f), 0);
	wait_log(1, "hostname mismatch", 2);
	assert_int_equal(get_state(1, &fs), 0);
	assert_int_equal(fs.articles, 0);
}

static void test_bad_tls_settings_stop_the_start(void **st)
{
	(void)st;
	/* a TLS listener without a key, and a follower with a missing CA file:
	 * the daemon must refuse to start, naming the problem */
	na_test_daemon *d = &D[0];
	memset(d, 0, sizeof *d);
	int port = na_test_free_port();
	char l[64];
	snprintf(l, sizeof l, "127.0.0.1:%d", port);
	d->extra[0] = "--tls-listen";
	d->extra[1] = l;
	d->extra[2] = "--tls-cert";
	d->extra[3] = C.server_cert;
	d->extra[4] = NULL;
	assert_int_not_equal(na_test_daemon_start(d), 0);
	assert_true(log_count(0, "needs tls_cert and tls_key") >= 1);
	na_test_daemon_cleanup(d);
	memset(d, 0, sizeof *d);
	d->extra[0] = "--follow";
	d->extra[1] = "tls://127.0.0.1:1";
	d->extra[2] = "--follow-tls-ca";
	d->extra[3] = "/nonexistent/ca.pem";
	d->extra[4] = NULL;
	assert_int_not_equal(na_test_daemon_start(d), 0);
	assert_true(log_count(0, "/nonexistent/ca.pem") >= 1);
	na_test_daemon_cleanup(d);
	memset(d, 0, sizeof *d);

	/* the authentication rule at start, on the IPv4-mapped loopback
	 * address (non-loopback to the daemon, see
	 * test_sighup_keeps_authentication): without a token a public TLS
	 * listener needs tls_verify_client = require ... */
	char pub[64];
	snprintf(pub, sizeof pub, "[::ffff:127.0.0.1]:%d", port);
	const char *policy[] = { "no", "optional" };
	for (int i = 0; i < 2; i++) {
		int k = 0;
		d->extra[k++] = "--tls-listen";
		d->extra[k++] = pub;
		d->extra[k++] = "--tls-cert";
		d->extra[k++] = C.server_cert;
		d->extra[k++] = "--tls-key";
		d->extra[k++] = C.server_key;
		d->extra[k++] = "--tls-ca";
		d->extra[k++] = C.ca;
		d->extra[k++] = "--tls-verify-client";
		d->extra[k++] = policy[i];
		d->extra[k] = NULL;
		assert_int_not_equal(na_test_daemon_start(d), 0);
		assert_true(log_count(0, "refusing to listen on [::ffff:127.0.0.1]") >= 1);
		na_test_daemon_cleanup(d);
		memset(d, 0, sizeof *d);
	}
	/* ... and "require" on the TLS side does not cover a public plaintext
	 * listener beside it */
	int k = 0;
	d->extra[k++] = "--listen";
	d->extra[k++] = pub;
	d->extra[k++] = "--tls-listen";
	d->extra[k++] = l;
	d->extra[k++] = "--tls-cert";
	d->extra[k++] = C.server_cert;
	d->extra[k++] = "--tls-key";
	d->extra[k++] = C.server_key;
	d->extra[k++] = "--tls-ca";
	d->extra[k++] = C.ca;
	d->extra[k++] = "--tls-verify-client";
	d->extra[k++] = "require";
	d->extra[k] = NULL;
	assert_int_not_equal(na_test_daemon_start(d), 0);
	assert_true(log_count(0, "refusing to listen on [::ffff:127.0.0.1]") >= 1);
	na_test_daemon_cleanup(d);
	memset(d, 0, sizeof *d);
}

/* ---- the CLI --------------------------------------------------------------- */

typedef struct run {
	int status;
	char out[8192], err[8192];
} run;

static void slurp(const char *path, char *buf, size_t cap)
{
	buf[0] = 0;
	FILE *f = fopen(path, "rb");
	if (!f)
		return;
	size_t n = fread(buf, 1, cap - 1, f);
	buf[n] = 0;
	fclose(f);
}

/* runs $NEWSARCH with args (NULL-ended), stdin from in_path or /dev/null */
static void run_cli(run *r, const char *in_path, ...)
{
	const char *bin = getenv("NEWSARCH");
	const char *argv[40];
	int argc = 0;
	argv[argc++] = bin ? bin : "build/newsarch";
	va_list ap;
	va_start(ap, in_path);
	const char *a;
	while ((a = va_arg(ap, const char *)) && argc < 39)
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	char outp[400], errp[400];
	snprintf(outp, sizeof outp, "%s/cli.out", D[0].dir);
	snprintf(errp, sizeof errp, "%s/cli.err", D[0].dir);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int in = open(in_path ? in_path : "/dev/null", O_RDONLY);
		int out = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int err = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (in < 0 || out < 0 || err < 0)
			_exit(126);
		dup2(in, 0);
		dup2(out, 1);
		dup2(err, 2);
		unsetenv("NEWSARCH_ADDR");
		unsetenv("NEWSARCH_CACERT");
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	int stt;
	while (waitpid(pid, &stt, 0) < 0 && errno == EINTR)
		;
	r->status = WIFEXITED(stt) ? WEXITSTATUS(stt) : -1;
	slurp(outp, r->out, sizeof r->out);
	slurp(errp, r->err, sizeof r->err);
}

static void test_cli_over_tls(void **st)
{
	(void)st;
	start_tls(0, C.server_cert, C.server_key, "--tls-ca", C.ca, "--tls-verify-client",
		  "optional", NULL);
	run r;
	run_cli(&r, NULL, "-s", TADDR[0], "--cacert", C.ca, "ping", NULL);
	if (r.status != 0)
		fail_msg("ping: %d %s", r.status, r.err);
	expect_in(r.out, "pong");
	/* put from stdin, import a file through the pipelined path, get back */
	char in[400];
	snprintf(in, sizeof in, "%s/a.json", D[0].dir);
	FILE *f = fopen(in, "w");
	assert_non_null(f);
	fputs("{\"guid\":\"cli-1\",\"title\":\"over tls\",\"published\":\"2021-05-01T00:00:00Z\"}\n", f);
	fclose(f);
	run_cli(&r, in, "-s", TADDR[0], "--cacert", C.ca, "put", NULL);
	if (r.status != 0)
		fail_msg("put: %d %s", r.status, r.err);
	char imp[400];
	snprintf(imp, sizeof imp, "%s/b.jsonl", D[0].dir);
	f = fopen(imp, "w");
	assert_non_null(f);
	for (int i = 0; i < 500; i++)
		fprintf(f, "{\"guid\":\"imp-%d\",\"title\":\"t %d\",\"published\":\"2021-06-01T00:00:%02dZ\"}\n",
			i, i, i % 60);
	fclose(f);
	run_cli(&r, NULL, "-s", TADDR[0], "--cacert", C.ca, "--cert", C.client_cert, "--key",
		C.client_key, "import", imp, NULL);
	if (r.status != 0)
		fail_msg("import: %d %s", r.status, r.err);
	run_cli(&r, NULL, "-s", TADDR[0], "--cacert", C.ca, "get", "cli-1", NULL);
	assert_int_equal(r.status, 0);
	expect_in(r.out, "over tls");
	run_cli(&r, NULL, "-s", TADDR[0], "--cacert", C.ca, "count", NULL);
	assert_int_equal(r.status, 0);
	expect_in(r.out, "501");
	/* the wrong CA: exit 3 and the reason, for the sync and pipelined paths */
	run_cli(&r, NULL, "-s", TADDR[0], "--cacert", C.wrong_ca, "ping", NULL);
	assert_int_equal(r.status, 3);
	expect_in(r.err, "the server's certificate was refused");
	run_cli(&r, NULL, "-s", TADDR[0], "--cacert", C.wrong_ca, "import", imp, NULL);
	assert_int_equal(r.status, 3);
	expect_in(r.err, "certificate");
	/* an empty --servername means the host in the address, for the sync
	 * and pipelined paths alike (never "no name check") */
	run_cli(&r, NULL, "-s", TADDR[0], "--cacert", C.ca, "--servername", "", "count", NULL);
	if (r.status != 0)
		fail_msg("count with --servername \"\": %d %s", r.status, r.err);
	run_cli(&r, NULL, "-s", TADDR[0], "--cacert", C.ca, "--servername", "", "import", imp, NULL);
	if (r.status != 0)
		fail_msg("import with --servername \"\": %d %s", r.status, r.err);
	/* usage errors */
	run_cli(&r, NULL, "-s", TADDR[0], "--cert", C.client_cert, "ping", NULL);
	assert_int_equal(r.status, 2);
}

/* ---- the libuv adapter ------------------------------------------------------ */

typedef struct uvst {
	int connected, status, replies, err;
	char msg[512];
} uvst;

static void uv_on_connect(na_uv_client *c, int status, const char *errmsg, void *ud)
{
	(void)c;
	uvst *s = ud;
	s->connected = 1;
	s->status = status;
	snprintf(s->msg, sizeof s->msg, "%s", errmsg);
}

static void uv_on_reply(na_uv_client *c, const na_uv_reply *r, void *ud)
{
	uvst *s = ud;
	s->replies++;
	if (r->err && !s->err) {
		s->err = r->err;
		snprintf(s->msg, sizeof s->msg, "%s", r->errmsg);
	}
	if (s->replies == 3)
		na_uv_client_close(c);
}

static void test_uv_over_tls(void **st)
{
	(void)st;
	start_tls(0, C.server_cert, C.server_key, NULL);
	na_client *p = must_connect(D[0].addr, (tlsopt){ 0 });
	put_n(p, 0, 3, 30000);
	na_client_close(p);
	uv_loop_t loop;
	uv_loop_init(&loop);
	na_options o;
	na_options_init(&o);
	o.tls_ca_file = C.ca;
	na_uv_client *c;
	uvst s = { 0 };
	assert_int_equal(na_uv_client_connect(&loop, TADDR[0], &o, uv_on_connect, &s, &c), 0);
	/* queued before the handshake finished: sent after it */
	assert_int_equal(na_uv_ping(c, uv_on_reply, &s), 0);
	assert_int_equal(na_uv_get(c, "tls-000002", 10, NULL, 0, uv_on_reply, &s), 0);
	na_range_opts ro = { .page_size = 10 };
	assert_int_equal(na_uv_range_page(c, &ro, NULL, uv_on_reply, &s), 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_true(s.connected);
	if (s.status || s.err)
		fail_msg("uv: status %d err %d: %s", s.status, s.err, s.msg);
	assert_int_equal(s.replies, 3);

	/* the wrong CA: the connect callback says why, the calls fail */
	o.tls_ca_file = C.wrong_ca;
	uvst w = { 0 };
	assert_int_equal(na_uv_client_connect(&loop, TADDR[0], &o, uv_on_connect, &w, &c), 0);
	assert_int_equal(na_uv_ping(c, uv_on_reply, &w), 0);
	while (!w.connected || w.replies < 1)
		if (uv_run(&loop, UV_RUN_ONCE) == 0)
			break;
	assert_int_equal(w.status, NA_ETLS);
	expect_in(w.msg, "unable to get local issuer certificate");
	assert_int_equal(w.replies, 1);
	na_uv_client_close(c);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_roundtrip_and_both_listeners, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_certificates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_certificates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage_and_stalled_handshakes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_request_then_close_notify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_partial_record_is_cut_off, setup, teardown),
		cmocka_unit_test_setup_teardown(test_large_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sighup_reloads_certificate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sighup_keeps_authentication, setup, teardown),
		cmocka_unit_test_setup_teardown(test_follower_over_tls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_follower_refuses_wrong_primary, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_tls_settings_stop_the_start, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cli_over_tls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uv_over_tls, setup, teardown),
	};
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
