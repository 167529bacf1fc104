/*
 * test_ring.c - the span ring through the public API, one thread at a time:
 * record fields (name, kind, depth, arg, pid, tid, start <= end), nesting, an
 * end without a begin, instants, a second thread's own tid, wrap-around over
 * many drain rounds, a full ring that drops and counts, spans deeper than
 * STALL_MAX_DEPTH, open spans of a live process, a forked child recording
 * into its own file (read while still a zombie), a child killed with SIGKILL
 * (truncated spans), and thread CPU time off and then on.
 *
 * All tests share one session (ring_records = 64) in a scratch folder; each
 * opens its own reader and first empties the rings, so it sees only what it
 * wrote. Concurrency is in test_ring_concurrency.c.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "layout.h"
#include "test_util.h"

#define RING 64u

static char g_base[512];
static const char *g_dir;
static stall_session_t *g_sess;

static int group_setup(void **state) {
    (void)state;
    return tu_session_start(g_base, sizeof g_base, "ring-test", RING, &g_sess, &g_dir);
}

static int group_teardown(void **state) {
    (void)state;
    tu_session_end(g_sess, g_dir, g_base);
    return 0;
}

/* Opens a reader and empties every ring, so the test sees only its own spans. */
static stall_reader_t *fresh_reader(void) {
    stall_reader_t *r = tu_reader_open(g_dir);
    if (!r) fail_msg("tu_reader_open(%s): %s", g_dir, stall_last_error());
    tu_coll_t junk = {0};
    tu_drain_all(r, &junk);
    tu_coll_free(&junk);
    return r;
}

static uint64_t my_dropped(stall_reader_t *r) {
    stall_reader_proc_t p = {0};
    assert_int_equal(tu_find_proc(r, (uint32_t)getpid(), &p), 0);
    return p.dropped;
}

/* ------------------------------------------------------------- fields */

static void test_record_fields(void **state) {
    (void)state;
    stall_reader_t *r = fresh_reader();
    stall_name_t outer = stall_intern("outer-op");
    stall_name_t inner = stall_intern("inner-op");
    assert_true(outer != 0 && inner != 0 && outer != inner);

    stall_begin_id(STALL_KIND_IO, outer);
    stall_begin_id(STALL_KIND_TRANSFER, inner);
    stall_end_arg(42);
    stall_end_arg(7);
    stall_begin(STALL_KIND_PREPROCESSING, "by-string");
    stall_end(); /* arg 0 */

    tu_coll_t c = {0};
    tu_drain_all(r, &c);
    assert_false(c.bad_run);
    size_t n;
    tu_rec_t *v = tu_select_tid(&c, (uint32_t)gettid(), &n);
    assert_int_equal(n, 3);

    /* records come in end order: inner first */
    const stall_record_t *in = &v[0].rec, *out = &v[1].rec, *s = &v[2].rec;
    assert_int_equal(in->name, inner);
    assert_int_equal(in->kind, STALL_KIND_TRANSFER);
    assert_int_equal(in->depth, 1);
    assert_int_equal(in->arg, 42);
    assert_int_equal(out->name, outer);
    assert_int_equal(out->kind, STALL_KIND_IO);
    assert_int_equal(out->depth, 0);
    assert_int_equal(out->arg, 7);
    assert_int_equal(s->kind, STALL_KIND_PREPROCESSING);
    assert_int_equal(s->depth, 0);
    assert_int_equal(s->arg, 0);
    for (int i = 0; i < 3; i++) {
        const stall_record_t *x = &v[i].rec;
        assert_int_equal(x->pid, (uint32_t)getpid());
        assert_int_equal(x->tid, (uint32_t)gettid());
        assert_true(x->start_ns != 0);
        assert_true(x->start_ns <= x->end_ns);
        assert_int_equal(x->flags & (STALL_REC_TRUNCATED | STALL_REC_OPEN | STALL_REC_INSTANT), 0);
    }
    /* the inner span lies inside the outer one, the third after both */
    assert_true(out->start_ns <= in->start_ns && in->end_ns <= out->end_ns);
    assert_true(out->end_ns <= s->start_ns);
    /* names resolve through the reader */
    assert_string_equal(stall_reader_name(r, v[0].proc_index, in->name), "inner-op");
    assert_string_equal(stall_reader_name(r, v[1].proc_index, out->name), "outer-op");
    assert_string_equal(stall_reader_name(r, v[2].proc_index, s->name), "by-string");
    assert_string_equal(stall_reader_name(r, v[2].proc_index, 0), "");
    assert_string_equal(stall_reader_session_name(r), "ring-test");

    free(v);
    tu_coll_free(&c);
    tu_reader_close(r, 0);
}

