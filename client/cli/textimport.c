/*
 * textimport.c - heuristics that turn a saved news page (plain text) into
 * an article. The rules are listed in textimport.h; keep them in sync.
 */
#include "textimport.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "rpc.h"
#include "timefmt.h"

#define MAX_TEXT_BYTES (16u << 20) /* a page larger than this is refused */
#define MAX_SEG 512                /* longest line part examined */
#define MAX_AUTHORS 32

/* locale-free character classes */
static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }
static bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || is_upper(c); }
static bool is_alnum(char c) { return is_alpha(c) || is_digit(c); }
static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\f' || c == '\v'; }
static char lower(char c) { return is_upper(c) ? (char)(c + 32) : c; }
/* a byte that can be part of a word: ASCII alnum or any UTF-8 byte */
static bool is_wordc(char c) { return is_alnum(c) || (unsigned char)c >= 0x80; }

static bool ieq(const char *a, size_t an, const char *b)
{
	size_t bn = strlen(b);
	if (an != bn)
		return false;
	for (size_t i = 0; i < an; i++)
		if (lower(a[i]) != lower(b[i]))
			return false;
	return true;
}

static bool iprefix(const char *s, size_t n, const char *p)
{
	size_t pn = strlen(p);
	if (n < pn)
		return false;
	for (size_t i = 0; i < pn; i++)
		if (lower(s[i]) != lower(p[i]))
			return false;
	return true;
}

static bool isuffix(const char *s, size_t n, const char *p)
{
	size_t pn = strlen(p);
	return n >= pn && ieq(s + n - pn, pn, p);
}

static bool icontains(const char *s, size_t n, const char *p)
{
	size_t pn = strlen(p);
	for (size_t i = 0; i + pn <= n; i++)
		if (iprefix(s + i, n - i, p))
			return true;
	return false;
}

static size_t count_words(const char *s, size_t n)
{
	size_t w = 0;
	for (size_t i = 0; i < n; i++)
		if (is_wordc(s[i]) && (i == 0 || !is_wordc(s[i - 1])))
			w++;
	return w;
}

/* ---- zones ----------------------------------------------------------- */

enum { RULE_FIXED, RULE_US };

typedef struct zone {
	const char *name;
	int off;      /* minutes east of UTC (standard time for RULE_US) */
	int rule;
	bool america; /* numeric dates next to it are month/day */
} zone;

static const zone zones[] = {
	{ "UTC", 0, RULE_FIXED, false }, { "GMT", 0, RULE_FIXED, false },
	{ "Z", 0, RULE_FIXED, false }, { "BST", 60, RULE_FIXED, false },
	{ "IST", 330, RULE_FIXED, false }, { "CET", 60, RULE_FIXED, false },
	{ "CEST", 120, RULE_FIXED, false }, { "EET", 120, RULE_FIXED, false },
	{ "EEST", 180, RULE_FIXED, false }, { "WET", 0, RULE_FIXED, false },
	{ "WEST", 60, RULE_FIXED, false }, { "MSK", 180, RULE_FIXED, false },
	{ "JST", 540, RULE_FIXED, false }, { "KST", 540, RULE_FIXED, false },
	{ "HKT", 480, RULE_FIXED, false }, { "SGT", 480, RULE_FIXED, false },
	{ "PHT", 480, RULE_FIXED, false }, { "WIB", 420, RULE_FIXED, false },
	{ "PKT", 300, RULE_FIXED, false }, { "GST", 240, RULE_FIXED, false },
	{ "AEST", 600, RULE_FIXED, false }, { "AEDT", 660, RULE_FIXED, false },
	{ "ACST", 570, RULE_FIXED, false }, { "AWST", 480, RULE_FIXED, false },
	{ "NZST", 720, RULE_FIXED, false }, { "NZDT", 780, RULE_FIXED, false },
	{ "EST", -300, RULE_FIXED, true }, { "EDT", -240, RULE_FIXED, true },
	{ "CST", -360, RULE_FIXED, true }, { "CDT", -300, RULE_FIXED, true },
	{ "MST", -420, RULE_FIXED, true }, { "MDT", -360, RULE_FIXED, true },
	{ "PST", -480, RULE_FIXED, true }, { "PDT", -420, RULE_FIXED, true },
	{ "AKST", -540, RULE_FIXED, true }, { "AKDT", -480, RULE_FIXED, true },
	{ "HST", -600, RULE_FIXED, true },
	{ "ET", -300, RULE_US, true }, { "CT", -360, RULE_US, true },
	{ "MT", -420, RULE_US, true }, { "PT", -480, RULE_US, true },
};

static const zone *zone_find(const char *s, size_t n)
{
	for (size_t i = 0; i < sizeof zones / sizeof *zones; i++)
		if (strlen(zones[i].name) == n && !memcmp(zones[i].name, s, n))
			return &zones[i];
	return NULL;
}

/* [+-]H, [+-]HH, [+-]HH:MM, [+-]H:MM or [+-]HHMM at s (not followed by a
 * word character). Returns the bytes used (0: none) and sets *off. */
