/*
 * timefmt.c - RFC 3339 parsing and formatting with our own calendar math.
 */
#include "timefmt.h"

#include <stdbool.h>
#include <stdio.h>

#include "rpc.h" /* NA_TS_MIN_SEC, NA_TS_MAX_SEC */

static bool is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

unsigned na_cal_days_in_month(int64_t y, unsigned m)
{
	static const unsigned char dim[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	if (m < 1 || m > 12)
		return 0;
	return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

/*
 * Shift the year to start in March so the leap day is the last day of the
 * "year"; then a 400-year era has exactly 146097 days and days within a
 * shifted year follow the 153-day five-month pattern.
 */
int64_t na_cal_days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;                               /* 0..399 */
	int64_t mp = m > 2 ? (int64_t)m - 3 : (int64_t)m + 9;        /* 0..11, March = 0 */
	int64_t doy = (153 * mp + 2) / 5 + (int64_t)d - 1;          /* 0..365 */
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;        /* 0..146096 */
	return era * 146097 + doe - 719468;                         /* 719468: 0000-03-01 .. 1970-01-01 */
}

void na_cal_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
	*m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

/* Reads exactly k digits at s[*i]; -1 when they are not all digits. */
static int digits(const char *s, size_t n, size_t *i, unsigned k, int64_t *v)
{
	int64_t x = 0;
	if (n - *i < k)
		return -1;
	for (unsigned j = 0; j < k; j++) {
		char c = s[*i + j];
		if (c < '0' || c > '9')
			return -1;
		x = x * 10 + (c - '0');
	}
	*i += k;
	*v = x;
	return 0;
}

#define FAIL(msg) do { if (why) *why = (msg); return -1; } while (0)

int na_rfc3339_parse(const char *s, size_t n, na_ts *out, const char **why)
{
	size_t i = 0;
	int64_t y, mo, d, h = 0, mi = 0, se = 0, off = 0;
	uint32_t ns = 0;

	if (!s || n == 0)
		FAIL("empty");
	if (digits(s, n, &i, 4, &y) || i >= n || s[i] != '-')
		FAIL("expected YYYY-MM-DD");
	i++;
	if (digits(s, n, &i, 2, &mo) || i >= n || s[i] != '-')
		FAIL("expected YYYY-MM-DD");
	i++;
	if (digits(s, n, &i, 2, &d))
		FAIL("expected YYYY-MM-DD");
	if (y < 1)
		FAIL("year outside 0001..9999");
	if (mo < 1 || mo > 12)
		FAIL("month out of range");
	if (d < 1 || d > (int64_t)na_cal_days_in_month(y, (unsigned)mo))
		FAIL("day out of range");
	if (i < n) {
		if (s[i] != 'T' && s[i] != 't' && s[i] != ' ')
			FAIL("expected 'T' after the date");
		i++;
		if (digits(s, n, &i, 2, &h) || i >= n || s[i] != ':')
			FAIL("expected HH:MM after the date");
		i++;
		if (digits(s, n, &i, 2, &mi))
			FAIL("expected HH:MM after the date");
		if (i < n && s[i] == ':') {
			i++;
			if (digits(s, n, &i, 2, &se))
				FAIL("expected two digits of seconds");
			if (i < n && (s[i] == '.' || s[i] == ',')) {
				unsigned k = 0;
				i++;
				while (i < n && s[i] >= '0' && s[i] <= '9') {
					if (++k > 9)
						FAIL("more than 9 fraction digits");
					ns = ns * 10 + (uint32_t)(s[i] - '0');
					i++;
				}
				if (k == 0)
					FAIL("no digits after the decimal point");
				for (; k < 9; k++)
					ns *= 10;
			}
		}
		if (h > 23)
			FAIL("hour out of range");
		if (mi > 59)
			FAIL("minute out of range");
		if (se == 60)
			FAIL("leap seconds are not supported");
		if (se > 59)
			FAIL("second out of range");
		if (i >= n)
			FAIL("missing time zone ('Z' or +HH:MM)");
		if (s[i] == 'Z' || s[i] == 'z') {
			i++;
		} else if (s[i] == '+' || s[i] == '-') {
			int sign = s[i] == '-' ? -1 : 1;
			int64_t oh, om = 0;
			i++;
			if (digits(s, n, &i, 2, &oh))
				FAIL("bad offset");
			if (i < n && s[i] == ':') {
				i++;
				if (digits(s, n, &i, 2, &om))
					FAIL("bad offset");
			} else if (i < n) {
				if (digits(s, n, &i, 2, &om))
					FAIL("bad offset");
			}
			if (oh > 23 || om > 59)
				FAIL("offset out of range");
			off = sign * (oh * 3600 + om * 60);
		} else {
			FAIL("bad time zone");
		}
	}
	if (i != n)
		FAIL("trailing characters");
	int64_t sec = na_cal_days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 +
		      mi * 60 + se - off;
	if (sec < NA_TS_MIN_SEC || sec > NA_TS_MAX_SEC)
		FAIL("year outside 0001..9999 in UTC");
	out->sec = sec;
	out->nsec = ns;
	return 0;
}

int na_rfc3339_format(na_ts ts, char *buf, size_t cap)
{
	if (ts.sec < NA_TS_MIN_SEC || ts.sec > NA_TS_MAX_SEC || ts.nsec >= 1000000000u)
		return -1;
	int64_t days = ts.sec / 86400, rem = ts.sec % 86400;
	if (rem < 0) {
		rem += 86400;
		days--;
	}
	int64_t y;
	unsigned m, d;
	na_cal_civil_from_days(days, &y, &m, &d);
	char frac[11] = "";
	if (ts.nsec) {
		uint32_t v = ts.nsec;
		int k = 9;
		while (v % 10 == 0) {
			v /= 10;
			k--;
		}
		snprintf(frac, sizeof frac, ".%0*u", k, (unsigned)v);
	}
	int len = snprintf(buf, cap, "%04d-%02u-%02uT%02d:%02d:%02d%sZ", (int)y, m, d,
			   (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60), frac);
	if (len < 0 || (size_t)len >= cap)
		return -1;
	return len;
}
