/*
 * analyze.h - from a run's aggregates to a diagnosis (library-internal).
 *
 * The input is what the engine knows at the end (or in the middle) of a
 * run: the per-operation statistics of the aggregator, the DataLoader
 * settings the Python hook left in the session directory, and what the
 * sampler saw. stall__analyze turns them into the loop breakdown, per-loader
 * figures and findings. Detectors (one small function each, in a table)
 * decide the cause from measurements; advisors attach suggestions whose
 * expected speedup comes from a producer/consumer throughput model.
 *
 * Span names this relies on (written by python/stall/_autohook.py):
 *   dl<L>.wait     the training loop waiting in __next__ (kind data_wait)
 *   dl<L>.sampler  the sampler choosing indices
 *   dl<L>.fetch    one batch fetched (dataset calls, collate nested), with CPU time
 *   dl<L>.collate  collate_fn, with CPU time
 *   dl<L>.pin      pin_memory of one batch
 *   dl<L>.start    a multi-process iterator starting its workers
 *   dl<L>.warmup   the first __next__ after workers started (start-up and
 *                  prefetch fill, instead of a wait span)
 *   train.step     the loop's work between two batches
 *   train.backward, train.optimizer, h2d.pageable, h2d.pinned
 */
#ifndef STALL_ANALYZE_H
#define STALL_ANALYZE_H

#include <stddef.h>
#include <stdint.h>

#include "stall.h"

#define STALL_MAX_LOADERS 32
#define STALL_MAX_FINDINGS 16
#define STALL_MAX_EVIDENCE 20
#define STALL_MAX_SUGGESTIONS 4
#define STALL_MAX_PARAMS 4

/* One DataLoader: its settings (from loader-<pid>-<n>.kv) and what it cost. */
typedef struct stall_loader_t {
    char id[32];              /* "<pid>.<n>" */
    uint32_t pid;
    int64_t batch_size;       /* -1: None (batch_sampler or no batching) */
    int num_workers;
    int pin_memory, persistent_workers, drop_last;
    int prefetch_factor;      /* -1: not applicable */
    int64_t dataset_len;      /* -1: unknown */
    char dataset_type[64], dataset_kind[16], sampler_type[64], batch_sampler_type[64];
    char collate_fn[96], mp_context[16];
    uint64_t created_ns;
    /* measured */
    uint64_t waits;           /* __next__ calls (batches + one StopIteration per epoch) */
    uint64_t batches;         /* batches delivered to the loop */
    uint64_t wait_ns;
    uint64_t fetches, fetch_ns, fetch_cpu_ns, fetch_cpu_count; /* inclusive of collate */
    uint64_t collate_ns, sampler_ns, sampler_count, pin_ns, pin_count;
    uint64_t starts, start_ns; /* worker start-ups and their time */
    uint64_t warmups, warmup_ns; /* first batches after a start-up */
} stall_loader_t;

typedef struct stall_kv_t {
    char key[32];
    char val[96];
    int is_str; /* 1: a JSON string, 0: a JSON number/bool/null literal */
} stall_kv_t;

typedef struct stall_suggestion_t {
    char action[160];
    stall_kv_t params[STALL_MAX_PARAMS];
    int nparams;
    double expected_speedup; /* NaN: unknown (written as null) */
    char why[256];
} stall_suggestion_t;

struct stall_finding_t {
    char type[40];      /* a BottleneckType name */
    double severity;    /* share of wall time the cause costs, 0..1 */
    char summary[320];
    stall_kv_t evidence[STALL_MAX_EVIDENCE];
    int nevidence;
    stall_suggestion_t sugg[STALL_MAX_SUGGESTIONS];
    int nsugg;
    int resource;       /* 1: which resource the loop is bound by (the compute detector), ordered apart */
    char detector[64];  /* the added detector that made it ("": one of stall's own) */
};

/* A detector added with stall_engine_add_detector. */
typedef struct stall__detector_t {
    char name[64];
    stall_detector_fn fn;
    void *ctx;
} stall__detector_t;

typedef struct stall_analysis_in_t {
    stall_agg_t *agg;
    stall_sampler_t *sampler;   /* may be NULL */
    const char *session_dir;    /* where loader-*.kv files are; may be NULL */
    uint64_t session_id;        /* the aggregator's session (0: the whole run) */
    const char *session_name;   /* an operation of this name wraps the session: not a finding (may be NULL) */
    uint64_t start_ns, end_ns;  /* the run or the session */
    stall_thresholds_t th;      /* zero fields: defaults */
    int op_findings;            /* 1: an operation of the user's taking >= th.bottleneck of the
                                   session is a finding of its own (the Python API's sessions) */
    const stall__detector_t *custom; /* added detectors, run after stall's own */
    int ncustom;
} stall_analysis_in_t;

