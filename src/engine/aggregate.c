/*
 * aggregate.c - turns span records into per-operation statistics, for the
 * whole run (session 0) and for each registered session (a time range).
 *
 * Layout: an operation is a (name, kind) pair. Every pair seen gets a dense
 * key index from one hash table; each session holds an array of op_t indexed
 * by that key, so a record costs one key lookup (usually a cache hit: per
 * process, name id -> key) and one array index per session it belongs to.
 *
 * Per thread (pid, tid) two accumulators turn the ring order of records
 * (a child ends, and is recorded, before its parent) into exact numbers:
 *   - child_ns[d]: time of the finished depth-d spans inside the currently
 *     open span at depth d-1. A record at depth d has
 *     self = dur - child_ns[d+1]; then child_ns[d+1] = 0, child_ns[d] += dur.
 *   - kind_ns[d][k]: the same, for the time covered by spans of kind k in the
 *     subtrees of those depth-d spans (nested spans of one kind counted once).
 *     A record of kind K at depth d adds dur - kind_ns[d+1][K] to the time
 *     covered by kind K (its K-descendants were already counted), then folds
 *     its subtree into level d: kind_ns[d][K] += dur, kind_ns[d][J] +=
 *     kind_ns[d+1][J] for J != K, and clears level d+1. Spans of one thread
 *     nest properly, so this is the exact per-thread union, O(kinds) a record.
 * A record belongs to a session when [start, end] lies inside the session's
 * range; then so do all its descendants, so the same increments are exact
 * per session too. Spans that cross a session's edge are not in it (neither
 * its ops nor its kind time).
 *
 * Durations go into a log-linear histogram: values below 128 ns exactly,
 * above that 128 linear sub-buckets per power of two (bucket width <= 1/128
 * of its lower bound, so a percentile read at the middle of its rank inside
 * the bucket is within 0.78%), up to 2^44 ns (~4.9 h; longer spans fall into
 * the last bucket, and percentiles are clamped to [min, max]). Counts are
 * 32-bit; when one would overflow, all buckets of that op are halved (the
 * shape, hence the percentiles, are kept).
 *
 * One mutex guards everything: the engine thread adds while readers copy.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "layout.h"

#define HIST_SUB_BITS 7u
#define HIST_SUB (1u << HIST_SUB_BITS)                 /* 128 sub-buckets */
#define HIST_TOP_BIT 44u                               /* values >= 2^44 clamp */
#define HIST_N ((HIST_TOP_BIT - HIST_SUB_BITS + 1u) * HIST_SUB) /* 4864 buckets */
#define PIDS_CAP 1024u /* distinct pids kept per op; `processes` saturates there */
#define NAME_CAP 88u
#define DEPTHS (STALL_MAX_DEPTH + 1u)
#define KINDS STALL_KIND_COUNT_

typedef struct op_t {
    stall_op_stats_t s; /* name, kind and the sums; percentiles filled on copy */
    uint32_t *pids;     /* distinct pids seen, at most PIDS_CAP */
    uint32_t npids, pids_cap, last_pid;
    uint32_t *hist;     /* HIST_N counts, allocated with the op */
    uint64_t hist_n;    /* sum of hist (differs from count after a halving) */
} op_t;

typedef struct sess_t {
    uint64_t id;
    char name[NAME_CAP];
    uint64_t begin_ns, end_ns; /* end UINT64_MAX while open */
    int open;
    op_t **ops; /* indexed by key, NULL where the session has not seen it */
    size_t ops_cap;
    uint64_t kind_ns[KINDS];
} sess_t;

typedef struct akey_t {
    char name[NAME_CAP];
    uint32_t hash;
    int kind;
} akey_t;

typedef struct thr_t {
    uint32_t pid, tid;
    uint64_t child_ns[DEPTHS];
    uint64_t kind_ns[DEPTHS][KINDS];
} thr_t;

/* name id -> key + 1 for one process of one reader (0: not cached) */
typedef struct pcache_t {
    uint32_t *key1;
} pcache_t;

