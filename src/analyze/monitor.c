/*
 * monitor.c - live monitoring: alert rules, anomaly detection and memory
 * exhaustion prediction over the metrics of a running job.
 *
 * Every interval the monitor's thread reads the engine (sampler's latest
 * sample, the loop's totals) into one vector of metrics (stall_mon_metric_t)
 * and observes it:
 *   - rules: a threshold that must hold for a duration, then raises one
 *     alert; it clears (one "resolved" event) once the value is back past the
 *     threshold by the hysteresis;
 *   - anomalies, on step time, throughput and memory, in the direction that
 *     hurts (step time up, throughput down, memory up):
 *       spike: at most SPIKE_MAX_RUN samples whose robust z-score
 *         ((x - median) / (1.4826 MAD) over the last `window` samples) is
 *         above spike_score and that are SPIKE_MIN_CHANGE off the median,
 *         followed by one back under half the score or half the run's
 *         height; reported when it ends, so that a level shift (which does
 *         not come back) is not one;
 *       shift: one-sided CUSUM of the robust z-score (clipped at +-Z_CLIP so
 *         that one spike cannot trip it, allowance CUSUM_K) against
 *         shift_score, confirmed when the samples since the change span
 *         SHIFT_HOLD_NS and are flat (still rising is a ramp: the trend
 *         detector's), their median is SHIFT_MIN_CHANGE away, and two levels
 *         fit the window better than one line (a climb that paused is no
 *         step); the baseline is then learnt again from the samples after
 *         the change;
 *       trend: every trend_every samples one averaged point; a least-squares
 *         line over the last trend_window points whose r2 >= trend_r2 and
 *         whose change over the window is >= trend_change of the level;
 *   - prediction: the fitted memory growth (host: the tree's memory; GPU:
 *     memory used) against what is left; an "oom" alert when it would run
 *     out within oom_horizon_s, cleared beyond 1.5 horizons.
 * Alerts go to a bounded ring queue read with stall_monitor_next. The state
 * is allocated once in stall_monitor_new: the monitor's memory is fixed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "analyze.h"
#include "internal.h"

#define MAX_RULES 64
#define MAX_TREE 512 /* processes of the tree read per tick */
#define NKINDS 5
#define Z_CLIP 4.0
#define CUSUM_K 0.5
#define SPIKE_MAX_RUN 2
#define MIN_BASELINE 16   /* samples before spikes and shifts are judged */
#define MIN_TREND_POINTS 8
#define REL_SIGMA_FLOOR 0.02 /* robust sigma is at least 2% of the level */
#define SPIKE_MIN_CHANGE 0.5 /* a spike is at least 50% off the median (jitter is not one) */
#define SHIFT_MIN_CHANGE 0.1 /* level shifts smaller than 10% of the level are not alerted */
#define SHIFT_HOLD_NS 5000000000ull /* a new level holds 5 s before it is one (a slower spell of a
                                       few seconds on a shared machine is not) */

enum { K_THRESHOLD, K_SPIKE, K_SHIFT, K_TREND, K_OOM };
static const char *const kind_names[NKINDS] = {"threshold", "spike", "shift", "trend", "oom"};

static const char *const metric_names[STALL_MON_COUNT_] = {
    "cpu_percent",          "tree_cpu_cores",           "tree_cpu_share",
    "memory_bytes",         "host_memory_used_share",   "host_memory_available_bytes",
    "gpu_util_percent",     "gpu_memory_used_bytes",    "gpu_memory_used_share",
    "step_time_s",          "throughput",               "data_wait_share",
};

/* the metrics watched for anomalies and the direction that hurts */
static const struct {
    int metric, dir;
    const char *what;
} anomaly_metrics[] = {
    {STALL_MON_STEP_TIME_S, +1, "step time"},
    {STALL_MON_THROUGHPUT, -1, "throughput"},
    {STALL_MON_MEMORY_BYTES, +1, "memory"},
    {STALL_MON_GPU_MEMORY_USED_BYTES, +1, "GPU memory"},
};
#define NANOM (sizeof anomaly_metrics / sizeof anomaly_metrics[0])

typedef struct rule_t {
    stall_alert_rule_t r;
    char name[48];
    int pending, active;
    uint64_t since_ns;
} rule_t;

typedef struct anom_t {
    double *win;  /* the last `window` samples, a ring */
    uint32_t n, head;
    double *tmp;  /* scratch for the median */
    int run;      /* consecutive outliers so far */
    double run_max, run_med;
    double cusum;
    uint32_t above_n; /* consecutive samples more than one sigma on the bad side */
    uint64_t above_t0; /* the time of the first of them */
    double *tt, *tv; /* trend points: time (s), value; a ring */
    uint32_t tn, thead;
    double acc_t, acc_v;
    uint32_t acc_n;
    int trend_active, oom_active;
    double slope, r2, level; /* the last fit */
    int fitted;
} anom_t;

struct stall_monitor_t {
    stall_monitor_options_t o;
    pthread_mutex_t lock; /* the state below */
    pthread_cond_t cond;  /* queue not empty, or woken */
    rule_t rules[MAX_RULES];
    int nrules;
    anom_t an[NANOM];
    stall_alert_t *queue;
    uint32_t qhead, qn;
    uint64_t seq;
    int woken;
    stall_monitor_summary_t sum;
    double last_values[STALL_MON_COUNT_];
    /* the thread */
    pthread_t thread;
    int running, stop;
    pid_t pid; /* the process that started the thread (a fork has no thread to join) */
    stall_engine_t *engine;
    /* loop totals at the start of the current loop span */
    uint64_t loop_t_ns, loop_batches, loop_wait_ns;
    int loop_seen;
    stall_proc_sample_t *procs; /* scratch for the tree's processes */
    size_t bytes;
};

