/*
 * stall.h - the public C API of stall, a profiler and bottleneck detector for
 * PyTorch-style training loops.
 *
 * This is the only header a user includes. It offers:
 *   - sessions: a named stretch of a run that spans are recorded into;
 *   - spans: begin(kind, name) / end() pairs, nested, per thread, recorded into
 *     a lock-free ring in shared memory at a cost of a few tens of nanoseconds;
 *   - a reader that drains the rings of every process of a session, from any
 *     process, including processes that exited or crashed;
 *   - structured (JSON lines) logging through a sink set by the host.
 *
 * Conventions: functions return 0 on success and -1 on failure (or NULL), and
 * then stall_last_error() says why. Times are integer nanoseconds of one
 * monotonic clock (CLOCK_MONOTONIC). The library never prints, never exits and
 * never aborts; the span hot path never blocks, allocates, locks or logs.
 */
#ifndef STALL_H
#define STALL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define STALL_VERSION_MAJOR 0
#define STALL_VERSION_MINOR 1
#define STALL_VERSION_PATCH 0
#define STALL_VERSION_STRING "0.1.0"
/* One comparable number: 10000*major + 100*minor + patch. */
#define STALL_VERSION_NUMBER \
    (STALL_VERSION_MAJOR * 10000 + STALL_VERSION_MINOR * 100 + STALL_VERSION_PATCH)

/* Returns STALL_VERSION_STRING of the library actually linked (may differ
 * from the header's when linking dynamically). */
const char *stall_version(void);

/* ---------------------------------------------------------------- errors */

/* Returns the message of the last failure of a stall call made by this
 * thread ("" when none). The string belongs to the library and stays valid
 * until the next failing stall call of the same thread. */
const char *stall_last_error(void);

/* ----------------------------------------------------------------- clock */

/* Returns the current time in nanoseconds of CLOCK_MONOTONIC, the one clock
 * of every record, sample and report. */
uint64_t stall_now_ns(void);

/* ----------------------------------------------------------- span kinds */

/* What a span is doing. Kinds are the categories the analysis reasons about;
 * the name says which operation it is. Values are stored in records: never
 * renumber, only append. */
typedef enum stall_kind_t {
    STALL_KIND_OTHER = 0,
    STALL_KIND_DATA_LOADING = 1,  /* producing a batch: sampler, fetch, dataset */
    STALL_KIND_PREPROCESSING = 2, /* decode, augment, transform, collate */
    STALL_KIND_CPU_COMPUTE = 3,   /* model work on the CPU */
    STALL_KIND_GPU_COMPUTE = 4,   /* model work on an accelerator */
    STALL_KIND_TRANSFER = 5,      /* host-to-device / device-to-host copies, pinning */
    STALL_KIND_IO = 6,            /* file and network reads and writes */
    STALL_KIND_DATA_WAIT = 7,     /* the consumer blocked waiting for the next batch */
    STALL_KIND_STEP = 8,          /* one whole training step */
    STALL_KIND_SESSION = 9,       /* session begin/end markers (instant records) */
    STALL_KIND_COUNT_ = 10
} stall_kind_t;

/* OR this into the kind given to stall_begin_id / stall_begin to record that
 * one span's thread CPU time even when thread_cpu_time is off (two more
 * clock reads, ~400 ns here): for coarse spans such as a batch fetch whose
 * on-CPU share matters. The recorded kind has the bit cleared. */
#define STALL_WITH_CPU 0x80

/* Returns a short lower-case name for a kind ("data_loading", ...), or
 * "unknown" for a value out of range. Static string. */
const char *stall_kind_name(int kind);

/* -------------------------------------------------------------- sessions */

/* Options of stall_session_start. Zero-initialise, then set what you need;
 * a zero field means "the default". */
typedef struct stall_options_t {
    /* Folder under which the session directory is created. Default: the
     * environment variable STALL_DIR, else /dev/shm, else $TMPDIR or /tmp. */
    const char *base_dir;
    /* Records per thread ring, a power of two, >= 64. Default 16384
     * (48 bytes each), or STALL_RING_RECORDS from the environment. */
    uint32_t ring_records;
    /* Thread rings per process, 1..1024. Default 64; threads beyond that
     * record nothing and are counted as dropped. */
    uint32_t max_threads;
    /* 1: also record each span's thread CPU time (one more syscall per
     * begin and per end, ~400 ns here). Default 0, or STALL_THREAD_CPU=1.
     * Once switched on by any session it stays on for every thread of the
     * process (the rings are per process, not per session). */
    int thread_cpu_time;
    /* 1: leave the session directory in place when the process that created
     * it exits, so a reader (`stall dump DIR`) can read it later. Default 0:
     * the creating process removes it at exit (a reader has drained it).
     * Like thread_cpu_time, once set by any session it holds for the process. */
    int keep;
    /* 1: do not export STALL_SESSION_DIR to the environment. Default 0:
     * the variable is set so that child processes (spawned DataLoader
     * workers, subprocesses) record into the same session. */
    int no_export;
} stall_options_t;

typedef struct stall_session_t stall_session_t;

/* Starts a named session and returns its handle, or NULL on failure (bad
 * options, no writable folder). If this process already records into a
 * session directory (one it created, or STALL_SESSION_DIR set by a parent or
 * by `stall run`), the new session joins it and only marks its own start and
 * end; otherwise a new directory (mode 0700) is created. `opts` may be NULL.
 * Several sessions may be open at once; they nest or overlap freely. Options
 * that shape the transport (base_dir, ring_records, max_threads, no_export)
 * apply only when this call creates the directory. The handle belongs to the
 * caller until stall_session_stop. */
stall_session_t *stall_session_start(const char *name, const stall_options_t *opts);

/* Stops a session: records its end marker and frees the handle. The process
 * keeps recording into the session directory (other sessions may be open,
 * and a reader may still be draining); the directory lives until the process
 * that created it exits. Returns 0, or -1 for NULL. */
int stall_session_stop(stall_session_t *s);

/* Returns the session directory of a session (owned by the handle), or of
 * the process when s is NULL (NULL when the process records nowhere). */
const char *stall_session_dir(const stall_session_t *s);

/* ------------------------------------------------------------------ spans */

/* A name id: an interned operation name, valid in this process and in its
 * forked children. 0 means "no name". */
typedef uint32_t stall_name_t;

/* Interns `name` (truncated to 87 bytes) and returns its id, or 0 when the
 * name table is full (4096 names per process) or name is NULL/empty. Lock
 * free; safe from any thread. Costs a hash and a probe: call it once and keep
 * the id for hot loops (see STALL_SPAN_BEGIN). */
stall_name_t stall_intern(const char *name);

/* Opens a span of `kind` named by id on the calling thread. Spans nest: each
 * stall_end() closes the innermost open span of the thread. When the process
 * records into no session, or the thread has no ring, this does nothing.
 * Never blocks, allocates, locks, logs or fails visibly: losses are counted
 * (see stall_reader_proc_t.dropped). */
void stall_begin_id(int kind, stall_name_t name);

