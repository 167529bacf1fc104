/*
 * collector.h - the interface between the sampler (src/engine/sampler.c)
 * and the collectors that read the machine: the system collector (/proc and
 * /sys files, cgroup limits), the process-tree collector, and NVML.
 *
 * Collectors keep the files they read open and re-read them with pread at
 * each sample, parse them with small hand-written scanners (no stdio on the
 * sampling path), and fill the public sample structs of stall.h, setting a
 * validity bit for every field they could read. They keep what they need of
 * the previous sample to turn counters into rates. Platform code lives under
 * src/collect/<platform>/; the /proc and /sys roots are parameters so tests
 * run the same code on recorded fixture trees.
 *
 * The parsers are pure functions of a buffer, exposed here so that unit
 * tests and fuzz targets call them directly.
 */
#ifndef STALL_COLLECTOR_H
#define STALL_COLLECTOR_H

#include <stddef.h>
#include <stdint.h>

#include "stall.h"

/* ------------------------------------------------------------ kept-open files */

typedef struct stall_kfile_t {
    int fd; /* -1 when closed or never opened */
} stall_kfile_t;

/* Opens root/rel read-only (O_CLOEXEC). Returns 0, or -1 (errno kept). */
int stall__kf_open(stall_kfile_t *f, const char *root, const char *rel);

/* Re-reads the whole file from offset 0 into buf (NUL-terminated, at most
 * cap-1 bytes). Returns the length, or -1 (the file vanished: ESRCH/ENOENT,
 * or is unreadable). */
long stall__kf_read(stall_kfile_t *f, char *buf, size_t cap);

void stall__kf_close(stall_kfile_t *f);

/* ------------------------------------------------------------------ parsers */
/* Each parses a NUL-terminated buffer; returns 0, or -1 when the text is not
 * what the file should hold. They never read past buf[len]. */

typedef struct stall_cpu_times_t {
    uint64_t user, nice, system, idle, iowait, irq, softirq, steal; /* clock ticks */
} stall_cpu_times_t;

/* /proc/stat: the "cpu" line into *total, "cpuN" lines into cores[N] (up to
 * max_cores; *ncores = highest N + 1 seen, which may exceed max_cores: only
 * cores[N] with N < max_cores are written, and entries missing from the text
 * are zeroed), ctxt, procs_running/blocked. */
int stall__parse_stat(const char *buf, size_t len, stall_cpu_times_t *total, stall_cpu_times_t *cores,
                      uint32_t max_cores, uint32_t *ncores, uint64_t *ctxt, uint32_t *procs_running,
                      uint32_t *procs_blocked);

int stall__parse_loadavg(const char *buf, size_t len, double *l1, double *l5, double *l15);

typedef struct stall_meminfo_t {
    uint64_t total, available, cached, buffers, swap_total, swap_free; /* bytes */
    uint32_t found; /* bit i set when field i (in the order above) was present */
} stall_meminfo_t;
int stall__parse_meminfo(const char *buf, size_t len, stall_meminfo_t *out);

typedef struct stall_psi_t {
    double some_avg10, full_avg10;
    uint64_t some_total_us, full_total_us;
    int has_some, has_full;
} stall_psi_t;
/* /proc/pressure/{cpu,io,memory} and cgroup v2 *.pressure */
int stall__parse_psi(const char *buf, size_t len, stall_psi_t *out);

typedef struct stall_disk_t {
    char name[32];
    uint64_t read_sectors, write_sectors; /* 512-byte units */
    uint64_t io_ticks_ms;                 /* time with I/O in flight */
} stall_disk_t;
/* /proc/diskstats: every line, up to cap; returns the count or -1. */
int stall__parse_diskstats(const char *buf, size_t len, stall_disk_t *out, size_t cap);

typedef struct stall_iface_t {
    char name[32];
    uint64_t rx_bytes, tx_bytes;
} stall_iface_t;
/* /proc/net/dev: every interface, up to cap; returns the count or -1. */
int stall__parse_netdev(const char *buf, size_t len, stall_iface_t *out, size_t cap);

typedef struct stall_pid_stat_t {
    char comm[32]; /* may hold spaces and parentheses */
    char state;
    uint32_t ppid;
    uint64_t utime, stime; /* clock ticks */
    uint32_t threads;
    uint64_t starttime; /* clock ticks after boot */
    uint64_t rss_pages;
} stall_pid_stat_t;
int stall__parse_pid_stat(const char *buf, size_t len, stall_pid_stat_t *out);

typedef struct stall_pid_io_t {
    uint64_t rchar, wchar, read_bytes, write_bytes;
} stall_pid_io_t;
int stall__parse_pid_io(const char *buf, size_t len, stall_pid_io_t *out);

/* /proc/<pid>/status: voluntary_ctxt_switches, nonvoluntary_ctxt_switches */
int stall__parse_pid_status(const char *buf, size_t len, uint64_t *vol, uint64_t *invol);

/* /proc/<pid>/schedstat: "run_ns wait_ns timeslices" */
int stall__parse_schedstat(const char *buf, size_t len, uint64_t *run_ns, uint64_t *wait_ns);

