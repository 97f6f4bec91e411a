/*
 * timefmt.h - RFC 3339 times <-> na_ts {seconds, nanoseconds since 1970}.
 *
 * Pure functions, no globals, no locale, no libc time zone code: the
 * calendar arithmetic (proleptic Gregorian) is done here. Shared by the
 * newsarch CLI and newsarch-bench.
 *
 * Accepted on input (na_rfc3339_parse):
 *   YYYY-MM-DD                      midnight UTC
 *   YYYY-MM-DDTHH:MM[:SS[.F...]]Z   'T', 't' or one space between date
 *   ...+HH:MM / -HH:MM               and time; 'z' for 'Z'; 1 to 9
 *   ...+HHMM / +HH                   fraction digits; offsets up to 23:59
 * Years 0001..9999 after conversion to UTC. A leap second (":60") is
 * refused: na_ts cannot represent it.
 *
 * Output (na_rfc3339_format) is always UTC with 'Z' and the shortest fraction
 * that keeps every nanosecond: "2022-01-08T07:52:00Z",
 * "1987-02-26T15:01:01.79Z".
 */
#ifndef NA_CLI_TIMEFMT_H
#define NA_CLI_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

#include "mp.h" /* na_ts */

/* Longest formatted time plus NUL: "9999-12-31T23:59:59.999999999Z". */
#define NA_RFC3339_BUFSZ 32

/*
 * Parses s[0..n) as an RFC 3339 time. Returns 0 and sets *out, or -1 and,
 * when why is not NULL, points *why at a static phrase saying what is
 * wrong ("month out of range", "year outside 0001..9999", ...).
 */
int na_rfc3339_parse(const char *s, size_t n, na_ts *out, const char **why);

/*
 * Formats ts into buf (cap bytes, NA_RFC3339_BUFSZ is always enough).
 * Returns the length written (without the NUL), or -1 when ts lies outside
 * years 0001..9999, nsec >= 1e9 or buf is too small.
 */
int na_rfc3339_format(na_ts ts, char *buf, size_t cap);

/* Days since 1970-01-01 of a proleptic Gregorian date (month 1..12). */
int64_t na_cal_days_from_civil(int64_t y, unsigned m, unsigned d);
/* The reverse: date of a day number. */
void na_cal_civil_from_days(int64_t days, int64_t *y, unsigned *m, unsigned *d);
/* Days in a month (1..12) of year y; 0 for a bad month. */
unsigned na_cal_days_in_month(int64_t y, unsigned m);

#endif
