/*
 * trace.c - the Chrome trace exporter: renders the spooled records of a run,
 * the processes the reader saw and the sampler's series as a Trace Event
 * Format file (JSON object form) that Perfetto UI and chrome://tracing load.
 *
 * Layout of traceEvents, in this order:
 *   1. metadata of every process: process_name ("main (pid 12)", "worker 1
 *      (pid 13)", or the command name) and process_sort_index (the main
 *      process first, the "system" counters process last);
 *   2. spans and instants grouped by (pid, tid), each group opened by its
 *      thread_name ("main thread" / "thread <tid>") and thread_sort_index,
 *      sorted by start and, when starts tie, parents (lower depth) before
 *      children, so that the complete events of a thread nest;
 *   3. counters ("C") of the sampler in the "system" process (a pid above
 *      PID_MAX_LIMIT, so it can be no real process), in time order: one
 *      event per chart and sample, one argument per line of the chart, so
 *      that chrome://tracing stacks them and Perfetto names each track
 *      "<chart> <line>" (e.g. "CPU % user").
 * Timestamps are microseconds relative to t0, written from integer
 * nanoseconds with exactly three decimals (no rounding).
 *
 * One sequential scan of the spool chooses the events; memory is bounded by
 * max_events copies of a spool entry (56 bytes), however long the run. When
 * there are more spans and instants than max_events, a min-heap on duration
 * keeps the longest; those whose duration ties the longest one left out are
 * dropped too, so the rule is simply "kept: longer than the threshold", and a
 * parent (never shorter than its child) is never dropped while its child is
 * kept. The chosen events are then sorted in memory and written.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "export.h"
#include "internal.h"

#define DEFAULT_MAX_EVENTS 2000000ull
#define SYSTEM_PID 4194304u /* PID_MAX_LIMIT: above every real pid */
#define MARKER_FLAGS (STALL_REC_SESSION_BEGIN | STALL_REC_SESSION_END)
#define MIB (1024.0 * 1024.0)

/* A kept event in the selection heap: its duration and its slot in pick_t.ev. */
typedef struct hkey_t {
    uint64_t dur_ns;
    size_t slot;
} hkey_t;

/* The selection of the events to write, filled during a scan of the spool. */
typedef struct pick_t {
    uint64_t max, end_ns;
    stall_spool_ent_t *ev; /* spans and instants kept */
    size_t n, cap;         /* cap = min(max, entries in the spool) */
    hkey_t *heap;          /* once ev is full: a min-heap on duration of its n slots */
    stall_spool_ent_t *marks; /* session markers: always written */
    size_t nm, mcap;
    uint64_t left_out; /* spans and instants not written */
    uint64_t cut_ns;   /* when left_out > 0: the written ones last longer than this */
} pick_t;

/* The state of one trace being written. */
typedef struct tw_t {
    FILE *f;
    stall_reader_t *r;
    uint64_t t0_ns, end_ns;
    uint64_t events; /* events written so far */
} tw_t;

/* One line of a counter chart; consecutive rows of the same chart form one
 * "C" event per sample. */
static const struct counter_t {
    const char *chart;
    const char *line;
    int metric;
    double scale;
} counters[] = {
    {"CPU %", "user", STALL_M_CPU_USER, 100.0},
    {"CPU %", "system", STALL_M_CPU_SYSTEM, 100.0},
    {"CPU %", "iowait", STALL_M_CPU_IOWAIT, 100.0},
    {"CPU cores", "main", STALL_M_MAIN_CPU, 1.0},
    {"CPU cores", "workers", STALL_M_WORKERS_CPU, 1.0},
    {"RSS MiB", "main", STALL_M_MAIN_RSS, 1.0 / MIB},
    {"RSS MiB", "workers", STALL_M_WORKERS_RSS, 1.0 / MIB},
    {"memory MiB", "used", STALL_M_MEM_USED, 1.0 / MIB},
    {"disk MB/s", "read", STALL_M_DISK_READ, 1e-6},
    {"disk MB/s", "write", STALL_M_DISK_WRITE, 1e-6},
    {"PSI some %", "io", STALL_M_PSI_IO_SOME, 1.0},
    {"PSI some %", "mem", STALL_M_PSI_MEM_SOME, 1.0},
    {"GPU %", "util", STALL_M_GPU_UTIL, 1.0},
    {"GPU memory MiB", "used", STALL_M_GPU_MEM_USED, 1.0 / MIB},
};
#define NCOUNTERS (sizeof counters / sizeof counters[0])

/* ------------------------------------------------------------- selection */

