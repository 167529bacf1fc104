/*
 * test_observer.c - observer readers (stall_reader_open_observer) beside the
 * primary one, on 64-record rings:
 *   - the primary and an observer both get every record of several threads
 *     (slots reused by later threads) and of a forked child, in order; the
 *     primary unlinking the dead child's file does not break the observer;
 *   - an observer never frees ring space: the producer drops by the
 *     primary's position only (and alone, an observer frees nothing);
 *   - an observer that drains rarely while the primary drains often reports
 *     lost records and never delivers a torn one;
 *   - truncated spans of a dead process and open spans of a live one;
 *   - close(r, 1) and stall_engine_free(e, 1) of observers keep the
 *     directory; an observer engine aggregates beside a primary reader.
 * Every record written here is self-checking: stall_complete with
 * start_ns = seq + 1 and arg = seq.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/wait.h>
#include <time.h>

#include <cmocka.h>

#include "test_util.h"

#define RING 64u
#define NTHR 3
#define ROUNDS 10
#define PER_ROUND 40u /* spans per thread between drains: fits a 64-record ring */

static char g_base[512];
static const char *g_dir;
static stall_session_t *g_sess;
static stall_reader_t *g_obs[2]; /* observers a test holds (closed by the teardown) */

static int group_setup(void **state) {
    (void)state;
    return tu_session_start(g_base, sizeof g_base, "observer", RING, &g_sess, &g_dir);
}

static int group_teardown(void **state) {
    (void)state;
    tu_session_end(g_sess, g_dir, g_base);
    return 0;
}

static int teardown(void **state) {
    for (int i = 0; i < 2; i++) {
        if (g_obs[i]) stall_reader_close(g_obs[i], 0);
        g_obs[i] = NULL;
    }
    return tu_teardown_reader(state);
}

static stall_reader_t *obs_open(int i) {
    g_obs[i] = stall_reader_open_observer(g_dir);
    if (!g_obs[i]) fail_msg("stall_reader_open_observer: %s", stall_last_error());
    return g_obs[i];
}

static void obs_close(int i) {
    stall_reader_close(g_obs[i], 0);
    g_obs[i] = NULL;
}

/* Writes spans seq = first .. first+n-1 of `name` on the calling thread. */
static void write_seq(stall_name_t name, uint64_t first, uint64_t n) {
    for (uint64_t k = first; k < first + n; k++) stall_complete(STALL_KIND_DATA_LOADING, name, k + 1, k);
}

/* 1 when a record is exactly what write_seq wrote (a torn one is not). */
static int rec_ok(const stall_record_t *r, stall_name_t name) {
    return r->name == name && r->start_ns == r->arg + 1 && r->start_ns <= r->end_ns &&
           r->kind == STALL_KIND_DATA_LOADING && r->depth == 0 && r->flags == 0;
}

/* Checks that the records of `name` in c from thread tid are seq 0..n-1 in
 * order, each intact. */
static void check_seq(const tu_coll_t *c, stall_name_t name, uint32_t tid, uint64_t n, const char *who) {
    uint64_t next = 0;
    for (size_t i = 0; i < c->n; i++) {
        const stall_record_t *r = &c->v[i].rec;
        if (r->name != name || r->tid != tid) continue;
        if (!rec_ok(r, name) || r->arg != next)
            fail_msg("%s: tid %u: record seq %llu (start %llu) where %llu was due", who, tid,
                     (unsigned long long)r->arg, (unsigned long long)r->start_ns, (unsigned long long)next);
        next++;
    }
    if (next != n) fail_msg("%s: tid %u: %llu records, want %llu", who, tid, (unsigned long long)next,
                            (unsigned long long)n);
}

static int discard_cb(void *ctx, const stall_reader_proc_t *p, const stall_record_t *r, size_t n) {
    (void)ctx, (void)p, (void)r, (void)n;
    return 0;
}

/* ------------------------------------------------- threads and a child */

