/*
 * test_sampler.c - the sampler: option checks, sampling a recorded fixture
 * tree (/proc and /sys roots set at run time), the live process tree with
 * the sampling thread, GPUs through the fake NVML library, and the series it
 * feeds. Timing is never asserted beyond "some samples were taken".
 */
#define _GNU_SOURCE
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "stall.h"

#ifndef FIXTURES
#error "FIXTURES must name tests/collect/fixtures"
#endif

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static void bad_options_are_refused_with_the_field_named(void **state) {
    (void)state;
    stall_sampler_options_t o = {.interval_ns = 500000, .no_gpu = 1};
    assert_null(stall_sampler_new(&o));
    assert_non_null(strstr(stall_last_error(), "interval"));
    assert_non_null(strstr(stall_last_error(), "1 ms"));
    o.interval_ns = 0;
    o.max_samples = 8;
    assert_null(stall_sampler_new(&o));
    assert_non_null(strstr(stall_last_error(), "max_samples"));
    o.max_samples = 0;
    stall_sampler_t *s = stall_sampler_new(&o); /* defaults */
    assert_non_null(s);
    stall_sys_t sys;
    assert_int_equal(stall_sampler_latest(s, &sys), -1); /* nothing sampled yet */
    assert_int_equal(stall_sampler_count(s), 0);
    assert_int_equal(stall_sampler_series(s, STALL_M_COUNT_, NULL, 0), -1);
    assert_int_equal(stall_sampler_series(s, -1, NULL, 0), -1);
    assert_int_equal(stall_sampler_stop(s), 0); /* not running: fine */
    stall_sampler_free(s);
    assert_string_equal(stall_metric_name(STALL_M_MEM_AVAILABLE), "mem_available_bytes");
    assert_string_equal(stall_metric_name(STALL_M_COUNT_), "unknown");
}

/* MemTotal of a fixture's meminfo, in bytes */
static uint64_t fixture_memtotal(const char *tree) {
    char path[512], line[256];
    snprintf(path, sizeof path, "%s/%s/proc/meminfo", FIXTURES, tree);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    unsigned long long kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemTotal: %llu kB", &kb) == 1) break;
    fclose(f);
    assert_true(kb > 0);
    return kb * 1024ull;
}

