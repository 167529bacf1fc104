/*
 * test_sys.c - the system collector (sys.c) on fixture trees: the recorded
 * machine (fixtures/vm-6.18-v1: cgroup v1 hybrid, PSI, no cpufreq), the
 * hand-made edge cases of make-edge-fixtures (cgroup v1 quota, v2 limits on a
 * parent, "max", no PSI, no steal, no net/dev), and rates across two samples
 * of a scratch copy whose files are rewritten in place between them.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "collector.h"
#include "fx.h"

#define SEC 1000000000ull
#define ALL_SET                                                                                        \
    (STALL_SYS_CPU | STALL_SYS_LOAD | STALL_SYS_MEM | STALL_SYS_SWAP | STALL_SYS_PSI_CPU |             \
     STALL_SYS_PSI_CPU_FULL | STALL_SYS_PSI_IO | STALL_SYS_PSI_MEM | STALL_SYS_DISK | STALL_SYS_NET | \
     STALL_SYS_FREQ | STALL_SYS_CG_CPU | STALL_SYS_CG_THROTTLE | STALL_SYS_CG_MEM)

static stall_sys_collector_t *open_fixture(const char *name, uint32_t pid) {
    char proc[4096], sys[4096];
    stall_sys_collector_t *c =
        stall__sys_open(fx_path(proc, sizeof proc, name, "proc"), fx_path(sys, sizeof sys, name, "sys"), pid);
    assert_non_null(c);
    return c;
}

static stall_sys_collector_t *open_dir(const char *root, uint32_t pid) {
    char proc[4096], sys[4096];
    snprintf(proc, sizeof proc, "%s/proc", root);
    snprintf(sys, sizeof sys, "%s/sys", root);
    stall_sys_collector_t *c = stall__sys_open(proc, sys, pid);
    assert_non_null(c);
    return c;
}

static void test_real_machine(void **state) {
    (void)state;
    stall_sys_collector_t *c = open_fixture("vm-6.18-v1", 19811);
    stall_sys_t s;
    double cores[8];
    uint32_t nc = 99;
    assert_int_equal(stall__sys_sample(c, 5 * SEC, &s, cores, 8, &nc), 0);
    assert_int_equal(s.valid, ALL_SET);
    assert_int_equal(s.t_ns, 5 * SEC);
    assert_int_equal(nc, 0); /* no previous sample: no shares */
    assert_int_equal(s.ncpus, 2);
    assert_float_equal(s.usable_cores, 2.0, 1e-12);
    assert_int_equal(s.ctx_switches, 18091501);
    assert_int_equal(s.procs_running, 3);
    assert_float_equal(s.load5, 1.87, 1e-9);
    assert_int_equal(s.mem_total_bytes, 24684084ull * 1024);
    assert_int_equal(s.mem_available_bytes, 24248964ull * 1024);
    assert_int_equal(s.mem_usable_available_bytes, 24248964ull * 1024);
    assert_int_equal(s.swap_total_bytes, 0);
    assert_float_equal(s.psi_cpu_some_avg10, 2.99, 1e-9);
    assert_int_equal(s.psi_io_full_us, 5077959);
    /* vda only: loop* and zram0 are not disks */
    assert_int_equal(s.disk_read_bytes, 3263850ull * 512);
    assert_int_equal(s.disk_write_bytes, 3523064ull * 512);
    /* all but lo */
    assert_int_equal(s.net_rx_bytes, 96519721);
    assert_int_equal(s.net_tx_bytes, 134216);
    assert_float_equal(s.cpu_freq_mhz, 2000.0, 1e-9); /* from cpuinfo: no cpufreq on this VM */
    assert_int_equal(s.cgroup_version, 1);
    assert_int_equal(s.cg_cpu_quota_us, -1);
    assert_int_equal(s.cg_cpu_period_us, 100000);
    assert_int_equal(s.cg_nr_throttled, 0);
    assert_true(s.cg_mem_limit_bytes == UINT64_MAX); /* 9223372036854771712 at every level */
    assert_int_equal(s.cg_mem_usage_bytes, 11018240);
    stall__sys_close(c);
}