static size_t parse_offset(const char *s, size_t n, int *off)
{
	if (n < 2 || (s[0] != '+' && s[0] != '-') || !is_digit(s[1]))
		return 0;
	size_t i = 1, k = 0;
	while (i < n && is_digit(s[i]) && k < 5) {
		i++;
		k++;
	}
	int h, m = 0;
	if (k == 1 || k == 2) {
		h = k == 1 ? s[1] - '0' : (s[1] - '0') * 10 + (s[2] - '0');
		if (i + 2 < n && s[i] == ':' && is_digit(s[i + 1]) && is_digit(s[i + 2])) {
			m = (s[i + 1] - '0') * 10 + (s[i + 2] - '0');
			i += 3;
		}
	} else if (k == 4) {
		h = (s[1] - '0') * 10 + (s[2] - '0');
		m = (s[3] - '0') * 10 + (s[4] - '0');
	} else {
		return 0;
	}
	if ((i < n && is_wordc(s[i])) || h > 23 || m > 59)
		return 0;
	*off = (s[0] == '-' ? -1 : 1) * (h * 60 + m);
	return i;
}

int na_text_zone_offset(const char *name, int *minutes)
{
	size_t n = strlen(name);
	const zone *z = zone_find(name, n);
	if (z && z->rule != RULE_FIXED)
		return -2; /* one offset cannot stand for a zone that changes */
	if (z) {
		*minutes = z->off;
		return 0;
	}
	size_t k = 0;
	if (n > 3 && (!memcmp(name, "UTC", 3) || !memcmp(name, "GMT", 3)))
		k = 3;
	int off;
	if (parse_offset(name + k, n - k, &off) == n - k && n > k) {
		*minutes = off;
		return 0;
	}
	return -1;
}

/* ---- dates in one line part ------------------------------------------ */

typedef struct when {
	bool date, time, zone;
	int y, mo, d, h, mi, s;
	int off;             /* zone offset, minutes (standard for RULE_US) */
	int rule;
	bool america;
	bool numeric;        /* d/m vs m/d undecided: n1, n2 */
	int n1, n2;
} when;

static const char *const months[12] = { "january", "february", "march", "april", "may", "june",
	"july", "august", "september", "october", "november", "december" };

/* month name or its 3-letter abbreviation (also "sept"); 1..12 or 0 */
static int month_of(const char *s, size_t n)
{
	for (int m = 0; m < 12; m++) {
		if (ieq(s, n, months[m]))
			return m + 1;
		if (n == 3 && lower(s[0]) == months[m][0] && lower(s[1]) == months[m][1] &&
		    lower(s[2]) == months[m][2])
			return m + 1;
	}
	if (ieq(s, n, "sept"))
		return 9;
	return 0;
}

static bool weekday_word(const char *s, size_t n)
{
	static const char *const wd[] = { "monday", "tuesday", "wednesday", "thursday", "friday",
		"saturday", "sunday", "mon", "tue", "tues", "wed", "thu", "thur", "thurs", "fri",
		"sat", "sun" };
	for (size_t i = 0; i < sizeof wd / sizeof *wd; i++)
		if (ieq(s, n, wd[i]))
			return true;
	return false;
}

/* reads 1..maxd digits at s[*i]; returns the count (0: none) */
static int read_num(const char *s, size_t n, size_t *i, int maxd, int *v)
{
	int k = 0, x = 0;
	while (*i < n && is_digit(s[*i]) && k < maxd) {
		x = x * 10 + (s[*i] - '0');
		(*i)++;
		k++;
	}
	if (k && *i < n && is_digit(s[*i]))
		return 0; /* longer number than allowed */
	*v = x;
	return k;
}

static size_t skip_sp(const char *s, size_t n, size_t i)
{
	while (i < n && is_space(s[i]))
		i++;
	return i;
}

static size_t word_end(const char *s, size_t n, size_t i)
{
	while (i < n && is_alpha(s[i]))
		i++;
	return i;
}

/* ordinal suffix after a day number */
static size_t skip_ordinal(const char *s, size_t n, size_t i)
{
	size_t e = word_end(s, n, i);
	if (e - i == 2 && (ieq(s + i, 2, "st") || ieq(s + i, 2, "nd") || ieq(s + i, 2, "rd") ||
			   ieq(s + i, 2, "th")))
		return e;
	return i;
}

static void mark(bool *used, size_t a, size_t b)
{
	for (size_t i = a; i < b; i++)
		used[i] = true;
}

static bool boundary(const char *s, size_t i)
{
	return i == 0 || !is_wordc(s[i - 1]);
}

/* Tries a date at s[i]; returns its end (0: no date here). */
static size_t date_at(const char *s, size_t n, size_t i, when *w)
{
	size_t j = i;
	int a, b, c;
	int ka = read_num(s, n, &j, 4, &a);
	if (ka == 4 && j < n && (s[j] == '-' || s[j] == '/')) {
		char sep = s[j++];
		if (!read_num(s, n, &j, 2, &b) || j >= n || s[j] != sep)
			return 0;
		j++;
		if (!read_num(s, n, &j, 2, &c))
			return 0;
		w->y = a; w->mo = b; w->d = c;
		return j;
	}
	if (ka == 1 || ka == 2) {
		size_t k = j;
		if (k < n && (s[k] == '/' || s[k] == '.' || s[k] == '-')) {
			char sep = s[k++];
			if (read_num(s, n, &k, 2, &b) && k < n && s[k] == sep) {
				k++;
				if (read_num(s, n, &k, 4, &c) == 4) {
					w->numeric = true;
					w->n1 = a; w->n2 = b; w->y = c;
					return k;
				}
			}
			return 0;
		}
		/* day first: 8 January 2022, 8th of Jan. 2022 */
		k = skip_ordinal(s, n, j);
		k = skip_sp(s, n, k);
		size_t e = word_end(s, n, k);
		if (ieq(s + k, e - k, "of"))
			k = skip_sp(s, n, e), e = word_end(s, n, k);
		int m = e > k ? month_of(s + k, e - k) : 0;
		if (!m || e == k)
			return 0;
		k = e;
		if (k < n && s[k] == '.') k++;
		if (k < n && s[k] == ',') k++;
		k = skip_sp(s, n, k);
		if (read_num(s, n, &k, 4, &c) != 4)
			return 0;
		w->y = c; w->mo = m; w->d = a;
		return k;
	}
	if (ka == 0 && is_alpha(s[i])) {
		/* month first: January 8th 2022, Jan. 8, 2022 */
		size_t e = word_end(s, n, i);
		int m = month_of(s + i, e - i);
		if (!m)
			return 0;
		size_t k = e;
		if (k < n && s[k] == '.') k++;
		k = skip_sp(s, n, k);
		if (!read_num(s, n, &k, 2, &a))
			return 0;
		k = skip_ordinal(s, n, k);
		if (k < n && s[k] == ',') k++;
		k = skip_sp(s, n, k);
		if (read_num(s, n, &k, 4, &c) != 4)
			return 0;
		w->y = c; w->mo = m; w->d = a;
		return k;
	}
	return 0;
}

