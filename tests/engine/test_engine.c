/*
 * test_engine.c - the library-mode engine: its thread drains while other
 * threads record and read (every span counted at the end, run under TSan
 * too), with and without a sampler, drains asked for by hand racing the
 * thread's, argument errors, stall_engine_free removing the directory, and
 * the diagnosis API (a session's findings, thresholds, added detectors).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <pthread.h>
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

#include "stall.h"
#include "test_util.h"
#include "fx.h"

static char g_base[512];
static stall_session_t *g_sess;
static const char *g_dir;

static void pause_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static int discard_cb(void *ctx, const stall_reader_proc_t *p, const stall_record_t *r, size_t n) {
    (void)ctx, (void)p, (void)r, (void)n;
    return 0;
}

/* Empties the rings so that each test starts from nothing. */
static void drain_away(void) {
    stall_reader_t *r = stall_reader_open(g_dir);
    assert_non_null(r);
    assert_true(stall_reader_drain(r, discard_cb, NULL) >= 0);
    stall_reader_close(r, 0);
}

/* Spans this process lost so far (full rings, no ring, too deep). */
static uint64_t my_dropped(void) {
    stall_reader_t *r = stall_reader_open(g_dir);
    assert_non_null(r);
    stall_reader_proc_t p;
    uint64_t d = 0;
    assert_true(stall_reader_drain(r, discard_cb, NULL) >= 0);
    size_t n = stall_reader_proc(r, 0, NULL);
    for (size_t i = 0; i < n; i++) {
        stall_reader_proc(r, i, &p);
        if (p.pid == (uint32_t)getpid()) d += p.dropped;
    }
    stall_reader_close(r, 0);
    return d;
}

static int find_op(stall_agg_t *a, uint64_t id, const char *name, stall_op_stats_t *out) {
    stall_op_stats_t ops[64];
    ssize_t n = stall_agg_ops(a, id, ops, 64);
    assert_true(n >= 0 && n <= 64);
    for (ssize_t i = 0; i < n; i++)
        if (strcmp(ops[i].name, name) == 0) {
            *out = ops[i];
            return 1;
        }
    return 0;
}

static int group_setup(void **state) {
    (void)state;
    return tu_session_start(g_base, sizeof g_base, "engine-test", 0, &g_sess, &g_dir);
}

static int group_teardown(void **state) {
    (void)state;
    tu_session_end(g_sess, g_dir, g_base);
    return 0;
}

/* ------------------------------------------------------------ arguments */

static void bad_arguments(void **state) {
    (void)state;
    assert_null(stall_engine_new(NULL, NULL, 1, 0));
    assert_non_null(strstr(stall_last_error(), "dir"));
    assert_null(stall_engine_new("/nonexistent/stall-dir", NULL, 1, 0));
    assert_null(stall_engine_new(g_dir, NULL, 1, 1000)); /* 1 us */
    assert_non_null(strstr(stall_last_error(), "drain_interval_ns"));
    stall_sampler_options_t so = {0};
    so.interval_ns = 10; /* below 1 ms */
    assert_null(stall_engine_new(g_dir, &so, 0, 0));
    assert_non_null(strstr(stall_last_error(), "interval"));
    /* one reader per session: a second engine on the same directory fails */
    stall_engine_t *e = stall_engine_new(g_dir, NULL, 1, 0);
    assert_non_null(e);
    assert_null(stall_engine_new(g_dir, NULL, 1, 0));
    assert_null(stall_engine_sampler(e));
    assert_non_null(stall_engine_agg(e));
    assert_int_equal(stall_engine_stop(e), 0); /* not running: fine */
    assert_int_equal(stall_engine_start(e), 0);
    assert_int_equal(stall_engine_start(e), -1);
    assert_non_null(strstr(stall_last_error(), "already running"));
    assert_int_equal(stall_engine_stop(e), 0);
    assert_int_equal(stall_engine_start(e), 0); /* restartable */
    stall_engine_free(e, 0);
    assert_int_equal(stall_engine_drain(NULL), -1);
    assert_int_equal(stall_engine_start(NULL), -1);
    assert_int_equal(stall_engine_stop(NULL), -1);
    assert_null(stall_engine_agg(NULL));
    stall_engine_free(NULL, 1);
    struct stat st;
    assert_int_equal(stat(g_dir, &st), 0); /* remove = 0 left it */
}