typedef struct thr_arg_t {
    stall_name_t name;
    pthread_barrier_t *wrote, *drained;
    _Atomic uint32_t tid;
} thr_arg_t;

static void *round_writer(void *arg) {
    thr_arg_t *a = arg;
    atomic_store(&a->tid, (uint32_t)gettid());
    for (uint64_t r = 0; r < ROUNDS; r++) {
        write_seq(a->name, r * PER_ROUND, PER_ROUND);
        pthread_barrier_wait(a->wrote);
        pthread_barrier_wait(a->drained); /* the primary made room */
    }
    return NULL;
}

/* Threads write in rounds, both readers drain between rounds. Twice, so that
 * the second set of threads reuses the slots the first one retired. */
static void test_threads_seen_by_both(void **state) {
    (void)state;
    stall_reader_t *p = tu_reader_open(g_dir);
    assert_non_null(p);
    stall_reader_t *o = obs_open(0);
    assert_true(stall_reader_drain(p, discard_cb, NULL) >= 0);
    assert_true(stall_reader_drain(o, discard_cb, NULL) >= 0);
    for (int pass = 0; pass < 2; pass++) {
        tu_coll_t cp = {0}, co = {0};
        char nm[32];
        snprintf(nm, sizeof nm, "obs-threads-%d", pass);
        stall_name_t name = stall_intern(nm);
        pthread_barrier_t wrote, drained;
        pthread_barrier_init(&wrote, NULL, NTHR + 1);
        pthread_barrier_init(&drained, NULL, NTHR + 1);
        thr_arg_t args[NTHR];
        pthread_t th[NTHR];
        for (int i = 0; i < NTHR; i++) {
            args[i] = (thr_arg_t){.name = name, .wrote = &wrote, .drained = &drained};
            assert_int_equal(pthread_create(&th[i], NULL, round_writer, &args[i]), 0);
        }
        for (int r = 0; r < ROUNDS; r++) {
            pthread_barrier_wait(&wrote);
            if (r % 2) { /* either reader may go first */
                tu_drain_all(o, &co);
                tu_drain_all(p, &cp);
            } else {
                tu_drain_all(p, &cp);
                tu_drain_all(o, &co);
            }
            pthread_barrier_wait(&drained);
        }
        for (int i = 0; i < NTHR; i++) pthread_join(th[i], NULL);
        tu_drain_all(p, &cp);
        tu_drain_all(o, &co);
        for (int i = 0; i < NTHR; i++) {
            check_seq(&cp, name, args[i].tid, ROUNDS * PER_ROUND, "primary");
            check_seq(&co, name, args[i].tid, ROUNDS * PER_ROUND, "observer");
        }
        assert_false(co.bad_run);
        pthread_barrier_destroy(&wrote);
        pthread_barrier_destroy(&drained);
        tu_coll_free(&cp);
        tu_coll_free(&co);
    }
    stall_reader_proc_t me = {0};
    assert_int_equal(tu_find_proc(o, (uint32_t)getpid(), &me), 0);
    assert_int_equal(me.observer_lost, 0);
    assert_int_equal(tu_find_proc(p, (uint32_t)getpid(), &me), 0);
    assert_int_equal(me.observer_lost, 0);
    obs_close(0);
    tu_reader_close(p, 0);
}

/* A forked child writes, tells us, waits, writes again and exits. The
 * observer maps its file while it lives; the primary then drains it dead and
 * unlinks the file; the observer still gets everything. */