/* am/pm marker at s[i] (a.m., am, p.m, PM); returns its end or 0, and
 * sets *pm */
static size_t ampm_at(const char *s, size_t n, size_t i, bool *pm)
{
	if (i >= n || (lower(s[i]) != 'a' && lower(s[i]) != 'p'))
		return 0;
	*pm = lower(s[i]) == 'p';
	size_t k = i + 1;
	if (k < n && s[k] == '.') k++;
	if (k >= n || lower(s[k]) != 'm')
		return 0;
	k++;
	if (k < n && s[k] == '.') k++;
	if (k < n && is_wordc(s[k]))
		return 0;
	return k;
}

static size_t zone_at(const char *s, size_t n, size_t i, when *w);

/* Tries a time at s[i]; returns its end (0: none). */
static size_t time_at(const char *s, size_t n, size_t i, when *w)
{
	size_t j = i;
	int h, m = 0, sec = 0;
	if (!read_num(s, n, &j, 2, &h))
		return 0;
	bool colon = false, dot = false;
	if (j + 1 < n && (s[j] == ':' || s[j] == '.') && is_digit(s[j + 1])) {
		colon = s[j] == ':';
		dot = !colon;
		size_t k = j + 1;
		if (read_num(s, n, &k, 2, &m) != 2)
			return 0;
		j = k;
		if (colon && j < n && s[j] == ':') {
			k = j + 1;
			if (read_num(s, n, &k, 2, &sec) != 2)
				return 0;
			j = k;
			/* fraction of a second: ignored */
			if (j < n && s[j] == '.' && j + 1 < n && is_digit(s[j + 1]))
				for (j++; j < n && is_digit(s[j]); j++)
					;
		}
	}
	bool pm = false;
	size_t k = skip_sp(s, n, j);
	size_t e = ampm_at(s, n, k, &pm);
	if (e) {
		if (h < 1 || h > 12)
			return 0;
		h = h % 12 + (pm ? 12 : 0);
		j = e;
	} else if (!colon) {
		/* "18.05 BST" (a dot time needs a zone after it), "7.52" alone
		 * or "7" alone are not times */
		when z = *w;
		if (!dot || k == j || k >= n || !zone_at(s, n, k, &z))
			return 0;
	}
	if (h > 23 || m > 59 || sec > 59)
		return 0;
	w->h = h; w->mi = m; w->s = sec;
	return j;
}

/* Tries a zone at s[i]; returns its end (0: none). */
static size_t zone_at(const char *s, size_t n, size_t i, when *w)
{
	int off;
	size_t k;
	if ((k = parse_offset(s + i, n - i, &off))) {
		w->off = off;
		w->rule = RULE_FIXED;
		return i + k;
	}
	if (!is_upper(s[i]))
		return 0;
	size_t e = i;
	while (e < n && is_upper(s[e]))
		e++;
	if (e < n && is_wordc(s[e]))
		return 0;
	const zone *z = zone_find(s + i, e - i);
	if (!z)
		return 0;
	w->off = z->off;
	w->rule = z->rule;
	w->america = z->america;
	if (w->off == 0 && e < n) { /* UTC+5:30, GMT -4 */
		size_t k2 = skip_sp(s, n, e);
		if ((k = parse_offset(s + k2, n - k2, &off))) {
			w->off = off;
			w->america = false;
			return k2 + k;
		}
	}
	return e;
}

enum { LBL_NONE, LBL_PUBLISHED, LBL_UPDATED };

/* words a date line may carry besides the date itself */
static bool filler_word(const char *s, size_t n)
{
	static const char *const f[] = { "on", "at", "the", "of", "published", "posted",
		"updated", "last", "first", "modified", "date", "time", "originally", "local" };
	for (size_t i = 0; i < sizeof f / sizeof *f; i++)
		if (ieq(s, n, f[i]))
			return true;
	return weekday_word(s, n);
}

static int label_of(const char *s, size_t n)
{
	size_t i = 0;
	while (i < n && !is_alpha(s[i]))
		i++;
	s += i;
	n -= i;
	if (iprefix(s, n, "updated") || iprefix(s, n, "last updated") ||
	    iprefix(s, n, "modified") || iprefix(s, n, "last modified"))
		return LBL_UPDATED;
	if (iprefix(s, n, "published") || iprefix(s, n, "first published") ||
	    iprefix(s, n, "posted") || iprefix(s, n, "date:") || iprefix(s, n, "originally published"))
		return LBL_PUBLISHED;
	return LBL_NONE;
}

