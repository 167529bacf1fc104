/*
 * layout.h - the shared-memory format of a session directory, private to the
 * library. Writers (span.c) and readers (reader.c) in different processes, and
 * possibly different builds, agree on it through the magic and the version.
 *
 * A session directory holds:
 *   meta.json           session name, creator, clocks (written once)
 *   p-<pid>-<n>.stall   one file per recording process, created under a
 *                       temporary name and renamed when complete
 *   reader.lock         flock()ed by the one reader that drains the session
 *
 * A process file is: header | name table | thread slots. Each thread slot is
 * a single-producer single-consumer ring of stall_record_t plus the stack of
 * the thread's open spans, so that a reader sees what a crashed thread was in.
 */
#ifndef STALL_LAYOUT_H
#define STALL_LAYOUT_H

#include <stdatomic.h>
#include <stdint.h>

#include "stall.h"

#define STALL_PROC_MAGIC 0x3130504c4c415453ull /* "STALLP01" little-endian */
#define STALL_LAYOUT_VERSION 1u

#define STALL_NAME_SLOTS 4096u /* power of two */
#define STALL_NAME_LEN 96u     /* bytes per name, NUL included */
#define STALL_MAX_DEPTH 32u    /* open spans per thread that are recorded */
#define STALL_CACHELINE 64u

enum { PROC_RUNNING = 1, PROC_CLOSED = 2 };
enum { NAME_FREE = 0, NAME_WRITING = 1, NAME_READY = 2 };
enum { SLOT_FREE = 0, SLOT_ACTIVE = 1, SLOT_RETIRED = 2 };

typedef struct proc_hdr_t {
    _Atomic uint64_t magic;
    uint32_t version;
    uint32_t record_size;
    uint32_t pid;
    uint32_t ppid;
    uint64_t start_ns;       /* CLOCK_MONOTONIC when the file was made */
    uint64_t proc_starttime; /* field 22 of /proc/<pid>/stat: tells a reused pid */
    uint32_t ring_records;
    uint32_t max_threads;
    uint64_t names_off;
    uint64_t slots_off;
    uint64_t slot_size;
    uint64_t file_size;
    _Atomic uint32_t state;        /* PROC_RUNNING / PROC_CLOSED */
    _Atomic uint32_t slots_used;   /* slots ever claimed (high-water mark) */
    _Atomic uint64_t dropped;      /* spans of threads that got no slot */
    char comm[32];
    char label[32];
} proc_hdr_t;

typedef struct name_slot_t {
    _Atomic uint32_t state; /* NAME_* */
    uint32_t hash;
    char str[STALL_NAME_LEN - 8];
} name_slot_t;

typedef struct open_span_t {
    uint64_t start_ns;
    uint64_t cpu_start_ns;
    uint32_t name;
    uint8_t kind;
    uint8_t has_cpu;
    uint16_t pad;
} open_span_t;

typedef struct thread_slot_t {
    /* producer-owned line */
    _Atomic uint64_t write_pos;
    _Atomic uint64_t dropped; /* written only by the producer */
    _Atomic uint32_t state;   /* SLOT_* */
    uint32_t tid;
    _Atomic uint32_t depth; /* open spans, may exceed STALL_MAX_DEPTH */
    char pad0[STALL_CACHELINE - 28];
    /* consumer-owned line */
    _Atomic uint64_t read_pos;
    char pad1[STALL_CACHELINE - 8];
    open_span_t stack[STALL_MAX_DEPTH];
    /* followed by ring_records stall_record_t, cache-line aligned */
} thread_slot_t;

_Static_assert(sizeof(stall_record_t) == 48, "record must stay 48 bytes");
_Static_assert(sizeof(name_slot_t) == STALL_NAME_LEN, "name slot size");
_Static_assert(sizeof(thread_slot_t) % STALL_CACHELINE == 0, "slot alignment");

static inline stall_record_t *slot_records(thread_slot_t *s) {
    return (stall_record_t *)(void *)(s + 1);
}

static inline uint64_t slot_bytes(uint32_t ring_records) {
    uint64_t b = sizeof(thread_slot_t) + (uint64_t)ring_records * sizeof(stall_record_t);
    return (b + 4095u) & ~(uint64_t)4095u; /* page-aligned so each can be fallocated */
}

#endif
