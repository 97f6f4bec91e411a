/*
 * verify.h - consistency check of an archive: every record decodes and is a
 * valid article, the guid index and the articles agree both ways, every log
 * entry is well formed, and every dictionary a record names exists.
 */
#ifndef NA_VERIFY_H
#define NA_VERIFY_H

#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "store.h"

/* Checks the store inside one read transaction, printing each problem to
 * out. Returns the number of problems (0: clean) or a negative error. */
long na_verify(na_store *s, FILE *out, uint64_t *articles);

/* newsarchd --verify: opens cfg->data read-only and checks it. */
int na_verify_offline(const na_config *cfg);

#endif
