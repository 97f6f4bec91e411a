/*
 * test_tls_engine.c - the memory-BIO TLS engine (proto/tls.c) with no
 * sockets: a client and a server engine are wired back to back and bytes
 * are moved between them by hand. Certificates are generated at test time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "certs.h"
#include "tls.h"

static na_test_certs C;
static char dir[256];

static int group_setup(void **st)
{
	(void)st;
	const char *tmp = getenv("TMPDIR");
	snprintf(dir, sizeof dir, "%s/newsarch-test.XXXXXX", tmp ? tmp : "/tmp");
	if (!mkdtemp(dir))
		return -1;
	return na_test_certs_make(dir, &C);
}

static int group_teardown(void **st)
{
	(void)st;
	char cmd[400];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Moves everything a has to send into b. */
static void move(na_tls *a, na_tls *b)
{
	const uint8_t *p;
	size_t n;
	na_tls_output(a, &p, &n);
	if (n) {
		assert_int_equal(na_tls_feed(b, p, n), 0);
		na_tls_consume(a, n);
	}
}

/* Pumps until both sides finished the handshake, or one failed (returns
 * that side's code: the first nonzero na_tls_read result). */
static int handshake(na_tls *cl, na_tls *sv, na_tls **failed)
{
	uint8_t buf[64];
	size_t got;
	for (int i = 0; i < 20; i++) {
		move(cl, sv);
		int rc = na_tls_read(sv, buf, sizeof buf, &got);
		if (rc) {
			*failed = sv;
			return rc;
		}
		move(sv, cl);
		rc = na_tls_read(cl, buf, sizeof buf, &got);
		if (rc) {
			*failed = cl;
			return rc;
		}
		if (na_tls_handshake_done(cl) && na_tls_handshake_done(sv))
			return 0;
	}
	fail_msg("handshake did not finish");
	return -1;
}

static void pair(const char *cert, const char *key, const char *client_ca, const char *name,
		 na_tls **cl, na_tls **sv)
{
	na_tls_ctx *sx, *cx;
	char err[512];
	if (na_tls_ctx_server(cert, key, NULL, NA_TLS_VERIFY_NO, &sx, err, sizeof err))
		fail_msg("server ctx: %s", err);
	if (na_tls_ctx_client(client_ca, NULL, NULL, &cx, err, sizeof err))
		fail_msg("client ctx: %s", err);
	assert_int_equal(na_tls_new(sx, NULL, sv), 0);
	assert_int_equal(na_tls_new(cx, name, cl), 0);
	/* sessions keep their context alive */
	na_tls_ctx_free(sx);
	na_tls_ctx_free(cx);
}

static void test_roundtrip(void **st)
{
	(void)st;
	na_tls *cl, *sv, *bad = NULL;
	pair(C.server_cert, C.server_key, C.ca, "127.0.0.1", &cl, &sv);
	/* before the handshake nothing can be written */
	assert_int_equal(na_tls_write(cl, "x", 1), NA_TLS_AGAIN);
	assert_int_equal(handshake(cl, sv, &bad), 0);
	char d[300];
	na_tls_describe(cl, d, sizeof d);
	assert_non_null(strstr(d, "TLSv1."));
	/* 1 MiB one way: many records */
	size_t big = 1u << 20;
	uint8_t *src = malloc(big), *dst = malloc(big);
	assert_non_null(src);
	assert_non_null(dst);
	for (size_t i = 0; i < big; i++)
		src[i] = (uint8_t)(i * 31 + 7);
	assert_int_equal(na_tls_write(cl, src, big), 0);
	size_t len;
	uint8_t *wire = na_tls_output_release(cl, &len);
	assert_non_null(wire);
	assert_true(len > big); /* ciphertext carries record overhead */
	assert_int_equal(na_tls_feed(sv, wire, len), 0);
	free(wire);
	size_t have = 0, got;
	do {
		assert_int_equal(na_tls_read(sv, dst + have, big - have, &got), 0);
		have += got;
	} while (got && have < big);
	assert_int_equal(have, big);
	assert_memory_equal(src, dst, big);
	assert_false(na_tls_input_partial(sv)); /* every record read whole */
	/* all of a record but its last byte: begun, not finished */
	assert_int_equal(na_tls_write(cl, "ping", 4), 0);
	wire = na_tls_output_release(cl, &len);
	assert_non_null(wire);
	assert_int_equal(na_tls_feed(sv, wire, len - 1), 0);
	assert_int_equal(na_tls_read(sv, dst, big, &got), 0);
	assert_int_equal(got, 0);
	assert_true(na_tls_input_partial(sv));
	assert_int_equal(na_tls_feed(sv, wire + len - 1, 1), 0);
	free(wire);
	assert_int_equal(na_tls_read(sv, dst, big, &got), 0);
	assert_int_equal(got, 4);
	assert_false(na_tls_input_partial(sv));
	/* and back */
	assert_int_equal(na_tls_write(sv, "pong", 4), 0);
	move(sv, cl);
	char four[8];
	assert_int_equal(na_tls_read(cl, four, sizeof four, &got), 0);
	assert_int_equal(got, 4);
	assert_memory_equal(four, "pong", 4);
	/* nothing more: 0 bytes, no error */
	assert_int_equal(na_tls_read(cl, four, sizeof four, &got), 0);
	assert_int_equal(got, 0);
	/* a clean close */
	na_tls_shutdown(cl);
	move(cl, sv);
	assert_int_equal(na_tls_read(sv, four, sizeof four, &got), NA_TLS_EOF);
	free(src);
	free(dst);
	na_tls_free(cl);
	na_tls_free(sv);
}

