/*
 * internal.h - helpers shared by the library's own files: the thread-local
 * error, the clock, small string and file utilities. Nothing here is public.
 */
#ifndef STALL_INTERNAL_H
#define STALL_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "stall.h"

#if defined(__GNUC__)
#define STALL_LIKELY(x) __builtin_expect(!!(x), 1)
#define STALL_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define STALL_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define STALL_LIKELY(x) (x)
#define STALL_UNLIKELY(x) (x)
#define STALL_PRINTF(a, b)
#endif

/* Sets the calling thread's error message (printf-style) and returns -1, so
 * that `return stall__err("...")` reads naturally. */
int stall__err(const char *fmt, ...) STALL_PRINTF(1, 2);

/* Same, with ": strerror(errnum)" appended. */
int stall__errno(int errnum, const char *fmt, ...) STALL_PRINTF(2, 3);

static inline uint64_t stall__clock_ns(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* FNV-1a over a NUL-terminated string, at most `max` bytes; never 0. */
uint32_t stall__hash(const char *s, size_t max, size_t *len_out);

/* Copies at most cap-1 bytes of src into dst and NUL-terminates it. */
void stall__strlcpy(char *dst, const char *src, size_t cap);

/* Reads a whole small file (< cap bytes) with open/read into buf, NUL
 * terminated. Returns the length, or -1. No stdio. */
long stall__read_file(const char *path, char *buf, size_t cap);

/* Reads the command name, field 3 (state), field 4 (ppid) and field 22
 * (starttime) of /proc/<pid>/stat; any output pointer may be NULL. Returns 0,
 * or -1 when the process is gone. */
int stall__proc_stat(uint32_t pid, uint64_t *starttime, uint32_t *ppid, char *state,
                     char *comm, size_t comm_cap);

/* The time range of an aggregator's session (0: the first and last record
 * seen); *end_ns is 0 while it is open. name (may have name_cap 0) gets its
 * name. Returns 0, or -1 for an unknown session. */
int stall__agg_session_range(stall_agg_t *a, uint64_t id, uint64_t *begin_ns, uint64_t *end_ns, char *name,
                             size_t name_cap);

#endif
