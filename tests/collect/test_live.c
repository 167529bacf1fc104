/*
 * test_live.c - the collectors on this machine's real /proc and /sys: a
 * process tree made by forking (two children burning CPU, one sleeping),
 * followed across samples until its children exit; and two system samples
 * whose CPU shares must add up. Only coarse timing assertions (a burner uses
 * more than 0.3 of a core over 300 ms).
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <sys/wait.h>

#include "collector.h"
#include "fx.h"

static const stall_proc_sample_t *by_pid(const stall_proc_sample_t *v, size_t n, uint32_t pid) {
    for (size_t i = 0; i < n; i++)
        if (v[i].pid == pid) return &v[i];
    return NULL;
}

static pid_t g_live[8]; /* children still to kill, even after a failed assertion */
static int g_nlive;

static int kill_live(void **state) {
    (void)state;
    for (int i = 0; i < g_nlive; i++)
        if (g_live[i] > 0) {
            kill(g_live[i], SIGKILL);
            waitpid(g_live[i], NULL, 0);
        }
    g_nlive = 0;
    return 0;
}

static pid_t spawn(int burn) {
    pid_t p = fork();
    if (p == 0) {
        if (burn) {
            volatile unsigned long x = 0;
            for (;;) x++;
        }
        for (;;) pause();
    }
    assert_true(p > 0);
    if (g_nlive < 8) g_live[g_nlive++] = p;
    return p;
}

static void reap(pid_t p) {
    kill(p, SIGKILL);
    int st;
    assert_int_equal(waitpid(p, &st, 0), p);
    for (int i = 0; i < g_nlive; i++)
        if (g_live[i] == p) g_live[i] = 0;
}

static void test_live_tree(void **state) {
    (void)state;
    stall_tree_collector_t *t = stall__tree_open("/proc", (uint32_t)getpid());
    assert_non_null(t);
    stall_proc_sample_t out[16];
    assert_int_equal(stall__tree_sample(t, stall_now_ns(), 0, out, 16), 1);
    assert_int_equal(out[0].pid, (uint32_t)getpid());

    pid_t b1 = spawn(1), b2 = spawn(1), sl = spawn(0);
    assert_int_equal(stall__tree_sample(t, stall_now_ns(), 0, out, 16), 4);
    usleep(300000);
    size_t n = stall__tree_sample(t, stall_now_ns(), 1, out, 16);
    assert_int_equal(n, 4);
    assert_int_equal(out[0].pid, (uint32_t)getpid());
    assert_int_equal(out[0].depth, 0);
    assert_true(out[0].valid & STALL_PROC_RATES);
    if (access("/proc/self/smaps_rollup", R_OK) == 0) assert_true(out[0].valid & STALL_PROC_PSS);
    if (access("/proc/self/schedstat", R_OK) == 0) assert_true(out[0].valid & STALL_PROC_SCHED);
    assert_true(out[0].valid & STALL_PROC_CTXT);
    assert_true(out[0].rss_bytes > 0);
    pid_t kids[3] = {b1, b2, sl};
    for (int i = 0; i < 3; i++) {
        const stall_proc_sample_t *p = by_pid(out, n, (uint32_t)kids[i]);
        assert_non_null(p);
        assert_int_equal(p->depth, 1);
        assert_int_equal(p->ppid, (uint32_t)getpid());
        assert_true(p->valid & STALL_PROC_STAT);
        assert_true(p->valid & STALL_PROC_RATES);
        if (i < 2) {
            /* two burners on a possibly loaded 2-core machine: each gets a
             * fair share of a core over 300 ms, at least 0.15 */
            assert_true(p->cpu_util > 0.15);
            assert_true(p->cpu_util < 1.5);
        } else {
            assert_int_equal(p->state, 'S');
            assert_true(p->cpu_util < 0.1);
        }
    }

    reap(sl);
    n = stall__tree_sample(t, stall_now_ns(), 0, out, 16);
    assert_int_equal(n, 3);
    assert_null(by_pid(out, n, (uint32_t)sl));
    reap(b1);
    reap(b2);
    assert_int_equal(stall__tree_sample(t, stall_now_ns(), 0, out, 16), 1);
    stall__tree_close(t);
}

static void test_live_sys(void **state) {
    (void)state;
    stall_sys_collector_t *c = stall__sys_open("/proc", "/sys", (uint32_t)getpid());
    assert_non_null(c);
    stall_sys_t s;
    double cores[1024];
    uint32_t nc = 0;
    assert_int_equal(stall__sys_sample(c, stall_now_ns(), &s, cores, 1024, &nc), 0);
    uint64_t need = STALL_SYS_CPU | STALL_SYS_LOAD | STALL_SYS_MEM;
    assert_int_equal(s.valid & need, need);
    assert_int_equal(s.ncpus, (uint32_t)sysconf(_SC_NPROCESSORS_ONLN));
    assert_true(s.usable_cores > 0 && s.usable_cores <= s.ncpus);
    assert_int_equal(s.mem_total_bytes, (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE));
    assert_true(s.mem_usable_available_bytes <= s.mem_available_bytes);
    pid_t b = spawn(1);
    usleep(200000);
    assert_int_equal(stall__sys_sample(c, stall_now_ns(), &s, cores, 1024, &nc), 0);
    reap(b);
    assert_true(s.valid & STALL_SYS_RATES);
    double sum = s.cpu_user + s.cpu_system + s.cpu_iowait + s.cpu_steal + s.cpu_idle;
    assert_float_equal(sum, 1.0, 1e-9);
    assert_true(s.cpu_idle < 1.0); /* a burner ran */
    assert_true(nc >= s.ncpus);
    double busy = 0;
    for (uint32_t i = 0; i < nc; i++) {
        assert_true(cores[i] >= 0 && cores[i] <= 1);
        busy += cores[i];
    }
    assert_true(busy > 0.3); /* at least the burner's core */
    stall__sys_close(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_live_tree, kill_live),
        cmocka_unit_test_teardown(test_live_sys, kill_live),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
