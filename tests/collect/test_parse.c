/*
 * test_parse.c - the /proc, /sys and cgroup parsers of collector.h and lx.h,
 * on files recorded from a real machine (fixtures/vm-6.18-v1, see its
 * README; values below are those of that recording) and on hand-written
 * edge cases: old kernels, truncated text, garbage, names with spaces and
 * parentheses; page faults, thread states and wait channels. Also the
 * kept-open file reader (kfile.c).
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "collector.h"
#include "fx.h"
#include "lx.h"

#define REAL "vm-6.18-v1"
#define REAL_PID "19811"
#define S(lit) lit, sizeof(lit) - 1

static char g_buf[1 << 16];

/* Reads fixture file name/rel into g_buf; fails the test when absent. */
static size_t fixture(const char *name, const char *rel) {
    char path[4096];
    long n = fx_read(fx_path(path, sizeof path, name, rel), g_buf, sizeof g_buf);
    assert_true(n >= 0);
    return (size_t)n;
}

/* ------------------------------------------------------------ /proc/stat */

static void test_stat_real(void **state) {
    (void)state;
    size_t n = fixture(REAL, "proc/stat");
    stall_cpu_times_t t, cores[4];
    uint32_t nc = 99, pr = 99, pb = 99;
    uint64_t ctxt = 0;
    assert_int_equal(stall__parse_stat(g_buf, n, &t, cores, 4, &nc, &ctxt, &pr, &pb), 0);
    assert_int_equal(t.user, 145018);
    assert_int_equal(t.nice, 0);
    assert_int_equal(t.system, 212360);
    assert_int_equal(t.idle, 235667);
    assert_int_equal(t.iowait, 763);
    assert_int_equal(t.softirq, 199);
    assert_int_equal(t.steal, 1067);
    assert_int_equal(nc, 2);
    assert_int_equal(cores[1].user, 67014);
    assert_int_equal(cores[1].steal, 517);
    assert_int_equal(ctxt, 18091501);
    assert_int_equal(pr, 3);
    assert_int_equal(pb, 0);
    assert_int_equal(stall__parse_stat_online(g_buf, n), 2);
}

static void test_stat_edges(void **state) {
    (void)state;
    stall_cpu_times_t t, cores[3];
    uint32_t nc;
    uint64_t ctxt;
    /* no steal (7 fields), a gap (cpu1 offline), a core beyond max_cores */
    const char txt[] = "cpu  10 1 2 30 4 5 6\ncpu0 5 1 1 15 2 2 3\ncpu2 5 0 1 15 2 3 3\ncpu7 1 1 1 1\nctxt 77\n";
    memset(cores, 0xAB, sizeof cores);
    stall_cpu_times_t canary;
    memset(&canary, 0xAB, sizeof canary);
    assert_int_equal(stall__parse_stat(S(txt), &t, cores, 2, &nc, &ctxt, NULL, NULL), 0);
    assert_int_equal(t.softirq, 6);
    assert_int_equal(t.steal, 0);
    assert_int_equal(nc, 8); /* highest N + 1, even past max_cores */
    assert_int_equal(cores[0].idle, 15);
    assert_int_equal(cores[1].user, 0); /* absent: zeroed */
    assert_memory_equal(&cores[2], &canary, sizeof canary); /* never written past max_cores */
    assert_int_equal(ctxt, 77);
    assert_int_equal(stall__parse_stat_online(S(txt)), 3);

    /* 4 fields (2.4 kernels) are enough, 3 are not */
    assert_int_equal(stall__parse_stat(S("cpu 1 2 3 4\n"), &t, NULL, 0, NULL, NULL, NULL, NULL), 0);
    assert_int_equal(t.idle, 4);
    assert_int_equal(stall__parse_stat(S("cpu 1 2 3\n"), &t, NULL, 0, NULL, NULL, NULL, NULL), -1);
    assert_int_equal(stall__parse_stat(S("cpu 1 2 x 4\n"), &t, NULL, 0, NULL, NULL, NULL, NULL), -1);
    assert_int_equal(stall__parse_stat(S(""), &t, NULL, 0, NULL, NULL, NULL, NULL), -1);
    assert_int_equal(stall__parse_stat(S("hello world\n"), &t, NULL, 0, NULL, NULL, NULL, NULL), -1);
    /* truncated in the middle of the line: len stops before the 4th number */
    assert_int_equal(stall__parse_stat("cpu 1 2 3 4", 9, &t, NULL, 0, NULL, NULL, NULL, NULL), -1);
    /* a number that does not fit in 64 bits */
    assert_int_equal(stall__parse_stat(S("cpu 1 2 3 99999999999999999999\n"), &t, NULL, 0, NULL, NULL, NULL, NULL), -1);
    /* a NUL inside is just a bad character */
    assert_int_equal(stall__parse_stat("cpu 1 2\0 3 4\n", 13, &t, NULL, 0, NULL, NULL, NULL, NULL), -1);
    /* absurd CPU numbers are ignored, not counted */
    assert_int_equal(stall__parse_stat(S("cpu 1 2 3 4\ncpu4000000 1 1 1 1\n"), &t, NULL, 0, &nc, NULL, NULL, NULL), 0);
    assert_int_equal(nc, 0);
}

