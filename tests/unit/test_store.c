/*
 * test_store.c - the archive (daemon/store.c) written through the writer
 * (daemon/writer.c) without a loop or thread: na_writer_apply_now. Covers
 * find, range (paging, bounds, reverse, projection), count, stats, the
 * change log, reopening, na_verify and running out of map space.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <sys/uio.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <msgpack.h>

#include "article.h"
#include "codec.h"
#include "hash.h"
#include "key.h"
#include "log.h"
#include "rpc.h"
#include "server.h"
#include "store.h"
#include "verify.h"
#include "writer.h"

#define US 1000000LL

/* Fault injection: the next fail_writes page writes of LMDB (pwrite, writev)
 * fail with ENOSPC, as on a full filesystem. */
static int fail_writes;

ssize_t pwrite(int fd, const void *b, size_t n, off_t o)
{
	static ssize_t (*real)(int, const void *, size_t, off_t);
	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "pwrite");
	if (fail_writes > 0) {
		fail_writes--;
		errno = ENOSPC;
		return -1;
	}
	return real(fd, b, n, o);
}

/* and the next fail_syncs flushes fail with EIO */
static int fail_syncs;

int fdatasync(int fd)
{
	static int (*real)(int);
	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "fdatasync");
	if (fail_syncs > 0) {
		fail_syncs--;
		errno = EIO;
		return -1;
	}
	return real(fd);
}

/* fsync of the files whose paths are set here (other threads, such as the
 * indexer, fsync files of their own meanwhile): each one seen is counted
 * in its slot, and the one in fail_path fails with EIO. */
static char watch_path[3][700], fail_path[700];
static _Atomic int watch_seen[3], fail_hits;

int fsync(int fd)
{
	static int (*real)(int);
	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "fsync");
	char link[64], path[700];
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, path, sizeof path - 1);
	path[n > 0 ? n : 0] = 0;
	for (int i = 0; i < 3; i++)
		if (watch_path[i][0] && strcmp(path, watch_path[i]) == 0)
			watch_seen[i]++;
	if (fail_path[0] && strcmp(path, fail_path) == 0) {
		fail_hits++;
		errno = EIO;
		return -1;
	}
	return real(fd);
}

ssize_t writev(int fd, const struct iovec *iov, int n)
{
	static ssize_t (*real)(int, const struct iovec *, int);
	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "writev");
	if (fail_writes > 0) {
		fail_writes--;
		errno = ENOSPC;
		return -1;
	}
	return real(fd, iov, n);
}

typedef struct fx {
	char dir[512];
	na_store store;
	na_writer w;
	bool open;
	size_t map_size, max_map_size;
} fx;

static void fx_open(fx *f)
{
	na_store_opts o = { .dir = f->dir, .map_size = f->map_size, .max_map_size = f->max_map_size,
			    .relaxed = true, .level = 3, .max_article = 1 << 20 };
	const char *msg = "";
	int rc = na_store_open(&f->store, &o, &msg);
	if (rc)
		fail_msg("na_store_open: %d %s", rc, msg);
	assert_int_equal(na_writer_start(&f->w, &f->store, NULL, false), 0);
	f->open = true;
}

static void fx_close(fx *f)
{
	if (!f->open)
		return;
	na_writer_stop(&f->w); /* not started: a no-op, but the API is used */
	na_store_close(&f->store);
	f->open = false;
}

static int setup_sized(void **state, size_t map_size, size_t max_map_size)
{
	fx *f = calloc(1, sizeof *f);
	const char *t = getenv("TMPDIR");
	snprintf(f->dir, sizeof f->dir, "%s/na-store-XXXXXX", t && *t ? t : "/tmp");
	if (!mkdtemp(f->dir))
		return -1;
	f->map_size = map_size;
	f->max_map_size = max_map_size;
	fx_open(f);
	*state = f;
	return 0;
}

static int setup(void **state) { return setup_sized(state, 64u << 20, 1u << 30); }
static int setup_small(void **state) { return setup_sized(state, 1u << 20, 4u << 20); }

static int rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	return type == FTW_DP ? rmdir(path) : unlink(path);
}

static int teardown(void **state)
{
	fx *f = *state;
	fx_close(f);
	nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS); /* with index/ and backups */
	free(f);
	return 0;
}

/* ---- articles and writes -------------------------------------------- */

/* Packs an article; extra bytes of random payload make it incompressible. */
static void make_article(msgpack_sbuffer *sb, const char *guid, int64_t sec, uint32_t nsec,
			 const char *title, size_t random_bytes)
{
	msgpack_sbuffer_init(sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, random_bytes ? 5 : 4);
	na_mp_pack_cstr(&pk, "guid");
	na_mp_pack_cstr(&pk, guid);
	na_mp_pack_cstr(&pk, "published");
	na_mp_pack_ts(&pk, (na_ts){ sec, nsec });
	na_mp_pack_cstr(&pk, "title");
	na_mp_pack_cstr(&pk, title);
	na_mp_pack_cstr(&pk, "body");
	char body[400];
	snprintf(body, sizeof body,
		 "%s: the body of the article, long enough to be worth compressing, "
		 "with repeated words, repeated words, repeated words and more words.", title);
	na_mp_pack_cstr(&pk, body);
	if (random_bytes) {
		static uint64_t x = 88172645463325252ULL;
		uint8_t *r = malloc(random_bytes);
		for (size_t i = 0; i < random_bytes; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			r[i] = (uint8_t)x;
		}
		na_mp_pack_cstr(&pk, "noise");
		msgpack_pack_bin(&pk, random_bytes);
		msgpack_pack_bin_body(&pk, r, random_bytes);
		free(r);
	}
}

typedef struct put_res {
	int code;
	na_wstatus status;
	uint64_t seq;
	size_t raw_len, rec_len;
} put_res;

static put_res put_ex(fx *f, const char *guid, int64_t sec, uint32_t nsec, const char *title,
		      size_t random_bytes)
{
	msgpack_sbuffer sb;
	make_article(&sb, guid, sec, nsec, title, random_bytes);
	na_mp r;
	na_article_info info;
	char err[256];
	na_mp_init(&r, sb.data, sb.size);
	if (na_article_check(&r, &info, "test", err, sizeof err))
		fail_msg("bad test article: %s", err);
	uint8_t *rec = malloc(na_codec_bound(sb.size));
	size_t rec_len;
	assert_int_equal(na_codec_encode(f->store.codec, sb.data, sb.size, rec, &rec_len), 0);
	na_witem it = { .rec = rec, .rec_len = rec_len, .raw = info.raw, .raw_len = info.raw_len,
			.guid = info.guid, .guid_len = info.guid_len,
			.micros = na_ts_micros(info.published) };
	na_wjob job = { .op = NA_WOP_PUT, .n = 1, .items = &it };
	put_res res = { 0 };
	res.code = na_writer_apply_now(&f->w, &job);
	assert_int_equal(res.code, job.code);
	res.status = it.status;
	res.seq = it.seq;
	res.raw_len = sb.size;
	res.rec_len = rec_len;
	free(rec);
	msgpack_sbuffer_destroy(&sb);
	return res;
}

static put_res put(fx *f, const char *guid, int64_t sec, const char *title)
{
	return put_ex(f, guid, sec, 0, title, 0);
}

static put_res del(fx *f, const char *guid)
{
	na_witem it = { .guid = guid, .guid_len = (uint32_t)strlen(guid) };
	na_wjob job = { .op = NA_WOP_DELETE, .n = 1, .items = &it };
	put_res res = { 0 };
	res.code = na_writer_apply_now(&f->w, &job);
	res.status = it.status;
	res.seq = it.seq;
	return res;
}

/* Looks a guid up: 0 and the key and decoded title, or MDB_NOTFOUND. */
static int find(fx *f, const char *guid, na_key *key, char *title, size_t tlen)
{
	MDB_txn *txn;
	assert_int_equal(na_store_rbegin(&f->store, &txn), 0);
	const uint8_t *rec;
	size_t reclen;
	na_key k;
	na_buf dec = { 0 };
	int rc = na_store_find(&f->store, txn, guid, (uint32_t)strlen(guid), &k, &rec, &reclen, &dec);
	if (rc == 0) {
		uint8_t *buf = NULL;
		size_t cap = 0, n;
		assert_int_equal(na_store_decode(&f->store, rec, reclen, &buf, &cap, &n), 0);
		/* the by-product of the lookup is the same article */
		assert_int_equal(dec.len, n);
		assert_memory_equal(dec.data, buf, n);
		msgpack_unpacked u;
		msgpack_unpacked_init(&u);
		assert_int_equal(msgpack_unpack_next(&u, (const char *)buf, n, NULL),
				 MSGPACK_UNPACK_SUCCESS);
		msgpack_object_map *m = &u.data.via.map;
		title[0] = 0;
		for (uint32_t i = 0; i < m->size; i++)
			if (m->ptr[i].key.via.str.size == 5 &&
			    memcmp(m->ptr[i].key.via.str.ptr, "title", 5) == 0)
				snprintf(title, tlen, "%.*s", (int)m->ptr[i].val.via.str.size,
					 m->ptr[i].val.via.str.ptr);
		msgpack_unpacked_destroy(&u);
		free(buf);
		if (key)
			*key = k;
	}
	free(dec.data);
	na_store_rend(&f->store, txn);
	return rc;
}

/* ---- range results --------------------------------------------------- */

typedef struct page {
	char guids[1000][32];
	int nfields[1000];
	size_t n;
	bool has_next;
	na_key next;
} page;