/*
 * Looks for a date line in s[0..n). Returns 1 and fills *w and *label when
 * the part is mostly a date (at most one other word, three when labelled).
 */
static int find_when(const char *s, size_t n, when *w, int *label)
{
	bool used[MAX_SEG];
	if (n == 0 || n >= MAX_SEG)
		return 0;
	memset(used, 0, n);
	memset(w, 0, sizeof *w);
	size_t de = 0, ds = 0;
	for (size_t i = 0; i < n && !w->date; i++) {
		if (!boundary(s, i) || !is_alnum(s[i]))
			continue;
		when t = *w;
		size_t e = date_at(s, n, i, &t);
		bool glued_t = e && e + 1 < n && (s[e] == 'T' || s[e] == 't') && is_digit(s[e + 1]);
		if (e && (e == n || !is_wordc(s[e]) || glued_t)) {
			*w = t;
			w->date = true;
			ds = i;
			de = e;
		}
	}
	if (!w->date)
		return 0;
	mark(used, ds, de);
	/* ISO "2022-01-08T13:22": the time is glued to the date */
	size_t tstart = de < n && (s[de] == 'T' || s[de] == 't') && de + 1 < n && is_digit(s[de + 1]) ? de + 1 : 0;
	for (size_t i = tstart ? tstart : 0; i < n && !w->time; i++) {
		if (used[i] || !is_digit(s[i]) || (i != tstart && !boundary(s, i)))
			continue;
		size_t e = time_at(s, n, i, w);
		if (e) {
			w->time = true;
			mark(used, i == tstart ? de : i, e);
			/* a zone glued to the time: Z or +05:30 */
			if (e < n && (s[e] == 'Z' || s[e] == 'z') && (e + 1 == n || !is_wordc(s[e + 1]))) {
				w->zone = true;
				w->off = 0;
				mark(used, e, e + 1);
			} else if (e < n && (s[e] == '+' || s[e] == '-')) {
				size_t z = zone_at(s, n, e, w);
				if (z) {
					w->zone = true;
					mark(used, e, z);
				}
			}
		}
	}
	for (size_t i = 0; i < n && !w->zone; i++) {
		if (used[i] || !(boundary(s, i) || s[i] == '+' || s[i] == '-'))
			continue;
		if ((s[i] == '+' || s[i] == '-') && !w->time)
			continue; /* a bare offset only makes sense with a time */
		size_t e = zone_at(s, n, i, w);
		if (e) {
			w->zone = true;
			mark(used, i, e);
		}
	}
	*label = label_of(s, n);
	/* what is left over must be filler */
	size_t other = 0;
	for (size_t i = 0; i < n; i++) {
		if (used[i] || !is_wordc(s[i]) || !boundary(s, i))
			continue;
		size_t e = i;
		while (e < n && is_wordc(s[e]) && !used[e])
			e++;
		if (!filler_word(s + i, e - i))
			other++;
		i = e;
	}
	return other <= (*label ? 3u : 1u);
}

static int64_t dow(int64_t days) /* 0 = Sunday */
{
	int64_t r = (days + 4) % 7;
	return r < 0 ? r + 7 : r;
}

/* day of month of the k-th (1-based, or -1 for last) Sunday of y-m */
static int64_t nth_sunday(int64_t y, unsigned m, int k)
{
	if (k > 0) {
		int64_t first = na_cal_days_from_civil(y, m, 1);
		int64_t d = (7 - dow(first)) % 7;
		return first + d + 7 * (k - 1);
	}
	unsigned dim = na_cal_days_in_month(y, m);
	int64_t last = na_cal_days_from_civil(y, m, dim);
	return last - dow(last);
}

/* US daylight saving time at a local standard-time instant (seconds)? */
static bool us_dst(int64_t y, int64_t local_std)
{
	int64_t start, end;
	if (y >= 2007) {
		start = nth_sunday(y, 3, 2);
		end = nth_sunday(y, 11, 1);
	} else if (y >= 1987) {
		start = nth_sunday(y, 4, 1);
		end = nth_sunday(y, 10, -1);
	} else if (y >= 1967) {
		start = nth_sunday(y, 4, -1);
		end = nth_sunday(y, 10, -1);
	} else {
		return false;
	}
	/* from 02:00 standard to 02:00 daylight (= 01:00 standard) */
	return local_std >= start * 86400 + 7200 && local_std < end * 86400 + 3600;
}

/* Resolves a found date into an instant. */
static int when_to_ts(when *w, int default_off, na_ts *out, const char **why)
{
	if (w->numeric) {
		bool mfirst = w->n1 <= 12 && (w->n2 > 12 || (w->zone && w->america));
		w->mo = mfirst ? w->n1 : w->n2;
		w->d = mfirst ? w->n2 : w->n1;
	}
	if (w->y < 1 || w->y > 9999 || w->mo < 1 || w->mo > 12 || w->d < 1 ||
	    w->d > (int)na_cal_days_in_month(w->y, (unsigned)w->mo)) {
		*why = "the date does not exist";
		return -1;
	}
	int64_t local = na_cal_days_from_civil(w->y, (unsigned)w->mo, (unsigned)w->d) * 86400 +
			w->h * 3600 + w->mi * 60 + w->s;
	int off = w->zone ? w->off : default_off;
	if (w->zone && w->rule == RULE_US && us_dst(w->y, local - 0))
		off += 60;
	int64_t sec = local - (int64_t)off * 60;
	if (sec < NA_TS_MIN_SEC || sec > NA_TS_MAX_SEC) {
		*why = "outside years 0001..9999";
		return -1;
	}
	out->sec = sec;
	out->nsec = 0;
	return 0;
}