static void samples_a_recorded_fixture_tree(void **state) {
    (void)state;
    char proc[512], sys[512];
    snprintf(proc, sizeof proc, "%s/vm-6.18-v1/proc", FIXTURES);
    snprintf(sys, sizeof sys, "%s/vm-6.18-v1/sys", FIXTURES);
    stall_sampler_options_t o = {.root_pid = 19811, .proc_root = proc, .sys_root = sys, .no_gpu = 1};
    stall_sampler_t *s = stall_sampler_new(&o);
    assert_non_null(s);
    assert_int_equal(stall_sampler_sample(s), 0);
    stall_sys_t y;
    assert_int_equal(stall_sampler_latest(s, &y), 0);
    assert_true(y.valid & STALL_SYS_MEM);
    assert_true(y.valid & STALL_SYS_CPU);
    assert_false(y.valid & STALL_SYS_RATES); /* one sample: no rate yet */
    assert_int_equal(y.mem_total_bytes, fixture_memtotal("vm-6.18-v1"));

    stall_proc_sample_t p[16];
    size_t n = stall_sampler_procs(s, p, 16);
    assert_int_equal(n, 5); /* the recorded tree: 19811 and four descendants */
    assert_int_equal(p[0].pid, 19811);
    assert_int_equal(p[0].depth, 0);
    for (size_t i = 1; i < n; i++) assert_true(p[i].depth >= 1);
    assert_int_equal(stall_sampler_gpus(s, NULL, 0), 0); /* no_gpu */
    /* devices as recorded: the one whole disk (loop and zram left out), then
     * the interfaces but lo; no rates from a single sample */
    stall_device_t dv[16];
    size_t nd = stall_sampler_devices(s, dv, 16);
    assert_true(nd >= 2);
    assert_string_equal(dv[0].name, "vda");
    assert_int_equal(dv[0].is_net, 0);
    assert_int_equal(dv[0].read_bytes, 3263850ull * 512);
    assert_int_equal(dv[0].valid & STALL_DEV_RATES, 0);
    int eth0 = 0;
    for (size_t i = 1; i < nd && i < 16; i++) {
        assert_int_equal(dv[i].is_net, 1);
        assert_string_not_equal(dv[i].name, "lo");
        if (!strcmp(dv[i].name, "eth0")) {
            eth0 = 1;
            assert_int_equal(dv[i].read_bytes, 96519721);
            assert_int_equal(dv[i].write_bytes, 134216);
        }
    }
    assert_true(eth0);

    assert_int_equal(stall_sampler_sample(s), 0);
    assert_int_equal(stall_sampler_latest(s, &y), 0);
    /* a recorded tree does not move: no tick elapsed, so the rates are
     * unknown (not 0) and the CPU series stays NaN */
    assert_false(y.valid & STALL_SYS_RATES);
    assert_int_equal(stall_sampler_count(s), 2);

    stall_point_t pts[8];
    assert_int_equal(stall_sampler_series(s, STALL_M_TREE_PROCS, pts, 8), 2);
    assert_true(pts[0].avg == 5.0 && pts[1].avg == 5.0);
    assert_int_equal(stall_sampler_series(s, STALL_M_MEM_AVAILABLE, pts, 8), 2);
    assert_true(pts[1].n == 1 && pts[1].avg == (double)y.mem_usable_available_bytes);
    assert_int_equal(stall_sampler_series(s, STALL_M_CPU_USER, pts, 8), 2);
    assert_true(isnan(pts[1].avg));
    /* unknown stays unknown: no GPU, so the GPU series holds NaN */
    assert_int_equal(stall_sampler_series(s, STALL_M_GPU_UTIL, pts, 8), 2);
    assert_true(isnan(pts[1].avg) && pts[1].n == 0);
    stall_sampler_free(s);
}

static void burn_forever(void) {
    volatile double x = 1.0;
    for (;;) x = x * 1.0000001 + 1e-9;
}

static pid_t g_kid;

/* Kills the burner even when an assertion failed (it holds our stdout: a
 * test runner would wait for it). */
static int kill_kid(void **state) {
    (void)state;
    if (g_kid > 0) {
        kill(g_kid, SIGKILL);
        waitpid(g_kid, NULL, 0);
        g_kid = 0;
    }
    return 0;
}

/* The sampling thread follows this process and a child that burns CPU. */
static void samples_the_live_tree_on_its_thread(void **state) {
    (void)state;
    pid_t kid = fork();
    assert_true(kid >= 0);
    if (kid == 0) burn_forever();
    g_kid = kid;
    stall_sampler_options_t o = {.interval_ns = 10000000, .no_gpu = 1}; /* 10 ms */
    stall_sampler_t *s = stall_sampler_new(&o);
    assert_non_null(s);
    assert_int_equal(stall_sampler_start(s), 0);
    assert_int_equal(stall_sampler_start(s), -1); /* already running */
    assert_non_null(strstr(stall_last_error(), "already running"));
    /* read while the thread samples (ThreadSanitizer runs this test too) */
    uint64_t until = stall_now_ns() + 400000000ull;
    static stall_point_t live[2048];
    stall_proc_sample_t lp[8];
    stall_sys_t ly;
    while (stall_now_ns() < until) {
        stall_sampler_latest(s, &ly);
        stall_sampler_procs(s, lp, 8);
        stall_sampler_series(s, STALL_M_MAIN_CPU, live, 2048);
        sleep_ms(3);
    }
    assert_int_equal(stall_sampler_stop(s), 0);
    uint64_t count = stall_sampler_count(s);
    assert_true(count >= 5);
    sleep_ms(30);
    assert_int_equal(stall_sampler_count(s), count); /* stopped means stopped */

    stall_proc_sample_t p[8];
    size_t n = stall_sampler_procs(s, p, 8);
    assert_true(n >= 2);
    assert_int_equal(p[0].pid, (uint32_t)getpid());
    int found = 0;
    for (size_t i = 1; i < n && i < 8; i++)
        if (p[i].pid == (uint32_t)kid) {
            found = 1;
            assert_true(p[i].valid & STALL_PROC_RATES);
            /* CPU time comes in clock ticks (10 ms): one 10 ms interval may
             * read 0 or a whole core, so judge the burner by its total over
             * the ~400 ms it ran, which even a loaded machine gives >50 ms */
            assert_true(p[i].utime_ns + p[i].stime_ns > 50000000ull);
        }
    assert_true(found);
    stall_point_t pts[2048];
    ssize_t np = stall_sampler_series(s, STALL_M_WORKERS_CPU, pts, 2048);
    assert_int_equal((uint64_t)np, count);
    double sum = 0;
    for (ssize_t i = 1; i < np; i++) sum += pts[i].avg;
    assert_true(sum / (double)(np - 1) > 0.1); /* the series saw the burner working */

    kill_kid(NULL);
    assert_int_equal(stall_sampler_sample(s), 0);
    n = stall_sampler_procs(s, p, 8);
    for (size_t i = 0; i < n && i < 8; i++) assert_int_not_equal(p[i].pid, (uint32_t)kid);
    stall_sampler_free(s);
}

