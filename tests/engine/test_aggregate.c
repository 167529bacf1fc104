/*
 * test_aggregate.c - the aggregator: exact counts, totals, self time, min
 * and max from real spans (checked against the very records drained),
 * nested self time, percentiles of a known distribution within 1%, sessions
 * as time ranges (before, overlapping, crossing an edge), truncated spans of
 * a SIGKILLed child, processes counted per op, kind time with nested and
 * sequential spans, argument errors, and the cost of stall_agg_add.
 *
 * aggregate.c is included so its histogram can be tested directly; this
 * file then provides the stall_agg_* symbols itself (the engine object of
 * the library, which would bring a second copy, is not linked in).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../src/engine/aggregate.c"
#include "test_util.h"

static char g_base[512];
static stall_session_t *g_sess;
static const char *g_dir;

/* ------------------------------------------------------------- helpers */

static void pause_us(long us) {
    struct timespec ts = {0, us * 1000};
    nanosleep(&ts, NULL);
}

/* Records kept by a drain, with the process they came from. */
typedef struct cap_t {
    stall_record_t *v;
    uint32_t *proc_index;
    size_t n, cap;
    stall_agg_t *agg; /* when set, every run is also added to it */
    stall_reader_t *r;
} cap_t;

static int cap_cb(void *ctx, const stall_reader_proc_t *p, const stall_record_t *recs, size_t n) {
    cap_t *c = ctx;
    if (c->n + n > c->cap) {
        size_t cap = c->cap ? c->cap : 1024;
        while (cap < c->n + n) cap *= 2;
        c->v = realloc(c->v, cap * sizeof *c->v);
        c->proc_index = realloc(c->proc_index, cap * sizeof *c->proc_index);
        if (!c->v || !c->proc_index) return 1;
        c->cap = cap;
    }
    memcpy(c->v + c->n, recs, n * sizeof *recs);
    for (size_t i = 0; i < n; i++) c->proc_index[c->n + i] = p->index;
    c->n += n;
    if (c->agg && stall_agg_add(c->agg, c->r, p, recs, n) < 0) return 1;
    return 0;
}

static void cap_free(cap_t *c) {
    free(c->v);
    free(c->proc_index);
    memset(c, 0, sizeof *c);
}

/* Opens a reader with everything recorded so far drained away. */
static stall_reader_t *fresh_reader(void) {
    stall_reader_t *r = stall_reader_open(g_dir);
    assert_non_null(r);
    cap_t c = {0};
    assert_true(stall_reader_drain(r, cap_cb, &c) >= 0);
    cap_free(&c);
    return r;
}

/* Drains r into a (and into c when not NULL); returns the records taken. */
static ssize_t drain_into(stall_agg_t *a, stall_reader_t *r, cap_t *c) {
    if (!c) return stall_agg_drain(a, r);
    c->agg = a;
    c->r = r;
    return stall_reader_drain(r, cap_cb, c);
}

/* Finds op (name, kind) in session id; returns 1 and fills *out when found. */
static int find_op(stall_agg_t *a, uint64_t id, const char *name, int kind, stall_op_stats_t *out) {
    stall_op_stats_t ops[256];
    ssize_t n = stall_agg_ops(a, id, ops, 256);
    assert_true(n >= 0 && n <= 256);
    for (ssize_t i = 0; i < n; i++)
        if (strcmp(ops[i].name, name) == 0 && ops[i].kind == kind) {
            *out = ops[i];
            return 1;
        }
    return 0;
}

/* Expected statistics of the captured records of this pid named `name`. */
typedef struct expect_t {
    uint64_t count, total, min, max, arg_sum;
} expect_t;

static expect_t expect_of(const cap_t *c, stall_reader_t *r, const char *name, uint32_t pid) {
    expect_t e = {0, 0, UINT64_MAX, 0, 0};
    for (size_t i = 0; i < c->n; i++) {
        const stall_record_t *x = &c->v[i];
        if (x->pid != pid || (x->flags & (STALL_REC_INSTANT | STALL_REC_TRUNCATED))) continue;
        if (strcmp(stall_reader_name(r, c->proc_index[i], x->name), name) != 0) continue;
        uint64_t d = x->end_ns - x->start_ns;
        e.count++;
        e.total += d;
        if (d < e.min) e.min = d;
        if (d > e.max) e.max = d;
        e.arg_sum += x->arg;
    }
    return e;
}

/* The reader's view of this process (found after a drain). */
static stall_reader_proc_t my_proc(stall_reader_t *r) {
    stall_reader_proc_t p;
    size_t n = stall_reader_proc(r, 0, NULL);
    for (size_t i = 0; i < n; i++) {
        assert_true(stall_reader_proc(r, i, &p) == n);
        if (p.pid == (uint32_t)getpid()) return p;
    }
    fail_msg("this process is not in the session");
    return p;
}