/* Same as stall_begin_id(kind, stall_intern(name)). */
void stall_begin(int kind, const char *name);

/* Closes the innermost open span of the calling thread and records it with
 * `arg` (a number the caller attaches: bytes copied, batch size...; 0 if
 * none). An end without an open span is ignored. */
void stall_end_arg(uint64_t arg);

/* Same as stall_end_arg(0). */
void stall_end(void);

/* Records a span that already happened on this thread: it began at start_ns
 * (stall_now_ns() taken earlier) and ends now, at the current nesting depth.
 * For intervals that do not open and close in one place (a training step
 * runs from one batch to the next) and must never disturb the open spans.
 * Spans recorded at the same depth since start_ns lie inside it in time (a
 * trace shows them nested) but are its siblings for the aggregator: its self
 * time is its whole duration. A start_ns in the future is clamped to now. */
void stall_complete(int kind, stall_name_t name, uint64_t start_ns, uint64_t arg);

/* Returns the number of spans open on the calling thread. */
uint32_t stall_depth(void);

/* Records an instant event (a point in time, no duration). */
void stall_instant(int kind, stall_name_t name, uint64_t arg);

/* Begin a span named by a string literal, interning it only once per call
 * site (the id is cached in a static variable). */
#define STALL_SPAN_BEGIN(kind, literal)                                    \
    do {                                                                   \
        static stall_name_t stall_id_cache_;                               \
        if (stall_id_cache_ == 0)                                          \
            stall_id_cache_ = stall_intern(literal);                       \
        stall_begin_id((kind), stall_id_cache_);                           \
    } while (0)

/* ---------------------------------------------------------------- records */

/* Flags of a record. */
#define STALL_REC_HAS_CPU 0x0001u       /* cpu_ns is valid */
#define STALL_REC_INSTANT 0x0002u       /* a point in time: end_ns == start_ns */
#define STALL_REC_TRUNCATED 0x0004u     /* span still open when its process died: end_ns = 0 */
#define STALL_REC_SESSION_BEGIN 0x0008u /* session marker: a session started */
#define STALL_REC_SESSION_END 0x0010u   /* session marker: a session stopped */
#define STALL_REC_OPEN 0x0020u          /* span still open in a live process: end_ns = 0 */

/* One recorded span, exactly as it sits in the ring (48 bytes). */
typedef struct stall_record_t {
    uint64_t start_ns; /* CLOCK_MONOTONIC at begin */
    uint64_t end_ns;   /* CLOCK_MONOTONIC at end (0 when TRUNCATED or OPEN) */
    uint64_t cpu_ns;   /* thread CPU time spent inside, if STALL_REC_HAS_CPU */
    uint64_t arg;      /* the caller's number (stall_end_arg) or session id */
    uint32_t pid;
    uint32_t tid;
    uint32_t name;  /* name id, per process: see stall_reader_name() */
    uint8_t kind;   /* stall_kind_t */
    uint8_t depth;  /* 0 for a top-level span */
    uint16_t flags; /* STALL_REC_* */
} stall_record_t;

/* ---------------------------------------------------------------- reader */

typedef struct stall_reader_t stall_reader_t;

/* What the reader knows of one process of the session. */
typedef struct stall_reader_proc_t {
    uint32_t index;          /* stable index of this process within the reader */
    uint32_t pid;
    uint32_t ppid;
    int alive;               /* 1 running, 0 exited or crashed */
    int closed;              /* 1 the process detached cleanly (normal exit) */
    uint64_t start_ns;       /* when it attached (CLOCK_MONOTONIC) */
    uint64_t dropped;        /* spans lost: full rings, no free thread ring, too deep */
    uint64_t records_read;   /* records this reader delivered so far */
    uint32_t threads;        /* thread rings in use */
    char comm[32];           /* process name at attach */
    char label[32];          /* role set by the process (e.g. "main", "worker 3"), or "" */
    uint64_t observer_lost;  /* observer only: records overwritten before it copied them */
} stall_reader_proc_t;

/* Opens a reader on a session directory. Returns NULL (and sets the error)
 * when the directory does not exist or is not a stall session. The reader
 * owns its mappings until stall_reader_close. One reader drains a session at
 * a time: a second stall_reader_open on the same directory fails. */
stall_reader_t *stall_reader_open(const char *dir);

/* Opens an observer on a session directory: a reader that may run beside the
 * primary one (stall_reader_open) and any number of other observers. It takes
 * no lock and writes nothing shared: it maps the files read-only, keeps its
 * own position in each thread ring, never frees ring space, never deletes a
 * file. Every other reader call works on it as on a primary, with these
 * differences. Records are copies, still valid only during the callback. It
 * starts each thread ring at the oldest record still there, so it also gets
 * records the primary already took, while their place is not reused. The
 * producers wait for the primary only: records an observer is too slow to
 * copy are overwritten, never delivered torn, and counted in
 * stall_reader_proc_t.observer_lost. A process whose file the primary
 * released (dead and drained) before the observer listed it is never seen;
 * a file it had mapped stays readable. Returns NULL (and sets the error) when
 * the directory does not exist or is not a stall session. */
stall_reader_t *stall_reader_open_observer(const char *dir);

/* Called by stall_reader_drain with a run of records of one process. The
 * records point into shared memory and are valid only during the call.
 * Return 0 to go on, non-zero to stop the drain early. */
typedef int (*stall_record_fn)(void *ctx, const stall_reader_proc_t *proc,
                               const stall_record_t *recs, size_t n);

/* Delivers every record written since the last drain, for every process of
 * the session (new processes are found at each call). For a process that died
 * without detaching, its spans that were still open are delivered once, with
 * STALL_REC_TRUNCATED. Returns the number of records delivered, or -1. */
ssize_t stall_reader_drain(stall_reader_t *r, stall_record_fn fn, void *ctx);

/* Delivers (without consuming) the spans currently open in live processes,
 * with STALL_REC_OPEN and end_ns = 0: what each thread is doing right now.
 * Returns the number delivered, or -1. */
ssize_t stall_reader_open_spans(stall_reader_t *r, stall_record_fn fn, void *ctx);

/* Returns the number of processes seen so far, and fills *out with the
 * state of process `index` (0..count-1) when out is not NULL and index is in
 * range. */
size_t stall_reader_proc(stall_reader_t *r, size_t index, stall_reader_proc_t *out);

/* Returns the name of id `name` in process `proc_index`, or "" when unknown.
 * The string is owned by the reader and valid until stall_reader_close. */
const char *stall_reader_name(stall_reader_t *r, uint32_t proc_index, uint32_t name);

/* Returns the name of the session (from its metadata), or "". */
const char *stall_reader_session_name(stall_reader_t *r);

/* Closes the reader. With remove = 1 the session directory is deleted too,
 * except by an observer, which ignores remove (it never deletes anything).
 * Returns 0, or -1 when removing failed. */
int stall_reader_close(stall_reader_t *r, int remove);

/* Sets this process's label (e.g. "main", "worker 3"), shown by readers. */
int stall_set_process_label(const char *label);

