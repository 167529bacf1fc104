/*
 * prometheus.h - the library-internal side of the Prometheus exporter
 * (src/export/prometheus.c, src/export/metrics_server.c): the renderer of the
 * text exposition format from a snapshot of an engine's state, the per-process
 * CPU counter that stays monotonic while DataLoader workers come and go, the
 * label helpers and the parser of "HOST:PORT" addresses. Declared here so
 * the unit tests can drive them without a server; nothing here is public.
 */
#ifndef STALL_PROMETHEUS_H
#define STALL_PROMETHEUS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "stall.h"

/* The role label of a process of the profiled tree: the root is "main",
 * every descendant (DataLoader workers, subprocesses) a "worker". */
enum { STALL_PROM_MAIN = 0, STALL_PROM_WORKER = 1, STALL_PROM_ROLES = 2 };

/* Returns "main" or "worker" (NULL for another value). */
const char *stall__prom_role_name(int role);

/* ------------------------------------------------- monotonic process CPU */

typedef struct stall_prom_cpu_ent_t {
    uint32_t pid;
    uint64_t starttime; /* with pid, identifies one process (a reused pid differs here) */
    uint64_t cpu_ns;    /* utime + stime at the last update that saw it */
    uint64_t gone;      /* 0 while in the tree; else the order in which it left (1, 2, ...) */
    int role;
    int seen;           /* scratch of stall__prom_cpu_update */
} stall_prom_cpu_ent_t;

/* At most this many processes that left are remembered (a process missed
 * by one sample and seen again is not counted twice); the oldest is then
 * forgotten, its CPU time staying in the retired total. */
#define STALL_PROM_GONE_MAX 1024

/* The CPU time of the tree per role, kept from one scrape to the next: the
 * last utime+stime of every process, keyed by (pid, starttime), and per role
 * the retired total: the last values of the processes that left the tree.
 * Zero-initialise; free with stall__prom_cpu_free. Not thread-safe (the
 * server locks around it). */
typedef struct stall_prom_cpu_t {
    stall_prom_cpu_ent_t *ents;
    size_t n, cap;
    uint64_t gone_seq;
    uint64_t retired_ns[STALL_PROM_ROLES];
} stall_prom_cpu_t;

/* Takes the processes of the latest sample (those without STALL_PROC_STAT
 * are skipped): known ones get their new CPU time (never lower than before),
 * new ones are added with the role of their depth (0: main), and every one
 * that is not in procs any more moves its last value into the retired total
 * of its role (and back out, should it be seen again). Returns 0, or -1 when
 * out of memory (the processes not yet added are then left out). */
int stall__prom_cpu_update(stall_prom_cpu_t *c, const stall_proc_sample_t *procs, size_t n);

/* The role's CPU nanoseconds: retired + the live processes' last values.
 * Never decreases from one update to the next. */
uint64_t stall__prom_cpu_total_ns(const stall_prom_cpu_t *c, int role);

/* Frees the table (the struct itself belongs to the caller) and zeroes it. */
void stall__prom_cpu_free(stall_prom_cpu_t *c);

/* ------------------------------------------------------------ rendering */

/* What one exposition shows: a copy of the engine's state at scrape time.
 * Pointers are borrowed for the call. */
typedef struct stall_prom_in_t {
    uint64_t batches;      /* the training loop's batches so far (stall__loop_totals) */
    uint64_t data_wait_ns; /* its time waiting for data */
    uint64_t kind_ns[STALL_KIND_COUNT_]; /* stall_agg_kind_time of session 0 */
    int has_sampler;       /* 0: no process, host, GPU nor sampler series */
    int has_sys;           /* sys holds a sample */
    stall_sys_t sys;
    const stall_proc_sample_t *procs; /* the latest tree, root first */
    size_t nprocs;
    const stall_gpu_t *gpus;
    size_t ngpus;
    uint64_t samples;      /* stall_sampler_count */
} stall_prom_in_t;

/* Writes the exposition (text format 0.0.4) of `in` to out, every series
 * with the constant labels `labels` (rendered, without braces, e.g.
 * `host="a",rank="0"`; "" or NULL for none). Updates cpu with in->procs
 * first (the process CPU counters come from it). Returns 0, or -1 when
 * writing failed or out of memory. */
int stall__prom_render(FILE *out, const stall_prom_in_t *in, stall_prom_cpu_t *cpu, const char *labels);

/* Takes a snapshot of engine e (see stall_prom_in_t) and renders it as
 * stall__prom_render does. Allocates what the copy needs and frees it
 * before returning. Returns 0 or -1 with the error set. */
int stall__prom_render_engine(FILE *out, stall_engine_t *e, stall_prom_cpu_t *cpu, const char *labels);

/* Writes s as a label value, inside its quotes: backslash, double quote and
 * line feed escaped as \\, \" and \n (the text format's rules). */
void stall__prom_escape(FILE *out, const char *s);

/* 1 when s is a label name the exporter accepts: [a-zA-Z_][a-zA-Z0-9_]*,
 * not starting with "__" (reserved by Prometheus), at most 63 bytes. */
int stall__prom_label_name_ok(const char *s);

/* 1 when a label of that name is one of the exporter's own series labels
 * (role, kind, gpu, name, version): a constant label of that name would
 * make a series carry it twice. */
int stall__prom_label_reserved(const char *s);

/* ------------------------------------------------------------ addresses */

/* A parsed listening address. */
typedef struct stall_prom_addr_t {
    struct sockaddr_storage ss;
    socklen_t len;
    int port;       /* 0..65535; 0: any free port */
    char host[256]; /* the host as given, brackets removed ("127.0.0.1" for ":PORT" and "PORT") */
} stall_prom_addr_t;

/* Parses "HOST:PORT", "[IPV6]:PORT", ":PORT" (127.0.0.1) or "PORT" into out.
 * HOST is an IPv4 or IPv6 literal or a name that resolves (the first
 * address found is used); PORT is 0..65535 in decimal. NULL or "" is an
 * error. Returns 0, or -1 with an error that quotes the address and says
 * what is wrong with it. */
int stall__prom_parse_address(const char *addr, stall_prom_addr_t *out);

#endif /* STALL_PROMETHEUS_H */
