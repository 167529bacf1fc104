/*
 * report_json.c - report.json of a run ("schema": "stall.report/1").
 *
 * Keys of the contract (other tools read them): schema, command,
 * exit_status, duration_s, bottlenecks[type, severity, summary, evidence,
 * suggestions[action, params, expected_speedup]], breakdown{data_wait_frac,
 * compute_frac}, loaders[...], processes, system, dropped_events, alerts[t_s,
 * state, type, rule, metric, value, threshold, baseline, severity,
 * suppressed, message], alerts_dropped. The rest
 * (ops, series, throughput...) feeds report.html and people. Units are in
 * the key names; unknown numbers are null, never 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export.h"
#include "internal.h"
#include "report.h"

#define MAX_SERIES_POINTS 1500 /* per metric: a 24 h run stays a few MB */

static void num(FILE *f, double v, int decimals) {
    if (isfinite(v)) fprintf(f, "%.*f", decimals, v);
    else fputs("null", f);
}

static void key(FILE *f, int *first, const char *k) {
    if (!*first) fputc(',', f);
    *first = 0;
    stall__json_str(f, k);
    fputc(':', f);
}

static void knum(FILE *f, int *first, const char *k, double v, int decimals) {
    key(f, first, k);
    num(f, v, decimals);
}

static void kint(FILE *f, int *first, const char *k, long long v) {
    key(f, first, k);
    fprintf(f, "%lld", v);
}

static void kstr(FILE *f, int *first, const char *k, const char *v) {
    key(f, first, k);
    if (v) stall__json_str(f, v);
    else fputs("null", f);
}

static void kbool(FILE *f, int *first, const char *k, int v) {
    key(f, first, k);
    fputs(v ? "true" : "false", f);
}

/* The live monitor's alert events: when (s since the start), firing or
 * resolved, what, and the numbers. */
static void alerts(FILE *f, const stall_report_t *r) {
    fputc('[', f);
    for (size_t i = 0; i < r->nalerts; i++) {
        const stall_alert_t *a = &r->alerts[i];
        int first = 1;
        fputs(i ? ",{" : "{", f);
        knum(f, &first, "t_s", a->t_ns >= r->start_ns ? (double)(a->t_ns - r->start_ns) / 1e9 : NAN, 3);
        kstr(f, &first, "state", a->state == STALL_ALERT_FIRING ? "firing" : "resolved");
        kstr(f, &first, "type", a->kind);
        kstr(f, &first, "rule", a->rule);
        kstr(f, &first, "metric", a->metric);
        knum(f, &first, "value", a->value, 6);
        knum(f, &first, "threshold", a->threshold, 6);
        knum(f, &first, "baseline", a->baseline, 6);
        knum(f, &first, "severity", a->severity, 2);
        kbool(f, &first, "suppressed", a->suppressed);
        kstr(f, &first, "message", a->message);
        fputc('}', f);
    }
    fputc(']', f);
}

static void kvs(FILE *f, const stall_kv_t *kv, int n) {
    fputc('{', f);
    for (int i = 0; i < n; i++) {
        if (i) fputc(',', f);
        stall__json_str(f, kv[i].key);
        fputc(':', f);
        if (kv[i].is_str) stall__json_str(f, kv[i].val);
        else fputs(kv[i].val, f);
    }
    fputc('}', f);
}

static double sec(uint64_t ns) { return (double)ns / 1e9; }

static void findings(FILE *f, const stall_analysis_t *a) {
    fputc('[', f);
    for (int i = 0; i < a->nfindings; i++) {
        const stall_finding_t *x = &a->findings[i];
        int first = 1;
        if (i) fputc(',', f);
        fputc('{', f);
        kstr(f, &first, "type", x->type);
        kstr(f, &first, "title", stall__finding_title(x->type));
        knum(f, &first, "severity", x->severity, 4);
        kstr(f, &first, "summary", x->summary);
        if (x->detector[0]) kstr(f, &first, "detector", x->detector);
        key(f, &first, "evidence");
        kvs(f, x->evidence, x->nevidence);
        key(f, &first, "suggestions");
        fputc('[', f);
        for (int j = 0; j < x->nsugg; j++) {
            const stall_suggestion_t *s = &x->sugg[j];
            int f2 = 1;
            if (j) fputc(',', f);
            fputc('{', f);
            kstr(f, &f2, "action", s->action);
            key(f, &f2, "params");
            kvs(f, s->params, s->nparams);
            knum(f, &f2, "expected_speedup", s->expected_speedup, 2);
            kstr(f, &f2, "why", s->why);
            fputc('}', f);
        }
        fputs("]}", f);
    }
    fputc(']', f);
}

