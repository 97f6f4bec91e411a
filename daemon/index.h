/*
 * index.h - the full-text index: its tables, the posting codec, and the
 * indexer thread that keeps it up to date by following the change log.
 *
 * Tables (in the index's own LMDB environment, DIR/index; see index.c for
 * the design):
 *   ixpost   term key + 0x00 + first docid(4) -> posting chunk (newest segment)
 *   ixsealed segment(4) + an ixpost key         -> chunks of sealed segments
 *   ixbig    merged segment(4) + an ixpost key  -> chunks of merged segments
 *   ixdocs   docid >> 4 (4)                    -> 16 x (article key(16), length(2))
 *   ixrange  docid >> 10 (4)                   -> lowest key(16), highest key(16)
 *   meta     ix_seq, ix_next, ix_len, ix_dead, ix_rebuild, ix_langs,
 *            ix_sealed (segments sealed, merged ones included), ix_merged
 *            (segments in ixbig, 16 sealed ones each), ix_segshift (log2 of
 *            the docids per segment), and archive_id and ix_epoch: the
 *            archive's id and ix_epoch the index was built against.
 */
#ifndef NA_INDEX_H
#define NA_INDEX_H

#include <lmdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "analyze.h"
#include "key.h"

struct na_store;

/* ---- term keys ------------------------------------------------------- */

/* Field bytes that start a term key. Text terms then carry the two-letter
 * language code their stem belongs to ("--": not stemmed). */
enum {
	NA_IXF_TEXT = 'w',    /* title, summary and body */
	NA_IXF_TITLE = 'T',
	NA_IXF_AUTHOR = 'a',
	NA_IXF_TAG = 'g',
	NA_IXF_SOURCE = 's',
	NA_IXF_SECTION = 'c',
};
#define NA_IX_TERMKEY_MAX (3 + NA_EXACT_MAX)
#define NA_IX_DOCS_SHIFT 4       /* 16 documents per ixdocs value (13 per page) */
#define NA_IX_RANGE_SHIFT 10     /* 1024 documents per ixrange entry */
#define NA_IX_DOC_BYTES 18       /* key(16) + length(2) */
#define NA_POST_CHUNK_MAX 256    /* postings per chunk */
#define NA_IX_MERGE_SHIFT 4      /* 16 sealed segments merge into one */

/* Builds a term key into out (NA_IX_TERMKEY_MAX bytes): field byte, for the
 * text fields the language code (lang "" -> "--"), then the term. Returns
 * its length. */
size_t na_ix_term_key(uint8_t *out, int field, const char *lang, const char *term, size_t n);

/* ---- posting chunks ---------------------------------------------------
 * varint (count << 1 | some tf > 1), varint (first docid - the chunk's
 * base docid, in its key); when count > 1, one byte w and the count - 1
 * gaps (docid - previous docid - 1) in w bits each, least significant bit
 * first; when some tf > 1, a bitmap of count bits (tf > 1) and, for each set
 * bit in order, varint (tf - 2). Docids strictly increase within a chunk;
 * frequent terms, whose gaps are small, take a few bits per posting. */

/* Encodes n >= 1 postings (docids ascending, all >= base, tf >= 1) into
 * out. Returns the length, or 0 if cap is too small or the input breaks
 * those rules. */
size_t na_post_encode(uint8_t *out, size_t cap, uint32_t base, const uint32_t *docs,
		      const uint16_t *tfs, uint32_t n);
/* Decodes a chunk into docs/tfs (cap entries). 0 and *n, or -1 when the
 * chunk is malformed or holds more than cap postings. */
int na_post_decode(const uint8_t *p, size_t len, uint32_t base, uint32_t *docs, uint16_t *tfs,
		   uint32_t cap, uint32_t *n);
/* The count at the head of a chunk, or -1. */
int64_t na_post_count(const uint8_t *p, size_t len);

/* ---- writer side ----------------------------------------------------- */

/* Bumps the archive's ix_epoch in txn (writer thread, a follower's snapshot
 * replacing the articles): the indexer then rebuilds the index. 0 or an
 * LMDB error. */
int na_index_invalidate(struct na_store *s, MDB_txn *txn);

/* ---- the indexer ------------------------------------------------------ */

typedef enum na_ixstate {
	NA_IX_READY,        /* caught up with the log */
	NA_IX_CATCHING_UP,  /* following the log, behind */
	NA_IX_REBUILDING,   /* scanning every article */
	NA_IX_WAITING,      /* a follower's snapshot is in progress */
} na_ixstate;

typedef struct na_ixstats {
	uint64_t seq;        /* the index covers the log up to here */
	uint64_t head;       /* the log's head as the indexer last saw it */
	uint64_t docs;       /* indexed article versions */
	uint64_t dead;       /* of those, since deleted or replaced */
	uint64_t scanned;    /* articles indexed by the current rebuild */
	uint64_t batches;
	uint64_t sealed;     /* sealed segments, counting a merged one once */
	uint64_t merged;     /* of those, merged segments */
	na_ixstate state;
} na_ixstats;

typedef struct na_indexer na_indexer;

/* Called on the indexer thread after each index commit that moved the
 * position the index covers, with that position. */
typedef void (*na_ix_notify)(void *arg, uint64_t seq);

/* Starts the indexer thread over the store (which must have its index
 * environment). notify runs on the indexer thread after each commit.
 * 0 and *out, or a negative error. */
int na_indexer_start(struct na_store *s, na_ix_notify notify, void *arg, na_indexer **out);
/* Stops and frees (before the store closes). */
void na_indexer_stop(na_indexer *x);
/* The writer committed up to seq (writer thread). */
void na_indexer_kick(na_indexer *x, uint64_t seq);
/* Searches wait for the index to cover seq (the highest min_seq of those
 * parked; 0: none): until it does, new entries are indexed without letting
 * more writes gather first. Each call replaces the previous seq, so a
 * search that ends (answered or timed out) stops hurrying (any thread). */
void na_indexer_hurry(na_indexer *x, uint64_t seq);
/* Asks for an online rebuild. */
void na_indexer_reindex(na_indexer *x);
void na_indexer_stats(na_indexer *x, na_ixstats *st);
/* Position the index covers (any thread). */
uint64_t na_indexer_seq(na_indexer *x);
const char *na_ixstate_name(na_ixstate s);

/* ---- the text fields of an article ----------------------------------- */

#define NA_IXDOC_MAX_NAMES 64
typedef struct na_ixstr { const char *s; uint32_t n; } na_ixstr;
typedef struct na_ixdoc {
	na_ixstr title, summary, body, source, section;
	na_ixstr authors[NA_IXDOC_MAX_NAMES], tags[NA_IXDOC_MAX_NAMES];
	uint32_t nauthors, ntags;
	char lang[3];        /* stemming language code, "" for none */
} na_ixdoc;

/* Finds the searchable fields of an article (msgpack map); pointers point
 * into raw. Fields of the wrong type are ignored. 0 or -1 (not a map). */
int na_ixdoc_parse(const uint8_t *raw, size_t len, na_ixdoc *d);

#endif
