/*
 * test_cli_timefmt.c - RFC 3339 parsing/formatting of the newsarch CLI.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../client/cli/timefmt.c"

static na_ts P(const char *s)
{
	na_ts t = { 0, 0 };
	const char *why = NULL;
	int rc = na_rfc3339_parse(s, strlen(s), &t, &why);
	if (rc)
		fail_msg("parse \"%s\": %s", s, why ? why : "?");
	return t;
}

static void assert_bad(const char *s, const char *why_part)
{
	na_ts t = { 0, 0 };
	const char *why = NULL;
	if (na_rfc3339_parse(s, strlen(s), &t, &why) == 0)
		fail_msg("\"%s\" was accepted", s);
	assert_non_null(why);
	if (why_part && !strstr(why, why_part))
		fail_msg("\"%s\": reason \"%s\" lacks \"%s\"", s, why, why_part);
}

static const char *F(na_ts t, char *buf)
{
	int n = na_rfc3339_format(t, buf, NA_RFC3339_BUFSZ);
	assert_true(n > 0);
	assert_int_equal(strlen(buf), (size_t)n);
	return buf;
}

static void test_known_values(void **st)
{
	(void)st;
	na_ts t = P("1970-01-01T00:00:00Z");
	assert_int_equal(t.sec, 0);
	assert_int_equal(t.nsec, 0);
	t = P("2022-01-08T07:52:00Z");
	assert_int_equal(t.sec, 1641628320);
	t = P("2022-01-08");
	assert_int_equal(t.sec, 1641600000);
	assert_int_equal(t.nsec, 0);
	t = P("1987-02-26T15:01:01.790Z");
	assert_int_equal(t.sec, 541350061);
	assert_int_equal(t.nsec, 790000000);
	t = P("2038-01-19T03:14:08Z"); /* past int32 */
	assert_int_equal(t.sec, 2147483648LL);
	t = P("0001-01-01T00:00:00Z");
	assert_int_equal(t.sec, -62135596800LL);
	t = P("9999-12-31T23:59:59.999999999Z");
	assert_int_equal(t.sec, 253402300799LL);
	assert_int_equal(t.nsec, 999999999);
}

static void test_offsets(void **st)
{
	(void)st;
	/* 13:22 IST (+05:30) is 07:52 UTC */
	assert_int_equal(P("2022-01-08T13:22:00+05:30").sec, P("2022-01-08T07:52:00Z").sec);
	assert_int_equal(P("2022-01-08T02:52:00-05:00").sec, P("2022-01-08T07:52:00Z").sec);
	assert_int_equal(P("2022-01-08T02:52:00-0500").sec, P("2022-01-08T07:52:00Z").sec);
	assert_int_equal(P("2022-01-08T09:52+02").sec, P("2022-01-08T07:52:00Z").sec);
	assert_int_equal(P("2022-01-08t07:52:00z").sec, P("2022-01-08T07:52:00Z").sec);
	assert_int_equal(P("2022-01-08 07:52:00Z").sec, P("2022-01-08T07:52:00Z").sec);
	assert_int_equal(P("2022-01-08T07:52:00-00:00").sec, P("2022-01-08T07:52:00Z").sec);
	/* an offset that crosses the day, month and year boundary */
	assert_int_equal(P("2022-01-01T01:00:00+09:00").sec, P("2021-12-31T16:00:00Z").sec);
	assert_int_equal(P("2021-12-31T23:30:00-01:00").sec, P("2022-01-01T00:30:00Z").sec);
	/* minutes without seconds */
	assert_int_equal(P("2022-01-08T07:52Z").sec, 1641628320);
}

static void test_fractions(void **st)
{
	(void)st;
	assert_int_equal(P("2022-01-08T07:52:00.5Z").nsec, 500000000);
	assert_int_equal(P("2022-01-08T07:52:00.000000001Z").nsec, 1);
	assert_int_equal(P("2022-01-08T07:52:00.123456789Z").nsec, 123456789);
	assert_int_equal(P("2022-01-08T07:52:00,25Z").nsec, 250000000);
	assert_bad("2022-01-08T07:52:00.1234567891Z", "9 fraction");
	assert_bad("2022-01-08T07:52:00.Z", "decimal point");
}

static void test_pre_1970_and_leap_years(void **st)
{
	(void)st;
	char buf[NA_RFC3339_BUFSZ];
	na_ts t = P("1969-12-31T23:59:59Z");
	assert_int_equal(t.sec, -1);
	assert_string_equal(F(t, buf), "1969-12-31T23:59:59Z");
	t = P("1969-12-31T23:59:59.75Z");
	assert_int_equal(t.sec, -1);
	assert_int_equal(t.nsec, 750000000);
	assert_string_equal(F(t, buf), "1969-12-31T23:59:59.75Z");
	t = P("1900-03-01T00:00:00Z");
	assert_int_equal(t.sec, -2203891200LL);
	P("2000-02-29");  /* divisible by 400: leap */
	P("2024-02-29");
	P("1600-02-29");
	assert_bad("1900-02-29", "day");  /* divisible by 100 only: not leap */
	assert_bad("2023-02-29", "day");
	assert_bad("2100-02-29", "day");
	/* day after Feb 29 in a leap year */
	assert_int_equal(P("2024-03-01").sec - P("2024-02-28").sec, 2 * 86400);
	assert_int_equal(P("2023-03-01").sec - P("2023-02-28").sec, 86400);
}