static void test_nesting_depths(void **state) {
    (void)state;
    stall_reader_t *r = fresh_reader();
    stall_name_t ids[6];
    char nm[32];
    for (int d = 0; d < 6; d++) {
        snprintf(nm, sizeof nm, "level-%d", d);
        ids[d] = stall_intern(nm);
    }
    /* 0 { 1 { 2 { } } 1b { 2b { 3 { 4 { 5 { } } } } } } */
    stall_begin_id(STALL_KIND_STEP, ids[0]);
    stall_begin_id(STALL_KIND_OTHER, ids[1]);
    stall_begin_id(STALL_KIND_OTHER, ids[2]);
    stall_end_arg(2);
    stall_end_arg(1);
    stall_begin_id(STALL_KIND_OTHER, ids[1]);
    for (int d = 2; d < 6; d++) stall_begin_id(STALL_KIND_OTHER, ids[d]);
    for (int d = 5; d >= 1; d--) stall_end_arg(100 + (uint64_t)d);
    stall_end_arg(0);

    tu_coll_t c = {0};
    tu_drain_all(r, &c);
    size_t n;
    tu_rec_t *v = tu_select_tid(&c, (uint32_t)gettid(), &n);
    assert_int_equal(n, 8);
    const int want_depth[8] = {2, 1, 5, 4, 3, 2, 1, 0};
    const uint64_t want_arg[8] = {2, 1, 105, 104, 103, 102, 101, 0};
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(v[i].rec.depth, want_depth[i]);
        assert_int_equal(v[i].rec.arg, want_arg[i]);
        assert_int_equal(v[i].rec.name, ids[want_depth[i]]);
        assert_true(v[i].rec.start_ns <= v[i].rec.end_ns);
    }
    /* the outermost span contains all the others */
    for (size_t i = 0; i < 7; i++) {
        assert_true(v[7].rec.start_ns <= v[i].rec.start_ns);
        assert_true(v[i].rec.end_ns <= v[7].rec.end_ns);
    }
    free(v);
    tu_coll_free(&c);
    tu_reader_close(r, 0);
}

static void test_end_without_begin_ignored(void **state) {
    (void)state;
    stall_reader_t *r = fresh_reader();
    uint64_t d0 = my_dropped(r);
    stall_end_arg(999); /* nothing open: ignored */
    stall_end();
    stall_begin(STALL_KIND_OTHER, "after-stray-end");
    stall_end_arg(5);
    stall_end_arg(998); /* again nothing open */

    tu_coll_t c = {0};
    tu_drain_all(r, &c);
    size_t n;
    tu_rec_t *v = tu_select_tid(&c, (uint32_t)gettid(), &n);
    assert_int_equal(n, 1);
    assert_int_equal(v[0].rec.arg, 5);
    assert_int_equal(v[0].rec.depth, 0);
    assert_string_equal(stall_reader_name(r, v[0].proc_index, v[0].rec.name), "after-stray-end");
    assert_int_equal(my_dropped(r), d0); /* a stray end is not a loss */
    free(v);
    tu_coll_free(&c);
    tu_reader_close(r, 0);
}