/* ------------------------------------------- the thread drains, we record */

#define WRITERS 3
#define SPANS 20000 /* per writer: more than a ring holds (16384), so the
                     * engine thread must drain while they record */

static void *writer(void *arg) {
    int w = (int)(intptr_t)arg;
    char name[32];
    snprintf(name, sizeof name, "eng-w%d", w);
    stall_name_t id = stall_intern(name), child = stall_intern("eng-child");
    for (int i = 0; i < SPANS; i++) {
        stall_begin_id(STALL_KIND_DATA_LOADING, id);
        if (i % 10 == 0) {
            stall_begin_id(STALL_KIND_IO, child);
            stall_end();
        }
        stall_end_arg(1);
        if (i % 1000 == 0) pause_us(2000); /* let the 1 ms drains keep up */
    }
    return NULL;
}

static void drains_while_recording(void **state) {
    (void)state;
    drain_away();
    uint64_t dropped0 = my_dropped();
    stall_engine_t *e = stall_engine_new(g_dir, NULL, 1, 1000000); /* 1 ms */
    assert_non_null(e);
    stall_agg_t *a = stall_engine_agg(e);
    assert_int_equal(stall_engine_start(e), 0);
    pthread_t t[WRITERS];
    for (int i = 0; i < WRITERS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, writer, (void *)(intptr_t)i), 0);
    /* read while they record and the thread drains; also drain by hand */
    uint64_t seen = 0;
    stall_op_stats_t ops[16];
    for (int k = 0; k < 50; k++) {
        ssize_t n = stall_agg_ops(a, 0, ops, 16);
        assert_true(n >= 0);
        uint64_t c = 0;
        for (ssize_t i = 0; i < n && i < 16; i++) c += ops[i].count;
        assert_true(c >= seen); /* counts only grow */
        seen = c;
        uint64_t kt[STALL_KIND_COUNT_];
        assert_int_equal(stall_agg_kind_time(a, 0, kt), 0);
        if (k % 10 == 0) assert_true(stall_engine_drain(e) >= 0);
        pause_us(1000);
    }
    for (int i = 0; i < WRITERS; i++) pthread_join(t[i], NULL);
    assert_int_equal(stall_engine_stop(e), 0);
    assert_true(stall_engine_drain(e) >= 0);
    /* every span made is counted, or was lost to a full ring (possible only
     * when a slow machine, e.g. under TSan, starves the drain thread) and
     * then counted as dropped by the transport */
    uint64_t made = (uint64_t)WRITERS * SPANS + WRITERS * SPANS / 10, counted = 0;
    stall_op_stats_t s;
    for (int w = 0; w < WRITERS; w++) {
        char name[32];
        snprintf(name, sizeof name, "eng-w%d", w);
        assert_true(find_op(a, 0, name, &s));
        counted += s.count;
        assert_true(s.self_ns <= s.total_ns);
        assert_true(s.arg_sum == s.count);
    }
    assert_true(find_op(a, 0, "eng-child", &s));
    counted += s.count;
    stall_engine_free(e, 0);
    uint64_t dropped = my_dropped() - dropped0;
    if (dropped)
        print_message("engine test: %llu spans dropped by full rings\n", (unsigned long long)dropped);
    assert_int_equal(counted + dropped, made);
    assert_true(dropped < made / 2); /* most were drained in time */
}

/* ---------------------------------------------------------- with sampler */

