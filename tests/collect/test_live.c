/*
 * test_live.c - the collectors on this machine's real /proc and /sys: a
 * process tree made by forking (two children burning CPU, one sleeping),
 * followed across samples until its children exit; two system samples
 * whose CPU shares must add up; threads of this process blocked on a TCP
 * socket (recv and read), a unix socket, a pipe and in nanosleep, told apart
 * by the thread states (also through the sampler's metrics); a child that
 * faults in fresh memory. Only coarse timing assertions (a burner uses more
 * than 0.3 of a core over 300 ms).
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

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

/* ------------------------------------------------------- thread states */

typedef struct blocker_t {
    int fd;      /* read or recv on it */
    int use_recv;
} blocker_t;

static volatile int g_stop_sleeper;

static void *block_on(void *arg) {
    blocker_t *b = arg;
    char c;
    if (b->use_recv)
        (void)!recv(b->fd, &c, 1, 0);
    else
        (void)!read(b->fd, &c, 1);
    return NULL;
}

static void *sleeper(void *arg) {
    (void)arg;
    while (!g_stop_sleeper) {
        struct timespec ts = {0, 200000000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

/* Waits up to 5 s for this process's counts to be net, sleep; returns the
 * last sample of the process. */
static stall_proc_sample_t wait_counts(stall_tree_collector_t *t, uint32_t net, uint32_t sleep) {
    stall_proc_sample_t out[4];
    memset(out, 0, sizeof out);
    for (int i = 0; i < 250; i++) {
        stall__tree_sample(t, stall_now_ns(), 0, out, 4);
        if ((out[0].valid & STALL_PROC_WAIT) && out[0].threads_net == net && out[0].threads_sleep == sleep) break;
        usleep(20000);
    }
    return out[0];
}

static void test_live_waits(void **state) {
    (void)state;
    /* a TCP connection over loopback */
    int lst = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(lst >= 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    assert_int_equal(bind(lst, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(lst, (struct sockaddr *)&sa, &sl), 0);
    assert_int_equal(listen(lst, 1), 0);
    int cli = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(connect(cli, (struct sockaddr *)&sa, sizeof sa), 0);
    int srv = accept(lst, NULL, NULL);
    assert_true(srv >= 0);
    int up[2], pp[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, up), 0);
    assert_int_equal(pipe(pp), 0);

    stall_tree_collector_t *t = stall__tree_open("/proc", (uint32_t)getpid());
    assert_non_null(t);
    /* alone: the sampling thread is not counted */
    stall_proc_sample_t p = wait_counts(t, 0, 0);
    assert_true(p.valid & STALL_PROC_WAIT);
    assert_int_equal(p.threads_running + p.threads_disk + p.threads_net + p.threads_sleep, 0);

    /* tcp recv() and read(), a unix socket (DataLoader hand-over), a pipe, nanosleep */
    blocker_t b[4] = {{cli, 1}, {srv, 0}, {up[0], 1}, {pp[0], 0}};
    pthread_t th[5];
    g_stop_sleeper = 0;
    for (int i = 0; i < 4; i++) assert_int_equal(pthread_create(&th[i], NULL, block_on, &b[i]), 0);
    assert_int_equal(pthread_create(&th[4], NULL, sleeper, NULL), 0);
    p = wait_counts(t, 2, 1);
    assert_true(p.valid & STALL_PROC_WAIT);
    assert_int_equal(p.threads_net, 2);   /* not the unix socket nor the pipe */
    assert_int_equal(p.threads_sleep, 1);
    assert_int_equal(p.threads_disk, 0);

    /* the same through the sampler's metrics */
    stall_sampler_options_t o = {0};
    o.no_gpu = 1;
    stall_sampler_t *s = stall_sampler_new(&o);
    assert_non_null(s);
    double net = NAN, sleep_ = NAN, disk = NAN, faults = NAN, sys = NAN;
    for (int i = 0; i < 100; i++) {
        assert_int_equal(stall_sampler_sample(s), 0);
        stall_point_t pt[256];
        ssize_t n;
        if ((n = stall_sampler_series(s, STALL_M_TREE_WAIT_NET, pt, 256)) > 0) net = pt[n - 1].avg;
        if ((n = stall_sampler_series(s, STALL_M_TREE_WAIT_SLEEP, pt, 256)) > 0) sleep_ = pt[n - 1].avg;
        if ((n = stall_sampler_series(s, STALL_M_TREE_WAIT_DISK, pt, 256)) > 0) disk = pt[n - 1].avg;
        if ((n = stall_sampler_series(s, STALL_M_TREE_FAULTS, pt, 256)) > 0) faults = pt[n - 1].avg;
        if ((n = stall_sampler_series(s, STALL_M_MAIN_SYS_CPU, pt, 256)) > 0) sys = pt[n - 1].avg;
        if (i >= 1 && net == 2 && sleep_ == 1) break;
        usleep(20000);
    }
    stall_sampler_free(s);
    assert_true(net == 2.0);
    assert_true(sleep_ == 1.0);
    assert_true(disk == 0.0);
    assert_true(isfinite(faults) && faults >= 0);
    assert_true(isfinite(sys) && sys >= 0);
    assert_string_equal(stall_metric_name(STALL_M_TREE_WAIT_NET), "tree_threads_net_wait");
    assert_string_equal(stall_metric_name(STALL_M_MAIN_SYS_CPU), "main_sys_cpu_cores");

    /* wake them all */
    g_stop_sleeper = 1;
    assert_int_equal(write(srv, "x", 1), 1);
    assert_int_equal(write(cli, "x", 1), 1);
    assert_int_equal(write(up[1], "x", 1), 1);
    assert_int_equal(write(pp[1], "x", 1), 1);
    for (int i = 0; i < 5; i++) assert_int_equal(pthread_join(th[i], NULL), 0);
    p = wait_counts(t, 0, 0);
    assert_int_equal(p.threads_net + p.threads_sleep, 0);
    stall__tree_close(t);
    int fds[] = {lst, cli, srv, up[0], up[1], pp[0], pp[1]};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++) close(fds[i]);
}

/* A child that maps 64 MiB, writes every page, unmaps, again: minor faults
 * and kernel time. */
static void test_live_faults(void **state) {
    (void)state;
    pid_t p = fork();
    if (p == 0) {
        const size_t len = 64u << 20;
        for (;;) {
            char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (m == MAP_FAILED) _exit(1);
            madvise(m, len, MADV_NOHUGEPAGE); /* one fault a page, whatever THP says */
            for (size_t i = 0; i < len; i += 4096) m[i] = 1;
            munmap(m, len);
        }
    }
    assert_true(p > 0);
    if (g_nlive < 8) g_live[g_nlive++] = p;
    stall_tree_collector_t *t = stall__tree_open("/proc", (uint32_t)p);
    assert_non_null(t);
    stall_proc_sample_t out[2];
    assert_int_equal(stall__tree_sample(t, stall_now_ns(), 0, out, 2), 1);
    usleep(400000);
    assert_int_equal(stall__tree_sample(t, stall_now_ns(), 0, out, 2), 1);
    reap(p);
    assert_true(out[0].valid & STALL_PROC_RATES);
    assert_true(out[0].minflt > 1000);
    assert_true(out[0].minflt_per_s > 1000);
    assert_true(out[0].sys_util > 0);
    assert_true(out[0].sys_util <= out[0].cpu_util + 1e-9);
    assert_true(out[0].majflt_per_s >= 0);
    stall__tree_close(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_live_tree, kill_live),
        cmocka_unit_test_teardown(test_live_sys, kill_live),
        cmocka_unit_test(test_live_waits),
        cmocka_unit_test_teardown(test_live_faults, kill_live),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