static void test_instant_and_macro(void **state) {
    (void)state;
    stall_reader_t *r = fresh_reader();
    stall_name_t id = stall_intern("instant-ev");
    stall_begin_id(STALL_KIND_STEP, stall_intern("holder"));
    stall_instant(STALL_KIND_DATA_WAIT, id, 77);
    stall_end_arg(1);
    for (int i = 0; i < 3; i++) {
        STALL_SPAN_BEGIN(STALL_KIND_CPU_COMPUTE, "macro-span");
        stall_end_arg(10 + (uint64_t)i);
    }

    tu_coll_t c = {0};
    tu_drain_all(r, &c);
    size_t n;
    tu_rec_t *v = tu_select_tid(&c, (uint32_t)gettid(), &n);
    assert_int_equal(n, 5);
    const stall_record_t *ins = &v[0].rec;
    assert_true(ins->flags & STALL_REC_INSTANT);
    assert_int_equal(ins->start_ns, ins->end_ns);
    assert_int_equal(ins->arg, 77);
    assert_int_equal(ins->name, id);
    assert_int_equal(ins->kind, STALL_KIND_DATA_WAIT);
    assert_int_equal(ins->depth, 1); /* inside "holder" */
    assert_int_equal(v[1].rec.arg, 1);
    assert_false(v[1].rec.flags & STALL_REC_INSTANT);
    for (int i = 0; i < 3; i++) {
        const stall_record_t *m = &v[2 + i].rec;
        assert_int_equal(m->arg, 10 + (uint64_t)i);
        assert_int_equal(m->name, v[2].rec.name); /* cached id */
        assert_string_equal(stall_reader_name(r, v[2 + i].proc_index, m->name), "macro-span");
    }
    free(v);
    tu_coll_free(&c);
    tu_reader_close(r, 0);
}

typedef struct thread_out_t {
    uint32_t tid;
} thread_out_t;

static void *one_span_thread(void *arg) {
    thread_out_t *o = arg;
    o->tid = (uint32_t)gettid();
    stall_begin(STALL_KIND_TRANSFER, "from-thread");
    stall_end_arg(77);
    return NULL;
}

static void test_thread_records_own_tid(void **state) {
    (void)state;
    stall_reader_t *r = fresh_reader();
    thread_out_t o = {0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, one_span_thread, &o), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_not_equal(o.tid, (uint32_t)getpid());
    tu_coll_t c = {0};
    tu_drain_all(r, &c);
    size_t n;
    tu_rec_t *v = tu_select_tid(&c, o.tid, &n);
    assert_int_equal(n, 1);
    assert_int_equal(v[0].rec.arg, 77);
    assert_int_equal(v[0].rec.pid, (uint32_t)getpid());
    assert_int_equal(v[0].rec.depth, 0);
    assert_string_equal(stall_reader_name(r, v[0].proc_index, v[0].rec.name), "from-thread");
    free(v);
    /* nothing of it under the main thread's tid */
    v = tu_select_tid(&c, (uint32_t)gettid(), &n);
    assert_int_equal(n, 0);
    free(v);
    tu_coll_free(&c);
    tu_reader_close(r, 0);
}

/* ------------------------------------------------------ wrap and full */