const char *stall_alert_kind_name(int kind) { return kind >= 0 && kind < NKINDS ? kind_names[kind] : NULL; }

const char *stall_mon_metric_name(int metric) {
    return metric >= 0 && metric < STALL_MON_COUNT_ ? metric_names[metric] : NULL;
}

int stall_mon_metric_index(const char *name) {
    for (int i = 0; name && i < STALL_MON_COUNT_; i++)
        if (!strcmp(name, metric_names[i])) return i;
    return -1;
}

/* ------------------------------------------------------------- options */

static int check_options(stall_monitor_options_t *o) {
    if (!o->interval_ns) o->interval_ns = 1000000000ull;
    if (o->interval_ns < 1000000ull) return stall__err("stall_monitor_new: interval_ns must be >= 1 ms");
    if (!o->loop_span_ns) o->loop_span_ns = 1000000000ull;
    if (!(o->min_severity >= 0 && o->min_severity <= 1))
        return stall__err("stall_monitor_new: min_severity must be between 0 and 1");
    if (o->spike_score == 0) o->spike_score = 6;
    if (o->shift_score == 0) o->shift_score = 8;
    if (o->trend_r2 == 0) o->trend_r2 = 0.9;
    if (o->trend_change == 0) o->trend_change = 0.1;
    if (o->oom_horizon_s == 0) o->oom_horizon_s = 1800;
    if (!(o->spike_score > 0 && isfinite(o->spike_score)))
        return stall__err("stall_monitor_new: spike_score must be a positive number");
    if (!(o->shift_score > 0 && isfinite(o->shift_score)))
        return stall__err("stall_monitor_new: shift_score must be a positive number");
    if (!(o->trend_r2 > 0 && o->trend_r2 <= 1))
        return stall__err("stall_monitor_new: trend_r2 must be in (0, 1]");
    if (!(o->trend_change > 0 && isfinite(o->trend_change)))
        return stall__err("stall_monitor_new: trend_change must be a positive number");
    if (!(o->oom_horizon_s > 0 && isfinite(o->oom_horizon_s)))
        return stall__err("stall_monitor_new: oom_horizon_s must be a positive number of seconds");
    if (!o->window) o->window = 60;
    if (!o->trend_window) o->trend_window = 60;
    if (!o->trend_every) o->trend_every = 10;
    if (!o->queue) o->queue = 256;
    if (o->window < 8 || o->window > 1024) return stall__err("stall_monitor_new: window must be 8..1024 samples");
    if (o->trend_window < 8 || o->trend_window > 1024)
        return stall__err("stall_monitor_new: trend_window must be 8..1024 points");
    if (o->trend_every > 100000) return stall__err("stall_monitor_new: trend_every must be 1..100000 samples");
    if (o->queue > 65536) return stall__err("stall_monitor_new: queue must be 1..65536 alerts");
    return 0;
}

static void *take(stall_monitor_t *m, size_t n, size_t size) {
    void *p = calloc(n, size);
    if (p) m->bytes += n * size;
    return p;
}

static void summary_reset(stall_monitor_t *m) {
    memset(&m->sum, 0, sizeof m->sum);
    for (int i = 0; i < STALL_MON_COUNT_; i++) {
        m->sum.min[i] = m->sum.max[i] = m->sum.last[i] = NAN;
        m->last_values[i] = NAN;
    }
    m->sum.oom_host_s = m->sum.oom_gpu_s = NAN;
}

/* Frees the monitor's memory (its lock and condition are the caller's). */
static void release(stall_monitor_t *m) {
    for (size_t i = 0; i < NANOM; i++) {
        free(m->an[i].win);
        free(m->an[i].tmp);
        free(m->an[i].tt);
        free(m->an[i].tv);
    }
    free(m->queue);
    free(m->procs);
    free(m);
}

stall_monitor_t *stall_monitor_new(const stall_monitor_options_t *opts) {
    stall_monitor_options_t o;
    if (opts) o = *opts;
    else memset(&o, 0, sizeof o);
    if (check_options(&o) < 0) return NULL;
    stall_monitor_t *m = calloc(1, sizeof *m);
    if (!m) {
        stall__err("stall_monitor_new: out of memory");
        return NULL;
    }
    m->bytes = sizeof *m;
    m->o = o;
    m->queue = take(m, o.queue, sizeof *m->queue);
    m->procs = take(m, MAX_TREE, sizeof *m->procs);
    if (!m->queue || !m->procs) goto fail;
    for (size_t i = 0; i < NANOM; i++) {
        anom_t *a = &m->an[i];
        a->win = take(m, o.window, sizeof(double));
        a->tmp = take(m, o.window, sizeof(double));
        a->tt = take(m, o.trend_window, sizeof(double));
        a->tv = take(m, o.trend_window, sizeof(double));
        if (!a->win || !a->tmp || !a->tt || !a->tv) goto fail;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&m->lock, NULL);
    pthread_cond_init(&m->cond, &ca);
    pthread_condattr_destroy(&ca);
    summary_reset(m);
    return m;
fail:
    stall__err("stall_monitor_new: out of memory");
    release(m);
    return NULL;
}

size_t stall_monitor_memory_bytes(const stall_monitor_t *m) { return m ? m->bytes : 0; }

/* --------------------------------------------------------------- rules */

static int name_ok(const char *s) {
    if (!s || !*s || strlen(s) > 47) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' ||
              *s == '.' || *s == '-'))
            return 0;
    return 1;
}