/* GPUs come from NVML (here the fake library of tests/nvml), and the tree's
 * processes get their GPU memory. */
static void gpus_through_nvml(void **state) {
    (void)state;
    char script[] = "/tmp/stall-fake-nvml-XXXXXX";
    int fd = mkstemp(script);
    assert_true(fd >= 0);
    char text[512];
    int len = snprintf(text, sizeof text,
                       "count 2\n"
                       "d0.name Fake A100\nd0.util 75 30\nd0.mem 1000 400 600\nd0.power 250000\n"
                       "d0.proc %d 104857600\n"
                       "d1.name Fake A100\nd1.util 25 10\nd1.mem 1000 900 100\nd1.power 50000\nd1.proc 1 4096\n",
                       (int)getpid());
    assert_int_equal(write(fd, text, (size_t)len), len);
    close(fd);
    setenv("FAKE_NVML_SCRIPT", script, 1);
    setenv("STALL_NVML_LIBRARY", FAKE_NVML, 1);

    stall_sampler_options_t o = {0};
    stall_sampler_t *s = stall_sampler_new(&o);
    assert_non_null(s);
    assert_int_equal(stall_sampler_sample(s), 0);
    stall_gpu_t g[4];
    assert_int_equal(stall_sampler_gpus(s, g, 4), 2);
    assert_string_equal(g[0].name, "Fake A100");
    assert_true(g[0].valid & STALL_GPU_UTIL);
    assert_true(g[0].util_sm_pct == 75.0);
    stall_proc_sample_t p[4];
    stall_sampler_procs(s, p, 4);
    assert_true(p[0].valid & STALL_PROC_GPU);
    assert_int_equal(p[0].gpu_mem_bytes, 104857600);
    stall_point_t pts[4];
    assert_int_equal(stall_sampler_series(s, STALL_M_GPU_UTIL, pts, 4), 1);
    assert_true(pts[0].avg == 50.0); /* mean over the two GPUs */
    assert_int_equal(stall_sampler_series(s, STALL_M_GPU_POWER, pts, 4), 1);
    assert_true(pts[0].avg == 300000.0);
    stall_sampler_free(s);

    /* no library: no GPU, not an error */
    setenv("STALL_NVML_LIBRARY", "/nonexistent/libnvidia-ml.so.1", 1);
    s = stall_sampler_new(&o);
    assert_non_null(s);
    assert_int_equal(stall_sampler_sample(s), 0);
    assert_int_equal(stall_sampler_gpus(s, g, 4), 0);
    stall_sampler_procs(s, p, 4);
    assert_false(p[0].valid & STALL_PROC_GPU);
    stall_sampler_free(s);
    unsetenv("STALL_NVML_LIBRARY");
    unlink(script);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bad_options_are_refused_with_the_field_named),
        cmocka_unit_test(samples_a_recorded_fixture_tree),
        cmocka_unit_test_teardown(samples_the_live_tree_on_its_thread, kill_kid),
        cmocka_unit_test(gpus_through_nvml),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
