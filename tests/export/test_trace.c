/*
 * test_trace.c - the spool and the Chrome trace writer. A run with two
 * threads, nested spans, an instant, a nested session, a labelled forked
 * child and a child SIGKILLed with a span open is drained into a spool and
 * written with a sampler's counters; tests/export/check_trace.py validates
 * the file (structure, per-thread order and nesting, metadata) and the exact
 * names, counts and parents expected. Also: the max_events cut (longest kept,
 * ties dropped together, what was left out reported), JSON escaping of odd
 * names and titles, the spool's buffering and read-back, argument errors,
 * and the validator itself (broken traces must be rejected).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "export.h"
#include "stall.h"
#include "test_util.h"

static char g_base[512];
static stall_session_t *g_sess;
static const char *g_dir;

static void pause_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static int discard_cb(void *ctx, const stall_reader_proc_t *p, const stall_record_t *r, size_t n) {
    (void)ctx, (void)p, (void)r, (void)n;
    return 0;
}

/* The drain tap of `stall run`: every record goes to the spool. */
static int spool_cb(void *ctx, const stall_reader_proc_t *p, const stall_record_t *r, size_t n) {
    return stall__spool_add(ctx, p, r, n);
}

/* Empties the rings so that each test starts from nothing. */
static void drain_away(void) {
    stall_reader_t *r = tu_reader_open(g_dir);
    assert_non_null(r);
    assert_true(stall_reader_drain(r, discard_cb, NULL) >= 0);
    tu_reader_close(r, 0);
}

/* Runs check_trace.py on file with the NULL-terminated expectations; returns
 * its exit status (0: everything holds). */
