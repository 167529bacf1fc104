/*
 * engine.c - the engine of library mode: one thread inside the profiled
 * process that drains the session's rings into an aggregator at a fixed
 * interval, plus (optionally) a sampler running its own thread.
 *
 * The reader is not thread-safe, so every drain (the thread's, or one asked
 * for with stall_engine_drain) holds drain_lock. The aggregator has its own
 * lock, so readers of the statistics never wait for a drain to finish more
 * than one batch of records. The thread blocks every signal so that the
 * profiled program's signal handling is untouched, and keeps absolute
 * deadlines (start + k * interval) so the rate does not drift.
 *
 * An observer engine reads through an observer reader: beside the session's
 * primary reader (e.g. `stall run`), it never frees ring space and never
 * deletes the directory.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "analyze.h"

#define MAX_DETECTORS 32 /* added detectors per engine */

#define DEFAULT_DRAIN_NS 100000000ull /* 100 ms: 16384-record rings hold 160k spans/s per thread */
#define MIN_DRAIN_NS 1000000ull      /* 1 ms */

struct stall_engine_t {
    stall_reader_t *reader;
    stall_agg_t *agg;
    stall_sampler_t *sampler; /* NULL with no sampler */
    uint64_t interval_ns;
    pthread_mutex_t drain_lock; /* serialises drains: the reader is not thread-safe */
    pthread_mutex_t lock;       /* guards the fields below */
    pthread_cond_t wake;
    pthread_t thread;
    int running, stop;
    int observer; /* the reader is an observer: never remove the directory */
    stall_record_fn tap; /* also sees every drained record (stall_engine_set_tap) */
    void *tap_ctx;
    char *dir;           /* the session directory (loader settings live there) */
    stall__detector_t detectors[MAX_DETECTORS]; /* added with stall_engine_add_detector, under lock */
    int ndetectors;
    pid_t owner; /* the process that made it: a forked copy must neither drain nor join */
};

/* Makes a primary or an observer engine; `who` names the public call in errors. */
static stall_engine_t *engine_make(const char *who, const char *dir, const stall_sampler_options_t *sampler_opts,
                                   int no_sampler, uint64_t drain_interval_ns, int observer) {
    stall_engine_t *e = NULL;
    int locks = 0;
    if (!dir || !*dir) {
        stall__err("%s: dir must be a session directory path", who);
        return NULL;
    }
    if (drain_interval_ns && drain_interval_ns < MIN_DRAIN_NS) {
        stall__err("%s: drain_interval_ns must be >= 1 ms, or 0 for 100 ms (got %llu)", who,
                   (unsigned long long)drain_interval_ns);
        return NULL;
    }
    e = calloc(1, sizeof *e);
    if (!e) {
        stall__err("%s: out of memory", who);
        return NULL;
    }
    e->observer = observer;
    e->owner = getpid();
    e->interval_ns = drain_interval_ns ? drain_interval_ns : DEFAULT_DRAIN_NS;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&e->drain_lock, NULL);
    pthread_mutex_init(&e->lock, NULL);
    pthread_cond_init(&e->wake, &ca);
    pthread_condattr_destroy(&ca);
    locks = 1;
    if (!no_sampler) {
        stall_sampler_options_t o;
        if (sampler_opts)
            o = *sampler_opts;
        else
            memset(&o, 0, sizeof o);
        if (!o.root_pid) o.root_pid = (uint32_t)getpid();
        e->sampler = stall_sampler_new(&o); /* its error names the bad field */
        if (!e->sampler) goto fail;
    }
    e->agg = stall_agg_new();
    if (!e->agg) goto fail;
    e->dir = strdup(dir);
    if (!e->dir) {
        stall__err("%s: out of memory", who);
        goto fail;
    }
    /* last: a primary takes the session's reader lock */
    e->reader = observer ? stall_reader_open_observer(dir) : stall_reader_open(dir);
    if (!e->reader) goto fail;
    return e;
fail:
    stall_sampler_free(e->sampler);
    stall_agg_free(e->agg);
    free(e->dir);
    if (locks) {
        pthread_mutex_destroy(&e->drain_lock);
        pthread_mutex_destroy(&e->lock);
        pthread_cond_destroy(&e->wake);
    }
    free(e);
    return NULL;
}

stall_engine_t *stall_engine_new(const char *dir, const stall_sampler_options_t *sampler_opts,
                                 int no_sampler, uint64_t drain_interval_ns) {
    return engine_make("stall_engine_new", dir, sampler_opts, no_sampler, drain_interval_ns, 0);
}

stall_engine_t *stall_engine_new_observer(const char *dir, const stall_sampler_options_t *sampler_opts,
                                          int no_sampler, uint64_t drain_interval_ns) {
    return engine_make("stall_engine_new_observer", dir, sampler_opts, no_sampler, drain_interval_ns, 1);
}