struct stall_agg_t {
    pthread_mutex_t lock;
    /* keys: dense array + open-addressing index (slot = key + 1, 0 empty) */
    akey_t *keys;
    size_t nkeys, keys_cap;
    uint32_t *kidx;
    size_t kidx_cap; /* power of two */
    /* sessions: [0] is the whole run */
    sess_t *sess;
    size_t nsess, sess_cap;
    /* threads: open-addressing table of pointers */
    thr_t **thr;
    size_t nthr, thr_cap; /* power of two */
    /* name cache, valid for cache_reader only */
    const stall_reader_t *cache_reader;
    pcache_t *pc;
    size_t npc;
    uint64_t first_ns, last_ns; /* over all records, for session 0's wall time */
};

/* ------------------------------------------------------------ histogram */

static inline uint32_t hist_index(uint64_t v) {
    if (v < HIST_SUB) return (uint32_t)v;
    uint32_t k = 63u - (uint32_t)__builtin_clzll(v);
    if (k >= HIST_TOP_BIT) return HIST_N - 1u;
    uint32_t sub = (uint32_t)(v >> (k - HIST_SUB_BITS)) & (HIST_SUB - 1u);
    return (k - HIST_SUB_BITS + 1u) * HIST_SUB + sub;
}

/* Lower bound and width of bucket i. */
static inline void hist_bounds(uint32_t i, uint64_t *lo, uint64_t *width) {
    if (i < HIST_SUB) {
        *lo = i;
        *width = 1;
        return;
    }
    uint32_t m = i / HIST_SUB, sub = i % HIST_SUB, shift = m - 1u;
    *lo = (uint64_t)(HIST_SUB + sub) << shift;
    *width = 1ull << shift;
}

static void hist_add(op_t *o, uint64_t v) {
    uint32_t i = hist_index(v);
    if (STALL_UNLIKELY(o->hist[i] == UINT32_MAX)) {
        o->hist_n = 0;
        for (uint32_t j = 0; j < HIST_N; j++) {
            o->hist[j] -= o->hist[j] / 2u; /* ceil(c/2): a non-empty bucket stays non-empty */
            o->hist_n += o->hist[j];
        }
    }
    o->hist[i]++;
    o->hist_n++;
}

/* The q-quantile (0 < q <= 1): the value of rank q*n, placed at the middle
 * of its share of the bucket it falls in, clamped to [min, max]. */
static uint64_t hist_quantile(const op_t *o, double q) {
    if (o->hist_n == 0) return 0;
    double rank = q * (double)o->hist_n;
    if (rank < 1.0) rank = 1.0;
    uint64_t cum = 0, v = o->s.max_ns;
    for (uint32_t i = 0; i < HIST_N; i++) {
        uint32_t c = o->hist[i];
        if (!c) continue;
        if ((double)(cum + c) >= rank) {
            uint64_t lo, width;
            hist_bounds(i, &lo, &width);
            double j = rank - (double)cum; /* 1..c, fractional */
            double x = (double)lo + (j - 0.5) * (double)width / (double)c;
            v = x <= 0 ? 0 : (uint64_t)x; /* floor: width-1 buckets give their value */
            break;
        }
        cum += c;
    }
    if (v < o->s.min_ns) v = o->s.min_ns;
    if (v > o->s.max_ns) v = o->s.max_ns;
    return v;
}

/* ------------------------------------------------------------------ keys */

static int kidx_grow(stall_agg_t *a) {
    size_t cap = a->kidx_cap ? a->kidx_cap * 2 : 256;
    uint32_t *t = calloc(cap, sizeof *t);
    if (!t) return stall__err("stall_agg: out of memory");
    for (size_t k = 0; k < a->nkeys; k++) {
        size_t i = a->keys[k].hash & (cap - 1);
        while (t[i]) i = (i + 1) & (cap - 1);
        t[i] = (uint32_t)k + 1;
    }
    free(a->kidx);
    a->kidx = t;
    a->kidx_cap = cap;
    return 0;
}