/* ---- bylines --------------------------------------------------------- */

static bool role_part(const char *s, size_t n)
{
	static const char *const roles[] = { "reporter", "correspondent", "editor", "writer",
		"staff", "contributor", "bureau", "chief", "senior", "news", "agency", "press",
		"columnist", "analyst", "desk", "team", "reuters", "associated", "afp", "pti",
		"ians", "journalist", "producer", "photographer", "special" };
	if (iprefix(s, n, "in ") || iprefix(s, n, "from "))
		return true;
	for (size_t i = 0; i < sizeof roles / sizeof *roles; i++)
		if (icontains(s, n, roles[i]))
			return true;
	return false;
}

static bool name_like(const char *s, size_t n)
{
	size_t words = 0;
	for (size_t i = 0; i < n; i++) {
		if (!is_wordc(s[i]) || (i && is_wordc(s[i - 1])) )
			continue;
		words++;
		size_t e = i;
		while (e < n && (is_wordc(s[e]) || s[e] == '-' || s[e] == '\'' || s[e] == '.'))
			e++;
		bool particle = ieq(s + i, e - i, "de") || ieq(s + i, e - i, "van") ||
				ieq(s + i, e - i, "von") || ieq(s + i, e - i, "der") ||
				ieq(s + i, e - i, "bin") || ieq(s + i, e - i, "al") ||
				ieq(s + i, e - i, "da") || ieq(s + i, e - i, "la") || ieq(s + i, e - i, "le");
		if (!particle && !is_upper(s[i]) && (unsigned char)s[i] < 0x80)
			return false;
		i = e;
	}
	for (size_t i = 0; i < n; i++)
		if (is_digit(s[i]) || s[i] == ':' || s[i] == '@' || s[i] == '/')
			return false;
	return words >= 1 && words <= 5;
}

static void trim(const char **s, size_t *n)
{
	while (*n && (is_space(**s) || **s == ',' || **s == ';'))
		(*s)++, (*n)--;
	while (*n && (is_space((*s)[*n - 1]) || (*s)[*n - 1] == ',' || (*s)[*n - 1] == ';' ||
		      (*s)[*n - 1] == '.' || (*s)[*n - 1] == '|'))
		(*n)--;
}

typedef struct names {
	char *v[MAX_AUTHORS];
	size_t n;
} names;

static int add_name(names *a, const char *s, size_t n)
{
	for (size_t i = 0; i < a->n; i++)
		if (strlen(a->v[i]) == n && !memcmp(a->v[i], s, n))
			return 0;
	if (a->n == MAX_AUTHORS)
		return 0;
	char *c = malloc(n + 1);
	if (!c)
		return -1;
	memcpy(c, s, n);
	c[n] = '\0';
	a->v[a->n++] = c;
	return 0;
}

/* "By A, B and C, Staff Writer" -> names; returns 1 when s is a byline. */
static int parse_byline(const char *s, size_t n, names *out)
{
	static const char *const pre[] = { "by ", "by: ", "reported by:", "reported by ",
		"reporting by ",
		"written by:", "written by ", "words by ", "author:", "authors:", "story by " };
	size_t k = 0;
	for (size_t i = 0; i < sizeof pre / sizeof *pre && !k; i++)
		if (iprefix(s, n, pre[i]))
			k = strlen(pre[i]);
	if (!k || n > 160)
		return 0;
	s += k;
	n -= k;
	/* cut " for OUTLET", " - OUTLET" and "; Editing by ..." */
	for (size_t i = 0; i < n; i++)
		if ((i + 5 <= n && !memcmp(s + i, " for ", 5)) || (i + 3 <= n && !memcmp(s + i, " - ", 3)) ||
		    s[i] == ';') {
			n = i;
			break;
		}
	/* split on ",", " and ", " & " */
	const char *parts[MAX_AUTHORS + 4];
	size_t lens[MAX_AUTHORS + 4], np = 0, st = 0;
	for (size_t i = 0; i <= n && np < MAX_AUTHORS + 4; i++) {
		size_t skip = 0;
		if (i == n) skip = 1;
		else if (s[i] == ',') skip = 1;
		else if (i + 5 <= n && !memcmp(s + i, " and ", 5)) skip = 5;
		else if (i + 3 <= n && !memcmp(s + i, " & ", 3)) skip = 3;
		if (!skip)
			continue;
		parts[np] = s + st;
		lens[np++] = i - st;
		st = i + skip;
		i = st - 1;
	}
	names tmp = { .n = 0 };
	size_t found = 0;
	int rc = 0;
	for (size_t i = 0; i < np; i++) {
		const char *p = parts[i];
		size_t pn = lens[i];
		trim(&p, &pn);
		if (!pn)
			continue;
		if (role_part(p, pn) && found)
			continue; /* a role after the names */
		if (!name_like(p, pn)) {
			rc = 0;
			goto out;
		}
		if (add_name(&tmp, p, pn)) {
			rc = -1;
			goto out;
		}
		found++;
	}
	if (!found)
		goto out;
	for (size_t i = 0; i < tmp.n; i++)
		if (add_name(out, tmp.v[i], strlen(tmp.v[i]))) {
			rc = -1;
			goto out;
		}
	rc = 1;
out:
	for (size_t i = 0; i < tmp.n; i++)
		free(tmp.v[i]);
	return rc;
}

