/*
 * article.c - na_article (a validated msgpack map with an index of its
 * fields) and the article builder.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

enum { T_STR, T_TIME, T_STRARR };

static const struct {
	const char *name;
	int type;
} known[NA_K__COUNT] = {
	[NA_K_GUID] = { "guid", T_STR },
	[NA_K_TITLE] = { "title", T_STR },
	[NA_K_BODY] = { "body", T_STR },
	[NA_K_SUMMARY] = { "summary", T_STR },
	[NA_K_URL] = { "url", T_STR },
	[NA_K_SOURCE] = { "source", T_STR },
	[NA_K_SECTION] = { "section", T_STR },
	[NA_K_LANGUAGE] = { "language", T_STR },
	[NA_K_PUBLISHED] = { "published", T_TIME },
	[NA_K_UPDATED] = { "updated", T_TIME },
	[NA_K_AUTHORS] = { "authors", T_STRARR },
	[NA_K_TAGS] = { "tags", T_STRARR },
};

int na__known_lookup(const char *name, size_t n)
{
	for (int i = 0; i < NA_K__COUNT; i++)
		if (strlen(known[i].name) == n && memcmp(known[i].name, name, n) == 0)
			return i;
	return -1;
}

/* ---- parsing ------------------------------------------------------- */

static int cmp_fref(const void *x, const void *y)
{
	const na__fref *a = x, *b = y;
	uint32_t n = a->name_len < b->name_len ? a->name_len : b->name_len;
	int c = memcmp(a->name, b->name, n);
	if (c)
		return c;
	return a->name_len < b->name_len ? -1 : a->name_len > b->name_len;
}

static int cmp_fref_ptr(const void *x, const void *y)
{
	return cmp_fref(*(const na__fref *const *)x, *(const na__fref *const *)y);
}

/* Checks a known field's value. */
static int check_known(int k, const uint8_t *v, size_t n, uint32_t *count)
{
	na_mp r;
	na_mp_init(&r, v, n);
	switch (known[k].type) {
	case T_STR: {
		const char *s;
		uint32_t sl;
		if (na_mp_str(&r, &s, &sl))
			return NA_EINVAL;
		if (k == NA_K_GUID && (sl == 0 || sl > NA_GUID_MAX_BYTES))
			return NA_EINVAL;
		break;
	}
	case T_TIME: {
		na_ts ts;
		if (na_mp_ts(&r, &ts))
			return NA_EINVAL;
		break;
	}
	default: {
		uint32_t an;
		if (na_mp_array(&r, &an))
			return NA_EINVAL;
		for (uint32_t i = 0; i < an; i++) {
			const char *s;
			uint32_t sl;
			if (na_mp_str(&r, &s, &sl))
				return NA_EINVAL;
		}
		*count = an;
		break;
	}
	}
	return na_mp_left(&r) == 0 ? 0 : NA_EINVAL;
}