/* A hand-made finished span of a fake thread (tid) of this process. */
static stall_record_t mk(uint32_t tid, stall_name_t name, int kind, int depth, uint64_t s, uint64_t e) {
    stall_record_t x;
    memset(&x, 0, sizeof x);
    x.start_ns = s;
    x.end_ns = e;
    x.pid = (uint32_t)getpid();
    x.tid = tid;
    x.name = name;
    x.kind = (uint8_t)kind;
    x.depth = (uint8_t)depth;
    return x;
}

static int group_setup(void **state) {
    (void)state;
    return tu_session_start(g_base, sizeof g_base, "agg-test", 0, &g_sess, &g_dir);
}

static int group_teardown(void **state) {
    (void)state;
    tu_session_end(g_sess, g_dir, g_base);
    return 0;
}

/* ------------------------------------------------------------- histogram */

static void histogram_buckets(void **state) {
    (void)state;
    /* every value lies in its bucket, buckets are contiguous, widths <= lo/128 */
    uint64_t prev_lo = 0, prev_w = 0;
    for (uint32_t i = 0; i < HIST_N; i++) {
        uint64_t lo, w;
        hist_bounds(i, &lo, &w);
        if (i) assert_int_equal(lo, prev_lo + prev_w);
        if (lo >= HIST_SUB) assert_true(w * HIST_SUB <= lo);
        assert_int_equal(hist_index(lo), i);
        assert_int_equal(hist_index(lo + w - 1), i);
        prev_lo = lo;
        prev_w = w;
    }
    assert_int_equal(hist_index(UINT64_MAX), HIST_N - 1);
    assert_int_equal(hist_index(1ull << HIST_TOP_BIT), HIST_N - 1);
}