/* --------------------------------------------------- loadavg, meminfo */

static void test_loadavg(void **state) {
    (void)state;
    double a, b, c;
    size_t n = fixture(REAL, "proc/loadavg");
    assert_int_equal(stall__parse_loadavg(g_buf, n, &a, &b, &c), 0);
    assert_float_equal(a, 1.50, 1e-9);
    assert_float_equal(b, 1.87, 1e-9);
    assert_float_equal(c, 1.72, 1e-9);
    assert_int_equal(stall__parse_loadavg(S("0 12.5 .25\n"), &a, &b, &c), 0);
    assert_float_equal(b, 12.5, 1e-12);
    assert_float_equal(c, 0.25, 1e-12);
    assert_int_equal(stall__parse_loadavg(S("1.50 1.87"), &a, &b, &c), -1);
    assert_int_equal(stall__parse_loadavg(S("1.5x 1 1"), &a, &b, &c), -1);
    assert_int_equal(stall__parse_loadavg(S("-1 1 1"), &a, &b, &c), -1);
    assert_int_equal(stall__parse_loadavg(S(""), &a, &b, &c), -1);
}

static void test_meminfo(void **state) {
    (void)state;
    stall_meminfo_t m;
    size_t n = fixture(REAL, "proc/meminfo");
    assert_int_equal(stall__parse_meminfo(g_buf, n, &m), 0);
    assert_int_equal(m.found, 0x3f);
    assert_int_equal(m.total, 24684084ull * 1024);
    assert_int_equal(m.available, 24248964ull * 1024);
    assert_int_equal(m.cached, 2760628ull * 1024);
    assert_int_equal(m.buffers, 255204ull * 1024);
    assert_int_equal(m.swap_total, 0);

    /* old kernel: no MemAvailable; SwapCached is not Cached */
    assert_int_equal(stall__parse_meminfo(S("MemTotal: 100 kB\nSwapCached: 5 kB\nCached: 7 kB\n"), &m), 0);
    assert_int_equal(m.found, 0x5);
    assert_int_equal(m.cached, 7 * 1024);
    assert_int_equal(stall__parse_meminfo(S("garbage\n:\n"), &m), -1);
    assert_int_equal(stall__parse_meminfo(S("MemTotal: lots\n"), &m), -1);
    /* overflow in the kB -> bytes conversion: the field is not found */
    assert_int_equal(stall__parse_meminfo(S("MemTotal: 18446744073709551615 kB\nCached: 1 kB\n"), &m), 0);
    assert_int_equal(m.found, 0x4);
}

/* ----------------------------------------------------------------- PSI */

static void test_psi(void **state) {
    (void)state;
    stall_psi_t p;
    size_t n = fixture(REAL, "proc/pressure/cpu");
    assert_int_equal(stall__parse_psi(g_buf, n, &p), 0);
    assert_true(p.has_some && p.has_full);
    assert_float_equal(p.some_avg10, 2.99, 1e-9);
    assert_int_equal(p.some_total_us, 176079604);
    n = fixture(REAL, "proc/pressure/io");
    assert_int_equal(stall__parse_psi(g_buf, n, &p), 0);
    assert_int_equal(p.full_total_us, 5077959);
    /* kernels < 5.13: cpu has no "full" line */
    assert_int_equal(stall__parse_psi(S("some avg10=1.50 avg60=0.00 avg300=0.00 total=9\n"), &p), 0);
    assert_true(p.has_some && !p.has_full);
    assert_float_equal(p.some_avg10, 1.5, 1e-12);
    /* a line without total, a bad number, garbage */
    assert_int_equal(stall__parse_psi(S("some avg10=1.00 avg60=0.00\n"), &p), -1);
    assert_int_equal(stall__parse_psi(S("some avg10=x total=1\n"), &p), -1);
    assert_int_equal(stall__parse_psi(S("sometimes avg10=1 total=1\n"), &p), -1);
    assert_int_equal(stall__parse_psi(S(""), &p), -1);
}