struct stall_diagnosis_t {
    /* the training loop (main-process iterating threads) */
    uint64_t batches;
    uint64_t loop_ns;        /* first batch request .. last step end */
    uint64_t wait_ns;        /* waiting for data, merged per thread */
    uint64_t warmup_ns;      /* waiting for freshly started workers' first batch */
    uint64_t step_ns;        /* loop_ns - wait_ns - warmup_ns */
    uint64_t fetch_ns, collate_ns, sampler_ns, pin_ns, h2d_ns, h2d_pageable_ns;
    uint64_t backward_ns, optimizer_ns;
    uint64_t duration_ns;
    double data_wait_frac, compute_frac; /* of the loop */
    double usable_cores;     /* NaN: unknown */
    double main_cpu_cores, workers_cpu_cores; /* mean over the loop, NaN: unknown */
    double runq_wait_cores;  /* the tree's mean waiting-to-run, in cores, over the loop (NaN: unknown) */
    double idle_cores;       /* the machine's mean idle cores over the loop, other programs counted (NaN) */
    double steal_share;      /* the machine's CPU time taken by the hypervisor, mean share over the loop (NaN) */
    double steal_of_busy;    /* the hypervisor's share of the time the CPUs wanted to run (user + system +
                                steal): what a running thread loses (an idle vCPU loses nothing) (NaN) */
    double mem_used_frac_max; /* of what the tree may use, NaN: unknown */
    double psi_mem_some_max, psi_io_some_max; /* avg10 %, NaN: unknown */
    double psi_io_some_mean, iowait_cores;    /* over the loop: avg10 %, cores idle on I/O (NaN) */
    double tree_io_bytes_per_s;               /* the tree's storage reads + writes over the loop (NaN) */
    double disk_busy_mean;                    /* the busiest disk's busy share over the loop (NaN) */
    int has_gpu;
    double gpu_util_mean;    /* %, NaN: unknown */
    stall_loader_t loaders[STALL_MAX_LOADERS];
    int nloaders;
    int worst_loader;        /* index of the loader the loop waited on most, -1: none */
    double gpu_mem_used_frac_max; /* NaN: unknown */
    double main_sys_cores;   /* the main process in the kernel, mean over the loop (NaN) */
    double tree_faults_per_s, tree_majflt_per_s; /* page faults of the tree, mean over the loop (NaN) */
    double threads_disk, threads_net, threads_sleep; /* the tree's threads in each wait, mean over the loop (NaN) */
    double workers_pss_start, workers_pss_end; /* workers' PSS early and late in the loop, bytes (NaN) */
    double mem_available_min;  /* bytes the run could still use at its fullest (NaN) */
    double tree_cpu_cores;   /* the whole tree's mean over the loop (or the run), NaN: unknown */
    stall_finding_t findings[STALL_MAX_FINDINGS]; /* strongest first */
    int nfindings;
};
typedef struct stall_diagnosis_t stall_analysis_t;

/* A loader's fetch time without the collate nested in it. */
static inline uint64_t stall__loader_fetch_self_ns(const stall_loader_t *l) {
    return l->fetch_ns > l->collate_ns ? l->fetch_ns - l->collate_ns : 0;
}

/* The share of a loader's fetch time spent on a CPU (collate included), or
 * NaN when its fetch spans carried no CPU time. */
static inline double stall__loader_cpu_frac(const stall_loader_t *l) {
    return l->fetch_cpu_count && l->fetch_ns ? (double)l->fetch_cpu_ns / (double)l->fetch_ns : __builtin_nan("");
}

/* What an operation is to the training loop: 1 a loader's wait for the
 * next batch, 2 the first batch after its workers started (warm-up), 0
 * anything else. */
int stall__loop_op(const stall_op_stats_t *o);

/* The batches a wait or warm-up operation delivered: each span's arg is 1
 * for a batch, 0 at StopIteration. */
static inline uint64_t stall__op_batches(const stall_op_stats_t *o) {
    return o->arg_sum < o->count ? o->arg_sum : o->count;
}

/* Batches the training loop received and the time it waited for data so
 * far, over all loaders of the whole run (for live views: the status line
 * of `stall run`, `stall top`). Returns 0, or -1 when out of memory. */
int stall__loop_totals(stall_agg_t *agg, uint64_t *batches, uint64_t *wait_ns);

/* Reads the loader-*.kv files of a session directory into out (at most cap);
 * returns how many were read (unreadable files are skipped). */
int stall__loaders_read(const char *dir, stall_loader_t *out, int cap);

/* Analyzes a run. Returns 0, or -1 with the error set (bad input). */
int stall__analyze(const stall_analysis_in_t *in, stall_analysis_t *out);

/* A friendly title for a BottleneckType name ("Too few DataLoader workers"). */
const char *stall__finding_title(const char *type);

#endif