static void with_sampler(void **state) {
    (void)state;
    drain_away();
    stall_sampler_options_t so = {0};
    so.interval_ns = 5000000; /* 5 ms */
    so.no_gpu = 1;
    stall_engine_t *e = stall_engine_new(g_dir, &so, 0, 2000000);
    assert_non_null(e);
    stall_sampler_t *s = stall_engine_sampler(e);
    assert_non_null(s);
    assert_int_equal(stall_engine_start(e), 0);
    for (int i = 0; i < 10; i++) {
        stall_begin(STALL_KIND_CPU_COMPUTE, "eng-sampled");
        pause_us(2000);
        stall_end();
    }
    /* wait (bounded) for a few samples */
    for (int i = 0; i < 400 && stall_sampler_count(s) < 3; i++) pause_us(5000);
    assert_true(stall_sampler_count(s) >= 3);
    stall_proc_sample_t root;
    assert_true(stall_sampler_procs(s, &root, 1) >= 1);
    assert_int_equal(root.pid, (uint32_t)getpid()); /* root_pid defaults to us */
    assert_int_equal(stall_engine_stop(e), 0);
    uint64_t n = stall_sampler_count(s);
    pause_us(20000);
    assert_int_equal(stall_sampler_count(s), n); /* stop stopped the sampler too */
    assert_true(stall_engine_drain(e) >= 0);
    stall_op_stats_t op;
    assert_true(find_op(stall_engine_agg(e), 0, "eng-sampled", &op));
    assert_int_equal(op.count, 10);
    stall_engine_free(e, 0);
}

/* A child forked while the engine's threads wait (sampler at 5 ms, drain
 * every 10 s): the child's copy neither drains (the parent's records stay
 * the parent's) nor joins threads it does not have, and free returns at once
 * (it used to block for ever destroying a condition the parent's threads
 * waited on) */
static void fork_leaves_the_engine_to_the_parent(void **state) {
    (void)state;
    drain_away();
    stall_sampler_options_t so;
    memset(&so, 0, sizeof so);
    so.interval_ns = 5000000;
    so.no_gpu = 1;
    stall_engine_t *e = stall_engine_new(g_dir, &so, 0, 10000000000ull);
    assert_non_null(e);
    assert_int_equal(stall_engine_start(e), 0);
    for (int i = 0; i < 10; i++) {
        stall_begin(STALL_KIND_CPU_COMPUTE, "eng-forked");
        stall_end();
    }
    pause_us(20000); /* the threads are waiting now */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int code = 0;
        if (stall_engine_drain(e) != -1 || !strstr(stall_last_error(), "forked child")) code = 1;
        else if (stall_engine_start(e) != -1) code = 2;
        else if (stall_engine_stop(e) != 0) code = 3;
        stall_engine_free(e, 1);
        _exit(code);
    }
    int st = 0;
    pid_t got = 0;
    for (int i = 0; i < 1000 && (got = waitpid(pid, &st, WNOHANG)) == 0; i++) pause_us(10000);
    if (got == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        fail_msg("the forked child did not exit within 10 s");
    }
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_int_equal(stall_engine_stop(e), 0);
    assert_true(stall_engine_drain(e) >= 0);
    stall_op_stats_t op;
    assert_true(find_op(stall_engine_agg(e), 0, "eng-forked", &op));
    assert_int_equal(op.count, 10); /* none taken by the child */
    struct stat sb;
    assert_int_equal(stat(g_dir, &sb), 0); /* nor the directory removed */
    stall_engine_free(e, 0);
}

/* free drains what is left; the default interval works */
static void without_sampler_defaults(void **state) {
    (void)state;
    drain_away();
    stall_engine_t *e = stall_engine_new(g_dir, NULL, 1, 0);
    assert_non_null(e);
    assert_int_equal(stall_engine_start(e), 0);
    for (int i = 0; i < 5; i++) {
        stall_begin(STALL_KIND_IO, "eng-default");
        stall_end();
    }
    /* within a few default intervals (50 ms) the thread has drained them */
    stall_op_stats_t op = {0};
    for (int i = 0; i < 200; i++) {
        if (find_op(stall_engine_agg(e), 0, "eng-default", &op) && op.count == 5) break;
        pause_us(5000);
    }
    assert_int_equal(op.count, 5);
    stall_engine_free(e, 0);
}

/* ------------------------------------------------------------ removal */