/* ------------------------------------------------- diskstats, net/dev */

static void test_diskstats(void **state) {
    (void)state;
    stall_disk_t d[16];
    size_t n = fixture(REAL, "proc/diskstats");
    int k = stall__parse_diskstats(g_buf, n, d, 16);
    assert_int_equal(k, 10);
    assert_string_equal(d[0].name, "loop0");
    assert_string_equal(d[8].name, "vda");
    assert_int_equal(d[8].read_sectors, 3263850);
    assert_int_equal(d[8].write_sectors, 3523064);
    assert_int_equal(d[8].io_ticks_ms, 11456);
    assert_string_equal(d[9].name, "zram0");
    /* cap respected */
    assert_int_equal(stall__parse_diskstats(g_buf, n, d, 3), 3);
    /* 2.6 partition lines (4 stats) are skipped; 11-stat lines are read */
    const char old[] = "   8    0 sda 10 0 100 0 20 0 200 0 0 5 5\n   8    1 sda1 100 200 300 400\n";
    assert_int_equal(stall__parse_diskstats(S(old), d, 16), 1);
    assert_int_equal(d[0].write_sectors, 200);
    assert_int_equal(d[0].io_ticks_ms, 5);
    assert_int_equal(stall__parse_diskstats(S(""), d, 16), 0);
    assert_int_equal(stall__parse_diskstats(S("\n\n"), d, 16), 0);
    assert_int_equal(stall__parse_diskstats(S("not a diskstats file\n"), d, 16), -1);
    /* a name longer than the field is cut, not overflowed */
    const char longname[] = "1 2 abcdefghijklmnopqrstuvwxyz0123456789 1 2 3 4 5 6 7 8 9 10 11\n";
    assert_int_equal(stall__parse_diskstats(S(longname), d, 16), 1);
    assert_int_equal(strlen(d[0].name), sizeof d[0].name - 1);
}

static void test_netdev(void **state) {
    (void)state;
    stall_iface_t f[8];
    size_t n = fixture(REAL, "proc/net/dev");
    int k = stall__parse_netdev(g_buf, n, f, 8);
    assert_int_equal(k, 4);
    assert_string_equal(f[0].name, "lo");
    assert_string_equal(f[3].name, "eth0");
    assert_int_equal(f[3].rx_bytes, 96519721);
    assert_int_equal(f[3].tx_bytes, 134216);
    assert_int_equal(stall__parse_netdev(g_buf, n, f, 2), 2);
    /* old kernels: no space after the colon */
    assert_int_equal(stall__parse_netdev(S("  eth0:1234 10 0 0 0 0 0 0 5678 20 0 0 0 0 0 0\n"), f, 8), 1);
    assert_int_equal(f[0].rx_bytes, 1234);
    assert_int_equal(f[0].tx_bytes, 5678);
    /* too few fields; no name; headers only is not a net/dev with interfaces */
    assert_int_equal(stall__parse_netdev(S("eth0: 1 2 3\n"), f, 8), -1);
    assert_int_equal(stall__parse_netdev(S(": 1 2 3 4 5 6 7 8 9\n"), f, 8), -1);
    assert_int_equal(stall__parse_netdev(S("Inter-|   Receive\n face |bytes\n"), f, 8), 0);
}

/* --------------------------------------------------- /proc/<pid>/... */

