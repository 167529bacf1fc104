/*
 * test_monitor.c - the live monitor on injected metric series: a steady
 * noisy series raises nothing; a spike, a level shift and a memory leak each
 * raise their alert once, within a few samples of the onset, and nothing
 * else; threshold rules wait for their duration, do not flap inside the
 * hysteresis and resolve once; severities under min_severity are marked
 * suppressed; the queue drops its oldest when full; bad options and rules
 * are refused naming the field; the thread reads a real engine.
 */
#define _GNU_SOURCE
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "stall.h"
#include "test_util.h"

#define SEC 1000000000ull

static uint64_t g_rng = 88172645463325252ull;

/* uniform noise in [-1, 1), deterministic */
static double noise(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (double)(g_rng >> 11) / (double)(1ull << 52) - 1.0;
}

static void steady(double *v, double step_s, double mem) {
    for (int i = 0; i < STALL_MON_COUNT_; i++) v[i] = NAN;
    v[STALL_MON_STEP_TIME_S] = step_s * (1 + 0.02 * noise());
    v[STALL_MON_THROUGHPUT] = 1 / v[STALL_MON_STEP_TIME_S];
    v[STALL_MON_MEMORY_BYTES] = mem * (1 + 0.002 * noise());
    v[STALL_MON_HOST_MEMORY_AVAILABLE_BYTES] = 8e9;
    v[STALL_MON_HOST_MEMORY_USED_SHARE] = 0.4;
    v[STALL_MON_DATA_WAIT_SHARE] = 0.05;
    v[STALL_MON_CPU_PERCENT] = 50;
}

typedef struct got_t {
    stall_alert_t a[64];
    int n;
    int at[64]; /* sample index when it was taken */
} got_t;

static void drain(stall_monitor_t *m, got_t *g, int sample) {
    stall_alert_t a;
    while (stall_monitor_next(m, &a, 0) == 1)
        if (g->n < 64) {
            g->at[g->n] = sample;
            g->a[g->n++] = a;
        }
}

static int count(const got_t *g, const char *kind, const char *metric, int state) {
    int n = 0;
    for (int i = 0; i < g->n; i++)
        if (!strcmp(g->a[i].kind, kind) && (!metric || !strcmp(g->a[i].metric, metric)) &&
            (!state || g->a[i].state == state))
            n++;
    return n;
}

static const stall_alert_t *first(const got_t *g, const char *kind, const char *metric, int *at) {
    for (int i = 0; i < g->n; i++)
        if (!strcmp(g->a[i].kind, kind) && !strcmp(g->a[i].metric, metric)) {
            if (at) *at = g->at[i];
            return &g->a[i];
        }
    return NULL;
}

static void dump(const got_t *g) {
    for (int i = 0; i < g->n; i++)
        fprintf(stderr, "  #%d at %d: %s %s %s\n", i, g->at[i], g->a[i].kind,
                g->a[i].state == STALL_ALERT_FIRING ? "firing" : "resolved", g->a[i].message);
}

/* A monitor with the default rules; oom_horizon_s 0: the default horizon. */
static stall_monitor_t *mon_horizon(double oom_horizon_s) {
    stall_monitor_options_t o;
    memset(&o, 0, sizeof o);
    o.oom_horizon_s = oom_horizon_s;
    stall_monitor_t *m = stall_monitor_new(&o);
    assert_non_null(m);
    assert_int_equal(stall_monitor_add_default_rules(m, NULL), 0);
    return m;
}

static stall_monitor_t *mon(void) { return mon_horizon(0); }

static void test_steady_raises_nothing(void **state) {
    (void)state;
    stall_monitor_t *m = mon();
    got_t g = {0};
    double v[STALL_MON_COUNT_];
    for (int i = 0; i < 2000; i++) {
        steady(v, 0.1, 2e9);
        stall_monitor_observe(m, (uint64_t)(i + 1) * SEC, v);
        drain(m, &g, i);
    }
    if (g.n) dump(&g);
    assert_int_equal(g.n, 0);
    stall_monitor_summary_t s;
    assert_int_equal(stall_monitor_summary(m, &s), 0);
    assert_int_equal(s.samples, 2000);
    assert_int_equal(s.fired, 0);
    assert_true(fabs(s.avg[STALL_MON_STEP_TIME_S] - 0.1) < 0.002);
    assert_true(s.max[STALL_MON_STEP_TIME_S] <= 0.1021);
    assert_int_equal(s.n[STALL_MON_GPU_UTIL_PERCENT], 0);
    assert_true(isnan(s.avg[STALL_MON_GPU_UTIL_PERCENT]));
    stall_monitor_free(m);
}

