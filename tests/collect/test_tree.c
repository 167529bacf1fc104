/*
 * test_tree.c - the process-tree collector (tree.c) on fixture trees: found
 * through task/<tid>/children (edge-v2: a root "(my) (proc)" with two
 * threads, three children, a grandchild, a listed pid without a folder) or
 * by ppid when the kernel has no children files (edge-v1); rates across two
 * samples, a reused pid, processes that vanish, and the descriptors of gone
 * processes being closed; thread states and wait channels (task files
 * written into a scratch copy), page faults and kernel time.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sys/syscall.h>

#include "collector.h"
#include "fx.h"

#define SEC 1000000000ull

static long g_hz, g_page;

static int setup(void **state) {
    (void)state;
    g_hz = sysconf(_SC_CLK_TCK);
    g_page = sysconf(_SC_PAGESIZE);
    return 0;
}

static const stall_proc_sample_t *by_pid(const stall_proc_sample_t *v, size_t n, uint32_t pid) {
    for (size_t i = 0; i < n; i++)
        if (v[i].pid == pid) return &v[i];
    return NULL;
}

static stall_tree_collector_t *open_in(const char *root, uint32_t pid) {
    char proc[4096];
    snprintf(proc, sizeof proc, "%s/proc", root);
    stall_tree_collector_t *t = stall__tree_open(proc, pid);
    assert_non_null(t);
    return t;
}

static void test_children_files(void **state) {
    (void)state;
    char proc[4096];
    stall_tree_collector_t *t = stall__tree_open(fx_path(proc, sizeof proc, "edge-v2", "proc"), 100);
    assert_non_null(t);
    stall_proc_sample_t out[8];
    memset(out, 0, sizeof out);
    size_t n = stall__tree_sample(t, SEC, 1, out, 8);
    assert_int_equal(n, 5);
    uint32_t want_pid[] = {100, 101, 102, 103, 104}, want_depth[] = {0, 1, 1, 1, 2};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(out[i].pid, want_pid[i]);
        assert_int_equal(out[i].depth, want_depth[i]);
        assert_true(out[i].valid & STALL_PROC_STAT);
        assert_int_equal(out[i].valid & STALL_PROC_RATES, 0); /* first sample */
        assert_true(out[i].valid & STALL_PROC_PSS);
        assert_int_equal(out[i].pss_bytes, (uint64_t)want_pid[i] * 1024);
    }
    const stall_proc_sample_t *r = &out[0];
    assert_string_equal(r->comm, "(my) (proc)");
    assert_int_equal(r->ppid, 1);
    assert_int_equal(r->state, 'S');
    assert_int_equal(r->threads, 2);
    assert_int_equal(r->starttime, 5000);
    assert_int_equal(r->utime_ns, 250ull * SEC / (uint64_t)g_hz);
    assert_int_equal(r->stime_ns, 50ull * SEC / (uint64_t)g_hz);
    assert_int_equal(r->rss_bytes, 1234ull * (uint64_t)g_page);
    assert_true(r->valid & STALL_PROC_IO);
    assert_int_equal(r->read_bytes, 100000);
    assert_int_equal(r->write_bytes, 10000);
    assert_true(r->valid & STALL_PROC_CTXT);
    assert_int_equal(r->vol_ctx_switches, 1000);
    assert_int_equal(r->invol_ctx_switches, 100);
    assert_true(r->valid & STALL_PROC_SCHED);
    assert_int_equal(r->run_ns, 100000000);
    assert_int_equal(r->runq_wait_ns, 100000);
    assert_int_equal(r->valid & STALL_PROC_GPU, 0);
    assert_string_equal(out[2].comm, "worker) 1");
    assert_int_equal(out[1].state, 'R');
    assert_int_equal(out[4].ppid, 102);
    assert_int_equal(out[3].valid & STALL_PROC_IO, 0);    /* 103 has no io file */
    assert_int_equal(out[4].valid & STALL_PROC_SCHED, 0); /* 104 has no schedstat */
    assert_true(out[4].valid & STALL_PROC_IO);

    /* fewer slots than processes: the count is still the tree's */
    stall_proc_sample_t small[3], canary;
    memset(small, 0x5A, sizeof small);
    memset(&canary, 0x5A, sizeof canary);
    assert_int_equal(stall__tree_sample(t, 2 * SEC, 0, small, 2), 5);
    assert_int_equal(small[0].pid, 100);
    assert_int_equal(small[1].pid, 101);
    assert_memory_equal(&small[2], &canary, sizeof canary);
    assert_int_equal(stall__tree_sample(t, 3 * SEC, 0, NULL, 0), 5);
    stall__tree_close(t);

    /* a root that does not exist: an empty tree */
    t = stall__tree_open(fx_path(proc, sizeof proc, "edge-v2", "proc"), 4242);
    assert_int_equal(stall__tree_sample(t, SEC, 0, out, 8), 0);
    stall__tree_close(t);
}