static void range(fx *f, const na_range_q *q, page *p)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	assert_int_equal(na_store_range(&f->store, q, &sb), 0);
	msgpack_unpacked u;
	msgpack_unpacked_init(&u);
	size_t off = 0;
	assert_int_equal(msgpack_unpack_next(&u, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
	assert_int_equal(off, sb.size);
	assert_int_equal(u.data.type, MSGPACK_OBJECT_MAP);
	msgpack_object_map *m = &u.data.via.map;
	assert_int_equal(m->size, 2);
	memset(p, 0, sizeof *p);
	for (uint32_t i = 0; i < 2; i++) {
		msgpack_object *k = &m->ptr[i].key, *v = &m->ptr[i].val;
		assert_int_equal(k->type, MSGPACK_OBJECT_STR);
		if (k->via.str.size == 8 && memcmp(k->via.str.ptr, "articles", 8) == 0) {
			assert_int_equal(v->type, MSGPACK_OBJECT_ARRAY);
			p->n = v->via.array.size;
			for (uint32_t a = 0; a < v->via.array.size; a++) {
				msgpack_object *art = &v->via.array.ptr[a];
				assert_int_equal(art->type, MSGPACK_OBJECT_MAP);
				p->nfields[a] = (int)art->via.map.size;
				for (uint32_t j = 0; j < art->via.map.size; j++) {
					msgpack_object_kv *kv = &art->via.map.ptr[j];
					if (kv->key.via.str.size == 4 &&
					    memcmp(kv->key.via.str.ptr, "guid", 4) == 0)
						snprintf(p->guids[a], sizeof p->guids[a], "%.*s",
							 (int)kv->val.via.str.size, kv->val.via.str.ptr);
				}
			}
		} else {
			assert_int_equal(k->via.str.size, 4);
			assert_memory_equal(k->via.str.ptr, "next", 4);
			if (v->type == MSGPACK_OBJECT_NIL) {
				p->has_next = false;
			} else {
				assert_int_equal(v->type, MSGPACK_OBJECT_BIN);
				assert_int_equal(v->via.bin.size, NA_KEY_BYTES);
				memcpy(p->next.b, v->via.bin.ptr, NA_KEY_BYTES);
				p->has_next = true;
			}
		}
	}
	msgpack_unpacked_destroy(&u);
	msgpack_sbuffer_destroy(&sb);
}

/* Pages through a whole range; writes the guids into out (space-joined). */
static size_t range_all(fx *f, na_range_q q, char *out, size_t outlen, size_t *pages)
{
	page *p = malloc(sizeof *p);
	size_t total = 0, np = 0;
	out[0] = 0;
	for (;;) {
		range(f, &q, p);
		np++;
		for (size_t i = 0; i < p->n; i++) {
			size_t l = strlen(out);
			snprintf(out + l, outlen - l, "%s%s", l ? " " : "", p->guids[i]);
		}
		total += p->n;
		assert_true(p->n <= q.limit);
		if (!p->has_next)
			break;
		assert_int_equal(p->n, q.limit);
		q.has_after = true;
		q.after = p->next;
		assert_true(np < 1000);
	}
	free(p);
	if (pages)
		*pages = np;
	return total;
}

static uint64_t count(fx *f, bool hf, int64_t from, bool ht, int64_t to)
{
	uint64_t n = 12345;
	assert_int_equal(na_store_count(&f->store, hf, from, ht, to, &n), 0);
	return n;
}

/* ---- tests ------------------------------------------------------------ */

static void test_put_find_replace_delete(void **state)
{
	fx *f = *state;
	char title[64];
	na_key k1, k2;
	put_res r = put(f, "a", 1000, "first");
	assert_int_equal(r.code, NA_CODE_OK);
	assert_int_equal(r.status, NA_WS_CREATED);
	assert_int_equal(r.seq, 1);
	assert_int_equal(find(f, "a", &k1, title, sizeof title), 0);
	assert_string_equal(title, "first");
	assert_true(na_key_micros(&k1) == 1000 * US);
	assert_int_equal(na_key_seq(&k1), 1);
	assert_int_equal(find(f, "b", NULL, title, sizeof title), MDB_NOTFOUND);

	/* same bytes: unchanged, the earlier seq, nothing written */
	r = put(f, "a", 1000, "first");
	assert_int_equal(r.status, NA_WS_UNCHANGED);
	assert_int_equal(r.seq, 1);
	na_store_stats st;
	assert_int_equal(na_store_stats_get(&f->store, &st), 0);
	assert_int_equal(st.seq, 1);

	/* replace, moving the article earlier in time */
	r = put(f, "a", -500, "second");
	assert_int_equal(r.status, NA_WS_UPDATED);
	assert_int_equal(r.seq, 2);
	assert_int_equal(find(f, "a", &k2, title, sizeof title), 0);
	assert_string_equal(title, "second");
	assert_true(na_key_micros(&k2) == -500 * US);
	assert_int_equal(na_key_seq(&k2), 2);
	assert_int_equal(count(f, false, 0, false, 0), 1);

	/* delete, then delete again */
	r = del(f, "a");
	assert_int_equal(r.code, NA_CODE_OK);
	assert_int_equal(r.status, NA_WS_DELETED);
	assert_int_equal(r.seq, 3);
	assert_int_equal(find(f, "a", NULL, title, sizeof title), MDB_NOTFOUND);
	r = del(f, "a");
	assert_int_equal(r.status, NA_WS_ABSENT);
	assert_int_equal(r.seq, 0);
	assert_int_equal(count(f, false, 0, false, 0), 0);
	/* and it can come back */
	r = put(f, "a", 7, "third");
	assert_int_equal(r.status, NA_WS_CREATED);
	assert_int_equal(r.seq, 4);
}

static void test_stats_bytes(void **state)
{
	fx *f = *state;
	na_store_stats st;
	assert_int_equal(na_store_stats_get(&f->store, &st), 0);
	assert_int_equal(st.articles, 0);
	assert_int_equal(st.raw_bytes, 0);
	assert_int_equal(st.stored_bytes, 0);
	put_res a = put(f, "a", 1, "alpha");
	put_res b = put_ex(f, "b", 2, 0, "beta", 3000);
	put_res c = put(f, "c", 3, "gamma");
	assert_int_equal(na_store_stats_get(&f->store, &st), 0);
	assert_int_equal(st.articles, 3);
	assert_int_equal(st.seq, 3);
	assert_int_equal(st.raw_bytes, a.raw_len + b.raw_len + c.raw_len);
	assert_int_equal(st.stored_bytes, a.rec_len + b.rec_len + c.rec_len);
	assert_true(st.stored_bytes < st.raw_bytes); /* text compresses */
	assert_true(st.map_size >= (64u << 20));
	assert_true(st.map_used > 0 && st.map_used <= st.map_size);
	assert_true(st.page_bytes > 0);
	/* delete: both counters go down by exactly that article */
	put_res d = del(f, "b");
	assert_int_equal(d.status, NA_WS_DELETED);
	na_store_stats st2;
	assert_int_equal(na_store_stats_get(&f->store, &st2), 0);
	assert_int_equal(st2.articles, 2);
	assert_int_equal(st2.raw_bytes, st.raw_bytes - b.raw_len);
	assert_int_equal(st2.stored_bytes, st.stored_bytes - b.rec_len);
	/* replace a with a smaller article: down by the difference */
	put_res a2 = put(f, "a", 1, "A");
	assert_int_equal(a2.status, NA_WS_UPDATED);
	assert_true(a2.raw_len < a.raw_len);
	na_store_stats st3;
	assert_int_equal(na_store_stats_get(&f->store, &st3), 0);
	assert_int_equal(st3.raw_bytes, st2.raw_bytes - a.raw_len + a2.raw_len);
	assert_int_equal(st3.stored_bytes, st2.stored_bytes - a.rec_len + a2.rec_len);
	assert_true(st3.raw_bytes < st2.raw_bytes);
	assert_int_equal(st3.seq, 5);
}

static void test_range_order_and_paging(void **state)
{
	fx *f = *state;
	/* 25 articles at shuffled times, some before 1970, inserted out of
	 * order; three share one time and keep their insertion order */
	static const int64_t t[] = { 50, -3000000000LL, 7, 7, -1, 0, 1700000000, 12, 7, -86400,
				     99, 100, 101, -62135596800LL, 253402300799LL, 5, 6, 4, 3, 2,
				     1, 8, 9, 10, 11 };
	char g[32];
	for (int i = 0; i < 25; i++) {
		snprintf(g, sizeof g, "g%02d", i);
		assert_int_equal(put(f, g, t[i], g).status, NA_WS_CREATED);
	}
	static const char *const sorted =
		"g13 g01 g09 g04 g05 g20 g19 g18 g17 g15 g16 g02 g03 g08 g21 g22 g23 g24 g07 "
		"g00 g10 g11 g12 g06 g14";
	char out[2048], rev[2048];
	size_t pages;
	na_range_q q = { .limit = 10 };
	assert_int_equal(range_all(f, q, out, sizeof out, &pages), 25);
	assert_string_equal(out, sorted);
	assert_int_equal(pages, 3);
	/* limit equal to the size: one page, no next */
	q.limit = 25;
	assert_int_equal(range_all(f, q, out, sizeof out, &pages), 25);
	assert_int_equal(pages, 1);
	q.limit = 1;
	assert_int_equal(range_all(f, q, out, sizeof out, &pages), 25);
	assert_string_equal(out, sorted);
	assert_int_equal(pages, 25);

	/* reverse is the exact mirror, also when paged */
	q.limit = 7;
	q.reverse = true;
	assert_int_equal(range_all(f, q, rev, sizeof rev, &pages), 25);
	assert_int_equal(pages, 4);
	char mirror[2048] = "";
	{
		char tmp[2048];
		snprintf(tmp, sizeof tmp, "%s", sorted);
		char *words[25];
		int n = 0;
		for (char *s = strtok(tmp, " "); s; s = strtok(NULL, " "))
			words[n++] = s;
		for (int i = n - 1; i >= 0; i--) {
			size_t l = strlen(mirror);
			snprintf(mirror + l, sizeof mirror - l, "%s%s", l ? " " : "", words[i]);
		}
	}
	assert_string_equal(rev, mirror);

	/* from (inclusive) / to (exclusive), in microseconds */
	na_range_q b = { .limit = 100, .has_from = true, .from = 7 * US, .has_to = true, .to = 11 * US };
	assert_int_equal(range_all(f, b, out, sizeof out, NULL), 6);
	assert_string_equal(out, "g02 g03 g08 g21 g22 g23");
	b.reverse = true;
	assert_int_equal(range_all(f, b, out, sizeof out, NULL), 6);
	assert_string_equal(out, "g23 g22 g21 g08 g03 g02");
	b.limit = 2; /* paged, both directions */
	assert_int_equal(range_all(f, b, out, sizeof out, &pages), 6);
	assert_string_equal(out, "g23 g22 g21 g08 g03 g02");
	assert_int_equal(pages, 3);
	b.reverse = false;
	assert_int_equal(range_all(f, b, out, sizeof out, &pages), 6);
	assert_string_equal(out, "g02 g03 g08 g21 g22 g23");
	/* one microsecond after a time excludes it; only from; only to */
	na_range_q c = { .limit = 100, .has_from = true, .from = 7 * US + 1 };
	range_all(f, c, out, sizeof out, NULL);
	assert_true(strncmp(out, "g21 g22", 7) == 0);
	na_range_q d = { .limit = 100, .has_to = true, .to = 0 };
	assert_int_equal(range_all(f, d, out, sizeof out, NULL), 4);
	assert_string_equal(out, "g13 g01 g09 g04");
	d.reverse = true;
	assert_int_equal(range_all(f, d, out, sizeof out, NULL), 4);
	assert_string_equal(out, "g04 g09 g01 g13");
	/* an empty window */
	na_range_q e = { .limit = 100, .has_from = true, .from = 13 * US, .has_to = true, .to = 50 * US };
	assert_int_equal(range_all(f, e, out, sizeof out, NULL), 0);

	/* after a cursor that lies before from: starts at from */
	page *p = malloc(sizeof *p);
	na_range_q first = { .limit = 1 };
	range(f, &first, p);
	assert_string_equal(p->guids[0], "g13");
	assert_true(p->has_next);
	na_range_q af = { .limit = 3, .has_after = true, .after = p->next, .has_from = true,
			  .from = 100 * US };
	range(f, &af, p);
	assert_int_equal(p->n, 3);
	assert_string_equal(p->guids[0], "g11");
	/* reverse after a cursor beyond to: starts below to */
	na_key hi;
	na_key_make(&hi, 253402300799LL * US, UINT64_MAX);
	na_range_q ar = { .limit = 2, .reverse = true, .has_after = true, .after = hi, .has_to = true,
			  .to = 8 * US };
	range(f, &ar, p);
	assert_int_equal(p->n, 2);
	assert_string_equal(p->guids[0], "g08");
	assert_string_equal(p->guids[1], "g03");
	/* a cursor that names no stored key still pages correctly */
	na_key mid;
	na_key_make(&mid, 7 * US, 1000000);
	na_range_q am = { .limit = 100, .has_after = true, .after = mid, .has_to = true, .to = 10 * US };
	range(f, &am, p);
	assert_int_equal(p->n, 2);
	assert_string_equal(p->guids[0], "g21");
	assert_string_equal(p->guids[1], "g22");
	free(p);

	/* counts */
	assert_int_equal(count(f, false, 0, false, 0), 25);
	assert_int_equal(count(f, true, 7 * US, true, 11 * US), 6);
	assert_int_equal(count(f, true, 7 * US, false, 0), 14);
	assert_int_equal(count(f, false, 0, true, 0), 4);
	assert_int_equal(count(f, true, 13 * US, true, 50 * US), 0);
	assert_int_equal(count(f, true, -62135596800LL * US, true, 253402300799LL * US + 1), 25);
}

static void test_range_projection(void **state)
{
	fx *f = *state;
	put(f, "x1", 1, "one");
	put(f, "x2", 2, "two");
	na_range_q q = { .limit = 10, .project = true };
	q.fields.n = 2;
	q.fields.name[0].s = "title";
	q.fields.name[0].n = 5;
	q.fields.name[1].s = "guid";
	q.fields.name[1].n = 4;
	page *p = malloc(sizeof *p);
	range(f, &q, p);
	assert_int_equal(p->n, 2);
	assert_string_equal(p->guids[0], "x1");
	assert_int_equal(p->nfields[0], 2);
	assert_int_equal(p->nfields[1], 2);
	/* no projection: all four fields */
	na_range_q all = { .limit = 10 };
	range(f, &all, p);
	assert_int_equal(p->nfields[0], 4);
	free(p);
}

static void test_equal_times_keep_insertion_order(void **state)
{
	fx *f = *state;
	static const char *const order[] = { "zeta", "alpha", "mid", "beta", "omega" };
	for (int i = 0; i < 5; i++)
		put(f, order[i], 1234, order[i]);
	/* an update re-inserts at the end of its microsecond */
	assert_int_equal(put(f, "alpha", 1234, "alpha v2").status, NA_WS_UPDATED);
	char out[256];
	na_range_q q = { .limit = 2 };
	assert_int_equal(range_all(f, q, out, sizeof out, NULL), 5);
	assert_string_equal(out, "zeta mid beta omega alpha");
	q.reverse = true;
	range_all(f, q, out, sizeof out, NULL);
	assert_string_equal(out, "alpha omega beta mid zeta");
	/* sub-microsecond differences fall in the same microsecond */
	put_ex(f, "ns1", 5000, 999, "n", 0);
	put_ex(f, "ns0", 5000, 0, "n", 0);
	na_range_q r = { .limit = 10, .has_from = true, .from = 5000 * US };
	range_all(f, r, out, sizeof out, NULL);
	assert_string_equal(out, "ns1 ns0");
}

typedef struct logent {
	uint64_t seq;
	char kind;
	na_key key, old;
	bool has_old;
} logent;

static size_t read_log(fx *f, logent *out, size_t max)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	size_t n = 0;
	assert_int_equal(na_store_rbegin(&f->store, &txn), 0);
	assert_int_equal(mdb_cursor_open(txn, f->store.log, &cur), 0);
	while (n < max && mdb_cursor_get(cur, &k, &v, n ? MDB_NEXT : MDB_FIRST) == 0) {
		assert_int_equal(k.mv_size, 8);
		logent *e = &out[n++];
		memset(e, 0, sizeof *e);
		e->seq = na_be64_get(k.mv_data);
		const uint8_t *p = v.mv_data;
		e->kind = (char)p[0];
		if (e->kind == 'P' || e->kind == 'D') {
			assert_true(v.mv_size == 17 || (e->kind == 'P' && v.mv_size == 33));
			memcpy(e->key.b, p + 1, 16);
			if (v.mv_size == 33) {
				memcpy(e->old.b, p + 17, 16);
				e->has_old = true;
			}
		}
	}
	mdb_cursor_close(cur);
	na_store_rend(&f->store, txn);
	return n;
}

