/*
 * lineio.c - bounded line reading (plain or zstd) and plain/zstd output.
 */
#include "lineio.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define IN_CHUNK ((size_t)1 << 17)

int na_lines_open(na_lines *r, const char *path, size_t max_line)
{
	memset(r, 0, sizeof *r);
	r->name = path;
	r->max_line = max_line ? max_line : NA_LINE_MAX_DEFAULT;
	if (!strcmp(path, "-")) {
		r->f = stdin;
		r->name = "<stdin>";
	} else {
		r->f = fopen(path, "rb");
		r->own = true;
		if (!r->f) {
			snprintf(r->err, sizeof r->err, "%s: %s", path, strerror(errno));
			return -1;
		}
	}
	r->in_cap = IN_CHUNK;
	r->in = malloc(r->in_cap);
	r->cap = IN_CHUNK * 2;
	r->buf = malloc(r->cap);
	if (!r->in || !r->buf) {
		snprintf(r->err, sizeof r->err, "%s: out of memory", r->name);
		na_lines_close(r);
		return -1;
	}
	/* sniff the zstd frame magic 28 b5 2f fd */
	r->in_len = fread(r->in, 1, r->in_cap, r->f);
	r->raw_read = r->in_len;
	if (ferror(r->f)) {
		snprintf(r->err, sizeof r->err, "%s: %s", r->name, strerror(errno));
		na_lines_close(r);
		return -1;
	}
	if (r->in_len < r->in_cap)
		r->eof = true;
	if (r->in_len >= 4 && !memcmp(r->in, "\x28\xb5\x2f\xfd", 4)) {
		r->zst = true;
		r->dctx = ZSTD_createDCtx();
		if (!r->dctx) {
			snprintf(r->err, sizeof r->err, "%s: out of memory", r->name);
			na_lines_close(r);
			return -1;
		}
	} else {
		size_t n = strlen(path);
		if (n > 4 && !strcmp(path + n - 4, ".zst")) {
			snprintf(r->err, sizeof r->err, "%s: named .zst but not zstd data", r->name);
			na_lines_close(r);
			return -1;
		}
	}
	return 0;
}

/* Adds decoded bytes after r->end. 1: got some, 0: end of input, <0 error */
static int fill(na_lines *r)
{
	for (;;) {
		if (r->in_pos == r->in_len && !r->eof) {
			r->in_len = fread(r->in, 1, r->in_cap, r->f);
			r->in_pos = 0;
			r->raw_read += r->in_len;
			if (ferror(r->f)) {
				snprintf(r->err, sizeof r->err, "%s: %s", r->name, strerror(errno));
				return NA_LINES_EIO;
			}
			if (r->in_len < r->in_cap)
				r->eof = true;
		}
		if (r->in_pos == r->in_len) {
			if (r->zst && r->frame_open) {
				snprintf(r->err, sizeof r->err, "%s: truncated zstd stream", r->name);
				return NA_LINES_EIO;
			}
			return 0;
		}
		size_t room = r->cap - r->end;
		if (!r->zst) {
			size_t n = r->in_len - r->in_pos;
			if (n > room)
				n = room;
			memcpy(r->buf + r->end, r->in + r->in_pos, n);
			r->in_pos += n;
			r->end += n;
			return 1;
		}
		ZSTD_inBuffer ib = { r->in, r->in_len, r->in_pos };
		ZSTD_outBuffer ob = { r->buf + r->end, room, 0 };
		size_t rc = ZSTD_decompressStream(r->dctx, &ob, &ib);
		if (ZSTD_isError(rc)) {
			snprintf(r->err, sizeof r->err, "%s: zstd: %s", r->name, ZSTD_getErrorName(rc));
			return NA_LINES_EIO;
		}
		r->frame_open = rc != 0;
		r->in_pos = ib.pos;
		r->end += ob.pos;
		if (ob.pos)
			return 1;
	}
}