/* Returns the key of (name, kind), making it if new; -1 when out of memory. */
static long key_get(stall_agg_t *a, const char *name, int kind) {
    size_t len;
    uint32_t h = stall__hash(name, NAME_CAP - 1, &len);
    h = (h ^ (uint32_t)kind * 0x9e3779b1u) * 16777619u;
    if ((a->nkeys + 1) * 2 > a->kidx_cap && kidx_grow(a) < 0) return -1;
    size_t i = h & (a->kidx_cap - 1);
    for (; a->kidx[i]; i = (i + 1) & (a->kidx_cap - 1)) {
        akey_t *k = &a->keys[a->kidx[i] - 1];
        if (k->hash == h && k->kind == kind && strncmp(k->name, name, len) == 0 &&
            k->name[len] == '\0')
            return (long)a->kidx[i] - 1;
    }
    if (a->nkeys == a->keys_cap) {
        size_t cap = a->keys_cap ? a->keys_cap * 2 : 64;
        akey_t *nk = realloc(a->keys, cap * sizeof *nk);
        if (!nk) return stall__err("stall_agg: out of memory");
        a->keys = nk;
        a->keys_cap = cap;
    }
    akey_t *k = &a->keys[a->nkeys];
    memcpy(k->name, name, len);
    k->name[len] = '\0';
    k->hash = h;
    k->kind = kind;
    a->kidx[i] = (uint32_t)a->nkeys + 1;
    return (long)a->nkeys++;
}

/* Key of a record of process proc: through the per-process name cache. */
static long key_of(stall_agg_t *a, stall_reader_t *r, const stall_reader_proc_t *proc,
                   uint32_t name, int kind) {
    if (a->cache_reader != r) { /* another reader: its indexes mean other processes */
        for (size_t i = 0; i < a->npc; i++) free(a->pc[i].key1);
        free(a->pc);
        a->pc = NULL;
        a->npc = 0;
        a->cache_reader = r;
    }
    uint32_t *slot = NULL;
    if (name >= 1 && name <= STALL_NAME_SLOTS) {
        if (proc->index >= a->npc) {
            size_t n = (size_t)proc->index + 8;
            pcache_t *np = realloc(a->pc, n * sizeof *np);
            if (np) {
                memset(np + a->npc, 0, (n - a->npc) * sizeof *np);
                a->pc = np;
                a->npc = n;
            }
        }
        if (proc->index < a->npc) {
            pcache_t *c = &a->pc[proc->index];
            if (!c->key1) c->key1 = calloc(STALL_NAME_SLOTS + 1u, sizeof *c->key1);
            if (c->key1) {
                slot = &c->key1[name];
                if (*slot && a->keys[*slot - 1].kind == kind) return (long)*slot - 1;
            }
        }
    }
    const char *s = stall_reader_name(r, proc->index, name);
    long k = key_get(a, s, kind);
    if (k >= 0 && slot && *s) *slot = (uint32_t)k + 1; /* "" may be a name not yet published */
    return k;
}

/* --------------------------------------------------------------- threads */

static thr_t *thr_get(stall_agg_t *a, uint32_t pid, uint32_t tid) {
    uint64_t h = ((uint64_t)pid << 32 | tid) * 0x9e3779b97f4a7c15ull;
    if (a->thr_cap) {
        for (size_t i = (size_t)(h >> 32) & (a->thr_cap - 1);; i = (i + 1) & (a->thr_cap - 1)) {
            thr_t *t = a->thr[i];
            if (!t) break;
            if (t->pid == pid && t->tid == tid) return t;
        }
    }
    if ((a->nthr + 1) * 2 > a->thr_cap) {
        size_t cap = a->thr_cap ? a->thr_cap * 2 : 64;
        thr_t **nt = calloc(cap, sizeof *nt);
        if (!nt) {
            stall__err("stall_agg: out of memory");
            return NULL;
        }
        for (size_t j = 0; j < a->thr_cap; j++) {
            thr_t *t = a->thr[j];
            if (!t) continue;
            uint64_t th = ((uint64_t)t->pid << 32 | t->tid) * 0x9e3779b97f4a7c15ull;
            size_t i = (size_t)(th >> 32) & (cap - 1);
            while (nt[i]) i = (i + 1) & (cap - 1);
            nt[i] = t;
        }
        free(a->thr);
        a->thr = nt;
        a->thr_cap = cap;
    }
    thr_t *t = calloc(1, sizeof *t);
    if (!t) {
        stall__err("stall_agg: out of memory");
        return NULL;
    }
    t->pid = pid;
    t->tid = tid;
    size_t i = (size_t)(h >> 32) & (a->thr_cap - 1);
    while (a->thr[i]) i = (i + 1) & (a->thr_cap - 1);
    a->thr[i] = t;
    a->nthr++;
    return t;
}