static void test_change_log(void **state)
{
	fx *f = *state;
	na_key ka1, ka2, kb;
	char title[64];
	put(f, "a", 10, "a1");
	find(f, "a", &ka1, title, sizeof title);
	put(f, "b", 20, "b1");
	find(f, "b", &kb, title, sizeof title);
	put(f, "a", 10, "a1");          /* unchanged: no entry */
	put(f, "a", 30, "a2");          /* moved */
	find(f, "a", &ka2, title, sizeof title);
	del(f, "b");
	del(f, "nothing");              /* absent: no entry */
	logent e[16];
	size_t n = read_log(f, e, 16);
	assert_int_equal(n, 4);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(e[i].seq, i + 1);
	assert_int_equal(e[0].kind, 'P');
	assert_memory_equal(e[0].key.b, ka1.b, 16);
	assert_false(e[0].has_old);
	assert_int_equal(e[1].kind, 'P');
	assert_memory_equal(e[1].key.b, kb.b, 16);
	assert_int_equal(e[2].kind, 'P');
	assert_memory_equal(e[2].key.b, ka2.b, 16);
	assert_true(e[2].has_old);
	assert_memory_equal(e[2].old.b, ka1.b, 16);
	assert_int_equal(na_key_seq(&e[2].key), 3);
	assert_int_equal(e[3].kind, 'D');
	assert_memory_equal(e[3].key.b, kb.b, 16);
}

static void test_reopen(void **state)
{
	fx *f = *state;
	put(f, "a", 1, "one");
	put(f, "b", 2, "two");
	del(f, "a");
	put(f, "c", -3, "three");
	na_store_stats before;
	assert_int_equal(na_store_stats_get(&f->store, &before), 0);
	uint8_t hk[16];
	memcpy(hk, f->store.hash_key, 16);
	fx_close(f);
	fx_open(f);
	/* the archive keeps its identity, articles, counters and sequence */
	assert_memory_equal(f->store.hash_key, hk, 16);
	na_store_stats after;
	assert_int_equal(na_store_stats_get(&f->store, &after), 0);
	assert_int_equal(after.articles, 2);
	assert_int_equal(after.seq, before.seq);
	assert_int_equal(after.raw_bytes, before.raw_bytes);
	assert_int_equal(after.stored_bytes, before.stored_bytes);
	char title[64];
	assert_int_equal(find(f, "b", NULL, title, sizeof title), 0);
	assert_string_equal(title, "two");
	assert_int_equal(find(f, "c", NULL, title, sizeof title), 0);
	assert_int_equal(find(f, "a", NULL, title, sizeof title), MDB_NOTFOUND);
	put_res r = put(f, "d", 0, "four");
	assert_int_equal(r.seq, before.seq + 1);
	/* the writer knows the highest key after a reopen: a later and an
	 * earlier article both land in order */
	put(f, "e", 100, "five");
	put(f, "f", -100, "six");
	char out[256];
	na_range_q q = { .limit = 100 };
	range_all(f, q, out, sizeof out, NULL);
	assert_string_equal(out, "f c d b e");
	/* a second close/open with nothing written in between */
	fx_close(f);
	fx_open(f);
	assert_int_equal(put(f, "g", 1, "seven").seq, before.seq + 4);
}

static void test_verify(void **state)
{
	fx *f = *state;
	char *buf = NULL;
	size_t len = 0;
	for (int i = 0; i < 20; i++) {
		char g[16];
		snprintf(g, sizeof g, "v%d", i);
		put(f, g, i * 1000, g);
	}
	put(f, "v3", 5, "moved");
	del(f, "v4");
	FILE *out = open_memstream(&buf, &len);
	uint64_t n = 0;
	long problems = na_verify(&f->store, out, &n);
	fclose(out);
	if (problems != 0)
		fail_msg("verify on a good store: %ld problems:\n%s", problems, buf);
	assert_int_equal(n, 19);
	free(buf);

	/* corrupt one record directly */
	na_key k;
	char title[64];
	assert_int_equal(find(f, "v7", &k, title, sizeof title), 0);
	MDB_txn *txn;
	assert_int_equal(mdb_txn_begin(f->store.env, NULL, 0, &txn), 0);
	MDB_val mk = { 16, k.b };
	uint8_t junk[] = { 1, 50, 0xde, 0xad, 0xbe, 0xef };
	MDB_val mv = { sizeof junk, junk };
	assert_int_equal(mdb_put(txn, f->store.articles, &mk, &mv, 0), 0);
	/* and drop another one's index entry */
	na_key k9;
	assert_int_equal(mdb_txn_commit(txn), 0);
	assert_int_equal(find(f, "v9", &k9, title, sizeof title), 0);
	assert_int_equal(mdb_txn_begin(f->store.env, NULL, 0, &txn), 0);
	assert_int_equal(na_guid_del(&f->store, txn, na_store_guid_hash(&f->store, "v9", 2), &k9), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);

	buf = NULL;
	out = open_memstream(&buf, &len);
	problems = na_verify(&f->store, out, &n);
	fclose(out);
	assert_int_equal(problems, 2);
	assert_non_null(strstr(buf, "does not decode"));
	assert_non_null(strstr(buf, "missing from the guid index"));
	free(buf);
}

static void test_map_full(void **state)
{
	fx *f = *state;
	char g[32];
	int ok = 0, code = NA_CODE_OK;
	/* ~8 KiB incompressible articles into a 1 MiB map that may grow to 4 */
	for (int i = 0; i < 2000; i++) {
		snprintf(g, sizeof g, "big%04d", i);
		put_res r = put_ex(f, g, i, 0, g, 8000);
		if (r.code != NA_CODE_OK) {
			code = r.code;
			break;
		}
		assert_int_equal(r.status, NA_WS_CREATED);
		ok++;
	}
	assert_int_equal(code, NA_CODE_NO_SPACE);
	assert_true(ok > 200); /* the map grew past its first megabyte */
	assert_true(ok < 600);
	na_store_stats st;
	assert_int_equal(na_store_stats_get(&f->store, &st), 0);
	assert_int_equal(st.map_size, 4u << 20);
	/* puts stopped short of the last pages: those are kept for deletes */
	assert_true(st.map_used + na_store_reserve(4u << 20) / 2 <= st.map_size);
	assert_int_equal(st.articles, (uint64_t)ok);
	assert_int_equal(st.seq, (uint64_t)ok);
	/* reads still work */
	char title[64];
	assert_int_equal(find(f, "big0000", NULL, title, sizeof title), 0);
	assert_string_equal(title, "big0000");
	snprintf(g, sizeof g, "big%04d", ok - 1);
	assert_int_equal(find(f, g, NULL, title, sizeof title), 0);
	snprintf(g, sizeof g, "big%04d", ok);
	assert_int_equal(find(f, g, NULL, title, sizeof title), MDB_NOTFOUND);
	assert_int_equal(count(f, false, 0, false, 0), (uint64_t)ok);
	/* still full for another big one */
	assert_int_equal(put_ex(f, "another", 1, 0, "x", 8000).code, NA_CODE_NO_SPACE);
	/* deleting frees room (pages are reused two transactions later) */
	for (int i = 0; i < 4; i++) {
		snprintf(g, sizeof g, "big%04d", i);
		assert_int_equal(del(f, g).status, NA_WS_DELETED);
	}
	put_res r = put(f, "small", 5, "small");
	assert_int_equal(r.code, NA_CODE_OK);
	assert_int_equal(r.status, NA_WS_CREATED);
	assert_int_equal(find(f, "small", NULL, title, sizeof title), 0);
	uint64_t problems_n;
	FILE *devnull = fopen("/dev/null", "w");
	assert_int_equal(na_verify(&f->store, devnull, &problems_n), 0);
	fclose(devnull);
}

/* Puts articles of falling sizes, then title-only ones between the others,
 * until not even those fit. */
static void fill_to_last_page(fx *f, int *next, int *live)
{
	static const size_t sizes[] = { 8000, 3000, 1000, 300, 50, 0 };
	char g[32];
	for (size_t k = 0; k <= sizeof sizes / sizeof sizes[0]; k++) {
		for (;;) {
			snprintf(g, sizeof g, "fill%05d", *next);
			bool tiny = k == sizeof sizes / sizeof sizes[0];
			put_res r = tiny ? put_ex(f, g, (*next * 7919) % (*next + 1), 1, "t", 0)
					 : put_ex(f, g, *next, 0, g, sizes[k]);
			if (r.code == NA_CODE_NO_SPACE)
				break;
			assert_int_equal(r.code, NA_CODE_OK);
			(*next)++;
			(*live)++;
		}
	}
}