static void test_spike_once(void **state) {
    (void)state;
    stall_monitor_t *m = mon();
    got_t g = {0};
    double v[STALL_MON_COUNT_];
    for (int i = 0; i < 600; i++) {
        steady(v, 0.1, 2e9);
        if (i == 300) { /* one slow step: a checkpoint, a GC pause */
            v[STALL_MON_STEP_TIME_S] = 0.5;
            v[STALL_MON_THROUGHPUT] = 2;
        }
        stall_monitor_observe(m, (uint64_t)(i + 1) * SEC, v);
        drain(m, &g, i);
    }
    if (g.n != 2) dump(&g);
    assert_int_equal(count(&g, "spike", "step_time_s", 0), 1);
    assert_int_equal(count(&g, "spike", "throughput", 0), 1);
    assert_int_equal(g.n, 2);
    int at = -1;
    const stall_alert_t *a = first(&g, "spike", "step_time_s", &at);
    assert_int_equal(at, 301); /* told as soon as it is over */
    assert_true(fabs(a->value - 0.5) < 1e-9);
    assert_true(fabs(a->baseline - 0.1) < 0.005);
    assert_true(strstr(a->message, "step time spike") != NULL);
    stall_monitor_free(m);
}

static void test_shift_once(void **state) {
    (void)state;
    stall_monitor_t *m = mon();
    got_t g = {0};
    double v[STALL_MON_COUNT_];
    for (int i = 0; i < 900; i++) {
        steady(v, i < 300 ? 0.1 : 0.15, 2e9);
        stall_monitor_observe(m, (uint64_t)(i + 1) * SEC, v);
        drain(m, &g, i);
    }
    if (g.n != 2) dump(&g);
    assert_int_equal(count(&g, "shift", "step_time_s", 0), 1);
    assert_int_equal(count(&g, "shift", "throughput", 0), 1);
    assert_int_equal(count(&g, "spike", NULL, 0), 0);
    assert_int_equal(count(&g, "trend", NULL, 0), 0);
    int at = -1;
    const stall_alert_t *a = first(&g, "shift", "step_time_s", &at);
    if (!(at >= 300 && at <= 305)) dump(&g);
    assert_true(at >= 300 && at <= 305);
    assert_true(fabs(a->baseline - 0.1) < 0.005);
    assert_true(strstr(a->message, "level shift") != NULL);
    /* a faster step is no alert */
    stall_monitor_t *m2 = mon();
    got_t g2 = {0};
    for (int i = 0; i < 600; i++) {
        steady(v, i < 300 ? 0.1 : 0.07, 2e9);
        stall_monitor_observe(m2, (uint64_t)(i + 1) * SEC, v);
        drain(m2, &g2, i);
    }
    if (g2.n) dump(&g2);
    assert_int_equal(g2.n, 0);
    stall_monitor_free(m2);
    /* nor is a slower spell of 4 s (+40%: no spike either) */
    stall_monitor_t *m3 = mon();
    got_t g3 = {0};
    for (int i = 0; i < 600; i++) {
        steady(v, i >= 300 && i < 304 ? 0.14 : 0.1, 2e9);
        stall_monitor_observe(m3, (uint64_t)(i + 1) * SEC, v);
        drain(m3, &g3, i);
    }
    if (g3.n) dump(&g3);
    assert_int_equal(g3.n, 0);
    stall_monitor_free(m3);
    stall_monitor_free(m);
}