/* ---- clutter --------------------------------------------------------- */

static const char *const end_marks[] = { "related", "related stories", "related articles",
	"related content", "read more", "more from", "most read", "most popular", "recommended",
	"recommended for you", "comments", "you may also like", "more stories",
	"more on this story", "trending", "trending now", "top stories", "more in this section" };

static const char *const clutter_exact[] = { "advertisement", "advertisement - scroll to continue",
	"scroll to continue", "share", "share this", "share this article", "share this story",
	"share article", "tweet", "email", "e-mail", "print", "copy link", "facebook", "twitter",
	"linkedin", "whatsapp", "reddit", "subscribe", "subscribe now", "sign in", "log in",
	"login", "register", "menu", "search", "skip to content", "skip to main content",
	"listen to this article", "listen", "save", "save article", "gift this article",
	"close", "home", "sponsored", "sponsored content", "loading", "watch", "video",
	"newsletter", "follow", "see all", "back to top", "continue reading",
	"story continues below advertisement", "article continues below", "getty images",
	"reuters", "afp", "ap", "pti", "ians", "bloomberg", "ad", "x" };

static const char *const clutter_prefix[] = { "follow:", "follow us", "follow @", "image credit",
	"image:", "image source", "photo:", "photo credit", "photograph:", "photos:", "picture:",
	"pictures:", "picture credit", "caption:", "file photo", "read more:", "read more -",
	"also read", "related:", "related stories:", "see also:", "subscribe to ", "subscribe for",
	"sign up", "sign-up", "get our newsletter", "newsletter:", "copyright", "\xc2\xa9",
	"(c) ", "all rights reserved", "click here", "tap here", "download the app",
	"download our app", "share on ", "share via", "filed under", "tags:", "topics:",
	"listen to this", "join our", "watch:", "watch now", "video:", "advertisement",
	"this article was", "more from ", "our standards", "leave a comment",
	"editing by", "additional reporting" };

/* line already trimmed */
static bool clutter(const char *s, size_t n)
{
	size_t m = n;
	while (m && (s[m - 1] == ':' || s[m - 1] == '.' || is_space(s[m - 1])))
		m--;
	for (size_t i = 0; i < sizeof clutter_exact / sizeof *clutter_exact; i++)
		if (ieq(s, m, clutter_exact[i]))
			return true;
	for (size_t i = 0; i < sizeof clutter_prefix / sizeof *clutter_prefix; i++)
		if (iprefix(s, n, clutter_prefix[i]))
			return true;
	if (isuffix(s, n, "(getty images)") || isuffix(s, n, "/ getty images") ||
	    isuffix(s, n, "/getty images") || isuffix(s, n, "| getty images"))
		return true;
	/* a caption ending with a picture credit in parentheses */
	if (n && s[n - 1] == ')') {
		size_t o = n - 1;
		while (o && s[o] != '(')
			o--;
		if (s[o] == '(' && (icontains(s + o, n - o, "photo") || icontains(s + o, n - o, "images") ||
				    icontains(s + o, n - o, "credit") || icontains(s + o, n - o, "file pic")))
			return true;
	}
	/* a caption with its credit: "A street in Leeds. Photograph: A Name/PA" */
	if ((icontains(s, n, " photograph: ") || icontains(s, n, " photo: ") ||
	     icontains(s, n, " picture: ") || icontains(s, n, " image: ")) && count_words(s, n) <= 30)
		return true;
	/* "5 min read", "12 comments" */
	size_t i = 0;
	while (i < n && is_digit(s[i]))
		i++;
	if (i && (ieq(s + i, m - i, " min read") || ieq(s + i, m - i, " mins read") ||
		  ieq(s + i, m - i, " minute read") || ieq(s + i, m - i, " minutes read") ||
		  ieq(s + i, m - i, " comments") || ieq(s + i, m - i, " comment")))
		return true;
	/* "Updated 3 hours ago" */
	if (label_of(s, n) != LBL_NONE && isuffix(s, m, " ago") && count_words(s, m) <= 5)
		return true;
	/* breadcrumbs: Home > World > Asia */
	if ((icontains(s, n, " > ") || icontains(s, n, " \xc2\xbb ") || icontains(s, n, " \xe2\x80\xba ") ||
	     icontains(s, n, " / ")) && count_words(s, n) <= 10 && s[n - 1] != '.' &&
	    !icontains(s, n, ", "))
		return true;
	return false;
}

static bool end_mark(const char *s, size_t n)
{
	size_t m = n;
	while (m && (s[m - 1] == ':' || is_space(s[m - 1])))
		m--;
	for (size_t i = 0; i < sizeof end_marks / sizeof *end_marks; i++)
		if (ieq(s, m, end_marks[i]))
			return true;
	return iprefix(s, m, "more from ") && count_words(s, m) <= 6 && s[m - 1] != '.';
}

/* ---- the page -------------------------------------------------------- */

enum { L_BLANK, L_DROP, L_META, L_TEXT, L_END };

typedef struct line {
	const char *s;
	size_t n;
	int kind;
} line;