/* -------------------------------------------------------------- sessions */

static sess_t *sess_find(stall_agg_t *a, uint64_t id) {
    for (size_t i = 0; i < a->nsess; i++)
        if (a->sess[i].id == id) return &a->sess[i];
    return NULL;
}

static void op_free(op_t *o) {
    if (!o) return;
    free(o->pids);
    free(o->hist);
    free(o);
}

static void sess_clear(sess_t *s) {
    for (size_t k = 0; k < s->ops_cap; k++) op_free(s->ops[k]);
    free(s->ops);
    s->ops = NULL;
    s->ops_cap = 0;
}

/* The op of key k in session s, made on first use; NULL when out of memory. */
static op_t *op_get(stall_agg_t *a, sess_t *s, long k) {
    if ((size_t)k >= s->ops_cap) {
        size_t cap = s->ops_cap ? s->ops_cap : 64;
        while (cap <= (size_t)k) cap *= 2;
        op_t **no = realloc(s->ops, cap * sizeof *no);
        if (!no) goto oom;
        memset(no + s->ops_cap, 0, (cap - s->ops_cap) * sizeof *no);
        s->ops = no;
        s->ops_cap = cap;
    }
    op_t *o = s->ops[k];
    if (STALL_LIKELY(o != NULL)) return o;
    o = calloc(1, sizeof *o);
    if (!o) goto oom;
    o->hist = calloc(HIST_N, sizeof *o->hist);
    if (!o->hist) {
        free(o);
        goto oom;
    }
    memcpy(o->s.name, a->keys[k].name, NAME_CAP);
    o->s.kind = a->keys[k].kind;
    o->s.min_ns = UINT64_MAX;
    o->s.first_ns = UINT64_MAX;
    s->ops[k] = o;
    return o;
oom:
    stall__err("stall_agg: out of memory");
    return NULL;
}

static void op_pid(op_t *o, uint32_t pid) {
    if (STALL_LIKELY(pid == o->last_pid && o->npids)) return;
    o->last_pid = pid;
    for (uint32_t i = 0; i < o->npids; i++)
        if (o->pids[i] == pid) return;
    if (o->npids == PIDS_CAP) return; /* saturated: `processes` stays at PIDS_CAP */
    if (o->npids == o->pids_cap) {
        uint32_t cap = o->pids_cap ? o->pids_cap * 2 : 4;
        uint32_t *np = realloc(o->pids, cap * sizeof *np);
        if (!np) return; /* a lower count, not a failure */
        o->pids = np;
        o->pids_cap = cap;
    }
    o->pids[o->npids++] = pid;
}

/* ------------------------------------------------------------ public API */

stall_agg_t *stall_agg_new(void) {
    stall_agg_t *a = calloc(1, sizeof *a);
    if (!a) goto fail;
    a->sess = calloc(4, sizeof *a->sess);
    if (!a->sess) goto fail;
    a->sess_cap = 4;
    a->nsess = 1;
    stall__strlcpy(a->sess[0].name, "run", NAME_CAP);
    a->sess[0].end_ns = UINT64_MAX;
    a->sess[0].open = 1;
    a->first_ns = UINT64_MAX;
    if (pthread_mutex_init(&a->lock, NULL) != 0) goto fail;
    return a;
fail:
    if (a) free(a->sess);
    free(a);
    stall__err("stall_agg_new: out of memory");
    return NULL;
}

