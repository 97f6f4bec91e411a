/*
 * rpc.c - wire names of the protocol's error codes.
 */
#include "rpc.h"

#include <string.h>

static const char *const names[NA_CODE__COUNT] = {
	[NA_CODE_OK] = "OK",
	[NA_CODE_BAD_REQUEST] = "BAD_REQUEST",
	[NA_CODE_UNKNOWN_METHOD] = "UNKNOWN_METHOD",
	[NA_CODE_NOT_FOUND] = "NOT_FOUND",
	[NA_CODE_TOO_LARGE] = "TOO_LARGE",
	[NA_CODE_NO_SPACE] = "NO_SPACE",
	[NA_CODE_READONLY] = "READONLY",
	[NA_CODE_UNAUTHORIZED] = "UNAUTHORIZED",
	[NA_CODE_TIMEOUT] = "TIMEOUT",
	[NA_CODE_UNAVAILABLE] = "UNAVAILABLE",
	[NA_CODE_INTERNAL] = "INTERNAL",
};

const char *na_code_name(int code)
{
	if (code < 0 || code >= NA_CODE__COUNT)
		return "INTERNAL";
	return names[code];
}

int na_code_parse(const char *name, size_t n)
{
	for (int i = 0; i < NA_CODE__COUNT; i++)
		if (strlen(names[i]) == n && memcmp(names[i], name, n) == 0)
			return i;
	return NA_CODE_INTERNAL;
}