static void free_removes_directory(void **state) {
    (void)state;
    /* a session directory of our own (the process's real one is shared by
     * every test): a folder with meta.json is what a reader accepts */
    char dir[600];
    snprintf(dir, sizeof dir, "%s/own-XXXXXX", g_base);
    assert_non_null(mkdtemp(dir));
    char meta[700];
    snprintf(meta, sizeof meta, "%s/meta.json", dir);
    FILE *f = fopen(meta, "w");
    assert_non_null(f);
    fputs("{\"name\":\"own\"}\n", f);
    fclose(f);
    stall_engine_t *e = stall_engine_new(dir, NULL, 1, 0);
    assert_non_null(e);
    assert_int_equal(stall_engine_start(e), 0);
    assert_int_equal(stall_engine_drain(e), 0);
    stall_engine_free(e, 1);
    struct stat st;
    assert_int_equal(stat(dir, &st), -1);
    assert_int_equal(errno, ENOENT);
}

/* ------------------------------------------------------------ diagnosis */

static int detector_calls;

static int my_detector(const stall_diagnosis_t *d, stall_finding_t *f, void *ctx) {
    detector_calls++;
    assert_ptr_equal(ctx, &detector_calls);
    /* it sees the values measured and the findings of stall's own detectors */
    assert_true(stall_diagnosis_value(d, "duration_s") > 0.01);
    assert_true(stall_diagnosis_finding_count(d) >= 1);
    assert_int_equal(stall_finding_set(f, "bad type!", 0.5, "x"), -1);
    assert_non_null(strstr(stall_last_error(), "letters"));
    assert_int_equal(stall_finding_set(f, "MY_CAUSE", 2.0, "my own cause"), 0); /* severity clamped */
    assert_int_equal(stall_finding_evidence(f, "answer", 42), 0);
    assert_int_equal(stall_finding_suggest(f, "Do the thing", 1.5, "it helps"), 0);
    return 1;
}

static int silent_detector(const stall_diagnosis_t *d, stall_finding_t *f, void *ctx) {
    (void)d, (void)f, (void)ctx;
    return 0;
}

static void busy_ms(int ms) {
    uint64_t end = stall_now_ns() + (uint64_t)ms * 1000000u;
    while (stall_now_ns() < end) {
    }
}

static int has_type(const stall_diagnosis_t *d, const char *type) {
    for (int i = 0; i < stall_diagnosis_finding_count(d); i++)
        if (!strcmp(stall_finding_type(stall_diagnosis_finding(d, i)), type)) return 1;
    return 0;
}