static void test_scan_by_ppid(void **state) {
    (void)state;
    char proc[4096];
    stall_tree_collector_t *t = stall__tree_open(fx_path(proc, sizeof proc, "edge-v1", "proc"), 300);
    assert_non_null(t);
    stall_proc_sample_t out[8];
    size_t n = stall__tree_sample(t, SEC, 0, out, 8);
    assert_int_equal(n, 4); /* not init (1), not 400 */
    assert_int_equal(out[0].pid, 300);
    assert_string_equal(out[0].comm, "python");
    assert_int_equal(out[0].threads, 4);
    assert_int_equal(out[1].pid, 301);
    assert_int_equal(out[2].pid, 302);
    assert_int_equal(out[3].pid, 303);
    assert_int_equal(out[3].depth, 2);
    assert_int_equal(out[3].ppid, 301);
    for (int i = 0; i < 4; i++) {
        /* no io, no schedstat in this tree: unknown, and no PSS asked */
        assert_int_equal(out[i].valid, STALL_PROC_STAT | STALL_PROC_CTXT);
    }
    stall__tree_close(t);
}

static void test_rates_and_reuse(void **state) {
    (void)state;
    char root[4096];
    assert_int_equal(fx_scratch(root, sizeof root, "edge-v2"), 0);
    stall_tree_collector_t *t = open_in(root, 100);
    stall_proc_sample_t out[8];
    assert_int_equal(stall__tree_sample(t, SEC, 1, out, 8), 5);

    /* 101 runs 50 ticks, reads 1 MB and waits 100 ms in 1 s; 103 is a new
     * process with the same pid (another starttime) */
    assert_int_equal(fx_write(root, "proc/101/stat",
                              "101 (worker 0) R 100 101 101 0 -1 4194304 100 0 0 0 40 25 0 0 20 0 1 0 5100 1000000 "
                              "100 18446744073709551615 0 0\n"),
                     0);
    assert_int_equal(fx_write(root, "proc/101/io",
                              "rchar: 0\nwchar: 0\nsyscr: 0\nsyscw: 0\nread_bytes: 1101000\nwrite_bytes: 10100\n"),
                     0);
    assert_int_equal(fx_write(root, "proc/101/schedstat", "101000000 100101000 101\n"), 0);
    assert_int_equal(fx_write(root, "proc/103/stat",
                              "103 (reborn) S 100 103 103 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 9999 1000 7 0\n"),
                     0);
    assert_int_equal(fx_write(root, "proc/103/smaps_rollup", "Rss: 14 kB\nPss: 7 kB\n"), 0);
    assert_int_equal(stall__tree_sample(t, 2 * SEC, 0, out, 8), 5);
    const stall_proc_sample_t *p = by_pid(out, 5, 101);
    assert_non_null(p);
    assert_true(p->valid & STALL_PROC_RATES);
    assert_float_equal(p->cpu_util, 50.0 / (double)g_hz, 1e-9);
    assert_float_equal(p->read_bytes_per_s, 1000000.0, 1e-6);
    assert_float_equal(p->write_bytes_per_s, 0.0, 1e-12);
    assert_float_equal(p->runq_wait_share, 0.1, 1e-9);
    assert_true(p->valid & STALL_PROC_PSS); /* not due: the last PSS again */
    assert_int_equal(p->pss_bytes, 101 * 1024);
    p = by_pid(out, 5, 100);
    assert_true(p->valid & STALL_PROC_RATES);
    assert_float_equal(p->cpu_util, 0.0, 1e-12);
    p = by_pid(out, 5, 103);
    assert_non_null(p);
    assert_string_equal(p->comm, "reborn");
    assert_int_equal(p->starttime, 9999);
    assert_int_equal(p->valid & STALL_PROC_RATES, 0); /* not across two processes */
    assert_true(p->valid & STALL_PROC_PSS); /* its own PSS, read at once for a new process */
    assert_int_equal(p->pss_bytes, 7 * 1024);

    assert_int_equal(fx_write(root, "proc/103/stat",
                              "103 (reborn) S 100 103 103 0 -1 0 0 0 0 0 60 40 0 0 20 0 1 0 9999 1000 7 0\n"),
                     0);
    /* 101 grows by 50 pages: between PSS reads, its PSS moves with its RSS */
    assert_int_equal(fx_write(root, "proc/101/stat",
                              "101 (worker 0) R 100 101 101 0 -1 4194304 100 0 0 0 40 25 0 0 20 0 1 0 5100 1000000 "
                              "150 18446744073709551615 0 0\n"),
                     0);
    assert_int_equal(stall__tree_sample(t, 3 * SEC, 0, out, 8), 5);
    p = by_pid(out, 5, 101);
    assert_int_equal(p->pss_bytes, 101 * 1024 + 50 * (uint64_t)g_page);
    p = by_pid(out, 5, 103);
    assert_true(p->valid & STALL_PROC_RATES);
    assert_float_equal(p->cpu_util, 100.0 / (double)g_hz, 1e-9);
    stall__tree_close(t);
    fx_scratch_done(root);
}