static void test_forked_child_and_unlink(void **state) {
    (void)state;
    stall_name_t name = stall_intern("obs-child");
    stall_reader_t *p = tu_reader_open(g_dir);
    assert_non_null(p);
    stall_reader_t *o = obs_open(0);
    assert_true(stall_reader_drain(p, discard_cb, NULL) >= 0);
    assert_true(stall_reader_drain(o, discard_cb, NULL) >= 0);
    int up[2], down[2];
    assert_int_equal(pipe(up), 0);
    assert_int_equal(pipe(down), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char b = 0;
        write_seq(name, 0, PER_ROUND);
        if (write(up[1], "x", 1) != 1 || read(down[0], &b, 1) != 1) _exit(3);
        write_seq(name, PER_ROUND, PER_ROUND);
        exit(0); /* normal exit: the file is marked closed */
    }
    char b = 0;
    assert_int_equal(read(up[0], &b, 1), 1);
    tu_coll_t cp = {0}, co = {0};
    tu_drain_all(o, &co); /* maps the child's file */
    tu_drain_all(p, &cp);
    assert_int_equal(write(down[1], "y", 1), 1);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    tu_drain_all(p, &cp); /* dead and emptied: the primary unlinks its file */
    stall_reader_proc_t cpr = {0};
    assert_int_equal(tu_find_proc(p, (uint32_t)pid, &cpr), 0);
    assert_int_equal(cpr.alive, 0);
    DIR *d = opendir(g_dir);
    assert_non_null(d);
    char prefix[32];
    snprintf(prefix, sizeof prefix, "p-%d-", (int)pid);
    struct dirent *e;
    while ((e = readdir(d))) assert_int_not_equal(strncmp(e->d_name, prefix, strlen(prefix)), 0);
    closedir(d);
    tu_drain_all(o, &co);
    check_seq(&cp, name, (uint32_t)pid, 2 * PER_ROUND, "primary");
    check_seq(&co, name, (uint32_t)pid, 2 * PER_ROUND, "observer");
    assert_int_equal(tu_find_proc(o, (uint32_t)pid, &cpr), 0);
    assert_int_equal(cpr.alive, 0);
    assert_int_equal(cpr.closed, 1);
    assert_int_equal(cpr.observer_lost, 0);
    assert_int_equal(cpr.records_read, 2 * PER_ROUND);
    /* a second observer opened now never sees the unlinked file */
    stall_reader_t *late = obs_open(1);
    tu_coll_t cl = {0};
    tu_drain_all(late, &cl);
    assert_int_equal(tu_find_proc(late, (uint32_t)pid, NULL), -1);
    obs_close(1);
    tu_coll_free(&cl);
    close(up[0]), close(up[1]), close(down[0]), close(down[1]);
    tu_coll_free(&cp);
    tu_coll_free(&co);
    obs_close(0);
    tu_reader_close(p, 0);
}

/* ----------------------------------------------- never frees ring space */

static uint64_t dropped_seen(stall_reader_t *r) {
    stall_reader_proc_t me = {0};
    assert_int_equal(tu_find_proc(r, (uint32_t)getpid(), &me), 0);
    return me.dropped;
}

static void test_observer_frees_nothing(void **state) {
    (void)state;
    stall_name_t name = stall_intern("obs-full");
    stall_reader_t *p = tu_reader_open(g_dir);
    assert_non_null(p);
    stall_reader_t *o = obs_open(0);
    assert_true(stall_reader_drain(p, discard_cb, NULL) >= 0);
    assert_true(stall_reader_drain(o, discard_cb, NULL) >= 0);
    uint64_t d0 = dropped_seen(p);
    write_seq(name, 0, RING); /* exactly fills the ring */
    tu_coll_t co = {0}, cp = {0};
    tu_drain_all(o, &co);
    check_seq(&co, name, (uint32_t)gettid(), RING, "observer");
    assert_int_equal(dropped_seen(o), d0);
    write_seq(name, RING, 10); /* the observer's drain freed nothing: all dropped */
    assert_int_equal(dropped_seen(o), d0 + 10);
    tu_drain_all(o, &co);
    assert_int_equal(co.n, RING);
    tu_drain_all(p, &cp); /* the primary frees the room */
    check_seq(&cp, name, (uint32_t)gettid(), RING, "primary");
    write_seq(name, RING, 10);
    assert_int_equal(dropped_seen(p), d0 + 10);
    tu_drain_all(o, &co);
    check_seq(&co, name, (uint32_t)gettid(), RING + 10, "observer");
    tu_coll_free(&co);
    tu_coll_free(&cp);
    /* with the primary closed, an observer alone frees nothing either */
    tu_reader_close(p, 0);
    stall_reader_t *o2 = obs_open(1);
    tu_coll_t c2 = {0};
    tu_drain_all(o2, &c2); /* history: the last records still in the ring */
    uint64_t d1 = dropped_seen(o2);
    write_seq(name, 1000, RING + 5); /* 10 unread records take room: 54 fit, 15 dropped */
    assert_int_equal(dropped_seen(o2), d1 + 15);
    p = tu_reader_open(g_dir);
    assert_non_null(p);
    assert_true(stall_reader_drain(p, discard_cb, NULL) >= 0);
    tu_coll_free(&c2);
    obs_close(1);
    obs_close(0);
    tu_reader_close(p, 0);
}

