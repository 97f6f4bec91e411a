/*
 * tls.c - the memory-BIO TLS engine (design in tls.h).
 *
 * Each connection is an SSL object between two memory BIOs: rbio receives
 * what the caller feeds, wbio collects what OpenSSL wants to send. After
 * every OpenSSL call wbio is drained into our own output buffer, which the
 * caller reads with na_tls_output()/na_tls_consume() (or takes whole with
 * na_tls_output_release(), which avoids a copy for libuv writes). rbio is
 * set to report "retry" when empty, so an empty input is "need more bytes",
 * never end of file: end of file is the caller's socket telling it so.
 */
#include "tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct na_tls_ctx {
	SSL_CTX *ctx;
	bool server;
};

struct na_tls {
	SSL *ssl;
	BIO *rbio, *wbio;
	uint8_t *out;
	size_t out_off, out_len, out_cap;
	bool done, failed;
	char err[256];
};

/* The most useful description of what OpenSSL's error queue holds: a
 * system error (a file that cannot be opened) first, else the last one. */
static void queue_msg(char *buf, size_t len, const char *what)
{
	unsigned long e, last = 0, sys = 0;
	while ((e = ERR_get_error()) != 0) {
		if (ERR_SYSTEM_ERROR(e) && !sys)
			sys = e;
		last = e;
	}
	if (sys) {
		snprintf(buf, len, "%s: %s", what, strerror(ERR_GET_REASON(sys)));
		return;
	}
	const char *r = last ? ERR_reason_error_string(last) : NULL;
	if (r)
		snprintf(buf, len, "%s: %s", what, r);
	else if (last)
		snprintf(buf, len, "%s: error %lx", what, last);
	else
		snprintf(buf, len, "%s", what);
}

static SSL_CTX *base_ctx(bool server, char *err, size_t errlen)
{
	SSL_CTX *c = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	if (!c) {
		queue_msg(err, errlen, "cannot create a TLS context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
	SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	/* idle connections give their 2 x 17 KB record buffers back */
	SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS);
	return c;
}

static int load_pair(SSL_CTX *c, const char *cert, const char *key, char *err, size_t errlen)
{
	char what[700];
	if (SSL_CTX_use_certificate_chain_file(c, cert) != 1) {
		snprintf(what, sizeof what, "cannot load the certificate %s", cert);
		queue_msg(err, errlen, what);
		return -1;
	}
	if (SSL_CTX_use_PrivateKey_file(c, key, SSL_FILETYPE_PEM) != 1) {
		snprintf(what, sizeof what, "cannot load the private key %s", key);
		queue_msg(err, errlen, what);
		return -1;
	}
	if (SSL_CTX_check_private_key(c) != 1) {
		snprintf(what, sizeof what, "the private key %s does not match the certificate %s",
			 key, cert);
		queue_msg(err, errlen, what);
		return -1;
	}
	return 0;
}

static bool set(const char *s)
{
	return s && *s;
}

int na_tls_ctx_server(const char *cert, const char *key, const char *ca, int verify,
		      na_tls_ctx **out, char *err, size_t errlen)
{
	ERR_clear_error();
	if (!set(cert) || !set(key)) {
		snprintf(err, errlen, "a TLS listener needs tls_cert and tls_key");
		return -1;
	}
	if (verify != NA_TLS_VERIFY_NO && !set(ca)) {
		snprintf(err, errlen, "tls_verify_client needs tls_ca (the CA client certificates "
				      "must be signed by)");
		return -1;
	}
	na_tls_ctx *x = calloc(1, sizeof *x);
	if (!x) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	x->server = true;
	x->ctx = base_ctx(true, err, errlen);
	if (!x->ctx || load_pair(x->ctx, cert, key, err, errlen))
		goto fail;
	if (set(ca)) {
		char what[600];
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca);
		if (!names || SSL_CTX_load_verify_locations(x->ctx, ca, NULL) != 1) {
			sk_X509_NAME_pop_free(names, X509_NAME_free);
			snprintf(what, sizeof what, "cannot load the CA file %s", ca);
			queue_msg(err, errlen, what);
			goto fail;
		}
		SSL_CTX_set_client_CA_list(x->ctx, names); /* takes names */
	}
	int mode = verify == NA_TLS_VERIFY_NO ? SSL_VERIFY_NONE
		   : verify == NA_TLS_VERIFY_OPTIONAL
		       ? SSL_VERIFY_PEER
		       : SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
	SSL_CTX_set_verify(x->ctx, mode, NULL);
	/* resumed sessions keep their verified client certificate */
	static const unsigned char sid[] = "newsarchd";
	SSL_CTX_set_session_id_context(x->ctx, sid, sizeof sid - 1);
	*out = x;
	return 0;
fail:
	if (x->ctx)
		SSL_CTX_free(x->ctx);
	free(x);
	return -1;
}

