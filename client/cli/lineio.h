/*
 * lineio.h - the CLI's file I/O: JSON-lines input, plain or zstd (detected
 * by the frame magic), read in bounded lines; output, plain or zstd.
 */
#ifndef NA_CLI_LINEIO_H
#define NA_CLI_LINEIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <zstd.h>

#define NA_LINE_MAX_DEFAULT ((size_t)64 << 20) /* longest input line */

enum {
	NA_LINES_EOF = 0,
	NA_LINES_LINE = 1,
	NA_LINES_ETOOLONG = -2, /* the line was longer than max_line; it was skipped */
	NA_LINES_EIO = -3,      /* read or decompression error: stop */
	NA_LINES_ENOMEM = -4,
};

typedef struct na_lines {
	const char *name;       /* for messages */
	FILE *f;
	bool own;               /* close f at the end */
	bool zst;
	ZSTD_DCtx *dctx;
	uint8_t *in;            /* raw bytes read from f */
	size_t in_len, in_pos, in_cap;
	char *buf;              /* decoded bytes: [start, end) not yet returned */
	size_t start, end, cap, scan;
	size_t max_line;
	bool eof;               /* f is exhausted */
	bool frame_open;        /* zstd: inside an unfinished frame */
	uint64_t lineno;        /* number of the line last returned */
	uint64_t raw_read;      /* bytes read from f (for progress) */
	char err[256];
} na_lines;

/* Opens path ("-" for stdin). Returns 0, or -1 with r->err set. */
int na_lines_open(na_lines *r, const char *path, size_t max_line);
/* Next line without its "\n" (and "\r"): *line is valid until the next
 * call. Returns NA_LINES_LINE, NA_LINES_EOF or a negative code (r->err). */
int na_lines_next(na_lines *r, const char **line, size_t *len);
void na_lines_close(na_lines *r);

typedef struct na_out {
	FILE *f;
	bool own;
	ZSTD_CCtx *cctx;        /* NULL: plain */
	char *stage;            /* zstd: uncompressed bytes waiting */
	size_t stage_len, stage_cap;
	uint8_t *obuf;
	size_t obuf_cap;
	char err[256];
} na_out;

/* Opens path for writing (NULL or "-": stdout); zstd level 3 when the
 * name ends in ".zst". Returns 0 or -1 (w->err). */
int na_out_open(na_out *w, const char *path);
int na_out_write(na_out *w, const void *p, size_t n);
/* Finishes the stream (zstd epilogue), flushes and closes. 0 or -1. */
int na_out_close(na_out *w);

#endif