static int check(const char *file, ...) {
    const char *argv[64] = {"/usr/bin/python3", CHECK_TRACE, file};
    int n = 3;
    va_list ap;
    va_start(ap, file);
    for (const char *a; (a = va_arg(ap, const char *)) != NULL && n < 63;) argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    rewind(f);
    char *buf = malloc((size_t)len + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
    buf[len] = '\0';
    fclose(f);
    return buf;
}

static int group_setup(void **state) {
    (void)state;
    tu_clean_env();
    return tu_session_start(g_base, sizeof g_base, "trace-test", 0, &g_sess, &g_dir);
}

static int group_teardown(void **state) {
    (void)state;
    tu_session_end(g_sess, g_dir, g_base);
    return 0;
}

/* ----------------------------------------------------------------- spool */

/* What a scan of the spool handed over. */
typedef struct spool_copy_t {
    stall_spool_ent_t *v;
    size_t n, runs;
    int stop; /* 1: stop the scan at the first run */
} spool_copy_t;

static int copy_fn(void *ctx, const stall_spool_ent_t *ents, size_t n) {
    spool_copy_t *c = ctx;
    if (c->stop) return -1;
    stall_spool_ent_t *nv = realloc(c->v, (c->n + n) * sizeof *nv);
    assert_non_null(nv);
    memcpy(nv + c->n, ents, n * sizeof *ents);
    c->v = nv;
    c->n += n;
    c->runs++;
    return 0;
}

static void test_spool(void **state) {
    (void)state;
    char path[600];
    snprintf(path, sizeof path, "%s/spool-basic", g_base);
    stall_spool_t *s = stall__spool_new(path);
    assert_non_null(s);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    stall_reader_proc_t proc = {.index = 3, .pid = 42};
    enum { N = 5000 };
    stall_record_t *recs = calloc(N, sizeof *recs);
    assert_non_null(recs);
    for (size_t i = 0; i < N; i++) {
        recs[i] = (stall_record_t){.start_ns = 1000 * i, .end_ns = 1000 * i + 10, .arg = i,
                                   .pid = 42, .tid = 43, .name = 1, .kind = 1};
        if (i == 7) recs[i].flags = STALL_REC_OPEN; /* a snapshot: not kept */
    }
    assert_int_equal(stall__spool_add(s, &proc, recs, 100), 0);
    assert_int_equal(stall__spool_add(s, &proc, recs + 100, N - 100), 0);
    assert_int_equal(stall__spool_count(s), N - 1);

    spool_copy_t c = {0};
    assert_int_equal(stall__spool_scan(s, copy_fn, &c), 0);
    assert_int_equal(c.n, N - 1);
    assert_true(c.runs >= 3); /* read back through the 2048-entry buffer */
    for (uint64_t i = 0; i < c.n; i++) {
        uint64_t src = i < 7 ? i : i + 1;
        assert_int_equal(c.v[i].rec.arg, src);
        assert_int_equal(c.v[i].proc_index, 3);
        assert_memory_equal(&c.v[i].rec, &recs[src], sizeof recs[src]);
    }
    /* adding after a scan goes on at the end; a scan can be stopped */
    proc.index = 9;
    assert_int_equal(stall__spool_add(s, &proc, recs, 1), 0);
    c.n = c.runs = 0;
    assert_int_equal(stall__spool_scan(s, copy_fn, &c), 0);
    assert_int_equal(c.n, N);
    assert_int_equal(c.v[N - 1].proc_index, 9);
    c.stop = 1;
    assert_int_equal(stall__spool_scan(s, copy_fn, &c), -1);
    free(c.v);
    stall__spool_free(s);
    assert_false(tu_exists(path));
    free(recs);

    /* empty spool, bad path, NULL */
    snprintf(path, sizeof path, "%s/spool-empty", g_base);
    s = stall__spool_new(path);
    assert_non_null(s);
    spool_copy_t e = {0};
    assert_int_equal(stall__spool_scan(s, copy_fn, &e), 0);
    assert_int_equal(e.runs, 0);
    stall__spool_free(s);
    snprintf(path, sizeof path, "%s/no-such-dir/spool", g_base);
    assert_null(stall__spool_new(path));
    assert_non_null(strstr(stall_last_error(), "no-such-dir"));
    assert_int_equal(stall__spool_add(NULL, &proc, NULL, 0), -1);
    stall__spool_free(NULL);
}

/* ------------------------------------------------------------- full trace */

static void *thread_main(void *arg) {
    (void)arg;
    for (int i = 0; i < 4; i++) {
        stall_begin(STALL_KIND_IO, "thread-work");
        stall_begin(STALL_KIND_IO, "thread-inner");
        stall_end();
        stall_end_arg(4096);
    }
    return NULL;
}

static void test_trace_full(void **state) {
    (void)state;
    drain_away();
    uint64_t t0 = stall_now_ns();
    stall_sampler_options_t so = {.no_gpu = 1};
    stall_sampler_t *smp = stall_sampler_new(&so);
    assert_non_null(smp);
    assert_int_equal(stall_sampler_sample(smp), 0);

    stall_session_t *inner = stall_session_start("inner", NULL);
    assert_non_null(inner);
    stall_name_t checkpoint = stall_intern("checkpoint");
    for (int i = 0; i < 3; i++) {
        stall_begin(STALL_KIND_STEP, "step");
        stall_begin(STALL_KIND_DATA_LOADING, "load");
        stall_begin(STALL_KIND_PREPROCESSING, "decode");
        stall_end();
        stall_end_arg(64);
        stall_instant(STALL_KIND_OTHER, checkpoint, 7);
        stall_begin(STALL_KIND_CPU_COMPUTE | STALL_WITH_CPU, "forward");
        volatile double x = 0;
        for (int k = 0; k < 100000; k++) x += k * 0.5;
        stall_end();
        stall_end();
    }
    stall_session_stop(inner);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, thread_main, NULL), 0);
    assert_int_equal(pthread_join(th, NULL), 0);

    fflush(NULL);
    pid_t worker = fork();
    assert_true(worker >= 0);
    if (worker == 0) {
        stall_set_process_label("worker 1");
        for (int i = 0; i < 2; i++) {
            stall_begin(STALL_KIND_DATA_LOADING, "child-span");
            stall_begin(STALL_KIND_IO, "child-inner");
            stall_end();
            stall_end();
        }
        _exit(0);
    }
    int st;
    assert_int_equal(waitpid(worker, &st, 0), worker);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);

    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t doomed = fork();
    assert_true(doomed >= 0);
    if (doomed == 0) {
        close(ready[0]);
        stall_set_process_label("doomed");
        stall_begin(STALL_KIND_STEP, "killed-open");
        for (int i = 0; i < 2; i++) {
            stall_begin(STALL_KIND_DATA_LOADING, "killed-done");
            stall_end();
        }
        char c = 'r';
        if (write(ready[1], &c, 1) != 1) _exit(3);
        for (;;) pause(); /* killed here, the span still open */
    }
    close(ready[1]);
    char c;
    assert_int_equal(read(ready[0], &c, 1), 1);
    close(ready[0]);
    assert_int_equal(kill(doomed, SIGKILL), 0);
    assert_int_equal(waitpid(doomed, &st, 0), doomed);

    for (int i = 0; i < 2; i++) {
        pause_ms(30);
        assert_int_equal(stall_sampler_sample(smp), 0);
    }

    char spath[600], tpath[600], tmp[610];
    snprintf(spath, sizeof spath, "%s/full.spool", g_base);
    snprintf(tpath, sizeof tpath, "%s/full.json", g_base);
    snprintf(tmp, sizeof tmp, "%s.tmp", tpath);
    stall_spool_t *sp = stall__spool_new(spath);
    assert_non_null(sp);
    stall_reader_t *r = tu_reader_open(g_dir);
    assert_non_null(r);
    for (int i = 0; i < 64; i++) {
        ssize_t got = stall_reader_drain(r, spool_cb, sp);
        assert_true(got >= 0);
        if (got == 0) break;
    }
    /* 3 x 4 spans + 3 instants, 2 markers, 8 thread spans, 4 + 3 in children */
    assert_int_equal(stall__spool_count(sp), 12 + 3 + 2 + 8 + 4 + 3);
    stall_trace_opts_t o = {.t0_ns = t0, .end_ns = stall_now_ns(), .title = "python train.py"};
    if (stall__trace_write(tpath, sp, r, smp, &o) != 0) fail_msg("trace: %s", stall_last_error());
    assert_true(tu_exists(tpath));
    assert_false(tu_exists(tmp));

    char worker_name[64], doomed_name[64];
    snprintf(worker_name, sizeof worker_name, "worker 1 (pid %d)", (int)worker);
    snprintf(doomed_name, sizeof doomed_name, "doomed (pid %d)", (int)doomed);
    assert_int_equal(check(tpath, "--count", "step=X:3", "--count", "load=X:3", "--count", "decode=X:3",
                           "--count", "forward=X:3", "--count", "checkpoint=i:3", "--count",
                           "thread-work=X:4", "--count", "thread-inner=X:4", "--count", "child-span=X:2",
                           "--count", "child-inner=X:2", "--count", "killed-open=X:1", "--count",
                           "killed-done=X:2", "--count", "session begin: inner=i:1", "--count",
                           "session end: inner=i:1", "--parent", "load=step", "--parent", "decode=load",
                           "--parent", "forward=step", "--parent", "thread-inner=thread-work",
                           "--parent", "child-inner=child-span", "--parent", "killed-done=killed-open",
                           "--truncated", "killed-open=1", "--truncated", "step=0", "--has-arg",
                           "forward=cpu_ms", "--has-arg", "load=arg", "--process", worker_name,
                           "--process", doomed_name, "--process", "system", "--counter", "CPU %",
                           "--counter", "RSS MiB", "--other", "title=python train.py", "--other",
                           "events_left_out=0", "--other", "kept_longer_than_us=absent", "--other",
                           "session=trace-test", NULL),
                     0);

    /* the layout: main thread names, categories, scopes */
    char *txt = slurp(tpath);
    char want[128];
    snprintf(want, sizeof want, "\"pid\":%d,\"tid\":%d,\"args\":{\"name\":\"main thread\"}", (int)doomed,
             (int)doomed);
    assert_non_null(strstr(txt, want));
    assert_non_null(strstr(txt, "\"ph\":\"i\",\"s\":\"p\",\"name\":\"session begin: inner\",\"cat\":\"session\""));
    assert_non_null(strstr(txt, "\"ph\":\"X\",\"name\":\"decode\",\"cat\":\"preprocessing\""));
    assert_non_null(strstr(txt, "\"displayTimeUnit\":\"ms\""));
    free(txt);

    tu_reader_close(r, 0);
    stall__spool_free(sp);
    stall_sampler_free(smp);
}