static void test_leak_trend_and_oom_once(void **state) {
    (void)state;
    stall_monitor_t *m = mon_horizon(3600);
    got_t g = {0};
    double v[STALL_MON_COUNT_];
    for (int i = 0; i < 1200; i++) {
        steady(v, 0.1, 1e9 + 1e6 * i); /* leaks 1 MB per second */
        v[STALL_MON_HOST_MEMORY_AVAILABLE_BYTES] = 3e9 - 1e6 * i;
        stall_monitor_observe(m, (uint64_t)(i + 1) * SEC, v);
        drain(m, &g, i);
    }
    if (g.n != 2) dump(&g);
    assert_int_equal(count(&g, "trend", "memory_bytes", STALL_ALERT_FIRING), 1);
    assert_int_equal(count(&g, "oom", "memory_bytes", STALL_ALERT_FIRING), 1);
    assert_int_equal(g.n, 2);
    int at = -1;
    const stall_alert_t *a = first(&g, "oom", "memory_bytes", &at);
    assert_true(at >= 79 && at <= 100); /* as soon as the growth is fitted */
    double left = 3000 - at;            /* seconds: 1 MB/s against what is left */
    assert_true(fabs(a->value - left) < 0.1 * left);
    assert_true(fabs(a->baseline - 1e6) < 0.05e6);
    assert_true(a->severity > 0.9);
    a = first(&g, "trend", "memory_bytes", &at);
    assert_true(at >= 79 && at <= 160);
    assert_true(fabs(a->baseline - 1e6) < 0.05e6);
    stall_monitor_summary_t s;
    stall_monitor_summary(m, &s);
    assert_true(s.oom_host_s > 1500 && s.oom_host_s < 2000);
    assert_int_equal(s.active, 2);
    assert_int_equal(s.fired_by_kind[3], 1);
    assert_int_equal(s.fired_by_kind[4], 1);
    /* the leak stops: both clear, once */
    for (int i = 1200; i < 2400; i++) {
        steady(v, 0.1, 1e9 + 1e6 * 1200);
        v[STALL_MON_HOST_MEMORY_AVAILABLE_BYTES] = 3e9 - 1e6 * 1200;
        stall_monitor_observe(m, (uint64_t)(i + 1) * SEC, v);
        drain(m, &g, i);
    }
    if (g.n != 4) dump(&g);
    assert_int_equal(count(&g, "trend", "memory_bytes", STALL_ALERT_RESOLVED), 1);
    assert_int_equal(count(&g, "oom", "memory_bytes", STALL_ALERT_RESOLVED), 1);
    assert_int_equal(g.n, 4);
    stall_monitor_free(m);
}

/* The real loop's step time over 0.5 s spans is quantized (20 or 23 batches
 * a span) and jitters by 20% now and then: samples 20% off right before and
 * after the slow step must not make the spike a run too long to be one; the
 * step 2.6x slower from sample 110 on (two spans straddle the change) is one
 * level shift, though the spike is still in the window */
static void test_spike_then_shift_amid_jitter(void **state) {
    (void)state;
    stall_monitor_t *m = mon();
    got_t g = {0};
    double v[STALL_MON_COUNT_];
    for (int i = 0; i < 200; i++) {
        steady(v, 0.025, 5e8);
        double st = i % 3 ? 0.025 : i % 2 ? 0.0263 : 0.0261;
        if (i == 99 || i == 100 || i == 102) st = 0.03; /* jitter */
        if (i == 101) st = 0.3;                         /* the slow step */
        if (i == 110) st = 0.046;
        if (i == 111) st = 0.054;
        if (i > 111) st = i % 3 ? 0.0625 : i % 2 ? 0.0667 : 0.0714;
        v[STALL_MON_STEP_TIME_S] = st;
        v[STALL_MON_THROUGHPUT] = 1 / st;
        stall_monitor_observe(m, (uint64_t)(i + 1) * SEC / 2, v);
        drain(m, &g, i);
    }
    if (g.n != 4) dump(&g);
    assert_int_equal(count(&g, "spike", "step_time_s", 0), 1);
    assert_int_equal(count(&g, "spike", "throughput", 0), 1);
    assert_int_equal(count(&g, "shift", "step_time_s", 0), 1);
    assert_int_equal(count(&g, "shift", "throughput", 0), 1);
    assert_int_equal(g.n, 4);
    int at = -1;
    first(&g, "spike", "step_time_s", &at);
    assert_int_equal(at, 102);
    first(&g, "shift", "step_time_s", &at);
    assert_true(at >= 110 && at <= 120);
    stall_monitor_free(m);
}

