/*
 * test_intern_concurrency.c - stall_intern from several threads at once (also
 * run under ThreadSanitizer, suite 'tsan'):
 *   - four (then eight) threads intern the same fresh set of names, each in
 *     its own order, round after round: every name gets one id in every
 *     thread, distinct names get distinct ids;
 *   - the same while the main thread starts a session (the private table is
 *     being mirrored into the new shared file): afterwards every name
 *     resolves through a reader.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "layout.h"
#include "test_util.h"

#define MAXT 8
#define NAMES 250 /* per round; the table holds 4096 names in all */

static char g_base[512];
static stall_session_t *g_sess;

typedef struct round_t {
    int round;
    int nthreads;
    pthread_barrier_t go;
    stall_name_t ids[MAXT][NAMES];
} round_t;

typedef struct targ_t {
    round_t *rd;
    int t;
} targ_t;

static void round_name(char *buf, size_t cap, int round, int i) {
    snprintf(buf, cap, "round-%d/name-%d", round, i);
}

static void *interner(void *arg) {
    targ_t *a = arg;
    round_t *rd = a->rd;
    char nm[64];
    pthread_barrier_wait(&rd->go);
    for (int k = 0; k < NAMES; k++) {
        /* thread t walks the names from its own start, odd threads backwards */
        int i = (k + a->t * NAMES / rd->nthreads) % NAMES;
        if (a->t % 2) i = NAMES - 1 - i;
        round_name(nm, sizeof nm, rd->round, i);
        rd->ids[a->t][i] = stall_intern(nm);
    }
    return NULL;
}

/* Runs one round with nthreads interners; `during` (may be NULL) runs on the
 * main thread while they work. Checks ids; returns the round. */
static round_t *run_round(int round, int nthreads, void (*during)(void)) {
    round_t *rd = calloc(1, sizeof *rd);
    assert_non_null(rd);
    rd->round = round;
    rd->nthreads = nthreads;
    assert_int_equal(pthread_barrier_init(&rd->go, NULL, (unsigned)nthreads + 1), 0);
    pthread_t th[MAXT];
    targ_t args[MAXT];
    for (int t = 0; t < nthreads; t++) {
        args[t] = (targ_t){rd, t};
        assert_int_equal(pthread_create(&th[t], NULL, interner, &args[t]), 0);
    }
    pthread_barrier_wait(&rd->go);
    if (during) during();
    for (int t = 0; t < nthreads; t++) pthread_join(th[t], NULL);
    pthread_barrier_destroy(&rd->go);

    static unsigned char used[STALL_NAME_SLOTS + 1];
    memset(used, 0, sizeof used);
    char nm[64];
    for (int i = 0; i < NAMES; i++) {
        stall_name_t id = rd->ids[0][i];
        if (id == 0 || id > STALL_NAME_SLOTS) fail_msg("round %d name %d: id %u", round, i, id);
        for (int t = 1; t < nthreads; t++)
            if (rd->ids[t][i] != id)
                fail_msg("round %d name %d: thread 0 got %u, thread %d got %u", round, i, id, t,
                         rd->ids[t][i]);
        if (used[id]) fail_msg("round %d: id %u given to two names", round, id);
        used[id] = 1;
        round_name(nm, sizeof nm, round, i);
        assert_int_equal(stall_intern(nm), id); /* stable afterwards */
    }
    return rd;
}

static void test_same_names_four_threads(void **state) {
    (void)state;
    for (int round = 0; round < 6; round++) free(run_round(round, 4, NULL));
}

/* More threads than cores: an interner is more often preempted while it
 * holds a slot half written, which others must wait for. */
static void test_same_names_eight_threads(void **state) {
    (void)state;
    for (int round = 10; round < 16; round++) free(run_round(round, 8, NULL));
}

static void start_session(void) {
    stall_options_t o = {.base_dir = g_base, .no_export = 1, .ring_records = 64};
    g_sess = stall_session_start("intern-concurrency", &o);
}

static void test_intern_while_session_starts(void **state) {
    (void)state;
    assert_null(g_sess);
    round_t *rd = run_round(100, 4, start_session);
    assert_non_null(g_sess);
    const char *dir = stall_session_dir(g_sess);
    assert_non_null(dir);
    /* one more round with the shared table in place */
    round_t *rd2 = run_round(101, 4, NULL);

    stall_reader_t *r = tu_reader_open(dir);
    assert_non_null(r);
    tu_coll_t c = {0};
    tu_drain_all(r, &c);
    stall_reader_proc_t p = {0};
    assert_int_equal(tu_find_proc(r, (uint32_t)getpid(), &p), 0);
    char nm[64];
    for (int k = 0; k < 2; k++) {
        round_t *x = k ? rd2 : rd;
        for (int i = 0; i < NAMES; i++) {
            round_name(nm, sizeof nm, x->round, i);
            const char *got = stall_reader_name(r, p.index, x->ids[0][i]);
            if (strcmp(got, nm)) fail_msg("id %u: reader has \"%s\", want \"%s\"", x->ids[0][i], got, nm);
        }
    }
    /* names of the earlier rounds (before the session) were mirrored too */
    round_name(nm, sizeof nm, 3, 17);
    assert_string_equal(stall_reader_name(r, p.index, stall_intern(nm)), nm);
    tu_coll_free(&c);
    tu_reader_close(r, 1);
    free(rd);
    free(rd2);
}

static int group_setup(void **state) {
    (void)state;
    return tu_mkbase(g_base, sizeof g_base, "internc");
}

static int group_teardown(void **state) {
    (void)state;
    tu_session_end(g_sess, stall_session_dir(g_sess), g_base);
    return 0;
}

int main(void) {
    tu_clean_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_same_names_four_threads, tu_teardown_reader),
        cmocka_unit_test_teardown(test_same_names_eight_threads, tu_teardown_reader),
        cmocka_unit_test_teardown(test_intern_while_session_starts, tu_teardown_reader),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