/* A map filled to its last page can still be thinned: LMDB reuses the
 * pages a commit frees only from the commit after next, so a delete right
 * after the commit that took the last reusable page needs the reserve
 * above the soft limit. Fills the map to the last page again after every
 * delete, 300 times, so the deletes meet every state a full map can be
 * in; then deletes many, and puts work again. */
static void test_delete_in_full_map(void **state)
{
	fx *f = *state;
	char g[32];
	int next = 0, live = 0;
	fill_to_last_page(f, &next, &live);
	for (int i = 0; i < 300 && i < next; i++) {
		snprintf(g, sizeof g, "fill%05d", i * 7 % next);
		put_res r = del(f, g);
		assert_int_equal(r.code, NA_CODE_OK);
		if (r.status == NA_WS_DELETED)
			live--;
		fill_to_last_page(f, &next, &live);
	}
	na_store_stats st;
	assert_int_equal(na_store_stats_get(&f->store, &st), 0);
	assert_int_equal(st.articles, (uint64_t)live);
	for (int i = 0; i < next; i += 2) {
		snprintf(g, sizeof g, "fill%05d", i);
		put_res r = del(f, g);
		assert_int_equal(r.code, NA_CODE_OK);
		if (r.status == NA_WS_DELETED)
			live--;
	}
	assert_int_equal(put_ex(f, "again", 1, 0, "again", 8000).code, NA_CODE_OK);
	live++;
	assert_int_equal(count(f, false, 0, false, 0), (uint64_t)live);
	uint64_t problems_n;
	FILE *devnull = fopen("/dev/null", "w");
	assert_int_equal(na_verify(&f->store, devnull, &problems_n), 0);
	fclose(devnull);
}

/* ---- the request path through a sink connection (fuzz regressions) --- */

static msgpack_sbuffer replies;

static void sink(na_conn *c, const void *data, size_t len)
{
	(void)c;
	msgpack_sbuffer_write(&replies, data, len);
}

/* A server of its own on f's archive (closed first: the server opens it)
 * with one connection whose replies go to `replies`. */
typedef struct sink_srv {
	uv_loop_t loop;
	na_server *srv;
	na_conn *c;
} sink_srv;

static void sink_open(fx *f, sink_srv *ss)
{
	fx_close(f);
	na_log_set_level(NA_LOG_ERROR);
	na_config cfg;
	na_config_defaults(&cfg);
	snprintf(cfg.data, sizeof cfg.data, "%s", f->dir);
	cfg.relaxed = true;
	cfg.map_size = 16u << 20;
	assert_int_equal(uv_loop_init(&ss->loop), 0);
	ss->srv = calloc(1, sizeof *ss->srv);
	assert_non_null(ss->srv);
	assert_int_equal(na_server_init(ss->srv, &ss->loop, &cfg), 0);
	ss->c = na_conn_new(ss->srv);
	ss->c->sink = sink;
	msgpack_sbuffer_init(&replies);
}

/* Hangs up (a byte that is not MessagePack) unless the test did (ss->c
 * NULL), and stops the server. */
static void sink_close(sink_srv *ss)
{
	if (ss->c) {
		ss->c->refs++;
		na_conn_feed(ss->c, (const uint8_t *)"\xc1", 1);
		na_conn_unref(ss->c);
	}
	na_server_shutdown(ss->srv);
	uv_run(&ss->loop, UV_RUN_DEFAULT);
	na_server_free(ss->srv);
	assert_int_equal(uv_loop_close(&ss->loop), 0);
	free(ss->srv);
	msgpack_sbuffer_destroy(&replies);
}

static void test_conn_sink_requests(void **state)
{
	fx *f = *state;
	sink_srv ss;
	sink_open(f, &ss);
	uv_loop_t *loop = &ss.loop;
	na_server *srv = ss.srv;
	na_conn *c = ss.c;
	/* regression (fuzz_dispatch): an empty feed on a fresh connection did
	 * pointer arithmetic and memcpy on its NULL input buffer (UBSan) */
	na_conn_feed(c, (const uint8_t *)"", 0);
	assert_int_equal(replies.size, 0);
	/* a ping split in two, a put, then a get of it */
	msgpack_sbuffer req;
	msgpack_sbuffer_init(&req);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &req, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 4);
	msgpack_pack_uint8(&pk, 0);
	msgpack_pack_uint8(&pk, 1);
	na_mp_pack_cstr(&pk, "ping");
	msgpack_pack_array(&pk, 0);
	na_conn_feed(c, (const uint8_t *)req.data, 3);
	assert_int_equal(replies.size, 0);
	na_conn_feed(c, (const uint8_t *)req.data + 3, req.size - 3);
	static const uint8_t pong[] = { 0x94, 0x01, 0x01, 0xc0, 0xa4, 'p', 'o', 'n', 'g' };
	assert_int_equal(replies.size, sizeof pong);
	assert_memory_equal(replies.data, pong, sizeof pong);
	msgpack_sbuffer_clear(&replies);
	msgpack_sbuffer_clear(&req);
	msgpack_sbuffer art;
	make_article(&art, "urn:sink", 1700000000, 0, "via sink", 0);
	msgpack_pack_array(&pk, 4);
	msgpack_pack_uint8(&pk, 0);
	msgpack_pack_uint8(&pk, 2);
	na_mp_pack_cstr(&pk, "put");
	msgpack_pack_array(&pk, 1);
	na_mp_pack_raw(&pk, art.data, art.size);
	msgpack_pack_array(&pk, 4);
	msgpack_pack_uint8(&pk, 0);
	msgpack_pack_uint8(&pk, 3);
	na_mp_pack_cstr(&pk, "get");
	msgpack_pack_array(&pk, 1);
	na_mp_pack_cstr(&pk, "urn:sink");
	na_conn_feed(c, (const uint8_t *)req.data, req.size);
	while (srv->inflight > 0)
		uv_run(loop, UV_RUN_ONCE);
	/* the get ran before the put was durable: NOT_FOUND, then the put */
	msgpack_unpacked u;
	msgpack_unpacked_init(&u);
	size_t off = 0;
	int seen = 0;
	while (msgpack_unpack_next(&u, replies.data, replies.size, &off) == MSGPACK_UNPACK_SUCCESS) {
		msgpack_object *o = u.data.via.array.ptr;
		assert_int_equal(u.data.via.array.size, 4);
		if (o[1].via.u64 == 2) {
			assert_int_equal(o[2].type, MSGPACK_OBJECT_NIL);
			assert_int_equal(o[3].type, MSGPACK_OBJECT_MAP);
		} else {
			assert_int_equal(o[1].via.u64, 3);
			assert_int_equal(o[2].type, MSGPACK_OBJECT_MAP);
		}
		seen++;
	}
	assert_int_equal(seen, 2);
	assert_int_equal(off, replies.size);
	/* regression (fuzz_dispatch): "fields": [""] in a range made the
	 * copy of the names a NULL buffer (UBSan: offset on NULL, memcpy) */
	msgpack_sbuffer_clear(&replies);
	msgpack_sbuffer_clear(&req);
	msgpack_pack_array(&pk, 4);
	msgpack_pack_uint8(&pk, 0);
	msgpack_pack_uint8(&pk, 4);
	na_mp_pack_cstr(&pk, "range");
	msgpack_pack_array(&pk, 1);
	msgpack_pack_map(&pk, 1);
	na_mp_pack_cstr(&pk, "fields");
	msgpack_pack_array(&pk, 2);
	na_mp_pack_cstr(&pk, "");
	na_mp_pack_cstr(&pk, "title");
	na_conn_feed(c, (const uint8_t *)req.data, req.size);
	while (srv->inflight > 0)
		uv_run(loop, UV_RUN_ONCE);
	off = 0;
	assert_int_equal(msgpack_unpack_next(&u, replies.data, replies.size, &off),
			 MSGPACK_UNPACK_SUCCESS);
	{
		msgpack_object *o = u.data.via.array.ptr;
		assert_int_equal(o[1].via.u64, 4);
		assert_int_equal(o[2].type, MSGPACK_OBJECT_NIL);
		msgpack_object *arts = &o[3].via.map.ptr[0].val;
		assert_int_equal(arts->via.array.size, 1);
		/* only the title is kept */
		assert_int_equal(arts->via.array.ptr[0].via.map.size, 1);
	}
	msgpack_unpacked_destroy(&u);
	/* bytes that are not MessagePack close the connection */
	c->refs++;
	na_conn_feed(c, (const uint8_t *)"\xc1", 1);
	assert_true(c->closing);
	na_conn_unref(c);
	assert_int_equal(srv->nconns, 0);
	ss.c = NULL;
	sink_close(&ss);
	msgpack_sbuffer_destroy(&req);
	msgpack_sbuffer_destroy(&art);
}

/* ---- blocks ------------------------------------------------------------ */

/* Packs runs of `per` adjacent single records into blocks through the
 * writer, as the compactor does. Returns how many blocks went in. With
 * stale_hook, runs it between building and applying (racing writes). */
static uint32_t compact_all(fx *f, uint32_t per, void (*stale_hook)(fx *f))
{
	na_store *st = &f->store;
	MDB_txn *txn;
	MDB_cursor *cur;
	assert_int_equal(na_store_rbegin(st, &txn), 0);
	assert_int_equal(mdb_cursor_open(txn, st->articles, &cur), 0);
	enum { MAXB = 256 };
	na_cblock *cb = calloc(MAXB, sizeof *cb);
	uint32_t ncb = 0;
	na_bmember *m = calloc(NA_BLOCK_MAX_MEMBERS, sizeof *m);
	uint8_t *raw = malloc(1 << 20);
	uint8_t *keys = NULL;
	uint64_t *hash = NULL;
	size_t raw_len = 0;
	uint32_t nm = 0;
	MDB_val k, v;
	int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	for (;; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		bool single = rc == 0 && !na_rec_is_block(v.mv_data, v.mv_size);
		if ((!single || nm == per) && nm >= 2) {
			uint8_t *rec = malloc(na_block_bound(nm, raw_len));
			size_t len;
			assert_int_equal(na_block_encode(st->codec, m, nm, raw, raw_len, rec, &len), 0);
			cb[ncb++] = (na_cblock){ .rec = rec, .rec_len = len, .src_keys = keys,
						 .src_hash = hash, .nsrc = nm };
			keys = NULL;
			hash = NULL;
			nm = 0;
			raw_len = 0;
		} else if (!single || nm == per) {
			nm = 0;
			raw_len = 0;
		}
		if (rc)
			break;
		if (!single)
			continue;
		if (!keys) {
			keys = malloc((size_t)per * NA_KEY_BYTES);
			hash = malloc(sizeof *hash * per);
		}
		size_t n;
		assert_int_equal(na_codec_decode(st->codec, v.mv_data, v.mv_size, raw + raw_len,
						 (1 << 20) - raw_len, &n), 0);
		memcpy(m[nm].key, k.mv_data, NA_KEY_BYTES);
		m[nm].len = (uint32_t)n;
		m[nm].dead = false;
		memcpy(keys + (size_t)nm * NA_KEY_BYTES, k.mv_data, NA_KEY_BYTES);
		hash[nm] = na_siphash(st->hash_key, v.mv_data, v.mv_size);
		raw_len += n;
		nm++;
		assert_true(ncb < MAXB);
	}
	mdb_cursor_close(cur);
	na_store_rend(st, txn);
	if (stale_hook)
		stale_hook(f);
	na_wjob job = { .op = NA_WOP_COMPACT, .cblocks = cb, .ncblocks = ncb };
	assert_int_equal(na_writer_apply_now(&f->w, &job), 0);
	for (uint32_t i = 0; i < ncb; i++) {
		free((void *)cb[i].rec);
		free((void *)cb[i].src_keys);
		free((void *)cb[i].src_hash);
	}
	free(keys);
	free(hash);
	free(cb);
	free(m);
	free(raw);
	return job.compacted;
}

