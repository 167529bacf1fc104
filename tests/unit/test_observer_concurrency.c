/*
 * test_observer_concurrency.c - observers and the primary reader draining at
 * once while producers hammer 64-record rings (also run under
 * ThreadSanitizer, suite 'tsan'). Two producer threads write as fast as the
 * primary lets them (never more than a ring ahead of what it has drained, so
 * the rings are rewritten all the time and nothing is dropped); one thread
 * drains the primary reader in a loop, one an observer in a loop, one an
 * observer that pauses between drains and so falls more than a ring behind.
 * Every reader must deliver only intact records (written with start_ns =
 * seq + 1 and arg = seq), in order per thread; the primary gets all of them;
 * each observer delivers or counts as lost (observer_lost) every one, and
 * the slow one does lose some.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <time.h>

#include <cmocka.h>

#include "test_util.h"

#define RING 64u
#define NPROD 2
#define NREAD 3 /* primary, fast observer, slow observer */
#define PER_PROD 50000u

static char g_base[512];
static const char *g_dir;
static stall_session_t *g_sess;

static int group_setup(void **state) {
    (void)state;
    return tu_session_start(g_base, sizeof g_base, "observer-concurrency", RING, &g_sess, &g_dir);
}

static int group_teardown(void **state) {
    (void)state;
    tu_session_end(g_sess, g_dir, g_base);
    return 0;
}

typedef struct shared_t shared_t;

/* One reader and what it saw (touched by its own thread only, once started). */
typedef struct rd_t {
    shared_t *sh;
    stall_reader_t *r;
    long pause_ns; /* between drains */
    uint64_t next[NPROD], got[NPROD], bad;
} rd_t;

struct shared_t {
    stall_name_t name;
    _Atomic uint32_t tid[NPROD];
    _Atomic int index, ready, go, done;
    _Atomic int give_up; /* the primary saw a bad record: producers stop waiting for it */
    _Atomic uint64_t consumed[NPROD]; /* records of producer i the primary has drained */
    rd_t rd[NREAD];
};

static void *producer(void *arg) {
    shared_t *sh = arg;
    int me = atomic_fetch_add(&sh->index, 1);
    atomic_store(&sh->tid[me], (uint32_t)gettid());
    stall_complete(STALL_KIND_DATA_LOADING, sh->name, 1, 0); /* seq 0: makes the slot */
    atomic_fetch_add(&sh->ready, 1);
    while (!atomic_load(&sh->go)) sched_yield();
    for (uint64_t k = 1; k < PER_PROD; k++) {
        while (k - atomic_load_explicit(&sh->consumed[me], memory_order_acquire) >= RING) {
            if (atomic_load_explicit(&sh->give_up, memory_order_relaxed)) break;
            sched_yield();
        }
        stall_complete(STALL_KIND_DATA_LOADING, sh->name, k + 1, k);
    }
    atomic_fetch_add(&sh->done, 1);
    return NULL;
}

/* A run of records handed to the callback is consecutive ring positions of
 * one thread, and no record is dropped here: within a run, a producer's
 * seqs must follow each other (a record of another lap of the ring would
 * not). */
static int check_cb(void *ctx, const stall_reader_proc_t *p, const stall_record_t *recs, size_t n) {
    rd_t *d = ctx;
    int in_run[NPROD] = {0};
    (void)p;
    for (size_t i = 0; i < n; i++) {
        const stall_record_t *x = &recs[i];
        if (x->name != d->sh->name) continue;
        int who = -1;
        for (int j = 0; j < NPROD; j++)
            if (x->tid == atomic_load_explicit(&d->sh->tid[j], memory_order_relaxed)) who = j;
        if (who < 0 || x->start_ns != x->arg + 1 || x->start_ns > x->end_ns || x->flags != 0 ||
            x->kind != STALL_KIND_DATA_LOADING || x->depth != 0 || x->arg < d->next[who] ||
            (in_run[who] && x->arg != d->next[who])) {
            d->bad++;
            continue;
        }
        in_run[who] = 1;
        d->next[who] = x->arg + 1;
        d->got[who]++;
    }
    return 0;
}

