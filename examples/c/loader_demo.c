/*
 * loader_demo.c - a small C program shaped like a training loop, instrumented
 * with the stall C API: two forked loader processes produce "batches" (a
 * fetch that reads a file and decodes it, then a collate) and send them over
 * a pipe; the main process waits for each batch, then runs a compute step.
 * The loaders are slower than the step, so the main process spends most of
 * its time waiting for data.
 *
 * Usage: loader_demo [BATCHES]   prints the session directory it kept, for
 *                                `stall dump --summary DIR`.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "stall.h"

static volatile double sink;

static void burn_us(unsigned us) {
    uint64_t end = stall_now_ns() + (uint64_t)us * 1000u;
    double x = 1.0;
    while (stall_now_ns() < end) x = x * 1.0000001 + 1e-9;
    sink = x;
}

static void loader(int out_fd, int id, int batches) {
    char label[32];
    snprintf(label, sizeof label, "worker %d", id);
    stall_set_process_label(label);
    char buf[4096];
    for (int b = id; b < batches; b += 2) {
        STALL_SPAN_BEGIN(STALL_KIND_DATA_LOADING, "fetch");
        STALL_SPAN_BEGIN(STALL_KIND_IO, "read_file");
        int fd = open("/proc/self/stat", O_RDONLY);
        ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf) : 0;
        if (fd >= 0) close(fd);
        usleep(2000); /* a slow disk */
        stall_end_arg((uint64_t)(n > 0 ? n : 0));
        STALL_SPAN_BEGIN(STALL_KIND_PREPROCESSING, "decode");
        burn_us(3000);
        stall_end();
        stall_end();
        STALL_SPAN_BEGIN(STALL_KIND_PREPROCESSING, "collate");
        burn_us(500);
        stall_end();
        if (write(out_fd, &b, sizeof b) != (ssize_t)sizeof b) break;
    }
    close(out_fd);
}

int main(int argc, char **argv) {
    int batches = argc > 1 ? atoi(argv[1]) : 200;
    if (batches <= 0) {
        fprintf(stderr, "usage: loader_demo [BATCHES > 0]\n");
        return 2;
    }
    stall_options_t opt = {.keep = 1};
    stall_session_t *s = stall_session_start("loader_demo", &opt);
    if (!s) {
        fprintf(stderr, "loader_demo: %s\n", stall_last_error());
        return 1;
    }
    stall_set_process_label("main");
    int pipes[2];
    if (pipe(pipes) < 0) return 1;
    pid_t kids[2];
    for (int i = 0; i < 2; i++) {
        kids[i] = fork();
        if (kids[i] == 0) {
            close(pipes[0]);
            loader(pipes[1], i, batches);
            _exit(0);
        }
    }
    close(pipes[1]);
    int got = 0, b;
    for (;;) {
        STALL_SPAN_BEGIN(STALL_KIND_DATA_WAIT, "wait_for_batch");
        ssize_t n = read(pipes[0], &b, sizeof b);
        stall_end();
        if (n != (ssize_t)sizeof b) break;
        STALL_SPAN_BEGIN(STALL_KIND_STEP, "train_step");
        STALL_SPAN_BEGIN(STALL_KIND_CPU_COMPUTE, "forward_backward");
        burn_us(1000);
        stall_end();
        stall_end_arg(1);
        got++;
    }
    for (int i = 0; i < 2; i++) waitpid(kids[i], NULL, 0);
    printf("%s\n", stall_session_dir(s));
    fprintf(stderr, "loader_demo: %d batches\n", got);
    stall_session_stop(s);
    return 0;
}