static void test_round_trip_sweep(void **st)
{
	(void)st;
	char buf[NA_RFC3339_BUFSZ];
	/* every day over the whole supported range in steps, plus odd seconds */
	for (int64_t s = NA_TS_MIN_SEC; s <= NA_TS_MAX_SEC; s += 86400LL * 97 + 3607) {
		for (uint32_t ns = 0; ns < 1000000000u; ns += 333333333u) {
			na_ts t = { s, ns }, u;
			F(t, buf);
			assert_int_equal(na_rfc3339_parse(buf, strlen(buf), &u, NULL), 0);
			assert_int_equal(u.sec, t.sec);
			assert_int_equal(u.nsec, t.nsec);
		}
	}
	/* calendar: consecutive days map to consecutive dates */
	int64_t y0; unsigned m0, d0;
	na_cal_civil_from_days(-800000, &y0, &m0, &d0);
	for (int64_t z = -800000; z < 800000; z++) {
		int64_t y; unsigned m, d;
		na_cal_civil_from_days(z, &y, &m, &d);
		assert_int_equal(na_cal_days_from_civil(y, m, d), z);
		assert_true(d >= 1 && d <= na_cal_days_in_month(y, m));
	}
}

static void test_format(void **st)
{
	(void)st;
	char buf[NA_RFC3339_BUFSZ];
	assert_string_equal(F((na_ts){ 1641628320, 0 }, buf), "2022-01-08T07:52:00Z");
	assert_string_equal(F((na_ts){ 541350061, 790000000 }, buf), "1987-02-26T15:01:01.79Z");
	assert_string_equal(F((na_ts){ 0, 1 }, buf), "1970-01-01T00:00:00.000000001Z");
	assert_string_equal(F((na_ts){ 0, 100000 }, buf), "1970-01-01T00:00:00.0001Z");
	assert_string_equal(F((na_ts){ NA_TS_MIN_SEC, 0 }, buf), "0001-01-01T00:00:00Z");
	assert_string_equal(F((na_ts){ NA_TS_MAX_SEC, 999999999 }, buf),
			    "9999-12-31T23:59:59.999999999Z");
	assert_int_equal(na_rfc3339_format((na_ts){ NA_TS_MAX_SEC + 1, 0 }, buf, sizeof buf), -1);
	assert_int_equal(na_rfc3339_format((na_ts){ NA_TS_MIN_SEC - 1, 0 }, buf, sizeof buf), -1);
	assert_int_equal(na_rfc3339_format((na_ts){ 0, 1000000000u }, buf, sizeof buf), -1);
	assert_int_equal(na_rfc3339_format((na_ts){ 0, 0 }, buf, 10), -1);
}

static void test_bad_input(void **st)
{
	(void)st;
	assert_bad("", "empty");
	assert_bad("yesterday", NULL);
	assert_bad("2022-1-8", NULL);
	assert_bad("2022-13-01", "month");
	assert_bad("2022-00-01", "month");
	assert_bad("2022-04-31", "day");
	assert_bad("2022-01-00", "day");
	assert_bad("0000-12-31", "year");
	assert_bad("2022-01-08T24:00:00Z", "hour");
	assert_bad("2022-01-08T23:60:00Z", "minute");
	assert_bad("2022-01-08T23:59:60Z", "leap");
	assert_bad("2022-01-08T23:59:61Z", "second");
	assert_bad("2022-01-08T07:52:00", "time zone");
	assert_bad("2022-01-08T07:52:00+24:00", "offset");
	assert_bad("2022-01-08T07:52:00+05:60", "offset");
	assert_bad("2022-01-08T07:52:00Zjunk", "trailing");
	assert_bad("2022-01-08X07:52:00Z", NULL);
	assert_bad("2022-01-08T", NULL);
	assert_bad("0001-01-01T00:00:00+01:00", "year"); /* year 0 in UTC */
	assert_bad("9999-12-31T23:00:00-01:00", "year"); /* year 10000 in UTC */
	/* not NUL-terminated: only n bytes are read */
	na_ts t;
	assert_int_equal(na_rfc3339_parse("2022-01-08XYZ", 10, &t, NULL), 0);
	assert_int_equal(t.sec, 1641600000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known_values),
		cmocka_unit_test(test_offsets),
		cmocka_unit_test(test_fractions),
		cmocka_unit_test(test_pre_1970_and_leap_years),
		cmocka_unit_test(test_round_trip_sweep),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_bad_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