/* /proc/<pid>/smaps_rollup: the Pss: line, in bytes */
int stall__parse_smaps_rollup(const char *buf, size_t len, uint64_t *pss_bytes);

/* /proc/<pid>/task/<tid>/children: space-separated pids; returns the count
 * (up to cap) or -1. */
int stall__parse_pid_list(const char *buf, size_t len, uint32_t *out, size_t cap);

typedef struct stall_cgroup_path_t {
    int version;      /* 2 when a "0::" line exists and no v1 cpu/memory line, else 1; 0 none */
    char v2[256];     /* path of the unified hierarchy ("0::<path>") */
    char cpu[256];    /* v1 path of the cpu controller */
    char memory[256]; /* v1 path of the memory controller */
} stall_cgroup_path_t;
/* /proc/<pid>/cgroup */
int stall__parse_cgroup(const char *buf, size_t len, stall_cgroup_path_t *out);

/* cgroup v2 cpu.max: "max 100000" (quota -1) or "50000 100000" */
int stall__parse_cpu_max(const char *buf, size_t len, int64_t *quota_us, uint64_t *period_us);

/* A single number, or "max" (-> UINT64_MAX): memory.max, memory.current,
 * cpu.cfs_quota_us ("-1" -> UINT64_MAX too), memory.limit_in_bytes... */
int stall__parse_u64_or_max(const char *buf, size_t len, uint64_t *out);

/* "key value" lines (cpu.stat, memory.stat): the value of key, or -1. */
int stall__parse_keyed(const char *buf, size_t len, const char *key, uint64_t *out);

/* ------------------------------------------------------------ system collector */

typedef struct stall_sys_collector_t stall_sys_collector_t;

/* Opens the system collector for the tree rooted at root_pid (its cgroup and
 * CPU affinity give the limits). NULL only when out of memory; files that do
 * not exist simply leave their fields unknown. */
stall_sys_collector_t *stall__sys_open(const char *proc_root, const char *sys_root, uint32_t root_pid);

/* Takes one system sample at time now_ns into *out (all fields, validity
 * bits), and the per-core busy shares into cores[0..*ncores) (*ncores is 0
 * until shares are known, i.e. until STALL_SYS_RATES). Returns 0. */
int stall__sys_sample(stall_sys_collector_t *c, uint64_t now_ns, stall_sys_t *out, double *cores,
                      uint32_t max_cores, uint32_t *ncores);

/* Copies up to cap devices of the last sample (whole disks, then network
 * interfaces but loopback) into out; returns how many there are. */
size_t stall__sys_devices(const stall_sys_collector_t *c, stall_device_t *out, size_t cap);

void stall__sys_close(stall_sys_collector_t *c);

/* ------------------------------------------------------------- tree collector */

typedef struct stall_tree_collector_t stall_tree_collector_t;

stall_tree_collector_t *stall__tree_open(const char *proc_root, uint32_t root_pid);

/* Finds the tree again (root and every descendant), samples each process
 * into out[0..cap) root first, and returns the number of processes in the
 * tree (may exceed cap). With pss_due, also reads smaps_rollup. Processes
 * that vanish between listing and reading are left out; a reused pid is a
 * new process (its starttime differs). */
size_t stall__tree_sample(stall_tree_collector_t *c, uint64_t now_ns, int pss_due, stall_proc_sample_t *out,
                          size_t cap);

void stall__tree_close(stall_tree_collector_t *c);

/* --------------------------------------------------------------------- NVML */

typedef struct stall_nvml_t stall_nvml_t;

/* Loads NVML with dlopen (STALL_NVML_LIBRARY names the library, for tests;
 * else libnvidia-ml.so.1, then libnvidia-ml.so) and initialises it. Returns
 * NULL when there is no library or no device: "no GPU", not an error. */
stall_nvml_t *stall__nvml_open(void);

/* Samples every device into out[0..cap) (out may be NULL) and returns the
 * number of devices (0 for n == NULL), which may exceed cap. tree_mem_bytes
 * sums the GPU memory of the compute processes whose pid is in
 * pids[0..npids); STALL_GPU_TREE is set when the process query succeeded and
 * none of those processes reported "not available". When per_pid_mem is not
 * NULL, per_pid_mem[i] += the memory of pids[i] on every device (the caller
 * zeroes it; unknown amounts are not added). When per_pid_known is not NULL
 * (the caller sets every entry to 1), per_pid_known[i] is cleared when the
 * memory of pids[i] is unknown on some device (query failed or "not
 * available"). NVML reports host pids: in a container with its own pid
 * namespace the tree's pids do not match. One sampling thread per collector;
 * allocates nothing once the process buffer fits. */
size_t stall__nvml_sample(stall_nvml_t *n, stall_gpu_t *out, size_t cap, const uint32_t *pids, size_t npids,
                          uint64_t *per_pid_mem, uint8_t *per_pid_known);

void stall__nvml_close(stall_nvml_t *n);

#endif