/* ------------------------------------------------- overwrite detection */

typedef struct hammer_t {
    stall_name_t name;
    uint64_t n;
    _Atomic int started, seen, done, give_up;
    _Atomic uint32_t tid;
    _Atomic uint64_t consumed; /* records the primary has drained: the producer stays a ring behind */
    stall_reader_t *primary;
    uint64_t primary_got, primary_bad, primary_next;
} hammer_t;

static void *hammer(void *arg) {
    hammer_t *h = arg;
    atomic_store(&h->tid, (uint32_t)gettid());
    write_seq(h->name, 0, 1);
    atomic_store(&h->started, 1);
    while (!atomic_load(&h->seen)) sched_yield(); /* the observer found the slot */
    for (uint64_t k = 1; k < h->n; k++) {
        while (k - atomic_load(&h->consumed) >= RING && !atomic_load(&h->give_up)) sched_yield();
        write_seq(h->name, k, 1);
    }
    atomic_store(&h->done, 1);
    return NULL;
}

static int primary_cb(void *ctx, const stall_reader_proc_t *p, const stall_record_t *recs, size_t n) {
    hammer_t *h = ctx;
    (void)p;
    for (size_t i = 0; i < n; i++) {
        if (recs[i].name != h->name) continue;
        if (!rec_ok(&recs[i], h->name) || recs[i].arg < h->primary_next) h->primary_bad++;
        h->primary_next = recs[i].arg + 1;
        h->primary_got++;
    }
    return 0;
}

static void *primary_loop(void *arg) {
    hammer_t *h = arg;
    while (!atomic_load(&h->done)) {
        stall_reader_drain(h->primary, primary_cb, h);
        atomic_store(&h->consumed, h->primary_got);
        if (h->primary_bad) atomic_store(&h->give_up, 1);
    }
    stall_reader_drain(h->primary, primary_cb, h);
    return NULL;
}

typedef struct obs_check_t {
    stall_name_t name;
    uint64_t got, bad, next;
} obs_check_t;

/* A run handed to the callback is consecutive ring positions of one thread
 * and nothing is dropped here: within a run the seqs follow each other (a
 * record of another lap of the ring would not). */
static int obs_cb(void *ctx, const stall_reader_proc_t *p, const stall_record_t *recs, size_t n) {
    obs_check_t *c = ctx;
    int in_run = 0;
    (void)p;
    for (size_t i = 0; i < n; i++) {
        if (recs[i].name != c->name) continue;
        if (!rec_ok(&recs[i], c->name) || recs[i].arg < c->next || (in_run && recs[i].arg != c->next)) c->bad++;
        in_run = 1;
        c->next = recs[i].arg + 1;
        c->got++;
    }
    return 0;
}