static void test_wraparound_rounds(void **state) {
    (void)state;
    stall_reader_t *r = fresh_reader();
    uint64_t d0 = my_dropped(r);
    stall_name_t id = stall_intern("wrap");
    /* round sizes chosen so that runs start at every offset of the ring and
     * some rounds fill it exactly */
    const int rounds[] = {1, 63, 64, 17, 64, 40, 33, 5, 64, 60, 2, 31, 64, 64, 50};
    uint64_t seq = 0, expect = 0;
    size_t delivered_calls = 0;
    for (size_t k = 0; k < sizeof rounds / sizeof rounds[0]; k++) {
        for (int i = 0; i < rounds[k]; i++) {
            stall_begin_id(STALL_KIND_DATA_LOADING, id);
            stall_end_arg(seq++);
        }
        tu_coll_t c = {0};
        ssize_t got = stall_reader_drain(r, tu_collect_cb, &c);
        assert_true(got >= rounds[k]);
        delivered_calls += c.calls;
        size_t n;
        tu_rec_t *v = tu_select_tid(&c, (uint32_t)gettid(), &n);
        assert_int_equal(n, (size_t)rounds[k]);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(v[i].rec.arg, expect);
            assert_int_equal(v[i].rec.name, id);
            expect++;
        }
        free(v);
        tu_coll_free(&c);
    }
    assert_true(seq > 4 * RING);
    assert_int_equal(expect, seq);
    assert_true(delivered_calls > sizeof rounds / sizeof rounds[0]); /* some runs split at the wrap */
    assert_int_equal(my_dropped(r), d0);
    /* nothing left */
    tu_coll_t c = {0};
    stall_reader_drain(r, tu_collect_cb, &c);
    size_t n;
    free(tu_select_tid(&c, (uint32_t)gettid(), &n));
    assert_int_equal(n, 0);
    tu_coll_free(&c);
    tu_reader_close(r, 0);
}

static void test_full_ring_drops(void **state) {
    (void)state;
    const uint64_t extra = 37;
    stall_reader_t *r = fresh_reader();
    uint64_t d0 = my_dropped(r);
    stall_name_t id = stall_intern("full");
    for (uint64_t i = 0; i < RING + extra; i++) {
        stall_begin_id(STALL_KIND_IO, id);
        stall_end_arg(i);
    }
    tu_coll_t c = {0};
    tu_drain_all(r, &c);
    size_t n;
    tu_rec_t *v = tu_select_tid(&c, (uint32_t)gettid(), &n);
    assert_int_equal(n, RING);
    for (size_t i = 0; i < n; i++) assert_int_equal(v[i].rec.arg, i); /* the oldest kept */
    assert_int_equal(my_dropped(r) - d0, extra);
    free(v);

    /* the ring works again once drained */
    tu_coll_reset(&c);
    stall_begin_id(STALL_KIND_IO, id);
    stall_end_arg(12345);
    tu_drain_all(r, &c);
    v = tu_select_tid(&c, (uint32_t)gettid(), &n);
    assert_int_equal(n, 1);
    assert_int_equal(v[0].rec.arg, 12345);
    assert_int_equal(my_dropped(r) - d0, extra);
    free(v);
    tu_coll_free(&c);
    tu_reader_close(r, 0);
}

static void test_depth_beyond_max(void **state) {
    (void)state;
    const uint32_t deep = STALL_MAX_DEPTH + 8;
    stall_reader_t *r = fresh_reader();
    uint64_t d0 = my_dropped(r);
    stall_name_t ids[STALL_MAX_DEPTH + 8];
    char nm[32];
    for (uint32_t d = 0; d < deep; d++) {
        snprintf(nm, sizeof nm, "deep-%u", d);
        ids[d] = stall_intern(nm);
    }
    for (uint32_t d = 0; d < deep; d++) stall_begin_id(STALL_KIND_OTHER, ids[d]);
    for (uint32_t d = deep; d-- > 0;) stall_end_arg(d);
    /* matching is intact: a following span is top-level again */
    stall_begin(STALL_KIND_STEP, "after-deep");
    stall_end_arg(5000);

    tu_coll_t c = {0};
    tu_drain_all(r, &c);
    size_t n;
    tu_rec_t *v = tu_select_tid(&c, (uint32_t)gettid(), &n);
    assert_int_equal(n, STALL_MAX_DEPTH + 1);
    for (uint32_t i = 0; i < STALL_MAX_DEPTH; i++) {
        uint32_t d = STALL_MAX_DEPTH - 1 - i; /* innermost recorded first */
        assert_int_equal(v[i].rec.depth, d);
        assert_int_equal(v[i].rec.arg, d); /* each end closed its own begin */
        assert_int_equal(v[i].rec.name, ids[d]);
    }
    assert_int_equal(v[STALL_MAX_DEPTH].rec.depth, 0);
    assert_int_equal(v[STALL_MAX_DEPTH].rec.arg, 5000);
    assert_string_equal(stall_reader_name(r, v[STALL_MAX_DEPTH].proc_index, v[STALL_MAX_DEPTH].rec.name),
                        "after-deep");
    assert_int_equal(my_dropped(r) - d0, deep - STALL_MAX_DEPTH);
    free(v);
    tu_coll_free(&c);
    tu_reader_close(r, 0);
}