typedef struct tap_ctx_t {
    stall_engine_t *e;
    int failed;
} tap_ctx_t;

static int drain_one(void *ctx, const stall_reader_proc_t *proc, const stall_record_t *recs,
                     size_t n) {
    tap_ctx_t *c = ctx;
    if (stall_agg_add(c->e->agg, c->e->reader, proc, recs, n) < 0) {
        c->failed = 1;
        return 1;
    }
    if (c->e->tap) c->e->tap(c->e->tap_ctx, proc, recs, n); /* a tap cannot stop the drain */
    return 0;
}

/* -1 with an error when e is a copy a fork made: draining it would take the
 * parent's records (the read positions are shared). */
static int not_ours(const stall_engine_t *e, const char *who) {
    if (e->owner == getpid()) return 0;
    return stall__err("%s: the engine was made by process %d; a forked child makes its own", who, (int)e->owner);
}

ssize_t stall_engine_drain(stall_engine_t *e) {
    if (!e) return stall__err("stall_engine_drain: engine is NULL");
    if (not_ours(e, "stall_engine_drain")) return -1;
    pthread_mutex_lock(&e->drain_lock);
    tap_ctx_t c = {e, 0};
    ssize_t n = stall_reader_drain(e->reader, drain_one, &c);
    if (c.failed) n = -1; /* stall_agg_add's error stays */
    pthread_mutex_unlock(&e->drain_lock);
    return n;
}

int stall_engine_set_tap(stall_engine_t *e, stall_record_fn fn, void *ctx) {
    if (!e) return stall__err("stall_engine_set_tap: engine is NULL");
    pthread_mutex_lock(&e->drain_lock);
    e->tap = fn;
    e->tap_ctx = ctx;
    pthread_mutex_unlock(&e->drain_lock);
    return 0;
}

stall_reader_t *stall_engine_reader(stall_engine_t *e) { return e ? e->reader : NULL; }

static void *engine_main(void *arg) {
    pthread_setname_np(pthread_self(), "stall-drain"); /* top -H, /proc/<pid>/task/<tid>/comm */
    stall_engine_t *e = arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    uint64_t start = stall__clock_ns(CLOCK_MONOTONIC), k = 0;
    pthread_mutex_lock(&e->lock);
    while (!e->stop) {
        uint64_t now = stall__clock_ns(CLOCK_MONOTONIC);
        uint64_t next = start + (++k) * e->interval_ns;
        if (next <= now) { /* fell behind (a long drain, a stopped VM): skip ahead */
            k = (now - start) / e->interval_ns + 1;
            next = start + k * e->interval_ns;
        }
        struct timespec ts = {(time_t)(next / 1000000000ull), (long)(next % 1000000000ull)};
        while (!e->stop) {
            if (pthread_cond_timedwait(&e->wake, &e->lock, &ts) == ETIMEDOUT) break;
        }
        if (e->stop) break;
        pthread_mutex_unlock(&e->lock);
        stall_engine_drain(e); /* a failure is retried at the next tick */
        pthread_mutex_lock(&e->lock);
    }
    pthread_mutex_unlock(&e->lock);
    return NULL;
}

int stall_engine_start(stall_engine_t *e) {
    if (!e) return stall__err("stall_engine_start: engine is NULL");
    if (not_ours(e, "stall_engine_start")) return -1;
    pthread_mutex_lock(&e->lock);
    if (e->running) {
        pthread_mutex_unlock(&e->lock);
        return stall__err("stall_engine_start: the engine is already running");
    }
    e->stop = 0;
    int rc = pthread_create(&e->thread, NULL, engine_main, e);
    if (rc == 0) e->running = 1;
    pthread_mutex_unlock(&e->lock);
    if (rc != 0) return stall__errno(rc, "stall_engine_start: cannot start the engine thread");
    if (e->sampler && stall_sampler_start(e->sampler) < 0) {
        char msg[256];
        stall__strlcpy(msg, stall_last_error(), sizeof msg);
        stall_engine_stop(e);
        return stall__err("stall_engine_start: %s", msg);
    }
    return 0;
}

int stall_engine_stop(stall_engine_t *e) {
    if (!e) return stall__err("stall_engine_stop: engine is NULL");
    if (e->owner != getpid()) return 0; /* a forked copy: the threads stayed in the parent */
    if (e->sampler) stall_sampler_stop(e->sampler);
    pthread_mutex_lock(&e->lock);
    if (!e->running) {
        pthread_mutex_unlock(&e->lock);
        return 0;
    }
    e->stop = 1;
    pthread_cond_broadcast(&e->wake);
    pthread_mutex_unlock(&e->lock);
    pthread_join(e->thread, NULL);
    pthread_mutex_lock(&e->lock);
    e->running = 0;
    pthread_mutex_unlock(&e->lock);
    return 0;
}