static void diagnosis(void **state) {
    (void)state;
    drain_away();
    stall_engine_t *e = stall_engine_new(g_dir, NULL, 1, 0);
    assert_non_null(e);
    stall_agg_t *agg = stall_engine_agg(e);
    assert_int_equal(stall_agg_session_begin(agg, 7, "diag-session", stall_now_ns()), 0);
    stall_begin(STALL_KIND_OTHER, "diag-session"); /* the span around the session: never a finding */
    stall_begin(STALL_KIND_CPU_COMPUTE, "diag-heavy");
    busy_ms(30);
    stall_end();
    stall_begin(STALL_KIND_IO, "diag-light");
    stall_end();
    stall_end();
    assert_int_equal(stall_agg_session_end(agg, 7, stall_now_ns()), 0);

    assert_int_equal(stall_engine_add_detector(e, "mine", my_detector, &detector_calls), 0);
    assert_int_equal(stall_engine_add_detector(e, "mine", silent_detector, NULL), -1);
    assert_non_null(strstr(stall_last_error(), "already"));
    assert_int_equal(stall_engine_add_detector(e, "", silent_detector, NULL), -1);
    assert_int_equal(stall_engine_add_detector(e, "quiet", NULL, NULL), -1);
    assert_int_equal(stall_engine_add_detector(e, "quiet", silent_detector, NULL), 0);

    stall_diagnosis_t *d = stall_engine_diagnose(e, 7, NULL);
    assert_non_null(d);
    assert_int_equal(detector_calls, 1);
    /* strongest first: the added finding (severity 1) and the operation that took most of the session */
    assert_true(stall_diagnosis_finding_count(d) >= 2);
    const stall_finding_t *f0 = stall_diagnosis_finding(d, 0);
    assert_string_equal(stall_finding_type(f0), "MY_CAUSE");
    assert_true(stall_finding_severity(f0) == 1.0);
    assert_string_equal(stall_finding_summary(f0), "my own cause");
    assert_true(has_type(d, "CPU_COMPUTATION"));
    assert_false(has_type(d, "IO_OPERATIONS")); /* diag-light is far below 5% */
    assert_null(stall_diagnosis_finding(d, 99));
    assert_null(stall_diagnosis_finding(d, -1));
    assert_true(isnan(stall_diagnosis_value(d, "no_such_value")));
    assert_true(isnan(stall_diagnosis_value(d, "loop_s")) || stall_diagnosis_value(d, "loop_s") == 0);
    int nvalues = 0;
    while (stall_diagnosis_value_name(nvalues)) nvalues++;
    assert_true(nvalues > 20);
    size_t len = 0;
    char *json = stall_diagnosis_json(d, &len);
    assert_non_null(json);
    assert_int_equal(strlen(json), len);
    assert_non_null(strstr(json, "\"type\":\"MY_CAUSE\""));
    assert_non_null(strstr(json, "\"answer\":42"));
    assert_non_null(strstr(json, "\"expected_speedup\":1.5"));
    assert_non_null(strstr(json, "\"operation\":\"diag-heavy\""));
    assert_null(strstr(json, "\"operation\":\"diag-session\""));
    free(json);
    stall_diagnosis_free(d);

    /* a threshold above every share: no operation finding */
    stall_thresholds_t th = {0};
    th.bottleneck = 1.0;
    assert_int_equal(stall_engine_remove_detector(e, "mine"), 0);
    assert_int_equal(stall_engine_remove_detector(e, "mine"), -1);
    d = stall_engine_diagnose(e, 7, &th);
    assert_non_null(d);
    assert_int_equal(detector_calls, 1);
    assert_false(has_type(d, "MY_CAUSE"));
    assert_false(has_type(d, "CPU_COMPUTATION"));
    stall_diagnosis_free(d);

    assert_null(stall_engine_diagnose(e, 12345, NULL));
    assert_non_null(strstr(stall_last_error(), "unknown session"));
    assert_null(stall_engine_diagnose(NULL, 0, NULL));
    stall_diagnosis_free(NULL);
    stall_engine_free(e, 0);
}

/* A DataLoader the Python hook would have described: loader-<pid>-<n>.kv */
static void write_loader(int n, int workers) {
    char path[700];
    snprintf(path, sizeof path, "%s/loader-%d-%d.kv", g_dir, (int)getpid(), n);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "id=%d.%d\npid=%d\nn=%d\nbatch_size=8\nnum_workers=%d\npin_memory=False\n"
               "persistent_workers=False\nprefetch_factor=None\ndrop_last=False\n",
            (int)getpid(), n, (int)getpid(), n, workers);
    fclose(f);
}

/* A training loop as the hook records it: per batch a wait for data of
 * wait_us, then a step of step_us, of which copy_us are a pageable copy to
 * the GPU. */
static void record_loop(int n, int batches, int wait_us, int step_us, int copy_us) {
    char wait[64];
    snprintf(wait, sizeof wait, "dl%d.%d.wait", (int)getpid(), n);
    for (int i = 0; i <= batches; i++) {
        stall_begin(STALL_KIND_DATA_WAIT, wait);
        if (wait_us) pause_us(wait_us); /* 0: a batch that was ready (a sleep is ~60 us, more under ASan) */
        stall_end_arg(i < batches); /* the last one is the StopIteration */
        if (i == batches) break;
        stall_begin(STALL_KIND_STEP, "train.step");
        if (copy_us) {
            stall_begin(STALL_KIND_TRANSFER, "h2d.pageable");
            pause_us(copy_us);
            stall_end();
        }
        pause_us(step_us - copy_us);
        stall_end();
    }
}

