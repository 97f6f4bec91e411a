/*
 * textimport.h - one article from a plain-text news page
 * (`newsarch import --format text`).
 *
 * The text is what a browser's "save as text" or a copy of a news page
 * gives: navigation, headline, byline, date line, paragraphs, captions,
 * share buttons and other clutter. The extractor finds:
 *
 *  title    the first line of at least three words (or 16 characters) that
 *           is not clutter, a byline or a date line.
 *  authors  from bylines: "By NAME", "By NAME and NAME", "By A, B and C",
 *           "Reported by: NAME", "Written by NAME", "Author: NAME"; roles
 *           after a comma ("Staff Reporter", "in London") and " for OUTLET"
 *           are dropped.
 *  published / updated
 *           from date lines: a line (or a part of a line between " | ",
 *           " · " or " • ") made mostly of a date, optionally labelled
 *           "Published", "Posted", "First published", "Date:" (publication)
 *           or "Updated", "Last updated", "Modified" (update). Labelled
 *           publication beats an unlabelled date, which beats an update
 *           time used alone (then published = that time and no updated).
 *           Date forms: 2022-01-08[T13:22[:05][+05:30|Z]], January 8th 2022,
 *           Jan. 8, 2022, 8 January 2022, Saturday 8th of January, 2022,
 *           2022/01/08, and numeric 08/01/2022 (also with . or -).
 *           NUMERIC DAY/MONTH ORDER: day/month/year, except month/day/year
 *           when the zone given with it is North American (ET, EST, EDT,
 *           CT, MT, PT...); a first number above 12 forces day/month and a
 *           second number above 12 forces month/day.
 *           Times: 13:22, 13:22:05, 7:52 a.m., 7.52pm, 7 PM.
 *           Zones (upper case only): UTC, GMT, Z, BST, IST (India),
 *           CET/CEST, EET/EEST, WET/WEST, MSK, JST, KST, HKT, SGT, PHT, WIB,
 *           PKT, GST, AEST/AEDT, ACST, AWST, NZST/NZDT, EST/EDT, CST/CDT,
 *           MST/MDT, PST/PDT, AKST, HST, and ET/CT/MT/PT (US daylight-saving
 *           rules decide), also "UTC+5:30", "GMT-4", "+05:30".
 *           A time without a zone is in opts->default_offset_min (UTC
 *           unless --tz); a date without a time is midnight in that zone.
 *           A date without a year is never used. No date at all: refused.
 *  body     the remaining lines after the title: lines separated by blank
 *           lines form paragraphs (their lines joined by one space); when
 *           the body has no blank line, each line is a paragraph.
 *           Paragraphs are joined by "\n\n".
 *  clutter  dropped anywhere: "Advertisement", "Share", "Share this
 *           article", "Tweet", "Email", "Print", "Follow: ...", "Image
 *           credit: ...", "Photo: ...", "(Getty Images)" and captions
 *           ending with a picture credit, breadcrumbs "Home > World > Asia",
 *           "Subscribe...", "Sign up for ... newsletter", "Read more: ...",
 *           "Related: ...", "Also read: ...", "Listen to this article",
 *           "5 min read", "Skip to content", copyright lines, "Comments".
 *           A line that is only "Related", "Read more", "More from ...",
 *           "Most read", "Recommended" or "Comments" (optionally with a
 *           colon) ends the body.
 *  guid     opts->guid, else opts->url, else "text:" followed by the
 *           16 hex digits of the FNV-1a 64-bit hash of the file's bytes
 *           (so the same file always gets the same guid, whatever its name).
 *
 * Fields are emitted in the order guid, published, updated, title,
 * authors, body, source, url (absent ones left out; body always present).
 */
#ifndef NA_CLI_TEXTIMPORT_H
#define NA_CLI_TEXTIMPORT_H

#include <stddef.h>

#include <jansson.h>

typedef struct na_text_opts {
	const char *guid;       /* NULL: derived, see above */
	const char *url;        /* NULL: no url field */
	const char *source;     /* NULL: no source field */
	int default_offset_min; /* zone of times that name none (minutes east of UTC) */
} na_text_opts;

/*
 * Extracts the article from text[0..len). On success *out is a new JSON
 * object (json_decref it) that na_json_article_from_json accepts. On failure
 * returns a negative code and writes why into err, e.g.
 * "no publication date or time found".
 */
int na_text_extract(const char *text, size_t len, const na_text_opts *opts, json_t **out,
		    char *err, size_t errcap);

/* Parses a zone name as accepted in pages ("IST", "+05:30", "UTC-4") into
 * minutes east of UTC. 0; -1 for an unknown zone; -2 for ET/CT/MT/PT, whose
 * offset follows daylight saving time (no single offset stands for them). */
int na_text_zone_offset(const char *name, int *minutes);

#endif