int stall_monitor_add_rule(stall_monitor_t *m, const stall_alert_rule_t *r) {
    if (!m || !r) return stall__err("stall_monitor_add_rule: monitor and rule are required");
    if (!name_ok(r->name))
        return stall__err("stall_monitor_add_rule: name must be 1..47 letters, digits, '_', '.' or '-'");
    if (r->metric < 0 || r->metric >= STALL_MON_COUNT_)
        return stall__err("stall_monitor_add_rule: metric %d is not a stall_mon_metric_t", r->metric);
    if (!isfinite(r->threshold)) return stall__err("stall_monitor_add_rule: threshold must be finite");
    if (!(r->for_s >= 0 && isfinite(r->for_s)))
        return stall__err("stall_monitor_add_rule: for_s must be >= 0 seconds");
    if (!(r->hysteresis >= 0 && isfinite(r->hysteresis)))
        return stall__err("stall_monitor_add_rule: hysteresis must be >= 0");
    if (!(r->severity >= 0 && r->severity <= 1))
        return stall__err("stall_monitor_add_rule: severity must be between 0 and 1");
    pthread_mutex_lock(&m->lock);
    int rc = 0;
    for (int i = 0; i < m->nrules; i++)
        if (!strcmp(m->rules[i].name, r->name)) {
            rc = stall__err("stall_monitor_add_rule: a rule named '%s' exists", r->name);
            goto out;
        }
    if (m->nrules == MAX_RULES) {
        rc = stall__err("stall_monitor_add_rule: at most %d rules", MAX_RULES);
        goto out;
    }
    rule_t *x = &m->rules[m->nrules++];
    memset(x, 0, sizeof *x);
    x->r = *r;
    stall__strlcpy(x->name, r->name, sizeof x->name);
    x->r.name = x->name;
out:
    pthread_mutex_unlock(&m->lock);
    return rc;
}

/* ---------------------------------------------------------------- queue */

/* Formats a metric's value with its unit for messages. */
static void fmt_value(char *buf, size_t cap, int metric, double v) {
    const char *n = metric_names[metric];
    size_t l = strlen(n);
    if (!isfinite(v)) snprintf(buf, cap, "unknown");
    else if (l > 6 && !strcmp(n + l - 6, "_bytes")) {
        double a = fabs(v);
        if (a >= 1e9) snprintf(buf, cap, "%.2f GB", v / 1e9);
        else snprintf(buf, cap, "%.1f MB", v / 1e6);
    } else if (l > 6 && !strcmp(n + l - 6, "_share")) snprintf(buf, cap, "%.0f%%", 100 * v);
    else if (l > 8 && !strcmp(n + l - 8, "_percent")) snprintf(buf, cap, "%.0f%%", v);
    else if (l > 2 && !strcmp(n + l - 2, "_s")) {
        if (fabs(v) < 1) snprintf(buf, cap, "%.1f ms", v * 1e3);
        else snprintf(buf, cap, "%.2f s", v);
    } else if (metric == STALL_MON_THROUGHPUT) snprintf(buf, cap, "%.2f batches/s", v);
    else snprintf(buf, cap, "%.3g", v);
}

static void fmt_duration(char *buf, size_t cap, double s) {
    if (s < 120) snprintf(buf, cap, "%.0f s", s);
    else if (s < 7200) snprintf(buf, cap, "%.1f min", s / 60);
    else snprintf(buf, cap, "%.1f h", s / 3600);
}

/* Queues one event (under the lock); returns 1. */
static int emit(stall_monitor_t *m, uint64_t t_ns, int state, int kind, const char *rule, int metric, double value,
                double threshold, double baseline, double severity, const char *msg) {
    stall_alert_t a;
    memset(&a, 0, sizeof a);
    a.seq = ++m->seq;
    a.t_ns = t_ns;
    a.state = state;
    stall__strlcpy(a.kind, kind_names[kind], sizeof a.kind);
    if (rule) stall__strlcpy(a.rule, rule, sizeof a.rule);
    else snprintf(a.rule, sizeof a.rule, "%s:%s", kind_names[kind], metric_names[metric]);
    stall__strlcpy(a.metric, metric_names[metric], sizeof a.metric);
    a.value = value;
    a.threshold = threshold;
    a.baseline = baseline;
    a.severity = severity;
    a.suppressed = severity < m->o.min_severity;
    stall__strlcpy(a.message, msg, sizeof a.message);
    if (state == STALL_ALERT_FIRING) {
        m->sum.fired++;
        m->sum.fired_by_kind[kind]++;
        if (a.suppressed) m->sum.suppressed++;
    } else {
        m->sum.resolved++;
    }
    if (m->qn == m->o.queue) { /* full: the oldest goes */
        m->qhead = (m->qhead + 1) % m->o.queue;
        m->qn--;
        m->sum.dropped++;
    }
    m->queue[(m->qhead + m->qn) % m->o.queue] = a;
    m->qn++;
    pthread_cond_broadcast(&m->cond);
    return 1;
}

/* Resolves a rule's alert if it is raised (under the lock). */
static int rule_clear(stall_monitor_t *m, rule_t *x, uint64_t t_ns, double v) {
    x->pending = 0;
    if (!x->active) return 0;
    x->active = 0;
    char vb[48], msg[240];
    fmt_value(vb, sizeof vb, x->r.metric, v);
    snprintf(msg, sizeof msg, "%s cleared: %s is %s", x->name, metric_names[x->r.metric], vb);
    return emit(m, t_ns, STALL_ALERT_RESOLVED, K_THRESHOLD, x->name, x->r.metric, v, x->r.threshold, NAN,
                x->r.severity, msg);
}