int na__article_index(na_article *a, const uint8_t *buf, size_t len)
{
	na_mp r;
	uint32_t n;
	a->buf = buf;
	a->len = len;
	a->nfields = 0;
	a->nauthors = a->ntags = 0;
	for (int i = 0; i < NA_K__COUNT; i++)
		a->known[i] = -1;
	na_mp_init(&r, buf, len);
	if (na_mp_map(&r, &n))
		return NA_EINVAL;
	/* each entry takes at least two bytes, and the protocol allows
	 * NA_MAX_ARTICLE_FIELDS: both bound the allocation */
	if ((size_t)n > na_mp_left(&r) / 2 || n > NA_MAX_ARTICLE_FIELDS)
		return NA_EINVAL;
	if (n > a->fcap) {
		na__fref *f = realloc(a->fields, (size_t)n * sizeof *f);
		if (!f)
			return NA_ENOMEM;
		a->fields = f;
		a->fcap = n;
	}
	for (uint32_t i = 0; i < n; i++) {
		na__fref *f = &a->fields[i];
		if (na_mp_str(&r, &f->name, &f->name_len) || na_mp_raw(&r, &f->val, &f->val_len))
			return NA_EINVAL;
		int k = na__known_lookup(f->name, f->name_len);
		if (k >= 0) {
			uint32_t cnt = 0;
			if (a->known[k] >= 0 || check_known(k, f->val, f->val_len, &cnt))
				return NA_EINVAL;
			a->known[k] = (int32_t)i;
			if (k == NA_K_AUTHORS)
				a->nauthors = cnt;
			else if (k == NA_K_TAGS)
				a->ntags = cnt;
		}
	}
	if (na_mp_left(&r) != 0)
		return NA_EINVAL;
	a->nfields = n;
	/* no key twice: sorts pointers, a quarter of the index, which keeps
	 * the map's order */
	if (n > 1) {
		const na__fref **ord = malloc((size_t)n * sizeof *ord);
		if (!ord)
			return NA_ENOMEM;
		for (uint32_t i = 0; i < n; i++)
			ord[i] = &a->fields[i];
		qsort(ord, n, sizeof *ord, cmp_fref_ptr);
		int dup = 0;
		for (uint32_t i = 1; i < n && !dup; i++)
			dup = cmp_fref(ord[i - 1], ord[i]) == 0;
		free(ord);
		if (dup) {
			a->nfields = 0;
			return NA_EINVAL;
		}
	}
	return 0;
}

void na__article_clear(na_article *a)
{
	free(a->owned);
	free(a->fields);
	memset(a, 0, sizeof *a);
}

/* Takes ownership of buf (malloc'd) on success and on failure. */
int na__article_adopt(uint8_t *buf, size_t len, na_article **out)
{
	na_article *a = calloc(1, sizeof *a);
	if (!a) {
		free(buf);
		return NA_ENOMEM;
	}
	a->owned = buf;
	int rc = na__article_index(a, buf, len);
	if (rc) {
		na__article_clear(a);
		free(a);
		return rc;
	}
	*out = a;
	return 0;
}

int na_article_parse(const void *buf, size_t len, na_article **out)
{
	if (!buf || !out || len == 0)
		return NA_EINVAL;
	/* exactly one object, nesting bounded */
	na_scan s;
	size_t mlen = 0;
	na_scan_init(&s, len, NA_MAX_DEPTH_DEFAULT);
	if (na_scan_feed(&s, buf, len, &mlen) != 1 || mlen != len)
		return NA_EINVAL;
	uint8_t *copy = malloc(len);
	if (!copy)
		return NA_ENOMEM;
	memcpy(copy, buf, len);
	return na__article_adopt(copy, len, out);
}

int na_article_dup(const na_article *a, na_article **out)
{
	if (!a || !out)
		return NA_EINVAL;
	uint8_t *copy = malloc(a->len ? a->len : 1);
	if (!copy)
		return NA_ENOMEM;
	memcpy(copy, a->buf, a->len);
	return na__article_adopt(copy, a->len, out);
}

void na_article_free(na_article *a)
{
	if (!a)
		return;
	na__article_clear(a);
	free(a);
}

void na_article_bytes(const na_article *a, const uint8_t **buf, size_t *len)
{
	*buf = a->buf;
	*len = a->len;
}

/* ---- accessors ----------------------------------------------------- */

static int get_str(const na_article *a, int k, const char **s, size_t *n)
{
	if (!a || !s || !n)
		return NA_EINVAL;
	if (a->known[k] < 0)
		return NA_ENOFIELD;
	const na__fref *f = &a->fields[a->known[k]];
	na_mp r;
	uint32_t sl;
	na_mp_init(&r, f->val, f->val_len);
	if (na_mp_str(&r, s, &sl))
		return NA_EINVAL; /* cannot happen: checked when indexed */
	*n = sl;
	return 0;
}