static void *reader_loop(void *arg) {
    rd_t *d = arg;
    struct timespec ts = {0, d->pause_ns};
    while (atomic_load(&d->sh->done) < NPROD) {
        if (stall_reader_drain(d->r, check_cb, d) < 0) d->bad++;
        if (d == &d->sh->rd[0]) { /* the primary's drain returned: its room is free */
            for (int j = 0; j < NPROD; j++)
                atomic_store_explicit(&d->sh->consumed[j], d->got[j], memory_order_release);
            if (d->bad) atomic_store(&d->sh->give_up, 1);
        }
        if (d->pause_ns) nanosleep(&ts, NULL);
    }
    stall_reader_drain(d->r, check_cb, d); /* the rest */
    return NULL;
}

static int discard_cb(void *ctx, const stall_reader_proc_t *p, const stall_record_t *r, size_t n) {
    (void)ctx, (void)p, (void)r, (void)n;
    return 0;
}

static stall_reader_proc_t me_in(stall_reader_t *r) {
    stall_reader_proc_t me = {0};
    assert_int_equal(tu_find_proc(r, (uint32_t)getpid(), &me), 0);
    return me;
}

static void test_primary_and_observers_at_once(void **state) {
    (void)state;
    shared_t *sh = calloc(1, sizeof *sh);
    assert_non_null(sh);
    sh->name = stall_intern("obs-conc");
    stall_reader_t *o1 = NULL, *o2 = NULL;
    sh->rd[0].r = tu_reader_open(g_dir);
    assert_non_null(sh->rd[0].r);
    o1 = sh->rd[1].r = stall_reader_open_observer(g_dir);
    o2 = sh->rd[2].r = stall_reader_open_observer(g_dir);
    assert_non_null(o1);
    assert_non_null(o2);
    sh->rd[2].pause_ns = 300000; /* 0.3 ms: thousands of records go by */
    for (int i = 0; i < NREAD; i++) {
        sh->rd[i].sh = sh;
        assert_true(stall_reader_drain(sh->rd[i].r, discard_cb, NULL) >= 0);
    }
    pthread_t prod[NPROD], rdt[NREAD];
    for (int i = 0; i < NPROD; i++) assert_int_equal(pthread_create(&prod[i], NULL, producer, sh), 0);
    while (atomic_load(&sh->ready) < NPROD) sched_yield();
    /* the observers first see the producers' slots before the primary takes
     * anything, so that every record counts (delivered or lost) for them */
    for (int i = 1; i < NREAD; i++) assert_true(stall_reader_drain(sh->rd[i].r, check_cb, &sh->rd[i]) >= 0);
    stall_reader_proc_t before[NREAD];
    for (int i = 0; i < NREAD; i++) before[i] = me_in(sh->rd[i].r);
    for (int i = 0; i < NREAD; i++) assert_int_equal(pthread_create(&rdt[i], NULL, reader_loop, &sh->rd[i]), 0);
    atomic_store(&sh->go, 1);
    for (int i = 0; i < NPROD; i++) pthread_join(prod[i], NULL);
    for (int i = 0; i < NREAD; i++) pthread_join(rdt[i], NULL);

    stall_reader_proc_t after = me_in(sh->rd[0].r);
    uint64_t written = NPROD * (uint64_t)PER_PROD - (after.dropped - before[0].dropped);
    for (int i = 0; i < NREAD; i++) {
        rd_t *d = &sh->rd[i];
        uint64_t got = 0;
        for (int j = 0; j < NPROD; j++) got += d->got[j];
        stall_reader_proc_t a = me_in(d->r);
        uint64_t lost = a.observer_lost - before[i].observer_lost;
        print_message("reader %d: %llu delivered, %llu lost, %llu bad of %llu written (%llu dropped)\n", i,
                      (unsigned long long)got, (unsigned long long)lost, (unsigned long long)d->bad,
                      (unsigned long long)written, (unsigned long long)(after.dropped - before[0].dropped));
        assert_int_equal(d->bad, 0);
        if (i == 0) {
            assert_int_equal(lost, 0);
            assert_int_equal(got, written);
        } else {
            assert_int_equal(got + lost, written);
        }
    }
    assert_int_equal(after.dropped - before[0].dropped, 0);
    assert_int_equal(after.observer_lost, 0);
    assert_true(me_in(o2).observer_lost - before[2].observer_lost > 0);
    stall_reader_close(o1, 0);
    stall_reader_close(o2, 0);
    tu_reader_close(sh->rd[0].r, 0);
    free(sh);
}

int main(void) {
    tu_clean_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_primary_and_observers_at_once, tu_teardown_reader),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