static void test_pid_stat(void **state) {
    (void)state;
    stall_pid_stat_t s;
    size_t n = fixture(REAL, "proc/" REAL_PID "/stat");
    assert_int_equal(stall__parse_pid_stat(g_buf, n, &s), 0);
    assert_string_equal(s.comm, "sh");
    assert_int_equal(s.state, 'S');
    assert_int_equal(s.ppid, 19808);
    assert_int_equal(s.threads, 1);
    assert_int_equal(s.starttime, 297788);
    assert_int_equal(s.rss_pages, 356);

    n = fixture("edge-v2", "proc/100/stat");
    assert_int_equal(stall__parse_pid_stat(g_buf, n, &s), 0);
    assert_string_equal(s.comm, "(my) (proc)");
    assert_int_equal(s.ppid, 1);
    assert_int_equal(s.utime, 250);
    assert_int_equal(s.stime, 50);
    assert_int_equal(s.threads, 2);
    assert_int_equal(s.starttime, 5000);
    assert_int_equal(s.rss_pages, 1234);
    n = fixture("edge-v2", "proc/102/stat");
    assert_int_equal(stall__parse_pid_stat(g_buf, n, &s), 0);
    assert_string_equal(s.comm, "worker) 1");
    assert_int_equal(s.ppid, 100);

    /* a comm that looks like fields */
    const char tricky[] = "7 (a) R 1 2 3) S 42 1 1 0 -1 0 0 0 0 0 9 8 0 0 20 0 3 0 77 100 5 0\n";
    assert_int_equal(stall__parse_pid_stat(S(tricky), &s), 0);
    assert_string_equal(s.comm, "a) R 1 2 3");
    assert_int_equal(s.ppid, 42);
    assert_int_equal(s.utime, 9);
    assert_int_equal(s.threads, 3);
    assert_int_equal(s.starttime, 77);
    assert_int_equal(s.rss_pages, 5);
    /* a long comm is cut to 31 bytes */
    const char longc[] = "7 (0123456789012345678901234567890123456789) R 1 2 3 0 -1 0 0 0 0 0 9 8 0 0 20 0 3 0 77 100 5\n";
    assert_int_equal(stall__parse_pid_stat(S(longc), &s), 0);
    assert_int_equal(strlen(s.comm), 31);
    /* truncated: every prefix of a good line fails, and never reads past len */
    n = fixture("edge-v2", "proc/100/stat");
    const char *rss = strstr(g_buf, " 1234 "); /* field 24 */
    assert_non_null(rss);
    size_t start24 = (size_t)(rss + 1 - g_buf), end24 = start24 + 4;
    for (size_t len = 0; len <= start24; len++) {
        char *copy = malloc(len + 1); /* exactly len + 1: ASan sees a read past it */
        memcpy(copy, g_buf, len);
        copy[len] = '\0';
        assert_int_equal(stall__parse_pid_stat(copy, len, &s), -1);
        free(copy);
    }
    assert_int_equal(stall__parse_pid_stat(g_buf, end24, &s), 0);
    assert_int_equal(s.rss_pages, 1234);
    assert_int_equal(stall__parse_pid_stat(S("12 noparen S 1\n"), &s), -1);
    assert_int_equal(stall__parse_pid_stat(S("12 (x) S 1 2"), &s), -1);
    assert_int_equal(stall__parse_pid_stat(S("(x) S 1\n"), &s), -1);
}

/* page faults (fields 10 and 12), thread states, wait channels and the
 * syscall file; the texts are those of a 6.18 kernel */
