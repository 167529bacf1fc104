/*
 * export.h - the exporters' library-internal interface: the spool that keeps
 * every drained record of a run on disk (so memory stays flat however long
 * the run), and the Chrome trace writer that renders a spool, the reader's
 * process names and the sampler's series as a Trace Event Format file for
 * Perfetto UI and chrome://tracing. Nothing here is public.
 */
#ifndef STALL_EXPORT_H
#define STALL_EXPORT_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#include "stall.h"

/* ------------------------------------------------------------------ JSON */

/* Writes s as the inside of a JSON string: quotes, backslashes and control
 * characters escaped, bytes that are not UTF-8 replaced by U+FFFD. */
void stall__json_esc(FILE *f, const char *s);

/* Writes s (NULL: "") as a JSON string literal, quotes included. */
void stall__json_str(FILE *f, const char *s);

/* ----------------------------------------------------------------- spool */

/* One spooled record and the reader index of the process it came from, as
 * stored in the spool file (56 bytes). */
typedef struct stall_spool_ent_t {
    stall_record_t rec;
    uint32_t proc_index; /* stall_reader_proc_t.index: resolves rec.name */
    uint32_t reserved;   /* 0 */
} stall_spool_ent_t;

typedef struct stall_spool_t stall_spool_t;

/* Creates (or truncates) the spool file at path, mode 0600, and returns the
 * spool, or NULL with the error set. The caller owns the spool and frees it
 * with stall__spool_free. Not thread-safe: one thread adds and reads. */
stall_spool_t *stall__spool_new(const char *path);

/* Appends n records of one process, through a buffer: the drain tap, called
 * from a stall_record_fn with the same arguments. Records flagged
 * STALL_REC_OPEN (snapshots of live spans, delivered again when they end) are
 * not kept. Returns 0, or -1 when writing failed: the buffered records are
 * then lost, the file is cut back to its last whole entry and the spool
 * stays usable. */
int stall__spool_add(stall_spool_t *s, const stall_reader_proc_t *proc,
                     const stall_record_t *recs, size_t n);

/* Returns the number of records kept (written and buffered). */
uint64_t stall__spool_count(const stall_spool_t *s);

/* Called by stall__spool_scan with the next n entries; returns 0 to go on,
 * or -1 (with the error set) to stop the scan. */
typedef int (*stall_spool_fn)(void *ctx, const stall_spool_ent_t *ents, size_t n);

/* Writes out the buffer, then hands every entry, in the order they were
 * added, to fn in runs read through the spool's own buffer (memory stays
 * flat however big the file). fn must not add to the spool. Returns 0, or -1
 * when reading failed or fn stopped the scan. */
int stall__spool_scan(stall_spool_t *s, stall_spool_fn fn, void *ctx);

/* Closes the spool, unlinks its file and frees it. NULL is ignored. */
void stall__spool_free(stall_spool_t *s);

/* ----------------------------------------------------------- chrome trace */

typedef struct stall_trace_opts_t {
    uint64_t t0_ns;      /* timestamps are written relative to this (us, 3 decimals) */
    uint64_t end_ns;     /* end of the run: truncated spans are drawn up to here; 0 = now */
    uint64_t max_events; /* cap on spans + instants written; 0 = 2,000,000 */
    const char *title;   /* e.g. the command line, goes to otherData; may be NULL */
} stall_trace_opts_t;

/* Writes a Chrome trace (JSON object form) of every record of the spool to
 * path: spans as complete events ("X") named through the reader, instants as
 * "i" (session markers with process scope), process and thread name
 * metadata, and, when s is not NULL, counters ("C") of the sampler's series
 * in a process of their own named "system". When the spool holds more spans
 * and instants than max_events, only the longest are written (all those
 * lasting longer than a threshold: ties are all kept or all left out, so
 * fewer than max_events may remain); otherData says how many were left out
 * and the threshold. Session markers are always written. The file is written
 * to path.tmp and renamed, so it appears whole or not at all. The reader
 * must be the one that drained the spool (names and processes resolve
 * through it). Returns 0, or -1 with the error set (nothing is left at path
 * then). */
int stall__trace_write(const char *path, stall_spool_t *spool, stall_reader_t *r,
                       stall_sampler_t *s, const stall_trace_opts_t *o);

#endif