int na_article_get_guid(const na_article *a, const char **s, size_t *n) { return get_str(a, NA_K_GUID, s, n); }
int na_article_get_title(const na_article *a, const char **s, size_t *n) { return get_str(a, NA_K_TITLE, s, n); }
int na_article_get_body(const na_article *a, const char **s, size_t *n) { return get_str(a, NA_K_BODY, s, n); }
int na_article_get_summary(const na_article *a, const char **s, size_t *n) { return get_str(a, NA_K_SUMMARY, s, n); }
int na_article_get_url(const na_article *a, const char **s, size_t *n) { return get_str(a, NA_K_URL, s, n); }
int na_article_get_source(const na_article *a, const char **s, size_t *n) { return get_str(a, NA_K_SOURCE, s, n); }
int na_article_get_section(const na_article *a, const char **s, size_t *n) { return get_str(a, NA_K_SECTION, s, n); }
int na_article_get_language(const na_article *a, const char **s, size_t *n) { return get_str(a, NA_K_LANGUAGE, s, n); }

static int get_time(const na_article *a, int k, na_time *t)
{
	if (!a || !t)
		return NA_EINVAL;
	if (a->known[k] < 0)
		return NA_ENOFIELD;
	const na__fref *f = &a->fields[a->known[k]];
	na_mp r;
	na_ts ts;
	na_mp_init(&r, f->val, f->val_len);
	if (na_mp_ts(&r, &ts))
		return NA_EINVAL;
	t->sec = ts.sec;
	t->nsec = ts.nsec;
	return 0;
}

int na_article_get_published(const na_article *a, na_time *t) { return get_time(a, NA_K_PUBLISHED, t); }
int na_article_get_updated(const na_article *a, na_time *t) { return get_time(a, NA_K_UPDATED, t); }

static int get_item(const na_article *a, int k, uint32_t count, size_t i, const char **s,
		    size_t *n)
{
	if (!a || !s || !n || i >= count)
		return NA_EINVAL;
	const na__fref *f = &a->fields[a->known[k]];
	na_mp r;
	uint32_t an, sl;
	na_mp_init(&r, f->val, f->val_len);
	na_mp_array(&r, &an);
	for (size_t j = 0; j < i; j++)
		na_mp_skip(&r);
	if (na_mp_str(&r, s, &sl))
		return NA_EINVAL;
	*n = sl;
	return 0;
}

size_t na_article_author_count(const na_article *a) { return a ? a->nauthors : 0; }
size_t na_article_tag_count(const na_article *a) { return a ? a->ntags : 0; }

int na_article_get_author(const na_article *a, size_t i, const char **s, size_t *n)
{
	return get_item(a, NA_K_AUTHORS, a ? a->nauthors : 0, i, s, n);
}

int na_article_get_tag(const na_article *a, size_t i, const char **s, size_t *n)
{
	return get_item(a, NA_K_TAGS, a ? a->ntags : 0, i, s, n);
}

size_t na_article_field_count(const na_article *a) { return a ? a->nfields : 0; }

int na_article_get_field(const na_article *a, size_t i, na_field *out)
{
	if (!a || !out || i >= a->nfields)
		return NA_EINVAL;
	const na__fref *f = &a->fields[i];
	out->name = f->name;
	out->name_len = f->name_len;
	out->value = f->val;
	out->value_len = f->val_len;
	return 0;
}

int na_article_find_field(const na_article *a, const char *name, na_field *out)
{
	if (!a || !name || !out)
		return NA_EINVAL;
	size_t n = strlen(name);
	int k = na__known_lookup(name, n);
	if (k >= 0)
		return a->known[k] < 0 ? NA_ENOFIELD : na_article_get_field(a, (size_t)a->known[k], out);
	for (size_t i = 0; i < a->nfields; i++)
		if (a->fields[i].name_len == n && memcmp(a->fields[i].name, name, n) == 0)
			return na_article_get_field(a, i, out);
	return NA_ENOFIELD;
}

/* ---- builder ------------------------------------------------------- */

/* A field of the builder: its name and encoded value. The "authors" and
 * "tags" entries have no value: their items live in the lists. */