static void test_faults_and_threads(void **state) {
    (void)state;
    stall_pid_stat_t s;
    uint64_t mn = 99, mj = 99;
    size_t n = fixture(REAL, "proc/" REAL_PID "/stat");
    assert_int_equal(stall__parse_pid_stat_x(g_buf, n, &s, &mn, &mj), 0);
    assert_int_equal(mn, 126);
    assert_int_equal(mj, 0);
    assert_int_equal(s.starttime, 297788);
    assert_int_equal(stall__parse_pid_stat_x(g_buf, n, &s, NULL, NULL), 0);
    /* fields 10..13: minflt cminflt majflt cmajflt; a comm that looks like fields */
    const char line[] = "7 (a) 9 9 9) R 1 2 3 0 -1 0 555 1 777 2 9 8 0 0 20 0 3 0 77 100 5 0\n";
    assert_int_equal(stall__parse_pid_stat_x(S(line), &s, &mn, &mj), 0);
    assert_int_equal(mn, 555);
    assert_int_equal(mj, 777);
    assert_int_equal(s.utime, 9);
    assert_int_equal(s.stime, 8);
    assert_int_equal(stall__parse_pid_stat_x(S("7 (a) R 1 2 3 0 -1 0 x 1 777 2 9 8 0 0 20 0 3 0 77 100 5\n"), &s, &mn, &mj),
                     -1);

    /* the state after the LAST ')'; a read cut after the state parses */
    char st = 0;
    assert_int_equal(stall__parse_task_state(S("4242 (python3) S 4240 4242 7 0 -1 4194368 120 0 0 0\n"), &st), 0);
    assert_int_equal(st, 'S');
    assert_int_equal(stall__parse_task_state(S("12 (a) R (b) D 1 2 3\n"), &st), 0);
    assert_int_equal(st, 'D');
    assert_int_equal(stall__parse_task_state(S("12 (pt_data (0)) R"), &st), 0);
    assert_int_equal(st, 'R');
    assert_int_equal(stall__parse_task_state(S("12 (x) D 1"), &st), 0);
    assert_int_equal(st, 'D');
    assert_int_equal(stall__parse_task_state(S("12 (x) "), &st), -1);
    assert_int_equal(stall__parse_task_state(S("12 (x)"), &st), -1);
    assert_int_equal(stall__parse_task_state(S("12 (x"), &st), -1);
    assert_int_equal(stall__parse_task_state(S("(x) S 1"), &st), -1);
    assert_int_equal(stall__parse_task_state(S("12 (x) SS 1"), &st), -1);
    assert_int_equal(stall__parse_task_state(S("12 (x) 5 1"), &st), -1);
    assert_int_equal(stall__parse_task_state(S(""), &st), -1);
    assert_int_equal(stall__parse_task_state(NULL, 0, &st), -1);

    /* wait channels: TCP receive shows wait_woken on 6.x (verified later by
     * the syscall), unix sockets and pipes are not network waits */
    struct {
        const char *w;
        int want;
    } wc[] = {
        {"wait_woken", STALL__WCHAN_NET_MAYBE},
        {"sk_wait_data", STALL__WCHAN_NET},
        {"inet_csk_accept", STALL__WCHAN_NET},
        {"__skb_wait_for_more_packets", STALL__WCHAN_OTHER}, /* unix datagram sockets wait there too */
        {"__skb_recv_udp", STALL__WCHAN_OTHER},
        {"tcp_recvmsg", STALL__WCHAN_NET},
        {"sk_stream_wait_memory", STALL__WCHAN_NET},
        {"sk_wait_event", STALL__WCHAN_NET},
        {"sk_wait_data.constprop.0", STALL__WCHAN_NET},
        {"tcp_recvmsg\n", STALL__WCHAN_NET},
        {"unix_stream_read_generic", STALL__WCHAN_OTHER},
        {"anon_pipe_read", STALL__WCHAN_OTHER},
        {"pipe_read", STALL__WCHAN_OTHER},
        {"hrtimer_nanosleep", STALL__WCHAN_SLEEP},
        {"do_nanosleep", STALL__WCHAN_SLEEP},
        {"clock_nanosleep", STALL__WCHAN_SLEEP},
        {"poll_schedule_timeout.constprop.0", STALL__WCHAN_OTHER},
        {"futex_do_wait", STALL__WCHAN_OTHER},
        {"0", STALL__WCHAN_OTHER},
        {"", STALL__WCHAN_OTHER},
        {"wait_woken_more", STALL__WCHAN_OTHER},
        {"wait_wok", STALL__WCHAN_OTHER},
    };
    for (size_t i = 0; i < sizeof wc / sizeof wc[0]; i++) {
        size_t len = strlen(wc[i].w);
        char *copy = malloc(len + 1); /* exactly: ASan sees a read past it */
        memcpy(copy, wc[i].w, len + 1);
        if (stall__classify_wchan(copy, len) != wc[i].want) fail_msg("wchan \"%s\"", wc[i].w);
        free(copy);
    }
    assert_int_equal(stall__classify_wchan(NULL, 0), STALL__WCHAN_OTHER);

    /* syscall: number and first argument of a blocked thread */
    long nr = -5;
    uint64_t a0 = 0;
    assert_int_equal(stall__parse_task_syscall(S("45 0x4 0x7f1c2c000b70 0x10 0x0 0x0 0x0 0x7ffc8f0 0x7f1c3\n"), &nr, &a0), 0);
    assert_int_equal(nr, 45);
    assert_int_equal(a0, 4);
    assert_int_equal(stall__parse_task_syscall(S("0 0x1f 0x7f 0x10 0x0 0x0 0x0 0x7ffc 0x7f1c\n"), &nr, &a0), 0);
    assert_int_equal(nr, 0);
    assert_int_equal(a0, 31);
    assert_int_equal(stall__parse_task_syscall(S("7 0xffffffffffffffff"), NULL, &a0), 0);
    assert_int_equal(a0, UINT64_MAX);
    assert_int_equal(stall__parse_task_syscall(S("running\n"), &nr, &a0), -1);
    assert_int_equal(stall__parse_task_syscall(S("-1 0x7ffc8f0 0x7f1c3\n"), &nr, &a0), -1);
    assert_int_equal(stall__parse_task_syscall(S("45 0xzz 0x1"), &nr, &a0), -1);
    assert_int_equal(stall__parse_task_syscall(S("45 0x12345678901234567 0x1"), &nr, &a0), -1);
    assert_int_equal(stall__parse_task_syscall(S("45"), &nr, &a0), -1);
    assert_int_equal(stall__parse_task_syscall(S("45 0x"), &nr, &a0), -1);
}

