/*
 * error.c - error strings, and the check that the public server error codes
 * follow proto/rpc.h.
 */
#include "internal.h"

_Static_assert(NA_EBADREQ == -100 - NA_CODE_BAD_REQUEST, "BAD_REQUEST");
_Static_assert(NA_EUNKNOWNMETHOD == -100 - NA_CODE_UNKNOWN_METHOD, "UNKNOWN_METHOD");
_Static_assert(NA_ENOTFOUND == -100 - NA_CODE_NOT_FOUND, "NOT_FOUND");
_Static_assert(NA_ETOOLARGE == -100 - NA_CODE_TOO_LARGE, "TOO_LARGE");
_Static_assert(NA_ENOSPACE == -100 - NA_CODE_NO_SPACE, "NO_SPACE");
_Static_assert(NA_EREADONLY == -100 - NA_CODE_READONLY, "READONLY");
_Static_assert(NA_EUNAUTHORIZED == -100 - NA_CODE_UNAUTHORIZED, "UNAUTHORIZED");
_Static_assert(NA_ETIMEOUT == -100 - NA_CODE_TIMEOUT, "TIMEOUT");
_Static_assert(NA_EUNAVAILABLE == -100 - NA_CODE_UNAVAILABLE, "UNAVAILABLE");
_Static_assert(NA_EINTERNAL == -100 - NA_CODE_INTERNAL, "INTERNAL");
_Static_assert(NA_CODE__COUNT == 11, "a server code was added: add its NA_E* constant");

const char *na_strerror(int err)
{
	switch (err) {
	case 0: return "ok";
	case NA_ENOMEM: return "out of memory";
	case NA_EINVAL: return "invalid argument";
	case NA_ECONN: return "connection failed or lost";
	case NA_ETIMEDOUT: return "timed out";
	case NA_EPROTO: return "protocol error in the server's reply";
	case NA_ECLOSED: return "client closed";
	case NA_ENOFIELD: return "no such field";
	case NA_ETLS: return "TLS failed";
	case NA_EBADREQ: return "server: bad request";
	case NA_EUNKNOWNMETHOD: return "server: unknown method";
	case NA_ENOTFOUND: return "server: not found";
	case NA_ETOOLARGE: return "server: limit exceeded";
	case NA_ENOSPACE: return "server: archive full";
	case NA_EREADONLY: return "server: read-only follower";
	case NA_EUNAUTHORIZED: return "server: unauthorized";
	case NA_ETIMEOUT: return "server: timeout";
	case NA_EUNAVAILABLE: return "server: unavailable";
	case NA_EINTERNAL: return "server: internal error";
	default: return "unknown error";
	}
}