static void breakdown(FILE *f, const stall_analysis_t *a) {
    int first = 1;
    int loop = a->loop_ns > 0;
    fputc('{', f);
    knum(f, &first, "data_wait_frac", loop ? a->data_wait_frac : NAN, 4);
    knum(f, &first, "compute_frac", loop ? a->compute_frac : NAN, 4);
    knum(f, &first, "loop_s", loop ? sec(a->loop_ns) : NAN, 3);
    knum(f, &first, "wait_s", loop ? sec(a->wait_ns) : NAN, 3);
    knum(f, &first, "step_s", loop ? sec(a->step_ns) : NAN, 3);
    knum(f, &first, "warmup_s", sec(a->warmup_ns), 3);
    knum(f, &first, "fetch_s", sec(a->fetch_ns), 3);
    knum(f, &first, "collate_s", sec(a->collate_ns), 3);
    knum(f, &first, "sampler_s", sec(a->sampler_ns), 3);
    knum(f, &first, "pin_s", sec(a->pin_ns), 3);
    knum(f, &first, "h2d_s", sec(a->h2d_ns), 3);
    knum(f, &first, "backward_s", sec(a->backward_ns), 3);
    knum(f, &first, "optimizer_s", sec(a->optimizer_ns), 3);
    knum(f, &first, "outside_loop_s", sec(a->duration_ns > a->loop_ns ? a->duration_ns - a->loop_ns : 0), 3);
    fputc('}', f);
}

static void loaders(FILE *f, const stall_analysis_t *a) {
    fputc('[', f);
    for (int i = 0; i < a->nloaders; i++) {
        const stall_loader_t *l = &a->loaders[i];
        int first = 1;
        if (i) fputc(',', f);
        fputc('{', f);
        kstr(f, &first, "id", l->id);
        kint(f, &first, "pid", l->pid);
        if (l->batch_size >= 0) kint(f, &first, "batch_size", l->batch_size);
        else kstr(f, &first, "batch_size", NULL);
        kint(f, &first, "num_workers", l->num_workers);
        kbool(f, &first, "pin_memory", l->pin_memory);
        kbool(f, &first, "persistent_workers", l->persistent_workers);
        if (l->prefetch_factor >= 0) kint(f, &first, "prefetch_factor", l->prefetch_factor);
        else kstr(f, &first, "prefetch_factor", NULL);
        kbool(f, &first, "drop_last", l->drop_last);
        kstr(f, &first, "dataset_type", l->dataset_type);
        kstr(f, &first, "dataset_kind", l->dataset_kind);
        if (l->dataset_len >= 0) kint(f, &first, "dataset_len", l->dataset_len);
        else kstr(f, &first, "dataset_len", NULL);
        kstr(f, &first, "sampler_type", l->sampler_type);
        kstr(f, &first, "batch_sampler_type", l->batch_sampler_type);
        kstr(f, &first, "collate_fn", l->collate_fn);
        kstr(f, &first, "multiprocessing_context", l->mp_context[0] ? l->mp_context : NULL);
        kint(f, &first, "batches", (long long)l->batches);
        knum(f, &first, "wait_s", sec(l->wait_ns), 4);
        knum(f, &first, "fetch_s", sec(stall__loader_fetch_self_ns(l)), 4);
        knum(f, &first, "fetch_cpu_frac", stall__loader_cpu_frac(l), 3);
        knum(f, &first, "collate_s", sec(l->collate_ns), 4);
        knum(f, &first, "sampler_s", sec(l->sampler_ns), 4);
        knum(f, &first, "pin_s", sec(l->pin_ns), 4);
        kint(f, &first, "fetches", (long long)l->fetches);
        kint(f, &first, "worker_starts", (long long)l->starts);
        knum(f, &first, "worker_start_s", sec(l->start_ns), 4);
        knum(f, &first, "warmup_s", sec(l->warmup_ns), 4);
        fputc('}', f);
    }
    fputc(']', f);
}