static uint64_t records(fx *f)
{
	na_store_stats st;
	assert_int_equal(na_store_stats_get(&f->store, &st), 0);
	return st.records;
}

/* Looks a guid up through na_store_find and na_store_read_key: the title. */
static int find2(fx *f, const char *guid, na_key *key, char *title, size_t tlen)
{
	MDB_txn *txn;
	assert_int_equal(na_store_rbegin(&f->store, &txn), 0);
	const uint8_t *rec;
	size_t reclen;
	na_key k;
	na_buf dec = { 0 }, byk = { 0 };
	int rc = na_store_find(&f->store, txn, guid, (uint32_t)strlen(guid), &k, &rec, &reclen, &dec);
	if (rc == 0) {
		assert_int_equal(na_store_read_key(&f->store, txn, &k, &byk), 0);
		assert_int_equal(byk.len, dec.len);
		assert_memory_equal(byk.data, dec.data, dec.len);
		msgpack_unpacked u;
		msgpack_unpacked_init(&u);
		assert_int_equal(msgpack_unpack_next(&u, (const char *)dec.data, dec.len, NULL),
				 MSGPACK_UNPACK_SUCCESS);
		msgpack_object_map *m = &u.data.via.map;
		title[0] = 0;
		for (uint32_t i = 0; i < m->size; i++)
			if (m->ptr[i].key.via.str.size == 5 &&
			    memcmp(m->ptr[i].key.via.str.ptr, "title", 5) == 0)
				snprintf(title, tlen, "%.*s", (int)m->ptr[i].val.via.str.size,
					 m->ptr[i].val.via.str.ptr);
		msgpack_unpacked_destroy(&u);
		if (key)
			*key = k;
	}
	free(dec.data);
	free(byk.data);
	na_store_rend(&f->store, txn);
	return rc;
}

static long verify_problems(fx *f)
{
	char *text = NULL;
	size_t tlen = 0;
	FILE *out = open_memstream(&text, &tlen);
	uint64_t n;
	long p = na_verify(&f->store, out, &n);
	fclose(out);
	if (p)
		print_message("verify: %s\n", text);
	free(text);
	return p;
}

/* The guids of a whole range, paged by `limit`, in both directions: the
 * reverse walk must be the forward one backwards. */
static size_t range_both(fx *f, bool hf, int64_t from, bool ht, int64_t to, uint32_t limit,
			 char *fwd, size_t cap)
{
	na_range_q q = { .has_from = hf, .from = from, .has_to = ht, .to = to, .limit = limit };
	size_t n = range_all(f, q, fwd, cap, NULL);
	char *rev = malloc(cap);
	q.reverse = true;
	size_t rn = range_all(f, q, rev, cap, NULL);
	assert_int_equal(rn, n);
	/* reverse the words of rev and compare */
	char *back = malloc(cap);
	back[0] = 0;
	char *save, *w, *words[1000];
	size_t nw = 0;
	for (w = strtok_r(rev, " ", &save); w; w = strtok_r(NULL, " ", &save))
		words[nw++] = w;
	for (size_t i = nw; i-- > 0;) {
		size_t l = strlen(back);
		snprintf(back + l, cap - l, "%s%s", l ? " " : "", words[i]);
	}
	assert_string_equal(back, fwd);
	free(back);
	free(rev);
	return n;
}

static void put_series(fx *f, int n)
{
	for (int i = 0; i < n; i++) {
		char g[32], t[32];
		snprintf(g, sizeof g, "g%03d", i);
		snprintf(t, sizeof t, "title %d", i);
		/* pairs of equal times; sequence numbers keep them apart */
		assert_int_equal(put(f, g, 1000 + i / 2, t).status, NA_WS_CREATED);
	}
}

static void expect_series(fx *f, int n, const char *skip)
{
	char *want = malloc(16384), *got = malloc(16384);
	want[0] = 0;
	for (int i = 0; i < n; i++) {
		char g[32];
		snprintf(g, sizeof g, "g%03d", i);
		if (skip && strstr(skip, g))
			continue;
		size_t l = strlen(want);
		snprintf(want + l, 16384 - l, "%s%s", l ? " " : "", g);
	}
	for (uint32_t limit = 1; limit <= 13; limit += 4) {
		range_both(f, false, 0, false, 0, limit, got, 16384);
		assert_string_equal(got, want);
	}
	free(want);
	free(got);
}

static void test_blocks_read(void **state)
{
	fx *f = *state;
	put_series(f, 100);
	uint64_t before = records(f);
	assert_int_equal(before, 100);
	assert_int_equal(compact_all(f, 7, NULL), 15); /* 14 x 7, then the last 2 */
	assert_int_equal(records(f), 15);
	assert_int_equal(count(f, false, 0, false, 0), 100);
	/* every article found by guid and by key, inside blocks */
	for (int i = 0; i < 100; i++) {
		char g[32], t[64], want[32];
		snprintf(g, sizeof g, "g%03d", i);
		snprintf(want, sizeof want, "title %d", i);
		assert_int_equal(find2(f, g, NULL, t, sizeof t), 0);
		assert_string_equal(t, want);
	}
	char t[64];
	assert_int_equal(find2(f, "nope", NULL, t, sizeof t), MDB_NOTFOUND);
	expect_series(f, 100, NULL);
	/* bounds that cut blocks: [1010, 1020) holds g020..g039 */
	char *got = malloc(16384);
	assert_int_equal(range_both(f, true, 1010 * US, true, 1020 * US, 3, got, 16384), 20);
	assert_true(strncmp(got, "g020 g021", 9) == 0);
	assert_true(strstr(got, "g039") && !strstr(got, "g040") && !strstr(got, "g019"));
	assert_int_equal(count(f, true, 1010 * US, true, 1020 * US), 20);
	assert_int_equal(count(f, true, 1049 * US, false, 0), 2);
	assert_int_equal(count(f, false, 0, true, 1000 * US + 1), 2);
	free(got);
	/* projection from a block */
	na_range_q q = { .has_from = true, .from = 1003 * US, .limit = 2, .project = true };
	q.fields.n = 1;
	q.fields.name[0].s = "title";
	q.fields.name[0].n = 5;
	page *p = malloc(sizeof *p);
	range(f, &q, p);
	assert_int_equal(p->n, 2);
	assert_int_equal(p->nfields[0], 1);
	free(p);
	assert_int_equal(verify_problems(f), 0);
	/* reopening keeps blocks and the count */
	fx_close(f);
	fx_open(f);
	assert_int_equal(count(f, false, 0, false, 0), 100);
	expect_series(f, 100, NULL);
	assert_int_equal(verify_problems(f), 0);
}

static void test_blocks_write(void **state)
{
	fx *f = *state;
	put_series(f, 60);
	assert_int_equal(compact_all(f, 10, NULL), 6);
	assert_int_equal(records(f), 6);
	char t[64];
	na_key k;
	/* unchanged */
	assert_int_equal(put(f, "g015", 1007, "title 15").status, NA_WS_UNCHANGED);
	/* replace a middle member (same time: its new key is past the block) */
	assert_int_equal(put(f, "g015", 1007, "title 15 v2").status, NA_WS_UPDATED);
	assert_int_equal(find2(f, "g015", &k, t, sizeof t), 0);
	assert_string_equal(t, "title 15 v2");
	/* delete the first, a middle and the last member of blocks */
	assert_int_equal(del(f, "g020").status, NA_WS_DELETED);
	assert_int_equal(del(f, "g025").status, NA_WS_DELETED);
	assert_int_equal(del(f, "g039").status, NA_WS_DELETED);
	assert_int_equal(find2(f, "g020", NULL, t, sizeof t), MDB_NOTFOUND);
	assert_int_equal(find2(f, "g021", NULL, t, sizeof t), 0);
	/* a whole block deleted member by member */
	for (int i = 40; i < 50; i++) {
		char g[32];
		snprintf(g, sizeof g, "g%03d", i);
		assert_int_equal(del(f, g).status, NA_WS_DELETED);
	}
	/* a new article whose time falls inside a block splits it */
	assert_int_equal(put(f, "mid", 1003, "in the middle").status, NA_WS_CREATED);
	assert_int_equal(find2(f, "mid", NULL, t, sizeof t), 0);
	assert_int_equal(find2(f, "g005", NULL, t, sizeof t), 0);
	assert_string_equal(t, "title 5");
	assert_int_equal(count(f, false, 0, false, 0), 60 - 13 + 1);
	assert_int_equal(verify_problems(f), 0);
	/* moving an article out of a block into another time */
	assert_int_equal(put(f, "g001", 1029, "moved").status, NA_WS_UPDATED);
	char *got = malloc(16384);
	range_both(f, false, 0, false, 0, 4, got, 16384);
	assert_non_null(strstr(got, "g000 g002 g003 g004 g005 g006 g007 mid g008"));
	assert_non_null(strstr(got, "g058 g059 g001")); /* 1029 is the last time */
	assert_null(strstr(got, "g020"));
	assert_null(strstr(got, "g045"));
	/* compacting again repacks blocks with dead members and the splits */
	compact_all(f, 10, NULL);
	range_both(f, false, 0, false, 0, 4, got, 16384);
	assert_non_null(strstr(got, "g000 g002 g003 g004 g005 g006 g007 mid g008"));
	assert_int_equal(count(f, false, 0, false, 0), 48);
	assert_int_equal(verify_problems(f), 0);
	fx_close(f);
	fx_open(f);
	range_both(f, false, 0, false, 0, 5, got, 16384);
	assert_non_null(strstr(got, "g058 g059 g001"));
	assert_int_equal(verify_problems(f), 0);
	free(got);
}

static void delete_some(fx *f)
{
	/* between the compactor's read and its swap */
	assert_int_equal(del(f, "g003").status, NA_WS_DELETED);
	assert_int_equal(put(f, "new", 1001, "between").status, NA_WS_CREATED);
}

static void test_blocks_compaction_races(void **state)
{
	fx *f = *state;
	put_series(f, 20);
	/* the blocks built over g000..g009 (a source deleted, and a key added
	 * inside the run) are stale and dropped; g010..g019 goes in */
	assert_int_equal(compact_all(f, 10, delete_some), 1);
	assert_int_equal(count(f, false, 0, false, 0), 20);
	char t[64];
	assert_int_equal(find2(f, "g003", NULL, t, sizeof t), MDB_NOTFOUND);
	assert_int_equal(find2(f, "new", NULL, t, sizeof t), 0);
	assert_int_equal(verify_problems(f), 0);
	assert_int_equal(records(f), 11); /* g010..g019 in one block */
}

/* A second archive fed the first one's entries as snapshot rows (blocks
 * whole), some twice, then log entries touching keys inside blocks. */