/* ------------------------------------------------------------- sampling */

/* What the machine and the profiled process tree are doing, sampled by one
 * thread at an interval. Every field has a validity bit: a field whose bit is
 * clear is unknown (unreadable file, old kernel, no GPU), never 0 by default.
 * Rates and shares are over the interval since the previous sample. */

/* Bits of stall_sys_t.valid */
#define STALL_SYS_CPU (1ull << 0)      /* ncpus, ctx_switches; the cpu_* shares also need STALL_SYS_RATES */
#define STALL_SYS_LOAD (1ull << 1)     /* load1/5/15, procs_running/blocked */
#define STALL_SYS_MEM (1ull << 2)      /* mem_* */
#define STALL_SYS_SWAP (1ull << 3)     /* swap_* */
#define STALL_SYS_PSI_CPU (1ull << 4)  /* psi_cpu_* (some; full when the kernel has it) */
#define STALL_SYS_PSI_IO (1ull << 5)   /* psi_io_* */
#define STALL_SYS_PSI_MEM (1ull << 6)  /* psi_mem_* */
#define STALL_SYS_DISK (1ull << 7)     /* disk_* */
#define STALL_SYS_NET (1ull << 8)      /* net_* */
#define STALL_SYS_FREQ (1ull << 9)     /* cpu_freq_mhz */
#define STALL_SYS_CG_CPU (1ull << 10)  /* cg_cpu_quota_us/period_us (quota -1 = no limit) */
#define STALL_SYS_CG_THROTTLE (1ull << 11) /* cg_nr_throttled, cg_throttled_ns; cg_throttled_share also needs STALL_SYS_RATES */
#define STALL_SYS_CG_MEM (1ull << 12)  /* cg_mem_limit_bytes (UINT64_MAX = no limit), cg_mem_usage_bytes */
#define STALL_SYS_RATES (1ull << 13)   /* the rates and shares: a previous sample existed and a clock tick elapsed */
#define STALL_SYS_PSI_CPU_FULL (1ull << 14) /* psi_cpu_full_* (kernels >= 5.13) */

typedef struct stall_sys_t {
    uint64_t t_ns;  /* CLOCK_MONOTONIC, as spans */
    uint64_t valid; /* STALL_SYS_* */
    /* CPU: shares of all online cores' time over the interval, 0..1 */
    double cpu_user;   /* user + nice */
    double cpu_system; /* system + irq + softirq */
    double cpu_iowait;
    double cpu_steal;
    double cpu_idle;
    uint32_t ncpus;      /* online CPUs */
    double usable_cores; /* min(ncpus, cgroup quota/period, CPU affinity of the root) */
    uint64_t ctx_switches; /* cumulative, system-wide */
    double ctx_switches_per_s;
    double load1, load5, load15;
    uint32_t procs_running, procs_blocked;
    /* memory, bytes */
    uint64_t mem_total_bytes, mem_available_bytes, mem_cached_bytes;
    uint64_t swap_total_bytes, swap_free_bytes;
    /* what this tree can still use: min(MemAvailable, cgroup limit - usage) */
    uint64_t mem_usable_available_bytes;
    /* pressure stall information: avg10 in percent, totals cumulative in us */
    double psi_cpu_some_avg10, psi_cpu_full_avg10;
    double psi_io_some_avg10, psi_io_full_avg10;
    double psi_mem_some_avg10, psi_mem_full_avg10;
    uint64_t psi_cpu_some_us, psi_cpu_full_us, psi_io_some_us, psi_io_full_us;
    uint64_t psi_mem_some_us, psi_mem_full_us;
    /* disks (whole devices, no partitions) and network (all but loopback):
     * cumulative bytes and per-second rates; disk_busy is the busiest
     * disk's share of the interval with I/O in flight, 0..1 */
    uint64_t disk_read_bytes, disk_write_bytes;
    double disk_read_bytes_per_s, disk_write_bytes_per_s, disk_busy;
    uint64_t net_rx_bytes, net_tx_bytes;
    double net_rx_bytes_per_s, net_tx_bytes_per_s;
    double cpu_freq_mhz; /* mean over online CPUs */
    /* container limits of the root process's cgroup */
    int cgroup_version; /* 1, 2, or 0 when unknown */
    int64_t cg_cpu_quota_us; /* -1: no limit */
    uint64_t cg_cpu_period_us;
    uint64_t cg_nr_throttled, cg_throttled_ns;
    double cg_throttled_share; /* share of the interval's periods that were throttled */
    uint64_t cg_mem_limit_bytes, cg_mem_usage_bytes;
} stall_sys_t;

/* Bits of stall_proc_sample_t.valid */
#define STALL_PROC_STAT (1ull << 0)  /* state, ppid, utime/stime, threads, rss, starttime */
#define STALL_PROC_IO (1ull << 1)    /* read/write bytes (/proc/<pid>/io; often unreadable) */
#define STALL_PROC_CTXT (1ull << 2)  /* voluntary/involuntary context switches (re-read every 5th sample) */
#define STALL_PROC_SCHED (1ull << 3) /* run-queue wait (schedstat of the main thread) */
#define STALL_PROC_PSS (1ull << 4)   /* pss_bytes (smaps_rollup: read for a new process, then at a lower
                                        rate; in between moved by the RSS change) */
#define STALL_PROC_GPU (1ull << 5)   /* gpu_mem_bytes */
#define STALL_PROC_RATES (1ull << 6) /* cpu_util and the rates: seen in a previous sample */
/* threads_*: the states of the process's threads (/proc/<pid>/task/<tid>/
 * stat, and wchan for sleeping threads), read every 2nd to 16th sample so
 * that they cost at most about 50 us a sample, the last counts standing in
 * between; unset when the task folder, a thread's stat or a sleeping
 * thread's wchan could not be read */
#define STALL_PROC_WAIT (1ull << 7)

typedef struct stall_proc_sample_t {
    uint32_t pid, ppid;
    uint64_t valid; /* STALL_PROC_* */
    uint32_t depth; /* 0 for the root of the tree */
    char state;     /* R, S, D, Z, ... */
    char comm[32];
    uint64_t starttime; /* clock ticks after boot: with pid, identifies the process */
    uint64_t utime_ns, stime_ns; /* cumulative */
    double cpu_util;             /* cores used over the interval (1.5 = 150%) */
    uint32_t threads;
    uint64_t rss_bytes, pss_bytes;
    uint64_t read_bytes, write_bytes; /* storage I/O, cumulative */
    double read_bytes_per_s, write_bytes_per_s;
    uint64_t vol_ctx_switches, invol_ctx_switches;
    uint64_t run_ns, runq_wait_ns; /* schedstat, cumulative */
    double runq_wait_share;        /* waiting-to-run time per interval, in cores */
    uint64_t gpu_mem_bytes;
    /* page faults, cumulative (STALL_PROC_STAT) and per second
     * (STALL_PROC_RATES): minor = a page mapped without I/O (fresh memory
     * zeroed, page cache), major = one read from storage or swap */
    uint64_t minflt, majflt;
    double minflt_per_s, majflt_per_s;
    double sys_util; /* cores spent in the kernel over the interval (stime alone; STALL_PROC_RATES) */
    /* threads by what they do now (STALL_PROC_WAIT); the thread that samples
     * is not counted in its own process. running: R; disk: D (uninterruptible,
     * storage I/O almost always); net: sleeping in a wait of an inet socket
     * (tcp receive, accept, send, connect; datagram, unix sockets and pipes are not
     * counted; nor are waits in poll/epoll); sleep: in nanosleep */
    uint32_t threads_running, threads_disk, threads_net, threads_sleep;
} stall_proc_sample_t;