static int cmp_u64(const void *x, const void *y) {
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

static void check_quantiles(uint64_t *v, size_t n) {
    op_t o;
    memset(&o, 0, sizeof o);
    o.hist = calloc(HIST_N, sizeof *o.hist);
    assert_non_null(o.hist);
    o.s.min_ns = UINT64_MAX;
    for (size_t i = 0; i < n; i++) {
        hist_add(&o, v[i]);
        if (v[i] < o.s.min_ns) o.s.min_ns = v[i];
        if (v[i] > o.s.max_ns) o.s.max_ns = v[i];
    }
    qsort(v, n, sizeof *v, cmp_u64);
    const double qs[] = {0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0};
    for (size_t i = 0; i < sizeof qs / sizeof *qs; i++) {
        size_t rank = (size_t)(qs[i] * (double)n + 0.999999);
        uint64_t exact = v[rank ? rank - 1 : 0], got = hist_quantile(&o, qs[i]);
        double err = fabs((double)got - (double)exact) / (double)exact;
        if (err >= 0.01)
            fail_msg("q=%.3f exact %llu got %llu (%.3f%%)", qs[i], (unsigned long long)exact,
                     (unsigned long long)got, err * 100);
    }
    free(o.hist);
}

static void histogram_quantiles(void **state) {
    (void)state;
    size_t n = 200000;
    uint64_t *v = malloc(n * sizeof *v);
    assert_non_null(v);
    srand(7);
    /* log-uniform over 1 us .. 10 s */
    for (size_t i = 0; i < n; i++) v[i] = (uint64_t)(1000.0 * pow(1e7, rand() / (double)RAND_MAX));
    check_quantiles(v, n);
    /* uniform over 1..2 ms */
    for (size_t i = 0; i < n; i++) v[i] = 1000000 + (uint64_t)rand() % 1000000;
    check_quantiles(v, n);
    /* bimodal: 90% ~100 us, 10% ~50 ms */
    for (size_t i = 0; i < n; i++)
        v[i] = i % 10 ? 100000 + (uint64_t)rand() % 5000 : 50000000 + (uint64_t)rand() % 1000000;
    check_quantiles(v, n);
    /* small exact values */
    for (size_t i = 0; i < n; i++) v[i] = 1 + i % 100;
    check_quantiles(v, n);
    free(v);
}

static void histogram_halving(void **state) {
    (void)state;
    op_t o;
    memset(&o, 0, sizeof o);
    o.hist = calloc(HIST_N, sizeof *o.hist);
    assert_non_null(o.hist);
    o.s.min_ns = 100;
    o.s.max_ns = 1000000;
    o.hist[hist_index(100)] = UINT32_MAX;
    o.hist[hist_index(1000000)] = UINT32_MAX / 9;
    o.hist_n = (uint64_t)UINT32_MAX + UINT32_MAX / 9;
    hist_add(&o, 100); /* would overflow: everything halves first */
    assert_true(o.hist[hist_index(100)] < UINT32_MAX);
    assert_int_equal(o.hist_n, (uint64_t)o.hist[hist_index(100)] + o.hist[hist_index(1000000)]);
    assert_int_equal(hist_quantile(&o, 0.5), 100);
    assert_int_equal(hist_quantile(&o, 0.99), 1000000);
    free(o.hist);
}

/* ------------------------------------------------------------- arguments */

static void bad_arguments(void **state) {
    (void)state;
    stall_agg_t *a = stall_agg_new();
    assert_non_null(a);
    stall_reader_proc_t p = {0};
    stall_record_t x = mk(1, 0, 0, 0, 1, 2);
    assert_int_equal(stall_agg_add(a, NULL, &p, &x, 1), -1);
    assert_non_null(strstr(stall_last_error(), "reader"));
    assert_int_equal(stall_agg_add(NULL, NULL, &p, &x, 1), -1);
    assert_non_null(strstr(stall_last_error(), "aggregator"));
    assert_int_equal(stall_agg_drain(a, NULL), -1);
    assert_int_equal(stall_agg_ops(a, 5, NULL, 0), -1);
    assert_non_null(strstr(stall_last_error(), "unknown session"));
    assert_int_equal(stall_agg_ops(a, 0, NULL, 0), 0); /* empty, known */
    assert_int_equal(stall_agg_session_begin(a, 0, "x", 1), -1);
    assert_int_equal(stall_agg_session_begin(a, 1, "x", 10), 0);
    assert_int_equal(stall_agg_session_begin(a, 1, "x", 10), -1);
    assert_non_null(strstr(stall_last_error(), "already"));
    assert_int_equal(stall_agg_session_end(a, 2, 20), -1);
    assert_int_equal(stall_agg_session_end(a, 1, 5), -1); /* before its begin */
    assert_int_equal(stall_agg_session_end(a, 1, 20), 0);
    assert_int_equal(stall_agg_session_end(a, 1, 30), -1);
    assert_int_equal(stall_agg_session_wall_ns(a, 1), 10);
    assert_int_equal(stall_agg_session_wall_ns(a, 9), 0);
    assert_int_equal(stall_agg_session_wall_ns(a, 0), 0); /* nothing recorded */
    uint64_t kt[STALL_KIND_COUNT_];
    assert_int_equal(stall_agg_kind_time(a, 9, kt), -1);
    assert_int_equal(stall_agg_kind_time(a, 1, NULL), -1);
    assert_int_equal(stall_agg_kind_time(a, 1, kt), 0);
    for (int k = 0; k < STALL_KIND_COUNT_; k++) assert_int_equal(kt[k], 0);
    stall_agg_free(a);
    stall_agg_free(NULL);
}

/* ---------------------------------------------------------- real spans */

static void exact_counts(void **state) {
    (void)state;
    stall_reader_t *r = fresh_reader();
    stall_agg_t *a = stall_agg_new();
    for (int i = 0; i < 10; i++) {
        stall_begin(STALL_KIND_CPU_COMPUTE, "ec-a");
        pause_us(20 + 10 * i);
        stall_end();
    }
    for (int i = 0; i < 3; i++) {
        stall_begin(STALL_KIND_IO, "ec-b");
        pause_us(5);
        stall_end_arg(5);
    }
    stall_instant(STALL_KIND_OTHER, stall_intern("ec-instant"), 1); /* not an op */
    cap_t c = {0};
    assert_int_equal(drain_into(a, r, &c), 14);
    uint32_t pid = (uint32_t)getpid();
    stall_op_stats_t s;
    const char *names[2] = {"ec-a", "ec-b"};
    int kinds[2] = {STALL_KIND_CPU_COMPUTE, STALL_KIND_IO};
    for (int j = 0; j < 2; j++) {
        assert_true(find_op(a, 0, names[j], kinds[j], &s));
        expect_t e = expect_of(&c, r, names[j], pid);
        assert_int_equal(s.count, j ? 3 : 10);
        assert_int_equal(s.count, e.count);
        assert_int_equal(s.total_ns, e.total);
        assert_int_equal(s.self_ns, e.total); /* leaves */
        assert_int_equal(s.min_ns, e.min);
        assert_int_equal(s.max_ns, e.max);
        assert_int_equal(s.arg_sum, e.arg_sum);
        assert_int_equal(s.arg_sum, j ? 15 : 0);
        assert_true(s.min_ns > 0 && s.min_ns <= s.p50_ns && s.p50_ns <= s.p95_ns &&
                    s.p95_ns <= s.p99_ns && s.p99_ns <= s.max_ns);
        assert_int_equal(s.processes, 1);
        assert_int_equal(s.truncated, 0);
        assert_int_equal(s.cpu_count, 0);
        assert_true(s.first_ns < s.last_ns);
        assert_string_equal(s.name, names[j]);
    }
    assert_false(find_op(a, 0, "ec-instant", STALL_KIND_OTHER, &s));
    /* ops come largest total first; cap limits the copy, not the count */
    stall_op_stats_t two[2];
    assert_int_equal(stall_agg_ops(a, 0, two, 2), 2);
    assert_true(two[0].total_ns >= two[1].total_ns);
    assert_string_equal(two[0].name, "ec-a");
    assert_int_equal(stall_agg_ops(a, 0, two, 1), 2);
    /* the whole run's wall time: first start to last end */
    assert_true(stall_agg_session_wall_ns(a, 0) >= two[0].total_ns);
    /* the same name under another kind is another op */
    stall_begin(STALL_KIND_IO, "ec-a");
    stall_end();
    assert_int_equal(stall_agg_drain(a, r), 1);
    assert_int_equal(stall_agg_ops(a, 0, NULL, 0), 3);
    cap_free(&c);
    stall_agg_free(a);
    stall_reader_close(r, 0);
}

static void thread_cpu_time(void **state) {
    (void)state;
    stall_reader_t *r = fresh_reader();
    stall_agg_t *a = stall_agg_new();
    stall_options_t o = {0};
    o.thread_cpu_time = 1; /* joins the open directory, switches CPU time on */
    stall_session_t *s2 = stall_session_start("cpu", &o);
    assert_non_null(s2);
    for (int i = 0; i < 4; i++) {
        stall_begin(STALL_KIND_CPU_COMPUTE, "cpu-spin");
        volatile uint64_t x = 0;
        for (int k = 0; k < 200000; k++) x += (uint64_t)k;
        stall_end();
    }
    stall_session_stop(s2);
    cap_t c = {0};
    assert_true(drain_into(a, r, &c) >= 4);
    uint64_t cpu = 0;
    for (size_t i = 0; i < c.n; i++)
        if (c.v[i].flags & STALL_REC_HAS_CPU &&
            strcmp(stall_reader_name(r, c.proc_index[i], c.v[i].name), "cpu-spin") == 0)
            cpu += c.v[i].cpu_ns;
    stall_op_stats_t s;
    assert_true(find_op(a, 0, "cpu-spin", STALL_KIND_CPU_COMPUTE, &s));
    assert_int_equal(s.cpu_count, 4);
    assert_int_equal(s.cpu_ns, cpu);
    assert_true(s.cpu_ns > 0);
    cap_free(&c);
    stall_agg_free(a);
    stall_reader_close(r, 0);
}

static void nested_self_time(void **state) {
    (void)state;
    stall_reader_t *r = fresh_reader();
    stall_agg_t *a = stall_agg_new();
    for (int i = 0; i < 5; i++) {
        stall_begin(STALL_KIND_STEP, "ns-parent");
        pause_us(10);
        stall_begin(STALL_KIND_DATA_LOADING, "ns-child");
        pause_us(10);
        stall_begin(STALL_KIND_IO, "ns-grandchild");
        pause_us(10);
        stall_end();
        stall_end();
        stall_begin(STALL_KIND_DATA_LOADING, "ns-child");
        pause_us(10);
        stall_end();
        pause_us(10);
        stall_end();
    }
    assert_int_equal(stall_agg_drain(a, r), 20);
    stall_op_stats_t p, ch, g;
    assert_true(find_op(a, 0, "ns-parent", STALL_KIND_STEP, &p));
    assert_true(find_op(a, 0, "ns-child", STALL_KIND_DATA_LOADING, &ch));
    assert_true(find_op(a, 0, "ns-grandchild", STALL_KIND_IO, &g));
    assert_int_equal(p.count, 5);
    assert_int_equal(ch.count, 10);
    assert_int_equal(g.count, 5);
    assert_int_equal(p.self_ns, p.total_ns - ch.total_ns);
    assert_int_equal(ch.self_ns, ch.total_ns - g.total_ns);
    assert_int_equal(g.self_ns, g.total_ns);
    assert_true(p.self_ns > 0 && ch.self_ns > 0);
    /* kind time of the whole run: nested spans of other kinds do not change a kind's time */
    uint64_t kt[STALL_KIND_COUNT_];
    assert_int_equal(stall_agg_kind_time(a, 0, kt), 0);
    assert_int_equal(kt[STALL_KIND_STEP], p.total_ns);
    assert_int_equal(kt[STALL_KIND_DATA_LOADING], ch.total_ns);
    assert_int_equal(kt[STALL_KIND_IO], g.total_ns);
    stall_agg_free(a);
    stall_reader_close(r, 0);
}

/* nested spans of one kind count once; also across a drain boundary */
static void kind_time_real_nesting(void **state) {
    (void)state;
    stall_reader_t *r = fresh_reader();
    stall_agg_t *a = stall_agg_new();
    stall_begin(STALL_KIND_IO, "kt-outer");
    stall_begin(STALL_KIND_IO, "kt-inner");
    pause_us(50);
    stall_end();
    assert_int_equal(stall_agg_drain(a, r), 1); /* the inner span alone */
    stall_begin(STALL_KIND_CPU_COMPUTE, "kt-cpu");
    stall_begin(STALL_KIND_IO, "kt-inner2");
    pause_us(20);
    stall_end();
    stall_end();
    pause_us(20);
    stall_end();
    stall_begin(STALL_KIND_IO, "kt-next"); /* sequential: adds its own time */
    pause_us(20);
    stall_end();
    assert_int_equal(stall_agg_drain(a, r), 4);
    stall_op_stats_t outer, next, cpu;
    assert_true(find_op(a, 0, "kt-outer", STALL_KIND_IO, &outer));
    assert_true(find_op(a, 0, "kt-next", STALL_KIND_IO, &next));
    assert_true(find_op(a, 0, "kt-cpu", STALL_KIND_CPU_COMPUTE, &cpu));
    uint64_t kt[STALL_KIND_COUNT_];
    assert_int_equal(stall_agg_kind_time(a, 0, kt), 0);
    assert_int_equal(kt[STALL_KIND_IO], outer.total_ns + next.total_ns);
    assert_int_equal(kt[STALL_KIND_CPU_COMPUTE], cpu.total_ns);
    stall_agg_free(a);
    stall_reader_close(r, 0);
}

/* ------------------------------------------------------ synthetic records */

static void kind_time_synthetic(void **state) {
    (void)state;
    stall_reader_t *r = fresh_reader();
    stall_begin(STALL_KIND_OTHER, "kts-discover");
    stall_end();
    stall_agg_t *a = stall_agg_new();
    assert_int_equal(stall_agg_drain(a, r), 1);
    stall_reader_proc_t p = my_proc(r);
    stall_name_t n = stall_intern("kts");
    const int IO = STALL_KIND_IO, CPU = STALL_KIND_CPU_COMPUTE, ST = STALL_KIND_STEP;
    /* thread 1, in ring order (children end first) */
    stall_record_t v[] = {
        /* IO parent [0,100] over two IO children: 100 */
        mk(900001, n, IO, 1, 10, 20), mk(900001, n, IO, 1, 30, 40), mk(900001, n, IO, 0, 0, 100),
        /* sequential IO [200,250]: +50 */
        mk(900001, n, IO, 0, 200, 250),
        /* CPU [300,310] holding IO [302,305]: IO +3, CPU +10 */
        mk(900001, n, IO, 1, 302, 305), mk(900001, n, CPU, 0, 300, 310),
        /* IO [1000,1100] > CPU [1010,1050] > IO [1020,1030]: IO +100, CPU +40 */
        mk(900001, n, IO, 2, 1020, 1030), mk(900001, n, CPU, 1, 1010, 1050),
        mk(900001, n, IO, 0, 1000, 1100),
        /* STEP [2000,3000] > STEP [2000,2500] > STEP [2100,2200], STEP [2600,2700]: +1000 */
        mk(900001, n, ST, 2, 2100, 2200), mk(900001, n, ST, 1, 2000, 2500),
        mk(900001, n, ST, 1, 2600, 2700), mk(900001, n, ST, 0, 2000, 3000),
    };
    size_t nv = sizeof v / sizeof *v;
    /* another thread overlapping in time: counted on its own (+70 IO) */
    stall_record_t w[] = {mk(900002, n, IO, 0, 50, 120)};
    assert_int_equal(stall_agg_add(a, r, &p, v, 5), 0); /* in two runs */
    assert_int_equal(stall_agg_add(a, r, &p, v + 5, nv - 5), 0);
    assert_int_equal(stall_agg_add(a, r, &p, w, 1), 0);
    uint64_t kt0[STALL_KIND_COUNT_], kt[STALL_KIND_COUNT_];
    assert_int_equal(stall_agg_kind_time(a, 0, kt0), 0);
    /* the discover span (real time) is kind OTHER: only look at these kinds */
    assert_int_equal(kt0[IO], 100 + 50 + 3 + 100 + 70);
    assert_int_equal(kt0[CPU], 10 + 40);
    assert_int_equal(kt0[ST], 1000);
    (void)kt;
    /* self time of the nested steps: 3000-span self = 1000 - 500 - 100 */
    stall_op_stats_t s;
    assert_true(find_op(a, 0, "kts", ST, &s));
    assert_int_equal(s.count, 4);
    assert_int_equal(s.total_ns, 100 + 500 + 100 + 1000);
    assert_int_equal(s.self_ns, 100 + 400 + 100 + 400);
    assert_int_equal(s.min_ns, 100);
    assert_int_equal(s.max_ns, 1000);
    stall_agg_free(a);
    stall_reader_close(r, 0);
}

static void sessions_synthetic(void **state) {
    (void)state;
    stall_reader_t *r = fresh_reader();
    stall_begin(STALL_KIND_OTHER, "ss-discover");
    stall_end();
    stall_agg_t *a = stall_agg_new();
    assert_int_equal(stall_agg_drain(a, r), 1);
    stall_reader_proc_t p = my_proc(r);
    stall_name_t n = stall_intern("ss");
    /* sessions 1: [100, 500], 2: [300, open) */
    assert_int_equal(stall_agg_session_begin(a, 1, "one", 100), 0);
    assert_int_equal(stall_agg_session_begin(a, 2, "two", 300), 0);
    assert_int_equal(stall_agg_session_end(a, 1, 500), 0);
    stall_record_t v[] = {
        mk(900010, n, STALL_KIND_IO, 0, 10, 20),    /* before both */
        mk(900010, n, STALL_KIND_IO, 0, 90, 110),   /* crosses 1's begin */
        mk(900010, n, STALL_KIND_IO, 0, 100, 200),  /* in 1 (edges included) */
        mk(900010, n, STALL_KIND_IO, 0, 350, 400),  /* in 1 and 2 */
        mk(900010, n, STALL_KIND_IO, 0, 450, 550),  /* crosses 1's end, in 2 */
        mk(900010, n, STALL_KIND_IO, 0, 600, 1600), /* in 2 only */
    };
    assert_int_equal(stall_agg_add(a, r, &p, v, 6), 0);
    stall_op_stats_t s;
    assert_true(find_op(a, 0, "ss", STALL_KIND_IO, &s));
    assert_int_equal(s.count, 6);
    assert_true(find_op(a, 1, "ss", STALL_KIND_IO, &s));
    assert_int_equal(s.count, 2);
    assert_int_equal(s.total_ns, 150);
    assert_int_equal(s.first_ns, 100);
    assert_int_equal(s.last_ns, 400);
    assert_true(find_op(a, 2, "ss", STALL_KIND_IO, &s));
    assert_int_equal(s.count, 3);
    assert_int_equal(s.total_ns, 50 + 100 + 1000);
    assert_false(find_op(a, 1, "ss-discover", STALL_KIND_OTHER, &s));
    uint64_t kt[STALL_KIND_COUNT_];
    assert_int_equal(stall_agg_kind_time(a, 1, kt), 0);
    assert_int_equal(kt[STALL_KIND_IO], 150);
    assert_int_equal(stall_agg_kind_time(a, 2, kt), 0);
    assert_int_equal(kt[STALL_KIND_IO], 1150);
    assert_int_equal(stall_agg_session_wall_ns(a, 1), 400);
    assert_true(stall_agg_session_wall_ns(a, 2) > 0); /* open: up to now */
    stall_agg_free(a);
    stall_reader_close(r, 0);
}

static void percentiles_synthetic(void **state) {
    (void)state;
    stall_reader_t *r = fresh_reader();
    stall_begin(STALL_KIND_OTHER, "pc-discover");
    stall_end();
    stall_agg_t *a = stall_agg_new();
    assert_int_equal(stall_agg_drain(a, r), 1);
    stall_reader_proc_t p = my_proc(r);
    stall_name_t n = stall_intern("pc");
    /* durations 1..10000 us, each once, in a shuffled order */
    size_t N = 10000;
    stall_record_t *v = calloc(N, sizeof *v);
    uint64_t t = 1000;
    srand(3);
    uint32_t *perm = malloc(N * sizeof *perm);
    for (size_t i = 0; i < N; i++) perm[i] = (uint32_t)i;
    for (size_t i = N - 1; i > 0; i--) {
        size_t j = (size_t)rand() % (i + 1);
        uint32_t x = perm[i];
        perm[i] = perm[j];
        perm[j] = x;
    }
    for (size_t i = 0; i < N; i++) {
        uint64_t d = (perm[i] + 1ull) * 1000;
        v[i] = mk(900020, n, STALL_KIND_PREPROCESSING, 0, t, t + d);
        t += d + 10;
    }
    assert_int_equal(stall_agg_add(a, r, &p, v, N), 0);
    stall_op_stats_t s;
    assert_true(find_op(a, 0, "pc", STALL_KIND_PREPROCESSING, &s));
    assert_int_equal(s.count, N);
    assert_int_equal(s.min_ns, 1000);
    assert_int_equal(s.max_ns, 10000000);
    assert_int_equal(s.total_ns, 1000ull * N * (N + 1) / 2);
    double p50 = 5000000, p95 = 9500000, p99 = 9900000;
    assert_true(fabs((double)s.p50_ns - p50) / p50 < 0.01);
    assert_true(fabs((double)s.p95_ns - p95) / p95 < 0.01);
    assert_true(fabs((double)s.p99_ns - p99) / p99 < 0.01);
    free(v);
    free(perm);
    stall_agg_free(a);
    stall_reader_close(r, 0);
}

/* ---------------------------------------------------- sessions, for real */

static void sessions_real(void **state) {
    (void)state;
    stall_reader_t *r = fresh_reader();
    stall_agg_t *a = stall_agg_new();
    stall_begin(STALL_KIND_IO, "sr-before");
    pause_us(10);
    stall_end();
    stall_begin(STALL_KIND_IO, "sr-crossing"); /* open when session 1 begins */
    pause_us(10);
    assert_int_equal(stall_agg_session_begin(a, 1, "one", stall_now_ns()), 0);
    pause_us(10);
    stall_end();
    stall_begin(STALL_KIND_IO, "sr-in-one");
    pause_us(10);
    stall_end();
    assert_int_equal(stall_agg_session_begin(a, 2, "two", stall_now_ns()), 0);
    stall_begin(STALL_KIND_IO, "sr-in-both");
    pause_us(10);
    stall_end();
    /* drained while both are open: membership is by time, not by drain */
    assert_int_equal(stall_agg_drain(a, r), 4);
    assert_int_equal(stall_agg_session_end(a, 1, stall_now_ns()), 0);
    stall_begin(STALL_KIND_IO, "sr-in-two");
    pause_us(10);
    stall_end();
    uint64_t t_end2 = stall_now_ns();
    stall_begin(STALL_KIND_IO, "sr-after");
    pause_us(10);
    stall_end();
    assert_int_equal(stall_agg_session_end(a, 2, t_end2), 0);
    assert_int_equal(stall_agg_drain(a, r), 2);
    stall_op_stats_t s;
    const char *all[] = {"sr-before", "sr-crossing", "sr-in-one", "sr-in-both", "sr-in-two", "sr-after"};
    for (int i = 0; i < 6; i++) assert_true(find_op(a, 0, all[i], STALL_KIND_IO, &s));
    assert_int_equal(stall_agg_ops(a, 0, NULL, 0), 6);
    assert_int_equal(stall_agg_ops(a, 1, NULL, 0), 2);
    assert_true(find_op(a, 1, "sr-in-one", STALL_KIND_IO, &s));
    assert_true(find_op(a, 1, "sr-in-both", STALL_KIND_IO, &s));
    assert_int_equal(stall_agg_ops(a, 2, NULL, 0), 2);
    assert_true(find_op(a, 2, "sr-in-both", STALL_KIND_IO, &s));
    assert_true(find_op(a, 2, "sr-in-two", STALL_KIND_IO, &s));
    stall_op_stats_t in1, inb;
    find_op(a, 1, "sr-in-one", STALL_KIND_IO, &in1);
    find_op(a, 1, "sr-in-both", STALL_KIND_IO, &inb);
    uint64_t kt[STALL_KIND_COUNT_];
    assert_int_equal(stall_agg_kind_time(a, 1, kt), 0);
    assert_int_equal(kt[STALL_KIND_IO], in1.total_ns + inb.total_ns);
    assert_true(stall_agg_session_wall_ns(a, 1) >= kt[STALL_KIND_IO]);
    stall_agg_free(a);
    stall_reader_close(r, 0);
}

/* ------------------------------------------------- other processes */

static void truncated_and_processes(void **state) {
    (void)state;
    stall_reader_t *r = fresh_reader();
    stall_reader_close(r, 0); /* not held across the fork */
    stall_begin(STALL_KIND_DATA_LOADING, "tp-shared");
    stall_end();
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(ready[0]);
        stall_begin(STALL_KIND_DATA_LOADING, "tp-shared");
        stall_end();
        stall_begin(STALL_KIND_STEP, "tp-outer");
        stall_begin(STALL_KIND_DATA_LOADING, "tp-inner");
        stall_begin(STALL_KIND_IO, "tp-done");
        pause_us(10);
        stall_end();
        char c = 1;
        if (write(ready[1], &c, 1) != 1) _exit(3);
        for (;;) pause(); /* killed with tp-outer and tp-inner open */
    }
    close(ready[1]);
    char c;
    assert_int_equal(read(ready[0], &c, 1), 1);
    close(ready[0]);
    kill(pid, SIGKILL);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFSIGNALED(st));
    r = stall_reader_open(g_dir);
    assert_non_null(r);
    stall_agg_t *a = stall_agg_new();
    assert_int_equal(stall_agg_session_begin(a, 1, "late", stall_now_ns()), 0);
    assert_true(stall_agg_drain(a, r) >= 5);
    stall_op_stats_t s;
    assert_true(find_op(a, 0, "tp-shared", STALL_KIND_DATA_LOADING, &s));
    assert_int_equal(s.count, 2);
    assert_int_equal(s.processes, 2);
    assert_true(find_op(a, 0, "tp-done", STALL_KIND_IO, &s));
    assert_int_equal(s.count, 1);
    assert_int_equal(s.truncated, 0);
    assert_true(find_op(a, 0, "tp-outer", STALL_KIND_STEP, &s));
    assert_int_equal(s.count, 0);
    assert_int_equal(s.truncated, 1);
    assert_int_equal(s.total_ns, 0);
    assert_int_equal(s.min_ns, 0);
    assert_int_equal(s.p50_ns, 0);
    assert_int_equal(s.processes, 1);
    assert_true(find_op(a, 0, "tp-inner", STALL_KIND_DATA_LOADING, &s));
    assert_int_equal(s.count, 0);
    assert_int_equal(s.truncated, 1);
    /* a session begun after they started does not hold them */
    assert_false(find_op(a, 1, "tp-outer", STALL_KIND_STEP, &s));
    assert_int_equal(stall_agg_ops(a, 1, NULL, 0), 0);
    uint64_t kt[STALL_KIND_COUNT_];
    assert_int_equal(stall_agg_kind_time(a, 0, kt), 0);
    assert_int_equal(kt[STALL_KIND_STEP], 0); /* an unfinished span covers nothing */
    stall_agg_free(a);
    stall_reader_close(r, 0);
}