static void test_overwrite_detected(void **state) {
    (void)state;
    hammer_t h = {.name = stall_intern("obs-hammer"), .n = 400000};
    h.primary = tu_reader_open(g_dir);
    assert_non_null(h.primary);
    stall_reader_t *o = obs_open(0);
    assert_true(stall_reader_drain(h.primary, discard_cb, NULL) >= 0);
    assert_true(stall_reader_drain(o, discard_cb, NULL) >= 0);
    pthread_t th, pr;
    assert_int_equal(pthread_create(&th, NULL, hammer, &h), 0);
    while (!atomic_load(&h.started)) sched_yield();
    obs_check_t oc = {.name = h.name};
    assert_true(stall_reader_drain(o, obs_cb, &oc) >= 0); /* first sight: before the primary took any */
    assert_int_equal(oc.got, 1);
    stall_reader_proc_t before = {0};
    assert_int_equal(tu_find_proc(o, (uint32_t)getpid(), &before), 0);
    assert_int_equal(pthread_create(&pr, NULL, primary_loop, &h), 0);
    atomic_store(&h.seen, 1);
    struct timespec pause = {0, 200000}; /* 0.2 ms: a ring's worth and more goes by */
    while (!atomic_load(&h.done)) {
        nanosleep(&pause, NULL);
        assert_true(stall_reader_drain(o, obs_cb, &oc) >= 0);
    }
    pthread_join(th, NULL);
    pthread_join(pr, NULL);
    assert_true(stall_reader_drain(o, obs_cb, &oc) >= 0);
    stall_reader_proc_t after = {0};
    assert_int_equal(tu_find_proc(o, (uint32_t)getpid(), &after), 0);
    assert_int_equal(after.dropped - before.dropped, 0);
    uint64_t written = h.n;
    uint64_t lost = after.observer_lost - before.observer_lost;
    print_message("observer: %llu delivered, %llu lost; primary %llu of %llu\n", (unsigned long long)oc.got,
                  (unsigned long long)lost, (unsigned long long)h.primary_got, (unsigned long long)h.n);
    assert_int_equal(oc.bad, 0);
    assert_int_equal(h.primary_bad, 0);
    assert_int_equal(h.primary_got, written);
    assert_true(lost > 0);
    assert_int_equal(oc.got + lost, written);
    obs_close(0);
    tu_reader_close(h.primary, 0);
}

/* Deterministic: the observer's callback is this thread, the producer. The
 * observer snapshots write_pos, copies the ring up to the wrap and hands that
 * run over; the callback then rewrites the part after the wrap (the primary
 * making room) before the observer copies it. Those copies must be thrown
 * away and counted, the rest delivered. */
typedef struct mid_t {
    stall_name_t name;
    stall_reader_t *primary;
    int rewrite;     /* 1: rewrite the ring from the first run's callback */
    int calls;       /* callback runs that held records of ours */
    size_t first_run; /* records of ours in the first one */
    uint64_t next, got, bad;
} mid_t;

static int mid_cb(void *ctx, const stall_reader_proc_t *p, const stall_record_t *recs, size_t n) {
    mid_t *m = ctx;
    size_t mine = 0;
    (void)p;
    for (size_t i = 0; i < n; i++) {
        if (recs[i].name != m->name || recs[i].tid != (uint32_t)gettid()) continue;
        if (!rec_ok(&recs[i], m->name) || recs[i].arg < m->next || (mine && recs[i].arg != m->next)) m->bad++;
        m->next = recs[i].arg + 1;
        mine++;
    }
    if (!mine) return 0;
    m->got += mine;
    if (++m->calls == 1) m->first_run = mine;
    if (m->rewrite && m->calls == 1)
        for (uint64_t k = 64; k < 64 + 37; k++) {
            assert_true(stall_reader_drain(m->primary, discard_cb, NULL) >= 0);
            write_seq(m->name, k, 1);
        }
    return 0;
}