int stall_monitor_remove_rule(stall_monitor_t *m, const char *name) {
    if (!m || !name) return stall__err("stall_monitor_remove_rule: monitor and name are required");
    pthread_mutex_lock(&m->lock);
    int rc = stall__err("stall_monitor_remove_rule: no rule named '%s'", name);
    for (int i = 0; i < m->nrules; i++) {
        if (strcmp(m->rules[i].name, name)) continue;
        if (m->rules[i].active) m->sum.active--;
        rule_clear(m, &m->rules[i], stall_now_ns(), m->last_values[m->rules[i].r.metric]);
        memmove(&m->rules[i], &m->rules[i + 1], (size_t)(m->nrules - i - 1) * sizeof m->rules[0]);
        m->nrules--;
        for (int j = i; j < m->nrules; j++) m->rules[j].r.name = m->rules[j].name;
        rc = 0;
        break;
    }
    pthread_mutex_unlock(&m->lock);
    return rc;
}

int stall_monitor_add_default_rules(stall_monitor_t *m, const stall_thresholds_t *th) {
    stall_thresholds_t t;
    if (th) t = *th;
    else memset(&t, 0, sizeof t);
    if (t.memory <= 0) t.memory = 0.9;
    if (t.gpu <= 0) t.gpu = 0.9;
    if (t.cpu <= 0) t.cpu = 0.9;
    const stall_alert_rule_t rules[] = {
        {"host_memory_high", STALL_MON_HOST_MEMORY_USED_SHARE, 0, t.memory, 5, 0.05, 0.9},
        {"gpu_memory_high", STALL_MON_GPU_MEMORY_USED_SHARE, 0, t.gpu, 5, 0.03, 0.9},
        {"data_wait_high", STALL_MON_DATA_WAIT_SHARE, 0, 0.3, 30, 0.1, 0.8},
        {"host_cpu_saturated", STALL_MON_CPU_PERCENT, 0, 100 * t.cpu, 30, 10, 0.6},
    };
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++)
        if (stall_monitor_add_rule(m, &rules[i]) < 0) return -1;
    return 0;
}

/* ------------------------------------------------------------- robust */

