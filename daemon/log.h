/*
 * log.h - leveled logging to stderr. Under systemd (JOURNAL_STREAM set) each
 * line carries a "<N>" priority prefix so `journalctl -p` filters work.
 */
#ifndef NA_LOG_H
#define NA_LOG_H

enum na_log_level { NA_LOG_ERROR = 0, NA_LOG_WARN, NA_LOG_INFO, NA_LOG_DEBUG };

void na_log_init(void);
void na_log_set_level(int level);
int na_log_get_level(void);
/* Parses "error|warn|info|debug"; returns the level or -1. */
int na_log_parse_level(const char *s);
const char *na_log_level_name(int level);
void na_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) na_log(NA_LOG_ERROR, __VA_ARGS__)
#define log_warn(...) na_log(NA_LOG_WARN, __VA_ARGS__)
#define log_info(...) na_log(NA_LOG_INFO, __VA_ARGS__)
#define log_debug(...) na_log(NA_LOG_DEBUG, __VA_ARGS__)

#endif