int na_tls_ctx_client(const char *ca, const char *cert, const char *key, na_tls_ctx **out,
		      char *err, size_t errlen)
{
	ERR_clear_error();
	if (set(cert) != set(key)) {
		snprintf(err, errlen, "a client certificate needs both the certificate and the key file");
		return -1;
	}
	na_tls_ctx *x = calloc(1, sizeof *x);
	if (!x) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	x->ctx = base_ctx(false, err, errlen);
	if (!x->ctx)
		goto fail;
	if (set(ca)) {
		if (SSL_CTX_load_verify_locations(x->ctx, ca, NULL) != 1) {
			char what[600];
			snprintf(what, sizeof what, "cannot load the CA file %s", ca);
			queue_msg(err, errlen, what);
			goto fail;
		}
	} else if (SSL_CTX_set_default_verify_paths(x->ctx) != 1) {
		queue_msg(err, errlen, "cannot load the system's trusted CAs");
		goto fail;
	}
	SSL_CTX_set_verify(x->ctx, SSL_VERIFY_PEER, NULL);
	if (set(cert) && load_pair(x->ctx, cert, key, err, errlen))
		goto fail;
	*out = x;
	return 0;
fail:
	if (x->ctx)
		SSL_CTX_free(x->ctx);
	free(x);
	return -1;
}

void na_tls_ctx_free(na_tls_ctx *x)
{
	if (!x)
		return;
	SSL_CTX_free(x->ctx);
	free(x);
}

/* Moves what OpenSSL produced into our output buffer. */
static int drain(na_tls *t)
{
	size_t pend;
	while ((pend = BIO_ctrl_pending(t->wbio)) > 0) {
		if (t->out_off == t->out_len)
			t->out_off = t->out_len = 0;
		if (t->out_cap - t->out_len < pend) {
			if (t->out_off) {
				memmove(t->out, t->out + t->out_off, t->out_len - t->out_off);
				t->out_len -= t->out_off;
				t->out_off = 0;
			}
			size_t want = t->out_cap ? t->out_cap : 4096;
			while (want - t->out_len < pend)
				want *= 2;
			if (want != t->out_cap) {
				uint8_t *n = realloc(t->out, want);
				if (!n)
					return NA_TLS_NOMEM;
				t->out = n;
				t->out_cap = want;
			}
		}
		int r = BIO_read(t->wbio, t->out + t->out_len, (int)(pend > INT32_MAX ? INT32_MAX : pend));
		if (r <= 0)
			break;
		t->out_len += (size_t)r;
	}
	return 0;
}

int na_tls_new(na_tls_ctx *x, const char *name, na_tls **out)
{
	ERR_clear_error();
	na_tls *t = calloc(1, sizeof *t);
	if (!t)
		return NA_TLS_NOMEM;
	t->ssl = SSL_new(x->ctx); /* holds a reference to the context */
	t->rbio = BIO_new(BIO_s_mem());
	t->wbio = BIO_new(BIO_s_mem());
	if (!t->ssl || !t->rbio || !t->wbio) {
		BIO_free(t->rbio);
		BIO_free(t->wbio);
		SSL_free(t->ssl);
		free(t);
		return NA_TLS_NOMEM;
	}
	BIO_set_mem_eof_return(t->rbio, -1); /* empty: retry, not EOF */
	BIO_set_mem_eof_return(t->wbio, -1);
	SSL_set_bio(t->ssl, t->rbio, t->wbio); /* the SSL owns both now */
	if (x->server) {
		SSL_set_accept_state(t->ssl);
		*out = t;
		return 0;
	}
	SSL_set_connect_state(t->ssl);
	/* no name, no session: a chain check alone would accept any
	 * certificate the CAs ever signed, for any host */
	if (!set(name)) {
		na_tls_free(t);
		return NA_TLS_ERROR;
	}
	unsigned char ip[16];
	bool is_ip = inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1;
	int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), name)
		       : SSL_set_tlsext_host_name(t->ssl, name) == 1 &&
				 SSL_set1_host(t->ssl, name) == 1;
	if (!ok) {
		na_tls_free(t);
		return NA_TLS_ERROR;
	}
	/* the ClientHello */
	int r = SSL_do_handshake(t->ssl);
	if (r != 1 && SSL_get_error(t->ssl, r) != SSL_ERROR_WANT_READ) {
		na_tls_free(t);
		return NA_TLS_ERROR;
	}
	if (drain(t)) {
		na_tls_free(t);
		return NA_TLS_NOMEM;
	}
	*out = t;
	return 0;
}

void na_tls_free(na_tls *t)
{
	if (!t)
		return;
	SSL_free(t->ssl);
	free(t->out);
	free(t);
}

