/*
 * verify.c - archive consistency check (see verify.h).
 */
#include "verify.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mp.h"

static void hexkey(const void *k, size_t n, char *out)
{
	static const char hx[] = "0123456789abcdef";
	const uint8_t *p = k;
	if (n > 16)
		n = 16;
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hx[p[i] >> 4];
		out[2 * i + 1] = hx[p[i] & 15];
	}
	out[2 * n] = 0;
}

/* A walk over a table must end at its end: anything else (a torn page:
 * MDB_PAGE_NOTFOUND, MDB_CORRUPTED) is damage, never a short table. */
static long walk_end(FILE *out, const char *table, int rc)
{
	if (rc == MDB_NOTFOUND)
		return 0;
	fprintf(out, "%s: the walk stopped early: %s\n", table, mdb_strerror(rc));
	return 1;
}

long na_verify(na_store *s, FILE *out, uint64_t *articles)
{
	MDB_txn *txn;
	int rc = na_store_rbegin(s, &txn);
	if (rc)
		return -EIO;
	long problems = 0;
	MDB_cursor *cur;
	MDB_val k, v;
	uint8_t *buf = NULL;
	size_t cap = 0;
	char hk[40];
	*articles = 0;

	/* articles -> decodable, valid, indexed under their own guid; entries
	 * (single records and blocks) in order, never overlapping */
	if (mdb_cursor_open(txn, s->articles, &cur)) {
		na_store_rend(s, txn);
		return -EIO;
	}
	na_block *blk = malloc(sizeof *blk);
	if (!blk) {
		mdb_cursor_close(cur);
		na_store_rend(s, txn);
		return -ENOMEM;
	}
	na_key prev_last;
	bool have_prev = false;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		hexkey(k.mv_data, k.mv_size, hk);
		if (k.mv_size != NA_KEY_BYTES) {
			(*articles)++;
			fprintf(out, "article key %s: wrong length %zu\n", hk, k.mv_size);
			problems++;
			continue;
		}
		bool is_block = na_rec_is_block(v.mv_data, v.mv_size);
		uint32_t nmem = 1;
		if (is_block) {
			if (na_block_parse(s->codec, v.mv_data, v.mv_size, blk)) {
				(*articles)++;
				fprintf(out, "block %s: malformed\n", hk);
				problems++;
				continue;
			}
			if (memcmp(blk->m[blk->first_live].key, k.mv_data, NA_KEY_BYTES) != 0) {
				fprintf(out, "block %s: stored under a key other than its first member's\n", hk);
				problems++;
			}
			if (blk->kind == NA_REC_ZSTD_DICT && na_codec_dict_size(s->codec, blk->dict) == 0) {
				(*articles) += blk->live;
				fprintf(out, "block %s: names dictionary %u, which does not exist\n", hk, blk->dict);
				problems++;
				continue;
			}
			if (cap < blk->raw_len || !buf) {
				uint8_t *nb = realloc(buf, blk->raw_len ? blk->raw_len : 1);
				if (!nb) {
					problems = -ENOMEM;
					break;
				}
				buf = nb;
				cap = blk->raw_len ? blk->raw_len : 1;
			}
			if (na_block_decode(s->codec, blk, buf, cap)) {
				(*articles) += blk->live;
				fprintf(out, "block %s: does not decode\n", hk);
				problems++;
				continue;
			}
			nmem = blk->n;
		}
		if (have_prev && memcmp(prev_last.b, k.mv_data, NA_KEY_BYTES) >= 0) {
			fprintf(out, "article key %s: overlaps the block before it\n", hk);
			problems++;
		}
		for (uint32_t mi = 0; mi < nmem; mi++) {
			const uint8_t *art, *akey = k.mv_data;
			size_t n;
			if (is_block) {
				if (blk->m[mi].dead)
					continue;
				akey = blk->m[mi].key;
				art = buf + blk->m[mi].off;
				n = blk->m[mi].len;
				hexkey(akey, NA_KEY_BYTES, hk);
			} else {
				na_rec r;
				if (na_rec_parse(s->codec, v.mv_data, v.mv_size, &r) == 0 &&
				    r.fmt == NA_REC_ZSTD_DICT && na_codec_dict_size(s->codec, r.dict) == 0) {
					(*articles)++;
					fprintf(out, "article key %s: names dictionary %u, which does not exist\n", hk,
						r.dict);
					problems++;
					continue;
				}
				if (na_store_decode(s, v.mv_data, v.mv_size, &buf, &cap, &n)) {
					(*articles)++;
					fprintf(out, "article key %s: record does not decode\n", hk);
					problems++;
					continue;
				}
				art = buf;
			}
			(*articles)++;
			na_mp mr;
			na_mp_init(&mr, art, n);
			na_article_info info;
			char err[256];
			if (na_article_check(&mr, &info, "article", err, sizeof err) || na_mp_left(&mr) != 0) {
				fprintf(out, "article key %s: not a valid article: %s\n", hk, err);
				problems++;
				continue;
			}
			if (na_key_micros((const na_key *)akey) != na_ts_micros(info.published)) {
				fprintf(out, "article key %s (guid %.*s): key time differs from published\n", hk,
					(int)(info.guid_len > 200 ? 200 : info.guid_len), info.guid);
				problems++;
			}
			uint8_t hb[8];
			na_be64_put(hb, na_store_guid_hash(s, info.guid, info.guid_len));
			MDB_val ik = { 8, hb }, iv = { NA_KEY_BYTES, (void *)akey };
			int where = 0; /* bit 0: in guids, bit 1: in guidnew */
			for (int t = 0; t < 2; t++) {
				if (t == 1 && !s->have_guidnew)
					break;
				MDB_cursor *ic;
				mdb_cursor_open(txn, t ? s->guidnew : s->guids, &ic);
				MDB_val ik2 = ik, iv2 = iv;
				if (mdb_cursor_get(ic, &ik2, &iv2, MDB_GET_BOTH) == 0)
					where |= 1 << t;
				mdb_cursor_close(ic);
			}
			if (!where) {
				fprintf(out, "guid %.*s (key %s): missing from the guid index\n",
					(int)(info.guid_len > 200 ? 200 : info.guid_len), info.guid, hk);
				problems++;
			} else if (where == 3) {
				fprintf(out, "guid %.*s (key %s): in both tables of the guid index\n",
					(int)(info.guid_len > 200 ? 200 : info.guid_len), info.guid, hk);
				problems++;
			}
		}
		if (is_block)
			memcpy(prev_last.b, blk->m[blk->last_live].key, NA_KEY_BYTES);
		else
			memcpy(prev_last.b, k.mv_data, NA_KEY_BYTES);
		have_prev = true;
	}
	mdb_cursor_close(cur);
	if (problems >= 0)
		problems += walk_end(out, "articles", rc);
	if (problems < 0) {
		free(blk);
		free(buf);
		na_store_rend(s, txn);
		return problems;
	}
	uint64_t counted = 0;
	MDB_val cv;
	if (na_meta_get(s, txn, "articles", &cv) == 0 && cv.mv_size == 8 &&
	    (counted = na_be64_get(cv.mv_data)) != *articles) {
		fprintf(out, "meta: article count %llu, but %llu articles are stored\n",
			(unsigned long long)counted, (unsigned long long)*articles);
		problems++;
	}

	/* guid index (both tables) -> existing articles */
	for (int t = 0; t < 2; t++) {
		if (t == 1 && !s->have_guidnew)
			break;
		if ((rc = mdb_cursor_open(txn, t ? s->guidnew : s->guids, &cur))) {
			problems += walk_end(out, "guid index", rc);
			continue;
		}
		for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
		     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
			na_loc loc;
			hexkey(v.mv_data, v.mv_size, hk);
			if (v.mv_size != NA_KEY_BYTES ||
			    na_store_locate(s, txn, (const na_key *)v.mv_data, &loc, blk) != 0) {
				fprintf(out, "guid index entry -> key %s: no such article\n", hk);
				problems++;
			}
		}
		problems += walk_end(out, t ? "guid index (new)" : "guid index", rc);
		mdb_cursor_close(cur);
	}
	free(blk);

	/* log: increasing, well formed, not past the recorded seq */
	uint64_t seq = 0, last = 0;
	na_meta_get_u64(s, txn, "seq", &seq);
	if ((rc = mdb_cursor_open(txn, s->log, &cur))) {
		problems += walk_end(out, "log", rc);
		free(buf);
		na_store_rend(s, txn);
		return problems;
	}
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != 8) {
			fprintf(out, "log: key of %zu bytes\n", k.mv_size);
			problems++;
			continue;
		}
		uint64_t n = na_be64_get(k.mv_data);
		const uint8_t *e = v.mv_data;
		bool ok = v.mv_size >= 1 &&
			  ((e[0] == 'P' && (v.mv_size == 17 || v.mv_size == 33)) ||
			   (e[0] == 'D' && v.mv_size == 17) || (e[0] == 'Z' && v.mv_size == 5));
		if (!ok) {
			fprintf(out, "log entry %llu: malformed\n", (unsigned long long)n);
			problems++;
		}
		if (ok && e[0] == 'P' && na_key_seq((const na_key *)(e + 1)) != n) {
			fprintf(out, "log entry %llu: key sequence differs from the entry\n",
				(unsigned long long)n);
			problems++;
		}
		last = n;
	}
	problems += walk_end(out, "log", rc);
	mdb_cursor_close(cur);
	/* the other tables, LMDB's own main table and its free list (a torn
	 * free-list page fails every later commit): readable to the end */
	MDB_dbi main = 0;
	mdb_dbi_open(txn, NULL, 0, &main);
	const struct { MDB_dbi dbi; const char *name; } rest[] = {
		{ s->dicts, "dicts" }, { s->logtime, "logtime" }, { s->meta, "meta" },
		{ main, "the main table" }, { 0, "the free list" },
	};
	for (size_t i = 0; i < sizeof rest / sizeof rest[0]; i++) {
		if ((rc = mdb_cursor_open(txn, rest[i].dbi, &cur))) {
			problems += walk_end(out, rest[i].name, rc);
			continue;
		}
		for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
		     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
			;
		problems += walk_end(out, rest[i].name, rc);
		mdb_cursor_close(cur);
	}
	if (last > seq) {
		fprintf(out, "log: entry %llu is past the recorded sequence %llu\n",
			(unsigned long long)last, (unsigned long long)seq);
		problems++;
	}
	free(buf);
	na_store_rend(s, txn);
	return problems;
}

int na_verify_offline(const na_config *cfg)
{
	na_store st;
	const char *msg;
	na_store_opts o = { .dir = cfg->data, .map_size = cfg->map_size,
			    .max_map_size = cfg->max_map_size, .level = cfg->compression_level,
			    .max_article = cfg->max_article_bytes, .readonly = true };
	int rc = na_store_open(&st, &o, &msg);
	if (rc) {
		fprintf(stderr, "newsarchd --verify: %s: %s\n", cfg->data, msg);
		return -1;
	}
	uint64_t n;
	long problems = na_verify(&st, stdout, &n);
	na_store_close(&st);
	if (problems < 0) {
		fprintf(stderr, "newsarchd --verify: cannot read %s\n", cfg->data);
		return -1;
	}
	printf("%llu articles checked, %ld problem%s\n", (unsigned long long)n, problems,
	       problems == 1 ? "" : "s");
	return problems ? -1 : 0;
}