/* ------------------------------------------------------------ max_events */

/* Writes a trace of a hand-made spool with max_events = max and checks it. */
static void write_cut(stall_spool_t *sp, stall_reader_t *r, uint64_t max, const char *kept_spans,
                      const char *instants, const char *left_out, const char *threshold) {
    char tpath[600];
    snprintf(tpath, sizeof tpath, "%s/cut.json", g_base);
    stall_trace_opts_t o = {.t0_ns = 0, .end_ns = 0, .max_events = max};
    assert_int_equal(stall__trace_write(tpath, sp, r, NULL, &o), 0);
    assert_int_equal(check(tpath, "--count", kept_spans, "--count", instants, "--count",
                           "session begin=i:1", "--other", left_out, "--other", threshold, NULL),
                     0);
}

static void test_trace_cut(void **state) {
    (void)state;
    drain_away();
    stall_name_t id = stall_intern("cut-span");
    stall_reader_t *r = tu_reader_open(g_dir);
    assert_non_null(r);
    stall_instant(STALL_KIND_OTHER, id, 0); /* makes this process known to the reader */
    assert_true(stall_reader_drain(r, discard_cb, NULL) >= 1);
    stall_reader_proc_t me;
    assert_int_equal(tu_find_proc(r, (uint32_t)getpid(), &me), 0);

    /* spans of 1..8, 9, 9 and 10 ms one after the other, two instants, a marker */
    static const uint64_t ms[] = {3, 1, 10, 2, 9, 4, 5, 9, 6, 7, 8};
    stall_record_t recs[16];
    size_t n = 0;
    uint64_t t = 1000000000ull;
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
        recs[n++] = (stall_record_t){.start_ns = t, .end_ns = t + ms[i] * 1000000, .pid = me.pid,
                                     .tid = me.pid, .name = id, .kind = STALL_KIND_IO};
        t += 20000000;
    }
    for (int i = 0; i < 2; i++)
        recs[n++] = (stall_record_t){.start_ns = t + (uint64_t)i, .end_ns = t + (uint64_t)i, .pid = me.pid,
                                     .tid = me.pid, .name = id, .flags = STALL_REC_INSTANT};
    recs[n++] = (stall_record_t){.start_ns = 5, .end_ns = 5, .pid = me.pid, .tid = me.pid,
                                 .kind = STALL_KIND_SESSION,
                                 .flags = STALL_REC_INSTANT | STALL_REC_SESSION_BEGIN};
    char spath[600];
    snprintf(spath, sizeof spath, "%s/cut.spool", g_base);
    stall_spool_t *sp = stall__spool_new(spath);
    assert_non_null(sp);
    assert_int_equal(stall__spool_add(sp, &me, recs, n), 0);

    write_cut(sp, r, 0, "cut-span=X:11", "cut-span=i:2", "events_left_out=0", "kept_longer_than_us=absent");
    write_cut(sp, r, 100, "cut-span=X:11", "cut-span=i:2", "events_left_out=0", "kept_longer_than_us=absent");
    write_cut(sp, r, 3, "cut-span=X:3", "cut-span=i:0", "events_left_out=10", "kept_longer_than_us=8000.000");
    /* the 2 longest would split the two 9 ms spans: both go */
    write_cut(sp, r, 2, "cut-span=X:1", "cut-span=i:0", "events_left_out=12", "kept_longer_than_us=9000.000");
    write_cut(sp, r, 1, "cut-span=X:1", "cut-span=i:0", "events_left_out=12", "kept_longer_than_us=9000.000");
    stall__spool_free(sp);
    tu_reader_close(r, 0);
}