/* --------------------------------------------------------------- cost */

/* 1M real spans, drained every 8192; times stall_agg_add alone on the runs
 * the reader hands over, and the whole stall_agg_drain separately. */
static void cost_per_record(void **state) {
    (void)state;
    stall_reader_t *r = fresh_reader();
    stall_agg_t *a = stall_agg_new(), *b = stall_agg_new();
    const char *names[8] = {"cost-0", "cost-1", "cost-2", "cost-3",
                            "cost-4", "cost-5", "cost-6", "cost-7"};
    stall_name_t ids[8];
    for (int i = 0; i < 8; i++) ids[i] = stall_intern(names[i]);
    assert_int_equal(stall_agg_session_begin(a, 1, "s1", stall_now_ns()), 0);
    assert_int_equal(stall_agg_session_begin(b, 1, "s1", stall_now_ns()), 0);
    const size_t N = 1000000, CH = 8192;
    uint64_t add_ns = 0, drain_ns = 0;
    size_t added = 0, drained = 0;
    cap_t c = {0};
    for (size_t done = 0; done < N; done += CH) {
        /* half of the chunk is captured and added by hand, timed */
        for (size_t i = 0; i < CH / 2; i++) {
            stall_begin_id(STALL_KIND_CPU_COMPUTE, ids[i % 8]);
            if (i % 4 == 0) { /* some nesting */
                stall_begin_id(STALL_KIND_IO, ids[(i + 1) % 8]);
                stall_end();
                i++;
            }
            stall_end();
        }
        c.n = 0;
        c.agg = NULL;
        assert_true(stall_reader_drain(r, cap_cb, &c) >= 0);
        stall_reader_proc_t p = my_proc(r);
        uint64_t t0 = stall_now_ns();
        assert_int_equal(stall_agg_add(a, r, &p, c.v, c.n), 0);
        add_ns += stall_now_ns() - t0;
        added += c.n;
        /* the other half through stall_agg_drain, timed whole */
        for (size_t i = 0; i < CH / 2; i++) {
            stall_begin_id(STALL_KIND_CPU_COMPUTE, ids[i % 8]);
            stall_end();
        }
        t0 = stall_now_ns();
        ssize_t got = stall_agg_drain(b, r);
        drain_ns += stall_now_ns() - t0;
        assert_true(got > 0);
        drained += (size_t)got;
    }
    stall_op_stats_t ops[16];
    ssize_t n = stall_agg_ops(a, 0, ops, 16);
    assert_true(n == 8 || n == 16);
    uint64_t total = 0;
    for (ssize_t i = 0; i < n; i++) total += ops[i].count;
    assert_int_equal(total, added);
    print_message("stall_agg_add: %zu records, %.1f ns/record (2 sessions); "
                  "stall_agg_drain (reader included): %.1f ns/record\n",
                  added, (double)add_ns / (double)added, (double)drain_ns / (double)drained);
    cap_free(&c);
    stall_agg_free(a);
    stall_agg_free(b);
    stall_reader_close(r, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(histogram_buckets),
        cmocka_unit_test(histogram_quantiles),
        cmocka_unit_test(histogram_halving),
        cmocka_unit_test(bad_arguments),
        cmocka_unit_test(exact_counts),
        cmocka_unit_test(nested_self_time),
        cmocka_unit_test(kind_time_real_nesting),
        cmocka_unit_test(kind_time_synthetic),
        cmocka_unit_test(sessions_synthetic),
        cmocka_unit_test(percentiles_synthetic),
        cmocka_unit_test(sessions_real),
        cmocka_unit_test(truncated_and_processes),
        cmocka_unit_test(cost_per_record),
        cmocka_unit_test(thread_cpu_time), /* last: CPU time stays on for the process */
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
