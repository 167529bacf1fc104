/*
 * report.h - report.json of a run (library-internal): the contract other
 * tools read ("schema": "stall.report/1"), rendered from the analysis, the
 * aggregator, the sampler and what the CLI tracked about processes.
 */
#ifndef STALL_REPORT_H
#define STALL_REPORT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "analyze.h"
#include "stall.h"

/* What the CLI learnt about one process of the tree over the run. */
typedef struct stall_proc_summary_t {
    uint32_t pid, ppid;
    uint64_t starttime;     /* with pid, identifies the process */
    char label[32], comm[32];
    int alive;
    double cpu_s;           /* user + system, last seen */
    uint64_t max_rss_bytes;
    double max_cpu_cores;
    uint64_t spans, dropped; /* from the session reader, when it recorded */
} stall_proc_summary_t;

/* Folds one sample of a process into its summary: identity, command,
 * CPU seconds, the highest RSS and CPU use seen. p starts zeroed. */
void stall__proc_summary_update(stall_proc_summary_t *p, const stall_proc_sample_t *s);

typedef struct stall_report_t {
    char *const *argv;        /* the profiled command */
    int argc;
    int exit_status;          /* the program's, 128+N when killed by signal N */
    int term_signal;          /* N, or 0 */
    time_t started_at;        /* wall clock */
    uint64_t start_ns, end_ns;
    const char *level;
    double interval_s;
    const stall_analysis_t *an;
    stall_agg_t *agg;
    uint64_t session_id;      /* the aggregator's session the ops come from (0: the whole run) */
    stall_sampler_t *sampler; /* may be NULL */
    const stall_proc_summary_t *procs;
    size_t nprocs;
    const double (*loop)[3];  /* per second: t_s since start, batches/s, data-wait share (NaN: no loop) */
    size_t nloop;
    uint64_t dropped_events;
    const stall_alert_t *alerts; /* the live monitor's alert events, in order (may be NULL) */
    size_t nalerts;
    uint64_t alerts_dropped;     /* events not kept */
    const char *out_json, *out_html, *out_trace; /* paths written (NULL: not written) */
} stall_report_t;

/* Renders report.json; returns a malloc'd NUL-terminated string (length in
 * *len) or NULL with the error set. */
char *stall__report_json(const stall_report_t *r, size_t *len);

#endif