static void test_edge_v2(void **state) {
    (void)state;
    stall_sys_collector_t *c = open_fixture("edge-v2", 100);
    stall_sys_t s;
    assert_int_equal(stall__sys_sample(c, SEC, &s, NULL, 0, NULL), 0);
    assert_int_equal(s.valid, ALL_SET);
    assert_int_equal(s.ncpus, 8);
    /* min(8 CPUs, affinity 0-5, cpu.max 200000/100000 of the leaf; the parent allows 4) */
    assert_float_equal(s.usable_cores, 2.0, 1e-12);
    assert_int_equal(s.cgroup_version, 2);
    assert_int_equal(s.cg_cpu_quota_us, 200000);
    assert_int_equal(s.cg_cpu_period_us, 100000);
    assert_int_equal(s.cg_nr_throttled, 100);
    assert_int_equal(s.cg_throttled_ns, 5000000000ull);
    /* memory.max is "max" on the leaf, 4 GiB on the parent: the parent's applies */
    assert_int_equal(s.cg_mem_limit_bytes, 4294967296ull);
    assert_int_equal(s.cg_mem_usage_bytes, 2147483648ull);
    assert_int_equal(s.mem_usable_available_bytes, 2147483648ull);
    assert_int_equal(s.mem_available_bytes, 8192000ull * 1024);
    assert_int_equal(s.mem_cached_bytes, 4096000ull * 1024);
    assert_int_equal(s.swap_free_bytes, 1024000ull * 1024);
    assert_float_equal(s.load1, 3.5, 1e-12);
    assert_float_equal(s.load15, 1.0, 1e-12);
    assert_int_equal(s.procs_running, 4);
    assert_int_equal(s.procs_blocked, 1);
    assert_int_equal(s.ctx_switches, 123456);
    assert_float_equal(s.psi_cpu_some_avg10, 12.5, 1e-12);
    assert_float_equal(s.psi_cpu_full_avg10, 1.25, 1e-12);
    assert_int_equal(s.psi_cpu_full_us, 50000);
    assert_float_equal(s.psi_io_some_avg10, 3.0, 1e-12);
    assert_int_equal(s.psi_io_some_us, 200000);
    assert_float_equal(s.psi_mem_full_avg10, 0.25, 1e-12);
    assert_int_equal(s.psi_mem_some_us, 3000);
    /* sda + nvme0n1: not partitions, loop0, ram0, zram0, nor dm-0 and md0 (stacked) */
    assert_int_equal(s.disk_read_bytes, 3000ull * 512);
    assert_int_equal(s.disk_write_bytes, 7000ull * 512);
    assert_int_equal(s.net_rx_bytes, 1500);
    assert_int_equal(s.net_tx_bytes, 2100);
    assert_float_equal(s.cpu_freq_mhz, 2125.0, 1e-9);
    stall__sys_close(c);
}

static void test_edge_v1_no_psi(void **state) {
    (void)state;
    stall_sys_collector_t *c = open_fixture("edge-v1", 300);
    stall_sys_t s;
    assert_int_equal(stall__sys_sample(c, SEC, &s, NULL, 0, NULL), 0);
    /* no /proc/pressure: PSI unknown, not 0 */
    assert_int_equal(s.valid & (STALL_SYS_PSI_CPU | STALL_SYS_PSI_CPU_FULL | STALL_SYS_PSI_IO | STALL_SYS_PSI_MEM), 0);
    assert_int_equal(s.valid & ~(uint64_t)(STALL_SYS_PSI_CPU | STALL_SYS_PSI_CPU_FULL | STALL_SYS_PSI_IO | STALL_SYS_PSI_MEM),
                     ALL_SET & ~(uint64_t)(STALL_SYS_PSI_CPU | STALL_SYS_PSI_CPU_FULL | STALL_SYS_PSI_IO | STALL_SYS_PSI_MEM));
    assert_int_equal(s.ncpus, 4);
    assert_int_equal(s.cgroup_version, 1);
    assert_int_equal(s.cg_cpu_quota_us, 150000);
    assert_int_equal(s.cg_cpu_period_us, 100000);
    assert_float_equal(s.usable_cores, 1.5, 1e-12);
    assert_int_equal(s.cg_nr_throttled, 50);
    assert_int_equal(s.cg_throttled_ns, 2000000000ull);
    assert_int_equal(s.cg_mem_limit_bytes, 2147483648ull);
    assert_int_equal(s.cg_mem_usage_bytes, 536870912ull);
    assert_int_equal(s.mem_usable_available_bytes, 2147483648ull - 536870912ull);
    assert_float_equal(s.cpu_freq_mhz, 2500.0, 1e-9); /* cpuinfo */
    assert_int_equal(s.disk_read_bytes, 100 * 512);
    assert_int_equal(s.net_rx_bytes, 1234);
    assert_int_equal(s.net_tx_bytes, 5678);
    assert_int_equal(s.swap_total_bytes, 0);
    stall__sys_close(c);
}