/* ------------------------------------------------------- open spans */

static void test_open_spans_live(void **state) {
    (void)state;
    stall_reader_t *r = fresh_reader();
    stall_name_t a = stall_intern("open-a"), b = stall_intern("open-b");
    stall_begin_id(STALL_KIND_STEP, a);
    stall_begin_id(STALL_KIND_DATA_WAIT, b);
    for (int pass = 0; pass < 2; pass++) { /* not consumed: same answer twice */
        tu_coll_t c = {0};
        assert_true(stall_reader_open_spans(r, tu_collect_cb, &c) >= 2);
        size_t n;
        tu_rec_t *v = tu_select_tid(&c, (uint32_t)gettid(), &n);
        assert_int_equal(n, 2);
        assert_int_equal(v[0].rec.name, a);
        assert_int_equal(v[0].rec.depth, 0);
        assert_int_equal(v[0].rec.kind, STALL_KIND_STEP);
        assert_int_equal(v[1].rec.name, b);
        assert_int_equal(v[1].rec.depth, 1);
        for (size_t i = 0; i < n; i++) {
            assert_true(v[i].rec.flags & STALL_REC_OPEN);
            assert_false(v[i].rec.flags & STALL_REC_TRUNCATED);
            assert_int_equal(v[i].rec.end_ns, 0);
            assert_true(v[i].rec.start_ns != 0);
            assert_int_equal(v[i].rec.pid, (uint32_t)getpid());
        }
        free(v);
        tu_coll_free(&c);
    }
    /* open spans are not in the ring yet */
    tu_coll_t c = {0};
    tu_drain_all(r, &c);
    size_t n;
    free(tu_select_tid(&c, (uint32_t)gettid(), &n));
    assert_int_equal(n, 0);
    stall_end_arg(2);
    stall_end_arg(1);
    tu_coll_reset(&c);
    assert_true(stall_reader_open_spans(r, tu_collect_cb, &c) >= 0);
    free(tu_select_tid(&c, (uint32_t)gettid(), &n));
    assert_int_equal(n, 0);
    tu_coll_reset(&c);
    tu_drain_all(r, &c);
    free(tu_select_tid(&c, (uint32_t)gettid(), &n));
    assert_int_equal(n, 2);
    tu_coll_free(&c);
    tu_reader_close(r, 0);
}

static void test_no_cpu_by_default(void **state) {
    (void)state;
    stall_reader_t *r = fresh_reader();
    for (int i = 0; i < 4; i++) {
        stall_begin(STALL_KIND_CPU_COMPUTE, "no-cpu");
        volatile uint64_t x = 0;
        for (int k = 0; k < 100000; k++) x += (uint64_t)k;
        stall_end_arg(i);
    }
    tu_coll_t c = {0};
    tu_drain_all(r, &c);
    size_t n;
    tu_rec_t *v = tu_select_tid(&c, (uint32_t)gettid(), &n);
    assert_int_equal(n, 4);
    for (size_t i = 0; i < n; i++) {
        assert_false(v[i].rec.flags & STALL_REC_HAS_CPU);
        assert_int_equal(v[i].rec.cpu_ns, 0);
    }
    free(v);
    tu_coll_free(&c);
    tu_reader_close(r, 0);
}

