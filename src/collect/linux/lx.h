/*
 * lx.h - helpers private to the Linux collectors (src/collect/linux/): path
 * building without stdio, a kept-open file read into a buffer that grows,
 * and the few parsers the collectors need beyond those of collector.h
 * (CPU lists, cpuinfo MHz, counting online CPUs, page faults, thread states
 * and wait channels). Not part of any interface outside this folder, its
 * tests and its fuzz targets.
 */
#ifndef STALL_LX_H
#define STALL_LX_H

#include <stddef.h>
#include <stdint.h>

#include "collector.h"

/* Largest CPU number the parsers accept in "cpuN" lines and CPU lists; lines
 * naming a higher one are ignored (garbage, not a real machine). */
#define STALL__LX_MAX_CPUS 65536u

/* Appends the NUL-terminated s to dst (holding *len bytes, capacity cap).
 * Returns 0, or -1 when it would not fit (dst is left NUL-terminated at its
 * old length). */
int stall__lx_cat(char *dst, size_t cap, size_t *len, const char *s);

/* Appends v in decimal. Returns 0 or -1 (no room). */
int stall__lx_catu(char *dst, size_t cap, size_t *len, uint64_t v);

/* Builds "a/b" into dst (one '/' between, none added when b is empty or a is
 * NULL/empty). Returns 0, or -1 (too long; errno = ENAMETOOLONG). */
int stall__lx_join(char *dst, size_t cap, const char *a, const char *b);

/* Reads a kept-open file into *buf (heap, capacity *cap), doubling the
 * buffer while the file fills it, up to max bytes. Returns the length or -1
 * (file unreadable or closed). The buffer stays owned by the caller. */
long stall__lx_read_grow(stall_kfile_t *f, char **buf, size_t *cap, size_t max);

/* Opens root/rel, reads it once into buf (NUL-terminated, < cap) and closes
 * it: for files read rarely (smaps_rollup, children). Returns the length or
 * -1 (errno kept). */
long stall__lx_read_once(const char *root, const char *rel, char *buf, size_t cap);

/* A CPU list ("0-3,8,10-11"): *count = number of CPUs named. Returns 0, or
 * -1 for anything else (ranges backwards, numbers >= STALL__LX_MAX_CPUS). */
int stall__parse_cpulist(const char *buf, size_t len, uint32_t *count);

/* /proc/<pid>/status: the CPUs of "Cpus_allowed_list:". Returns 0 or -1. */
int stall__parse_cpus_allowed(const char *buf, size_t len, uint32_t *count);

/* /proc/cpuinfo: the mean of every "cpu MHz" line. Returns 0, or -1 when
 * there is none (ARM kernels and some VMs do not print it). */
int stall__parse_cpuinfo_mhz(const char *buf, size_t len, double *mhz);

/* /proc/stat: the number of "cpuN" lines (the online CPUs). Returns the
 * count (0 when none) or -1 for a NULL buffer. */
int stall__parse_stat_online(const char *buf, size_t len);

/* /proc/<pid>/stat, as stall__parse_pid_stat, plus the cumulative minor and
 * major page faults of the process (fields 10 and 12; all its threads, live
 * and gone, not its children). minflt and majflt may be NULL. Returns 0 or -1. */
int stall__parse_pid_stat_x(const char *buf, size_t len, stall_pid_stat_t *out, uint64_t *minflt, uint64_t *majflt);

/* /proc/<pid>/task/<tid>/stat: the state letter after the LAST ')' (comm may
 * hold spaces and parentheses). Only the text up to the state is needed, so
 * a read cut after it parses. Returns 0, or -1. */
int stall__parse_task_state(const char *buf, size_t len, char *state);

/* What a sleeping thread waits for, from its /proc/<pid>/task/<tid>/wchan
 * (a kernel symbol, maybe with a ".constprop.0"-like suffix; "0" when the
 * thread runs or the symbol is hidden). */
enum {
    STALL__WCHAN_OTHER = 0, /* futex, pipe, unix socket, poll, "0"... */
    STALL__WCHAN_NET,       /* a wait of an inet socket (sk_wait_data, inet_csk_accept...) */
    STALL__WCHAN_NET_MAYBE, /* wait_woken: tcp receive on 6.x kernels, but also ttys, inotify */
    STALL__WCHAN_SLEEP      /* nanosleep */
};
int stall__classify_wchan(const char *buf, size_t len);

/* /proc/<pid>/task/<tid>/syscall: "nr 0xarg0 ..." of a thread blocked in a
 * system call. Returns 0, or -1 for "running", "-1 ..." (not in a system
 * call) and anything else. nr and arg0 may be NULL. */
int stall__parse_task_syscall(const char *buf, size_t len, long *nr, uint64_t *arg0);

#endif