static void test_edge_v2_max(void **state) {
    (void)state;
    stall_sys_collector_t *c = open_fixture("edge-v2-max", 500);
    stall_sys_t s;
    assert_int_equal(stall__sys_sample(c, SEC, &s, NULL, 0, NULL), 0);
    uint64_t want = STALL_SYS_CPU | STALL_SYS_LOAD | STALL_SYS_MEM | STALL_SYS_PSI_CPU | STALL_SYS_PSI_IO |
                    STALL_SYS_DISK | STALL_SYS_CG_CPU | STALL_SYS_CG_THROTTLE | STALL_SYS_CG_MEM;
    /* no SwapTotal, no cpu "full" (< 5.13), no pressure/memory, no net/dev, no frequency */
    assert_int_equal(s.valid, want);
    assert_int_equal(s.cgroup_version, 2);
    /* the path /kubepods/pod1/ctr is not under sys/fs/cgroup: its root is used */
    assert_int_equal(s.cg_cpu_quota_us, -1);
    assert_int_equal(s.cg_cpu_period_us, 100000);
    assert_true(s.cg_mem_limit_bytes == UINT64_MAX);
    assert_int_equal(s.cg_mem_usage_bytes, 104857600);
    assert_float_equal(s.usable_cores, 2.0, 1e-12);
    assert_int_equal(s.mem_usable_available_bytes, 500000ull * 1024);
    assert_int_equal(s.disk_read_bytes, 0); /* an empty diskstats: no disks, known */
    assert_int_equal(s.net_rx_bytes, 0);
    stall__sys_close(c);
}

static void test_nothing_there(void **state) {
    (void)state;
    stall_sys_collector_t *c = stall__sys_open("/nonexistent/proc", "/nonexistent/sys", 1);
    assert_non_null(c);
    stall_sys_t s;
    assert_int_equal(stall__sys_sample(c, SEC, &s, NULL, 0, NULL), 0);
    assert_int_equal(s.valid, 0);
    assert_int_equal(s.cgroup_version, 0);
    assert_int_equal(stall__sys_sample(c, 2 * SEC, &s, NULL, 0, NULL), 0);
    assert_int_equal(s.valid, STALL_SYS_RATES); /* a previous sample, but no counter to rate */
    stall__sys_close(c);
    assert_int_equal(stall__sys_sample(NULL, SEC, &s, NULL, 0, NULL), -1);
}