/* -------------------------------------------------------------- escaping */

static void test_trace_escape(void **state) {
    (void)state;
    drain_away();
    char longname[101];
    for (int i = 0; i < 50; i++) memcpy(longname + 2 * i, "\xc3\xa9", 2); /* e-acute x 50 */
    longname[100] = '\0';
    const char *names[] = {"quote\"back\\slash", "ctl\x01\x1f\ttab\nnl\x7f", "h\xc3\xa9llo \xe2\x9c\x93 "
                           "\xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x9a\x80",
                           "bad\xff\xfeutf8\xed\xa0\x80", longname};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        stall_begin(STALL_KIND_OTHER, names[i]);
        stall_end();
    }
    char spath[600], tpath[600];
    snprintf(spath, sizeof spath, "%s/esc.spool", g_base);
    snprintf(tpath, sizeof tpath, "%s/esc.json", g_base);
    stall_spool_t *sp = stall__spool_new(spath);
    assert_non_null(sp);
    stall_reader_t *r = tu_reader_open(g_dir);
    assert_non_null(r);
    assert_true(stall_reader_drain(r, spool_cb, sp) >= 5);
    const char *title = "run \"x\" \\ \x02 \xce\xbb";
    stall_trace_opts_t o = {.t0_ns = 0, .end_ns = 0, .title = title};
    assert_int_equal(stall__trace_write(tpath, sp, r, NULL, &o), 0);

    /* 43 e-acutes survive the 87-byte cut; the lone lead byte becomes U+FFFD */
    char want_long[160] = "";
    for (int i = 0; i < 43; i++) strcat(want_long, "\xc3\xa9");
    strcat(want_long, "\xef\xbf\xbd=X:1");
    char other_title[64];
    snprintf(other_title, sizeof other_title, "title=%s", title);
    assert_int_equal(check(tpath, "--count", "quote\"back\\slash=X:1", "--count", "ctl\x01\x1f\ttab\nnl\x7f=X:1",
                           "--count", "h\xc3\xa9llo \xe2\x9c\x93 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x9a\x80=X:1",
                           "--count",
                           "bad\xef\xbf\xbd\xef\xbf\xbdutf8\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd=X:1",
                           "--count", want_long, "--other", other_title, NULL),
                     0);
    char *txt = slurp(tpath);
    assert_non_null(strstr(txt, "\"name\":\"quote\\\"back\\\\slash\""));
    assert_non_null(strstr(txt, "\"name\":\"ctl\\u0001\\u001f\\ttab\\nnl\\u007f\""));
    assert_non_null(strstr(txt, "\"title\":\"run \\\"x\\\" \\\\ \\u0002 \xce\xbb\""));
    free(txt);
    tu_reader_close(r, 0);
    stall__spool_free(sp);
}

