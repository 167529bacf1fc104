/*
 * test_engine.c - the library-mode engine: its thread drains while other
 * threads record and read (every span counted at the end, run under TSan
 * too), with and without a sampler, drains asked for by hand racing the
 * thread's, argument errors, and stall_engine_free removing the directory.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "stall.h"
#include "test_util.h"

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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bad_arguments),
        cmocka_unit_test(drains_while_recording),
        cmocka_unit_test(with_sampler),
        cmocka_unit_test(without_sampler_defaults),
        cmocka_unit_test(free_removes_directory),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