static void test_rates(void **state) {
    (void)state;
    char root[4096];
    assert_int_equal(fx_scratch(root, sizeof root, "edge-v2"), 0);
    stall_sys_collector_t *c = open_dir(root, 100);
    stall_sys_t s;
    double cores[16];
    uint32_t nc = 99;
    assert_int_equal(stall__sys_sample(c, SEC, &s, cores, 16, &nc), 0);
    assert_int_equal(s.valid & STALL_SYS_RATES, 0);
    assert_int_equal(nc, 0);
    /* per device: the whole disks, then the interfaces but lo; no rates yet */
    stall_device_t dv[8];
    const char *names[] = {"sda", "nvme0n1", "eth0", "wlan0"};
    assert_int_equal(stall__sys_devices(c, dv, 8), 4);
    for (int i = 0; i < 4; i++) {
        assert_string_equal(dv[i].name, names[i]);
        assert_int_equal(dv[i].is_net, i >= 2);
        assert_int_equal(dv[i].valid & STALL_DEV_RATES, 0);
    }
    assert_int_equal(dv[0].read_bytes, 2000ull * 512);
    assert_int_equal(dv[2].read_bytes, 1000);
    assert_int_equal(dv[2].write_bytes, 2000);
    assert_int_equal(stall__sys_devices(c, dv, 1), 4); /* cap respected, count returned */

    char stat[2048] = "cpu  860 80 420 8100 170 8 45 125 0 0\n"
                      "cpu0 150 10 50 1000 20 1 5 15 0 0\n"
                      "cpu1 110 10 50 1040 20 1 5 15 0 0\n";
    for (int i = 2; i < 8; i++)
        snprintf(stat + strlen(stat), sizeof stat - strlen(stat), "cpu%d 100 10 50 1000 20 1 5 15 0 0\n", i);
    strcat(stat, "intr 1\nctxt 124456\nprocs_running 2\nprocs_blocked 0\n");
    assert_int_equal(fx_write(root, "proc/stat", stat), 0);
    assert_int_equal(fx_write(root, "proc/diskstats",
                              "   8       0 sda 100 0 3000 50 200 0 6000 80 0 550 130\n"
                              "   8       1 sda1 90 0 2800 40 190 0 5800 70 0 530 110\n"
                              " 259       0 nvme0n1 10 0 1500 5 20 0 3000 8 1 500 13 0 0 0 0 0 0\n"
                              " 259       1 nvme0n1p1 9 0 900 4 19 0 2900 7 1 90 12 0 0 0 0 0 0\n"
                              "   9       0 md0 50 0 9000 10 100 0 1500 20 0 650 30 0 0 0 0 0 0\n"),
                     0);
    assert_int_equal(fx_write(root, "proc/net/dev",
                              "Inter-|\n face |\n"
                              "    lo: 1999999 0 0 0 0 0 0 0 1999999 0 0 0 0 0 0 0\n"
                              "  eth0:    2000 0 0 0 0 0 0 0     2500 0 0 0 0 0 0 0\n"
                              " wlan0:     500 0 0 0 0 0 0 0      100 0 0 0 0 0 0 0\n"),
                     0);
    assert_int_equal(fx_write(root, "sys/fs/cgroup/user.slice/job.scope/cpu.stat",
                              "usage_usec 200\nnr_periods 1100\nnr_throttled 125\nthrottled_usec 5500000\n"),
                     0);

    assert_int_equal(stall__sys_sample(c, SEC + SEC / 2, &s, cores, 16, &nc), 0);
    assert_true(s.valid & STALL_SYS_RATES);
    assert_float_equal(s.cpu_user, 0.3, 1e-12);
    assert_float_equal(s.cpu_system, 0.125, 1e-12);
    assert_float_equal(s.cpu_iowait, 0.05, 1e-12);
    assert_float_equal(s.cpu_steal, 0.025, 1e-12);
    assert_float_equal(s.cpu_idle, 0.5, 1e-12);
    assert_float_equal(s.cpu_user + s.cpu_system + s.cpu_iowait + s.cpu_steal + s.cpu_idle, 1.0, 1e-12);
    assert_int_equal(nc, 8);
    assert_float_equal(cores[0], 1.0, 1e-12);
    assert_float_equal(cores[1], 0.2, 1e-12);
    assert_float_equal(cores[2], 0.0, 1e-12);
    assert_float_equal(s.ctx_switches_per_s, 2000.0, 1e-9);
    assert_float_equal(s.disk_read_bytes_per_s, 1500.0 * 512 / 0.5, 1e-6);
    assert_float_equal(s.disk_write_bytes_per_s, 2000.0 * 512 / 0.5, 1e-6);
    assert_float_equal(s.disk_busy, 0.8, 1e-12); /* nvme0n1: 400 ms of 500; md0 does not count */
    assert_float_equal(s.net_rx_bytes_per_s, 2000.0, 1e-9);
    assert_float_equal(s.net_tx_bytes_per_s, 1000.0, 1e-9);
    /* the same, per device */
    assert_int_equal(stall__sys_devices(c, dv, 8), 4);
    for (int i = 0; i < 4; i++) assert_true(dv[i].valid & STALL_DEV_RATES);
    assert_float_equal(dv[0].read_bytes_per_s, 1000.0 * 512 / 0.5, 1e-6); /* sda */
    assert_float_equal(dv[0].write_bytes_per_s, 2000.0 * 512 / 0.5, 1e-6);
    assert_float_equal(dv[0].busy, 0.5, 1e-12);
    assert_float_equal(dv[1].read_bytes_per_s, 500.0 * 512 / 0.5, 1e-6); /* nvme0n1 */
    assert_float_equal(dv[1].write_bytes_per_s, 0.0, 1e-12);
    assert_float_equal(dv[1].busy, 0.8, 1e-12);
    assert_float_equal(dv[2].read_bytes_per_s, 2000.0, 1e-9); /* eth0 */
    assert_float_equal(dv[2].write_bytes_per_s, 1000.0, 1e-9);
    assert_float_equal(dv[3].read_bytes_per_s, 0.0, 1e-12); /* wlan0 */
    assert_float_equal(s.cg_throttled_share, 0.25, 1e-12);
    assert_int_equal(s.cg_throttled_ns, 5500000000ull);

    /* fewer cores asked than there are */
    nc = 0;
    /* no tick since: the shares of the last interval are reported again */
    assert_int_equal(stall__sys_sample(c, 2 * SEC, &s, cores, 2, &nc), 0);
    assert_true(s.valid & STALL_SYS_RATES);
    assert_float_equal(s.cpu_user, 0.3, 1e-12);
    assert_int_equal(nc, 2);
    assert_float_equal(cores[1], 0.2, 1e-12);
    assert_float_equal(s.disk_read_bytes_per_s, 0.0, 1e-12);
    assert_float_equal(s.ctx_switches_per_s, 0.0, 1e-12);
    assert_float_equal(s.cg_throttled_share, 0.0, 1e-12);

    /* a parent's limit becomes the tightest; usage above the limit leaves no room */
    assert_int_equal(fx_write(root, "sys/fs/cgroup/user.slice/cpu.max", "100000 100000\n"), 0);
    assert_int_equal(fx_write(root, "sys/fs/cgroup/user.slice/memory.current", "5368709120\n"), 0);
    assert_int_equal(stall__sys_sample(c, 3 * SEC, &s, NULL, 0, NULL), 0);
    assert_int_equal(s.cg_cpu_quota_us, 100000);
    assert_float_equal(s.usable_cores, 1.0, 1e-12);
    assert_int_equal(s.cg_nr_throttled, 0); /* throttling counted where the quota is */
    assert_int_equal(s.mem_usable_available_bytes, 0);

    /* a file that becomes garbage: its fields turn unknown */
    assert_int_equal(fx_write(root, "proc/loadavg", "garbage"), 0);
    assert_int_equal(fx_write(root, "proc/pressure/io", ""), 0);
    assert_int_equal(stall__sys_sample(c, 4 * SEC, &s, NULL, 0, NULL), 0);
    assert_int_equal(s.valid & (STALL_SYS_LOAD | STALL_SYS_PSI_IO), 0);
    assert_true(s.valid & STALL_SYS_PSI_MEM);
    stall__sys_close(c);
    fx_scratch_done(root);
}