/* Duration a record is drawn with: instants 0, truncated spans up to end_ns. */
static uint64_t drawn_dur(const stall_record_t *r, uint64_t end_ns) {
    if (r->flags & STALL_REC_INSTANT) return 0;
    uint64_t end = (r->flags & STALL_REC_TRUNCATED) ? end_ns : r->end_ns;
    return end > r->start_ns ? end - r->start_ns : 0;
}

static void sift_down(hkey_t *h, size_t n, size_t i) {
    hkey_t x = h[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && h[c + 1].dur_ns < h[c].dur_ns) c++;
        if (h[c].dur_ns >= x.dur_ns) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

/* stall_spool_fn of the selection scan: keeps every session marker and the
 * max_events longest spans and instants, tracking the longest left out. */
static int pick_fn(void *ctx, const stall_spool_ent_t *ents, size_t n) {
    pick_t *p = ctx;
    for (size_t i = 0; i < n; i++) {
        const stall_spool_ent_t *e = &ents[i];
        if (e->rec.flags & MARKER_FLAGS) {
            if (p->nm == p->mcap) {
                size_t cap = p->mcap ? 2 * p->mcap : 64;
                stall_spool_ent_t *nv = realloc(p->marks, cap * sizeof *nv);
                if (!nv) return stall__err("chrome trace: out of memory");
                p->marks = nv;
                p->mcap = cap;
            }
            p->marks[p->nm++] = *e;
            continue;
        }
        if (p->n < p->cap) {
            p->ev[p->n++] = *e;
            continue;
        }
        if (!p->heap) {
            p->heap = malloc((p->n ? p->n : 1) * sizeof *p->heap);
            if (!p->heap) return stall__err("chrome trace: out of memory");
            for (size_t k = 0; k < p->n; k++) p->heap[k] = (hkey_t){drawn_dur(&p->ev[k].rec, p->end_ns), k};
            for (size_t k = p->n / 2; k-- > 0;) sift_down(p->heap, p->n, k);
        }
        uint64_t d = drawn_dur(&e->rec, p->end_ns);
        p->left_out++;
        if (p->n > 0 && d > p->heap[0].dur_ns) {
            if (p->heap[0].dur_ns > p->cut_ns) p->cut_ns = p->heap[0].dur_ns;
            p->ev[p->heap[0].slot] = *e;
            p->heap[0].dur_ns = d;
            sift_down(p->heap, p->n, 0);
        } else if (d > p->cut_ns) {
            p->cut_ns = d;
        }
    }
    return 0;
}

/* Chooses the events to write (see the file comment) into p->ev[0..p->n):
 * spans and instants, then the session markers. The caller frees p->ev and
 * p->marks. Returns 0 or -1. */
static int pick(stall_spool_t *spool, pick_t *p) {
    uint64_t count = stall__spool_count(spool);
    p->cap = (size_t)(count < p->max ? count : p->max);
    p->ev = malloc((p->cap ? p->cap : 1) * sizeof *p->ev);
    if (!p->ev) return stall__err("chrome trace: out of memory for %zu events", p->cap);
    if (stall__spool_scan(spool, pick_fn, p) < 0) return -1;
    free(p->heap);
    p->heap = NULL;
    if (p->left_out > 0) { /* drop what ties the longest one left out */
        size_t k = 0;
        for (size_t i = 0; i < p->n; i++)
            if (drawn_dur(&p->ev[i].rec, p->end_ns) > p->cut_ns) p->ev[k++] = p->ev[i];
        p->left_out += p->n - k;
        p->n = k;
    }
    if (p->nm > 0) {
        stall_spool_ent_t *nv = realloc(p->ev, (p->n + p->nm) * sizeof *nv);
        if (!nv) return stall__err("chrome trace: out of memory");
        p->ev = nv;
        memcpy(p->ev + p->n, p->marks, p->nm * sizeof *p->marks);
        p->n += p->nm;
    }
    return 0;
}

/* End used to order ties: truncated spans run to the end of the run. */
static uint64_t sort_end(const stall_record_t *r) {
    if (r->flags & STALL_REC_TRUNCATED) return UINT64_MAX;
    return (r->flags & STALL_REC_INSTANT) ? r->start_ns : r->end_ns;
}

/* Order of the events: by thread, then start, then depth (a parent before
 * its children), then longer first; the bytes last, for a stable output. */
static int ev_cmp(const void *pa, const void *pb) {
    const stall_record_t *a = &((const stall_spool_ent_t *)pa)->rec;
    const stall_record_t *b = &((const stall_spool_ent_t *)pb)->rec;
    if (a->pid != b->pid) return a->pid < b->pid ? -1 : 1;
    if (a->tid != b->tid) return a->tid < b->tid ? -1 : 1;
    if (a->start_ns != b->start_ns) return a->start_ns < b->start_ns ? -1 : 1;
    if (a->depth != b->depth) return a->depth < b->depth ? -1 : 1;
    uint64_t ea = sort_end(a), eb = sort_end(b);
    if (ea != eb) return ea > eb ? -1 : 1;
    return memcmp(pa, pb, sizeof(stall_spool_ent_t));
}

/* ------------------------------------------------------------ JSON output */

/* Writes v in decimal (the hot path of the writer: no format parsing). */
static void put_u64(FILE *f, uint64_t v) {
    char b[20];
    size_t i = sizeof b;
    do {
        b[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    fwrite_unlocked(b + i, 1, sizeof b - i, f);
}

/* Writes v / 1000 with exactly three decimals. */
static void put_milli(FILE *f, uint64_t v) {
    put_u64(f, v / 1000);
    char b[4] = {'.', (char)('0' + v / 100 % 10), (char)('0' + v / 10 % 10), (char)('0' + v % 10)};
    fwrite_unlocked(b, 1, sizeof b, f);
}

/* Writes t - t0 in microseconds with three decimals (negative if t < t0). */
static void put_us(FILE *f, uint64_t t_ns, uint64_t t0_ns) {
    if (t_ns < t0_ns) putc_unlocked('-', f);
    put_milli(f, t_ns >= t0_ns ? t_ns - t0_ns : t0_ns - t_ns);
}

/* Starts the next event of traceEvents. */
static void next_event(tw_t *w) {
    fputs_unlocked(w->events++ ? ",\n{" : "\n{", w->f);
}

static void put_meta(tw_t *w, const char *what, uint32_t pid, uint32_t tid, int with_tid) {
    next_event(w);
    fprintf(w->f, "\"ph\":\"M\",\"name\":\"%s\",\"pid\":%" PRIu32, what, pid);
    if (with_tid) fprintf(w->f, ",\"tid\":%" PRIu32, tid);
}

/* process_name and process_sort_index of one process. */
static void put_process(tw_t *w, uint32_t pid, const char *name, int sort_index) {
    put_meta(w, "process_name", pid, 0, 0);
    fputs(",\"args\":{\"name\":\"", w->f);
    stall__json_esc(w->f, name);
    if (pid != SYSTEM_PID) fprintf(w->f, " (pid %" PRIu32 ")", pid);
    fputs("\"}}", w->f);
    put_meta(w, "process_sort_index", pid, 0, 0);
    fprintf(w->f, ",\"args\":{\"sort_index\":%d}}", sort_index);
}

static void put_thread(tw_t *w, uint32_t pid, uint32_t tid, const char *name, int sort_index) {
    put_meta(w, "thread_name", pid, tid, 1);
    fputs(",\"args\":{\"name\":", w->f);
    stall__json_str(w->f, name);
    fputs("}}", w->f);
    put_meta(w, "thread_sort_index", pid, tid, 1);
    fprintf(w->f, ",\"args\":{\"sort_index\":%d}}", sort_index);
}

/* Metadata of every process the reader saw (and of the counters' process
 * when with_system): the process labelled "main" first or, when none is,
 * the roots of the tree (parent outside the session); then the others in
 * the reader's order. Returns 0, or -1 when out of memory. */
static int put_processes(tw_t *w, int with_system) {
    size_t n = stall_reader_proc(w->r, 0, NULL);
    stall_reader_proc_t *v = calloc(n ? n : 1, sizeof *v);
    if (!v) return stall__err("chrome trace: out of memory");
    int labelled_main = 0;
    for (size_t i = 0; i < n; i++) {
        stall_reader_proc(w->r, i, &v[i]);
        if (strcmp(v[i].label, "main") == 0) labelled_main = 1;
    }
    for (size_t i = 0; i < n; i++) {
        int is_main = strcmp(v[i].label, "main") == 0, parent_in = 0;
        for (size_t k = 0; k < n && !labelled_main && !parent_in; k++)
            parent_in = v[k].pid == v[i].ppid;
        if (!labelled_main && !parent_in) is_main = 1;
        const char *name = v[i].label[0] ? v[i].label : v[i].comm[0] ? v[i].comm : "process";
        put_process(w, v[i].pid, name, is_main ? 0 : (int)(i + 1));
    }
    if (with_system) {
        put_process(w, SYSTEM_PID, "system", (int)(n + 1));
        put_thread(w, SYSTEM_PID, SYSTEM_PID, "counters", 0);
    }
    free(v);
    return 0;
}

/* One span, instant or session marker. */
static void put_record(tw_t *w, const stall_spool_ent_t *ent) {
    const stall_record_t *rec = &ent->rec;
    const char *name = stall_reader_name(w->r, ent->proc_index, rec->name);
    FILE *f = w->f;
    next_event(w);
    if (rec->flags & MARKER_FLAGS) {
        fputs_unlocked((rec->flags & STALL_REC_SESSION_BEGIN) ? "\"ph\":\"i\",\"s\":\"p\",\"name\":\"session begin"
                                                              : "\"ph\":\"i\",\"s\":\"p\",\"name\":\"session end",
                       f);
        if (*name) {
            fputs_unlocked(": ", f);
            stall__json_esc(f, name);
        }
        putc_unlocked('"', f);
    } else {
        fputs_unlocked((rec->flags & STALL_REC_INSTANT) ? "\"ph\":\"i\",\"s\":\"t\",\"name\":"
                                                        : "\"ph\":\"X\",\"name\":",
                       f);
        stall__json_str(f, *name ? name : stall_kind_name(rec->kind));
    }
    fputs_unlocked(",\"cat\":\"", f);
    fputs_unlocked(stall_kind_name(rec->kind), f);
    fputs_unlocked("\",\"ts\":", f);
    put_us(f, rec->start_ns, w->t0_ns);
    if (!(rec->flags & STALL_REC_INSTANT)) {
        fputs_unlocked(",\"dur\":", f);
        put_milli(f, drawn_dur(rec, w->end_ns));
    }
    fputs_unlocked(",\"pid\":", f);
    put_u64(f, rec->pid);
    fputs_unlocked(",\"tid\":", f);
    put_u64(f, rec->tid);
    fputs_unlocked((rec->flags & MARKER_FLAGS) ? ",\"args\":{\"session_id\":" : ",\"args\":{\"arg\":", f);
    put_u64(f, rec->arg);
    if (rec->flags & STALL_REC_HAS_CPU) {
        fputs_unlocked(",\"cpu_ms\":", f);
        put_milli(f, rec->cpu_ns / 1000); /* ms with three decimals: whole microseconds */
    }
    if (rec->flags & STALL_REC_TRUNCATED) fputs_unlocked(",\"truncated\":true", f);
    fputs_unlocked("}}", f);
}

/* The chosen events (sorted), each thread's run opened by its metadata. */
static void put_records(tw_t *w, const pick_t *p) {
    uint32_t pid = 0, tid = 0;
    int others = 0; /* threads of this pid named so far, the main one aside */
    for (size_t i = 0; i < p->n; i++) {
        const stall_record_t *e = &p->ev[i].rec;
        if (i == 0 || e->pid != pid || e->tid != tid) {
            if (i == 0 || e->pid != pid) others = 0;
            pid = e->pid;
            tid = e->tid;
            char name[32];
            if (tid == pid)
                snprintf(name, sizeof name, "main thread");
            else
                snprintf(name, sizeof name, "thread %" PRIu32, tid);
            put_thread(w, pid, tid, name, tid == pid ? 0 : ++others);
        }
        put_record(w, &p->ev[i]);
    }
}

/* The sampler's series as counter events of the system process, merged in
 * time order (the metrics share their sample times). Returns 0 or -1. */
static int put_counters(tw_t *w, stall_sampler_t *s) {
    stall_point_t *pts[NCOUNTERS] = {0};
    size_t cnt[NCOUNTERS] = {0}, cur[NCOUNTERS] = {0};
    int rc = -1;
    for (size_t k = 0; k < NCOUNTERS; k++) {
        ssize_t m = stall_sampler_series(s, counters[k].metric, NULL, 0);
        if (m < 0) goto fail;
        if (m == 0) continue;
        pts[k] = malloc((size_t)m * sizeof *pts[k]);
        if (!pts[k]) {
            stall__err("chrome trace: out of memory");
            goto fail;
        }
        ssize_t got = stall_sampler_series(s, counters[k].metric, pts[k], (size_t)m);
        if (got < 0) goto fail;
        cnt[k] = (size_t)got < (size_t)m ? (size_t)got : (size_t)m;
    }
    for (;;) {
        uint64_t t = UINT64_MAX;
        for (size_t k = 0; k < NCOUNTERS; k++)
            if (cur[k] < cnt[k] && pts[k][cur[k]].t_ns < t) t = pts[k][cur[k]].t_ns;
        if (t == UINT64_MAX) break;
        int open = 0; /* a "C" event of the current chart is open */
        for (size_t k = 0; k < NCOUNTERS; k++) {
            if (k > 0 && strcmp(counters[k].chart, counters[k - 1].chart) != 0 && open) {
                fputs("}}", w->f);
                open = 0;
            }
            if (cur[k] >= cnt[k] || pts[k][cur[k]].t_ns != t) continue;
            double v = pts[k][cur[k]++].avg * counters[k].scale;
            if (!isfinite(v)) continue;
            if (!open) {
                next_event(w);
                fprintf(w->f, "\"ph\":\"C\",\"name\":\"%s\",\"pid\":%u,\"tid\":%u,\"ts\":",
                        counters[k].chart, SYSTEM_PID, SYSTEM_PID);
                put_us(w->f, t, w->t0_ns);
                fputs(",\"args\":{", w->f);
            }
            fprintf(w->f, "%s\"%s\":%.3f", open ? "," : "", counters[k].line, v);
            open = 1;
        }
        if (open) fputs("}}", w->f);
    }
    rc = 0;
fail:
    for (size_t k = 0; k < NCOUNTERS; k++) free(pts[k]);
    return rc;
}

static void put_other_data(tw_t *w, const stall_trace_opts_t *o, const pick_t *p) {
    FILE *f = w->f;
    uint64_t dropped = 0;
    size_t n = stall_reader_proc(w->r, 0, NULL);
    for (size_t i = 0; i < n; i++) {
        stall_reader_proc_t pr;
        stall_reader_proc(w->r, i, &pr);
        dropped += pr.dropped;
    }
    fputs("\"otherData\":{\"title\":", f);
    stall__json_str(f, o->title ? o->title : "");
    fputs(",\"session\":", f);
    stall__json_str(f, stall_reader_session_name(w->r));
    fprintf(f,
            ",\"stall_version\":\"%s\",\"t0_ns\":\"%" PRIu64 "\",\"records_written\":%zu"
            ",\"max_events\":%" PRIu64 ",\"events_left_out\":%" PRIu64,
            stall_version(), w->t0_ns, p->n, p->max, p->left_out);
    if (p->left_out > 0) {
        fputs(",\"kept_longer_than_us\":", f);
        put_milli(f, p->cut_ns);
    }
    fprintf(f, ",\"spans_dropped_by_rings\":%" PRIu64 "}", dropped);
}

int stall__trace_write(const char *path, stall_spool_t *spool, stall_reader_t *r,
                       stall_sampler_t *s, const stall_trace_opts_t *o) {
    if (!path || !*path || !spool || !r || !o)
        return stall__err("stall__trace_write: path, spool, reader and options are required");
    char *tmp = NULL;
    tw_t w = {.r = r, .t0_ns = o->t0_ns, .end_ns = o->end_ns ? o->end_ns : stall_now_ns()};
    pick_t p = {.max = o->max_events ? o->max_events : DEFAULT_MAX_EVENTS, .end_ns = w.end_ns};
    if (pick(spool, &p) < 0) goto fail;
    qsort(p.ev, p.n, sizeof *p.ev, ev_cmp);

    size_t len = strlen(path) + 5;
    tmp = malloc(len);
    if (!tmp) {
        stall__err("stall__trace_write: out of memory");
        goto fail;
    }
    snprintf(tmp, len, "%s.tmp", path);
    w.f = fopen(tmp, "w");
    if (!w.f) {
        stall__errno(errno, "cannot create %s", tmp);
        goto fail;
    }
    setvbuf(w.f, NULL, _IOFBF, 1u << 20);
    fputs("{\"traceEvents\":[", w.f);
    if (put_processes(&w, s != NULL) < 0) goto fail;
    put_records(&w, &p);
    if (s && put_counters(&w, s) < 0) goto fail;
    fputs("\n],\n\"displayTimeUnit\":\"ms\",\n", w.f);
    put_other_data(&w, o, &p);
    fputs("}\n", w.f);
    int bad = fflush(w.f) != 0 || ferror(w.f);
    int err = errno;
    if (fclose(w.f) != 0 && !bad) {
        bad = 1;
        err = errno;
    }
    w.f = NULL;
    if (bad) {
        stall__errno(err ? err : EIO, "cannot write %s", tmp);
        goto fail;
    }
    if (rename(tmp, path) < 0) {
        stall__errno(errno, "cannot rename %s to %s", tmp, path);
        goto fail;
    }
    free(tmp);
    free(p.ev);
    free(p.marks);
    return 0;
fail:
    if (w.f) fclose(w.f);
    if (tmp) unlink(tmp);
    free(tmp);
    free(p.ev);
    free(p.marks);
    free(p.heap);
    return -1;
}