void stall_agg_free(stall_agg_t *a) {
    if (!a) return;
    for (size_t i = 0; i < a->nsess; i++) sess_clear(&a->sess[i]);
    free(a->sess);
    for (size_t i = 0; i < a->thr_cap; i++) free(a->thr[i]);
    free(a->thr);
    for (size_t i = 0; i < a->npc; i++) free(a->pc[i].key1);
    free(a->pc);
    free(a->keys);
    free(a->kidx);
    pthread_mutex_destroy(&a->lock);
    free(a);
}

int stall_agg_session_begin(stall_agg_t *a, uint64_t id, const char *name, uint64_t t_ns) {
    if (!a) return stall__err("stall_agg_session_begin: aggregator is NULL");
    if (id == 0) return stall__err("stall_agg_session_begin: id must be > 0 (0 is the whole run)");
    int rc = -1;
    pthread_mutex_lock(&a->lock);
    if (sess_find(a, id)) {
        stall__err("stall_agg_session_begin: session id %llu is already in use",
                   (unsigned long long)id);
        goto out;
    }
    if (a->nsess == a->sess_cap) {
        size_t cap = a->sess_cap * 2;
        sess_t *ns = realloc(a->sess, cap * sizeof *ns);
        if (!ns) {
            stall__err("stall_agg_session_begin: out of memory");
            goto out;
        }
        a->sess = ns;
        a->sess_cap = cap;
    }
    sess_t *s = &a->sess[a->nsess++];
    memset(s, 0, sizeof *s);
    s->id = id;
    stall__strlcpy(s->name, name ? name : "", NAME_CAP);
    s->begin_ns = t_ns;
    s->end_ns = UINT64_MAX;
    s->open = 1;
    rc = 0;
out:
    pthread_mutex_unlock(&a->lock);
    return rc;
}

int stall_agg_session_end(stall_agg_t *a, uint64_t id, uint64_t t_ns) {
    if (!a) return stall__err("stall_agg_session_end: aggregator is NULL");
    if (id == 0) return stall__err("stall_agg_session_end: id must be > 0 (session 0 never ends)");
    int rc = -1;
    pthread_mutex_lock(&a->lock);
    sess_t *s = sess_find(a, id);
    if (!s) {
        stall__err("stall_agg_session_end: unknown session id %llu", (unsigned long long)id);
    } else if (!s->open) {
        stall__err("stall_agg_session_end: session id %llu already ended", (unsigned long long)id);
    } else if (t_ns < s->begin_ns) {
        stall__err("stall_agg_session_end: t_ns is before the session's begin");
    } else {
        s->end_ns = t_ns;
        s->open = 0;
        rc = 0;
    }
    pthread_mutex_unlock(&a->lock);
    return rc;
}

/* Adds one finished span to session s. */
static inline int add_to(stall_agg_t *a, sess_t *s, long k, const stall_record_t *rec,
                         uint64_t dur, uint64_t self, int kt, uint64_t kdelta) {
    op_t *o = op_get(a, s, k);
    if (!o) return -1;
    stall_op_stats_t *st = &o->s;
    st->count++;
    st->total_ns += dur;
    st->self_ns += self;
    if (dur < st->min_ns) st->min_ns = dur;
    if (dur > st->max_ns) st->max_ns = dur;
    if (rec->flags & STALL_REC_HAS_CPU) {
        st->cpu_ns += rec->cpu_ns;
        st->cpu_count++;
    }
    st->arg_sum += rec->arg;
    if (rec->start_ns < st->first_ns) st->first_ns = rec->start_ns;
    if (rec->end_ns > st->last_ns) st->last_ns = rec->end_ns;
    op_pid(o, rec->pid);
    hist_add(o, dur);
    if (kt >= 0) s->kind_ns[kt] += kdelta;
    return 0;
}