static void test_blocks_replicated(void **state)
{
	fx *f = *state;
	put_series(f, 50);
	assert_true(compact_all(f, 8, NULL) > 0);
	void *gs;
	assert_int_equal(setup(&gs), 0);
	fx *g = gs;
	MDB_txn *txn;
	MDB_cursor *cur;
	assert_int_equal(na_store_rbegin(&f->store, &txn), 0);
	assert_int_equal(mdb_cursor_open(txn, f->store.articles, &cur), 0);
	na_srow rows[64];
	uint32_t n = 0;
	MDB_val k, v;
	for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		memcpy(rows[n].key.b, k.mv_data, NA_KEY_BYTES);
		rows[n].rec = v.mv_data;
		rows[n].rec_len = v.mv_size;
		n++;
	}
	/* rows 2.. first, then everything (overlaps: member by member) */
	na_wjob j1 = { .op = NA_WOP_SNAP_ROWS, .rows = rows + 2, .nrows = n - 2 };
	assert_int_equal(na_writer_apply_now(&g->w, &j1), 0);
	na_wjob j2 = { .op = NA_WOP_SNAP_ROWS, .rows = rows, .nrows = n };
	assert_int_equal(na_writer_apply_now(&g->w, &j2), 0);
	mdb_cursor_close(cur);
	na_store_rend(&f->store, txn);
	assert_int_equal(count(g, false, 0, false, 0), 50);
	char *a = malloc(16384), *b = malloc(16384);
	range_both(f, false, 0, false, 0, 7, a, 16384);
	range_both(g, false, 0, false, 0, 7, b, 16384);
	assert_string_equal(a, b);
	assert_int_equal(verify_problems(g), 0);
	/* log entries: delete a key inside a block; replace one inside a block
	 * by a raw record at a new key */
	na_key k10, k20;
	char tt[64];
	assert_int_equal(find2(g, "g010", &k10, tt, sizeof tt), 0);
	assert_int_equal(find2(g, "g020", &k20, tt, sizeof tt), 0);
	msgpack_sbuffer sb;
	make_article(&sb, "g020", 1040, 0, "replaced", 0);
	uint8_t *rec = malloc(sb.size + 8);
	size_t rl;
	assert_int_equal(na_codec_encode(g->store.codec, sb.data, sb.size, rec, &rl), 0);
	na_rentry e[2] = {
		{ .seq = 51, .op = 'D', .key = k10 },
		{ .seq = 52, .op = 'P', .has_old = true, .old = k20, .rec = rec, .rec_len = rl },
	};
	na_key_make(&e[1].key, 1040 * US, 52);
	na_wjob jend = { .op = NA_WOP_SNAP_END, .seq = 50 };
	assert_int_equal(na_writer_apply_now(&g->w, &jend), 0);
	na_wjob j3 = { .op = NA_WOP_APPLY, .entries = e, .nentries = 2 };
	assert_int_equal(na_writer_apply_now(&g->w, &j3), 0);
	assert_int_equal(count(g, false, 0, false, 0), 49);
	assert_int_equal(find2(g, "g010", NULL, tt, sizeof tt), MDB_NOTFOUND);
	assert_int_equal(find2(g, "g020", NULL, tt, sizeof tt), 0);
	assert_string_equal(tt, "replaced");
	assert_int_equal(verify_problems(g), 0);
	msgpack_sbuffer_destroy(&sb);
	free(rec);
	free(a);
	free(b);
	teardown(&gs);
}

/* Big pages planned and decoded straight into the reply (store.c), mixing
 * single records and blocks, in both directions: every article in its
 * place. */
static void test_range_big_pages(void **state)
{
	fx *f = *state;
	char g[32], t[32];
	for (int i = 0; i < 300; i++) {
		snprintf(g, sizeof g, "g%03d", i);
		snprintf(t, sizeof t, "title %d", i);
		assert_int_equal(put_ex(f, g, 1000 + i, 0, t, 300 + (size_t)(i % 7) * 50).code, 0);
		if (i == 149)
			assert_true(compact_all(f, 9, NULL) > 0);
	}
	char *want = malloc(16384), *got = malloc(16384);
	want[0] = 0;
	for (int i = 0; i < 300; i++) {
		size_t l = strlen(want);
		snprintf(want + l, 16384 - l, "%s%03d", l ? " g" : "g", i);
	}
	for (uint32_t limit = 1000; limit >= 37; limit = limit == 1000 ? 150 : 37) {
		range_both(f, false, 0, false, 0, limit, got, 16384);
		assert_string_equal(got, want);
		if (limit == 37)
			break;
	}
	/* a page cut by a time bound in the middle of a block */
	na_range_q q = { .has_from = true, .from = 1005 * US, .has_to = true, .to = 1290 * US,
			 .limit = 1000 };
	assert_int_equal(range_all(f, q, got, 16384, NULL), 285);
	free(want);
	free(got);
}

/* Two guids under one index hash (forced: an extra index entry), the other
 * one first: the lookup looks past the first candidate. */