int na_lines_next(na_lines *r, const char **line, size_t *len)
{
	bool skipping = false;
	for (;;) {
		char *nl = memchr(r->buf + r->scan, '\n', r->end - r->scan);
		if (nl) {
			size_t e = (size_t)(nl - r->buf);
			size_t s = r->start;
			r->start = r->scan = e + 1;
			r->lineno++;
			if (skipping || e - s > r->max_line) {
				snprintf(r->err, sizeof r->err, "line longer than %zu bytes (skipped)",
					 r->max_line);
				return NA_LINES_ETOOLONG;
			}
			if (e > s && r->buf[e - 1] == '\r')
				e--;
			*line = r->buf + s;
			*len = e - s;
			return NA_LINES_LINE;
		}
		r->scan = r->end;
		if (r->end - r->start > r->max_line) {
			/* drop what we have of the over-long line, keep reading */
			skipping = true;
			r->start = r->scan = r->end = 0;
		}
		/* make room: compact, then grow (bounded by max_line + a chunk) */
		if (r->end == r->cap) {
			if (r->start) {
				memmove(r->buf, r->buf + r->start, r->end - r->start);
				r->end -= r->start;
				r->scan -= r->start;
				r->start = 0;
			} else {
				size_t ncap = r->cap * 2;
				if (ncap > r->max_line + 2 * IN_CHUNK)
					ncap = r->max_line + 2 * IN_CHUNK;
				if (ncap <= r->cap) {
					skipping = true;
					r->start = r->scan = r->end = 0;
				} else {
					char *nb = realloc(r->buf, ncap);
					if (!nb) {
						snprintf(r->err, sizeof r->err, "%s: out of memory", r->name);
						return NA_LINES_ENOMEM;
					}
					r->buf = nb;
					r->cap = ncap;
				}
			}
		}
		int rc = fill(r);
		if (rc < 0)
			return rc;
		if (rc == 0) {
			if (r->end > r->start || skipping) {
				/* last line without a newline */
				size_t s = r->start;
				size_t e = r->end;
				r->start = r->scan = r->end;
				r->lineno++;
				if (skipping || e - s > r->max_line) {
					snprintf(r->err, sizeof r->err, "line longer than %zu bytes (skipped)",
						 r->max_line);
					return NA_LINES_ETOOLONG;
				}
				if (e > s && r->buf[e - 1] == '\r')
					e--;
				*line = r->buf + s;
				*len = e - s;
				return NA_LINES_LINE;
			}
			return NA_LINES_EOF;
		}
	}
}

void na_lines_close(na_lines *r)
{
	if (r->own && r->f)
		fclose(r->f);
	r->f = NULL;
	ZSTD_freeDCtx(r->dctx);
	r->dctx = NULL;
	free(r->in);
	free(r->buf);
	r->in = NULL;
	r->buf = NULL;
}

/* ---- output -------------------------------------------------------- */

int na_out_open(na_out *w, const char *path)
{
	memset(w, 0, sizeof *w);
	if (!path || !strcmp(path, "-")) {
		w->f = stdout;
		return 0;
	}
	w->f = fopen(path, "wb");
	if (!w->f) {
		snprintf(w->err, sizeof w->err, "%s: %s", path, strerror(errno));
		return -1;
	}
	w->own = true;
	size_t n = strlen(path);
	if (n > 4 && !strcmp(path + n - 4, ".zst")) {
		w->cctx = ZSTD_createCCtx();
		w->stage_cap = ZSTD_CStreamInSize() * 8;
		w->obuf_cap = ZSTD_CStreamOutSize();
		w->stage = malloc(w->stage_cap);
		w->obuf = malloc(w->obuf_cap);
		if (!w->cctx || !w->stage || !w->obuf) {
			snprintf(w->err, sizeof w->err, "%s: out of memory", path);
			return -1;
		}
		ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, 3);
	}
	return 0;
}

static int zflush(na_out *w, ZSTD_EndDirective mode)
{
	ZSTD_inBuffer ib = { w->stage, w->stage_len, 0 };
	for (;;) {
		ZSTD_outBuffer ob = { w->obuf, w->obuf_cap, 0 };
		size_t rem = ZSTD_compressStream2(w->cctx, &ob, &ib, mode);
		if (ZSTD_isError(rem)) {
			snprintf(w->err, sizeof w->err, "zstd: %s", ZSTD_getErrorName(rem));
			return -1;
		}
		if (ob.pos && fwrite(w->obuf, 1, ob.pos, w->f) != ob.pos) {
			snprintf(w->err, sizeof w->err, "write: %s", strerror(errno));
			return -1;
		}
		if (mode == ZSTD_e_end ? rem == 0 : ib.pos == ib.size)
			break;
	}
	w->stage_len = 0;
	return 0;
}

int na_out_write(na_out *w, const void *p, size_t n)
{
	if (!w->cctx) {
		if (n && fwrite(p, 1, n, w->f) != n) {
			snprintf(w->err, sizeof w->err, "write: %s", strerror(errno));
			return -1;
		}
		return 0;
	}
	const char *s = p;
	while (n) {
		size_t k = w->stage_cap - w->stage_len;
		if (k > n)
			k = n;
		memcpy(w->stage + w->stage_len, s, k);
		w->stage_len += k;
		s += k;
		n -= k;
		if (w->stage_len == w->stage_cap && zflush(w, ZSTD_e_continue))
			return -1;
	}
	return 0;
}

int na_out_close(na_out *w)
{
	int rc = 0;
	if (w->cctx && w->f && zflush(w, ZSTD_e_end))
		rc = -1;
	if (w->f && fflush(w->f) && !rc) {
		snprintf(w->err, sizeof w->err, "write: %s", strerror(errno));
		rc = -1;
	}
	if (w->own && w->f && fclose(w->f) && !rc) {
		snprintf(w->err, sizeof w->err, "close: %s", strerror(errno));
		rc = -1;
	}
	w->f = NULL;
	ZSTD_freeCCtx(w->cctx);
	w->cctx = NULL;
	free(w->stage);
	free(w->obuf);
	w->stage = NULL;
	w->obuf = NULL;
	return rc;
}