static void test_overwrite_during_copy(void **state) {
    (void)state;
    stall_reader_t *p = tu_reader_open(g_dir);
    assert_non_null(p);
    stall_reader_t *o = obs_open(0);
    assert_true(stall_reader_drain(p, discard_cb, NULL) >= 0);
    assert_true(stall_reader_drain(o, discard_cb, NULL) >= 0);
    /* find where the ring stands (W % 64), then move it to 32 */
    mid_t m = {.name = stall_intern("obs-mid-fill"), .primary = p};
    write_seq(m.name, 0, RING); /* a full ring: the observer gets all of it */
    assert_true(stall_reader_drain(o, mid_cb, &m) >= 0);
    assert_int_equal(m.got, RING);
    assert_int_equal(m.bad, 0);
    uint64_t at = m.calls == 1 ? 0 : RING - m.first_run;
    assert_true(stall_reader_drain(p, discard_cb, NULL) >= 0);
    write_seq(m.name, RING, (32 + RING - at) % RING);
    assert_true(stall_reader_drain(p, discard_cb, NULL) >= 0);
    assert_true(stall_reader_drain(o, discard_cb, NULL) >= 0);
    stall_reader_proc_t before = {0}, after = {0};
    assert_int_equal(tu_find_proc(o, (uint32_t)getpid(), &before), 0);

    /* seq 0..63 fill the ring from index 32: runs 0..31 and 32..63. During
     * the first run's callback, seq 64..100 go to positions W+64..W+100:
     * indexes 32..63 (copied already) and 0..4 (seq 32..36, not yet). */
    m = (mid_t){.name = stall_intern("obs-mid"), .primary = p, .rewrite = 1};
    write_seq(m.name, 0, RING);
    assert_true(stall_reader_drain(o, mid_cb, &m) >= 0);
    assert_int_equal(m.bad, 0);
    assert_int_equal(m.first_run, 32);
    assert_int_equal(m.calls, 2);
    /* seq 32..36 were overwritten, and 37 sits where the producer may be
     * writing (write_pos - p = 64): 6 lost, 38..63 delivered */
    assert_int_equal(m.got, 32 + 26);
    assert_int_equal(tu_find_proc(o, (uint32_t)getpid(), &after), 0);
    assert_int_equal(after.observer_lost - before.observer_lost, 6);
    m.rewrite = 0;
    assert_true(stall_reader_drain(o, mid_cb, &m) >= 0); /* then seq 64..100, intact */
    assert_int_equal(m.bad, 0);
    assert_int_equal(m.got, 32 + 26 + 37);
    assert_int_equal(m.next, 101);
    assert_true(stall_reader_drain(p, discard_cb, NULL) >= 0);
    obs_close(0);
    tu_reader_close(p, 0);
}

/* --------------------------------------------- open and truncated spans */

static int count_flag(const tu_coll_t *c, uint32_t pid, uint16_t flag) {
    int n = 0;
    for (size_t i = 0; i < c->n; i++)
        if (c->v[i].rec.pid == pid && (c->v[i].rec.flags & flag) && c->v[i].rec.end_ns == 0) n++;
    return n;
}