static void ops(FILE *f, stall_agg_t *agg, uint64_t session_id) {
    enum { CAP = 512 };
    stall_op_stats_t *o = malloc(CAP * sizeof *o);
    ssize_t n = o ? stall_agg_ops(agg, session_id, o, CAP) : 0;
    if (n > CAP) n = CAP;
    fputc('[', f);
    for (ssize_t i = 0; i < n; i++) {
        int first = 1;
        if (i) fputc(',', f);
        fputc('{', f);
        kstr(f, &first, "name", o[i].name);
        kstr(f, &first, "kind", stall_kind_name(o[i].kind));
        kint(f, &first, "count", (long long)o[i].count);
        knum(f, &first, "total_s", sec(o[i].total_ns), 6);
        knum(f, &first, "self_s", sec(o[i].self_ns), 6);
        knum(f, &first, "mean_ms", o[i].count ? (double)o[i].total_ns / 1e6 / (double)o[i].count : NAN, 4);
        knum(f, &first, "p50_ms", (double)o[i].p50_ns / 1e6, 4);
        knum(f, &first, "p95_ms", (double)o[i].p95_ns / 1e6, 4);
        knum(f, &first, "p99_ms", (double)o[i].p99_ns / 1e6, 4);
        knum(f, &first, "cpu_s", o[i].cpu_count ? sec(o[i].cpu_ns) : NAN, 6);
        kint(f, &first, "processes", o[i].processes);
        kint(f, &first, "truncated", (long long)o[i].truncated);
        fputc('}', f);
    }
    fputc(']', f);
    free(o);
}

static void processes(FILE *f, const stall_report_t *r) {
    fputc('[', f);
    for (size_t i = 0; i < r->nprocs; i++) {
        const stall_proc_summary_t *p = &r->procs[i];
        int first = 1;
        if (i) fputc(',', f);
        fputc('{', f);
        kint(f, &first, "pid", p->pid);
        kint(f, &first, "ppid", p->ppid);
        kstr(f, &first, "label", p->label);
        kstr(f, &first, "comm", p->comm);
        kbool(f, &first, "alive", p->alive);
        knum(f, &first, "cpu_s", p->cpu_s, 3);
        kint(f, &first, "max_rss_bytes", (long long)p->max_rss_bytes);
        knum(f, &first, "max_cpu_cores", p->max_cpu_cores, 3);
        kint(f, &first, "spans", (long long)p->spans);
        kint(f, &first, "dropped", (long long)p->dropped);
        fputc('}', f);
    }
    fputc(']', f);
}

static void sys_json(FILE *f, stall_sampler_t *s) {
    int first = 1;
    stall_sys_t y;
    fputc('{', f);
    if (s && stall_sampler_latest(s, &y) == 0) {
        if (y.valid & STALL_SYS_CPU) {
            kint(f, &first, "ncpus", y.ncpus);
            knum(f, &first, "usable_cores", y.usable_cores, 2);
        }
        if (y.valid & STALL_SYS_MEM) kint(f, &first, "mem_total_bytes", (long long)y.mem_total_bytes);
        kint(f, &first, "cgroup_version", y.cgroup_version);
        if (y.valid & STALL_SYS_CG_MEM && y.cg_mem_limit_bytes != UINT64_MAX)
            kint(f, &first, "cgroup_mem_limit_bytes", (long long)y.cg_mem_limit_bytes);
        if (y.valid & STALL_SYS_CG_CPU && y.cg_cpu_quota_us >= 0 && y.cg_cpu_period_us)
            knum(f, &first, "cgroup_cpu_limit_cores", (double)y.cg_cpu_quota_us / (double)y.cg_cpu_period_us, 2);
    }
    key(f, &first, "gpus");
    fputc('[', f);
    stall_gpu_t g[16];
    size_t n = s ? stall_sampler_gpus(s, g, 16) : 0;
    for (size_t i = 0; i < n && i < 16; i++) {
        int f2 = 1;
        if (i) fputc(',', f);
        fputc('{', f);
        kint(f, &f2, "index", g[i].index);
        kstr(f, &f2, "name", g[i].name);
        if (g[i].valid & STALL_GPU_MEM) kint(f, &f2, "mem_total_bytes", (long long)g[i].mem_total_bytes);
        fputc('}', f);
    }
    fputs("]}", f);
}