static const stall_finding_t *finding_of(const stall_diagnosis_t *d, const char *type) {
    for (int i = 0; i < stall_diagnosis_finding_count(d); i++)
        if (!strcmp(stall_finding_type(stall_diagnosis_finding(d, i)), type)) return stall_diagnosis_finding(d, i);
    return NULL;
}

/* Waiting for data with no fetch spans (level basic): DATA_LOADING, with
 * workers to add; the breakdown comes from the spans alone. */
/* A fresh engine that saw loader n (with `workers`) run 20 batches of
 * record_loop in session id, and its diagnosis. */
static stall_diagnosis_t *diagnose_loop(stall_engine_t **e, uint64_t id, int n, int workers, int wait_us, int step_us,
                                        int copy_us) {
    drain_away();
    write_loader(n, workers);
    *e = stall_engine_new(g_dir, NULL, 1, 0);
    assert_non_null(*e);
    assert_int_equal(stall_agg_session_begin(stall_engine_agg(*e), id, "loop", stall_now_ns()), 0);
    record_loop(n, 20, wait_us, step_us, copy_us);
    assert_int_equal(stall_agg_session_end(stall_engine_agg(*e), id, stall_now_ns()), 0);
    stall_diagnosis_t *d = stall_engine_diagnose(*e, id, NULL);
    assert_non_null(d);
    return d;
}

static void diagnosis_waiting_for_data(void **state) {
    (void)state;
    stall_engine_t *e;
    stall_diagnosis_t *d = diagnose_loop(&e, 21, 1, 0, 3000, 1000, 0);
    assert_string_equal(stall_finding_type(stall_diagnosis_finding(d, 0)), "DATA_LOADING");
    assert_true(stall_diagnosis_value(d, "batches") == 20);
    double w = stall_diagnosis_value(d, "data_wait_frac");
    assert_true(w > 0.5 && w < 0.9);
    assert_true(stall_diagnosis_value(d, "num_workers") == 0);
    char *json = stall_diagnosis_json(d, NULL);
    assert_non_null(strstr(json, "\"num_workers\":"));
    free(json);
    stall_diagnosis_free(d);
    stall_engine_free(e, 0);
}

/* Copies to the GPU from pageable memory take 40% of the loop: the copies
 * lead (they have a fix), with pin_memory and non_blocking suggested. */
static void diagnosis_transfer_overhead(void **state) {
    (void)state;
    stall_engine_t *e;
    stall_diagnosis_t *d = diagnose_loop(&e, 22, 2, 2, 0, 5000, 2000);
    const stall_finding_t *f0 = stall_diagnosis_finding(d, 0);
    assert_string_equal(stall_finding_type(f0), "GPU_TRANSFER_OVERHEAD");
    assert_true(stall_finding_severity(f0) > 0.2);
    assert_null(finding_of(d, "DATA_LOADING")); /* the batches were ready: waits are far below 5% */
    assert_non_null(finding_of(d, "CPU_BOUND")); /* after the copies */
    char *json = stall_diagnosis_json(d, NULL);
    assert_non_null(strstr(json, "\"pin_memory\":true"));
    assert_non_null(strstr(json, "\"non_blocking\":true"));
    free(json);
    stall_diagnosis_free(d);
    stall_engine_free(e, 0);
}

/* /proc/stat of the recorded 2-CPU machine after `batches` batches: per
 * batch, cpu0 runs `busy` ticks, the hypervisor steals `steal` of it, the
 * rest of 10 ticks idle; cpu1 idles. */
static void write_stat(const char *root, int batches, int busy, int steal) {
    long u = 145018 + (long)batches * busy, st = 1067 + (long)batches * steal;
    long i0 = 125222 + (long)batches * (10 - busy - steal), i1 = 110445 + (long)batches * 10;
    char text[512];
    snprintf(text, sizeof text,
             "cpu  %ld 0 212360 %ld 763 0 199 %ld 0 0\n"
             "cpu0 %ld 0 93180 %ld 517 0 73 %ld 0 0\n"
             "cpu1 67014 0 119179 %ld 245 0 125 517 0 0\n",
             u, i0 + i1, st, u - 67014, i0, st - 517, i1);
    assert_int_equal(fx_write(root, "proc/stat", text), 0);
}