/* A leak of ~50 MB/s sampled at 10 Hz on 700 MB, whose loop stalls for 1 s
 * every 5 s (a shared machine): after a stall it looks flat against the
 * window's median, which lags behind; nor does a drop (pages freed) followed
 * by more of the climb make a level shift: one trend, one OOM, no shift */
static void test_climb_with_pauses_is_no_shift(void **state) {
    (void)state;
    stall_monitor_t *m = mon_horizon(3 * 24 * 3600.0);
    got_t g = {0};
    double v[STALL_MON_COUNT_];
    double mem = 7e8;
    for (int i = 0; i < 300; i++) {
        steady(v, 0.025, 0);
        if (i % 50 < 40) mem += i % 2 ? 3e6 : 7e6; /* the kernel's RSS moves in steps */
        if (i == 210) mem -= 1.9e8;
        v[STALL_MON_MEMORY_BYTES] = mem;
        v[STALL_MON_HOST_MEMORY_AVAILABLE_BYTES] = 2.4e10 - mem;
        stall_monitor_observe(m, (uint64_t)(i + 1) * SEC / 10, v);
        drain(m, &g, i);
    }
    if (count(&g, "shift", NULL, 0) || count(&g, "oom", "memory_bytes", STALL_ALERT_FIRING) != 1) dump(&g);
    assert_int_equal(count(&g, "shift", NULL, 0), 0);
    assert_int_equal(count(&g, "spike", "memory_bytes", 0), 0);
    assert_int_equal(count(&g, "oom", "memory_bytes", STALL_ALERT_FIRING), 1);
    assert_int_equal(count(&g, "trend", "memory_bytes", STALL_ALERT_FIRING), 1);
    stall_monitor_free(m);
}

static void test_threshold_rule(void **state) {
    (void)state;
    stall_monitor_t *m = stall_monitor_new(NULL);
    assert_non_null(m);
    stall_alert_rule_t r = {"wait", STALL_MON_DATA_WAIT_SHARE, 0, 0.3, 5, 0.1, 0.7};
    assert_int_equal(stall_monitor_add_rule(m, &r), 0);
    assert_int_equal(stall_monitor_add_rule(m, &r), -1); /* duplicate */
    assert_non_null(strstr(stall_last_error(), "exists"));
    /* 0.5 for 3 s (shorter than for_s), back, then 0.5 for good, dipping to
     * 0.25 (inside the hysteresis) now and then; then 0.1; then 0.5 again */
    double series[80];
    for (int i = 0; i < 80; i++) series[i] = 0.1;
    for (int i = 10; i < 13; i++) series[i] = 0.5;
    for (int i = 20; i < 50; i++) series[i] = i < 26 || i % 4 ? 0.5 : 0.25;
    for (int i = 60; i < 80; i++) series[i] = 0.5;
    got_t g = {0};
    double v[STALL_MON_COUNT_];
    for (int i = 0; i < 80; i++) {
        for (int k = 0; k < STALL_MON_COUNT_; k++) v[k] = NAN;
        v[STALL_MON_DATA_WAIT_SHARE] = series[i];
        if (i == 30) v[STALL_MON_DATA_WAIT_SHARE] = NAN; /* unknown: no change */
        stall_monitor_observe(m, (uint64_t)(i + 1) * SEC, v);
        drain(m, &g, i);
    }
    if (g.n != 3) dump(&g);
    assert_int_equal(g.n, 3);
    assert_int_equal(g.a[0].state, STALL_ALERT_FIRING);
    assert_int_equal(g.at[0], 25); /* 20 + 5 s */
    assert_string_equal(g.a[0].rule, "wait");
    assert_true(fabs(g.a[0].severity - 0.7) < 1e-12);
    assert_int_equal(g.a[1].state, STALL_ALERT_RESOLVED);
    assert_int_equal(g.at[1], 50);
    assert_int_equal(g.a[2].state, STALL_ALERT_FIRING);
    assert_int_equal(g.at[2], 65);
    assert_true(g.a[0].seq < g.a[1].seq && g.a[1].seq < g.a[2].seq);
    /* removing the rule resolves its raised alert */
    assert_int_equal(stall_monitor_remove_rule(m, "wait"), 0);
    drain(m, &g, 80);
    assert_int_equal(g.n, 4);
    assert_int_equal(g.a[3].state, STALL_ALERT_RESOLVED);
    assert_int_equal(stall_monitor_remove_rule(m, "wait"), -1);
    /* below */
    stall_alert_rule_t lo = {"slow", STALL_MON_THROUGHPUT, 1, 5, 0, 1, 0.5};
    assert_int_equal(stall_monitor_add_rule(m, &lo), 0);
    for (int k = 0; k < STALL_MON_COUNT_; k++) v[k] = NAN;
    v[STALL_MON_THROUGHPUT] = 4;
    stall_monitor_observe(m, 100 * SEC, v);
    drain(m, &g, 100);
    assert_int_equal(g.n, 5);
    assert_true(strstr(g.a[4].message, "below") != NULL);
    stall_monitor_free(m);
}

