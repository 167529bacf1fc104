/*
 * analyze.c - the diagnosis of a run: loop breakdown, per-loader figures,
 * findings and suggestions (see analyze.h for the inputs and span names).
 *
 * Detectors are a table of small functions. Each looks at the measured
 * context and adds at most one finding whose severity is the share of wall
 * time its cause costs. Advisors (the suggest_* functions) turn a finding
 * into changes with concrete values, predicting the speedup from a
 * producer/consumer model of the input pipeline:
 *   consumer: C = loop time per batch spent outside data waits;
 *   producer: one worker makes a batch in P (sampler + fetch + collate) and
 *             is on a CPU a share c of that time;
 *   n workers on A spare cores deliver a batch every P / min(n, A / c);
 *   the loop then takes max(C, that) per batch instead of what it took.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyze.h"
#include "internal.h"

#define NS 1e9
#define MAX_OPS 8192

/* ------------------------------------------------------------ loaders */

static void kv_set(stall_loader_t *l, const char *k, const char *v) {
    char *end;
    if (!strcmp(k, "id")) stall__strlcpy(l->id, v, sizeof l->id);
    else if (!strcmp(k, "pid")) l->pid = (uint32_t)strtoul(v, NULL, 10);
    else if (!strcmp(k, "batch_size")) l->batch_size = *v ? strtoll(v, NULL, 10) : -1;
    else if (!strcmp(k, "num_workers")) l->num_workers = atoi(v);
    else if (!strcmp(k, "pin_memory")) l->pin_memory = atoi(v) != 0;
    else if (!strcmp(k, "persistent_workers")) l->persistent_workers = atoi(v) != 0;
    else if (!strcmp(k, "drop_last")) l->drop_last = atoi(v) != 0;
    else if (!strcmp(k, "prefetch_factor")) l->prefetch_factor = *v ? atoi(v) : -1;
    else if (!strcmp(k, "dataset_len")) l->dataset_len = *v ? strtoll(v, NULL, 10) : -1;
    else if (!strcmp(k, "dataset_type")) stall__strlcpy(l->dataset_type, v, sizeof l->dataset_type);
    else if (!strcmp(k, "dataset_kind")) stall__strlcpy(l->dataset_kind, v, sizeof l->dataset_kind);
    else if (!strcmp(k, "sampler_type")) stall__strlcpy(l->sampler_type, v, sizeof l->sampler_type);
    else if (!strcmp(k, "batch_sampler_type"))
        stall__strlcpy(l->batch_sampler_type, v, sizeof l->batch_sampler_type);
    else if (!strcmp(k, "collate_fn")) stall__strlcpy(l->collate_fn, v, sizeof l->collate_fn);
    else if (!strcmp(k, "multiprocessing_context")) stall__strlcpy(l->mp_context, v, sizeof l->mp_context);
    else if (!strcmp(k, "created_ns")) {
        unsigned long long t = strtoull(v, &end, 10);
        l->created_ns = (uint64_t)t;
    }
}

static int loader_cmp(const void *a, const void *b) {
    const stall_loader_t *x = a, *y = b;
    if (x->created_ns != y->created_ns) return x->created_ns < y->created_ns ? -1 : 1;
    return strcmp(x->id, y->id);
}

int stall__loaders_read(const char *dir, stall_loader_t *out, int cap) {
    if (!dir || !out || cap <= 0) return 0;
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < cap) {
        size_t len = strlen(e->d_name);
        if (strncmp(e->d_name, "loader-", 7) != 0 || len < 10 || strcmp(e->d_name + len - 3, ".kv") != 0)
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        stall_loader_t *l = &out[n];
        memset(l, 0, sizeof *l);
        l->batch_size = -1;
        l->prefetch_factor = -1;
        l->dataset_len = -1;
        char line[512];
        while (fgets(line, sizeof line, f)) {
            line[strcspn(line, "\r\n")] = 0;
            char *eq = strchr(line, '=');
            if (!eq) continue;
            *eq = 0;
            kv_set(l, line, eq + 1);
        }
        fclose(f);
        if (l->id[0]) n++;
    }
    closedir(d);
    qsort(out, (size_t)n, sizeof *out, loader_cmp);
    return n;
}

/* ------------------------------------------------------------ findings */

static void kv_num(stall_kv_t *kv, int *n, int cap, const char *key, double v, int decimals) {
    if (*n >= cap) return;
    stall_kv_t *p = &kv[(*n)++];
    stall__strlcpy(p->key, key, sizeof p->key);
    if (isfinite(v)) snprintf(p->val, sizeof p->val, "%.*f", decimals, v);
    else snprintf(p->val, sizeof p->val, "null");
    p->is_str = 0;
}

static void kv_str(stall_kv_t *kv, int *n, int cap, const char *key, const char *v) {
    if (*n >= cap) return;
    stall_kv_t *p = &kv[(*n)++];
    stall__strlcpy(p->key, key, sizeof p->key);
    stall__strlcpy(p->val, v, sizeof p->val);
    p->is_str = 1;
}

#define EV(f, key, v, dec) kv_num((f)->evidence, &(f)->nevidence, STALL_MAX_EVIDENCE, key, v, dec)
#define PARAM(s, key, v, dec) kv_num((s)->params, &(s)->nparams, STALL_MAX_PARAMS, key, v, dec)
#define PARAM_STR(s, key, v) kv_str((s)->params, &(s)->nparams, STALL_MAX_PARAMS, key, v)
/* a JSON true: the literal, not a string */
#define PARAM_TRUE(s, key)                                                        \
    do {                                                                          \
        PARAM_STR(s, key, "true");                                                \
        (s)->params[(s)->nparams - 1].is_str = 0;                                 \
    } while (0)

static stall_suggestion_t *suggest(stall_finding_t *f, double speedup, const char *action,
                                   const char *why_fmt, ...) __attribute__((format(printf, 4, 5)));
static stall_suggestion_t *suggest(stall_finding_t *f, double speedup, const char *action,
                                   const char *why_fmt, ...) {
    if (f->nsugg >= STALL_MAX_SUGGESTIONS) return NULL;
    stall_suggestion_t *s = &f->sugg[f->nsugg++];
    memset(s, 0, sizeof *s);
    stall__strlcpy(s->action, action, sizeof s->action);
    /* a predicted speedup below 2% is not a promise worth making */
    s->expected_speedup = isfinite(speedup) && speedup >= 1.02 ? round(speedup * 100) / 100 : NAN;
    va_list ap;
    va_start(ap, why_fmt);
    vsnprintf(s->why, sizeof s->why, why_fmt, ap);
    va_end(ap);
    return s;
}