static void test_vanishing(void **state) {
    (void)state;
    char root[4096], path[4200];
    assert_int_equal(fx_scratch(root, sizeof root, "edge-v2"), 0);
    int fds0 = fx_nfds();
    stall_tree_collector_t *t = open_in(root, 100);
    stall_proc_sample_t out[8];
    assert_int_equal(stall__tree_sample(t, SEC, 0, out, 8), 5);
    int fds = fx_nfds();
    /* 4 files a process (103 has no io, 104 no schedstat), plus the kept
     * children files: one per process, and 100's thread 105, which forks,
     * plus the task folder of each (thread states) */
    assert_int_equal(fds, fds0 + 18 + 6 + 5);

    /* 103 exits: gone from its parent's children file and from proc */
    assert_int_equal(fx_write(root, "proc/100/task/100/children", "101 999 "), 0);
    snprintf(path, sizeof path, "%s/proc/103", root);
    assert_int_equal(fx_rmrf(path), 0);
    assert_int_equal(stall__tree_sample(t, 2 * SEC, 0, out, 8), 4);
    assert_null(by_pid(out, 4, 103));
    assert_int_equal(fx_nfds(), fds - 5); /* its stat, status, schedstat, children, task (no io file) */

    /* 102 is listed but unreadable when read (it died in between): it and the
     * grandchild found through it are left out */
    assert_int_equal(fx_write(root, "proc/102/stat", ""), 0);
    assert_int_equal(stall__tree_sample(t, 3 * SEC, 0, out, 8), 2);
    assert_int_equal(out[0].pid, 100);
    assert_int_equal(out[1].pid, 101);
    assert_int_equal(fx_nfds(), fds - 5 - 11); /* 102: 6 files, 104: 5 */

    /* back again: new entries, no rates yet */
    assert_int_equal(fx_write(root, "proc/102/stat",
                              "102 (worker) 1) S 100 102 102 0 -1 0 0 0 0 0 20 5 0 0 20 0 1 0 5101 1000 200 0\n"),
                     0);
    assert_int_equal(stall__tree_sample(t, 4 * SEC, 0, out, 8), 4);
    assert_int_equal(by_pid(out, 4, 102)->valid & STALL_PROC_RATES, 0);
    assert_int_equal(by_pid(out, 4, 104)->valid & STALL_PROC_RATES, 0);
    assert_true(by_pid(out, 4, 101)->valid & STALL_PROC_RATES);

    /* garbage listings: a cycle back to the root, a pid twice, text */
    assert_int_equal(fx_write(root, "proc/101/task/101/children", "100 101 104 "), 0);
    assert_int_equal(fx_write(root, "proc/104/task/104/children", "not pids"), 0);
    assert_int_equal(stall__tree_sample(t, 5 * SEC, 0, out, 8), 4);
    stall__tree_close(t);
    assert_int_equal(fx_nfds(), fds0); /* every kept file closed */
    fx_scratch_done(root);
}

/* A thread that starts forking is found: at once when the thread count
 * changes, within RELIST_EVERY (10) samples when it does not. The status
 * file (context switches) is re-read at least every 5 samples, and its last
 * values stand in between. */