typedef struct bfield {
	char *name;
	uint8_t *val;
	size_t len;
	int list; /* 0, or 1 for authors, 2 for tags */
} bfield;

typedef struct strlist {
	msgpack_sbuffer sb; /* encoded strings, concatenated */
	uint32_t n;
} strlist;

struct na_article_builder {
	bfield *f;
	size_t n, cap;
	strlist lists[2]; /* authors, tags */
};

int na_article_builder_new(na_article_builder **out)
{
	if (!out)
		return NA_EINVAL;
	na_article_builder *b = calloc(1, sizeof *b);
	if (!b)
		return NA_ENOMEM;
	msgpack_sbuffer_init(&b->lists[0].sb);
	msgpack_sbuffer_init(&b->lists[1].sb);
	*out = b;
	return 0;
}

void na_article_builder_reset(na_article_builder *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->n; i++) {
		free(b->f[i].name);
		free(b->f[i].val);
	}
	b->n = 0;
	for (int i = 0; i < 2; i++) {
		msgpack_sbuffer_destroy(&b->lists[i].sb);
		msgpack_sbuffer_init(&b->lists[i].sb);
		b->lists[i].n = 0;
	}
}

void na_article_builder_free(na_article_builder *b)
{
	if (!b)
		return;
	na_article_builder_reset(b);
	free(b->f);
	free(b);
}

static bfield *find_bfield(na_article_builder *b, const char *name)
{
	for (size_t i = 0; i < b->n; i++)
		if (strcmp(b->f[i].name, name) == 0)
			return &b->f[i];
	return NULL;
}

/* Returns the field named name, appending an empty one when absent. */
static int slot(na_article_builder *b, const char *name, bfield **out)
{
	bfield *f = find_bfield(b, name);
	if (f) {
		*out = f;
		return 0;
	}
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 16;
		bfield *nf = realloc(b->f, cap * sizeof *nf);
		if (!nf)
			return NA_ENOMEM;
		b->f = nf;
		b->cap = cap;
	}
	char *nm = strdup(name);
	if (!nm)
		return NA_ENOMEM;
	f = &b->f[b->n++];
	memset(f, 0, sizeof *f);
	f->name = nm;
	*out = f;
	return 0;
}

static int name_ok(const char *name)
{
	if (!name)
		return 0;
	size_t n = strlen(name);
	return n >= 1 && n <= 255;
}

/* Stores the encoded value sb (taking its buffer) as field name. */
static int set_value(na_article_builder *b, const char *name, msgpack_sbuffer *sb)
{
	bfield *f;
	int rc = slot(b, name, &f);
	if (rc) {
		msgpack_sbuffer_destroy(sb);
		return rc;
	}
	free(f->val);
	f->len = sb->size;
	f->val = (uint8_t *)msgpack_sbuffer_release(sb);
	return 0;
}

int na_article_builder_set_str(na_article_builder *b, const char *name, const char *s, size_t n)
{
	if (!b || !name_ok(name) || (!s && n))
		return NA_EINVAL;
	int k = na__known_lookup(name, strlen(name));
	if (k >= 0 && known[k].type != T_STR)
		return NA_EINVAL;
	if (k == NA_K_GUID && (n == 0 || n > NA_GUID_MAX_BYTES))
		return NA_EINVAL;
	if (n > UINT32_MAX)
		return NA_EINVAL;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	if (na_mp_pack_str(&pk, s ? s : "", n)) {
		msgpack_sbuffer_destroy(&sb);
		return NA_ENOMEM;
	}
	return set_value(b, name, &sb);
}

int na_article_builder_set_time(na_article_builder *b, const char *name, na_time t)
{
	if (!b || !name_ok(name) || t.nsec > 999999999u)
		return NA_EINVAL;
	int k = na__known_lookup(name, strlen(name));
	if (k >= 0 && known[k].type != T_TIME)
		return NA_EINVAL;
	if (k >= 0 && (t.sec < NA_TIME_MIN_SEC || t.sec > NA_TIME_MAX_SEC))
		return NA_EINVAL;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	if (na_mp_pack_ts(&pk, (na_ts){ t.sec, t.nsec })) {
		msgpack_sbuffer_destroy(&sb);
		return NA_ENOMEM;
	}
	return set_value(b, name, &sb);
}