static void series(FILE *f, const stall_report_t *r) {
    int first = 1;
    fputc('{', f);
    kint(f, &first, "t0_ns", (long long)r->start_ns);
    knum(f, &first, "interval_s", r->interval_s, 3);
    key(f, &first, "metrics");
    fputc('{', f);
    stall_point_t *p = malloc(MAX_SERIES_POINTS * 4 * sizeof *p);
    int fm = 1;
    for (int m = 0; r->sampler && p && m < STALL_M_COUNT_; m++) {
        ssize_t n = stall_sampler_series(r->sampler, m, p, MAX_SERIES_POINTS * 4);
        if (n <= 0) continue;
        if (n > MAX_SERIES_POINTS * 4) n = MAX_SERIES_POINTS * 4;
        int known = 0;
        for (ssize_t i = 0; i < n && !known; i++) known = p[i].n > 0 && isfinite(p[i].avg);
        if (!known) continue;
        /* fold consecutive points so that at most MAX_SERIES_POINTS remain */
        size_t step = ((size_t)n + MAX_SERIES_POINTS - 1) / MAX_SERIES_POINTS;
        key(f, &fm, stall_metric_name(m));
        fputc('[', f);
        int fp = 1;
        for (size_t i = 0; i < (size_t)n; i += step) {
            double mn = INFINITY, mx = -INFINITY, sum = 0;
            uint32_t cnt = 0;
            for (size_t j = i; j < i + step && j < (size_t)n; j++) {
                if (!p[j].n || !isfinite(p[j].avg)) continue;
                mn = fmin(mn, p[j].min);
                mx = fmax(mx, p[j].max);
                sum += p[j].avg * p[j].n;
                cnt += p[j].n;
            }
            if (!cnt || p[i].t_ns < r->start_ns) continue;
            if (!fp) fputc(',', f);
            fp = 0;
            fputc('[', f);
            num(f, sec(p[i].t_ns - r->start_ns), 3);
            fputc(',', f);
            num(f, mn, 6);
            fputc(',', f);
            num(f, sum / cnt, 6);
            fputc(',', f);
            num(f, mx, 6);
            fputc(']', f);
        }
        fputc(']', f);
    }
    free(p);
    fputc('}', f);
    key(f, &first, "loop");
    fputc('[', f);
    /* one point per second: a long run's are folded (means of the known
     * values, at the first point's time) to at most MAX_SERIES_POINTS */
    size_t step = (r->nloop + MAX_SERIES_POINTS - 1) / MAX_SERIES_POINTS;
    if (!step) step = 1;
    for (size_t i = 0; i < r->nloop; i += step) {
        double sum[2] = {0, 0};
        int cnt[2] = {0, 0};
        for (size_t j = i; j < i + step && j < r->nloop; j++)
            for (int k = 0; k < 2; k++)
                if (isfinite(r->loop[j][1 + k])) sum[k] += r->loop[j][1 + k], cnt[k]++;
        if (i) fputc(',', f);
        fputc('[', f);
        num(f, r->loop[i][0], 3);
        fputc(',', f);
        num(f, cnt[0] ? sum[0] / cnt[0] : NAN, 3);
        fputc(',', f);
        num(f, cnt[1] ? sum[1] / cnt[1] : NAN, 4);
        fputc(']', f);
    }
    fputs("]}", f);
}

void stall__proc_summary_update(stall_proc_summary_t *p, const stall_proc_sample_t *s) {
    p->pid = s->pid;
    p->starttime = s->starttime;
    p->ppid = s->ppid;
    snprintf(p->comm, sizeof p->comm, "%s", s->comm);
    p->alive = 1;
    if (s->valid & STALL_PROC_STAT) {
        p->cpu_s = (double)(s->utime_ns + s->stime_ns) / 1e9;
        if (s->rss_bytes > p->max_rss_bytes) p->max_rss_bytes = s->rss_bytes;
    }
    if ((s->valid & STALL_PROC_RATES) && s->cpu_util > p->max_cpu_cores) p->max_cpu_cores = s->cpu_util;
}