static void test_forking_threads_and_status_cadence(void **state) {
    (void)state;
    char root[4096], path[4300];
    assert_int_equal(fx_scratch(root, sizeof root, "edge-v2"), 0);
    stall_tree_collector_t *t = open_in(root, 100);
    stall_proc_sample_t out[16];
    assert_int_equal(stall__tree_sample(t, SEC, 0, out, 16), 5);
    assert_int_equal(by_pid(out, 5, 101)->vol_ctx_switches, 1010);

    /* 101 gets a second thread (its stat says 2 threads) that forked 300 */
    snprintf(path, sizeof path, "%s/proc/101/task/106", root);
    assert_int_equal(mkdir(path, 0755), 0);
    assert_int_equal(fx_write(root, "proc/101/task/106/children", "300 "), 0);
    snprintf(path, sizeof path, "%s/proc/300", root);
    assert_int_equal(mkdir(path, 0755), 0);
    assert_int_equal(fx_write(root, "proc/300/stat",
                              "300 (late) S 101 300 300 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 7000 1000 10 0\n"),
                     0);
    assert_int_equal(fx_write(root, "proc/101/stat",
                              "101 (worker 0) R 100 101 101 0 -1 0 100 0 0 0 10 5 0 0 20 0 2 0 5100 1000 100 0\n"),
                     0);
    assert_int_equal(stall__tree_sample(t, 2 * SEC, 0, out, 16), 6);
    assert_non_null(by_pid(out, 6, 300));

    /* 102's only thread forks 301 while its thread count stays 1 */
    snprintf(path, sizeof path, "%s/proc/301", root);
    assert_int_equal(mkdir(path, 0755), 0);
    assert_int_equal(fx_write(root, "proc/301/stat",
                              "301 (later) S 102 301 301 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 7001 1000 10 0\n"),
                     0);
    assert_int_equal(fx_write(root, "proc/102/task/102/children", "104 301 "), 0);
    /* the main thread's file is kept open and re-read: found at once */
    assert_int_equal(stall__tree_sample(t, 3 * SEC, 0, out, 16), 7);
    /* a thread of 100 that had no children starts forking: within 10 samples */
    snprintf(path, sizeof path, "%s/proc/100/task/107", root);
    assert_int_equal(mkdir(path, 0755), 0);
    assert_int_equal(fx_write(root, "proc/100/task/107/children", ""), 0);
    int found_at = -1;
    for (int i = 0; i < 12 && found_at < 0; i++) {
        if (i == 1) { /* created after a listing saw it childless */
            snprintf(path, sizeof path, "%s/proc/302", root);
            assert_int_equal(mkdir(path, 0755), 0);
            assert_int_equal(fx_write(root, "proc/302/stat",
                                      "302 (x) S 100 302 302 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 7002 1000 10 0\n"),
                             0);
            assert_int_equal(fx_write(root, "proc/100/task/107/children", "302 "), 0);
        }
        size_t n = stall__tree_sample(t, (uint64_t)(4 + i) * SEC, 0, out, 16);
        if (by_pid(out, n, 302)) found_at = i;
    }
    assert_true(found_at >= 1 && found_at <= 11);

    /* context switches: the new count shows within 5 samples */
    assert_int_equal(fx_write(root, "proc/101/status",
                              "Name:\tworker 0\nvoluntary_ctxt_switches:\t5000\nnonvoluntary_ctxt_switches:\t7\n"),
                     0);
    int seen = -1;
    for (int i = 0; i < 6 && seen < 0; i++) {
        size_t n = stall__tree_sample(t, (uint64_t)(20 + i) * SEC, 0, out, 16);
        const stall_proc_sample_t *p = by_pid(out, n, 101);
        assert_non_null(p);
        assert_true(p->valid & STALL_PROC_CTXT); /* the last values stand in between */
        if (p->vol_ctx_switches == 5000) {
            assert_int_equal(p->invol_ctx_switches, 7);
            seen = i;
        } else {
            assert_int_equal(p->vol_ctx_switches, 1010);
        }
    }
    assert_true(seen >= 0 && seen < 5);
    stall__tree_close(t);
    fx_scratch_done(root);
}