/* one span's CPU time with STALL_WITH_CPU, while the process records none;
 * stall_complete: a span recorded after the fact, nesting what came since */
static void test_with_cpu_bit_and_complete(void **state) {
    (void)state;
    stall_reader_t *r = fresh_reader();
    uint64_t t0 = stall_now_ns();
    assert_int_equal(stall_depth(), 0);
    stall_begin(STALL_KIND_DATA_LOADING | STALL_WITH_CPU, "with-cpu");
    assert_int_equal(stall_depth(), 1);
    volatile uint64_t x = 0;
    for (int k = 0; k < 2000000; k++) x += (uint64_t)k;
    stall_end_arg(5);
    stall_begin(STALL_KIND_CPU_COMPUTE, "plain");
    stall_end();
    stall_complete(STALL_KIND_STEP, stall_intern("after"), t0, 9);
    stall_complete(STALL_KIND_STEP, stall_intern("future"), stall_now_ns() + 1000000000ull, 0);

    tu_coll_t c = {0};
    tu_drain_all(r, &c);
    size_t n;
    tu_rec_t *v = tu_select_tid(&c, (uint32_t)gettid(), &n);
    assert_int_equal(n, 4);
    const stall_record_t *cpu = &v[0].rec, *plain = &v[1].rec, *after = &v[2].rec, *fut = &v[3].rec;
    assert_int_equal(cpu->kind, STALL_KIND_DATA_LOADING); /* the bit is not part of the kind */
    assert_true(cpu->flags & STALL_REC_HAS_CPU);
    assert_true(cpu->cpu_ns > 0 && cpu->cpu_ns <= cpu->end_ns - cpu->start_ns + 1000000);
    assert_false(plain->flags & STALL_REC_HAS_CPU);
    assert_int_equal(after->start_ns, t0);
    assert_true(after->end_ns >= plain->end_ns);
    assert_int_equal(after->depth, 0); /* the current depth: "with-cpu" and "plain" lie inside it in time */
    assert_int_equal(after->arg, 9);
    assert_int_equal(after->flags, 0);
    assert_int_equal(fut->start_ns, fut->end_ns); /* a start in the future is clamped to now */
    free(v);
    tu_coll_free(&c);
    tu_reader_close(r, 0);
}

/* ------------------------------------------------------------- fork */