static void test_suppressed_and_queue(void **state) {
    (void)state;
    stall_monitor_options_t o;
    memset(&o, 0, sizeof o);
    o.min_severity = 0.8;
    o.queue = 4;
    stall_monitor_t *m = stall_monitor_new(&o);
    assert_non_null(m);
    char name[16];
    for (int i = 0; i < 6; i++) {
        snprintf(name, sizeof name, "r%d", i);
        stall_alert_rule_t r = {name, STALL_MON_CPU_PERCENT, 0, 10, 0, 0, i < 3 ? 0.5 : 0.9};
        assert_int_equal(stall_monitor_add_rule(m, &r), 0);
    }
    double v[STALL_MON_COUNT_];
    for (int k = 0; k < STALL_MON_COUNT_; k++) v[k] = NAN;
    v[STALL_MON_CPU_PERCENT] = 50;
    assert_int_equal(stall_monitor_observe(m, SEC, v), 6);
    stall_monitor_summary_t s;
    stall_monitor_summary(m, &s);
    assert_int_equal(s.fired, 6);
    assert_int_equal(s.suppressed, 3);
    assert_int_equal(s.dropped, 2);
    assert_int_equal(s.active, 6);
    got_t g = {0};
    drain(m, &g, 0);
    assert_int_equal(g.n, 4);
    assert_string_equal(g.a[0].rule, "r2"); /* r0 and r1 were dropped */
    assert_int_equal(g.a[0].suppressed, 1);
    assert_int_equal(g.a[1].suppressed, 0);
    /* a waiting reader is woken */
    stall_alert_t a;
    stall_monitor_wake(m);
    assert_int_equal(stall_monitor_next(m, &a, -1), 0);
    assert_int_equal(stall_monitor_next(m, &a, 20), 0);
    assert_true(stall_monitor_memory_bytes(m) > sizeof(stall_alert_t) * 4);
    stall_monitor_free(m);
}

static void test_bad_input(void **state) {
    (void)state;
    stall_monitor_options_t o;
    memset(&o, 0, sizeof o);
    o.interval_ns = 10;
    assert_null(stall_monitor_new(&o));
    assert_non_null(strstr(stall_last_error(), "interval_ns"));
    memset(&o, 0, sizeof o);
    o.window = 4;
    assert_null(stall_monitor_new(&o));
    assert_non_null(strstr(stall_last_error(), "window"));
    memset(&o, 0, sizeof o);
    o.min_severity = 2;
    assert_null(stall_monitor_new(&o));
    assert_non_null(strstr(stall_last_error(), "min_severity"));
    stall_monitor_t *m = stall_monitor_new(NULL);
    stall_alert_rule_t r = {"bad name!", 0, 0, 1, 0, 0, 0.5};
    assert_int_equal(stall_monitor_add_rule(m, &r), -1);
    assert_non_null(strstr(stall_last_error(), "name"));
    r.name = "ok";
    r.metric = STALL_MON_COUNT_;
    assert_int_equal(stall_monitor_add_rule(m, &r), -1);
    assert_non_null(strstr(stall_last_error(), "metric"));
    r.metric = 0;
    r.severity = 1.5;
    assert_int_equal(stall_monitor_add_rule(m, &r), -1);
    assert_non_null(strstr(stall_last_error(), "severity"));
    r.severity = 0.5;
    r.for_s = -1;
    assert_int_equal(stall_monitor_add_rule(m, &r), -1);
    assert_non_null(strstr(stall_last_error(), "for_s"));
    double v[STALL_MON_COUNT_];
    for (int k = 0; k < STALL_MON_COUNT_; k++) v[k] = NAN;
    assert_int_equal(stall_monitor_observe(m, 10 * SEC, v), 0);
    assert_int_equal(stall_monitor_observe(m, 5 * SEC, v), -1);
    assert_non_null(strstr(stall_last_error(), "back in time"));
    assert_int_equal(stall_mon_metric_index("step_time_s"), STALL_MON_STEP_TIME_S);
    assert_int_equal(stall_mon_metric_index("nope"), -1);
    assert_null(stall_mon_metric_name(-1));
    stall_monitor_free(m);
}