int stall_agg_add(stall_agg_t *a, stall_reader_t *r, const stall_reader_proc_t *proc,
                  const stall_record_t *recs, size_t n) {
    if (!a) return stall__err("stall_agg_add: aggregator is NULL");
    if (!r) return stall__err("stall_agg_add: reader is NULL (names are resolved through it)");
    if (!proc) return stall__err("stall_agg_add: proc is NULL");
    if (!recs && n) return stall__err("stall_agg_add: recs is NULL");
    const uint16_t skip = STALL_REC_INSTANT | STALL_REC_SESSION_BEGIN | STALL_REC_SESSION_END |
                          STALL_REC_OPEN;
    int rc = 0;
    pthread_mutex_lock(&a->lock);
    for (size_t i = 0; i < n; i++) {
        const stall_record_t *rec = &recs[i];
        if (rec->flags & skip) continue;
        long k = key_of(a, r, proc, rec->name, rec->kind);
        if (k < 0) goto fail;
        thr_t *t = thr_get(a, rec->pid, rec->tid);
        if (!t) goto fail;
        uint32_t d = rec->depth < STALL_MAX_DEPTH ? rec->depth : STALL_MAX_DEPTH - 1;
        if (rec->flags & STALL_REC_TRUNCATED) {
            /* no end: only counted. Its finished children stay counted; the
             * thread is dead, so clear what it left at the level below. */
            t->child_ns[d + 1] = 0;
            memset(t->kind_ns[d + 1], 0, sizeof t->kind_ns[d + 1]);
            for (size_t j = 0; j < a->nsess; j++) {
                sess_t *s = &a->sess[j];
                if (j && (rec->start_ns < s->begin_ns || rec->start_ns > s->end_ns)) continue;
                op_t *o = op_get(a, s, k);
                if (!o) goto fail;
                o->s.truncated++;
                op_pid(o, rec->pid);
            }
            continue;
        }
        uint64_t dur = rec->end_ns > rec->start_ns ? rec->end_ns - rec->start_ns : 0;
        /* self time */
        uint64_t ch = t->child_ns[d + 1];
        uint64_t self = dur > ch ? dur - ch : 0;
        t->child_ns[d + 1] = 0;
        t->child_ns[d] += dur;
        /* kind time: see the top of the file */
        int kt = rec->kind < KINDS ? rec->kind : -1;
        uint64_t kdelta = 0;
        uint64_t *below = t->kind_ns[d + 1], *here = t->kind_ns[d];
        for (int j = 0; j < (int)KINDS; j++) {
            if (j == kt) {
                kdelta = dur > below[j] ? dur - below[j] : 0;
                here[j] += dur;
            } else {
                here[j] += below[j];
            }
            below[j] = 0;
        }
        if (rec->start_ns < a->first_ns) a->first_ns = rec->start_ns;
        if (rec->end_ns > a->last_ns) a->last_ns = rec->end_ns;
        for (size_t j = 0; j < a->nsess; j++) {
            sess_t *s = &a->sess[j];
            if (j && (rec->start_ns < s->begin_ns || rec->end_ns > s->end_ns)) continue;
            if (add_to(a, s, k, rec, dur, self, kt, kdelta) < 0) goto fail;
        }
    }
    goto out;
fail:
    rc = -1;
out:
    pthread_mutex_unlock(&a->lock);
    return rc;
}

typedef struct drain_ctx_t {
    stall_agg_t *a;
    stall_reader_t *r;
    int failed;
} drain_ctx_t;

static int drain_cb(void *ctx, const stall_reader_proc_t *proc, const stall_record_t *recs,
                    size_t n) {
    drain_ctx_t *c = ctx;
    if (stall_agg_add(c->a, c->r, proc, recs, n) < 0) {
        c->failed = 1;
        return 1;
    }
    return 0;
}

ssize_t stall_agg_drain(stall_agg_t *a, stall_reader_t *r) {
    if (!a) return stall__err("stall_agg_drain: aggregator is NULL");
    if (!r) return stall__err("stall_agg_drain: reader is NULL");
    drain_ctx_t c = {a, r, 0};
    ssize_t n = stall_reader_drain(r, drain_cb, &c);
    if (c.failed) return -1; /* stall_agg_add's error stays */
    return n;
}

static int op_cmp(const void *x, const void *y) {
    const op_t *a = *(op_t *const *)x, *b = *(op_t *const *)y;
    if (a->s.total_ns != b->s.total_ns) return a->s.total_ns > b->s.total_ns ? -1 : 1;
    int c = strcmp(a->s.name, b->s.name);
    if (c) return c;
    return a->s.kind - b->s.kind;
}