/* Bits of stall_gpu_t.valid */
#define STALL_GPU_UTIL (1ull << 0)  /* util_sm_pct, util_mem_pct */
#define STALL_GPU_MEM (1ull << 1)   /* mem_used_bytes, mem_total_bytes */
#define STALL_GPU_POWER (1ull << 2) /* power_mw */
#define STALL_GPU_TEMP (1ull << 3)  /* temp_c */
#define STALL_GPU_CLOCK (1ull << 4) /* clock_sm_mhz, clock_mem_mhz */
#define STALL_GPU_PCIE (1ull << 5)  /* pcie_rx/tx_bytes_per_s */
#define STALL_GPU_TREE (1ull << 6)  /* tree_mem_bytes: memory of the tree's processes */

typedef struct stall_gpu_t {
    uint32_t index;
    uint64_t valid; /* STALL_GPU_* */
    char name[64];
    char uuid[80];
    double util_sm_pct, util_mem_pct;
    uint64_t mem_used_bytes, mem_total_bytes;
    double power_mw;
    double temp_c;
    double clock_sm_mhz, clock_mem_mhz;
    double pcie_rx_bytes_per_s, pcie_tx_bytes_per_s;
    uint64_t tree_mem_bytes;
} stall_gpu_t;

/* Bits of stall_device_t.valid */
#define STALL_DEV_RATES (1ull << 0) /* the per-second rates (and busy, for a disk): seen before */

/* One whole disk (no partitions, no stacked dm/md devices) or network
 * interface (all but loopback) of the latest sample. */
typedef struct stall_device_t {
    char name[32];
    uint32_t is_net;    /* 0: a disk, 1: a network interface */
    uint64_t valid;     /* STALL_DEV_* */
    uint64_t read_bytes, write_bytes; /* disk: read / written; interface: received / sent (cumulative) */
    double read_bytes_per_s, write_bytes_per_s;
    double busy;        /* disk: share of the interval with I/O in flight, 0..1 (interface: 0) */
} stall_device_t;

/* The metrics kept as time series (one value per sample; NaN = unknown). */
typedef enum stall_metric_t {
    STALL_M_CPU_USER = 0,     /* share 0..1 */
    STALL_M_CPU_SYSTEM,
    STALL_M_CPU_IOWAIT,
    STALL_M_CPU_STEAL,
    STALL_M_LOAD1,
    STALL_M_MEM_AVAILABLE,    /* bytes the tree can still use */
    STALL_M_MEM_USED,         /* total - available, bytes */
    STALL_M_SWAP_USED,        /* bytes */
    STALL_M_PSI_CPU_SOME,     /* avg10, % */
    STALL_M_PSI_IO_SOME,
    STALL_M_PSI_IO_FULL,
    STALL_M_PSI_MEM_SOME,
    STALL_M_PSI_MEM_FULL,
    STALL_M_DISK_READ,        /* bytes/s */
    STALL_M_DISK_WRITE,
    STALL_M_DISK_BUSY,        /* 0..1 */
    STALL_M_NET_RX,           /* bytes/s */
    STALL_M_NET_TX,
    STALL_M_CG_THROTTLED,     /* 0..1 */
    STALL_M_TREE_PROCS,       /* processes in the tree */
    STALL_M_MAIN_CPU,         /* cores used by the root process */
    STALL_M_WORKERS_CPU,      /* cores used by all its descendants */
    STALL_M_MAIN_RSS,         /* bytes */
    STALL_M_WORKERS_RSS,
    STALL_M_TREE_READ,        /* storage bytes/s of the tree */
    STALL_M_TREE_WRITE,
    STALL_M_TREE_RUNQ_WAIT,   /* cores' worth of waiting to run */
    STALL_M_GPU_UTIL,         /* mean SM utilisation over GPUs, % */
    STALL_M_GPU_MEM_USED,     /* bytes, summed over GPUs */
    STALL_M_GPU_POWER,        /* mW, summed */
    STALL_M_GPU_PCIE_RX,      /* bytes/s, summed */
    STALL_M_GPU_PCIE_TX,
    STALL_M_MAIN_SYS_CPU,     /* cores the root process spends in the kernel */
    STALL_M_TREE_FAULTS,      /* minor + major page faults per second, whole tree */
    STALL_M_TREE_MAJFLT,      /* major page faults per second, whole tree */
    STALL_M_TREE_WAIT_DISK,   /* threads of the tree in D state (last read, STALL_PROC_WAIT) */
    STALL_M_TREE_WAIT_NET,    /* threads of the tree blocked on an inet socket */
    STALL_M_TREE_WAIT_SLEEP,  /* threads of the tree in nanosleep */
    STALL_M_WORKERS_PSS,      /* bytes: proportional set size of the root's descendants (read at the PSS rate) */
    STALL_M_COUNT_
} stall_metric_t;

/* Returns the metric's name with its unit ("cpu_user_share", "mem_available_bytes"...). */
const char *stall_metric_name(int metric);

/* One point of a series: the values of `n` raw samples folded together. */
typedef struct stall_point_t {
    uint64_t t_ns;    /* start of the bucket (the sample's time for raw points) */
    uint64_t span_ns; /* time the bucket covers (0 for a raw sample) */
    double min, avg, max; /* NaN when all folded values were unknown */
    uint32_t n;       /* samples folded (1 for a raw sample, 0 if all unknown) */
} stall_point_t;

typedef struct stall_sampler_t stall_sampler_t;

typedef struct stall_sampler_options_t {
    uint64_t interval_ns; /* default 100 ms; below 1 ms is an error */
    uint32_t max_samples; /* per level of the series; default 1200; 16..1000000 */
    uint32_t root_pid;    /* the tree to follow; default: the calling process */
    const char *proc_root; /* default "/proc" (tests point it at fixture trees) */
    const char *sys_root;  /* default "/sys" */
    int no_gpu;            /* 1: do not load NVML */
    uint64_t pss_interval_ns; /* smaps_rollup period; default 10 x interval; 0 = default. Reads
                                 cost ~3 ms per torch process (thousands of mappings): they may
                                 cost 0.25 s of CPU plus 0.1% of a core over the time sampled,
                                 then wait for that budget (between reads, each process's PSS
                                 moves with its RSS) */
} stall_sampler_options_t;

/* Makes a sampler (nothing is read yet). NULL with an error naming the field
 * for bad options. Owned by the caller; free with stall_sampler_free. */