/* ---------------------------------------------------------------- errors */

static void test_trace_errors(void **state) {
    (void)state;
    char spath[600], tpath[600];
    snprintf(spath, sizeof spath, "%s/err.spool", g_base);
    snprintf(tpath, sizeof tpath, "%s/missing/err.json", g_base);
    stall_spool_t *sp = stall__spool_new(spath);
    assert_non_null(sp);
    stall_reader_t *r = tu_reader_open(g_dir);
    assert_non_null(r);
    stall_trace_opts_t o = {0};
    assert_int_equal(stall__trace_write(NULL, sp, r, NULL, &o), -1);
    assert_int_equal(stall__trace_write(tpath, sp, r, NULL, NULL), -1);
    assert_int_equal(stall__trace_write(tpath, sp, r, NULL, &o), -1);
    assert_non_null(strstr(stall_last_error(), "err.json.tmp"));
    /* an empty spool is a valid, empty trace */
    snprintf(tpath, sizeof tpath, "%s/empty.json", g_base);
    assert_int_equal(stall__trace_write(tpath, sp, r, NULL, &o), 0);
    assert_int_equal(check(tpath, "--other", "events_left_out=0", NULL), 0);
    tu_reader_close(r, 0);
    stall__spool_free(sp);
}

/* The validator itself: each broken trace must be rejected. */
static void test_checker_rejects(void **state) {
    (void)state;
    static const char *const bad[] = {
        /* overlapping X events of one thread */
        "{\"ph\":\"X\",\"name\":\"a\",\"cat\":\"c\",\"ts\":1.000,\"dur\":5.000,\"pid\":1,\"tid\":1},"
        "{\"ph\":\"X\",\"name\":\"b\",\"cat\":\"c\",\"ts\":2.000,\"dur\":5.000,\"pid\":1,\"tid\":1}",
        /* not sorted by ts */
        "{\"ph\":\"X\",\"name\":\"a\",\"cat\":\"c\",\"ts\":3.000,\"dur\":1.000,\"pid\":1,\"tid\":1},"
        "{\"ph\":\"X\",\"name\":\"b\",\"cat\":\"c\",\"ts\":1.000,\"dur\":1.000,\"pid\":1,\"tid\":1}",
        /* a thread without thread_name */
        "{\"ph\":\"X\",\"name\":\"a\",\"cat\":\"c\",\"ts\":1.000,\"dur\":1.000,\"pid\":1,\"tid\":2}",
        /* a missing key (dur) */
        "{\"ph\":\"X\",\"name\":\"a\",\"cat\":\"c\",\"ts\":1.000,\"pid\":1,\"tid\":1}",
        /* not UTF-8 */
        "{\"ph\":\"X\",\"name\":\"\xff\",\"cat\":\"c\",\"ts\":1.000,\"dur\":1.000,\"pid\":1,\"tid\":1}",
    };
    char path[600];
    snprintf(path, sizeof path, "%s/bad.json", g_base);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fprintf(f,
                "{\"traceEvents\":["
                "{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":1,\"args\":{\"name\":\"p\"}},"
                "{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":1,\"tid\":1,\"args\":{\"name\":\"t\"}},"
                "%s],\"displayTimeUnit\":\"ms\",\"otherData\":{}}",
                bad[i]);
        fclose(f);
        assert_int_equal(check(path, NULL), 1);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checker_rejects),
        cmocka_unit_test(test_spool),
        cmocka_unit_test_teardown(test_trace_full, tu_teardown_reader),
        cmocka_unit_test_teardown(test_trace_cut, tu_teardown_reader),
        cmocka_unit_test_teardown(test_trace_escape, tu_teardown_reader),
        cmocka_unit_test_teardown(test_trace_errors, tu_teardown_reader),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