static void test_pid_io_status_sched_smaps(void **state) {
    (void)state;
    stall_pid_io_t io;
    uint64_t a = 0, b = 0;
    size_t n = fixture(REAL, "proc/" REAL_PID "/io");
    assert_int_equal(stall__parse_pid_io(g_buf, n, &io), 0);
    assert_int_equal(io.rchar, 3980);
    assert_int_equal(io.read_bytes, 0);
    n = fixture("edge-v2", "proc/101/io");
    assert_int_equal(stall__parse_pid_io(g_buf, n, &io), 0);
    assert_int_equal(io.read_bytes, 101000);
    assert_int_equal(io.write_bytes, 10100);
    assert_int_equal(io.wchar, 20200);
    /* no task I/O accounting: only rchar..syscw */
    assert_int_equal(stall__parse_pid_io(S("rchar: 1\nwchar: 2\nsyscr: 3\nsyscw: 4\n"), &io), -1);

    n = fixture(REAL, "proc/" REAL_PID "/status");
    assert_int_equal(stall__parse_pid_status(g_buf, n, &a, &b), 0);
    assert_int_equal(a, 1);
    assert_int_equal(b, 1);
    n = fixture("edge-v2", "proc/102/status");
    assert_int_equal(stall__parse_pid_status(g_buf, n, &a, &b), 0);
    assert_int_equal(a, 1020);
    assert_int_equal(b, 102);
    assert_int_equal(stall__parse_pid_status(S("voluntary_ctxt_switches:\t5\n"), &a, &b), -1);
    uint32_t cpus = 0;
    assert_int_equal(stall__parse_cpus_allowed(g_buf, n, &cpus), 0);
    assert_int_equal(cpus, 6);
    assert_int_equal(stall__parse_cpus_allowed(S("Name: x\n"), &cpus), -1);

    n = fixture(REAL, "proc/" REAL_PID "/schedstat");
    assert_int_equal(stall__parse_schedstat(g_buf, n, &a, &b), 0);
    assert_int_equal(a, 843987);
    assert_int_equal(b, 984229);
    assert_int_equal(stall__parse_schedstat(S("1 2"), &a, &b), 0);
    assert_int_equal(stall__parse_schedstat(S("1"), &a, &b), -1);
    assert_int_equal(stall__parse_schedstat(S("1 x 3"), &a, &b), -1);

    n = fixture(REAL, "proc/" REAL_PID "/smaps_rollup");
    assert_int_equal(stall__parse_smaps_rollup(g_buf, n, &a), 0);
    assert_int_equal(a, 273 * 1024);
    assert_int_equal(stall__parse_smaps_rollup(S("Pss_Anon: 5 kB\nPss: 7 kB\n"), &a), 0);
    assert_int_equal(a, 7 * 1024);
    assert_int_equal(stall__parse_smaps_rollup(S("Pss_Anon: 5 kB\nRss: 7 kB\n"), &a), -1);
}

static void test_pid_list(void **state) {
    (void)state;
    uint32_t p[4];
    assert_int_equal(stall__parse_pid_list(S("101 103 999 "), p, 4), 3);
    assert_int_equal(p[0], 101);
    assert_int_equal(p[2], 999);
    assert_int_equal(stall__parse_pid_list(S(""), p, 4), 0);
    assert_int_equal(stall__parse_pid_list(S("1 2 3 4 5 6"), p, 4), 4);
    assert_int_equal(p[3], 4);
    assert_int_equal(stall__parse_pid_list(S("1 x"), p, 4), -1);
    assert_int_equal(stall__parse_pid_list(S("12x"), p, 4), -1);
    assert_int_equal(stall__parse_pid_list(S("0"), p, 4), -1);
    assert_int_equal(stall__parse_pid_list(S("4294967296"), p, 4), -1);
    size_t n = fixture(REAL, "proc/" REAL_PID "/task/" REAL_PID "/children");
    assert_int_equal(stall__parse_pid_list(g_buf, n, p, 4), 3);
}

/* --------------------------------------------------------------- cgroup */