static int add_item(na_article_builder *b, int which, const char *s, size_t n)
{
	if (!b || (!s && n) || n > UINT32_MAX)
		return NA_EINVAL;
	strlist *l = &b->lists[which];
	if (l->n == UINT32_MAX)
		return NA_EINVAL;
	bfield *f;
	int rc = slot(b, which ? "tags" : "authors", &f);
	if (rc)
		return rc;
	f->list = which + 1;
	size_t save = l->sb.size;
	msgpack_packer pk;
	msgpack_packer_init(&pk, &l->sb, msgpack_sbuffer_write);
	if (na_mp_pack_str(&pk, s ? s : "", n)) {
		l->sb.size = save;
		return NA_ENOMEM;
	}
	l->n++;
	return 0;
}

int na_article_builder_add_author(na_article_builder *b, const char *s, size_t n)
{
	return add_item(b, 0, s, n);
}

int na_article_builder_add_tag(na_article_builder *b, const char *s, size_t n)
{
	return add_item(b, 1, s, n);
}

int na_article_builder_set_raw(na_article_builder *b, const char *name, const void *mp, size_t n)
{
	if (!b || !name_ok(name) || !mp || n == 0)
		return NA_EINVAL;
	if (na__known_lookup(name, strlen(name)) >= 0)
		return NA_EINVAL;
	na_scan s;
	size_t mlen = 0;
	na_scan_init(&s, n, NA_MAX_DEPTH_DEFAULT - 2);
	if (na_scan_feed(&s, mp, n, &mlen) != 1 || mlen != n)
		return NA_EINVAL;
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	if (msgpack_sbuffer_write(&sb, mp, n)) {
		msgpack_sbuffer_destroy(&sb);
		return NA_ENOMEM;
	}
	return set_value(b, name, &sb);
}

int na_article_builder_unset(na_article_builder *b, const char *name)
{
	if (!b || !name)
		return NA_EINVAL;
	bfield *f = find_bfield(b, name);
	if (!f)
		return NA_ENOFIELD;
	if (f->list) {
		strlist *l = &b->lists[f->list - 1];
		msgpack_sbuffer_destroy(&l->sb);
		msgpack_sbuffer_init(&l->sb);
		l->n = 0;
	}
	free(f->name);
	free(f->val);
	size_t i = (size_t)(f - b->f);
	memmove(&b->f[i], &b->f[i + 1], (b->n - i - 1) * sizeof *f);
	b->n--;
	return 0;
}

int na_article_builder_finish(na_article_builder *b, na_article **out)
{
	if (!b || !out)
		return NA_EINVAL;
	if (!find_bfield(b, "guid") || !find_bfield(b, "published") || !find_bfield(b, "title"))
		return NA_EINVAL;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	int bad = 0;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	bad |= msgpack_pack_map(&pk, b->n);
	for (size_t i = 0; i < b->n && !bad; i++) {
		const bfield *f = &b->f[i];
		bad |= na_mp_pack_cstr(&pk, f->name);
		if (f->list) {
			const strlist *l = &b->lists[f->list - 1];
			bad |= msgpack_pack_array(&pk, l->n);
			if (l->sb.size)
				bad |= msgpack_sbuffer_write(&sb, l->sb.data, l->sb.size);
		} else {
			bad |= msgpack_sbuffer_write(&sb, (const char *)f->val, f->len);
		}
	}
	if (bad) {
		msgpack_sbuffer_destroy(&sb);
		return NA_ENOMEM;
	}
	size_t len = sb.size;
	return na__article_adopt((uint8_t *)msgpack_sbuffer_release(&sb), len, out);
}