stall_sampler_t *stall_sampler_new(const stall_sampler_options_t *opts);

/* Takes one sample now, on the calling thread. Returns 0 or -1. */
int stall_sampler_sample(stall_sampler_t *s);

/* Starts / stops the sampling thread. start: 0, or -1 (already running,
 * thread creation failed). stop waits for the thread; 0 if it was not running. */
int stall_sampler_start(stall_sampler_t *s);
int stall_sampler_stop(stall_sampler_t *s);

/* Copies the latest system sample into *out. Returns 0, or -1 when no sample
 * was taken yet. */
int stall_sampler_latest(stall_sampler_t *s, stall_sys_t *out);

/* Copies up to cap processes of the latest tree (root first) into out;
 * returns how many the tree has (which may exceed cap). */
size_t stall_sampler_procs(stall_sampler_t *s, stall_proc_sample_t *out, size_t cap);

/* Copies up to cap GPUs of the latest sample; returns how many there are
 * (0: no GPU, or no NVML). */
size_t stall_sampler_gpus(stall_sampler_t *s, stall_gpu_t *out, size_t cap);

/* Copies up to cap disks and network interfaces of the latest sample (disks
 * first); returns how many there are. */
size_t stall_sampler_devices(stall_sampler_t *s, stall_device_t *out, size_t cap);

/* Copies the per-core busy shares (0..1) of the latest sample; returns the
 * number of cores. */
size_t stall_sampler_cores(stall_sampler_t *s, double *out, size_t cap);

/* Copies the series of a metric, oldest first: coarse buckets for old
 * stretches, raw samples for the recent ones. Returns the number of points
 * (which may exceed cap: only the newest cap are copied), or -1 for a bad
 * metric. */
ssize_t stall_sampler_series(stall_sampler_t *s, int metric, stall_point_t *out, size_t cap);

/* Number of samples taken, and the bytes the series hold (fixed at creation). */
uint64_t stall_sampler_count(stall_sampler_t *s);
size_t stall_sampler_memory_bytes(const stall_sampler_t *s);

/* Stops the thread if running and frees everything. In a child forked from
 * the process that made it, it does nothing (the thread is the parent's, and
 * its locks may be held there); start fails there, stop returns 0. */
void stall_sampler_free(stall_sampler_t *s);

/* ----------------------------------------------------------- aggregation */

/* Turns records into per-operation statistics, per named session: count,
 * inclusive and self time, min, max, percentiles (a log-linear histogram,
 * under 1% relative error), thread CPU time. A session is a time range: a
 * record belongs to every session open over its whole span, and to session 0,
 * the whole run. Thread-safe: one thread may drain into it while others read. */

typedef struct stall_agg_t stall_agg_t;

typedef struct stall_op_stats_t {
    char name[88];
    int kind;             /* stall_kind_t */
    uint64_t count;
    uint64_t total_ns;    /* inclusive */
    uint64_t self_ns;     /* minus the time of the spans nested in it */
    uint64_t min_ns, max_ns;
    uint64_t p50_ns, p95_ns, p99_ns;
    uint64_t cpu_ns;      /* thread CPU time, when cpu_count > 0 */
    uint64_t cpu_count;   /* spans that carried CPU time */
    uint64_t arg_sum;     /* sum of the spans' args (bytes, items...) */
    uint64_t truncated;   /* spans cut short by a crash (not in count) */
    uint32_t processes;   /* distinct processes that recorded it */
    uint64_t first_ns, last_ns; /* first start, last end */
} stall_op_stats_t;

stall_agg_t *stall_agg_new(void);
void stall_agg_free(stall_agg_t *a);

/* Opens session `id` (> 0) at t_ns; a second begin of an open id is an error. */
int stall_agg_session_begin(stall_agg_t *a, uint64_t id, const char *name, uint64_t t_ns);
/* Closes session `id` at t_ns. */
int stall_agg_session_end(stall_agg_t *a, uint64_t id, uint64_t t_ns);

/* Adds records of one process (names resolved through the reader). Records of
 * a thread must come in ring order (children before their parent). */
int stall_agg_add(stall_agg_t *a, stall_reader_t *r, const stall_reader_proc_t *proc,
                  const stall_record_t *recs, size_t n);

/* Drains the reader into the aggregator. Returns records taken, or -1. */
ssize_t stall_agg_drain(stall_agg_t *a, stall_reader_t *r);

/* Copies the operations of session id (0: the whole run) into out, largest
 * total first; returns how many there are (may exceed cap), or -1 for an
 * unknown session. */
ssize_t stall_agg_ops(stall_agg_t *a, uint64_t id, stall_op_stats_t *out, size_t cap);

/* Wall time of a session: end (or now, if open) - begin. 0 for unknown. */
uint64_t stall_agg_session_wall_ns(stall_agg_t *a, uint64_t id);

/* Time of a session covered by spans of each kind, merged per thread (nested
 * spans count once); out has STALL_KIND_COUNT_ entries. Returns 0 or -1. */
int stall_agg_kind_time(stall_agg_t *a, uint64_t id, uint64_t *out_ns);

/* ---------------------------------------------------------------- engine */

/* The engine of library mode: a thread in the profiled process that drains
 * the session's rings into an aggregator and runs a sampler. */

typedef struct stall_engine_t stall_engine_t;

/* Makes an engine reading session directory dir; with sampler options (may
 * be NULL for the defaults) a sampler follows this process's tree; with
 * no_sampler = 1 there is none. drain_interval_ns: default 100 ms. */
stall_engine_t *stall_engine_new(const char *dir, const stall_sampler_options_t *sampler_opts,
                                 int no_sampler, uint64_t drain_interval_ns);
/* Same as stall_engine_new, but the engine reads through an observer
 * (stall_reader_open_observer): it works while another reader (the primary,
 * e.g. `stall run`) drains the session, and stall_engine_free(e, 1) leaves
 * the directory in place. Records the observer was too slow for are counted
 * in its processes' observer_lost (stall_engine_reader). */
stall_engine_t *stall_engine_new_observer(const char *dir, const stall_sampler_options_t *sampler_opts,
                                          int no_sampler, uint64_t drain_interval_ns);
int stall_engine_start(stall_engine_t *e);
int stall_engine_stop(stall_engine_t *e);
/* Drains the rings now on the calling thread. Returns records taken, or -1. */
ssize_t stall_engine_drain(stall_engine_t *e);
stall_agg_t *stall_engine_agg(stall_engine_t *e);
stall_sampler_t *stall_engine_sampler(stall_engine_t *e); /* NULL with no sampler */
/* The engine's reader (names, processes), owned by the engine. Use it only
 * while no drain runs (the engine stopped), or from the tap. */
stall_reader_t *stall_engine_reader(stall_engine_t *e);
/* Sets a function that also receives every record the engine drains, after
 * the aggregator took it, on the draining thread (its return value is
 * ignored: it cannot stop a drain). For writers that keep records (a trace
 * spool). fn NULL removes it. Returns 0, or -1 for a NULL engine. */
