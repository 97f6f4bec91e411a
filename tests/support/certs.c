/*
 * certs.c - test support: generates the certificates of certs.h.
 */
#include "certs.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

typedef struct pair {
	EVP_PKEY *key;
	X509 *cert;
} pair;

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!e)
		return -1;
	int ok = X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	return ok ? 0 : -1;
}

/*
 * Makes a key and a certificate for cn signed by ca (NULL: self-signed CA),
 * valid from now+from_s to now+to_s seconds. kind: 'c' CA, 's' server and
 * client, 'u' client only.
 */
static int make(pair *p, const pair *ca, const char *cn, long from_s, long to_s, char kind,
		long serial)
{
	p->key = EVP_EC_gen("P-256");
	p->cert = X509_new();
	if (!p->key || !p->cert)
		return -1;
	X509 *x = p->cert;
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	X509_gmtime_adj(X509_getm_notBefore(x), from_s);
	X509_gmtime_adj(X509_getm_notAfter(x), to_s);
	X509_set_pubkey(x, p->key);
	X509_NAME *n = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC, (const unsigned char *)"newsarch tests", -1,
				   -1, 0);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509 *issuer = ca ? ca->cert : x;
	X509_set_issuer_name(x, X509_get_subject_name(issuer));
	int rc = add_ext(x, issuer, NID_subject_key_identifier, "hash");
	if (kind == 'c') {
		rc |= add_ext(x, issuer, NID_basic_constraints, "critical,CA:TRUE");
		rc |= add_ext(x, issuer, NID_key_usage, "critical,keyCertSign,cRLSign");
	} else {
		rc |= add_ext(x, issuer, NID_authority_key_identifier, "keyid:always");
		rc |= add_ext(x, issuer, NID_basic_constraints, "critical,CA:FALSE");
		rc |= add_ext(x, issuer, NID_key_usage, "critical,digitalSignature");
		rc |= add_ext(x, issuer, NID_ext_key_usage,
			      kind == 's' ? "serverAuth,clientAuth" : "clientAuth");
		if (kind == 's')
			rc |= add_ext(x, issuer, NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost");
	}
	if (rc)
		return -1;
	return X509_sign(x, ca ? ca->key : p->key, EVP_sha256()) > 0 ? 0 : -1;
}

static int write_pem(const char *dir, const char *name, const pair *p, char *cert_path,
		     char *key_path)
{
	snprintf(cert_path, 300, "%s/%s.pem", dir, name);
	FILE *f = fopen(cert_path, "w");
	if (!f || PEM_write_X509(f, p->cert) != 1) {
		if (f)
			fclose(f);
		return -1;
	}
	fclose(f);
	if (!key_path)
		return 0;
	snprintf(key_path, 300, "%s/%s.key", dir, name);
	f = fopen(key_path, "w");
	if (!f || PEM_write_PrivateKey(f, p->key, NULL, NULL, 0, NULL, NULL) != 1) {
		if (f)
			fclose(f);
		return -1;
	}
	fclose(f);
	return 0;
}

static void drop(pair *p)
{
	EVP_PKEY_free(p->key);
	X509_free(p->cert);
}

int na_test_certs_make(const char *dir, na_test_certs *out)
{
	const long day = 86400;
	pair ca = { 0 }, srv = { 0 }, cli = { 0 }, wca = { 0 }, wsrv = { 0 }, exp = { 0 };
	memset(out, 0, sizeof *out);
	int rc = make(&ca, NULL, "newsarch test CA", -day, 30 * day, 'c', 1);
	rc = rc ? rc : make(&srv, &ca, "localhost", -day, 30 * day, 's', 2);
	rc = rc ? rc : make(&cli, &ca, "test-client", -day, 30 * day, 'u', 3);
	rc = rc ? rc : make(&wca, NULL, "some other CA", -day, 30 * day, 'c', 4);
	rc = rc ? rc : make(&wsrv, &wca, "localhost", -day, 30 * day, 's', 5);
	rc = rc ? rc : make(&exp, &ca, "localhost", -3 * day, -day, 's', 6);
	rc = rc ? rc : write_pem(dir, "ca", &ca, out->ca, NULL);
	rc = rc ? rc : write_pem(dir, "server", &srv, out->server_cert, out->server_key);
	rc = rc ? rc : write_pem(dir, "client", &cli, out->client_cert, out->client_key);
	rc = rc ? rc : write_pem(dir, "wrong-ca", &wca, out->wrong_ca, NULL);
	rc = rc ? rc : write_pem(dir, "wrong-server", &wsrv, out->wrong_server_cert,
				 out->wrong_server_key);
	rc = rc ? rc : write_pem(dir, "expired", &exp, out->expired_cert, out->expired_key);
	if (rc) {
		fprintf(stderr, "cannot generate test certificates in %s: %s\n", dir,
			ERR_reason_error_string(ERR_get_error()));
		ERR_clear_error();
	}
	drop(&ca);
	drop(&srv);
	drop(&cli);
	drop(&wca);
	drop(&wsrv);
	drop(&exp);
	return rc ? -1 : 0;
}