typedef struct found_when {
	when w;
	int label;
	bool have;
} found_when;

static uint64_t fnv1a64(const char *s, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

/* splits a line into parts at " | ", " · ", " • " */
static size_t split_parts(const char *s, size_t n, const char **ps, size_t *pl, size_t max)
{
	size_t np = 0, st = 0;
	for (size_t i = 0; i <= n && np < max; i++) {
		size_t skip = 0;
		if (i == n) skip = 1;
		else if (i + 3 <= n && !memcmp(s + i, " | ", 3)) skip = 3;
		else if (i + 4 <= n && !memcmp(s + i, " \xc2\xb7 ", 4)) skip = 4;
		else if (i + 5 <= n && !memcmp(s + i, " \xe2\x80\xa2 ", 5)) skip = 5;
		else if (s[i] == '\t') skip = 1;
		if (!skip)
			continue;
		const char *p = s + st;
		size_t l = i - st;
		while (l && is_space(*p)) p++, l--;
		while (l && is_space(p[l - 1])) l--;
		if (l) {
			ps[np] = p;
			pl[np++] = l;
		}
		st = i + skip;
		i = st - 1;
	}
	return np;
}

#define TFAIL(...) do { snprintf(err, errcap, __VA_ARGS__); rc = -1; goto out; } while (0)

static int set_time(json_t *o, const char *key, na_ts ts)
{
	char buf[NA_RFC3339_BUFSZ];
	if (na_rfc3339_format(ts, buf, sizeof buf) < 0)
		return -1;
	return json_object_set_new(o, key, json_string(buf));
}

int na_text_extract(const char *text, size_t len, const na_text_opts *opts, json_t **out,
		    char *err, size_t errcap)
{
	int rc = 0;
	char *buf = NULL;
	line *lines = NULL;
	names authors = { .n = 0 };
	json_t *o = NULL;
	char *body = NULL;
	found_when pub = { .have = false }, upd = { .have = false }, plain = { .have = false };

	if (len > MAX_TEXT_BYTES)
		TFAIL("page is %zu bytes, more than %u", len, MAX_TEXT_BYTES);
	if (!na_json_utf8_valid(text, len))
		TFAIL("not UTF-8 text");
	/* copy, without a BOM, CRs, and with no-break spaces made spaces */
	buf = malloc(len + 1);
	if (!buf)
		TFAIL("out of memory");
	size_t bn = 0, nlines = 1;
	size_t i0 = len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3) ? 3 : 0;
	for (size_t i = i0; i < len; i++) {
		if (text[i] == '\r')
			continue;
		if (text[i] == '\xc2' && i + 1 < len && text[i + 1] == '\xa0') {
			buf[bn++] = ' ';
			i++;
			continue;
		}
		if (text[i] == '\0')
			TFAIL("not text: contains a NUL byte");
		if (text[i] == '\n')
			nlines++;
		buf[bn++] = text[i];
	}
	buf[bn] = '\0';
	lines = calloc(nlines, sizeof *lines);
	if (!lines)
		TFAIL("out of memory");
	size_t nl = 0;
	for (size_t st = 0; st <= bn;) {
		size_t e = st;
		while (e < bn && buf[e] != '\n')
			e++;
		const char *s = buf + st;
		size_t n = e - st;
		while (n && is_space(*s)) s++, n--;
		while (n && is_space(s[n - 1])) n--;
		lines[nl].s = s;
		lines[nl].n = n;
		nl++;
		st = e + 1;
	}

	/* classify */
	size_t ntext = 0;
	for (size_t i = 0; i < nl; i++) {
		line *L = &lines[i];
		if (L->n == 0) {
			L->kind = L_BLANK;
			continue;
		}
		if (ntext >= 2 && end_mark(L->s, L->n)) {
			L->kind = L_END;
			nl = i + 1;
			break;
		}
		if (clutter(L->s, L->n) || end_mark(L->s, L->n)) {
			L->kind = L_DROP;
			continue;
		}
		const char *ps[16];
		size_t pl[16];
		size_t np = split_parts(L->s, L->n, ps, pl, 16);
		size_t meta = 0, shortp = 0;
		for (size_t p = 0; p < np; p++) {
			when w;
			int label;
			int b = parse_byline(ps[p], pl[p], &authors);
			if (b < 0)
				TFAIL("out of memory");
			if (b) {
				meta++;
				continue;
			}
			/* "Posted on March 3, 2023 by Sam Whitfield" */
			size_t byk = 0;
			for (size_t q = 1; q + 4 <= pl[p] && !byk; q++)
				if (ieq(ps[p] + q, 4, " by "))
					byk = q;
			if (byk && find_when(ps[p], byk, &w, &label)) {
				names tmp = { .n = 0 };
				int b2 = parse_byline(ps[p] + byk + 1, pl[p] - byk - 1, &tmp);
				for (size_t t = 0; t < tmp.n; t++) {
					if (b2 > 0 && add_name(&authors, tmp.v[t], strlen(tmp.v[t])))
						b2 = -1;
					free(tmp.v[t]);
				}
				if (b2 < 0)
					TFAIL("out of memory");
				if (b2 > 0) {
					found_when *f = label == LBL_PUBLISHED ? &pub : label == LBL_UPDATED ? &upd : &plain;
					if (!f->have) {
						f->have = true;
						f->w = w;
						f->label = label;
					}
					meta++;
					continue;
				}
			}
			if (find_when(ps[p], pl[p], &w, &label)) {
				found_when *f = label == LBL_PUBLISHED ? &pub : label == LBL_UPDATED ? &upd : &plain;
				if (!f->have) {
					f->have = true;
					f->w = w;
					f->label = label;
				}
				meta++;
				continue;
			}
			if (clutter(ps[p], pl[p])) {
				meta++;
				continue;
			}
			if (count_words(ps[p], pl[p]) <= 2)
				shortp++;
		}
		if (np && meta == np) {
			L->kind = L_META;
		} else if (np >= 3 && meta + shortp == np && shortp) {
			L->kind = L_DROP; /* a navigation bar: World | Business | Tech */
		} else {
			L->kind = L_TEXT;
			ntext++;
		}
	}

	/* the title: the first line of 3+ words or 16+ bytes; an ALL CAPS one
	 * is a masthead when another such line comes before the first
	 * byline/date line. Shorter lines before it are kickers. */
	bool have_title = false;
	size_t title_idx = 0, first_meta = nl;
	for (size_t i = 0; i < nl; i++)
		if (lines[i].kind == L_META) {
			first_meta = i;
			break;
		}
	for (size_t i = 0; i < nl && !have_title; i++) {
		line *L = &lines[i];
		if (L->kind != L_TEXT)
			continue;
		if (count_words(L->s, L->n) < 3 && L->n < 16) {
			L->kind = L_DROP;
			continue;
		}
		bool caps = true;
		for (size_t k = 0; k < L->n; k++)
			if (L->s[k] >= 'a' && L->s[k] <= 'z')
				caps = false;
		if (caps && i < first_meta) {
			bool other = false;
			for (size_t k = i + 1; k < first_meta; k++)
				if (lines[k].kind == L_TEXT &&
				    (count_words(lines[k].s, lines[k].n) >= 3 || lines[k].n >= 16))
					other = true;
			if (other) {
				L->kind = L_DROP;
				continue;
			}
		}
		have_title = true;
		title_idx = i;
	}

	found_when *pf = pub.have ? &pub : plain.have ? &plain : upd.have ? &upd : NULL;
	if (!pf)
		TFAIL("no publication date found (looked for a date line such as "
		      "\"Published 13:22 IST, January 8th 2022\" or \"Jan. 8, 2022 7:52 a.m. ET\")");
	if (!have_title)
		TFAIL("no headline found");

	const char *why = NULL;
	na_ts pts, uts;
	if (when_to_ts(&pf->w, opts->default_offset_min, &pts, &why))
		TFAIL("publication date: %s", why);
	bool have_upd = upd.have && pf != &upd;
	if (have_upd && when_to_ts(&upd.w, opts->default_offset_min, &uts, &why))
		TFAIL("update date: %s", why);

	/* body */
	bool blank_mode = false;
	{
		bool seen_text = false, gap = false;
		for (size_t i = title_idx + 1; i < nl && lines[i].kind != L_END; i++) {
			if (lines[i].kind == L_TEXT) {
				if (seen_text && gap)
					blank_mode = true;
				seen_text = true;
				gap = false;
			} else if (lines[i].kind == L_BLANK) {
				gap = true;
			}
		}
	}
	size_t cap = bn + 2 * nl + 1, blen = 0;
	body = malloc(cap);
	if (!body)
		TFAIL("out of memory");
	bool in_para = false;
	for (size_t i = title_idx + 1; i < nl && lines[i].kind != L_END; i++) {
		line *L = &lines[i];
		if (L->kind != L_TEXT) {
			if (L->kind == L_BLANK || L->kind == L_DROP || L->kind == L_META)
				in_para = false;
			continue;
		}
		if (in_para && blank_mode) {
			body[blen++] = ' ';
		} else if (blen) {
			body[blen++] = '\n';
			body[blen++] = '\n';
		}
		/* (cap: every line adds at most its length plus 2) */
		memcpy(body + blen, L->s, L->n);
		blen += L->n;
		in_para = true;
	}

	char guidbuf[40];
	const char *guid = opts->guid ? opts->guid : opts->url;
	if (!guid) {
		snprintf(guidbuf, sizeof guidbuf, "text:%016llx",
			 (unsigned long long)fnv1a64(text, len));
		guid = guidbuf;
	}
	o = json_object();
	if (!o)
		TFAIL("out of memory");
	json_t *au = NULL;
	if (json_object_set_new(o, "guid", json_string(guid)) || set_time(o, "published", pts) ||
	    (have_upd && set_time(o, "updated", uts)) ||
	    json_object_set_new(o, "title", json_stringn(lines[title_idx].s, lines[title_idx].n)))
		TFAIL("cannot build the article (guid, url or source not UTF-8?)");
	if (authors.n) {
		au = json_array();
		if (!au || json_object_set_new(o, "authors", au))
			TFAIL("out of memory");
		for (size_t i = 0; i < authors.n; i++)
			if (json_array_append_new(au, json_string(authors.v[i])))
				TFAIL("out of memory");
	}
	if (json_object_set_new(o, "body", json_stringn(body, blen)) ||
	    (opts->source && json_object_set_new(o, "source", json_string(opts->source))) ||
	    (opts->url && json_object_set_new(o, "url", json_string(opts->url))))
		TFAIL("cannot build the article (url or source not UTF-8?)");
	*out = o;
	o = NULL;
out:
	json_decref(o);
	for (size_t i = 0; i < authors.n; i++)
		free(authors.v[i]);
	free(body);
	free(lines);
	free(buf);
	return rc;
}
