/*
 * bench_sample.c - the CPU cost of one stall sample: the whole system plus
 * the process tree rooted at ROOT_PID, taken SAMPLES times in a row on this
 * thread. Prints one line of key=value pairs for bench/bench_sampler.py,
 * which runs psutil on the same tree in the same run.
 *
 * Usage: bench_sample ROOT_PID [SAMPLES] [PSS]
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "stall.h"

static uint64_t cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_sample ROOT_PID [SAMPLES]\n");
        return 2;
    }
    long root = atol(argv[1]);
    long n = argc > 2 ? atol(argv[2]) : 2000;
    int pss = argc > 3 && atoi(argv[3]) != 0; /* 1: smaps_rollup at every sample too */
    if (root <= 0 || n <= 0) {
        fprintf(stderr, "usage: bench_sample ROOT_PID [SAMPLES > 0]\n");
        return 2;
    }
    /* PSS (smaps_rollup) is read at a lower rate by design; with pss = 1 it
     * is read at every sample, to compare with psutil's memory_full_info */
    stall_sampler_options_t o = {.root_pid = (uint32_t)root, .pss_interval_ns = pss ? 1 : UINT64_MAX};
    stall_sampler_t *s = stall_sampler_new(&o);
    if (!s) {
        fprintf(stderr, "bench_sample: %s\n", stall_last_error());
        return 1;
    }
    stall_sampler_sample(s); /* open the files, first rates */
    uint64_t c0 = cpu_ns(), w0 = stall_now_ns();
    for (long i = 0; i < n; i++) stall_sampler_sample(s);
    uint64_t c1 = cpu_ns(), w1 = stall_now_ns();
    stall_proc_sample_t procs[64];
    size_t np = stall_sampler_procs(s, procs, 64);
    stall_sys_t sys;
    stall_sampler_latest(s, &sys);
    printf("samples=%ld processes=%zu cpu_us_per_sample=%.1f wall_us_per_sample=%.1f sys_valid=0x%llx "
           "memory_bytes=%zu\n",
           n, np, (c1 - c0) / 1e3 / (double)n, (w1 - w0) / 1e3 / (double)n, (unsigned long long)sys.valid,
           stall_sampler_memory_bytes(s));
    stall_sampler_free(s);
    return 0;
}
