/*
 * test_ring_concurrency.c - the span ring with threads at once (also run
 * under ThreadSanitizer, suite 'tsan'):
 *   - one producer thread and one reader thread draining in a loop: every
 *     sequence number arrives exactly once and in order, nothing dropped;
 *   - four producer threads and a reader draining concurrently: each
 *     thread's sequence is complete and in order, tids are distinct.
 * The ring is small (64 records) so that it wraps thousands of times. The
 * producers never run more than a ring ahead of what the reader has
 * finished draining (a flow control kept by the test), so a drop is a bug.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>

#include <cmocka.h>

#include "test_util.h"

#define RING 64u
#define MAXP 4

static char g_base[512];
static const char *g_dir;
static stall_session_t *g_sess;

static int group_setup(void **state) {
    (void)state;
    return tu_session_start(g_base, sizeof g_base, "ring-concurrency", RING, &g_sess, &g_dir);
}

static int group_teardown(void **state) {
    (void)state;
    tu_session_end(g_sess, g_dir, g_base);
    return 0;
}

/* What producers and the reader share in one scenario. */
typedef struct shared_t {
    int nprod;
    uint64_t per_thread;           /* spans each producer writes */
    pthread_barrier_t start;       /* producers + reader */
    _Atomic uint32_t tid[MAXP];    /* each producer's tid, set before the barrier */
    _Atomic uint64_t consumed[MAXP]; /* records of producer i fully drained */
    _Atomic int done_producing;
    _Atomic int give_up; /* the reader saw something wrong: producers stop waiting */
    /* reader side (reader thread only) */
    uint64_t next[MAXP];   /* next expected sequence number per producer */
    uint64_t got[MAXP];
    uint64_t out_of_order; /* records that were not the expected next one */
    uint64_t foreign;      /* records of a thread that is none of ours */
    uint64_t bad_fields;
    uint64_t dropped_start, dropped_end;
    uint32_t name;
    stall_reader_t *r;
} shared_t;

typedef struct prod_arg_t {
    shared_t *sh;
    int i;
} prod_arg_t;

static void *producer(void *arg) {
    prod_arg_t *a = arg;
    shared_t *sh = a->sh;
    atomic_store(&sh->tid[a->i], (uint32_t)gettid());
    pthread_barrier_wait(&sh->start);
    for (uint64_t k = 0; k < sh->per_thread; k++) {
        /* never more than a ring ahead of what the reader has released */
        while (k - atomic_load_explicit(&sh->consumed[a->i], memory_order_acquire) >= RING) {
            if (atomic_load_explicit(&sh->give_up, memory_order_relaxed)) return NULL;
            sched_yield();
        }
        stall_begin_id(STALL_KIND_DATA_LOADING, sh->name);
        stall_end_arg(k);
    }
    return NULL;
}

static int reader_cb(void *ctx, const stall_reader_proc_t *p, const stall_record_t *recs, size_t n) {
    shared_t *sh = ctx;
    (void)p;
    for (size_t j = 0; j < n; j++) {
        const stall_record_t *x = &recs[j];
        int who = -1;
        for (int i = 0; i < sh->nprod; i++)
            if (x->tid == atomic_load_explicit(&sh->tid[i], memory_order_relaxed)) who = i;
        if (who < 0) {
            if (x->kind != STALL_KIND_SESSION) sh->foreign++;
            continue;
        }
        if (x->arg != sh->next[who]) sh->out_of_order++;
        sh->next[who] = x->arg + 1;
        sh->got[who]++;
        if (x->name != sh->name || x->kind != STALL_KIND_DATA_LOADING || x->depth != 0 ||
            x->start_ns > x->end_ns || x->pid != (uint32_t)getpid() || x->flags != 0)
            sh->bad_fields++;
    }
    return 0;
}

static int all_read(shared_t *sh) {
    for (int i = 0; i < sh->nprod; i++)
        if (sh->got[i] < sh->per_thread) return 0;
    return 1;
}