int stall_engine_set_tap(stall_engine_t *e, stall_record_fn fn, void *ctx);
/* Stops, drains one last time, frees; remove = 1 deletes the directory
 * (never for an observer engine). Fork: in a child forked from the process
 * that made the engine, free does nothing (the threads, the records and the
 * directory are the parent's), stop returns 0, start and drain fail. */
void stall_engine_free(stall_engine_t *e, int remove);

/* ------------------------------------------------------------ diagnosis */

/* What an engine concludes about a run or a session: the training loop's
 * breakdown, per-DataLoader figures and findings (a BottleneckType name,
 * a severity = the share of wall time the cause costs, a one-line summary,
 * the evidence numbers and suggestions with an expected speedup). Built by
 * a table of detectors; stall_engine_add_detector adds your own to it. */

typedef struct stall_diagnosis_t stall_diagnosis_t;
typedef struct stall_finding_t stall_finding_t;

/* The thresholds of the seeds' configs. A field <= 0 takes its default. */
typedef struct stall_thresholds_t {
    double bottleneck; /* data-wait share of the loop (or an operation's share of a session)
                          from which it is a bottleneck (0.05) */
    double memory;     /* used share of the memory the run may use: MEMORY_PRESSURE (0.9) */
    double gpu;        /* used share of GPU memory: MEMORY_PRESSURE on the GPU (0.9) */
    double cpu;        /* busy share of the usable cores (or of one core for a single
                          thread) from which a run without a loop is CPU_BOUND (0.9) */
    double gpu_busy;   /* GPU utilisation share from which the loop is GPU_BOUND (0.8) */
} stall_thresholds_t;

/* A detector: reads the diagnosis so far (stall_diagnosis_value) and, when
 * it finds its cause, fills f (stall_finding_set, then evidence and
 * suggestions) and returns 1; returns 0 for nothing found. It runs on the
 * thread that called stall_engine_diagnose, after stall's own detectors
 * (stall_diagnosis_finding_count/finding show what they found) and must not
 * call back into the engine. A negative return is counted as nothing found. */
typedef int (*stall_detector_fn)(const stall_diagnosis_t *d, stall_finding_t *f, void *ctx);

/* Adds a detector to the engine's table under a name (unique per engine, at
 * most 63 bytes, copied). At most 32 per engine. Returns 0, or -1 (bad or
 * duplicate name, NULL fn, table full). */
int stall_engine_add_detector(stall_engine_t *e, const char *name, stall_detector_fn fn, void *ctx);
/* Removes the detector of that name; returns 0, or -1 when there is none. */
int stall_engine_remove_detector(stall_engine_t *e, const char *name);

/* Drains, then diagnoses session id (0: everything the engine saw) from the
 * session's begin to its end (or now, while open) with the thresholds (NULL:
 * defaults). The caller owns the result (stall_diagnosis_free). NULL with
 * the error set for an unknown session or no memory. */
stall_diagnosis_t *stall_engine_diagnose(stall_engine_t *e, uint64_t id, const stall_thresholds_t *th);
void stall_diagnosis_free(stall_diagnosis_t *d);

/* The throughput model of the diagnosis and of the DataLoader tuner: a loop
 * that spends consumer_s of its own per batch, fed by producers (DataLoader
 * workers) that each take producer_s to make a batch, producer_cpu_frac of it
 * on CPU, with `cores` CPU cores left for them beside the loop. Receiving a
 * batch from a worker costs the loop handover_s more (unpickling, copying).
 * With 0 workers the loop makes its batches itself: consumer_s + producer_s.
 * With n workers: the slower of the loop (consumer_s + handover_s) and the
 * producers (producer_s over the parallelism the cores allow). */
typedef struct stall_loader_model_t {
    double consumer_s;
    double producer_s;
    double producer_cpu_frac; /* 0..1; NaN or <= 0: taken as 1 (all CPU) */
    double cores;
    double handover_s;
} stall_loader_model_t;

/* Seconds per batch the model predicts with `workers` producers (NaN for a
 * negative or NaN input). */
double stall_loader_model_batch_s(const stall_loader_model_t *m, double workers);

/* A measured value by name (NaN when unknown or not a name): data_wait_frac,
 * compute_frac, loop_s, wait_s, step_s, warmup_s, fetch_s, collate_s,
 * sampler_s, pin_s, h2d_s, h2d_pageable_s, backward_s, optimizer_s,
 * duration_s, batches, usable_cores, main_cpu_cores, workers_cpu_cores,
 * idle_cores, runq_wait_cores, iowait_cores, mem_used_frac_max,
 * psi_mem_some_max_pct, psi_io_some_max_pct, disk_busy_mean,
 * tree_io_bytes_per_s, gpu_util_mean_pct, gpu_mem_used_frac_max, loaders,
 * num_workers (of the loader the loop waited on most) ... The full list:
 * stall_diagnosis_value_name(i) for i = 0, 1, ... until NULL. */
double stall_diagnosis_value(const stall_diagnosis_t *d, const char *name);
const char *stall_diagnosis_value_name(int i);

/* Findings, strongest first (after stall_engine_diagnose returned; inside a
 * detector: those found so far). */
int stall_diagnosis_finding_count(const stall_diagnosis_t *d);
const stall_finding_t *stall_diagnosis_finding(const stall_diagnosis_t *d, int i); /* NULL out of range */
const char *stall_finding_type(const stall_finding_t *f);
double stall_finding_severity(const stall_finding_t *f);
const char *stall_finding_summary(const stall_finding_t *f);

/* For detectors: set the type (a BottleneckType name or your own, letters,
 * digits and '_', at most 39 bytes), the severity (clamped to 0..1) and the
 * summary (truncated to 319 bytes). Returns 0, or -1 for a bad type. */
int stall_finding_set(stall_finding_t *f, const char *type, double severity, const char *summary);
/* Adds an evidence number (at most 20 per finding; key at most 31 bytes). */
int stall_finding_evidence(stall_finding_t *f, const char *key, double value);
/* Adds a suggestion (at most 4): what to change, the expected speedup (NaN:
 * unknown) and why. */
int stall_finding_suggest(stall_finding_t *f, const char *action, double expected_speedup, const char *why);

/* The diagnosis as JSON, the same shapes as report.json's "bottlenecks"
 * (a finding of an added detector also has "detector": its name),
 * "breakdown" and "loaders": {"bottlenecks":[...],"breakdown":{...},
 * "loaders":[...]}. malloc'd, NUL-terminated (length in *len if not NULL);
 * NULL with the error set when out of memory. */
char *stall_diagnosis_json(const stall_diagnosis_t *d, size_t *len);

/* ----------------------------------------------------------- monitoring */

/* Live monitoring of a running job: a thread reads an engine every interval,
 * derives the monitor's metrics (below), checks alert rules (a threshold held
 * for a duration, cleared with hysteresis), detects anomalies in step time,
 * throughput and memory (spikes: robust median/MAD score; level shifts:
 * two-sided CUSUM on robustly standardised values; trends: a least-squares
 * slope over a longer window) and predicts when host or GPU memory runs out
 * at the current growth. Each condition raises one alert, and one
 * "resolved" event when it clears: no storms. Alerts wait in a bounded queue
 * (stall_monitor_next). The thread runs no callback and no Python. */