static int dcmp(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* The median of v[0..n) (n > 0), sorted in place. */
static double sort_median(double *v, uint32_t n) {
    qsort(v, n, sizeof(double), dcmp);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Median and robust sigma (1.4826 MAD, floored) of the window. */
static void robust(anom_t *a, double *med, double *sigma) {
    uint32_t n = a->n;
    memcpy(a->tmp, a->win, n * sizeof(double));
    double md = sort_median(a->tmp, n);
    for (uint32_t i = 0; i < n; i++) a->tmp[i] = fabs(a->win[i] - md);
    double s = 1.4826 * sort_median(a->tmp, n), floor = REL_SIGMA_FLOOR * fabs(md);
    if (s < floor) s = floor;
    if (s < 1e-12) s = 1e-12;
    *med = md;
    *sigma = s;
}

/* Least squares over n points (x NULL: x = 0, 1, ..., n - 1): slope and r2
 * (r2 = 0 for a flat or single-x set). */
static void fit(const double *x, const double *y, uint32_t n, double *slope, double *r2, double *mean_y) {
    double sx = 0, sy = 0;
    for (uint32_t i = 0; i < n; i++) {
        sx += x ? x[i] : i;
        sy += y[i];
    }
    double mx = sx / n, my = sy / n, sxx = 0, syy = 0, sxy = 0;
    for (uint32_t i = 0; i < n; i++) {
        double dx = (x ? x[i] : i) - mx, dy = y[i] - my;
        sxx += dx * dx;
        syy += dy * dy;
        sxy += dx * dy;
    }
    *slope = sxx > 0 ? sxy / sxx : 0;
    *r2 = sxx > 0 && syy > 0 ? sxy * sxy / (sxx * syy) : 0;
    *mean_y = my;
}

/* The sample `back` places before the newest (0: the newest); back < a->n. */
static double win_back(const anom_t *a, uint32_t cap, uint32_t back) {
    return a->win[(a->head + cap - 1 - back) % cap];
}

/* The median of the `len` samples from `back` places before the newest on
 * (back + len <= a->n). */
static double back_median(anom_t *a, uint32_t cap, uint32_t back, uint32_t len) {
    for (uint32_t i = 0; i < len; i++) a->tmp[i] = win_back(a, cap, back + i);
    return sort_median(a->tmp, len);
}

static void win_push(anom_t *a, uint32_t cap, double v) {
    if (a->n < cap) {
        a->win[a->n++] = v;
        a->head = a->n % cap;
    } else {
        a->win[a->head] = v;
        a->head = (a->head + 1) % cap;
    }
}

/* Whether the window (oldest first) is fitted better by one straight line
 * than by two levels split before its last k samples: a steady climb whose
 * window median lags behind looks flat over a few samples, but it is not a
 * step. Absolute residuals, each level its part's median, so that one spike
 * in the window (which a least-squares line leans towards) does not decide. */
static int ramp_fits_better(anom_t *a, uint32_t cap, uint32_t k) {
    uint32_t n = a->n;
    if (k >= n) return 0;
    double after = back_median(a, cap, 0, k), before = back_median(a, cap, k, n - k);
    for (uint32_t i = 0; i < n; i++) a->tmp[i] = win_back(a, cap, n - 1 - i); /* oldest first */
    double b, r2, my, mx = 0.5 * (n - 1), step = 0, line = 0;
    fit(NULL, a->tmp, n, &b, &r2, &my);
    for (uint32_t i = 0; i < n; i++) {
        step += fabs(a->tmp[i] - (i < n - k ? before : after));
        line += fabs(a->tmp[i] - (my + b * (i - mx)));
    }
    return line <= step;
}

/* ----------------------------------------------------------- anomalies */

static int observe_anomaly(stall_monitor_t *m, size_t ai, uint64_t t_ns, double v, const double *vals) {
    anom_t *a = &m->an[ai];
    int metric = anomaly_metrics[ai].metric, dir = anomaly_metrics[ai].dir;
    const char *what = anomaly_metrics[ai].what;
    int raised = 0, trip = 0;
    double trip_med = 0;
    char vb[48], bb[48], msg[240];
    if (a->n >= MIN_BASELINE) {
        double med, sigma;
        robust(a, &med, &sigma);
        double z = dir * (v - med) / sigma;
        /* spike: a short run of outliers (a score over spike_score and at
         * least SPIKE_MIN_CHANGE off the median: jitter next to a spike is
         * not part of it) that comes back under half the score or half the
         * run's height */
        if (z > m->o.spike_score && dir * (v - med) >= SPIKE_MIN_CHANGE * fabs(med)) {
            if (a->run == 0 || dir * (v - a->run_max) > 0) a->run_max = v;
            if (a->run == 0) a->run_med = med;
            a->run++;
        } else if (a->run > 0 && (z < m->o.spike_score / 2 || dir * (v - a->run_med) < 0.5 * dir * (a->run_max - a->run_med))) {
            if (a->run <= SPIKE_MAX_RUN) {
                fmt_value(vb, sizeof vb, metric, a->run_max);
                fmt_value(bb, sizeof bb, metric, a->run_med);
                snprintf(msg, sizeof msg, "%s spike: %s against a median of %s (%d sample%s)", what, vb, bb, a->run,
                         a->run > 1 ? "s" : "");
                raised += emit(m, t_ns, STALL_ALERT_FIRING, K_SPIKE, NULL, metric, a->run_max, m->o.spike_score,
                               a->run_med, 0.6, msg);
            }
            a->run = 0;
        }
        /* shift: one-sided CUSUM of the clipped robust z */
        double zc = z > Z_CLIP ? Z_CLIP : z < -Z_CLIP ? -Z_CLIP : z;
        a->cusum += zc - CUSUM_K;
        if (a->cusum < 0) a->cusum = 0;
        a->above_n = zc > 1 ? a->above_n + 1 : 0;
        if (a->above_n == 1) a->above_t0 = t_ns;
        trip = a->cusum > m->o.shift_score;
        trip_med = med;
    }
    win_push(a, m->o.window, v);
    if (trip) {
        /* the samples since the change: a new level if they are flat
         * (their newer half no higher than their older half, relative to the
         * jump); still rising is a ramp, the trend detector's */
        uint32_t k = a->above_n < a->n ? a->above_n : a->n;
        if (k >= 5) k--; /* the oldest may straddle the change */
        /* medians: a spike among them moves neither the level nor the halves */
        double newer = back_median(a, m->o.window, 0, k / 2 ? k / 2 : 1);
        double older = back_median(a, m->o.window, k / 2, k - k / 2 ? k - k / 2 : 1);
        double level = back_median(a, m->o.window, 0, k ? k : 1), jump = dir * (level - trip_med);
        if (k < 4 || t_ns - a->above_t0 < SHIFT_HOLD_NS || dir * (newer - older) > 0.3 * jump) {
            a->cusum = m->o.shift_score; /* hold: decide on the next sample */
        } else if (jump < SHIFT_MIN_CHANGE * fabs(trip_med) || ramp_fits_better(a, m->o.window, k)) {
            a->cusum = 0; /* real but too small to alert on, or a steady climb (the trend detector's) */
        } else {
            fmt_value(vb, sizeof vb, metric, level);
            fmt_value(bb, sizeof bb, metric, trip_med);
            snprintf(msg, sizeof msg, "%s level shift: from %s to %s (%+.0f%%)", what, bb, vb,
                     trip_med != 0 ? 100 * (level - trip_med) / fabs(trip_med) : 0.0);
            raised += emit(m, t_ns, STALL_ALERT_FIRING, K_SHIFT, NULL, metric, level, m->o.shift_score, trip_med,
                           0.8, msg);
            /* learn the new level from the samples after the change */
            double keep[64];
            uint32_t nk = k < 64 ? k : 64;
            for (uint32_t i = 0; i < nk; i++) keep[i] = win_back(a, m->o.window, nk - 1 - i);
            a->n = a->head = 0;
            for (uint32_t i = 0; i < nk; i++) win_push(a, m->o.window, keep[i]);
            a->cusum = 0;
            a->above_n = 0;
            a->run = 0;
        }
    }

    /* trend points */
    double ts = (double)t_ns / 1e9;
    a->acc_t += ts;
    a->acc_v += v;
    if (++a->acc_n < m->o.trend_every) return raised;
    uint32_t cap = m->o.trend_window;
    uint32_t slot = a->tn < cap ? a->tn : a->thead;
    a->tt[slot] = a->acc_t / a->acc_n;
    a->tv[slot] = a->acc_v / a->acc_n;
    if (a->tn < cap) a->tn++;
    a->thead = (slot + 1) % cap;
    a->acc_t = a->acc_v = 0;
    a->acc_n = 0;
    if (a->tn < MIN_TREND_POINTS) return raised;
    double slope, r2, level;
    fit(a->tt, a->tv, a->tn, &slope, &r2, &level);
    double t0 = a->tt[0], t1 = a->tt[0];
    for (uint32_t i = 1; i < a->tn; i++) {
        if (a->tt[i] < t0) t0 = a->tt[i];
        if (a->tt[i] > t1) t1 = a->tt[i];
    }
    double change = level != 0 ? dir * slope * (t1 - t0) / fabs(level) : 0;
    a->slope = slope;
    a->r2 = r2;
    a->level = level;
    a->fitted = 1;
    if (!a->trend_active && r2 >= m->o.trend_r2 && change >= m->o.trend_change) {
        a->trend_active = 1;
        m->sum.active++;
        fmt_value(vb, sizeof vb, metric, fabs(slope) * 60);
        snprintf(msg, sizeof msg, "%s %s by %s per minute over the last %.0f s (%+.0f%%, r2 %.2f)", what,
                 slope > 0 ? "rising" : "falling", vb, t1 - t0, 100 * dir * change, r2);
        raised += emit(m, t_ns, STALL_ALERT_FIRING, K_TREND, NULL, metric, vals[metric], r2, slope, 0.8, msg);
    } else if (a->trend_active && (r2 < 0.8 * m->o.trend_r2 || change < 0.5 * m->o.trend_change)) {
        a->trend_active = 0;
        m->sum.active--;
        snprintf(msg, sizeof msg, "%s no longer trending (r2 %.2f, %+.0f%% over the window)", what, r2,
                 100 * dir * change);
        raised += emit(m, t_ns, STALL_ALERT_RESOLVED, K_TREND, NULL, metric, vals[metric], r2, slope, 0.8, msg);
    }

    /* out-of-memory prediction from the growth */
    if (metric != STALL_MON_MEMORY_BYTES && metric != STALL_MON_GPU_MEMORY_USED_BYTES) return raised;
    double left_bytes = NAN;
    if (metric == STALL_MON_MEMORY_BYTES) left_bytes = vals[STALL_MON_HOST_MEMORY_AVAILABLE_BYTES];
    else {
        double used = vals[STALL_MON_GPU_MEMORY_USED_BYTES], share = vals[STALL_MON_GPU_MEMORY_USED_SHARE];
        if (share > 0 && isfinite(used)) left_bytes = used / share - used;
    }
    double secs = slope > 0 && r2 >= 0.5 && isfinite(left_bytes) ? left_bytes / slope : NAN;
    if (metric == STALL_MON_MEMORY_BYTES) m->sum.oom_host_s = secs;
    else m->sum.oom_gpu_s = secs;
    const char *where = metric == STALL_MON_MEMORY_BYTES ? "host" : "GPU";
    char db[32], sb[48];
    if (!a->oom_active && isfinite(secs) && secs < m->o.oom_horizon_s) {
        a->oom_active = 1;
        m->sum.active++;
        fmt_duration(db, sizeof db, secs);
        fmt_value(sb, sizeof sb, STALL_MON_MEMORY_BYTES, slope);
        fmt_value(vb, sizeof vb, STALL_MON_MEMORY_BYTES, left_bytes);
        snprintf(msg, sizeof msg, "%s memory runs out in %s at the current growth (+%s/s, %s left)", where, db, sb,
                 vb);
        raised += emit(m, t_ns, STALL_ALERT_FIRING, K_OOM, NULL, metric, secs, m->o.oom_horizon_s, slope, 0.95, msg);
    } else if (a->oom_active && !(isfinite(secs) && secs < 1.5 * m->o.oom_horizon_s)) {
        a->oom_active = 0;
        m->sum.active--;
        snprintf(msg, sizeof msg, "%s memory no longer predicted to run out within %.0f s", where,
                 1.5 * m->o.oom_horizon_s);
        raised += emit(m, t_ns, STALL_ALERT_RESOLVED, K_OOM, NULL, metric, secs, m->o.oom_horizon_s, slope, 0.95,
                       msg);
    }
    return raised;
}

/* ------------------------------------------------------------- observe */

static int observe_locked(stall_monitor_t *m, uint64_t t_ns, const double *v) {
    int raised = 0;
    stall_monitor_summary_t *s = &m->sum;
    if (!s->samples) s->first_ns = t_ns;
    s->samples++;
    s->last_ns = t_ns;
    for (int i = 0; i < STALL_MON_COUNT_; i++) {
        m->last_values[i] = v[i];
        if (!isfinite(v[i])) continue;
        s->last[i] = v[i];
        s->n[i]++;
        s->avg[i] += (v[i] - s->avg[i]) / (double)s->n[i];
        if (!(v[i] >= s->min[i])) s->min[i] = v[i];
        if (!(v[i] <= s->max[i])) s->max[i] = v[i];
    }
    char vb[48], tb[48], msg[240];
    for (int i = 0; i < m->nrules; i++) {
        rule_t *x = &m->rules[i];
        double val = v[x->r.metric];
        if (!isfinite(val)) continue;
        int cond = x->r.below ? val < x->r.threshold : val > x->r.threshold;
        if (!x->active) {
            if (!cond) {
                x->pending = 0;
                continue;
            }
            if (!x->pending) {
                x->pending = 1;
                x->since_ns = t_ns;
            }
            if ((double)(t_ns - x->since_ns) / 1e9 + 1e-9 < x->r.for_s) continue;
            x->active = 1;
            s->active++;
            fmt_value(vb, sizeof vb, x->r.metric, val);
            fmt_value(tb, sizeof tb, x->r.metric, x->r.threshold);
            snprintf(msg, sizeof msg, "%s: %s is %s, %s %s for %.0f s", x->name, metric_names[x->r.metric], vb,
                     x->r.below ? "below" : "above", tb, (double)(t_ns - x->since_ns) / 1e9);
            raised += emit(m, t_ns, STALL_ALERT_FIRING, K_THRESHOLD, x->name, x->r.metric, val, x->r.threshold, NAN,
                           x->r.severity, msg);
        } else {
            int clear = x->r.below ? val > x->r.threshold + x->r.hysteresis : val < x->r.threshold - x->r.hysteresis;
            if (clear) {
                s->active--;
                raised += rule_clear(m, x, t_ns, val);
            }
        }
    }
    if (!m->o.no_anomalies)
        for (size_t i = 0; i < NANOM; i++) {
            double val = v[anomaly_metrics[i].metric];
            if (isfinite(val)) raised += observe_anomaly(m, i, t_ns, val, v);
        }
    return raised;
}

int stall_monitor_observe(stall_monitor_t *m, uint64_t t_ns, const double *values) {
    if (!m || !values) return stall__err("stall_monitor_observe: monitor and values are required");
    pthread_mutex_lock(&m->lock);
    if (m->sum.samples && t_ns < m->sum.last_ns) {
        pthread_mutex_unlock(&m->lock);
        return stall__err("stall_monitor_observe: t_ns went back in time");
    }
    int n = observe_locked(m, t_ns, values);
    pthread_mutex_unlock(&m->lock);
    return n;
}

/* ------------------------------------------------------- engine reading */

/* The metrics of engine e now (loop metrics NaN unless a loop span ended). */
static void read_engine(stall_monitor_t *m, stall_engine_t *e, uint64_t now, double *v) {
    for (int i = 0; i < STALL_MON_COUNT_; i++) v[i] = NAN;
    stall_sampler_t *s = stall_engine_sampler(e);
    stall_sys_t y;
    double usable = NAN;
    if (s && stall_sampler_latest(s, &y) == 0) {
        if (y.valid & STALL_SYS_RATES) {
            double busy = 1 - y.cpu_idle - y.cpu_iowait;
            v[STALL_MON_CPU_PERCENT] = 100 * (busy < 0 ? 0 : busy > 1 ? 1 : busy);
        }
        if (y.usable_cores > 0) usable = y.usable_cores;
        if (y.valid & STALL_SYS_MEM) {
            double avail = (double)y.mem_usable_available_bytes;
            double total = (double)y.mem_total_bytes;
            if ((y.valid & STALL_SYS_CG_MEM) && y.cg_mem_limit_bytes != UINT64_MAX &&
                (double)y.cg_mem_limit_bytes < total)
                total = (double)y.cg_mem_limit_bytes;
            v[STALL_MON_HOST_MEMORY_AVAILABLE_BYTES] = avail;
            if (total > 0) v[STALL_MON_HOST_MEMORY_USED_SHARE] = avail >= total ? 0 : 1 - avail / total;
        }
    }
    stall_proc_sample_t *ps = m->procs;
    size_t np = s ? stall_sampler_procs(s, ps, MAX_TREE) : 0;
    if (np > MAX_TREE) np = MAX_TREE;
    double cores = 0, mem = 0;
    int have_cpu = 0, have_mem = 0;
    for (size_t i = 0; i < np; i++) {
        if (ps[i].valid & STALL_PROC_RATES) {
            cores += ps[i].cpu_util;
            have_cpu = 1;
        }
        if (ps[i].valid & STALL_PROC_STAT) {
            mem += (double)(ps[i].depth > 0 && (ps[i].valid & STALL_PROC_PSS) ? ps[i].pss_bytes : ps[i].rss_bytes);
            have_mem = 1;
        }
    }
    if (have_cpu) {
        v[STALL_MON_TREE_CPU_CORES] = cores;
        if (isfinite(usable)) v[STALL_MON_TREE_CPU_SHARE] = cores / usable;
    }
    if (have_mem) v[STALL_MON_MEMORY_BYTES] = mem;
    stall_gpu_t g[16];
    size_t ng = s ? stall_sampler_gpus(s, g, 16) : 0;
    if (ng > 16) ng = 16;
    double util = 0, used = 0, total = 0;
    int nu = 0, nm = 0;
    for (size_t i = 0; i < ng; i++) {
        if (g[i].valid & STALL_GPU_UTIL) {
            util += g[i].util_sm_pct;
            nu++;
        }
        if (g[i].valid & STALL_GPU_MEM) {
            used += (double)g[i].mem_used_bytes;
            total += (double)g[i].mem_total_bytes;
            nm++;
        }
    }
    if (nu) v[STALL_MON_GPU_UTIL_PERCENT] = util / nu;
    if (nm) {
        v[STALL_MON_GPU_MEMORY_USED_BYTES] = used;
        if (total > 0) v[STALL_MON_GPU_MEMORY_USED_SHARE] = used / total;
    }
    /* the loop, over spans of at least loop_span_ns with one batch or more */
    if (m->loop_seen && now - m->loop_t_ns < m->o.loop_span_ns) return;
    uint64_t batches = 0, wait_ns = 0;
    if (stall__loop_totals(stall_engine_agg(e), &batches, &wait_ns) < 0) return;
    if (!m->loop_seen) {
        m->loop_seen = 1;
        m->loop_t_ns = now;
        m->loop_batches = batches;
        m->loop_wait_ns = wait_ns;
        return;
    }
    double dt = (double)(now - m->loop_t_ns) / 1e9;
    uint64_t db = batches - m->loop_batches;
    double dw = (double)(wait_ns - m->loop_wait_ns) / 1e9;
    if (db == 0) {
        /* before the loop's first batch the span starts later; after it, a
         * batch is still coming (a slow step): the span goes on */
        if (batches == 0) m->loop_t_ns = now;
        return;
    }
    v[STALL_MON_STEP_TIME_S] = dt / (double)db;
    v[STALL_MON_THROUGHPUT] = (double)db / dt;
    v[STALL_MON_DATA_WAIT_SHARE] = dw / dt > 1 ? 1 : dw / dt;
    m->sum.batches += db;
    m->sum.data_wait_s += dw;
    m->loop_t_ns = now;
    m->loop_batches = batches;
    m->loop_wait_ns = wait_ns;
}

int stall_monitor_tick(stall_monitor_t *m, stall_engine_t *e) {
    if (!m || !e) return stall__err("stall_monitor_tick: monitor and engine are required");
    double v[STALL_MON_COUNT_];
    uint64_t now = stall_now_ns();
    pthread_mutex_lock(&m->lock);
    read_engine(m, e, now, v);
    int n = observe_locked(m, now, v);
    pthread_mutex_unlock(&m->lock);
    return n;
}

static void *monitor_main(void *arg) {
    pthread_setname_np(pthread_self(), "stall-monitor"); /* top -H, /proc/<pid>/task/<tid>/comm */
    stall_monitor_t *m = arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    uint64_t next = stall_now_ns();
    pthread_mutex_lock(&m->lock);
    while (!m->stop) {
        pthread_mutex_unlock(&m->lock);
        stall_monitor_tick(m, m->engine);
        pthread_mutex_lock(&m->lock);
        next += m->o.interval_ns;
        uint64_t now = stall_now_ns();
        if (next <= now) next = now + m->o.interval_ns; /* fell behind: no burst of catch-up ticks */
        struct timespec ts = {(time_t)(next / 1000000000ull), (long)(next % 1000000000ull)};
        while (!m->stop && pthread_cond_timedwait(&m->cond, &m->lock, &ts) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&m->lock);
    return NULL;
}

int stall_monitor_start(stall_monitor_t *m, stall_engine_t *e) {
    if (!m || !e) return stall__err("stall_monitor_start: monitor and engine are required");
    pthread_mutex_lock(&m->lock);
    if (m->running) {
        pthread_mutex_unlock(&m->lock);
        return stall__err("stall_monitor_start: already running");
    }
    m->engine = e;
    m->stop = 0;
    m->pid = getpid();
    m->loop_seen = 0;
    pthread_mutex_unlock(&m->lock);
    int rc = pthread_create(&m->thread, NULL, monitor_main, m);
    if (rc) return stall__errno(rc, "stall_monitor_start: cannot start the thread");
    pthread_mutex_lock(&m->lock);
    m->running = 1;
    pthread_mutex_unlock(&m->lock);
    return 0;
}

int stall_monitor_stop(stall_monitor_t *m) {
    if (!m) return stall__err("stall_monitor_stop: monitor is required");
    if (m->running && m->pid != getpid()) {
        /* a forked child: the thread (and whoever held the lock) stayed in the parent */
        m->running = 0;
        return 0;
    }
    pthread_mutex_lock(&m->lock);
    int running = m->running;
    m->stop = 1;
    pthread_cond_broadcast(&m->cond);
    pthread_mutex_unlock(&m->lock);
    if (running) pthread_join(m->thread, NULL);
    pthread_mutex_lock(&m->lock);
    m->running = 0;
    pthread_mutex_unlock(&m->lock);
    return 0;
}

/* ------------------------------------------------------------- readers */

int stall_monitor_next(stall_monitor_t *m, stall_alert_t *out, int timeout_ms) {
    if (!m || !out) return stall__err("stall_monitor_next: monitor and out are required");
    struct timespec ts;
    if (timeout_ms > 0) {
        uint64_t dl = stall_now_ns() + (uint64_t)timeout_ms * 1000000ull;
        ts.tv_sec = (time_t)(dl / 1000000000ull);
        ts.tv_nsec = (long)(dl % 1000000000ull);
    }
    pthread_mutex_lock(&m->lock);
    int rc = 0;
    while (!m->qn && !m->woken && timeout_ms != 0) {
        if (timeout_ms < 0) pthread_cond_wait(&m->cond, &m->lock);
        else if (pthread_cond_timedwait(&m->cond, &m->lock, &ts) == ETIMEDOUT) break;
    }
    if (m->qn) {
        *out = m->queue[m->qhead];
        m->qhead = (m->qhead + 1) % m->o.queue;
        m->qn--;
        rc = 1;
    } else {
        m->woken = 0;
    }
    pthread_mutex_unlock(&m->lock);
    return rc;
}

void stall_monitor_wake(stall_monitor_t *m) {
    if (!m) return;
    pthread_mutex_lock(&m->lock);
    m->woken = 1;
    pthread_cond_broadcast(&m->cond);
    pthread_mutex_unlock(&m->lock);
}

int stall_monitor_summary(stall_monitor_t *m, stall_monitor_summary_t *out) {
    if (!m || !out) return stall__err("stall_monitor_summary: monitor and out are required");
    pthread_mutex_lock(&m->lock);
    *out = m->sum;
    for (int i = 0; i < STALL_MON_COUNT_; i++)
        if (!out->n[i]) out->avg[i] = NAN;
    pthread_mutex_unlock(&m->lock);
    return 0;
}

void stall_monitor_free(stall_monitor_t *m) {
    if (!m) return;
    int forked = m->running && m->pid != getpid();
    stall_monitor_stop(m);
    if (forked) return; /* its lock may be held forever in this copy: leave it */
    pthread_mutex_destroy(&m->lock);
    pthread_cond_destroy(&m->cond);
    release(m);
}

/* ---------------------------------------------------------------- output */

int stall_alert_log(const stall_alert_t *a) {
    if (!a) return stall__err("stall_alert_log: alert is required");
    stall_field_t f[] = {
        {"type", STALL_FIELD_STR, {.s = a->kind}},
        {"rule", STALL_FIELD_STR, {.s = a->rule}},
        {"metric", STALL_FIELD_STR, {.s = a->metric}},
        {"value", STALL_FIELD_DOUBLE, {.d = a->value}},
        {"threshold", STALL_FIELD_DOUBLE, {.d = a->threshold}},
        {"baseline", STALL_FIELD_DOUBLE, {.d = a->baseline}},
        {"severity", STALL_FIELD_DOUBLE, {.d = a->severity}},
        {"suppressed", STALL_FIELD_BOOL, {.b = a->suppressed}},
        {"message", STALL_FIELD_STR, {.s = a->message}},
        {"seq", STALL_FIELD_UINT, {.u = a->seq}},
    };
    int firing = a->state == STALL_ALERT_FIRING;
    return stall_log(firing && !a->suppressed ? STALL_LOG_WARNING : STALL_LOG_INFO,
                     firing ? "alert" : "alert_resolved", f, sizeof f / sizeof f[0]);
}