char *stall__report_json(const stall_report_t *r, size_t *len) {
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (!f) {
        stall__errno(errno, "stall__report_json: open_memstream");
        return NULL;
    }
    const stall_analysis_t *a = r->an;
    int first = 1;
    fputc('{', f);
    kstr(f, &first, "schema", "stall.report/1");
    kstr(f, &first, "stall_version", STALL_VERSION_STRING);
    key(f, &first, "command");
    fputc('[', f);
    for (int i = 0; i < r->argc; i++) {
        if (i) fputc(',', f);
        stall__json_str(f, r->argv[i]);
    }
    fputc(']', f);
    kint(f, &first, "exit_status", r->exit_status);
    if (r->term_signal) {
        char sig[32];
        const char *abbrev = sigabbrev_np(r->term_signal);
        snprintf(sig, sizeof sig, "SIG%s", abbrev ? abbrev : "?");
        kstr(f, &first, "signal", sig);
    } else {
        kstr(f, &first, "signal", NULL);
    }
    char when[32] = "";
    struct tm tm;
    if (gmtime_r(&r->started_at, &tm)) strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    kstr(f, &first, "started_at", when);
    knum(f, &first, "duration_s", sec(r->end_ns - r->start_ns), 3);
    kstr(f, &first, "level", r->level);
    knum(f, &first, "interval_s", r->interval_s, 3);
    key(f, &first, "bottlenecks");
    findings(f, a);
    key(f, &first, "breakdown");
    breakdown(f, a);
    key(f, &first, "throughput");
    {
        int f2 = 1;
        fputc('{', f);
        kint(f, &f2, "batches", (long long)a->batches);
        knum(f, &f2, "batches_per_s", a->loop_ns && a->batches ? (double)a->batches / sec(a->loop_ns) : NAN, 3);
        knum(f, &f2, "step_ms_mean", a->batches ? (double)a->step_ns / 1e6 / (double)a->batches : NAN, 3);
        knum(f, &f2, "wait_ms_mean", a->batches ? (double)a->wait_ns / 1e6 / (double)a->batches : NAN, 3);
        fputc('}', f);
    }
    key(f, &first, "loaders");
    loaders(f, a);
    key(f, &first, "ops");
    ops(f, r->agg, r->session_id);
    key(f, &first, "processes");
    processes(f, r);
    key(f, &first, "system");
    sys_json(f, r->sampler);
    key(f, &first, "series");
    series(f, r);
    kint(f, &first, "dropped_events", (long long)r->dropped_events);
    key(f, &first, "alerts");
    alerts(f, r);
    kint(f, &first, "alerts_dropped", (long long)r->alerts_dropped);
    key(f, &first, "outputs");
    {
        int f2 = 1;
        fputc('{', f);
        kstr(f, &f2, "report_json", r->out_json);
        kstr(f, &f2, "report_html", r->out_html);
        kstr(f, &f2, "trace_json", r->out_trace);
        fputc('}', f);
    }
    fputs("}\n", f);
    if (fclose(f) != 0) {
        free(buf);
        stall__err("stall__report_json: out of memory");
        return NULL;
    }
    if (len) *len = size;
    return buf;
}

char *stall_diagnosis_json(const stall_diagnosis_t *d, size_t *len) {
    if (!d) {
        stall__err("stall_diagnosis_json: diagnosis is NULL");
        return NULL;
    }
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (!f) {
        stall__errno(errno, "stall_diagnosis_json: open_memstream");
        return NULL;
    }
    int first = 1;
    fputc('{', f);
    key(f, &first, "bottlenecks");
    findings(f, d);
    key(f, &first, "breakdown");
    breakdown(f, d);
    key(f, &first, "loaders");
    loaders(f, d);
    fputc('}', f);
    if (fclose(f) != 0 || !buf) {
        free(buf);
        stall__err("stall_diagnosis_json: out of memory");
        return NULL;
    }
    if (len) *len = size;
    return buf;
}