typedef enum stall_mon_metric_t {
    STALL_MON_CPU_PERCENT = 0,         /* host CPU busy, % of all online cores (0..100) */
    STALL_MON_TREE_CPU_CORES,          /* cores used by the profiled process tree */
    STALL_MON_TREE_CPU_SHARE,          /* the same over the usable cores (0..1) */
    STALL_MON_MEMORY_BYTES,            /* the tree: main RSS + the workers' PSS */
    STALL_MON_HOST_MEMORY_USED_SHARE,  /* used share of what the tree may use (host or cgroup) */
    STALL_MON_HOST_MEMORY_AVAILABLE_BYTES,
    STALL_MON_GPU_UTIL_PERCENT,        /* mean over GPUs */
    STALL_MON_GPU_MEMORY_USED_BYTES,   /* summed over GPUs */
    STALL_MON_GPU_MEMORY_USED_SHARE,   /* of the GPUs' total */
    STALL_MON_STEP_TIME_S,             /* mean seconds per batch of the training loop, this interval */
    STALL_MON_THROUGHPUT,              /* batches per second, this interval */
    STALL_MON_DATA_WAIT_SHARE,         /* share of this interval the loop waited for data */
    STALL_MON_COUNT_
} stall_mon_metric_t;

/* "cpu_percent", "tree_cpu_cores", ... (NULL out of range). */
const char *stall_mon_metric_name(int metric);
/* The metric of that name, or -1. */
int stall_mon_metric_index(const char *name);

typedef struct stall_monitor_options_t {
    uint64_t interval_ns;   /* how often the thread reads the engine (default 1 s, >= 1 ms) */
    uint64_t loop_span_ns;  /* step time, throughput and data wait are measured over at least
                               this much time and one batch (default 1 s): one value per span */
    double min_severity;    /* alerts below this severity are marked suppressed (default 0: none) */
    double spike_score;     /* robust z-score of a spike (default 6) */
    double shift_score;     /* CUSUM decision level, in robust standard deviations (default 8) */
    double trend_r2;        /* least-squares fit a trend must reach (default 0.9) */
    double trend_change;    /* relative change over the trend window a trend must reach (default 0.1) */
    double oom_horizon_s;   /* alert when memory runs out sooner than this (default 1800 s) */
    uint32_t window;        /* samples of the spike and shift baselines (default 60, 8..1024) */
    uint32_t trend_window;  /* points of the trend fit (default 60, 8..1024) */
    uint32_t trend_every;   /* samples averaged into one trend point (default 10) */
    uint32_t queue;         /* alerts the queue holds; more are dropped and counted (default 256) */
    int no_anomalies;       /* 1: rules only */
} stall_monitor_options_t;

/* A threshold rule on one metric. */
typedef struct stall_alert_rule_t {
    const char *name;   /* unique, letters/digits/'_'/'.'/'-', at most 47 bytes (copied) */
    int metric;         /* stall_mon_metric_t */
    int below;          /* 0: raised while value > threshold; 1: while value < threshold */
    double threshold;
    double for_s;       /* the condition must hold this long first (0: at once) */
    double hysteresis;  /* cleared once the value is back past threshold -/+ hysteresis (>= 0) */
    double severity;    /* 0..1 */
} stall_alert_rule_t;

#define STALL_ALERT_FIRING 1
#define STALL_ALERT_RESOLVED 2

/* One alert event. kind: "threshold", "spike", "shift", "trend" or "oom". */
typedef struct stall_alert_t {
    uint64_t seq;        /* 1, 2, ... per monitor */
    uint64_t t_ns;       /* stall_now_ns() clock */
    int state;           /* STALL_ALERT_FIRING or STALL_ALERT_RESOLVED */
    char kind[16];
    char rule[48];       /* the rule's name, or "<kind>:<metric>" for an anomaly */
    char metric[40];
    double value;        /* the metric when raised (oom: seconds left) */
    double threshold;    /* rule: its threshold; spike/shift: the decision level; trend: the fit's r2;
                            oom: the horizon in seconds */
    double baseline;     /* spike/shift: the baseline (median); trend: slope per second; oom: growth
                            in bytes per second; rule: NaN */
    double severity;     /* 0..1 */
    int suppressed;      /* 1: severity below the monitor's min_severity (log it, do not notify) */
    char message[240];
} stall_alert_t;

typedef struct stall_monitor_t stall_monitor_t;

/* Makes a monitor (options NULL: defaults). Bad options: NULL with the error naming the field. */
stall_monitor_t *stall_monitor_new(const stall_monitor_options_t *o);
/* Adds a rule; -1 for a bad field or a duplicate name. Safe while running. */
int stall_monitor_add_rule(stall_monitor_t *m, const stall_alert_rule_t *r);
/* Removes a rule (an alert it raised is resolved). -1 when there is none. */
int stall_monitor_remove_rule(stall_monitor_t *m, const char *name);
/* Starts the thread reading engine e (which must outlive the monitor's run). */
int stall_monitor_start(stall_monitor_t *m, stall_engine_t *e);
/* Stops the thread (joins); the queue keeps what it holds. */
int stall_monitor_stop(stall_monitor_t *m);
/* One sample of every metric (values[STALL_MON_COUNT_], NaN = unknown) at
 * t_ns: what the thread does each interval. For tests (injected series) and
 * for hosts that have their own numbers. Returns the alerts raised/resolved. */
int stall_monitor_observe(stall_monitor_t *m, uint64_t t_ns, const double *values);
/* Reads the engine once and observes it (the thread's tick, on the caller's thread). */
int stall_monitor_tick(stall_monitor_t *m, stall_engine_t *e);
/* Adds the default rules: host memory used share > th->memory (0.9) and GPU
 * memory used share > th->gpu (0.9), both for 5 s, severity 0.9; the loop
 * waiting for data more than 0.5 of its time for 30 s, severity 0.8; host CPU
 * busy > th->cpu (0.9) for 30 s, severity 0.6 (th NULL: the defaults). Anomaly
 * severities: oom 0.95, shift and trend 0.8, spike 0.6. */
int stall_monitor_add_default_rules(stall_monitor_t *m, const stall_thresholds_t *th);
/* Takes the oldest queued alert: 1 with *out filled, 0 when none came within
 * timeout_ms (< 0: wait until one comes or stall_monitor_wake), -1 on error. */
int stall_monitor_next(stall_monitor_t *m, stall_alert_t *out, int timeout_ms);
/* Makes a waiting stall_monitor_next return 0 now. */
void stall_monitor_wake(stall_monitor_t *m);