static void test_fork_child_own_file(void **state) {
    (void)state;
    stall_reader_t *r = fresh_reader();
    tu_reader_close(r, 0); /* not held across the fork */

    stall_name_t before = stall_intern("before-fork");
    stall_begin_id(STALL_KIND_IO, before);
    stall_end_arg(1); /* left in the parent's ring, not drained */
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(ready[0]);
        /* plain work only: spans with the inherited id and a new one */
        stall_name_t mine = stall_intern("child-only");
        for (uint64_t i = 0; i < 10; i++) {
            stall_begin_id(STALL_KIND_PREPROCESSING, i % 2 ? mine : before);
            stall_end_arg(1000 + i);
        }
        uint32_t ids[2] = {before, mine};
        ssize_t w = write(ready[1], ids, sizeof ids);
        _exit(w == (ssize_t)sizeof ids ? 0 : 3);
    }
    close(ready[1]);
    uint32_t ids[2] = {0, 0};
    assert_int_equal(read(ready[0], ids, sizeof ids), (ssize_t)sizeof ids);
    close(ready[0]);
    /* wait until the child has exited, but leave it unreaped (a zombie): the
     * reader must see it as dead all the same */
    siginfo_t si;
    memset(&si, 0, sizeof si);
    assert_int_equal(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
    assert_int_equal(si.si_code, CLD_EXITED);
    assert_int_equal(si.si_status, 0);
    assert_int_equal(ids[0], before);

    /* the parent still records into its own ring after the fork */
    stall_begin_id(STALL_KIND_IO, before);
    stall_end_arg(2);

    r = tu_reader_open(g_dir);
    assert_non_null(r);
    tu_coll_t c = {0};
    tu_drain_all(r, &c);
    assert_false(c.bad_run);

    size_t n;
    tu_rec_t *mine = tu_select_tid(&c, (uint32_t)gettid(), &n);
    assert_int_equal(n, 2);
    assert_int_equal(mine[0].rec.arg, 1);
    assert_int_equal(mine[1].rec.arg, 2);
    assert_int_equal(mine[0].rec.pid, (uint32_t)getpid());
    assert_int_equal(mine[1].rec.pid, (uint32_t)getpid());
    assert_string_equal(stall_reader_name(r, mine[1].proc_index, before), "before-fork");
    uint32_t parent_index = mine[0].proc_index;
    free(mine);

    /* the child's records: its pid, in its own file (another process index) */
    size_t nchild = 0;
    uint32_t child_index = UINT32_MAX;
    for (size_t i = 0; i < c.n; i++) {
        const stall_record_t *x = &c.v[i].rec;
        if (x->pid != (uint32_t)pid) continue;
        if (x->kind == STALL_KIND_SESSION) continue;
        assert_int_equal(x->arg, 1000 + nchild);
        assert_int_equal(x->name, nchild % 2 ? ids[1] : ids[0]);
        assert_int_equal(x->tid, (uint32_t)pid); /* the child's only thread */
        child_index = c.v[i].proc_index;
        nchild++;
    }
    assert_int_equal(nchild, 10);
    assert_true(child_index != parent_index);
    stall_reader_proc_t cp = {0};
    assert_int_equal(tu_find_proc(r, (uint32_t)pid, &cp), 0);
    assert_int_equal(cp.index, child_index);
    assert_int_equal(cp.ppid, (uint32_t)getpid());
    assert_int_equal(cp.alive, 0); /* a zombie is not alive */
    assert_int_equal(cp.closed, 0); /* _exit: no clean detach */
    assert_int_equal(cp.records_read, 10);
    /* ids interned before the fork name the same strings in the child's file */
    assert_string_equal(stall_reader_name(r, child_index, ids[0]), "before-fork");
    assert_string_equal(stall_reader_name(r, child_index, ids[1]), "child-only");
    /* the child's new name did not leak into the parent's file */
    assert_string_equal(stall_reader_name(r, parent_index, ids[1]), "");
    tu_coll_free(&c);
    tu_reader_close(r, 0);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void test_sigkill_truncated(void **state) {
    (void)state;
    stall_reader_t *r = fresh_reader();
    tu_reader_close(r, 0);
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(ready[0]);
        stall_name_t open_id = stall_intern("killed-open");
        stall_name_t done_id = stall_intern("killed-done");
        stall_begin_id(STALL_KIND_STEP, open_id);
        for (uint64_t i = 0; i < 5; i++) {
            stall_begin_id(STALL_KIND_DATA_LOADING, done_id);
            stall_end_arg(100 + i);
        }
        char c = 'r';
        if (write(ready[1], &c, 1) != 1) _exit(3);
        for (;;) pause(); /* killed here, span still open */
    }
    close(ready[1]);
    char c;
    assert_int_equal(read(ready[0], &c, 1), 1);
    close(ready[0]);
    assert_int_equal(kill(pid, SIGKILL), 0);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);

    r = tu_reader_open(g_dir);
    assert_non_null(r);
    tu_coll_t col = {0};
    tu_drain_all(r, &col);
    size_t n = 0;
    stall_record_t got[16];
    uint32_t idx = UINT32_MAX;
    for (size_t i = 0; i < col.n && n < 16; i++)
        if (col.v[i].rec.pid == (uint32_t)pid) {
            got[n++] = col.v[i].rec;
            idx = col.v[i].proc_index;
        }
    assert_int_equal(n, 6);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(got[i].arg, 100 + (uint64_t)i);
        assert_int_equal(got[i].depth, 1);
        assert_int_equal(got[i].flags & STALL_REC_TRUNCATED, 0);
        assert_true(got[i].start_ns <= got[i].end_ns);
        assert_string_equal(stall_reader_name(r, idx, got[i].name), "killed-done");
    }
    const stall_record_t *t = &got[5];
    assert_true(t->flags & STALL_REC_TRUNCATED);
    assert_int_equal(t->end_ns, 0);
    assert_int_equal(t->depth, 0);
    assert_int_equal(t->kind, STALL_KIND_STEP);
    assert_int_equal(t->tid, (uint32_t)pid);
    assert_true(t->start_ns != 0 && t->start_ns <= got[0].start_ns);
    assert_string_equal(stall_reader_name(r, idx, t->name), "killed-open");

    stall_reader_proc_t p = {0};
    assert_int_equal(tu_find_proc(r, (uint32_t)pid, &p), 0);
    assert_int_equal(p.alive, 0);
    assert_int_equal(p.closed, 0);
    assert_int_equal(p.dropped, 0);

    /* the truncated span is delivered once */
    tu_coll_reset(&col);
    tu_drain_all(r, &col);
    for (size_t i = 0; i < col.n; i++) assert_int_not_equal(col.v[i].rec.pid, (uint32_t)pid);
    tu_coll_free(&col);
    tu_reader_close(r, 0);
}

