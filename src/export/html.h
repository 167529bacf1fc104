/*
 * html.h - report.html: the report JSON rendered for people. The page is
 * the template src/export/report.html.in (compiled in by tools/embed.py)
 * with the report JSON inside a <script type="application/json"> element;
 * its inline script draws everything in the browser, so this side only
 * escapes and concatenates. Used by the CLI (stall run, stall report) and
 * by the Python module (stall._native.render_report_html). Not public.
 */
#ifndef STALL_EXPORT_HTML_H
#define STALL_EXPORT_HTML_H

#include <stddef.h>

/* Renders the page for `len` bytes of report JSON (UTF-8, not necessarily
 * NUL-terminated). Inside the JSON, "<", ">" and "&" become \u003c, \u003e
 * and \u0026, and U+2028/U+2029 become \u2028/\u2029: in valid JSON these
 * occur only inside strings, where the escapes mean the same characters, so
 * the embedded text still parses to the same value and no string can end
 * the script element or open a comment. Returns a malloc'd NUL-terminated
 * page that the caller frees, its length (without the NUL) in *out_len when
 * out_len is not NULL; or NULL with stall_last_error() set and errno EINVAL
 * (NULL, empty or NUL-containing JSON) or ENOMEM. The JSON is not otherwise
 * validated: the page shows a parse error when it is not valid. */
char *stall__report_html_render(const char *report_json, size_t len, size_t *out_len);

/* Renders the page as above and writes it to `path`: first to "<path>.tmp",
 * then renamed over `path`, so readers never see half a page. Returns 0, or
 * -1 with stall_last_error() set (nothing is left at "<path>.tmp"). */
int stall__report_html_write(const char *path, const char *report_json, size_t len);

/* The template, generated from report.html.in by tools/embed.py: its bytes
 * (NUL-terminated), their number, and where the marker line's token that the
 * JSON replaces starts and how long it is. */
extern const char stall__report_html_template[];
extern const size_t stall__report_html_template_len;
extern const size_t stall__report_html_template_marker_at;
extern const size_t stall__report_html_template_marker_len;

#endif /* STALL_EXPORT_HTML_H */