typedef struct stall_monitor_summary_t {
    uint64_t samples;
    uint64_t first_ns, last_ns;
    double avg[STALL_MON_COUNT_], min[STALL_MON_COUNT_], max[STALL_MON_COUNT_];
    double last[STALL_MON_COUNT_];  /* the latest known value (NaN: never known) */
    uint64_t n[STALL_MON_COUNT_];   /* samples where the metric was known (NaN stats when 0) */
    uint64_t fired, resolved, suppressed, dropped; /* suppressed: below min_severity */
    uint64_t fired_by_kind[5];       /* by kind: stall_alert_kind_name(0..4) */
    uint32_t active;                 /* conditions raised and not cleared */
    double oom_host_s, oom_gpu_s;    /* predicted seconds left (NaN: no growth seen) */
    uint64_t batches;                /* the loop's batches seen by the monitor */
    double data_wait_s;              /* the loop's data wait seen by the monitor */
} stall_monitor_summary_t;

int stall_monitor_summary(stall_monitor_t *m, stall_monitor_summary_t *out);
/* The monitor's own heap bytes (fixed once made: the state is bounded). */
size_t stall_monitor_memory_bytes(const stall_monitor_t *m);
/* Stops and frees. */
void stall_monitor_free(stall_monitor_t *m);

/* Logs one alert event through stall_log (event "alert" at warning, or
 * "alert_resolved" / a suppressed alert at info; fields type, rule, metric,
 * value, threshold, baseline, severity, suppressed, message, seq). */
int stall_alert_log(const stall_alert_t *a);

/* "threshold", "spike", "shift", "trend", "oom" for 0..4 (NULL otherwise). */
const char *stall_alert_kind_name(int kind);

/* Writes the monitor's Prometheus series (stall_alerts_total{kind},
 * stall_alerts_active, the loop's last step time, throughput and data-wait
 * ratio, stall_memory_exhaustion_seconds{memory}) to out; labels: the
 * constant labels without braces (NULL or "" for none). The shape of a
 * stall_metrics_server_add_source source (ctx: the monitor). 0 or -1.
 * Rendered by the exporter (src/export/prometheus.c) from stall_monitor_summary. */
int stall_monitor_prometheus(void *ctx, FILE *out, const char *labels);

/* -------------------------------------------------------- metrics server */

/* An engine's state for Prometheus: a small HTTP server (libmicrohttpd, one
 * thread of its own) that answers GET /metrics with the text exposition
 * format 0.0.4 (stall_batches_total, stall_data_wait_seconds_total,
 * stall_kind_seconds_total{kind}, stall_process_cpu_seconds_total{role},
 * ...: the table is in src/export/prometheus.c). The text is rendered on the
 * server's thread at scrape time only: nothing runs on the profiled
 * program's path. Every series carries the server's constant labels. */

typedef struct stall_metrics_server_t stall_metrics_server_t;

/* Serves engine e (which must outlive the server) on `address`:
 * "HOST:PORT", "[IPV6]:PORT", ":PORT" (127.0.0.1) or "PORT"; NULL means
 * "127.0.0.1:9464"; port 0 picks a free port (stall_metrics_server_port says
 * which). `labels` is NULL or a NULL-terminated list key, value, key,
 * value, ... of constant labels (copied); names must match
 * [a-zA-Z_][a-zA-Z0-9_]*, not start with "__", not repeat, and not be one of
 * the exporter's own (role, kind, gpu, name, version); host="<hostname>" is
 * added unless given. GET /metrics: the exposition; GET /: a line pointing
 * there; other paths 404; methods other than GET and HEAD 405. Returns the
 * server (the caller owns it: stall_metrics_server_stop), or NULL with an
 * error that names the address or label at fault (a malformed address, a
 * host that does not resolve, a port in use). */
stall_metrics_server_t *stall_metrics_serve(stall_engine_t *e, const char *address, const char *const *labels);

/* The port the server is bound to (the one picked when 0 was asked), or -1
 * for NULL. */
int stall_metrics_server_port(const stall_metrics_server_t *s);

/* The URL of the exposition, "http://HOST:PORT/metrics" with the host as
 * given (IPv6 in brackets); owned by the server. "" for NULL. */
const char *stall_metrics_server_url(const stall_metrics_server_t *s);

/* Renders the current exposition, as a scrape would get it, on the calling
 * thread (safe beside the server's). Returns a malloc'd NUL-terminated text
 * the caller frees (its length in *len when len is not NULL), or NULL with
 * the error set. */
char *stall_metrics_text(stall_metrics_server_t *s, size_t *len);

/* Adds a source of more lines, appended to every exposition after stall's
 * own: fn writes whole families (# HELP, # TYPE, series) to out, and puts
 * `labels` (the constant labels, rendered without braces, e.g.
 * host="a",rank="0") inside each series' braces. fn runs on the thread that
 * renders (the server's, or stall_metrics_text's caller), one render at a
 * time, and returns 0, or -1 to have what it wrote left out. At most 16
 * sources. Returns 0, or -1 (NULL fn, table full). */
int stall_metrics_server_add_source(stall_metrics_server_t *s, int (*fn)(void *ctx, FILE *out, const char *labels),
                                    void *ctx);

/* Stops the server (waits for a scrape in progress) and frees it. NULL is
 * ignored. In a process forked from the server's (which serves nothing: the
 * listening socket is closed in a child at fork) it only frees the handle. */
void stall_metrics_server_stop(stall_metrics_server_t *s);

/* -------------------------------------------------------------- logging */

typedef enum stall_log_level_t {
    STALL_LOG_DEBUG = 10,
    STALL_LOG_INFO = 20,
    STALL_LOG_WARNING = 30,
    STALL_LOG_ERROR = 40
} stall_log_level_t;

/* A typed field of a log event. */
typedef enum stall_field_type_t {
    STALL_FIELD_STR = 1,
    STALL_FIELD_INT = 2,
    STALL_FIELD_UINT = 3,
    STALL_FIELD_DOUBLE = 4,
    STALL_FIELD_BOOL = 5
} stall_field_type_t;

typedef struct stall_field_t {
    const char *key;
    int type; /* stall_field_type_t */
    union {
        const char *s;
        int64_t i;
        uint64_t u;
        double d;
        int b;
    } v;
} stall_field_t;

/* Receives one log event as a JSON object on one line, with its trailing
 * '\n'; `line` is valid only during the call. Must not call stall_log. */
typedef void (*stall_log_sink_fn)(void *ctx, int level, const char *line, size_t len);

/* Sets where log lines go and the lowest level sent (NULL sink: nothing is
 * logged, the default). Thread-safe. */
void stall_log_set_sink(stall_log_sink_fn sink, void *ctx, int min_level);

/* A ready sink that writes each line to the file descriptor passed as ctx
 * (cast with (void *)(intptr_t)fd). */
void stall_log_sink_fd(void *ctx, int level, const char *line, size_t len);

/* Formats {"ts":..., "level":..., "event":..., <fields>} and sends it to the
 * sink. Strings are JSON-escaped; non-finite doubles become null. Returns 0,
 * or -1 on a bad argument. Not for the span hot path. */
int stall_log(int level, const char *event, const stall_field_t *fields, size_t nfields);

/* Returns "debug", "info", "warning" or "error". */
const char *stall_log_level_name(int level);

#ifdef __cplusplus
}
#endif
#endif /* STALL_H */