ssize_t stall_agg_ops(stall_agg_t *a, uint64_t id, stall_op_stats_t *out, size_t cap) {
    if (!a) return stall__err("stall_agg_ops: aggregator is NULL");
    if (!out && cap) return stall__err("stall_agg_ops: out is NULL");
    ssize_t rc = -1;
    op_t **v = NULL;
    pthread_mutex_lock(&a->lock);
    sess_t *s = sess_find(a, id);
    if (!s) {
        stall__err("stall_agg_ops: unknown session id %llu", (unsigned long long)id);
        goto out;
    }
    size_t n = 0;
    for (size_t k = 0; k < s->ops_cap; k++)
        if (s->ops[k]) n++;
    if (n) {
        v = malloc(n * sizeof *v);
        if (!v) {
            stall__err("stall_agg_ops: out of memory");
            goto out;
        }
        n = 0;
        for (size_t k = 0; k < s->ops_cap; k++)
            if (s->ops[k]) v[n++] = s->ops[k];
        qsort(v, n, sizeof *v, op_cmp);
    }
    for (size_t i = 0; i < n && i < cap; i++) {
        const op_t *o = v[i];
        out[i] = o->s;
        if (o->s.count == 0) {
            out[i].min_ns = 0;
            out[i].first_ns = 0;
        }
        out[i].processes = o->npids;
        out[i].p50_ns = hist_quantile(o, 0.50);
        out[i].p95_ns = hist_quantile(o, 0.95);
        out[i].p99_ns = hist_quantile(o, 0.99);
    }
    rc = (ssize_t)n;
out:
    pthread_mutex_unlock(&a->lock);
    free(v);
    return rc;
}

int stall__agg_session_range(stall_agg_t *a, uint64_t id, uint64_t *begin_ns, uint64_t *end_ns, char *name,
                             size_t name_cap) {
    if (!a) return stall__err("stall__agg_session_range: aggregator is NULL");
    int rc = 0;
    pthread_mutex_lock(&a->lock);
    if (name_cap) name[0] = 0;
    if (id == 0) {
        *begin_ns = a->first_ns != UINT64_MAX ? a->first_ns : 0;
        *end_ns = a->last_ns;
    } else {
        sess_t *s = sess_find(a, id);
        if (s) {
            *begin_ns = s->begin_ns;
            *end_ns = s->open ? 0 : s->end_ns;
            if (name_cap) stall__strlcpy(name, s->name, name_cap);
        } else {
            rc = stall__err("unknown session id %llu", (unsigned long long)id);
        }
    }
    pthread_mutex_unlock(&a->lock);
    return rc;
}

uint64_t stall_agg_session_wall_ns(stall_agg_t *a, uint64_t id) {
    if (!a) return 0;
    uint64_t w = 0;
    pthread_mutex_lock(&a->lock);
    if (id == 0) {
        /* the whole run: from the first recorded start to the last end */
        if (a->first_ns != UINT64_MAX && a->last_ns > a->first_ns) w = a->last_ns - a->first_ns;
    } else {
        sess_t *s = sess_find(a, id);
        if (s) {
            uint64_t end = s->open ? stall__clock_ns(CLOCK_MONOTONIC) : s->end_ns;
            w = end > s->begin_ns ? end - s->begin_ns : 0;
        }
    }
    pthread_mutex_unlock(&a->lock);
    return w;
}

int stall_agg_kind_time(stall_agg_t *a, uint64_t id, uint64_t *out_ns) {
    if (!a || !out_ns) return stall__err("stall_agg_kind_time: aggregator and out_ns are required");
    int rc = -1;
    pthread_mutex_lock(&a->lock);
    sess_t *s = sess_find(a, id);
    if (s) {
        memcpy(out_ns, s->kind_ns, sizeof s->kind_ns);
        rc = 0;
    } else {
        stall__err("stall_agg_kind_time: unknown session id %llu", (unsigned long long)id);
    }
    pthread_mutex_unlock(&a->lock);
    return rc;
}
