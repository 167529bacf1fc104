/*
 * test_nvml.c - the NVML collector (src/collect/nvml/nvml.c) against fake
 * NVML libraries built next to this file (fake_nvml.c documents the script
 * they read). Each test names the fake to load with STALL_NVML_LIBRARY,
 * writes a script, and also dlopens the fake itself, which keeps it loaded
 * across stall's dlopen/dlclose and gives access to its call counters.
 *
 * The allocation check counts the malloc/calloc/realloc calls of the code
 * linked into this executable (libstall included) through the linker's
 * --wrap, so it works the same under AddressSanitizer.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "collector.h"

#ifndef FAKE_NVML_FULL
#error "FAKE_NVML_FULL (path of the fake library) must be defined by the build"
#endif

#define MiB (1024ull * 1024ull)

/* -------------------------------------------------------- allocation count */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);

static long g_allocs;

void *__wrap_malloc(size_t n) {
    g_allocs++;
    return __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size) {
    g_allocs++;
    return __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n) {
    g_allocs++;
    return __real_realloc(p, n);
}

/* ----------------------------------------------------------- the fakes */

static char g_script[256];

typedef struct fake_t {
    void *lib;
    int (*reload)(void);
    unsigned long (*stat)(const char *key);
    void (*reset)(void);
} fake_t;