/* Writes root/rel, making its folders. */
static void put(const char *root, const char *rel, const char *text) {
    char path[8448];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    for (char *p = path + strlen(root) + 1; (p = strchr(p, '/')) != NULL; p++) {
        *p = '\0';
        if (mkdir(path, 0755) < 0 && errno != EEXIST) fail_msg("mkdir %s", path);
        *p = '/';
    }
    assert_int_equal(fx_write(root, rel, text), 0);
}

/* A thread of 100 in edge-v2: its stat with state, and its wchan (NULL: none). */
static void thread(const char *root, uint32_t tid, const char *comm, char state, const char *wchan) {
    char rel[256], text[512];
    snprintf(rel, sizeof rel, "proc/100/task/%u/stat", tid);
    snprintf(text, sizeof text, "%u (%s) %c 1 100 100 0 -1 4194368 10 0 0 0 1 1 0 0 20 0 11 0 5000 1000 100 0\n", tid, comm,
             state);
    put(root, rel, text);
    if (wchan) {
        snprintf(rel, sizeof rel, "proc/100/task/%u/wchan", tid);
        put(root, rel, wchan);
    }
}

static void syscall_of(const char *root, uint32_t tid, long nr, unsigned fd) {
    char rel[256], text[256];
    snprintf(rel, sizeof rel, "proc/100/task/%u/syscall", tid);
    snprintf(text, sizeof text, "%ld 0x%x 0x7f1c2c000b70 0x10 0x0 0x0 0x0 0x7ffc8f0 0x7f1c3\n", nr, fd);
    put(root, rel, text);
}

static void fd_link(const char *root, uint32_t tid, unsigned fd, const char *target) {
    char dir[4400], path[4500];
    snprintf(dir, sizeof dir, "%s/proc/100/task/%u/fd", root, tid);
    assert_true(mkdir(dir, 0755) == 0 || errno == EEXIST);
    snprintf(path, sizeof path, "%s/%u", dir, fd);
    assert_int_equal(symlink(target, path), 0);
}

/* Thread states of 100 (edge-v2 plus task files written here, the texts of
 * a 6.18 kernel): R, D, and sleeping threads told apart by wchan, with
 * wait_woken checked through the syscall and the fd's link. */