static void test_find_hash_shared(void **state)
{
	fx *f = *state;
	assert_int_equal(put(f, "x", 1000, "the x").status, NA_WS_CREATED);
	na_key kx;
	char t[64];
	assert_int_equal(find2(f, "x", &kx, t, sizeof t), 0);
	MDB_txn *txn;
	assert_int_equal(mdb_txn_begin(f->store.env, NULL, 0, &txn), 0);
	uint8_t hb[8];
	na_be64_put(hb, na_store_guid_hash(&f->store, "y", 1));
	MDB_val hk = { 8, hb }, hv = { NA_KEY_BYTES, kx.b };
	assert_int_equal(mdb_put(txn, f->store.guids, &hk, &hv, MDB_NODUPDATA), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	/* y is not stored yet: x's article is found under y's hash, and is not y */
	assert_int_equal(find2(f, "y", NULL, t, sizeof t), MDB_NOTFOUND);
	assert_int_equal(put(f, "y", 2000, "the y").status, NA_WS_CREATED);
	assert_int_equal(find2(f, "y", NULL, t, sizeof t), 0);
	assert_string_equal(t, "the y");
	assert_int_equal(find2(f, "x", NULL, t, sizeof t), 0);
	assert_string_equal(t, "the x");
	assert_int_equal(put(f, "y", 2000, "the y").status, NA_WS_UNCHANGED);
}

/* An archive of schema 1 (no article counter) opens, counts its articles
 * and is marked schema 2. */
static void test_schema1_upgrade(void **state)
{
	fx *f = *state;
	put_series(f, 30);
	MDB_txn *txn;
	assert_int_equal(mdb_txn_begin(f->store.env, NULL, 0, &txn), 0);
	assert_int_equal(na_meta_put_u64(&f->store, txn, "schema", 1), 0);
	MDB_val k = { 8, "articles" };
	assert_int_equal(mdb_del(txn, f->store.meta, &k, NULL), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	fx_close(f);
	fx_open(f);
	assert_int_equal(count(f, false, 0, false, 0), 30);
	uint64_t schema = 0;
	assert_int_equal(na_store_rbegin(&f->store, &txn), 0);
	assert_int_equal(na_meta_get_u64(&f->store, txn, "schema", &schema), 0);
	na_store_rend(&f->store, txn);
	assert_int_equal(schema, NA_SCHEMA_VERSION);
	assert_int_equal(put(f, "more", 5000, "more").status, NA_WS_CREATED);
	assert_int_equal(count(f, false, 0, false, 0), 31);
	assert_int_equal(verify_problems(f), 0);
}

/* ---- the guid index's two tables ---------------------------------------- */

/* Puts articles guid PREFIXi, i in [first, first + n), one job (one
 * transaction) of n items, published at base + i seconds. */
static void put_many(fx *f, const char *prefix, int first, int n, int64_t base)
{
	na_witem *it = calloc((size_t)n, sizeof *it);
	msgpack_sbuffer *sb = calloc((size_t)n, sizeof *sb);
	for (int i = 0; i < n; i++) {
		char g[64], t[64];
		snprintf(g, sizeof g, "%s%d", prefix, first + i);
		snprintf(t, sizeof t, "t%s%d", prefix, first + i);
		make_article(&sb[i], g, base + first + i, 0, t, 0);
		na_mp r;
		na_article_info info;
		char err[256];
		na_mp_init(&r, sb[i].data, sb[i].size);
		if (na_article_check(&r, &info, "test", err, sizeof err))
			fail_msg("bad test article: %s", err);
		uint8_t *rec = malloc(na_codec_bound(sb[i].size));
		size_t rec_len;
		assert_int_equal(na_codec_encode(f->store.codec, sb[i].data, sb[i].size, rec, &rec_len), 0);
		it[i] = (na_witem){ .rec = rec, .rec_len = rec_len, .raw = info.raw,
				    .raw_len = info.raw_len, .guid = info.guid,
				    .guid_len = info.guid_len, .micros = na_ts_micros(info.published) };
	}
	na_wjob job = { .op = NA_WOP_PUT, .n = (uint32_t)n, .items = it };
	assert_int_equal(na_writer_apply_now(&f->w, &job), 0);
	for (int i = 0; i < n; i++) {
		assert_int_not_equal(it[i].status, NA_WS_UNCHANGED);
		free((void *)it[i].rec);
		msgpack_sbuffer_destroy(&sb[i]);
	}
	free(it);
	free(sb);
}

/* Which table holds guid's entry: 1 guids, 2 guidnew, 3 both, 0 neither. */
static int guid_table(fx *f, const char *guid)
{
	MDB_txn *txn;
	assert_int_equal(na_store_rbegin(&f->store, &txn), 0);
	uint8_t hb[8];
	na_be64_put(hb, na_store_guid_hash(&f->store, guid, (uint32_t)strlen(guid)));
	int where = 0;
	MDB_val k = { 8, hb }, v;
	if (mdb_get(txn, f->store.guids, &k, &v) == 0)
		where |= 1;
	if (f->store.have_guidnew && mdb_get(txn, f->store.guidnew, &k, &v) == 0)
		where |= 2;
	na_store_rend(&f->store, txn);
	return where;
}

static void guid_tables(fx *f, size_t *big, size_t *fresh)
{
	MDB_txn *txn;
	MDB_stat st;
	assert_int_equal(na_store_rbegin(&f->store, &txn), 0);
	assert_int_equal(mdb_stat(txn, f->store.guids, &st), 0);
	*big = st.ms_entries;
	assert_int_equal(mdb_stat(txn, f->store.guidnew, &st), 0);
	*fresh = st.ms_entries;
	na_store_rend(&f->store, txn);
}

static void expect_title(fx *f, const char *guid, const char *want)
{
	char t[64];
	int rc = find(f, guid, NULL, t, sizeof t);
	if (!want) {
		assert_int_equal(rc, MDB_NOTFOUND);
		return;
	}
	if (rc)
		fail_msg("guid %s: find returned %d", guid, rc);
	assert_string_equal(t, want);
}

/* Small transactions put new guids into guidnew; once it holds more than
 * its share (here NA_GUIDNEW_MIN), each commit folds the excess into
 * guids. Every guid stays findable through it all, replacing and deleting
 * work wherever the entry is, a transaction with more items than the leaf
 * pages of guids puts straight into guids, and verify finds nothing amiss. */
static void test_guid_two_tables(void **state)
{
	fx *f = *state;
	const int batch = 50, total = 14000;
	size_t big = 0, fresh = 0, peak = 0, big_then = 0;
	/* start the folds near the end of the hash space: they wrap around */
	f->w.fold_pos = UINT64_MAX - ((uint64_t)1 << 50);
	for (int i = 0; i < total; i += batch) {
		put_many(f, "a", i, batch, 1000);
		guid_tables(f, &big, &fresh);
		assert_int_equal(big + fresh, (size_t)(i + batch));
		if (fresh && !big_then)
			big_then = big; /* from here on, new entries go to guidnew */
		if (fresh > peak)
			peak = fresh;
	}
	/* guidnew filled up to its share, never past it, and the excess went
	 * on to guids */
	assert_true(big_then > 0);
	assert_int_equal(peak, NA_GUIDNEW_MIN);
	assert_int_equal(fresh, NA_GUIDNEW_MIN);
	assert_true(big > big_then);
	/* every guid is found, in whichever table */
	int in_big = 0, in_new = 0;
	char g[64], t[64];
	for (int i = 0; i < total; i++) {
		snprintf(g, sizeof g, "a%d", i);
		snprintf(t, sizeof t, "ta%d", i);
		expect_title(f, g, t);
		int w = guid_table(f, g);
		assert_true(w == 1 || w == 2);
		in_big += w == 1;
		in_new += w == 2;
	}
	assert_int_equal((size_t)in_big, big);
	assert_int_equal((size_t)in_new, fresh);
	/* replace and delete entries of both tables */
	int rep[2] = { -1, -1 }, gone[2] = { -1, -1 };
	for (int i = 0; i < total && (rep[1] < 0 || gone[1] < 0); i++) {
		snprintf(g, sizeof g, "a%d", i);
		int w = guid_table(f, g) - 1;
		if (rep[w] < 0)
			rep[w] = i;
		else if (gone[w] < 0)
			gone[w] = i;
	}
	for (int w = 0; w < 2; w++) {
		assert_true(rep[w] >= 0 && gone[w] >= 0);
		snprintf(g, sizeof g, "a%d", rep[w]);
		/* a new time moves the article (a new key) */
		assert_int_equal(put(f, g, 999000 + w, "moved").status, NA_WS_UPDATED);
		expect_title(f, g, "moved");
		assert_int_not_equal(guid_table(f, g), 3);
		snprintf(g, sizeof g, "a%d", gone[w]);
		assert_int_equal(del(f, g).status, NA_WS_DELETED);
		expect_title(f, g, NULL);
		assert_int_equal(guid_table(f, g), 0);
		assert_int_equal(del(f, g).status, NA_WS_ABSENT);
	}
	/* a stray candidate in guidnew under a guid's hash does not hide the
	 * entry in guids */
	int x = -1;
	for (int i = 0; i < total && x < 0; i++) {
		snprintf(g, sizeof g, "a%d", i);
		if (i != rep[0] && i != gone[0] && guid_table(f, g) == 1)
			x = i;
	}
	assert_true(x >= 0);
	na_key other;
	snprintf(g, sizeof g, "a%d", rep[1]);
	assert_int_equal(find(f, g, &other, t, sizeof t), 0);
	snprintf(g, sizeof g, "a%d", x);
	MDB_txn *txn;
	assert_int_equal(mdb_txn_begin(f->store.env, NULL, 0, &txn), 0);
	uint8_t hb[8];
	na_be64_put(hb, na_store_guid_hash(&f->store, g, (uint32_t)strlen(g)));
	MDB_val hk = { 8, hb }, hv = { NA_KEY_BYTES, other.b };
	assert_int_equal(mdb_put(txn, f->store.guidnew, &hk, &hv, MDB_NODUPDATA), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	snprintf(t, sizeof t, "ta%d", x);
	expect_title(f, g, t);
	assert_int_equal(mdb_txn_begin(f->store.env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_del(txn, f->store.guidnew, &hk, &hv), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	assert_int_equal(verify_problems(f), 0);

	/* damage where the next fold starts does not stop writes: a pair in
	 * both tables is dropped from guidnew, a malformed entry is dropped */
	uint8_t dupk[8], dupv[NA_KEY_BYTES];
	assert_int_equal(mdb_txn_begin(f->store.env, NULL, 0, &txn), 0);
	MDB_cursor *cur;
	assert_int_equal(mdb_cursor_open(txn, f->store.guidnew, &cur), 0);
	uint8_t pb[8];
	na_be64_put(pb, f->w.fold_pos);
	MDB_val ck = { 8, pb }, cv;
	int crc = mdb_cursor_get(cur, &ck, &cv, MDB_SET_RANGE);
	if (crc == MDB_NOTFOUND)
		crc = mdb_cursor_get(cur, &ck, &cv, MDB_FIRST);
	assert_int_equal(crc, 0);
	memcpy(dupk, ck.mv_data, 8);
	memcpy(dupv, cv.mv_data, NA_KEY_BYTES);
	mdb_cursor_close(cur);
	MDB_val dk = { 8, dupk }, dv = { NA_KEY_BYTES, dupv };
	assert_int_equal(mdb_put(txn, f->store.guids, &dk, &dv, MDB_NODUPDATA), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	assert_int_equal(verify_problems(f), 1); /* "in both tables" */
	put_many(f, "c", 0, batch, 600000);
	assert_int_equal(verify_problems(f), 0);
	assert_int_equal(mdb_txn_begin(f->store.env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_get(txn, f->store.guidnew, &dk, &dv), MDB_NOTFOUND);
	uint8_t badk[8], badv[5] = { 1, 2, 3, 4, 5 };
	na_be64_put(badk, f->w.fold_pos + 1);
	MDB_val bk = { 8, badk }, bv = { sizeof badv, badv };
	assert_int_equal(mdb_put(txn, f->store.guidnew, &bk, &bv, MDB_NODUPDATA), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	put_many(f, "c", batch, batch, 600000);
	assert_int_equal(mdb_txn_begin(f->store.env, NULL, MDB_RDONLY, &txn), 0);
	assert_int_equal(mdb_get(txn, f->store.guidnew, &bk, &bv), MDB_NOTFOUND);
	mdb_txn_abort(txn);
	assert_int_equal(verify_problems(f), 0);
	expect_title(f, "c99", "tc99");

	/* one big transaction: more items than guids has leaf pages */
	guid_tables(f, &big, &fresh);
	size_t fresh_before = fresh, big_before = big;
	put_many(f, "b", 0, 2000, 500000);
	guid_tables(f, &big, &fresh);
	assert_int_equal(fresh, fresh_before);
	assert_int_equal(big, big_before + 2000);
	/* all of it survives a reopen */
	fx_close(f);
	fx_open(f);
	for (int i = 0; i < total; i += 7) {
		snprintf(g, sizeof g, "a%d", i);
		snprintf(t, sizeof t, "ta%d", i);
		expect_title(f, g, i == rep[0] || i == rep[1] ? "moved" : i == gone[0] || i == gone[1] ? NULL : t);
	}
	expect_title(f, "b1999", "tb1999");
	assert_int_equal(count(f, false, 0, false, 0), (uint64_t)total - 2 + 2 * batch + 2000);
	assert_int_equal(verify_problems(f), 0);
}

/* An archive of schema 2 has no guidnew: opened read-only it is looked up
 * without it; opened for writing it gets one and is marked schema 3. */
static void test_schema2_upgrade(void **state)
{
	fx *f = *state;
	/* enough for guids to have several leaf pages: a single put then goes
	 * to guidnew (choose_guid_table) */
	put_many(f, "a", 0, 1000, 1000);
	MDB_txn *txn;
	assert_int_equal(mdb_txn_begin(f->store.env, NULL, 0, &txn), 0);
	/* what schema 2 had: every entry in guids */
	MDB_cursor *cur;
	MDB_val k, v;
	assert_int_equal(mdb_cursor_open(txn, f->store.guidnew, &cur), 0);
	while (mdb_cursor_get(cur, &k, &v, MDB_FIRST) == 0) {
		uint8_t kb[8], vb[NA_KEY_BYTES];
		memcpy(kb, k.mv_data, 8);
		memcpy(vb, v.mv_data, NA_KEY_BYTES);
		MDB_val k2 = { 8, kb }, v2 = { NA_KEY_BYTES, vb };
		assert_int_equal(mdb_cursor_del(cur, 0), 0);
		assert_int_equal(mdb_put(txn, f->store.guids, &k2, &v2, MDB_NODUPDATA), 0);
	}
	mdb_cursor_close(cur);
	assert_int_equal(mdb_drop(txn, f->store.guidnew, 1), 0);
	assert_int_equal(na_meta_put_u64(&f->store, txn, "schema", 2), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	fx_close(f);

	na_store ro;
	na_store_opts o = { .dir = f->dir, .map_size = f->map_size,
			    .max_map_size = f->max_map_size, .readonly = true };
	const char *msg = "";
	assert_int_equal(na_store_open(&ro, &o, &msg), 0);
	assert_false(ro.have_guidnew);
	assert_int_equal(na_store_rbegin(&ro, &txn), 0);
	na_key key;
	const uint8_t *rec;
	size_t reclen;
	na_buf dec = { 0 };
	assert_int_equal(na_store_find(&ro, txn, "a7", 2, &key, &rec, &reclen, &dec), 0);
	assert_int_equal(na_store_find(&ro, txn, "a1000", 5, &key, &rec, &reclen, &dec), MDB_NOTFOUND);
	na_store_rend(&ro, txn);
	free(dec.data);
	/* what `newsarchd --verify` does with it */
	char *text = NULL;
	size_t tlen = 0;
	FILE *out = open_memstream(&text, &tlen);
	uint64_t n = 0;
	long problems = na_verify(&ro, out, &n);
	fclose(out);
	if (problems)
		fail_msg("verify of a schema 2 archive: %s", text);
	free(text);
	assert_int_equal(n, 1000);
	na_store_stats st;
	assert_int_equal(na_store_stats_get(&ro, &st), 0);
	assert_true(st.page_bytes > 0);
	na_store_close(&ro);

	fx_open(f);
	assert_true(f->store.have_guidnew);
	uint64_t schema = 0;
	assert_int_equal(na_store_rbegin(&f->store, &txn), 0);
	assert_int_equal(na_meta_get_u64(&f->store, txn, "schema", &schema), 0);
	na_store_rend(&f->store, txn);
	assert_int_equal(schema, 3);
	assert_int_equal(put(f, "a1000", 5000, "new").status, NA_WS_CREATED);
	assert_int_equal(guid_table(f, "a1000"), 2);
	expect_title(f, "a1000", "new");
	expect_title(f, "a7", "ta7");
	assert_int_equal(verify_problems(f), 0);
}

/* A write refused for a full filesystem is retried once with every reader
 * kept out (commit_group holds resize_lock). A job that changes the
 * replication identity takes that lock itself after committing; on the
 * retry it must not take it again, or the lock's reader count is broken
 * and the map could later be resized under live readers. */
static void test_full_disk_retry_keeps_resize_lock(void **state)
{
	fx *f = *state;
	put(f, "urn:before", 10, "one");
	na_wjob j = { .op = NA_WOP_HISTORY };
	memset(j.history, 7, 16);
	fail_writes = 1;
	assert_int_equal(na_writer_apply_now(&f->w, &j), 0);
	assert_int_equal(fail_writes, 0); /* the failure did happen */
	assert_memory_equal(f->store.history, j.history, 16);
	MDB_txn *txn;
	assert_int_equal(na_store_rbegin(&f->store, &txn), 0);
	/* a live reader keeps the map's resizer out */
	assert_int_equal(pthread_rwlock_trywrlock(&f->store.resize_lock), EBUSY);
	na_store_rend(&f->store, txn);
	assert_int_equal(pthread_rwlock_trywrlock(&f->store.resize_lock), 0);
	pthread_rwlock_unlock(&f->store.resize_lock);
	char title[16];
	assert_int_equal(find(f, "urn:before", NULL, title, sizeof title), 0);
	assert_string_equal(title, "one");
}

/* A follower registers a replicated dictionary while applying the entries
 * after it (their records need it to be read). When the group does not
 * commit, the dictionary must be forgotten and must never have become the
 * one new records are compressed with: after a promotion, records would
 * name a dictionary the archive does not have. */
static void test_replicated_dict_needs_commit(void **state)
{
	fx *f = *state;
	static char dict[8192];
	for (size_t i = 0; i < sizeof dict; i++)
		dict[i] = "words of an article body, repeated so that they compress "[i % 58];
	na_key dk;
	na_key_make(&dk, 5 * US, 9);
	na_rentry e[2] = {
		{ .seq = 1, .op = 'Z', .dict_id = 1, .dict = (const uint8_t *)dict,
		  .dict_len = sizeof dict },
		{ .seq = 3, .op = 'D', .key = dk }, /* a gap: the group fails */
	};
	na_wjob j = { .op = NA_WOP_APPLY, .entries = e, .nentries = 2, .link = 1 };
	assert_int_not_equal(na_writer_apply_now(&f->w, &j), 0);
	assert_int_equal(na_codec_current_dict(f->store.codec), 0);
	assert_int_equal(na_codec_dict_size(f->store.codec, 1), 0);

	char body[600];
	memcpy(body, dict, sizeof body - 1);
	body[sizeof body - 1] = 0;
	assert_int_equal(put(f, "urn:a", 100, body).code, 0);

	/* the same dictionary, applied whole: current once committed */
	e[0].seq = f->w.seq + 1;
	na_wjob j2 = { .op = NA_WOP_APPLY, .entries = e, .nentries = 1, .link = 1 };
	assert_int_equal(na_writer_apply_now(&f->w, &j2), 0);
	assert_int_equal(na_codec_current_dict(f->store.codec), 1);
	assert_int_equal(put(f, "urn:b", 200, body).code, 0);

	fx_close(f);
	fx_open(f);
	char title[700];
	assert_int_equal(find(f, "urn:a", NULL, title, sizeof title), 0);
	assert_string_equal(title, body);
	assert_int_equal(find(f, "urn:b", NULL, title, sizeof title), 0);
	assert_string_equal(title, body);
	FILE *devnull = fopen("/dev/null", "w");
	assert_non_null(devnull);
	uint64_t n = 0;
	assert_int_equal(na_verify(&f->store, devnull, &n), 0);
	fclose(devnull);
}

/* Relaxed durability: once a sync of the commits so far has failed, the
 * kernel may have dropped pages it could not write and a later sync would
 * not say so; every later write is refused (reads go on) until a restart. */
static void test_failed_sync_refuses_writes(void **state)
{
	fx *f = *state;
	assert_int_equal(put(f, "urn:a", 10, "one").code, 0);
	assert_int_equal(na_writer_sync(&f->w), 0);
	assert_int_equal(put(f, "urn:b", 20, "two").code, 0);
	fail_syncs = 1;
	assert_int_not_equal(na_writer_sync(&f->w), 0);
	assert_int_equal(fail_syncs, 0);
	assert_int_not_equal(na_writer_sync(&f->w), 0); /* not forgotten */
	assert_int_equal(put(f, "urn:c", 30, "three").code, NA_CODE_INTERNAL);
	assert_int_equal(del(f, "urn:a").code, NA_CODE_INTERNAL);
	char title[16];
	assert_int_equal(find(f, "urn:a", NULL, title, sizeof title), 0);
	assert_int_equal(find(f, "urn:c", NULL, title, sizeof title), MDB_NOTFOUND);
	fx_close(f);
	fx_open(f);
	assert_int_equal(put(f, "urn:c", 30, "three").code, 0);
	assert_int_equal(find(f, "urn:b", NULL, title, sizeof title), 0);
}

/* One request through a sink connection of a running server; the reply's
 * error code (NULL when it succeeded). */
static const char *sink_call(uv_loop_t *loop, na_server *srv, na_conn *c, const char *method,
			     const char *arg, char *code, size_t codelen)
{
	msgpack_sbuffer req;
	msgpack_sbuffer_init(&req);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &req, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 4);
	msgpack_pack_uint8(&pk, 0);
	msgpack_pack_uint8(&pk, 9);
	na_mp_pack_cstr(&pk, method);
	msgpack_pack_array(&pk, 1);
	na_mp_pack_cstr(&pk, arg);
	msgpack_sbuffer_clear(&replies);
	na_conn_feed(c, (const uint8_t *)req.data, req.size);
	while (srv->inflight > 0)
		uv_run(loop, UV_RUN_ONCE);
	msgpack_sbuffer_destroy(&req);
	msgpack_unpacked u;
	msgpack_unpacked_init(&u);
	assert_int_equal(msgpack_unpack_next(&u, replies.data, replies.size, NULL),
			 MSGPACK_UNPACK_SUCCESS);
	msgpack_object *o = u.data.via.array.ptr;
	const char *ret = NULL;
	if (o[2].type == MSGPACK_OBJECT_MAP) {
		msgpack_object *v = &o[2].via.map.ptr[0].val;
		snprintf(code, codelen, "%.*s", (int)v->via.str.size, v->via.str.ptr);
		ret = code;
	}
	msgpack_unpacked_destroy(&u);
	return ret;
}

/* A backup is on disk before its reply says so: the copy, its entry in the
 * new directory and that directory's entry in its parent are synced; and a
 * backup whose sync failed reports it and leaves no data.mdb behind. */
static void test_backup_durable(void **state)
{
	fx *f = *state;
	put(f, "urn:kept", 100, "kept");
	sink_srv ss;
	sink_open(f, &ss);
	uv_loop_t *loop = &ss.loop;
	na_server *srv = ss.srv;
	na_conn *c = ss.c;
	char bk[600], bad[600], path[700], code[32];
	snprintf(bk, sizeof bk, "%s/bk", f->dir);
	snprintf(bad, sizeof bad, "%s/bad", f->dir);

	/* the file, bk, and bk's entry in its parent (the temp dir) */
	snprintf(watch_path[0], sizeof watch_path[0], "%s/data.mdb", bk);
	snprintf(watch_path[1], sizeof watch_path[1], "%s", bk);
	snprintf(watch_path[2], sizeof watch_path[2], "%s", f->dir);
	assert_null(sink_call(loop, srv, c, "backup", bk, code, sizeof code));
	for (int i = 0; i < 3; i++)
		assert_int_equal(watch_seen[i], 1);
	memset(watch_path, 0, sizeof watch_path);
	snprintf(path, sizeof path, "%s/data.mdb", bk);
	struct stat sb;
	assert_int_equal(stat(path, &sb), 0);
	assert_true(sb.st_size > 0);

	snprintf(fail_path, sizeof fail_path, "%s/data.mdb", bad);
	const char *err = sink_call(loop, srv, c, "backup", bad, code, sizeof code);
	fail_path[0] = 0;
	assert_int_equal(fail_hits, 1);
	assert_non_null(err);
	assert_string_equal(err, "INTERNAL");
	snprintf(path, sizeof path, "%s/data.mdb", bad);
	assert_int_equal(stat(path, &sb), -1);
	assert_int_equal(stat(bad, &sb), -1); /* the directory it made is gone */

	sink_close(&ss);

	/* the copy is an archive holding what was acknowledged */
	snprintf(f->dir + strlen(f->dir), sizeof f->dir - strlen(f->dir), "/bk");
	fx_open(f);
	char title[16];
	assert_int_equal(find(f, "urn:kept", NULL, title, sizeof title), 0);
	assert_string_equal(title, "kept");
	fx_close(f);
	f->dir[strlen(f->dir) - 3] = 0;
}

/* A promotion is checked by the writer in order with the follower's jobs:
 * a snapshot that began before it (its SNAP_BEGIN queued first) makes it
 * fail with UNAVAILABLE and change nothing, and so does a whole but still
 * fuzzy snapshot; once the log has made it exact it goes through. */
static void test_promote_refused_during_snapshot(void **state)
{
	fx *f = *state;
	na_wjob sb = { .op = NA_WOP_SNAP_BEGIN };
	memset(sb.history, 3, 16);
	memset(sb.hash_key, 4, 16);
	assert_int_equal(na_writer_apply_now(&f->w, &sb), 0);
	na_wjob pr = { .op = NA_WOP_PROMOTE };
	memset(pr.history, 5, 16);
	assert_int_equal(na_writer_apply_now(&f->w, &pr), NA_CODE_UNAVAILABLE);
	assert_memory_equal(f->store.history, sb.history, 16);
	/* the rows reflect the primary up to seq 2: exact only once the log
	 * is applied that far, and not promotable before (also after a
	 * restart) */
	na_wjob end = { .op = NA_WOP_SNAP_END, .seq = 0, .exact_at = 2 };
	assert_int_equal(na_writer_apply_now(&f->w, &end), 0);
	assert_int_equal(na_writer_apply_now(&f->w, &pr), NA_CODE_UNAVAILABLE);
	fx_close(f);
	fx_open(f);
	assert_int_equal(na_writer_apply_now(&f->w, &pr), NA_CODE_UNAVAILABLE);
	na_key k1, k2;
	na_key_make(&k1, 5 * US, 1);
	na_key_make(&k2, 6 * US, 2);
	na_rentry e[2] = { { .seq = 1, .op = 'D', .key = k1 }, { .seq = 2, .op = 'D', .key = k2 } };
	na_wjob ap = { .op = NA_WOP_APPLY, .entries = e, .nentries = 1, .link = 1 };
	assert_int_equal(na_writer_apply_now(&f->w, &ap), 0);
	assert_int_equal(na_writer_apply_now(&f->w, &pr), NA_CODE_UNAVAILABLE);
	ap.entries = e + 1;
	assert_int_equal(na_writer_apply_now(&f->w, &ap), 0);
	na_wjob pr2 = { .op = NA_WOP_PROMOTE };
	memset(pr2.history, 5, 16);
	assert_int_equal(na_writer_apply_now(&f->w, &pr2), 0);
	assert_memory_equal(f->store.history, pr2.history, 16);
	assert_int_equal(f->store.chain_len, 1);
}

/* Request counters by method: a refused write must not leave its method
 * attached to the connection, or the next error that comes before a method
 * is known (a malformed request) counts against it, and requests minus
 * errors (the metrics' "ok") wraps below zero. */
static void test_error_counts_follow_their_method(void **state)
{
	fx *f = *state;
	sink_srv ss;
	sink_open(f, &ss);
	uv_loop_t *loop = &ss.loop;
	na_server *srv = ss.srv;
	na_conn *c = ss.c;
	char code[32];
	srv->stopping = true; /* writes are refused while shutting down */
	assert_string_equal(sink_call(loop, srv, c, "delete", "urn:x", code, sizeof code),
			    "UNAVAILABLE");
	srv->stopping = false;
	/* [0, msgid, 42, []]: the method is not a string */
	static const uint8_t bad[] = { 0x94, 0x00, 0x07, 0x2a, 0x90 };
	msgpack_sbuffer_clear(&replies);
	na_conn_feed(c, bad, sizeof bad);
	assert_true(replies.size > 0);
	for (int m = 0; m < NA_M__COUNT; m++)
		if (srv->metrics.errors[m] > srv->metrics.requests[m])
			fail_msg("method %d: %llu errors for %llu requests", m,
				 (unsigned long long)srv->metrics.errors[m],
				 (unsigned long long)srv->metrics.requests[m]);
	sink_close(&ss);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_put_find_replace_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stats_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_range_order_and_paging, setup, teardown),
		cmocka_unit_test_setup_teardown(test_range_projection, setup, teardown),
		cmocka_unit_test_setup_teardown(test_equal_times_keep_insertion_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_change_log, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_map_full, setup_small, teardown),
		cmocka_unit_test_setup_teardown(test_delete_in_full_map, setup_small, teardown),
		cmocka_unit_test_setup_teardown(test_conn_sink_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blocks_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blocks_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blocks_compaction_races, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blocks_replicated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_range_big_pages, setup, teardown),
		cmocka_unit_test_setup_teardown(test_find_hash_shared, setup, teardown),
		cmocka_unit_test_setup_teardown(test_schema1_upgrade, setup, teardown),
		cmocka_unit_test_setup_teardown(test_guid_two_tables, setup, teardown),
		cmocka_unit_test_setup_teardown(test_schema2_upgrade, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_disk_retry_keeps_resize_lock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replicated_dict_needs_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_sync_refuses_writes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backup_durable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_promote_refused_during_snapshot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_counts_follow_their_method, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
