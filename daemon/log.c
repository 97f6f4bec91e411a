/*
 * log.c - leveled logging to stderr, with journald priority prefixes when
 * stderr is the journal. One write(2) per line so threads do not interleave.
 */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int cur_level = NA_LOG_INFO;
static int journal;

static const char *const names[] = { "error", "warn", "info", "debug" };
static const int prio[] = { 3, 4, 6, 7 }; /* syslog priorities */

void na_log_init(void)
{
	journal = getenv("JOURNAL_STREAM") != NULL;
}

void na_log_set_level(int level) { atomic_store(&cur_level, level); }
int na_log_get_level(void) { return atomic_load(&cur_level); }

int na_log_parse_level(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	if (strcmp(s, "warning") == 0)
		return NA_LOG_WARN;
	return -1;
}

const char *na_log_level_name(int level)
{
	return level >= 0 && level < 4 ? names[level] : "?";
}

void na_log(int level, const char *fmt, ...)
{
	if (level > atomic_load(&cur_level))
		return;
	char line[2048];
	size_t n;
	if (journal) {
		n = (size_t)snprintf(line, sizeof line, "<%d>", prio[level]);
	} else {
		struct timespec ts;
		struct tm tm;
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
		n += (size_t)snprintf(line + n, sizeof line - n, ".%03ldZ %-5s ",
				      ts.tv_nsec / 1000000, names[level]);
	}
	va_list ap;
	va_start(ap, fmt);
	int w = vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
	va_end(ap);
	if (w < 0)
		w = 0;
	n += (size_t)w;
	if (n > sizeof line - 2)
		n = sizeof line - 2;
	line[n++] = '\n';
	ssize_t r = write(2, line, n);
	(void)r;
}