static void test_thread_states(void **state) {
    (void)state;
    char root[4096], path[4400];
    assert_int_equal(fx_scratch(root, sizeof root, "edge-v2"), 0);
    thread(root, 100, "(my) (proc)", 'S', "do_epoll_wait");
    thread(root, 105, "x) R", 'D', "folio_wait_bit_common");
    thread(root, 110, "pt_main", 'R', "0");
    thread(root, 111, "tcp recv", 'S', "wait_woken");         /* recvfrom(4) */
    syscall_of(root, 111, SYS_recvfrom, 4);
    thread(root, 112, "tcp read", 'S', "wait_woken");         /* read(5), 5 a socket */
    syscall_of(root, 112, SYS_read, 5);
    fd_link(root, 112, 5, "socket:[4242]");
    thread(root, 113, "tty read", 'S', "wait_woken");         /* read(6), 6 a tty */
    syscall_of(root, 113, SYS_read, 6);
    fd_link(root, 113, 6, "/dev/pts/0");
    thread(root, 114, "pt_data (0)", 'S', "unix_stream_read_generic");
    thread(root, 115, "sleeper", 'S', "hrtimer_nanosleep");
    thread(root, 116, "accept", 'S', "inet_csk_accept");
    thread(root, 117, "no syscall", 'S', "wait_woken");       /* cannot check: by wchan */
    thread(root, 118, "pipe", 'S', "anon_pipe_read");
    thread(root, 119, "futex", 'S', "futex_do_wait.constprop.0");
    thread(root, 120, "stopped", 't', NULL);

    stall_tree_collector_t *t = open_in(root, 100);
    stall_proc_sample_t out[8];
    int fds0 = fx_nfds();
    assert_int_equal(stall__tree_sample(t, SEC, 0, out, 8), 5);
    const stall_proc_sample_t *p = &out[0];
    assert_true(p->valid & STALL_PROC_WAIT);
    assert_int_equal(p->threads_running, 1);
    assert_int_equal(p->threads_disk, 1);
    assert_int_equal(p->threads_net, 4); /* 111, 112, 116, 117 */
    assert_int_equal(p->threads_sleep, 1);
    /* the others have a task folder without thread files: unknown */
    for (int i = 1; i < 5; i++) {
        assert_int_equal(out[i].valid & STALL_PROC_WAIT, 0);
        assert_int_equal(out[i].threads_running + out[i].threads_net, 0);
    }
    /* no thread file stays open: the 5 processes' kept files and task folders */
    assert_int_equal(fx_nfds(), fds0 + 18 + 6 + 5);

    /* a sleeping thread's wchan unreadable: unknown at the next read, and
     * known again at the read after it is back */
    snprintf(path, sizeof path, "%s/proc/100/task/115/wchan", root);
    assert_int_equal(unlink(path), 0);
    int unknown_at = -1;
    for (int i = 0; i < 20 && unknown_at < 0; i++) {
        stall__tree_sample(t, (uint64_t)(2 + i) * SEC, 0, out, 8);
        if (!(out[0].valid & STALL_PROC_WAIT)) unknown_at = i;
    }
    assert_true(unknown_at >= 0);
    put(root, "proc/100/task/115/wchan", "do_nanosleep");
    int known_at = -1;
    for (int i = 0; i < 17 && known_at < 0; i++) {
        assert_int_equal(stall__tree_sample(t, (uint64_t)(22 + i) * SEC, 0, out, 8), 5);
        if (out[0].valid & STALL_PROC_WAIT) known_at = i;
        else assert_int_equal(out[0].threads_sleep, 0); /* unknown: nothing stands in */
    }
    assert_true(known_at >= 0);
    assert_int_equal(out[0].threads_sleep, 1);

    /* a thread that exits (its folder listed no more) and one whose state
     * changes: seen within the cadence (at most 16 samples) */
    snprintf(path, sizeof path, "%s/proc/100/task/116", root);
    assert_int_equal(fx_rmrf(path), 0);
    thread(root, 110, "pt_main", 'S', "futex_do_wait");
    int seen_at = -1;
    for (int i = 0; i < 17 && seen_at < 0; i++) {
        stall__tree_sample(t, (uint64_t)(40 + i) * SEC, 0, out, 8);
        assert_true(out[0].valid & STALL_PROC_WAIT);
        if (out[0].threads_net == 3 && out[0].threads_running == 0) seen_at = i;
    }
    assert_true(seen_at >= 0);

    /* a thread whose schedstat has not moved has not run: its last verdict
     * stands; once it moved, the thread is read again */
    put(root, "proc/100/task/115/schedstat", "1000 2000 3\n");
    for (int i = 0; i < 17; i++) stall__tree_sample(t, (uint64_t)(60 + i) * SEC, 0, out, 8);
    assert_int_equal(out[0].threads_sleep, 1);
    put(root, "proc/100/task/115/wchan", "futex_do_wait");
    for (int i = 0; i < 17; i++) {
        stall__tree_sample(t, (uint64_t)(80 + i) * SEC, 0, out, 8);
        assert_int_equal(out[0].threads_sleep, 1); /* not read again */
    }
    put(root, "proc/100/task/115/schedstat", "1500 2000 4\n");
    seen_at = -1;
    for (int i = 0; i < 17 && seen_at < 0; i++) {
        stall__tree_sample(t, (uint64_t)(100 + i) * SEC, 0, out, 8);
        if (out[0].threads_sleep == 0) seen_at = i;
    }
    assert_true(seen_at >= 0);

    /* the task folder gone (the process is exiting): unknown */
    snprintf(path, sizeof path, "%s/proc/100/task", root);
    assert_int_equal(fx_rmrf(path), 0);
    stall__tree_close(t);
    t = open_in(root, 100);
    assert_int_equal(stall__tree_sample(t, SEC, 0, out, 8), 5); /* found by ppid now */
    assert_int_equal(out[0].valid & STALL_PROC_WAIT, 0);
    stall__tree_close(t);
    fx_scratch_done(root);
}