/* The loop waits on a fetch (loader without workers) that is on a CPU 30%
 * of its time. On a machine whose hypervisor takes nothing, the rest is a
 * wait on storage: SLOW_DISK_IO. When the hypervisor takes 70% of the time
 * the CPU wanted, the fetch wanted a core all along and got 30% of it: not a
 * storage wait, and with a CPU idle, workers help: INSUFFICIENT_WORKERS. */
static const char *input_cause_under_steal(int steal) {
    char root[4096], proc[4200], sys[4200], fetch[64], wait[64];
    assert_int_equal(fx_scratch(root, sizeof root, "vm-6.18-v1"), 0);
    snprintf(proc, sizeof proc, "%s/proc", root);
    snprintf(sys, sizeof sys, "%s/sys", root);
    drain_away();
    write_loader(3, 0);
    stall_sampler_options_t so = {.root_pid = 19811, .proc_root = proc, .sys_root = sys, .no_gpu = 1};
    stall_engine_t *e = stall_engine_new(g_dir, &so, 0, 0);
    assert_non_null(e);
    uint64_t id = 30 + (uint64_t)steal;
    assert_int_equal(stall_agg_session_begin(stall_engine_agg(e), id, "loop", stall_now_ns()), 0);
    snprintf(wait, sizeof wait, "dl%d.3.wait", (int)getpid());
    snprintf(fetch, sizeof fetch, "dl%d.3.fetch", (int)getpid());
    write_stat(root, 0, 3, steal);
    assert_int_equal(stall_sampler_sample(stall_engine_sampler(e)), 0);
    for (int i = 0; i <= 20; i++) {
        stall_begin(STALL_KIND_DATA_WAIT, wait);
        if (i < 20) {
            stall_begin(STALL_KIND_DATA_LOADING | STALL_WITH_CPU, fetch);
            struct timespec t0, t;
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
            do clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
            while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < 300000);
            pause_us(700);
            stall_end();
        }
        stall_end_arg(i < 20);
        if (i == 20) break;
        stall_begin(STALL_KIND_STEP, "train.step");
        pause_us(200);
        stall_end();
        write_stat(root, i + 1, 3, steal);
        assert_int_equal(stall_sampler_sample(stall_engine_sampler(e)), 0);
    }
    assert_int_equal(stall_agg_session_end(stall_engine_agg(e), id, stall_now_ns()), 0);
    stall_diagnosis_t *d = stall_engine_diagnose(e, id, NULL);
    assert_non_null(d);
    static char type[64];
    snprintf(type, sizeof type, "%s", stall_diagnosis_finding_count(d) ? stall_finding_type(stall_diagnosis_finding(d, 0)) : "");
    double sob = stall_diagnosis_value(d, "steal_of_busy");
    if (steal) assert_true(fabs(sob - (double)steal / (3 + steal)) < 0.01);
    else assert_true(sob == 0);
    stall_diagnosis_free(d);
    stall_engine_free(e, 0);
    fx_scratch_done(root);
    return type;
}

static void diagnosis_counts_stolen_time_as_wanted_cpu(void **state) {
    (void)state;
    assert_string_equal(input_cause_under_steal(0), "SLOW_DISK_IO");
    assert_string_equal(input_cause_under_steal(7), "INSUFFICIENT_WORKERS");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bad_arguments),
        cmocka_unit_test(drains_while_recording),
        cmocka_unit_test(with_sampler),
        cmocka_unit_test(without_sampler_defaults),
        cmocka_unit_test(fork_leaves_the_engine_to_the_parent),
        cmocka_unit_test(free_removes_directory),
        cmocka_unit_test(diagnosis),
        cmocka_unit_test(diagnosis_waiting_for_data),
        cmocka_unit_test(diagnosis_transfer_overhead),
        cmocka_unit_test(diagnosis_counts_stolen_time_as_wanted_cpu),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