static void *reader_thread(void *arg) {
    shared_t *sh = arg;
    pthread_barrier_wait(&sh->start);
    for (;;) {
        ssize_t n = stall_reader_drain(sh->r, reader_cb, sh);
        if (n < 0) break;
        /* the drain has returned: read positions are stored, room is free */
        for (int i = 0; i < sh->nprod; i++)
            atomic_store_explicit(&sh->consumed[i], sh->got[i], memory_order_release);
        if (all_read(sh)) break;
        if (sh->foreign || sh->out_of_order || sh->bad_fields) {
            atomic_store(&sh->give_up, 1); /* fail now rather than wait forever */
            break;
        }
        if (atomic_load(&sh->done_producing)) {
            /* producers finished: one more drain picks up the rest (or shows a loss) */
            stall_reader_drain(sh->r, reader_cb, sh);
            break;
        }
        if (n == 0) sched_yield();
    }
    return NULL;
}

static void run_scenario(int nprod, uint64_t per_thread) {
    shared_t *sh = calloc(1, sizeof *sh);
    assert_non_null(sh);
    sh->nprod = nprod;
    sh->per_thread = per_thread;
    sh->name = stall_intern("seq-span");
    sh->r = tu_reader_open(g_dir);
    assert_non_null(sh->r);
    tu_coll_t junk = {0};
    tu_drain_all(sh->r, &junk); /* start from empty rings */
    tu_coll_free(&junk);
    stall_reader_proc_t me = {0};
    assert_int_equal(tu_find_proc(sh->r, (uint32_t)getpid(), &me), 0);
    sh->dropped_start = me.dropped;

    assert_int_equal(pthread_barrier_init(&sh->start, NULL, (unsigned)nprod + 1), 0);
    pthread_t prod[MAXP], rd;
    prod_arg_t args[MAXP];
    assert_int_equal(pthread_create(&rd, NULL, reader_thread, sh), 0);
    for (int i = 0; i < nprod; i++) {
        args[i] = (prod_arg_t){sh, i};
        assert_int_equal(pthread_create(&prod[i], NULL, producer, &args[i]), 0);
    }
    for (int i = 0; i < nprod; i++) pthread_join(prod[i], NULL);
    atomic_store(&sh->done_producing, 1);
    pthread_join(rd, NULL);
    pthread_barrier_destroy(&sh->start);

    assert_int_equal(tu_find_proc(sh->r, (uint32_t)getpid(), &me), 0);
    sh->dropped_end = me.dropped;
    for (int i = 0; i < nprod; i++) {
        if (sh->got[i] != per_thread || sh->next[i] != per_thread)
            fail_msg("producer %d: %llu records read, next expected %llu, want %llu", i,
                     (unsigned long long)sh->got[i], (unsigned long long)sh->next[i],
                     (unsigned long long)per_thread);
    }
    assert_int_equal(sh->out_of_order, 0);
    assert_int_equal(sh->bad_fields, 0);
    assert_int_equal(sh->foreign, 0);
    assert_int_equal(sh->dropped_end - sh->dropped_start, 0);
    for (int i = 0; i < nprod; i++) {
        assert_int_not_equal(sh->tid[i], (uint32_t)gettid());
        for (int j = 0; j < i; j++) assert_int_not_equal(sh->tid[i], sh->tid[j]);
    }
    /* nothing left over */
    tu_coll_t c = {0};
    stall_reader_drain(sh->r, tu_collect_cb, &c);
    for (size_t i = 0; i < c.n; i++) assert_int_equal(c.v[i].rec.kind, STALL_KIND_SESSION);
    tu_coll_free(&c);
    tu_reader_close(sh->r, 0);
    free(sh);
}

static void test_spsc_reader_thread(void **state) {
    (void)state;
    run_scenario(1, 50000);
}

static void test_four_producers(void **state) {
    (void)state;
    run_scenario(4, 20000);
}

/* Again, on slots that exited threads left behind (reuse after retirement). */
static void test_four_producers_reused_slots(void **state) {
    (void)state;
    run_scenario(4, 5000);
}

int main(void) {
    tu_clean_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_spsc_reader_thread, tu_teardown_reader),
        cmocka_unit_test_teardown(test_four_producers, tu_teardown_reader),
        cmocka_unit_test_teardown(test_four_producers_reused_slots, tu_teardown_reader),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