/* Page faults and kernel time: cumulative from stat, rates across samples. */
static void test_faults_and_sys(void **state) {
    (void)state;
    char root[4096];
    assert_int_equal(fx_scratch(root, sizeof root, "edge-v2"), 0);
    stall_tree_collector_t *t = open_in(root, 100);
    stall_proc_sample_t out[8];
    assert_int_equal(stall__tree_sample(t, SEC, 0, out, 8), 5);
    const stall_proc_sample_t *p = by_pid(out, 5, 101);
    assert_int_equal(p->minflt, 100); /* make-edge-fixtures writes 100 and 0 */
    assert_int_equal(p->majflt, 0);
    assert_int_equal(p->valid & STALL_PROC_RATES, 0);
    /* in 2 s: 10000 minor and 8 major faults, 30 ticks in the kernel, 10 in user */
    assert_int_equal(fx_write(root, "proc/101/stat",
                              "101 (worker 0) R 100 101 101 0 -1 4194304 10100 5 8 1 20 35 0 0 20 0 1 0 5100 1000000 "
                              "100 18446744073709551615 0 0\n"),
                     0);
    assert_int_equal(stall__tree_sample(t, 3 * SEC, 0, out, 8), 5);
    p = by_pid(out, 5, 101);
    assert_true(p->valid & STALL_PROC_RATES);
    assert_int_equal(p->minflt, 10100);
    assert_int_equal(p->majflt, 8);
    assert_float_equal(p->minflt_per_s, 5000.0, 1e-9);
    assert_float_equal(p->majflt_per_s, 4.0, 1e-9);
    assert_float_equal(p->sys_util, 15.0 / (double)g_hz, 1e-9);
    assert_float_equal(p->cpu_util, 20.0 / (double)g_hz, 1e-9);
    /* counters that go back (cannot happen; a reused pid is caught by
     * starttime) give 0, not a huge rate */
    assert_int_equal(fx_write(root, "proc/101/stat",
                              "101 (worker 0) R 100 101 101 0 -1 4194304 50 5 2 1 20 35 0 0 20 0 1 0 5100 1000000 100\n"),
                     0);
    assert_int_equal(stall__tree_sample(t, 4 * SEC, 0, out, 8), 5);
    p = by_pid(out, 5, 101);
    assert_float_equal(p->minflt_per_s, 0.0, 1e-12);
    assert_float_equal(p->majflt_per_s, 0.0, 1e-12);
    assert_float_equal(p->sys_util, 0.0, 1e-12);
    stall__tree_close(t);
    fx_scratch_done(root);
}

static void test_many_processes(void **state) {
    (void)state;
    /* a wide tree: the pid table grows and shrinks (erase with back-shift) */
    char root[4096], rel[256], text[8192];
    assert_int_equal(fx_scratch(root, sizeof root, "edge-v2-max"), 0);
    size_t len = 0;
    text[0] = '\0';
    for (uint32_t pid = 1000; pid < 1300; pid++) {
        char dir[4300];
        snprintf(dir, sizeof dir, "%s/proc/%u", root, pid);
        assert_int_equal(mkdir(dir, 0755), 0);
        snprintf(rel, sizeof rel, "proc/%u/stat", pid);
        char st[256];
        snprintf(st, sizeof st, "%u (w) S 500 1 1 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 %u 1 1 0\n", pid, pid);
        assert_int_equal(fx_write(root, rel, st), 0);
        len += (size_t)snprintf(text + len, sizeof text - len, "%u ", pid);
    }
    assert_int_equal(fx_write(root, "proc/500/task/500/children", text), 0);
    stall_tree_collector_t *t = open_in(root, 500);
    assert_int_equal(stall__tree_sample(t, SEC, 0, NULL, 0), 301);
    /* every other one exits */
    len = 0;
    for (uint32_t pid = 1000; pid < 1300; pid += 2) len += (size_t)snprintf(text + len, sizeof text - len, "%u ", pid);
    assert_int_equal(fx_write(root, "proc/500/task/500/children", text), 0);
    assert_int_equal(stall__tree_sample(t, 2 * SEC, 0, NULL, 0), 151);
    static stall_proc_sample_t out[400];
    assert_int_equal(stall__tree_sample(t, 3 * SEC, 0, out, 400), 151);
    for (size_t i = 1; i < 151; i++) {
        assert_int_equal(out[i].pid, 1000 + 2 * (i - 1));
        assert_true(out[i].valid & STALL_PROC_RATES); /* same entries as before */
    }
    stall__tree_close(t);
    fx_scratch_done(root);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_children_files),
        cmocka_unit_test(test_scan_by_ppid),
        cmocka_unit_test(test_rates_and_reuse),
        cmocka_unit_test(test_vanishing),
        cmocka_unit_test(test_forking_threads_and_status_cadence),
        cmocka_unit_test(test_many_processes),
        cmocka_unit_test(test_thread_states),
        cmocka_unit_test(test_faults_and_sys),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