static void test_first_interval_without_tick(void **state) {
    (void)state;
    char root[4096];
    assert_int_equal(fx_scratch(root, sizeof root, "edge-v1"), 0);
    stall_sys_collector_t *c = open_dir(root, 300);
    stall_sys_t s;
    double cores[4];
    uint32_t nc = 99;
    assert_int_equal(stall__sys_sample(c, SEC, &s, cores, 4, &nc), 0);
    assert_int_equal(stall__sys_sample(c, SEC + 1000000, &s, cores, 4, &nc), 0);
    /* 1 ms later, no tick elapsed: the shares are not known yet */
    assert_int_equal(s.valid & STALL_SYS_RATES, 0);
    assert_int_equal(nc, 0);
    assert_int_equal(fx_write(root, "proc/stat",
                              "cpu  410 0 110 1520 0 0 0\ncpu0 110 0 35 375 0 0 0\ncpu1 100 0 25 395 0 0 0\n"
                              "cpu2 100 0 25 375 0 0 0\ncpu3 100 0 25 375 0 0 0\nctxt 5000\n"),
                     0);
    assert_int_equal(stall__sys_sample(c, SEC + 100000000, &s, cores, 4, &nc), 0);
    assert_true(s.valid & STALL_SYS_RATES);
    assert_float_equal(s.cpu_user, 0.25, 1e-12);
    assert_float_equal(s.cpu_system, 0.25, 1e-12);
    assert_float_equal(s.cpu_idle, 0.5, 1e-12);
    assert_float_equal(s.cpu_steal, 0.0, 1e-12); /* no steal field on this kernel */
    assert_int_equal(nc, 4);
    assert_float_equal(cores[0], 1.0, 1e-12);
    assert_float_equal(cores[1], 0.0, 1e-12);
    assert_float_equal(s.cg_throttled_share, 0.0, 1e-12);
    stall__sys_close(c);
    fx_scratch_done(root);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_machine),
        cmocka_unit_test(test_edge_v2),
        cmocka_unit_test(test_edge_v1_no_psi),
        cmocka_unit_test(test_edge_v2_max),
        cmocka_unit_test(test_nothing_there),
        cmocka_unit_test(test_rates),
        cmocka_unit_test(test_first_interval_without_tick),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