static void summary(stall_finding_t *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void summary(stall_finding_t *f, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->summary, sizeof f->summary, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------ context */

typedef struct ctx_t {
    const stall_analysis_in_t *in;
    stall_analysis_t *a;
    stall_op_stats_t *ops;
    size_t nops;
    const stall_loader_t *worst; /* the loader the loop waited on most */
    double A;                    /* cores left for data loading beside the main process */
} ctx_t;

static const stall_op_stats_t *op_named(const ctx_t *c, const char *name) {
    for (size_t i = 0; i < c->nops; i++)
        if (!strcmp(c->ops[i].name, name)) return &c->ops[i];
    return NULL;
}

enum { MEAN, MAX, MIN };

/* The mean, max or min of a sampled metric over [t0, t1] (raw or folded
 * points), NaN if unknown. */
static double series_stat(stall_sampler_t *s, int metric, uint64_t t0, uint64_t t1, int mode) {
    if (!s) return NAN;
    enum { CAP = 4096 };
    stall_point_t *p = malloc(CAP * sizeof *p);
    if (!p) return NAN;
    ssize_t n = stall_sampler_series(s, metric, p, CAP);
    double sum = 0, w = 0, mx = NAN, mn = NAN;
    for (ssize_t i = 0; i < n && i < CAP; i++) {
        if (p[i].n == 0 || !isfinite(p[i].avg)) continue;
        uint64_t end = p[i].t_ns + p[i].span_ns;
        if (end < t0 || p[i].t_ns > t1) continue;
        sum += p[i].avg * p[i].n;
        w += p[i].n;
        if (!(mx >= p[i].max)) mx = p[i].max;
        if (!(mn <= p[i].min)) mn = p[i].min;
    }
    free(p);
    if (mode == MAX) return mx;
    if (mode == MIN) return mn;
    return w > 0 ? sum / w : NAN;
}

double stall_loader_model_batch_s(const stall_loader_model_t *m, double n) {
    if (!m || !(n >= 0) || !(m->consumer_s >= 0) || !(m->producer_s >= 0) || !(m->handover_s >= 0) ||
        !(m->cores >= 0))
        return NAN;
    double cpu = m->producer_cpu_frac > 0 ? fmin(m->producer_cpu_frac, 1.0) : 1.0;
    if (n <= 0) return m->consumer_s + m->producer_s; /* in the loop's own thread: no overlap */
    double par = fmin(n, m->cores / fmax(cpu, 0.02));
    if (par < 0.1) par = 0.1;
    return fmax(m->consumer_s + m->handover_s, m->producer_s / par);
}

/* The model: seconds per batch with n workers for loader l, when making a
 * batch costs `saved` seconds less than measured. */
static double model_batch_s(const ctx_t *c, const stall_loader_t *l, double n, double saved) {
    const stall_analysis_t *a = c->a;
    double fetches = l->fetches ? (double)l->fetches : 1;
    double cpu = stall__loader_cpu_frac(l);
    stall_loader_model_t m = {
        .consumer_s = a->batches ? (double)a->step_ns / NS / (double)a->batches : 0,
        .producer_s = fmax(0.0, ((double)l->fetch_ns + (double)l->sampler_ns) / NS / fetches - saved),
        .producer_cpu_frac = isfinite(cpu) ? fmax(cpu, 0.02) : 1.0,
        .cores = c->A,
        .handover_s = 0,
    };
    return stall_loader_model_batch_s(&m, n);
}

/* the steady state: worker start-ups are a separate cost */
static double measured_batch_s(const stall_analysis_t *a) {
    uint64_t steady = a->loop_ns > a->warmup_ns ? a->loop_ns - a->warmup_ns : a->loop_ns;
    return a->batches ? (double)steady / NS / (double)a->batches : NAN;
}

/* What the model predicts against the measured batch time when making a
 * batch costs `saved` seconds less, with the loader's own worker count. */
static double speedup_if_saved(const ctx_t *c, const stall_loader_t *l, double saved) {
    double now = measured_batch_s(c->a), t = model_batch_s(c, l, l->num_workers, saved);
    return isfinite(now) && t > 0 ? now / t : NAN;
}

/* The smallest worker count reaching the consumer's rate (or the best the
 * cores allow); *speedup gets the model's prediction against the measured. */
static int best_workers(const ctx_t *c, const stall_loader_t *l, double *speedup) {
    double now = measured_batch_s(c->a);
    int best = l->num_workers > 0 ? l->num_workers : 1;
    double best_t = model_batch_s(c, l, best, 0);
    for (int n = best + 1; n <= 64; n++) {
        double t = model_batch_s(c, l, n, 0);
        if (t < best_t * 0.97) { /* each worker costs memory and start-up: only for a real gain */
            best = n;
            best_t = t;
        }
    }
    *speedup = isfinite(now) && best_t > 0 ? now / best_t : NAN;
    return best;
}

/* ------------------------------------------------------------ detectors */

/* The speedup of hiding 90% of a step's off-CPU time (step_cpu: the share
 * of the step on a CPU). */
static double speedup_hiding_wait(double step_cpu) {
    return 1.0 / fmax(0.05, 1.0 - (1.0 - step_cpu) * 0.9);
}


static double per_batch_ms(uint64_t ns, uint64_t count) {
    return count ? (double)ns / 1e6 / (double)count : NAN;
}

static void input_evidence(const ctx_t *c, stall_finding_t *f, const stall_loader_t *l) {
    const stall_analysis_t *a = c->a;
    kv_str(f->evidence, &f->nevidence, STALL_MAX_EVIDENCE, "loader", l->id); /* the loader the loop waited on most */
    EV(f, "data_wait_frac", a->data_wait_frac, 3);
    EV(f, "wait_ms_per_batch", per_batch_ms(l->wait_ns, l->batches), 2);
    EV(f, "step_ms_per_batch", per_batch_ms(a->step_ns, a->batches), 2);
    EV(f, "fetch_ms_per_batch", per_batch_ms(stall__loader_fetch_self_ns(l), l->fetches), 2);
    EV(f, "collate_ms_per_batch", per_batch_ms(l->collate_ns, l->fetches), 2);
    EV(f, "sampler_ms_per_batch", per_batch_ms(l->sampler_ns, l->fetches), 3);
    EV(f, "fetch_cpu_frac", stall__loader_cpu_frac(l), 2);
    EV(f, "num_workers", l->num_workers, 0);
    EV(f, "usable_cores", a->usable_cores, 2);
    EV(f, "workers_cpu_cores", a->workers_cpu_cores, 2);
    EV(f, "main_cpu_cores", a->main_cpu_cores, 2);
    EV(f, "runq_wait_cores", a->runq_wait_cores, 2);
    EV(f, "idle_cores", a->idle_cores, 2);
    EV(f, "steal_of_busy", a->steal_of_busy, 2);
}

static void suggest_workers(const ctx_t *c, stall_finding_t *f, const stall_loader_t *l) {
    double sp;
    int n = best_workers(c, l, &sp);
    if (n == l->num_workers) return;
    stall_suggestion_t *s = suggest(f, sp, "Set num_workers on the DataLoader",
                                    "%d worker(s) make batches as fast as the step takes them on %.1f spare "
                                    "core(s); now %d",
                                    n, c->A, l->num_workers);
    if (s) PARAM(s, "num_workers", n, 0);
}

/* The share of a running thread's time the hypervisor leaves it (1 off a
 * virtual machine or when unknown; at least 0.2). */
static double cpu_kept(const stall_analysis_t *a) {
    return isfinite(a->steal_of_busy) ? fmax(0.2, 1.0 - a->steal_of_busy) : 1.0;
}

/* The tree's threads wait on network sockets more than on storage: at
 * least a fifth of a thread on average, and more than in D state. */
static int net_waits(const stall_analysis_t *a) {
    return isfinite(a->threads_net) && a->threads_net >= 0.2 &&
           (!isfinite(a->threads_disk) || a->threads_net > a->threads_disk);
}

/* input-bound: why? One finding, the most specific cause that measurements support. */
static int detect_input(ctx_t *c, stall_finding_t *f, int cap) {
    (void)cap;
    stall_analysis_t *a = c->a;
    const stall_loader_t *l = c->worst;
    if (!l || !a->loop_ns || a->data_wait_frac < c->in->th.bottleneck) return 0;
    double P_col = (double)l->collate_ns, P_fetch = (double)stall__loader_fetch_self_ns(l);
    double P_smp = (double)l->sampler_ns, P_all = P_fetch + P_col + P_smp;
    double cpu = stall__loader_cpu_frac(l);
    /* Off-CPU time is not all storage: a runnable thread waiting for a core
     * (other programs, too many threads) is off-CPU too. The tree's run-queue
     * wait per core it used tells how much to add back to the on-CPU share;
     * on a virtual machine, the time the hypervisor took from a running
     * thread is neither on-CPU nor waiting to run in the guest's books. */
    double used = a->tree_cpu_cores, demand = cpu;
    if (isfinite(cpu) && isfinite(a->runq_wait_cores) && isfinite(used) && used > 0.05)
        demand = fmin(1.0, cpu * (1.0 + a->runq_wait_cores / used));
    if (isfinite(demand)) demand = fmin(1.0, demand / cpu_kept(a));
    /* cores data loading could still use: within the run's limits, and idle
     * on the machine (other programs count) */
    double spare = isfinite(a->usable_cores) ? a->usable_cores - (isfinite(a->main_cpu_cores) ? a->main_cpu_cores : 1.0) -
                                                   (isfinite(a->workers_cpu_cores) ? a->workers_cpu_cores : 0.0)
                                             : NAN;
    if (isfinite(spare) && isfinite(a->idle_cores)) spare = fmin(spare, a->idle_cores);
    f->severity = (double)a->wait_ns / (double)a->duration_ns;
    input_evidence(c, f, l);
    double wait_pct = a->data_wait_frac * 100;
    if (!l->fetches) { /* no fetch spans (level basic, or a loader stall does not know): no finer cause */
        stall__strlcpy(f->type, "DATA_LOADING", sizeof f->type);
        summary(f, "The loop waits for data %.0f%% of the time (%.1f ms per batch); run with --level detailed "
                   "to see which stage is slow.", wait_pct, per_batch_ms(l->wait_ns, l->batches));
        if (l->num_workers == 0) {
            stall_suggestion_t *s = suggest(f, NAN, "Load batches in background workers (num_workers)",
                                            "the loop makes every batch itself");
            if (s) PARAM(s, "num_workers", isfinite(a->usable_cores) ? fmax(1, a->usable_cores - 1) : 1, 0);
        }
    } else if (l->num_workers > 0 && model_batch_s(c, l, l->num_workers, 0) <= 1.05 * per_batch_ms(a->step_ns, a->batches) / 1e3) {
        /* the workers already make batches faster than the step takes them,
         * yet the loop waits: the cost is in handing each batch over
         * (queues, unpickling, shared-memory tensors), paid once per batch */
        double C = per_batch_ms(a->step_ns, a->batches), h = per_batch_ms(l->wait_ns, l->batches);
        stall__strlcpy(f->type, "BATCH_SIZE_INEFFICIENCY", sizeof f->type);
        summary(f, "The loop waits for data %.0f%% of the time although %d worker(s) make batches faster than "
                   "the step uses them: receiving each batch costs %.2f ms, a fixed cost per batch.",
                wait_pct, l->num_workers, h);
        if (l->batch_size > 0) {
            /* twice the samples per batch: the step's work per sample stays, the hand-over is paid half as often */
            stall_suggestion_t *s = suggest(f, (C + h) / (C + h / 2), "Use larger batches (fewer hand-overs per sample)",
                                            "each batch costs %.2f ms to receive against %.2f ms of step", h, C);
            if (s) PARAM(s, "batch_size", 2.0 * (double)l->batch_size, 0);
        }
    } else if (P_all > 0 && P_smp / P_all >= 0.5) {
        stall__strlcpy(f->type, "SAMPLER_OVERHEAD", sizeof f->type);
        summary(f, "The loop waits for data %.0f%% of the time and the sampler takes %.0f%% of making a batch "
                   "(%s).", wait_pct, 100 * P_smp / P_all, l->sampler_type[0] ? l->sampler_type : "sampler");
        /* the model's figure for a sampler that costs nothing: the most this fix can give */
        suggest(f, speedup_if_saved(c, l, P_smp / NS / (double)l->fetches),
                "Make the sampler cheaper: precompute the index order once per epoch (a tensor "
                "permutation) instead of per-index Python work",
                "sampling costs %.2f ms per batch; the speedup is for a sampler that costs nothing",
                per_batch_ms(l->sampler_ns, l->fetches));
        suggest_workers(c, f, l);
    } else if (P_all > 0 && P_col / P_all >= 0.5) {
        stall__strlcpy(f->type, "COLLATE_FUNCTION_SLOW", sizeof f->type);
        summary(f, "The loop waits for data %.0f%% of the time and collate_fn (%s) takes %.0f%% of making a "
                   "batch.", wait_pct, l->collate_fn[0] ? l->collate_fn : "collate", 100 * P_col / P_all);
        suggest(f, speedup_if_saved(c, l, 0.9 * P_col / NS / (double)l->fetches),
                "Speed up collate_fn: stack tensors with torch.stack / preallocated buffers instead "
                "of per-sample Python conversion",
                "collate costs %.2f ms per batch; the speedup is for a collate 10x cheaper",
                per_batch_ms(l->collate_ns, l->fetches));
        suggest_workers(c, f, l);
    } else if (isfinite(demand) && demand < 0.5 && net_waits(a)) {
        /* off-CPU, and the tree's threads sit in socket receives more than on storage */
        stall__strlcpy(f->type, "NETWORK_BOUND", sizeof f->type);
        summary(f, "The loop waits for data %.0f%% of the time; fetching a batch takes %.1f ms but only %.0f%% "
                   "of it on a CPU, and %.1f thread(s) on average wait on network sockets (%.1f on storage): "
                   "the dataset waits on the network.",
                wait_pct, per_batch_ms(l->fetch_ns, l->fetches), 100 * cpu, a->threads_net,
                isfinite(a->threads_disk) ? a->threads_disk : 0.0);
        EV(f, "threads_net_wait", a->threads_net, 2);
        EV(f, "threads_disk_wait", a->threads_disk, 2);
        suggest_workers(c, f, l);
        suggest(f, NAN, "Fetch several samples per request, or stage the dataset on local storage / in memory "
                        "before training (each sample now pays a network round trip)",
                "%.0f%% of fetch time is spent off-CPU, waiting on sockets", 100 * (1 - cpu));
    } else if (isfinite(demand) && demand < 0.5) {
        stall__strlcpy(f->type, "SLOW_DISK_IO", sizeof f->type);
        EV(f, "threads_disk_wait", a->threads_disk, 2);
        EV(f, "threads_sleeping", a->threads_sleep, 2);
        summary(f, "The loop waits for data %.0f%% of the time; fetching a batch takes %.1f ms but only %.0f%% "
                   "of it on a CPU: the dataset waits on storage or network.",
                wait_pct, per_batch_ms(l->fetch_ns, l->fetches), 100 * cpu);
        suggest_workers(c, f, l);
        suggest(f, NAN, "Cache the dataset in memory or on local fast storage (the reads, not the CPU, "
                        "are the limit)", "%.0f%% of fetch time is spent off-CPU", 100 * (1 - cpu));
    } else if (!isfinite(spare) || spare >= 0.5) {
        stall__strlcpy(f->type, "INSUFFICIENT_WORKERS", sizeof f->type);
        summary(f, "The loop waits for data %.0f%% of the time: %d DataLoader worker(s) cannot keep up "
                   "(%.1f ms to make a batch, %.0f%% of it on a CPU) while %.1f core(s) stay idle.",
                wait_pct, l->num_workers, per_batch_ms(l->fetch_ns, l->fetches), 100 * (isfinite(cpu) ? cpu : 1),
                isfinite(spare) ? spare : 0.0);
        suggest_workers(c, f, l);
    } else {
        stall__strlcpy(f->type, "PREPROCESSING_BOTTLENECK", sizeof f->type);
        summary(f, "The loop waits for data %.0f%% of the time and data loading already uses the usable "
                   "cores (%.1f of %.1f): per-sample preprocessing is the limit.",
                wait_pct, (isfinite(a->workers_cpu_cores) ? a->workers_cpu_cores : 0) +
                              (isfinite(a->main_cpu_cores) ? a->main_cpu_cores : 0), a->usable_cores);
        suggest(f, speedup_if_saved(c, l, 0.5 * P_fetch / NS / (double)l->fetches),
                "Make per-sample work cheaper: vectorise transforms, decode at lower resolution, "
                "or move augmentation to the GPU",
                "fetch is %.0f%% on-CPU with no core to spare; the speedup is for halving it",
                100 * (isfinite(cpu) ? cpu : 1));
        suggest(f, NAN, "Cache preprocessed samples (e.g. a tensor file per epoch-invariant step)",
                "%.1f ms of CPU per batch is repeated every epoch", per_batch_ms(l->fetch_cpu_ns, l->fetches));
    }
    if (l->num_workers > 0 && !l->persistent_workers && l->starts > 1) {
        /* every start-up after the first one is saved */
        double cost = (double)(l->start_ns + l->warmup_ns) * (double)(l->starts - 1) / (double)l->starts;
        double save = cost / (double)a->loop_ns;
        stall_suggestion_t *s = suggest(f, 1.0 / (1.0 - fmin(save, 0.9)),
                                        "Keep workers between epochs (persistent_workers=True)",
                                        "workers were started %llu times; start-up and first batch cost "
                                        "%.2f s in all", (unsigned long long)l->starts,
                                        (double)(l->start_ns + l->warmup_ns) / NS);
        if (s) PARAM_TRUE(s, "persistent_workers");
    }
    return 1;
}

/* host-to-device copies from pageable memory taking a share of the loop */
static int detect_transfer(ctx_t *c, stall_finding_t *f, int cap) {
    (void)cap;
    stall_analysis_t *a = c->a;
    if (!a->loop_ns || !a->h2d_ns) return 0;
    double share = (double)a->h2d_ns / (double)a->loop_ns;
    if (share < c->in->th.bottleneck) return 0;
    stall__strlcpy(f->type, "GPU_TRANSFER_OVERHEAD", sizeof f->type);
    f->severity = (double)a->h2d_ns / (double)a->duration_ns;
    summary(f, "Copies to the GPU take %.0f%% of the training loop (%.0f%% of them from pageable memory).",
            100 * share, 100 * (double)a->h2d_pageable_ns / (double)a->h2d_ns);
    EV(f, "h2d_frac", share, 3);
    EV(f, "h2d_pageable_frac", (double)a->h2d_pageable_ns / (double)a->h2d_ns, 3);
    if (a->h2d_pageable_ns > a->h2d_ns / 2) {
        /* pinned copies run about twice as fast as pageable ones, and
         * non_blocking lets them overlap the step: model half the time saved */
        double saved = 0.5 * (double)a->h2d_pageable_ns / (double)a->loop_ns;
        stall_suggestion_t *s = suggest(f, 1.0 / (1.0 - saved),
                                        "Pin host memory and copy asynchronously: DataLoader(pin_memory=True) "
                                        "and .to(device, non_blocking=True)",
                                        "%.0f%% of copy time is from pageable memory",
                                        100 * (double)a->h2d_pageable_ns / (double)a->h2d_ns);
        if (s) {
            PARAM_TRUE(s, "pin_memory");
            PARAM_TRUE(s, "non_blocking");
        }
    }
    return 1;
}

static int detect_memory(ctx_t *c, stall_finding_t *f, int cap) {
    (void)cap;
    stall_analysis_t *a = c->a;
    int full = isfinite(a->mem_used_frac_max) && a->mem_used_frac_max >= c->in->th.memory;
    int psi = isfinite(a->psi_mem_some_max) && a->psi_mem_some_max >= 10.0;
    int gpu_full = isfinite(a->gpu_mem_used_frac_max) && a->gpu_mem_used_frac_max >= c->in->th.gpu;
    if (!full && !psi && gpu_full) {
        stall__strlcpy(f->type, "MEMORY_PRESSURE", sizeof f->type);
        f->severity = 0.05; /* a risk (out-of-memory), not time lost yet */
        summary(f, "GPU memory is short: up to %.0f%% of it was used (threshold %.0f%%).",
                100 * a->gpu_mem_used_frac_max, 100 * c->in->th.gpu);
        EV(f, "gpu_mem_used_frac_max", a->gpu_mem_used_frac_max, 3);
        suggest(f, NAN, "Lower GPU memory: a smaller batch with gradient accumulation, mixed precision, "
                        "or activation checkpointing", "GPU memory peaked at %.0f%%", 100 * a->gpu_mem_used_frac_max);
        return 1;
    }
    /* DataLoader workers whose memory keeps growing: forked workers touch the
     * dataset's Python objects, and each reference-count update copies a page */
    double grew = a->workers_pss_end - a->workers_pss_start;
    const stall_loader_t *w = c->worst;
    double loop_s = (double)a->loop_ns / NS;
    if (!full && !psi && w && w->num_workers > 0 && isfinite(grew) && grew >= 64e6 &&
        grew >= 0.2 * a->workers_pss_start && loop_s > 0) {
        double rate = grew / (0.8 * loop_s); /* bytes/s between the two fifths' midpoints, roughly */
        double hours = isfinite(a->mem_available_min) ? a->mem_available_min / rate / 3600 : NAN;
        stall__strlcpy(f->type, "MEMORY_PRESSURE", sizeof f->type);
        f->severity = 0.05; /* a risk (the OOM killer), not time lost yet */
        summary(f, "DataLoader workers' memory grew from %.0f MB to %.0f MB during the loop (%.1f MB/s): workers "
                   "touching the dataset's Python objects copy their pages (copy-on-read).",
                a->workers_pss_start / 1e6, a->workers_pss_end / 1e6, rate / 1e6);
        EV(f, "workers_pss_start_mb", a->workers_pss_start / 1e6, 1);
        EV(f, "workers_pss_end_mb", a->workers_pss_end / 1e6, 1);
        EV(f, "workers_growth_mb_per_s", rate / 1e6, 2);
        EV(f, "hours_to_fill", hours, 2);
        EV(f, "num_workers", w->num_workers, 0);
        suggest(f, NAN, "Keep per-sample metadata in numpy arrays or tensors (one object, no reference counts "
                        "per item) instead of Python lists, dicts or strings",
                "%d worker(s) grow %.1f MB/s together; at that rate the memory left lasts %.1f h",
                w->num_workers, rate / 1e6, hours);
        return 1;
    }
    if (!full && !psi) return 0;
    stall__strlcpy(f->type, "MEMORY_PRESSURE", sizeof f->type);
    /* time lost to reclaim: the pressure share itself, at least a nominal 5% when only the fill level shows */
    f->severity = fmax(isfinite(a->psi_mem_some_max) ? a->psi_mem_some_max / 100 : 0, 0.05);
    summary(f, "Memory is short: up to %.0f%% of what the run may use was used%s.",
            100 * (isfinite(a->mem_used_frac_max) ? a->mem_used_frac_max : 0),
            psi ? ", and tasks stalled waiting for memory" : "");
    EV(f, "mem_used_frac_max", a->mem_used_frac_max, 3);
    EV(f, "psi_mem_some_max_pct", a->psi_mem_some_max, 1);
    const stall_loader_t *l = c->worst;
    if (l && l->num_workers > 1) {
        stall_suggestion_t *s = suggest(f, NAN, "Lower DataLoader memory: fewer workers or a smaller "
                                                "prefetch_factor (each worker holds prefetch_factor batches)",
                                        "%d workers each hold their own copy of Python objects they touch",
                                        l->num_workers);
        if (s) PARAM(s, "prefetch_factor", 1, 0);
    }
    suggest(f, NAN, "Keep dataset metadata in numpy arrays or tensors instead of Python lists/dicts "
                    "(workers' copy-on-read of Python objects grows their memory)",
            "memory used peaked at %.0f%%", 100 * (isfinite(a->mem_used_frac_max) ? a->mem_used_frac_max : 0));
    return 1;
}

/* not input-bound: the loop computes. Which resource? */
static int detect_compute(ctx_t *c, stall_finding_t *f, int cap) {
    (void)cap;
    stall_analysis_t *a = c->a;
    f->resource = 1;
    double compute_ns = a->loop_ns ? (double)a->step_ns : (double)a->duration_ns;
    f->severity = compute_ns / (double)a->duration_ns;
    if (a->loop_ns) {
        EV(f, "compute_frac", a->compute_frac, 3);
        EV(f, "data_wait_frac", a->data_wait_frac, 3);
    }
    EV(f, "main_cpu_cores", a->main_cpu_cores, 2);
    EV(f, "usable_cores", a->usable_cores, 2);
    if (a->has_gpu && isfinite(a->gpu_util_mean)) {
        EV(f, "gpu_util_mean_pct", a->gpu_util_mean, 1);
        if (a->gpu_util_mean >= 100 * c->in->th.gpu_busy) {
            stall__strlcpy(f->type, "GPU_BOUND", sizeof f->type);
            summary(f, "The GPU is busy %.0f%% of the time and the loop waits for data only %.0f%%: "
                       "training is limited by GPU compute.",
                    a->gpu_util_mean, 100 * a->data_wait_frac);
            suggest(f, NAN, "Use mixed precision (torch.autocast with bfloat16/float16)",
                    "the GPU is the limit; lower-precision math raises its throughput");
            suggest(f, NAN, "Use torch.compile or fused optimizers to cut kernel launches",
                    "fewer, larger kernels keep the GPU's work denser");
        } else {
            stall__strlcpy(f->type, "GPU_UNDERUTILIZED", sizeof f->type);
            summary(f, "The loop is not waiting for data (%.0f%%), yet the GPU is busy only %.0f%% of the time: "
                       "CPU-side work between kernels limits the step.",
                    100 * a->data_wait_frac, a->gpu_util_mean);
            suggest(f, NAN, "Raise the batch size so each kernel does more work",
                    "GPU busy %.0f%%", a->gpu_util_mean);
            suggest(f, NAN, "Remove host synchronisations in the step (.item(), .cpu(), printing tensors)",
                    "each one stalls the GPU queue");
        }
        return 1;
    }
    int input_bound = a->loop_ns && a->data_wait_frac >= c->in->th.bottleneck;
    if (!a->loop_ns) {
        /* no training loop: CPU-bound only when the program wants the CPU
         * most of the time, across the usable cores or on one core (a single
         * Python thread). Wanting it is running or waiting to run: beside
         * other busy programs a CPU-bound process gets less than a core, and
         * on a virtual machine the host steals a share of what it got. */
        double rq = isfinite(a->runq_wait_cores) ? a->runq_wait_cores : 0;
        double kept = cpu_kept(a);
        double tree = (a->tree_cpu_cores + rq) / kept;
        double one = isfinite(a->main_cpu_cores) ? (a->main_cpu_cores + rq) / kept : NAN;
        int busy = isfinite(tree) && ((isfinite(a->usable_cores) && tree >= c->in->th.cpu * a->usable_cores) ||
                                      (isfinite(one) && one >= c->in->th.cpu));
        if (!busy) return 0;
        EV(f, "tree_cpu_cores", a->tree_cpu_cores, 2);
        EV(f, "runq_wait_cores", a->runq_wait_cores, 2);
        EV(f, "steal_share", a->steal_share, 2);
        /* the busier of: one core saturated, all usable cores busy */
        double share = isfinite(a->usable_cores) && a->usable_cores > 0 ? tree / a->usable_cores : 0;
        f->severity = fmin(1.0, fmax(share, isfinite(one) ? one : 0));
    }
    /* a step that is mostly off-CPU while the tree reads/writes storage and
     * tasks stall on I/O is bound by storage, not by the CPU */
    double step_cpu = a->loop_ns && a->compute_frac > 0.05 && isfinite(a->main_cpu_cores)
                          ? a->main_cpu_cores / a->compute_frac
                          : NAN;
    int io_stalled = (isfinite(a->psi_io_some_mean) && a->psi_io_some_mean >= 10.0) ||
                     (isfinite(a->iowait_cores) && a->iowait_cores >= 0.3) ||
                     (isfinite(a->disk_busy_mean) && a->disk_busy_mean >= 0.3);
    /* the step's CPU time goes to the kernel faulting in fresh pages (large
     * allocations returned to the OS and mapped again every step) or to
     * reclaim and swap-in: memory-bound */
    double kernel = isfinite(a->main_sys_cores) && isfinite(a->main_cpu_cores) && a->main_cpu_cores > 0.05
                        ? a->main_sys_cores / a->main_cpu_cores
                        : NAN;
    if (!input_bound && a->loop_ns && isfinite(kernel) && kernel >= 0.3 && isfinite(a->tree_faults_per_s) &&
        a->tree_faults_per_s >= 20000) {
        stall__strlcpy(f->type, "MEMORY_BOUND", sizeof f->type);
        double lost = kernel * fmin(1.0, isfinite(step_cpu) ? step_cpu : 1.0); /* share of the step in the kernel */
        f->severity = lost * a->compute_frac * (double)a->loop_ns / (double)a->duration_ns;
        summary(f, "The loop does not wait for data (%.0f%%), but %.0f%% of the training process's CPU time "
                   "is spent in the kernel while the tree takes %.0f page faults/s (%.0f MB/s of memory "
                   "mapped afresh): the step is bound by memory allocation, not by its math.",
                100 * a->data_wait_frac, 100 * kernel, a->tree_faults_per_s, a->tree_faults_per_s * 4096 / 1e6);
        EV(f, "kernel_cpu_frac", kernel, 2);
        EV(f, "main_sys_cores", a->main_sys_cores, 2);
        EV(f, "tree_faults_per_s", a->tree_faults_per_s, 0);
        EV(f, "tree_majflt_per_s", a->tree_majflt_per_s, 0);
        EV(f, "psi_mem_some_max_pct", a->psi_mem_some_max, 1);
        suggest(f, 1.0 / fmax(0.05, 1.0 - 0.8 * lost),
                "Reuse memory between steps: preallocate tensors and write into them (out=, in-place ops) "
                "instead of allocating large temporaries every step",
                "%.0f%% of the step runs in the kernel mapping fresh pages; the speedup is for removing 80%% "
                "of that", 100 * lost);
        suggest(f, NAN, "Or keep freed memory in the process: run with a caching allocator "
                        "(LD_PRELOAD=libjemalloc.so.2, Debian package libjemalloc2)",
                "glibc returns allocations above its mmap threshold (32 MB at most) to the kernel on free");
        return 1;
    }
    if (!input_bound && isfinite(step_cpu) && step_cpu < 0.5 && net_waits(a) &&
        (!isfinite(a->disk_busy_mean) || a->disk_busy_mean < 0.3)) {
        stall__strlcpy(f->type, "NETWORK_BOUND", sizeof f->type);
        summary(f, "The loop does not wait for data (%.0f%%), but its steps are on a CPU only %.0f%% of the "
                   "time while %.1f thread(s) on average wait on network sockets: the step waits for the network.",
                100 * a->data_wait_frac, 100 * step_cpu, a->threads_net);
        EV(f, "step_cpu_frac", step_cpu, 2);
        EV(f, "threads_net_wait", a->threads_net, 2);
        suggest(f, speedup_hiding_wait(step_cpu),
                "Overlap network transfers with compute (asynchronous requests or collectives, larger "
                "messages, fewer round trips per step)",
                "the step is off-CPU %.0f%% of the time on sockets; the speedup is for hiding 90%% of that",
                100 * (1 - step_cpu));
        return 1;
    }
    if (!input_bound && isfinite(step_cpu) && step_cpu < 0.5 && io_stalled) {
        stall__strlcpy(f->type, "IO_BOUND", sizeof f->type);
        summary(f, "The loop does not wait for data (%.0f%%), but its steps are on a CPU only %.0f%% of the "
                   "time while storage is busy (disk busy %.0f%%, %.1f core(s) in iowait): the step waits "
                   "for disk reads or writes.",
                100 * a->data_wait_frac, 100 * step_cpu, 100 * (isfinite(a->disk_busy_mean) ? a->disk_busy_mean : 0.0),
                isfinite(a->iowait_cores) ? a->iowait_cores : 0.0);
        EV(f, "step_cpu_frac", step_cpu, 2);
        EV(f, "psi_io_some_mean_pct", a->psi_io_some_mean, 1);
        EV(f, "iowait_cores", a->iowait_cores, 2);
        EV(f, "disk_busy_mean", a->disk_busy_mean, 2);
        EV(f, "tree_io_mb_per_s", a->tree_io_bytes_per_s / 1e6, 2);
        suggest(f, speedup_hiding_wait(step_cpu),
                "Take storage writes off the training step: checkpoint less often, or write from a "
                "background thread without fsync in the loop",
                "the step is off-CPU %.0f%% of the time; the speedup is for removing 90%% of that wait",
                100 * (1 - step_cpu));
        return 1;
    }
    stall__strlcpy(f->type, "CPU_BOUND", sizeof f->type);
    if (input_bound)
        summary(f, "The training step computes on the CPU %.0f%% of the loop: once data arrives in time, "
                   "the model's own compute sets the speed.", 100 * a->compute_frac);
    else if (a->loop_ns)
        summary(f, "The training step computes on the CPU %.0f%% of the loop and waits for data only %.0f%%: "
                   "the model's own compute is the limit.",
                100 * a->compute_frac, 100 * a->data_wait_frac);
    else
        summary(f, "No DataLoader loop was seen; the program kept the CPU busy (%.1f core(s) on average, "
                   "%.1f in its main process).", a->tree_cpu_cores, isfinite(a->main_cpu_cores) ? a->main_cpu_cores : 0.0);
    if (!a->loop_ns) {
        suggest(f, NAN, "Profile where the CPU time goes (perf top, py-spy) and optimise the hottest functions",
                "no training loop was seen, so stall cannot split the time further");
        return 1;
    }
    if (!input_bound && isfinite(a->usable_cores) && isfinite(a->main_cpu_cores) &&
        a->main_cpu_cores < 0.7 * a->usable_cores && a->usable_cores >= 2) {
        stall_suggestion_t *s = suggest(f, NAN, "Let PyTorch use the idle cores: torch.set_num_threads",
                                        "the main process uses %.1f of %.1f usable cores (how much the "
                                        "model's operators gain from threads is not known)",
                                        a->main_cpu_cores, a->usable_cores);
        if (s) PARAM(s, "threads", floor(a->usable_cores), 0);
    }
    suggest(f, NAN, "Profile the step (torch.profiler) to find its most expensive operators, or train on a GPU",
            "the step's computation, not the input pipeline, sets the speed");
    return 1;
}

/* An operation of the user's own (a profile_operation span, a C API span)
 * taking at least th.bottleneck of the session: one finding each, typed by
 * its kind (the Python API retypes it with the type the user gave). */
static const char *const type_of_kind[STALL_KIND_COUNT_] = {
    [STALL_KIND_OTHER] = "UNKNOWN",          [STALL_KIND_DATA_LOADING] = "DATA_LOADING",
    [STALL_KIND_PREPROCESSING] = "PREPROCESSING", [STALL_KIND_CPU_COMPUTE] = "CPU_COMPUTATION",
    [STALL_KIND_GPU_COMPUTE] = "GPU_COMPUTATION", [STALL_KIND_TRANSFER] = "DATA_TRANSFER",
    [STALL_KIND_IO] = "IO_OPERATIONS",       [STALL_KIND_DATA_WAIT] = "DATA_LOADING",
    [STALL_KIND_STEP] = "UNKNOWN",           [STALL_KIND_SESSION] = "UNKNOWN",
};

static int stall_made(const char *name) {
    if (!strncmp(name, "train.", 6) || !strncmp(name, "h2d.", 4)) return 1;
    return name[0] == 'd' && name[1] == 'l' && name[2] >= '0' && name[2] <= '9'; /* dl<pid>.<n>.* */
}

static int detect_operations(ctx_t *c, stall_finding_t *f, int cap) {
    const stall_analysis_in_t *in = c->in;
    if (!in->op_findings) return 0;
    double wall = (double)c->a->duration_ns;
    int n = 0;
    for (size_t i = 0; i < c->nops && n < cap; i++) { /* largest total first */
        const stall_op_stats_t *o = &c->ops[i];
        if (o->kind == STALL_KIND_SESSION || stall_made(o->name)) continue;
        if (in->session_name && !strcmp(o->name, in->session_name)) continue; /* the span around the session */
        double share = (double)o->total_ns / wall;
        if (share < in->th.bottleneck) break;
        stall_finding_t *x = &f[n++];
        stall__strlcpy(x->type, type_of_kind[o->kind < STALL_KIND_COUNT_ ? o->kind : 0], sizeof x->type);
        x->severity = share;
        summary(x, "%s took %.0f%% of the session's wall time (%.3f s in %llu calls).", o->name, 100 * share,
                (double)o->total_ns / NS, (unsigned long long)o->count);
        kv_str(x->evidence, &x->nevidence, STALL_MAX_EVIDENCE, "operation", o->name);
        EV(x, "share", share, 4);
        EV(x, "self_share", (double)o->self_ns / wall, 4);
        EV(x, "total_time_s", (double)o->total_ns / NS, 6);
        EV(x, "self_time_s", (double)o->self_ns / NS, 6);
        EV(x, "count", (double)o->count, 0);
        EV(x, "processes", (double)o->processes, 0);
    }
    return n;
}

typedef int (*detector_fn)(ctx_t *c, stall_finding_t *f, int cap);

/* stall's own detectors, in order; added ones (stall_engine_add_detector) run after them */
static const struct {
    const char *name;
    detector_fn fn;
} detectors[] = {
    {"input", detect_input},
    {"transfer", detect_transfer},
    {"memory", detect_memory},
    {"compute", detect_compute},
    {"operations", detect_operations},
};

static const struct {
    const char *type, *title;
} titles[] = {
    {"DATA_LOADING", "Waiting for data"},
    {"INSUFFICIENT_WORKERS", "Too few DataLoader workers"},
    {"PREPROCESSING_BOTTLENECK", "Preprocessing saturates the CPUs"},
    {"SLOW_DISK_IO", "Slow storage reads"},
    {"COLLATE_FUNCTION_SLOW", "Slow collate function"},
    {"SAMPLER_OVERHEAD", "Slow sampler"},
    {"BATCH_SIZE_INEFFICIENCY", "Batches too small for their overhead"},
    {"GPU_TRANSFER_OVERHEAD", "Slow host-to-GPU copies"},
    {"MEMORY_PRESSURE", "Memory pressure"},
    {"CPU_BOUND", "Compute-bound on the CPU"},
    {"GPU_BOUND", "Compute-bound on the GPU"},
    {"GPU_UNDERUTILIZED", "GPU underused"},
    {"IO_BOUND", "I/O-bound"},
    {"MEMORY_BOUND", "Memory-bound: the step waits on page faults"},
    {"NETWORK_BOUND", "Network-bound"},
};

const char *stall__finding_title(const char *type) {
    for (size_t i = 0; i < sizeof titles / sizeof titles[0]; i++)
        if (!strcmp(titles[i].type, type)) return titles[i].title;
    return type;
}

static int finding_cmp(const void *x, const void *y) {
    const stall_finding_t *a = x, *b = y;
    return (a->severity < b->severity) - (a->severity > b->severity);
}

/* ------------------------------------------------------------ analysis */

static void measure_loaders(ctx_t *c) {
    stall_analysis_t *a = c->a;
    char buf[128];
    for (int i = 0; i < a->nloaders; i++) {
        stall_loader_t *l = &a->loaders[i];
        const stall_op_stats_t *o;
#define OP(suffix) (snprintf(buf, sizeof buf, "dl%s." suffix, l->id), op_named(c, buf))
        if ((o = OP("wait"))) {
            l->waits = o->count;
            l->wait_ns = o->total_ns;
            /* a wait span's arg is 1 when it delivered a batch, 0 at StopIteration */
            l->batches = stall__op_batches(o);
        }
        if ((o = OP("fetch"))) {
            l->fetches = o->count;
            l->fetch_ns = o->total_ns;
            l->fetch_cpu_ns = o->cpu_ns;
            l->fetch_cpu_count = o->cpu_count;
        }
        if ((o = OP("collate"))) l->collate_ns = o->total_ns;
        if ((o = OP("sampler"))) {
            l->sampler_ns = o->total_ns;
            l->sampler_count = o->count;
        }
        if ((o = OP("pin"))) {
            l->pin_ns = o->total_ns;
            l->pin_count = o->count;
        }
        if ((o = OP("start"))) {
            l->starts = o->count;
            l->start_ns = o->total_ns;
        }
        if ((o = OP("warmup"))) {
            l->warmups = o->count;
            l->warmup_ns = o->total_ns;
            l->batches += stall__op_batches(o);
        }
#undef OP
        if (l->fetch_cpu_ns > l->fetch_ns) l->fetch_cpu_ns = l->fetch_ns; /* clock granularity */
        a->fetch_ns += stall__loader_fetch_self_ns(l);
        a->collate_ns += l->collate_ns;
        a->sampler_ns += l->sampler_ns;
        a->pin_ns += l->pin_ns;
        a->warmup_ns += l->warmup_ns;
        if (!c->worst || l->wait_ns > c->worst->wait_ns) c->worst = l;
    }
    a->worst_loader = c->worst ? (int)(c->worst - a->loaders) : -1;
}

int stall__loop_op(const stall_op_stats_t *o) {
    if (strncmp(o->name, "dl", 2) != 0) return 0;
    if (o->kind == STALL_KIND_DATA_WAIT) return 1;
    size_t n = strlen(o->name);
    return o->kind == STALL_KIND_DATA_LOADING && n > 7 && !strcmp(o->name + n - 7, ".warmup") ? 2 : 0;
}

int stall__loop_totals(stall_agg_t *agg, uint64_t *batches, uint64_t *wait_ns) {
    enum { CAP = 1024 }; /* the loop's ops are among the largest totals, which come first */
    *batches = *wait_ns = 0;
    stall_op_stats_t *ops = malloc(CAP * sizeof *ops);
    if (!ops) return stall__err("stall__loop_totals: out of memory");
    ssize_t n = stall_agg_ops(agg, 0, ops, CAP);
    for (ssize_t i = 0; i < n && i < CAP; i++)
        if (stall__loop_op(&ops[i])) *batches += stall__op_batches(&ops[i]);
    free(ops);
    uint64_t kt[STALL_KIND_COUNT_] = {0};
    stall_agg_kind_time(agg, 0, kt);
    *wait_ns = kt[STALL_KIND_DATA_WAIT];
    return 0;
}

int stall__analyze(const stall_analysis_in_t *in_, stall_analysis_t *a) {
    if (!in_ || !a || !in_->agg) return stall__err("stall__analyze: the aggregator is required");
    stall_analysis_in_t in = *in_;
    if (in.th.bottleneck <= 0) in.th.bottleneck = 0.05;
    if (in.th.memory <= 0) in.th.memory = 0.9;
    if (in.th.gpu <= 0) in.th.gpu = 0.9;
    if (in.th.cpu <= 0) in.th.cpu = 0.9;
    if (in.th.gpu_busy <= 0) in.th.gpu_busy = 0.8;
    memset(a, 0, sizeof *a);
    ctx_t c = {&in, a, NULL, 0, NULL, 1.0};
    c.ops = malloc(MAX_OPS * sizeof *c.ops);
    if (!c.ops) return stall__err("stall__analyze: out of memory");
    ssize_t n = stall_agg_ops(in.agg, in.session_id, c.ops, MAX_OPS);
    if (n < 0) {
        free(c.ops);
        return -1; /* unknown session: its error is set */
    }
    c.nops = n < 0 ? 0 : (size_t)(n > MAX_OPS ? MAX_OPS : n);
    a->duration_ns = in.end_ns > in.start_ns ? in.end_ns - in.start_ns : 1;
    a->nloaders = stall__loaders_read(in.session_dir, a->loaders, STALL_MAX_LOADERS);
    measure_loaders(&c);

    /* the loop: from the first batch request to the last step's end */
    uint64_t first = UINT64_MAX, last = 0, waits = 0;
    uint32_t iterating = 1;
    for (size_t i = 0; i < c.nops; i++) {
        const stall_op_stats_t *o = &c.ops[i];
        int lop = stall__loop_op(o);
        int is_warm = lop == 2, is_wait = lop != 0;
        int is_step = o->kind == STALL_KIND_STEP && !strcmp(o->name, "train.step");
        if (!is_wait && !is_step) continue;
        if (is_wait && o->first_ns < first) first = o->first_ns;
        if (o->last_ns > last) last = o->last_ns;
        if (is_wait && !is_warm) {
            waits += o->count;
            if (o->processes > iterating) iterating = o->processes;
        }
    }
    uint64_t kt[STALL_KIND_COUNT_] = {0};
    stall_agg_kind_time(in.agg, in.session_id, kt);
    /* the loop's iterations: its steps (zip(a, b) delivers two batches a step) */
    const stall_op_stats_t *steps = op_named(&c, "train.step");
    for (int i = 0; i < a->nloaders; i++) a->batches += a->loaders[i].batches;
    if (steps && steps->count) a->batches = steps->count;
    if (!a->batches) a->batches = waits;
    if (first != UINT64_MAX && last > first) {
        a->loop_ns = last - first;
        a->wait_ns = kt[STALL_KIND_DATA_WAIT] / iterating;
        if (a->wait_ns > a->loop_ns) a->wait_ns = a->loop_ns;
        uint64_t warm = a->warmup_ns / iterating;
        if (warm > a->loop_ns - a->wait_ns) warm = a->loop_ns - a->wait_ns;
        a->step_ns = a->loop_ns - a->wait_ns - warm;
        a->data_wait_frac = (double)a->wait_ns / (double)a->loop_ns;
        a->compute_frac = (double)a->step_ns / (double)a->loop_ns;
    }
    const stall_op_stats_t *o;
    if ((o = op_named(&c, "h2d.pageable"))) a->h2d_pageable_ns = o->total_ns;
    a->h2d_ns = a->h2d_pageable_ns + ((o = op_named(&c, "h2d.pinned")) ? o->total_ns : 0);
    if ((o = op_named(&c, "train.backward"))) a->backward_ns = o->total_ns;
    if ((o = op_named(&c, "train.optimizer"))) a->optimizer_ns = o->total_ns;

    /* what the sampler saw over the loop (or the whole run without one) */
    uint64_t t0 = a->loop_ns ? first : in.start_ns, t1 = a->loop_ns ? last : in.end_ns;
    a->usable_cores = NAN;
    a->gpu_util_mean = NAN;
    a->mem_used_frac_max = NAN;
    stall_sys_t y; /* the latest sample: the machine's size and limits */
    memset(&y, 0, sizeof y);
    if (in.sampler && stall_sampler_latest(in.sampler, &y) < 0) y.valid = 0;
    if (y.valid & STALL_SYS_CPU)
        a->usable_cores = y.usable_cores > 0 ? y.usable_cores : y.ncpus;
    a->main_cpu_cores = series_stat(in.sampler, STALL_M_MAIN_CPU, t0, t1, MEAN);
    a->workers_cpu_cores = series_stat(in.sampler, STALL_M_WORKERS_CPU, t0, t1, MEAN);
    a->runq_wait_cores = series_stat(in.sampler, STALL_M_TREE_RUNQ_WAIT, t0, t1, MEAN);
    a->idle_cores = NAN;
    a->iowait_cores = NAN;
    a->steal_share = a->steal_of_busy = NAN;
    if (y.valid & STALL_SYS_CPU) {
        a->steal_share = series_stat(in.sampler, STALL_M_CPU_STEAL, t0, t1, MEAN);
        double busy = series_stat(in.sampler, STALL_M_CPU_USER, t0, t1, MEAN) +
                      series_stat(in.sampler, STALL_M_CPU_SYSTEM, t0, t1, MEAN) + a->steal_share;
        if (isfinite(busy)) a->idle_cores = fmax(0.0, 1.0 - busy) * (double)y.ncpus;
        if (isfinite(busy) && busy > 0.01) a->steal_of_busy = fmin(1.0, a->steal_share / busy);
        double iow = series_stat(in.sampler, STALL_M_CPU_IOWAIT, t0, t1, MEAN);
        if (isfinite(iow)) a->iowait_cores = iow * (double)y.ncpus;
    }
    a->psi_mem_some_max = series_stat(in.sampler, STALL_M_PSI_MEM_SOME, in.start_ns, in.end_ns, MAX);
    a->psi_io_some_max = series_stat(in.sampler, STALL_M_PSI_IO_SOME, in.start_ns, in.end_ns, MAX);
    a->psi_io_some_mean = series_stat(in.sampler, STALL_M_PSI_IO_SOME, t0, t1, MEAN);
    a->tree_io_bytes_per_s = series_stat(in.sampler, STALL_M_TREE_READ, t0, t1, MEAN) +
                             series_stat(in.sampler, STALL_M_TREE_WRITE, t0, t1, MEAN);
    a->disk_busy_mean = series_stat(in.sampler, STALL_M_DISK_BUSY, t0, t1, MEAN);
    /* the fill of what the tree may use: its cgroup's limit when tighter than the machine */
    double avail_min = series_stat(in.sampler, STALL_M_MEM_AVAILABLE, in.start_ns, in.end_ns, MIN);
    a->mem_available_min = avail_min;
    if ((y.valid & STALL_SYS_MEM) && isfinite(avail_min)) {
        double cap = (double)y.mem_total_bytes;
        if ((y.valid & STALL_SYS_CG_MEM) && y.cg_mem_limit_bytes != UINT64_MAX && (double)y.cg_mem_limit_bytes < cap)
            cap = (double)y.cg_mem_limit_bytes;
        if (cap > 0) a->mem_used_frac_max = fmin(1.0, fmax(0.0, 1.0 - avail_min / cap));
    }
    a->gpu_mem_used_frac_max = NAN;
    if (in.sampler && stall_sampler_gpus(in.sampler, NULL, 0) > 0) {
        a->has_gpu = 1;
        a->gpu_util_mean = series_stat(in.sampler, STALL_M_GPU_UTIL, t0, t1, MEAN);
        stall_gpu_t g[16];
        size_t ng = stall_sampler_gpus(in.sampler, g, 16);
        double total = 0;
        for (size_t i = 0; i < ng && i < 16; i++)
            if (g[i].valid & STALL_GPU_MEM) total += (double)g[i].mem_total_bytes;
        double used = series_stat(in.sampler, STALL_M_GPU_MEM_USED, in.start_ns, in.end_ns, MAX);
        if (total > 0 && isfinite(used)) a->gpu_mem_used_frac_max = fmin(1.0, used / total);
    }
    a->main_sys_cores = series_stat(in.sampler, STALL_M_MAIN_SYS_CPU, t0, t1, MEAN);
    a->tree_faults_per_s = series_stat(in.sampler, STALL_M_TREE_FAULTS, t0, t1, MEAN);
    a->tree_majflt_per_s = series_stat(in.sampler, STALL_M_TREE_MAJFLT, t0, t1, MEAN);
    a->threads_disk = series_stat(in.sampler, STALL_M_TREE_WAIT_DISK, t0, t1, MEAN);
    a->threads_net = series_stat(in.sampler, STALL_M_TREE_WAIT_NET, t0, t1, MEAN);
    a->threads_sleep = series_stat(in.sampler, STALL_M_TREE_WAIT_SLEEP, t0, t1, MEAN);
    /* workers' memory early (lowest of the first fifth) and late (highest of the last fifth) in the loop */
    a->workers_pss_start = a->workers_pss_end = NAN;
    if (a->loop_ns) {
        uint64_t fifth = (t1 - t0) / 5;
        a->workers_pss_start = series_stat(in.sampler, STALL_M_WORKERS_PSS, t0, t0 + fifth, MIN);
        a->workers_pss_end = series_stat(in.sampler, STALL_M_WORKERS_PSS, t1 - fifth, t1, MAX);
    }
    a->tree_cpu_cores = isfinite(a->main_cpu_cores)
                            ? a->main_cpu_cores + (isfinite(a->workers_cpu_cores) ? a->workers_cpu_cores : 0)
                            : NAN;
    /* cores left for data loading: all usable ones minus what the step needs */
    if (isfinite(a->usable_cores)) {
        double main_need = 1.0;
        if (isfinite(a->main_cpu_cores) && c.worst && c.worst->num_workers > 0)
            main_need = fmax(0.5, a->main_cpu_cores);
        c.A = a->usable_cores - main_need;
        /* and what other programs leave: the cores workers use now plus the idle ones */
        if (isfinite(a->idle_cores))
            c.A = fmin(c.A, a->idle_cores + (isfinite(a->workers_cpu_cores) ? a->workers_cpu_cores : 0));
        c.A = fmax(0.5, c.A);
    }

    for (size_t i = 0; i < sizeof detectors / sizeof detectors[0] && a->nfindings < STALL_MAX_FINDINGS; i++) {
        stall_finding_t *f = &a->findings[a->nfindings];
        int cap = STALL_MAX_FINDINGS - a->nfindings;
        memset(f, 0, (size_t)cap * sizeof *f);
        int got = detectors[i].fn(&c, f, cap);
        for (int k = 0; k < got && k < cap; k++) {
            f[k].severity = fmin(1.0, fmax(0.0, f[k].severity));
            a->nfindings++;
        }
    }
    for (int i = 0; i < in.ncustom && a->nfindings < STALL_MAX_FINDINGS; i++) {
        stall_finding_t *f = &a->findings[a->nfindings];
        memset(f, 0, sizeof *f);
        if (in.custom[i].fn(a, f, in.custom[i].ctx) > 0 && f->type[0]) {
            stall__strlcpy(f->detector, in.custom[i].name, sizeof f->detector);
            if (!isfinite(f->severity)) f->severity = 0;
            f->severity = fmin(1.0, fmax(0.0, f->severity));
            a->nfindings++;
        }
    }
    qsort(a->findings, (size_t)a->nfindings, sizeof a->findings[0], finding_cmp);
    /* The compute finding says which resource the step uses, not a cost to
     * remove: it leads unless a cause with a fix (data waits, copies to the GPU)
     * costs at least the bottleneck threshold. Memory pressure (a run
     * near its OOM kill, reclaim stalls) goes before it. */
    int has_cause = a->loop_ns && a->data_wait_frac >= in.th.bottleneck;
    /* a cause with a fix costing at least the threshold (data waits, copies) */
    for (int i = 0; i < a->nfindings; i++)
        if (!a->findings[i].resource && strcmp(a->findings[i].type, "MEMORY_PRESSURE") &&
            a->findings[i].severity >= in.th.bottleneck && a->loop_ns)
            has_cause = 1;
    int mem_first = 0;
    for (int i = 0; i < a->nfindings && !has_cause; i++)
        if (!strcmp(a->findings[i].type, "MEMORY_PRESSURE")) {
            stall_finding_t f = a->findings[i];
            memmove(&a->findings[1], &a->findings[0], (size_t)i * sizeof f);
            a->findings[0] = f;
            mem_first = 1;
        }
    for (int i = 0; i < a->nfindings; i++) {
        if (!a->findings[i].resource) continue;
        stall_finding_t f = a->findings[i];
        if (has_cause) {
            memmove(&a->findings[i], &a->findings[i + 1], (size_t)(a->nfindings - i - 1) * sizeof f);
            a->findings[a->nfindings - 1] = f;
        } else {
            memmove(&a->findings[1 + mem_first], &a->findings[mem_first], (size_t)(i - mem_first) * sizeof f);
            a->findings[mem_first] = f;
        }
        break;
    }
    free(c.ops);
    return 0;
}

/* ------------------------------------------------------------ public */

enum { V_NS, V_U64, V_DBL, V_INT };
#define VNS(name, field) {name, V_NS, offsetof(stall_analysis_t, field)}
#define VDBL(name, field) {name, V_DBL, offsetof(stall_analysis_t, field)}
static const struct {
    const char *name;
    int type;
    size_t off;
} values[] = {
    VDBL("data_wait_frac", data_wait_frac), VDBL("compute_frac", compute_frac),
    VNS("loop_s", loop_ns), VNS("wait_s", wait_ns), VNS("step_s", step_ns), VNS("warmup_s", warmup_ns),
    VNS("fetch_s", fetch_ns), VNS("collate_s", collate_ns), VNS("sampler_s", sampler_ns), VNS("pin_s", pin_ns),
    VNS("h2d_s", h2d_ns), VNS("h2d_pageable_s", h2d_pageable_ns), VNS("backward_s", backward_ns),
    VNS("optimizer_s", optimizer_ns), VNS("duration_s", duration_ns),
    {"batches", V_U64, offsetof(stall_analysis_t, batches)},
    VDBL("usable_cores", usable_cores), VDBL("main_cpu_cores", main_cpu_cores),
    VDBL("workers_cpu_cores", workers_cpu_cores), VDBL("tree_cpu_cores", tree_cpu_cores),
    VDBL("idle_cores", idle_cores), VDBL("runq_wait_cores", runq_wait_cores), VDBL("iowait_cores", iowait_cores),
    VDBL("steal_share", steal_share), VDBL("steal_of_busy", steal_of_busy),
    VDBL("mem_used_frac_max", mem_used_frac_max), VDBL("psi_mem_some_max_pct", psi_mem_some_max),
    VDBL("psi_io_some_max_pct", psi_io_some_max), VDBL("psi_io_some_mean_pct", psi_io_some_mean),
    VDBL("disk_busy_mean", disk_busy_mean), VDBL("tree_io_bytes_per_s", tree_io_bytes_per_s),
    VDBL("gpu_util_mean_pct", gpu_util_mean), VDBL("gpu_mem_used_frac_max", gpu_mem_used_frac_max),
    VDBL("main_sys_cores", main_sys_cores), VDBL("tree_faults_per_s", tree_faults_per_s),
    VDBL("tree_majflt_per_s", tree_majflt_per_s), VDBL("threads_disk_wait", threads_disk),
    VDBL("threads_net_wait", threads_net), VDBL("threads_sleeping", threads_sleep),
    VDBL("workers_pss_start_bytes", workers_pss_start), VDBL("workers_pss_end_bytes", workers_pss_end),
    {"has_gpu", V_INT, offsetof(stall_analysis_t, has_gpu)},
    {"loaders", V_INT, offsetof(stall_analysis_t, nloaders)},
    {"num_workers", -1, 0}, /* of the loader the loop waited on most */
};

const char *stall_diagnosis_value_name(int i) {
    return i >= 0 && (size_t)i < sizeof values / sizeof values[0] ? values[i].name : NULL;
}

double stall_diagnosis_value(const stall_diagnosis_t *d, const char *name) {
    if (!d || !name) return NAN;
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        if (strcmp(values[i].name, name)) continue;
        const char *p = (const char *)d + values[i].off;
        switch (values[i].type) {
        case V_NS: return (double)*(const uint64_t *)p / NS;
        case V_U64: return (double)*(const uint64_t *)p;
        case V_DBL: return *(const double *)p;
        case V_INT: return (double)*(const int *)p;
        default: return d->worst_loader >= 0 ? (double)d->loaders[d->worst_loader].num_workers : NAN;
        }
    }
    return NAN;
}

int stall_diagnosis_finding_count(const stall_diagnosis_t *d) { return d ? d->nfindings : 0; }

const stall_finding_t *stall_diagnosis_finding(const stall_diagnosis_t *d, int i) {
    return d && i >= 0 && i < d->nfindings ? &d->findings[i] : NULL;
}

const char *stall_finding_type(const stall_finding_t *f) { return f ? f->type : NULL; }
double stall_finding_severity(const stall_finding_t *f) { return f ? f->severity : NAN; }
const char *stall_finding_summary(const stall_finding_t *f) { return f ? f->summary : NULL; }

int stall_finding_set(stall_finding_t *f, const char *type, double severity, const char *text) {
    if (!f || !type) return stall__err("stall_finding_set: finding and type are required");
    size_t n = strlen(type);
    if (n == 0 || n >= sizeof f->type)
        return stall__err("stall_finding_set: type must be 1..%zu characters (got %zu)", sizeof f->type - 1, n);
    for (size_t i = 0; i < n; i++) {
        char ch = type[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_'))
            return stall__err("stall_finding_set: type %.40s may hold only letters, digits and '_'", type);
    }
    stall__strlcpy(f->type, type, sizeof f->type);
    f->severity = isfinite(severity) ? fmin(1.0, fmax(0.0, severity)) : 0.0;
    stall__strlcpy(f->summary, text ? text : "", sizeof f->summary);
    return 0;
}

int stall_finding_evidence(stall_finding_t *f, const char *key, double value) {
    if (!f || !key || !*key) return stall__err("stall_finding_evidence: finding and key are required");
    if (strlen(key) >= sizeof f->evidence[0].key)
        return stall__err("stall_finding_evidence: key %.40s is longer than %zu bytes", key, sizeof f->evidence[0].key - 1);
    if (f->nevidence >= STALL_MAX_EVIDENCE)
        return stall__err("stall_finding_evidence: a finding holds at most %d evidence numbers", STALL_MAX_EVIDENCE);
    kv_num(f->evidence, &f->nevidence, STALL_MAX_EVIDENCE, key, value, 6);
    return 0;
}

int stall_finding_suggest(stall_finding_t *f, const char *action, double expected_speedup, const char *why) {
    if (!f || !action || !*action) return stall__err("stall_finding_suggest: finding and action are required");
    if (f->nsugg >= STALL_MAX_SUGGESTIONS)
        return stall__err("stall_finding_suggest: a finding holds at most %d suggestions", STALL_MAX_SUGGESTIONS);
    suggest(f, expected_speedup, action, "%s", why ? why : "");
    return 0;
}