/* ------------------------------------------------ thread CPU time (last) */

static void test_thread_cpu_time(void **state) {
    (void)state;
    stall_reader_t *r = fresh_reader();
    /* a second session joins the first and switches CPU time on */
    stall_options_t o = {.thread_cpu_time = 1};
    stall_session_t *s = stall_session_start("cpu-on", &o);
    assert_non_null(s);
    assert_string_equal(stall_session_dir(s), g_dir);
    for (int i = 0; i < 4; i++) {
        stall_begin(STALL_KIND_CPU_COMPUTE, "with-cpu");
        volatile uint64_t x = 0;
        for (int k = 0; k < 200000; k++) x += (uint64_t)k;
        stall_end_arg(i);
    }
    stall_session_stop(s);
    tu_coll_t c = {0};
    tu_drain_all(r, &c);
    size_t n;
    tu_rec_t *v = tu_select_tid(&c, (uint32_t)gettid(), &n);
    assert_int_equal(n, 4);
    for (size_t i = 0; i < n; i++) {
        assert_true(v[i].rec.flags & STALL_REC_HAS_CPU);
        assert_true(v[i].rec.cpu_ns > 0);
        assert_int_equal(v[i].rec.arg, i);
    }
    free(v);
    tu_coll_free(&c);
    tu_reader_close(r, 0);
}

int main(void) {
    tu_clean_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_record_fields, tu_teardown_reader),
        cmocka_unit_test_teardown(test_nesting_depths, tu_teardown_reader),
        cmocka_unit_test_teardown(test_end_without_begin_ignored, tu_teardown_reader),
        cmocka_unit_test_teardown(test_instant_and_macro, tu_teardown_reader),
        cmocka_unit_test_teardown(test_thread_records_own_tid, tu_teardown_reader),
        cmocka_unit_test_teardown(test_wraparound_rounds, tu_teardown_reader),
        cmocka_unit_test_teardown(test_full_ring_drops, tu_teardown_reader),
        cmocka_unit_test_teardown(test_depth_beyond_max, tu_teardown_reader),
        cmocka_unit_test_teardown(test_open_spans_live, tu_teardown_reader),
        cmocka_unit_test_teardown(test_no_cpu_by_default, tu_teardown_reader),
        cmocka_unit_test_teardown(test_with_cpu_bit_and_complete, tu_teardown_reader),
        cmocka_unit_test_teardown(test_fork_child_own_file, tu_teardown_reader),
        cmocka_unit_test_teardown(test_sigkill_truncated, tu_teardown_reader),
        cmocka_unit_test_teardown(test_thread_cpu_time, tu_teardown_reader), /* last: CPU time stays on */
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