static void test_cgroup(void **state) {
    (void)state;
    stall_cgroup_path_t cg;
    size_t n = fixture(REAL, "proc/" REAL_PID "/cgroup");
    assert_int_equal(stall__parse_cgroup(g_buf, n, &cg), 0);
    assert_int_equal(cg.version, 1); /* hybrid: v1 cpu and memory win */
    assert_string_equal(cg.memory, "/process_api/9ad8c91820be555a0d269e4c6d146959");
    assert_string_equal(cg.cpu, "/"); /* "1:cpu:/", not "2:cpuacct:/" */
    assert_string_equal(cg.v2, "/");

    assert_int_equal(stall__parse_cgroup(S("0::/user.slice/a:b.scope\n"), &cg), 0);
    assert_int_equal(cg.version, 2);
    assert_string_equal(cg.v2, "/user.slice/a:b.scope");
    assert_string_equal(cg.cpu, "");
    assert_int_equal(stall__parse_cgroup(S("4:cpuacct,cpu:/b\n7:memory:/m\n2:cpuacct:/x\n"), &cg), 0);
    assert_int_equal(cg.version, 1);
    assert_string_equal(cg.cpu, "/b");
    assert_string_equal(cg.memory, "/m");
    assert_int_equal(stall__parse_cgroup(S("3:cpuset:/x\n"), &cg), 0);
    assert_int_equal(cg.version, 1);
    assert_string_equal(cg.cpu, "");
    assert_int_equal(stall__parse_cgroup(S("nonsense\n"), &cg), -1);
    assert_int_equal(stall__parse_cgroup(S("0::relative\n"), &cg), -1);
    assert_int_equal(stall__parse_cgroup(S(""), &cg), -1);
    /* a path too long for the field is not cut (a wrong path): the line is dropped */
    char big[600];
    memcpy(big, "0::/", 4);
    memset(big + 4, 'a', 400);
    big[404] = '\n';
    assert_int_equal(stall__parse_cgroup(big, 405, &cg), -1);
}

static void test_cgroup_files(void **state) {
    (void)state;
    int64_t q;
    uint64_t p, v;
    assert_int_equal(stall__parse_cpu_max(S("max 100000\n"), &q, &p), 0);
    assert_int_equal(q, -1);
    assert_int_equal(p, 100000);
    assert_int_equal(stall__parse_cpu_max(S("50000 100000\n"), &q, &p), 0);
    assert_int_equal(q, 50000);
    assert_int_equal(stall__parse_cpu_max(S("max"), &q, &p), -1);
    assert_int_equal(stall__parse_cpu_max(S("50000 0"), &q, &p), -1);
    assert_int_equal(stall__parse_cpu_max(S("-5 100"), &q, &p), -1);
    assert_int_equal(stall__parse_cpu_max(S("5 100 7"), &q, &p), -1);

    assert_int_equal(stall__parse_u64_or_max(S("max\n"), &v), 0);
    assert_true(v == UINT64_MAX);
    assert_int_equal(stall__parse_u64_or_max(S("-1\n"), &v), 0);
    assert_true(v == UINT64_MAX);
    assert_int_equal(stall__parse_u64_or_max(S("  123\n"), &v), 0);
    assert_int_equal(v, 123);
    size_t n = fixture(REAL, "sys/fs/cgroup/memory/memory.limit_in_bytes");
    assert_int_equal(stall__parse_u64_or_max(g_buf, n, &v), 0);
    assert_int_equal(v, 9223372036854771712ull);
    assert_int_equal(stall__parse_u64_or_max(S("12a"), &v), -1);
    assert_int_equal(stall__parse_u64_or_max(S("-10"), &v), -1);
    assert_int_equal(stall__parse_u64_or_max(S(""), &v), -1);
    assert_int_equal(stall__parse_u64_or_max(S("99999999999999999999"), &v), -1);

    n = fixture("edge-v2", "sys/fs/cgroup/user.slice/job.scope/cpu.stat");
    assert_int_equal(stall__parse_keyed(g_buf, n, "nr_throttled", &v), 0);
    assert_int_equal(v, 100);
    assert_int_equal(stall__parse_keyed(g_buf, n, "throttled_usec", &v), 0);
    assert_int_equal(v, 5000000);
    assert_int_equal(stall__parse_keyed(g_buf, n, "nr_periods", &v), 0);
    assert_int_equal(v, 1000);
    assert_int_equal(stall__parse_keyed(g_buf, n, "throttled_time", &v), -1);
    assert_int_equal(stall__parse_keyed(S("nr_throttled_x 5\nnr_throttled 6\n"), "nr_throttled", &v), 0);
    assert_int_equal(v, 6);
    assert_int_equal(stall__parse_keyed(S("key x\n"), "key", &v), -1);
    assert_int_equal(stall__parse_keyed(S("key 5\n"), "", &v), -1);
}