int na_tls_feed(na_tls *t, const void *buf, size_t len)
{
	while (len > 0) {
		int n = (int)(len > (1u << 30) ? 1u << 30 : len);
		int w = BIO_write(t->rbio, buf, n);
		if (w <= 0)
			return NA_TLS_NOMEM;
		buf = (const uint8_t *)buf + w;
		len -= (size_t)w;
	}
	return 0;
}

/* Describes a failed handshake or record operation. */
static int fail(na_tls *t, int r)
{
	int e = SSL_get_error(t->ssl, r);
	t->failed = true;
	long vr = SSL_get_verify_result(t->ssl);
	if (vr != X509_V_OK && !SSL_is_server(t->ssl)) {
		ERR_clear_error();
		snprintf(t->err, sizeof t->err, "the server's certificate was refused: %s",
			 X509_verify_cert_error_string(vr));
	} else if (vr != X509_V_OK) {
		ERR_clear_error();
		snprintf(t->err, sizeof t->err, "the client's certificate was refused: %s",
			 X509_verify_cert_error_string(vr));
	} else if (e == SSL_ERROR_SSL) {
		queue_msg(t->err, sizeof t->err, t->done ? "TLS error" : "TLS handshake failed");
	} else {
		queue_msg(t->err, sizeof t->err, "TLS failure");
	}
	drain(t); /* an alert for the peer, if OpenSSL made one */
	return NA_TLS_ERROR;
}

int na_tls_read(na_tls *t, void *buf, size_t cap, size_t *got)
{
	*got = 0;
	t->err[0] = 0;
	if (t->failed)
		return NA_TLS_ERROR;
	ERR_clear_error();
	if (!t->done) {
		int r = SSL_do_handshake(t->ssl);
		if (r == 1) {
			t->done = true;
		} else {
			int e = SSL_get_error(t->ssl, r);
			if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
				return fail(t, r);
			return drain(t);
		}
	}
	size_t n = 0;
	int r = cap ? SSL_read_ex(t->ssl, buf, cap, &n) : 1;
	if (r == 1) {
		*got = n;
		return drain(t);
	}
	int e = SSL_get_error(t->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return drain(t);
	if (e == SSL_ERROR_ZERO_RETURN) {
		drain(t);
		return NA_TLS_EOF;
	}
	return fail(t, r);
}

int na_tls_write(na_tls *t, const void *buf, size_t len)
{
	if (t->failed)
		return NA_TLS_ERROR;
	if (!t->done)
		return NA_TLS_AGAIN;
	ERR_clear_error();
	t->err[0] = 0;
	while (len > 0) {
		size_t w = 0;
		int r = SSL_write_ex(t->ssl, buf, len, &w);
		if (r != 1)
			return fail(t, r);
		buf = (const uint8_t *)buf + w;
		len -= w;
		if (drain(t))
			return NA_TLS_NOMEM;
	}
	return 0;
}

void na_tls_output(const na_tls *t, const uint8_t **buf, size_t *len)
{
	*buf = t->out ? t->out + t->out_off : NULL;
	*len = t->out_len - t->out_off;
}

void na_tls_consume(na_tls *t, size_t n)
{
	if (n > t->out_len - t->out_off)
		n = t->out_len - t->out_off;
	t->out_off += n;
	if (t->out_off == t->out_len)
		t->out_off = t->out_len = 0;
}

uint8_t *na_tls_output_release(na_tls *t, size_t *len)
{
	size_t n = t->out_len - t->out_off;
	*len = n;
	if (n == 0)
		return NULL;
	uint8_t *b;
	if (t->out_off == 0) {
		b = t->out;
		t->out = NULL;
		t->out_cap = 0;
	} else {
		b = malloc(n);
		if (!b) {
			*len = 0;
			return NULL;
		}
		memcpy(b, t->out + t->out_off, n);
	}
	t->out_off = t->out_len = 0;
	return b;
}

void na_tls_shutdown(na_tls *t)
{
	if (t->failed || !t->done)
		return;
	ERR_clear_error();
	SSL_shutdown(t->ssl);
	ERR_clear_error();
	drain(t);
}

bool na_tls_handshake_done(const na_tls *t)
{
	return t->done;
}

bool na_tls_input_partial(const na_tls *t)
{
	return BIO_ctrl_pending(t->rbio) > 0 || SSL_has_pending(t->ssl) == 1;
}

const char *na_tls_errmsg(const na_tls *t)
{
	return t->err;
}

void na_tls_describe(const na_tls *t, char *buf, size_t len)
{
	char subj[200] = "none";
	X509 *peer = SSL_get1_peer_certificate(t->ssl);
	if (peer) {
		X509_NAME_oneline(X509_get_subject_name(peer), subj, sizeof subj);
		X509_free(peer);
	}
	const SSL_CIPHER *c = SSL_get_current_cipher(t->ssl);
	snprintf(buf, len, "%s %s, peer certificate %s", SSL_get_version(t->ssl),
		 c ? SSL_CIPHER_get_name(c) : "-", subj);
}
