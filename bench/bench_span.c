/*
 * bench_span.c - the cost of one stall span (begin + end) from C, on one
 * thread and on two threads at once, against the floor of the same loop with
 * two bare clock_gettime(CLOCK_MONOTONIC) reads, measured in the same run.
 * A reader thread drains the rings while the producers run, as the engine
 * does, so the figure is the recording path and not the full-ring drop path.
 *
 * Usage: bench_span [PAIRS_PER_THREAD] [REPEATS]
 * Prints one line per case with the best-of-REPEATS ns per pair.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "stall.h"

static long g_pairs;
static stall_name_t g_name;
static _Atomic int g_stop;
static _Atomic uint64_t g_read;
static volatile uint64_t g_sink;

static int count_cb(void *ctx, const stall_reader_proc_t *p, const stall_record_t *r, size_t n) {
    (void)ctx;
    (void)p;
    (void)r;
    atomic_fetch_add(&g_read, n);
    return 0;
}

static void *drainer(void *arg) {
    stall_reader_t *r = arg;
    struct timespec ts = {0, 1000000}; /* 1 ms, i.e. a busy engine */
    while (!atomic_load(&g_stop)) {
        stall_reader_drain(r, count_cb, NULL);
        nanosleep(&ts, NULL);
    }
    stall_reader_drain(r, count_cb, NULL);
    return NULL;
}

static void *spans(void *arg) {
    (void)arg;
    for (long i = 0; i < g_pairs; i++) {
        stall_begin_id(STALL_KIND_CPU_COMPUTE, g_name);
        stall_end();
    }
    return NULL;
}

static void *clocks(void *arg) {
    (void)arg;
    struct timespec a, b;
    uint64_t acc = 0;
    for (long i = 0; i < g_pairs; i++) {
        clock_gettime(CLOCK_MONOTONIC, &a);
        clock_gettime(CLOCK_MONOTONIC, &b);
        acc += (uint64_t)(b.tv_nsec - a.tv_nsec);
    }
    g_sink = acc;
    return NULL;
}

/* Runs fn on nthreads threads; returns ns per pair per thread. */
static double run(void *(*fn)(void *), int nthreads) {
    pthread_t t[2];
    uint64_t t0 = stall_now_ns();
    for (int i = 0; i < nthreads; i++) pthread_create(&t[i], NULL, fn, NULL);
    for (int i = 0; i < nthreads; i++) pthread_join(t[i], NULL);
    return (double)(stall_now_ns() - t0) / (double)g_pairs;
}

int main(int argc, char **argv) {
    g_pairs = argc > 1 ? atol(argv[1]) : 5000000;
    int repeats = argc > 2 ? atoi(argv[2]) : 5;
    if (g_pairs <= 0 || repeats <= 0) {
        fprintf(stderr, "usage: bench_span [PAIRS_PER_THREAD > 0] [REPEATS > 0]\n");
        return 2;
    }
    stall_options_t opt = {.ring_records = 1u << 16, .no_export = 1};
    stall_session_t *s = stall_session_start("bench_span", &opt);
    if (!s) {
        fprintf(stderr, "bench_span: %s\n", stall_last_error());
        return 1;
    }
    g_name = stall_intern("bench_op");
    stall_reader_t *r = stall_reader_open(stall_session_dir(s));
    if (!r) {
        fprintf(stderr, "bench_span: %s\n", stall_last_error());
        return 1;
    }
    pthread_t d;
    pthread_create(&d, NULL, drainer, r);

    double best[4] = {1e9, 1e9, 1e9, 1e9};
    for (int k = 0; k < repeats; k++) {
        double v[4] = {run(clocks, 1), run(spans, 1), run(clocks, 2), run(spans, 2)};
        for (int i = 0; i < 4; i++)
            if (v[i] < best[i]) best[i] = v[i];
    }
    atomic_store(&g_stop, 1);
    pthread_join(d, NULL);

    uint64_t dropped = 0;
    size_t np = stall_reader_proc(r, 0, NULL);
    for (size_t i = 0; i < np; i++) {
        stall_reader_proc_t p;
        stall_reader_proc(r, i, &p);
        dropped += p.dropped;
    }
    uint64_t recorded = (uint64_t)g_pairs * 3u * (uint64_t)repeats;
    printf("pairs per thread per run: %ld, best of %d runs\n", g_pairs, repeats);
    printf("1 thread : span pair %6.1f ns   two bare clock reads %6.1f ns   overhead %5.1f ns\n", best[1],
           best[0], best[1] - best[0]);
    printf("2 threads: span pair %6.1f ns   two bare clock reads %6.1f ns   overhead %5.1f ns (per thread)\n",
           best[3], best[2], best[3] - best[2]);
    printf("records drained %llu of %llu (+1 session marker), dropped %llu\n", (unsigned long long)atomic_load(&g_read),
           (unsigned long long)recorded, (unsigned long long)dropped);
    stall_reader_close(r, 1);
    stall_session_stop(s);
    return 0;
}