static void test_cpulist_cpuinfo(void **state) {
    (void)state;
    uint32_t c = 0;
    double mhz = 0;
    assert_int_equal(stall__parse_cpulist(S("0-3,8,10-11\n"), &c), 0);
    assert_int_equal(c, 7);
    assert_int_equal(stall__parse_cpulist(S("5"), &c), 0);
    assert_int_equal(c, 1);
    assert_int_equal(stall__parse_cpulist(S("3-1"), &c), -1);
    assert_int_equal(stall__parse_cpulist(S("0-3,"), &c), -1);
    assert_int_equal(stall__parse_cpulist(S("0-99999999"), &c), -1);
    assert_int_equal(stall__parse_cpulist(S("a"), &c), -1);
    size_t n = fixture(REAL, "proc/cpuinfo");
    assert_int_equal(stall__parse_cpuinfo_mhz(g_buf, n, &mhz), 0);
    assert_float_equal(mhz, 2000.0, 1e-9);
    n = fixture("edge-v1", "proc/cpuinfo");
    assert_int_equal(stall__parse_cpuinfo_mhz(g_buf, n, &mhz), 0);
    assert_float_equal(mhz, 2500.0, 1e-9);
    assert_int_equal(stall__parse_cpuinfo_mhz(S("processor : 0\nBogoMIPS : 50.00\n"), &mhz), -1);
}

/* ---------------------------------------------------------------- kfile */

static void test_kfile(void **state) {
    (void)state;
    char dir[4096], buf[16];
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/stall-kf-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(dir));
    stall_kfile_t f;
    assert_int_equal(stall__kf_open(&f, dir, "nope"), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(f.fd, -1);
    assert_int_equal(stall__kf_read(&f, buf, sizeof buf), -1);

    assert_int_equal(fx_write(dir, "f", "hello\n"), 0);
    assert_int_equal(stall__kf_open(&f, dir, "/f"), 0); /* a leading '/' in rel is fine */
    assert_int_equal(stall__kf_read(&f, buf, sizeof buf), 6);
    assert_string_equal(buf, "hello\n");
    /* re-read from offset 0 after an in-place rewrite */
    assert_int_equal(fx_write(dir, "f", "bye"), 0);
    assert_int_equal(stall__kf_read(&f, buf, sizeof buf), 3);
    assert_string_equal(buf, "bye");
    /* larger than the buffer: cap - 1 bytes, NUL-terminated */
    assert_int_equal(fx_write(dir, "f", "0123456789abcdefghij"), 0);
    assert_int_equal(stall__kf_read(&f, buf, sizeof buf), 15);
    assert_string_equal(buf, "0123456789abcde");
    /* the growing reader gets it all */
    size_t cap = 4;
    char *g = malloc(cap);
    assert_int_equal(stall__lx_read_grow(&f, &g, &cap, 1 << 20), 20);
    assert_string_equal(g, "0123456789abcdefghij");
    assert_true(cap > 20);
    free(g);
    stall__kf_close(&f);
    assert_int_equal(f.fd, -1);
    assert_int_equal(stall__kf_read(&f, buf, sizeof buf), -1);
    stall__kf_close(&f); /* twice is fine */

    char path[64];
    assert_int_equal(stall__lx_join(path, sizeof path, "/a/", "/b"), 0);
    assert_string_equal(path, "/a/b");
    assert_int_equal(stall__lx_join(path, 4, "/abc", "d"), -1);
    fx_rmrf(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stat_real),
        cmocka_unit_test(test_stat_edges),
        cmocka_unit_test(test_loadavg),
        cmocka_unit_test(test_meminfo),
        cmocka_unit_test(test_psi),
        cmocka_unit_test(test_diskstats),
        cmocka_unit_test(test_netdev),
        cmocka_unit_test(test_pid_stat),
        cmocka_unit_test(test_faults_and_threads),
        cmocka_unit_test(test_pid_io_status_sched_smaps),
        cmocka_unit_test(test_pid_list),
        cmocka_unit_test(test_cgroup),
        cmocka_unit_test(test_cgroup_files),
        cmocka_unit_test(test_cpulist_cpuinfo),
        cmocka_unit_test(test_kfile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