static void test_open_and_truncated(void **state) {
    (void)state;
    stall_reader_t *p = tu_reader_open(g_dir);
    assert_non_null(p);
    stall_reader_t *o = obs_open(0);
    int up[2];
    assert_int_equal(pipe(up), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        stall_begin(STALL_KIND_STEP, "obs-outer");
        stall_begin(STALL_KIND_IO, "obs-inner");
        if (write(up[1], "x", 1) != 1) _exit(3);
        for (;;) pause(); /* killed with both spans open */
    }
    char b;
    assert_int_equal(read(up[0], &b, 1), 1);
    tu_coll_t open_o = {0}, co = {0}, cp = {0};
    assert_true(stall_reader_open_spans(o, tu_collect_cb, &open_o) >= 2);
    assert_int_equal(count_flag(&open_o, (uint32_t)pid, STALL_REC_OPEN), 2);
    kill(pid, SIGKILL);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    tu_drain_all(o, &co);
    tu_drain_all(p, &cp);
    assert_int_equal(count_flag(&co, (uint32_t)pid, STALL_REC_TRUNCATED), 2);
    assert_int_equal(count_flag(&cp, (uint32_t)pid, STALL_REC_TRUNCATED), 2);
    stall_reader_proc_t pr = {0};
    assert_int_equal(tu_find_proc(o, (uint32_t)pid, &pr), 0);
    assert_int_equal(pr.alive, 0);
    assert_int_equal(pr.closed, 0);
    /* names of a finalized process survive its mapping */
    for (size_t i = 0; i < co.n; i++)
        if (co.v[i].rec.pid == (uint32_t)pid && co.v[i].rec.kind == STALL_KIND_IO)
            assert_string_equal(stall_reader_name(o, co.v[i].proc_index, co.v[i].rec.name), "obs-inner");
    tu_coll_reset(&co);
    tu_drain_all(o, &co); /* delivered once */
    assert_int_equal(count_flag(&co, (uint32_t)pid, STALL_REC_TRUNCATED), 0);
    close(up[0]), close(up[1]);
    tu_coll_free(&open_o);
    tu_coll_free(&co);
    tu_coll_free(&cp);
    obs_close(0);
    tu_reader_close(p, 0);
}

/* --------------------------------------------------- lifetime, engine */

static void test_close_keeps_dir_and_errors(void **state) {
    (void)state;
    assert_null(stall_reader_open_observer(NULL));
    assert_null(stall_reader_open_observer(""));
    assert_null(stall_reader_open_observer(g_base)); /* no meta.json */
    assert_non_null(strstr(stall_last_error(), "not a stall session"));
    stall_reader_t *o = obs_open(0);
    stall_reader_t *o2 = obs_open(1); /* observers do not exclude each other */
    stall_reader_t *p = tu_reader_open(g_dir); /* nor the primary */
    assert_non_null(p);
    assert_string_equal(stall_reader_session_name(o), "observer");
    g_obs[0] = NULL;
    assert_int_equal(stall_reader_close(o, 1), 0); /* remove is ignored */
    assert_true(tu_exists(g_dir));
    obs_close(1);
    (void)o2;

    stall_name_t name = stall_intern("obs-engine");
    stall_engine_t *e = stall_engine_new_observer(g_dir, NULL, 1, 0);
    if (!e) fail_msg("stall_engine_new_observer: %s", stall_last_error());
    assert_null(stall_engine_new_observer(g_dir, NULL, 1, 10)); /* below 1 ms */
    assert_non_null(strstr(stall_last_error(), "stall_engine_new_observer"));
    write_seq(name, 0, 20);
    assert_true(stall_reader_drain(p, discard_cb, NULL) >= 20); /* the primary takes them first */
    assert_true(stall_engine_drain(e) >= 20);                  /* still in the ring */
    stall_op_stats_t ops[32];
    ssize_t n = stall_agg_ops(stall_engine_agg(e), 0, ops, 32);
    int found = 0;
    for (ssize_t i = 0; i < n && i < 32; i++)
        if (!strcmp(ops[i].name, "obs-engine")) {
            found = 1;
            assert_int_equal(ops[i].count, 20);
        }
    assert_true(found);
    stall_engine_free(e, 1);
    assert_true(tu_exists(g_dir));
    tu_reader_close(p, 0);
}

int main(void) {
    tu_clean_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_threads_seen_by_both, teardown),
        cmocka_unit_test_teardown(test_forked_child_and_unlink, teardown),
        cmocka_unit_test_teardown(test_observer_frees_nothing, teardown),
        cmocka_unit_test_teardown(test_overwrite_detected, teardown),
        cmocka_unit_test_teardown(test_overwrite_during_copy, teardown),
        cmocka_unit_test_teardown(test_open_and_truncated, teardown),
        cmocka_unit_test_teardown(test_close_keeps_dir_and_errors, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