static void test_refusals(void **st)
{
	(void)st;
	na_tls *cl, *sv, *bad = NULL;
	/* unknown CA: the client refuses, naming why */
	pair(C.server_cert, C.server_key, C.wrong_ca, "localhost", &cl, &sv);
	assert_int_equal(handshake(cl, sv, &bad), NA_TLS_ERROR);
	assert_ptr_equal(bad, cl);
	assert_non_null(strstr(na_tls_errmsg(cl), "certificate was refused"));
	/* the alert reaches the server, which fails too */
	move(cl, sv);
	uint8_t buf[16];
	size_t got;
	assert_int_equal(na_tls_read(sv, buf, sizeof buf, &got), NA_TLS_ERROR);
	assert_true(strlen(na_tls_errmsg(sv)) > 0);
	assert_int_equal(na_tls_write(cl, "x", 1), NA_TLS_ERROR);
	na_tls_free(cl);
	na_tls_free(sv);
	/* expired */
	pair(C.expired_cert, C.expired_key, C.ca, "localhost", &cl, &sv);
	assert_int_equal(handshake(cl, sv, &bad), NA_TLS_ERROR);
	assert_non_null(strstr(na_tls_errmsg(cl), "certificate has expired"));
	na_tls_free(cl);
	na_tls_free(sv);
	/* wrong name */
	pair(C.server_cert, C.server_key, C.ca, "10.1.2.3", &cl, &sv);
	assert_int_equal(handshake(cl, sv, &bad), NA_TLS_ERROR);
	assert_non_null(strstr(na_tls_errmsg(cl), "mismatch"));
	na_tls_free(cl);
	na_tls_free(sv);
	/* no name at all: a client session would check the chain only, so
	 * there is none (a certificate for another host must not pass) */
	na_tls_ctx *cx;
	char err[512];
	if (na_tls_ctx_client(C.ca, NULL, NULL, &cx, err, sizeof err))
		fail_msg("client ctx: %s", err);
	na_tls *t = NULL;
	assert_int_equal(na_tls_new(cx, NULL, &t), NA_TLS_ERROR);
	assert_null(t);
	assert_int_equal(na_tls_new(cx, "", &t), NA_TLS_ERROR);
	assert_null(t);
	na_tls_ctx_free(cx);
}

static void test_garbage(void **st)
{
	(void)st;
	na_tls *cl, *sv;
	pair(C.server_cert, C.server_key, C.ca, "localhost", &cl, &sv);
	static const uint8_t junk[] = { 0x16, 0x03, 0x01, 0x00, 0x04, 0xde, 0xad, 0xbe, 0xef };
	assert_int_equal(na_tls_feed(sv, junk, sizeof junk), 0);
	uint8_t buf[16];
	size_t got;
	assert_int_equal(na_tls_read(sv, buf, sizeof buf, &got), NA_TLS_ERROR);
	assert_non_null(strstr(na_tls_errmsg(sv), "TLS handshake failed"));
	/* failed stays failed */
	assert_int_equal(na_tls_read(sv, buf, sizeof buf, &got), NA_TLS_ERROR);
	na_tls_free(cl);
	na_tls_free(sv);
	/* a partial record is just "need more" */
	pair(C.server_cert, C.server_key, C.ca, "localhost", &cl, &sv);
	assert_false(na_tls_input_partial(sv));
	assert_int_equal(na_tls_feed(sv, junk, 3), 0);
	assert_int_equal(na_tls_read(sv, buf, sizeof buf, &got), 0);
	assert_int_equal(got, 0);
	assert_false(na_tls_handshake_done(sv));
	assert_true(na_tls_input_partial(sv)); /* a record begun */
	na_tls_free(cl);
	na_tls_free(sv);
}

static void test_contexts(void **st)
{
	(void)st;
	na_tls_ctx *x;
	char err[512];
	assert_int_equal(na_tls_ctx_server("/nonexistent.pem", C.server_key, NULL, NA_TLS_VERIFY_NO,
					   &x, err, sizeof err), -1);
	assert_non_null(strstr(err, "/nonexistent.pem"));
	assert_non_null(strstr(err, "No such file"));
	assert_int_equal(na_tls_ctx_server(C.server_cert, NULL, NULL, NA_TLS_VERIFY_NO, &x, err,
					   sizeof err), -1);
	assert_int_equal(na_tls_ctx_server(C.server_cert, C.server_key, NULL,
					   NA_TLS_VERIFY_REQUIRE, &x, err, sizeof err), -1);
	assert_non_null(strstr(err, "tls_ca"));
	assert_int_equal(na_tls_ctx_server(C.server_cert, C.client_key, NULL, NA_TLS_VERIFY_NO, &x,
					   err, sizeof err), -1);
	assert_non_null(strstr(err, "mismatch"));
	/* a certificate file given as the key */
	assert_int_equal(na_tls_ctx_client(C.ca, C.client_cert, C.client_cert, &x, err, sizeof err),
			 -1);
	assert_int_equal(na_tls_ctx_client(C.ca, C.client_cert, NULL, &x, err, sizeof err), -1);
	assert_int_equal(na_tls_ctx_client(C.ca, C.client_cert, C.client_key, &x, err, sizeof err),
			 0);
	na_tls_ctx_free(x);
	assert_int_equal(na_tls_ctx_server(C.server_cert, C.server_key, C.ca, NA_TLS_VERIFY_REQUIRE,
					   &x, err, sizeof err), 0);
	na_tls_ctx_free(x);
	na_tls_ctx_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_contexts),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