static void write_script(const char *text) {
    FILE *f = fopen(g_script, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* Selects the fake at `path` for stall and loads it here too. */
static void fake_use(fake_t *f, const char *path, const char *script) {
    write_script(script);
    assert_int_equal(setenv("STALL_NVML_LIBRARY", path, 1), 0);
    f->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!f->lib) fail_msg("dlopen %s: %s", path, dlerror());
    f->reload = (int (*)(void))dlsym(f->lib, "fake_nvml_reload");
    f->stat = (unsigned long (*)(const char *))dlsym(f->lib, "fake_nvml_stat");
    f->reset = (void (*)(void))dlsym(f->lib, "fake_nvml_reset_stats");
    assert_non_null(f->reload);
    assert_non_null(f->stat);
    assert_non_null(f->reset);
    f->reset();
}

static void fake_done(fake_t *f) {
    assert_int_equal(f->stat("live"), 0); /* every nvmlInit was shut down */
    dlclose(f->lib);
}

static int group_setup(void **state) {
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(g_script, sizeof g_script, "%s/stall-fake-nvml-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemp(g_script);
    if (fd < 0) return -1;
    close(fd);
    return setenv("FAKE_NVML_SCRIPT", g_script, 1);
}

static int group_teardown(void **state) {
    (void)state;
    unlink(g_script);
    return 0;
}

static const char two_devices[] =
    "# two H100s, scripted\n"
    "count 2\n"
    "d0.name NVIDIA H100 80GB HBM3\n"
    "d0.uuid GPU-11111111-2222-3333-4444-555555555555\n"
    "d0.util 87 45\n"
    "d0.mem 85899345920 1073741824 84825604096\n"
    "d0.power 312500\n"
    "d0.temp 64\n"
    "d0.clock 1980 2619\n"
    "d0.pcie 1000 2000\n"
    "d0.proc 100 1048576\n"
    "d1.name NVIDIA H100 PCIe\n"
    "d1.uuid GPU-66666666-7777-8888-9999-000000000000\n"
    "d1.util 3 1\n"
    "d1.mem 85899345920 84825604096 1073741824\n"
    "d1.power 71000\n"
    "d1.temp 35\n"
    "d1.clock 345 1593\n"
    "d1.pcie 7 9\n";

/* ------------------------------------------------------------- no GPU */

static void test_no_library(void **state) {
    (void)state;
    assert_int_equal(setenv("STALL_NVML_LIBRARY", "/nonexistent/dir/libnvidia-ml.so.1", 1), 0);
    stall_nvml_t *n = stall__nvml_open();
    assert_null(n);
    /* the NULL collector is harmless */
    stall_gpu_t g[2];
    assert_int_equal(stall__nvml_sample(NULL, g, 2, NULL, 0, NULL, NULL), 0);
    stall__nvml_close(NULL);
}

static void test_not_a_library(void **state) {
    (void)state;
    write_script("count 1\n");
    assert_int_equal(setenv("STALL_NVML_LIBRARY", g_script, 1), 0); /* a text file */
    assert_null(stall__nvml_open());
}

static void test_required_symbol_missing(void **state) {
    (void)state;
    fake_t f;
    fake_use(&f, FAKE_NVML_NOSHUTDOWN, "count 1\n");
    assert_null(stall__nvml_open());
    assert_int_equal(f.stat("init"), 0); /* refused before initialising */
    fake_done(&f);
}

static void test_init_fails(void **state) {
    (void)state;
    fake_t f;
    fake_use(&f, FAKE_NVML_FULL, "init_fail 9\ncount 2\n");
    assert_null(stall__nvml_open());
    assert_int_equal(f.stat("init"), 1);
    assert_int_equal(f.stat("shutdown"), 0); /* nothing to shut down */
    fake_done(&f);
}

static void test_zero_devices(void **state) {
    (void)state;
    fake_t f;
    fake_use(&f, FAKE_NVML_FULL, "count 0\n");
    assert_null(stall__nvml_open());
    assert_int_equal(f.stat("init"), 1);
    assert_int_equal(f.stat("shutdown"), 1);
    fake_done(&f);
}

static void test_count_fails(void **state) {
    (void)state;
    fake_t f;
    fake_use(&f, FAKE_NVML_FULL, "count 2\ncount_fail 999\n");
    assert_null(stall__nvml_open());
    assert_int_equal(f.stat("shutdown"), 1);
    fake_done(&f);
}

static void test_no_handle(void **state) {
    (void)state;
    fake_t f;
    fake_use(&f, FAKE_NVML_FULL, "count 1\nd0.handle_fail 4\n");
    assert_null(stall__nvml_open());
    assert_int_equal(f.stat("shutdown"), 1);
    fake_done(&f);
}

/* ------------------------------------------------------------ values */

static void test_two_devices(void **state) {
    (void)state;
    fake_t f;
    fake_use(&f, FAKE_NVML_FULL, two_devices);
    stall_nvml_t *n = stall__nvml_open();
    assert_non_null(n);
    assert_int_equal(f.stat("init_v2"), 1); /* the versioned entry point first */

    stall_gpu_t g[4];
    memset(g, 0xAB, sizeof g);
    uint32_t pids[] = {100};
    assert_int_equal(stall__nvml_sample(n, g, 4, pids, 1, NULL, NULL), 2);

    const uint64_t all = STALL_GPU_UTIL | STALL_GPU_MEM | STALL_GPU_POWER | STALL_GPU_TEMP | STALL_GPU_CLOCK |
                         STALL_GPU_PCIE | STALL_GPU_TREE;
    assert_int_equal(g[0].index, 0);
    assert_int_equal(g[0].valid, all);
    assert_string_equal(g[0].name, "NVIDIA H100 80GB HBM3");
    assert_string_equal(g[0].uuid, "GPU-11111111-2222-3333-4444-555555555555");
    assert_true(g[0].util_sm_pct == 87.0);
    assert_true(g[0].util_mem_pct == 45.0);
    assert_int_equal(g[0].mem_total_bytes, 85899345920ull);
    assert_int_equal(g[0].mem_used_bytes, 84825604096ull);
    assert_true(g[0].power_mw == 312500.0);
    assert_true(g[0].temp_c == 64.0);
    assert_true(g[0].clock_sm_mhz == 1980.0);
    assert_true(g[0].clock_mem_mhz == 2619.0);
    assert_true(g[0].pcie_tx_bytes_per_s == 1000.0 * 1024.0); /* KB/s -> bytes/s */
    assert_true(g[0].pcie_rx_bytes_per_s == 2000.0 * 1024.0);
    assert_int_equal(g[0].tree_mem_bytes, 1048576);

    /* device 1 scripts no process line: the query is not supported there */
    assert_int_equal(g[1].index, 1);
    assert_int_equal(g[1].valid, all & ~STALL_GPU_TREE);
    assert_string_equal(g[1].name, "NVIDIA H100 PCIe");
    assert_string_equal(g[1].uuid, "GPU-66666666-7777-8888-9999-000000000000");
    assert_true(g[1].util_sm_pct == 3.0);
    assert_true(g[1].util_mem_pct == 1.0);
    assert_int_equal(g[1].mem_total_bytes, 85899345920ull);
    assert_int_equal(g[1].mem_used_bytes, 1073741824ull);
    assert_true(g[1].power_mw == 71000.0);
    assert_true(g[1].temp_c == 35.0);
    assert_true(g[1].clock_sm_mhz == 345.0);
    assert_true(g[1].clock_mem_mhz == 1593.0);
    assert_true(g[1].pcie_tx_bytes_per_s == 7.0 * 1024.0);
    assert_true(g[1].pcie_rx_bytes_per_s == 9.0 * 1024.0);
    assert_int_equal(g[1].tree_mem_bytes, 0);

    /* the newest process query is the one used */
    assert_true(f.stat("procs_v3") >= 1);
    assert_int_equal(f.stat("procs_v2"), 0);
    assert_int_equal(f.stat("procs_v1"), 0);

    stall__nvml_close(n);
    assert_int_equal(f.stat("shutdown"), 1);
    fake_done(&f);
}

static void test_min_library(void **state) {
    (void)state;
    fake_t f;
    fake_use(&f, FAKE_NVML_MIN, two_devices);
    stall_nvml_t *n = stall__nvml_open();
    assert_non_null(n);
    stall_gpu_t g[2];
    memset(g, 0xAB, sizeof g);
    uint32_t pids[] = {100};
    uint64_t per_pid[1] = {0};
    uint8_t known[1] = {1};
    assert_int_equal(stall__nvml_sample(n, g, 2, pids, 1, per_pid, known), 2);
    assert_int_equal(known[0], 0); /* no process query: the pid's GPU memory is unknown */
    for (int i = 0; i < 2; i++) {
        assert_int_equal(g[i].index, (uint32_t)i);
        assert_int_equal(g[i].valid, 0); /* every measure unknown */
        assert_string_equal(g[i].name, "");
        assert_string_equal(g[i].uuid, "");
    }
    assert_int_equal(per_pid[0], 0);
    stall__nvml_close(n);
    fake_done(&f);
}

static void test_legacy_library(void **state) {
    (void)state;
    fake_t f;
    fake_use(&f, FAKE_NVML_LEGACY,
             "count 1\n"
             "d0.name Tesla K80\n"
             "d0.util 50 20\n"
             "d0.proc 900 4096\n"
             "d0.proc 100 8388608\n"
             "d0.proc 200 16777216\n");
    stall_nvml_t *n = stall__nvml_open();
    assert_non_null(n);
    assert_int_equal(f.stat("init_v2"), 0);
    assert_int_equal(f.stat("init"), 1); /* fell back to nvmlInit */
    stall_gpu_t g[1];
    uint32_t pids[] = {200, 100};
    uint64_t per_pid[2] = {0, 0};
    assert_int_equal(stall__nvml_sample(n, g, 1, pids, 2, per_pid, NULL), 1);
    assert_string_equal(g[0].name, "Tesla K80");
    assert_true(g[0].util_sm_pct == 50.0);
    assert_true(g[0].valid & STALL_GPU_TREE);
    /* 16-byte v1 entries read with their own stride */
    assert_int_equal(g[0].tree_mem_bytes, 8388608 + 16777216);
    assert_int_equal(per_pid[0], 16777216);
    assert_int_equal(per_pid[1], 8388608);
    assert_true(f.stat("procs_v1") >= 1);
    stall__nvml_close(n);
    fake_done(&f);
}

static void test_not_supported(void **state) {
    (void)state;
    fake_t f;
    char script[2048];
    snprintf(script, sizeof script, "%sd0.unsupported power clock_mem pcie_rx procs\nd1.unsupported util temp\n",
             two_devices);
    fake_use(&f, FAKE_NVML_FULL, script);
    stall_nvml_t *n = stall__nvml_open();
    assert_non_null(n);
    stall_gpu_t g[2];
    uint32_t pids[] = {100};
    assert_int_equal(stall__nvml_sample(n, g, 2, pids, 1, NULL, NULL), 2);
    assert_int_equal(g[0].valid, STALL_GPU_UTIL | STALL_GPU_MEM | STALL_GPU_TEMP);
    assert_true(g[0].power_mw == 0.0 && g[0].clock_sm_mhz == 0.0 && g[0].pcie_tx_bytes_per_s == 0.0);
    assert_int_equal(g[1].valid, STALL_GPU_MEM | STALL_GPU_POWER | STALL_GPU_CLOCK | STALL_GPU_PCIE);
    stall__nvml_close(n);
    fake_done(&f);
}

/* ---------------------------------------------------------- processes */

static void test_tree_memory(void **state) {
    (void)state;
    fake_t f;
    fake_use(&f, FAKE_NVML_FULL,
             "count 3\n"
             "d0.proc 100 1048576\n"
             "d0.proc 555 8388608\n" /* not in the tree */
             "d0.proc 200 2097152\n"
             "d0.proc 777 na\n"      /* not in the tree, unknown */
             "d1.proc 300 4194304\n"
             "d1.proc 100 16777216\n"
             "d2.proc 200 na\n"      /* in the tree, unknown: device 2's sum is unknown */
             "d2.proc 300 33554432\n");
    stall_nvml_t *n = stall__nvml_open();
    assert_non_null(n);
    stall_gpu_t g[3];
    uint32_t pids[] = {100, 200, 300, 400};
    uint64_t per_pid[4] = {0, 0, 0, 0};
    assert_int_equal(stall__nvml_sample(n, g, 3, pids, 4, per_pid, NULL), 3);

    assert_true(g[0].valid & STALL_GPU_TREE);
    assert_int_equal(g[0].tree_mem_bytes, 3 * MiB);
    assert_true(g[1].valid & STALL_GPU_TREE);
    assert_int_equal(g[1].tree_mem_bytes, 20 * MiB);
    assert_false(g[2].valid & STALL_GPU_TREE);

    assert_int_equal(per_pid[0], 17 * MiB);
    assert_int_equal(per_pid[1], 2 * MiB); /* its unknown share on device 2 is not added */
    assert_int_equal(per_pid[2], 36 * MiB);
    assert_int_equal(per_pid[3], 0);

    /* the caller zeroes per_pid_mem: a second sample adds again */
    assert_int_equal(stall__nvml_sample(n, g, 3, pids, 4, per_pid, NULL), 3);
    assert_int_equal(per_pid[0], 34 * MiB);

    /* per_pid_known: cleared only for the pid whose usage NVML did not know */
    uint8_t known[4] = {1, 1, 1, 1};
    memset(per_pid, 0, sizeof per_pid);
    assert_int_equal(stall__nvml_sample(n, g, 3, pids, 4, per_pid, known), 3);
    assert_int_equal(known[0], 1);
    assert_int_equal(known[1], 0);
    assert_int_equal(known[2], 1);
    assert_int_equal(known[3], 1); /* listed nowhere: known to use none */

    /* no tree given: known, and 0 */
    assert_int_equal(stall__nvml_sample(n, g, 3, NULL, 0, NULL, NULL), 3);
    assert_true(g[0].valid & STALL_GPU_TREE);
    assert_int_equal(g[0].tree_mem_bytes, 0);
    assert_true(g[2].valid & STALL_GPU_TREE); /* no tree process is unknown now */
    stall__nvml_close(n);
    fake_done(&f);
}

/* Writes a script with one device running nproc processes, pids 1000.., each
 * using (k + 1) MiB; returns the sum over the pids 1000..1000+ntree-1. */
static uint64_t many_procs_script(char *buf, size_t cap, unsigned nproc, unsigned ntree) {
    size_t len = (size_t)snprintf(buf, cap, "count 1\n");
    uint64_t sum = 0;
    for (unsigned k = 0; k < nproc; k++) {
        len += (size_t)snprintf(buf + len, cap - len, "d0.proc %u %llu\n", 1000 + k,
                                (unsigned long long)(k + 1) * MiB);
        if (k < ntree) sum += (uint64_t)(k + 1) * MiB;
    }
    assert_true(len < cap);
    return sum;
}

static void test_insufficient_size(void **state) {
    (void)state;
    static char script[32768];
    uint32_t pids[256];
    for (unsigned k = 0; k < 256; k++) pids[k] = 1000 + k;

    fake_t f;
    uint64_t want = many_procs_script(script, sizeof script, 100, 60);
    fake_use(&f, FAKE_NVML_FULL, script);
    stall_nvml_t *n = stall__nvml_open();
    assert_non_null(n);
    stall_gpu_t g[1];
    assert_int_equal(stall__nvml_sample(n, g, 1, pids, 60, NULL, NULL), 1);
    unsigned long grown = f.stat("insufficient");
    assert_true(grown >= 1); /* 100 processes do not fit the first buffer */
    assert_true(g[0].valid & STALL_GPU_TREE);
    assert_int_equal(g[0].tree_mem_bytes, want);

    /* the grown buffer is kept: no second INSUFFICIENT_SIZE */
    assert_int_equal(stall__nvml_sample(n, g, 1, pids, 60, NULL, NULL), 1);
    assert_int_equal(f.stat("insufficient"), grown);
    assert_int_equal(g[0].tree_mem_bytes, want);

    /* more processes appear: it grows again */
    want = many_procs_script(script, sizeof script, 256, 256);
    write_script(script);
    assert_int_equal(f.reload(), 0);
    assert_int_equal(stall__nvml_sample(n, g, 1, pids, 256, NULL, NULL), 1);
    assert_true(f.stat("insufficient") > grown);
    assert_true(g[0].valid & STALL_GPU_TREE);
    assert_int_equal(g[0].tree_mem_bytes, want);
    stall__nvml_close(n);
    fake_done(&f);
}

static void test_no_allocation_per_sample(void **state) {
    (void)state;
    static char script[32768];
    uint32_t pids[128];
    for (unsigned k = 0; k < 128; k++) pids[k] = 1000 + k;
    many_procs_script(script, sizeof script, 120, 128);

    fake_t f;
    fake_use(&f, FAKE_NVML_FULL, script);
    g_allocs = 0;
    stall_nvml_t *n = stall__nvml_open();
    assert_non_null(n);
    assert_true(g_allocs > 0); /* the counter sees libstall's allocations */

    stall_gpu_t g[1];
    uint64_t per_pid[128];
    memset(per_pid, 0, sizeof per_pid);
    assert_int_equal(stall__nvml_sample(n, g, 1, pids, 128, per_pid, NULL), 1); /* sizes the buffer */
    g_allocs = 0;
    for (int i = 0; i < 50; i++) assert_int_equal(stall__nvml_sample(n, g, 1, pids, 128, per_pid, NULL), 1);
    assert_int_equal(g_allocs, 0);
    assert_true(g[0].valid & STALL_GPU_TREE);
    stall__nvml_close(n);
    fake_done(&f);
}

/* ------------------------------------------------------------- limits */

static void test_device_cap(void **state) {
    (void)state;
    fake_t f;
    fake_use(&f, FAKE_NVML_FULL,
             "count 100\n"
             "d0.temp 30\n"
             "d50.proc 100 1048576\n"  /* beyond the caller's cap, within 64 */
             "d70.proc 100 2097152\n"); /* beyond 64: never seen */
    stall_nvml_t *n = stall__nvml_open();
    assert_non_null(n);
    stall_gpu_t g[3];
    memset(g, 0xAB, sizeof g);
    uint32_t pids[] = {100};
    uint64_t per_pid[1] = {0};
    assert_int_equal(stall__nvml_sample(n, g, 2, pids, 1, per_pid, NULL), 64);
    assert_int_equal(g[0].valid, STALL_GPU_TEMP); /* d0 lists no processes: query unsupported */
    assert_int_equal(g[1].index, 1);
    /* out[2] is beyond cap: untouched */
    unsigned char untouched[sizeof g[2]];
    memset(untouched, 0xAB, sizeof untouched);
    assert_memory_equal(&g[2], untouched, sizeof g[2]);
    /* every device counts for the processes, also those past cap */
    assert_int_equal(per_pid[0], 1 * MiB);
    stall__nvml_close(n);
    fake_done(&f);
}

static void test_handle_fails_for_one(void **state) {
    (void)state;
    fake_t f;
    fake_use(&f, FAKE_NVML_FULL, "count 3\nd0.temp 10\nd1.handle_fail 4\nd2.temp 30\nd2.name third\n");
    stall_nvml_t *n = stall__nvml_open();
    assert_non_null(n);
    stall_gpu_t g[3];
    assert_int_equal(stall__nvml_sample(n, g, 3, NULL, 0, NULL, NULL), 2);
    assert_int_equal(g[0].index, 0);
    assert_int_equal(g[1].index, 2); /* NVML's index, not the position */
    assert_string_equal(g[1].name, "third");
    assert_true(g[1].temp_c == 30.0);
    stall__nvml_close(n);
    fake_done(&f);
}

static void test_long_name_truncated(void **state) {
    (void)state;
    fake_t f;
    const char *name = "NVIDIA Very Long Board Name That Exceeds Sixty Four Bytes Of Storage Space";
    char script[512];
    snprintf(script, sizeof script, "count 1\nd0.name %s\n", name);
    fake_use(&f, FAKE_NVML_FULL, script);
    stall_nvml_t *n = stall__nvml_open();
    assert_non_null(n);
    stall_gpu_t g[1];
    assert_int_equal(stall__nvml_sample(n, g, 1, NULL, 0, NULL, NULL), 1);
    assert_int_equal(strlen(g[0].name), 63);
    assert_memory_equal(g[0].name, name, 63);
    stall__nvml_close(n);
    fake_done(&f);
}

static void test_reopen(void **state) {
    (void)state;
    fake_t f;
    fake_use(&f, FAKE_NVML_FULL, two_devices);
    for (int i = 0; i < 3; i++) {
        stall_nvml_t *n = stall__nvml_open();
        assert_non_null(n);
        assert_int_equal(f.stat("live"), 1);
        stall__nvml_close(n);
        assert_int_equal(f.stat("live"), 0);
    }
    assert_int_equal(f.stat("init"), 3);
    assert_int_equal(f.stat("shutdown"), 3);
    fake_done(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_library),
        cmocka_unit_test(test_not_a_library),
        cmocka_unit_test(test_required_symbol_missing),
        cmocka_unit_test(test_init_fails),
        cmocka_unit_test(test_zero_devices),
        cmocka_unit_test(test_count_fails),
        cmocka_unit_test(test_no_handle),
        cmocka_unit_test(test_two_devices),
        cmocka_unit_test(test_min_library),
        cmocka_unit_test(test_legacy_library),
        cmocka_unit_test(test_not_supported),
        cmocka_unit_test(test_tree_memory),
        cmocka_unit_test(test_insufficient_size),
        cmocka_unit_test(test_no_allocation_per_sample),
        cmocka_unit_test(test_device_cap),
        cmocka_unit_test(test_handle_fails_for_one),
        cmocka_unit_test(test_long_name_truncated),
        cmocka_unit_test(test_reopen),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
