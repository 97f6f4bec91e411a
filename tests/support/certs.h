/*
 * certs.h - test support: a small PKI generated at test time with the
 * OpenSSL API (no openssl command needed), written as PEM files into a
 * directory. Keys are ECDSA P-256, so making a set takes milliseconds.
 *
 *   ca            the trusted CA
 *   server        signed by ca, SANs IP:127.0.0.1 and DNS:localhost, valid now
 *   client        signed by ca, for client authentication (CN "test-client")
 *   wrong_ca      another CA nobody trusts
 *   wrong_server  signed by wrong_ca, same SANs as server (usable as a
 *                 client certificate too)
 *   expired       signed by ca, same SANs, expired yesterday
 */
#ifndef NA_TEST_CERTS_H
#define NA_TEST_CERTS_H

typedef struct na_test_certs {
	char ca[300];
	char server_cert[300], server_key[300];
	char client_cert[300], client_key[300];
	char wrong_ca[300];
	char wrong_server_cert[300], wrong_server_key[300];
	char expired_cert[300], expired_key[300];
} na_test_certs;

/* Generates the set into dir (which must exist). 0, or -1 with a message
 * on stderr. */
int na_test_certs_make(const char *dir, na_test_certs *out);

#endif
