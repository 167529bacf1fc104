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
} stall_reader_proc_t;

/* Opens a reader on a session directory. Returns NULL (and sets the error)
 * when the directory does not exist or is not a stall session. The reader
 * owns its mappings until stall_reader_close. One reader drains a session at
 * a time: a second stall_reader_open on the same directory fails. */
stall_reader_t *stall_reader_open(const char *dir);

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

/* Closes the reader. With remove = 1 the session directory is deleted too.
 * Returns 0, or -1 when removing failed. */
int stall_reader_close(stall_reader_t *r, int remove);

/* Sets this process's label (e.g. "main", "worker 3"), shown by readers. */
int stall_set_process_label(const char *label);

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