stall_agg_t *stall_engine_agg(stall_engine_t *e) { return e ? e->agg : NULL; }

stall_sampler_t *stall_engine_sampler(stall_engine_t *e) { return e ? e->sampler : NULL; }

void stall_engine_free(stall_engine_t *e, int remove) {
    if (!e) return;
    /* a forked copy is left as it is (the process's exit returns the
     * memory): no drain (the records are the parent's), no join, and no
     * destroying locks that the parent's threads may have held */
    if (e->owner != getpid()) return;
    stall_engine_stop(e);
    stall_engine_drain(e); /* what was recorded up to now is counted */
    stall_sampler_free(e->sampler);
    stall_reader_close(e->reader, remove && !e->observer); /* an observer never removes */
    stall_agg_free(e->agg);
    free(e->dir);
    pthread_mutex_destroy(&e->drain_lock);
    pthread_mutex_destroy(&e->lock);
    pthread_cond_destroy(&e->wake);
    free(e);
}

/* ------------------------------------------------------------ diagnosis */

int stall_engine_add_detector(stall_engine_t *e, const char *name, stall_detector_fn fn, void *ctx) {
    if (!e || !fn) return stall__err("stall_engine_add_detector: engine and fn are required");
    if (!name || !*name || strlen(name) >= sizeof e->detectors[0].name)
        return stall__err("stall_engine_add_detector: name must be 1..%zu bytes", sizeof e->detectors[0].name - 1);
    int rc = 0;
    pthread_mutex_lock(&e->lock);
    for (int i = 0; i < e->ndetectors; i++)
        if (!strcmp(e->detectors[i].name, name)) {
            rc = stall__err("stall_engine_add_detector: a detector named %s is already there", name);
            goto out;
        }
    if (e->ndetectors >= MAX_DETECTORS) {
        rc = stall__err("stall_engine_add_detector: at most %d detectors per engine", MAX_DETECTORS);
        goto out;
    }
    stall__detector_t *d = &e->detectors[e->ndetectors++];
    stall__strlcpy(d->name, name, sizeof d->name);
    d->fn = fn;
    d->ctx = ctx;
out:
    pthread_mutex_unlock(&e->lock);
    return rc;
}

int stall_engine_remove_detector(stall_engine_t *e, const char *name) {
    if (!e || !name) return stall__err("stall_engine_remove_detector: engine and name are required");
    int rc = stall__err("stall_engine_remove_detector: no detector named %.64s", name);
    pthread_mutex_lock(&e->lock);
    for (int i = 0; i < e->ndetectors; i++)
        if (!strcmp(e->detectors[i].name, name)) {
            memmove(&e->detectors[i], &e->detectors[i + 1], (size_t)(e->ndetectors - i - 1) * sizeof e->detectors[0]);
            e->ndetectors--;
            rc = 0;
            break;
        }
    pthread_mutex_unlock(&e->lock);
    return rc;
}

stall_diagnosis_t *stall_engine_diagnose(stall_engine_t *e, uint64_t id, const stall_thresholds_t *th) {
    if (!e) {
        stall__err("stall_engine_diagnose: engine is NULL");
        return NULL;
    }
    stall_engine_drain(e);
    stall_analysis_in_t in;
    memset(&in, 0, sizeof in);
    char name[256];
    if (stall__agg_session_range(e->agg, id, &in.start_ns, &in.end_ns, name, sizeof name) < 0) return NULL;
    if (!in.end_ns) in.end_ns = stall_now_ns();
    in.agg = e->agg;
    in.sampler = e->sampler;
    in.session_dir = e->dir;
    in.session_id = id;
    in.session_name = name[0] ? name : NULL;
    in.op_findings = 1;
    if (th) in.th = *th;
    /* a copy of the table: a detector may be added or removed meanwhile */
    stall__detector_t det[MAX_DETECTORS];
    pthread_mutex_lock(&e->lock);
    in.ncustom = e->ndetectors;
    memcpy(det, e->detectors, (size_t)in.ncustom * sizeof det[0]);
    pthread_mutex_unlock(&e->lock);
    in.custom = det;
    stall_diagnosis_t *d = malloc(sizeof *d);
    if (!d) {
        stall__err("stall_engine_diagnose: out of memory");
        return NULL;
    }
    if (stall__analyze(&in, d) < 0) {
        free(d);
        return NULL;
    }
    return d;
}

void stall_diagnosis_free(stall_diagnosis_t *d) { free(d); }