/* the thread reads a real engine: host metrics known, samples counted */
static void test_thread_reads_engine(void **state) {
    (void)state;
    tu_clean_env();
    char base[] = "/tmp/stall-mon-XXXXXX";
    assert_non_null(mkdtemp(base));
    stall_options_t so;
    memset(&so, 0, sizeof so);
    so.base_dir = base;
    so.no_export = 1;
    stall_session_t *sess = stall_session_start("mon", &so);
    assert_non_null(sess);
    stall_sampler_options_t sopt;
    memset(&sopt, 0, sizeof sopt);
    sopt.interval_ns = 20000000ull;
    stall_engine_t *e = stall_engine_new(stall_session_dir(sess), &sopt, 0, 0);
    assert_non_null(e);
    assert_int_equal(stall_engine_start(e), 0);
    stall_monitor_options_t o;
    memset(&o, 0, sizeof o);
    o.interval_ns = 20000000ull;
    o.loop_span_ns = 50000000ull;
    stall_monitor_t *m = stall_monitor_new(&o);
    assert_int_equal(stall_monitor_start(m, e), 0);
    assert_int_equal(stall_monitor_start(m, e), -1);
    /* a "loop": waits and steps as the Python hook names them */
    stall_name_t w = stall_intern("dl0.wait"), st = stall_intern("train.step");
    for (int i = 0; i < 40; i++) {
        stall_begin_id(STALL_KIND_DATA_WAIT, w);
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
        stall_end();
        stall_begin_id(STALL_KIND_STEP, st);
        ts.tv_nsec = 6000000;
        nanosleep(&ts, NULL);
        stall_end();
    }
    assert_int_equal(stall_monitor_stop(m), 0);
    stall_monitor_summary_t s;
    stall_monitor_summary(m, &s);
    assert_true(s.samples >= 5);
    assert_true(s.n[STALL_MON_MEMORY_BYTES] >= 1);
    assert_true(s.avg[STALL_MON_MEMORY_BYTES] > 1e5);
    assert_true(s.n[STALL_MON_HOST_MEMORY_USED_SHARE] >= 1);
    assert_true(s.max[STALL_MON_HOST_MEMORY_USED_SHARE] > 0 && s.max[STALL_MON_HOST_MEMORY_USED_SHARE] < 1);
    if (s.n[STALL_MON_STEP_TIME_S]) {
        assert_true(s.avg[STALL_MON_STEP_TIME_S] > 0.004 && s.avg[STALL_MON_STEP_TIME_S] < 0.1);
        assert_true(s.avg[STALL_MON_DATA_WAIT_SHARE] > 0.05 && s.avg[STALL_MON_DATA_WAIT_SHARE] < 0.8);
    }
    assert_true(s.batches <= 40);
    stall_monitor_free(m);
    stall_engine_free(e, 1);
    stall_session_stop(sess);
    tu_rmrf(base);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_steady_raises_nothing),
        cmocka_unit_test(test_spike_once),
        cmocka_unit_test(test_shift_once),
        cmocka_unit_test(test_leak_trend_and_oom_once),
        cmocka_unit_test(test_spike_then_shift_amid_jitter),
        cmocka_unit_test(test_climb_with_pauses_is_no_shift),
        cmocka_unit_test(test_threshold_rule),
        cmocka_unit_test(test_suppressed_and_queue),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_thread_reads_engine),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
