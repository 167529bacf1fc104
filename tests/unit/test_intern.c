/*
 * test_intern.c - operation names to ids (stall_intern): the same string
 * gives the same id, different strings different ids, NULL and "" give 0,
 * names are cut to 87 bytes (so names that differ only later share an id),
 * ids interned before any session exist are readable through a reader once a
 * session starts (mirroring), and the table holds 4096 names, then returns 0.
 * Concurrent interning is in test_intern_concurrency.c.
 *
 * Every id this process obtains is noted (note()), so that the fill test can
 * check that the full table is exactly ids 1..4096.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "layout.h"
#include "test_util.h"

#define MAX_LEN (STALL_NAME_LEN - 9) /* 87: the name bytes kept */

static char g_base[512];
static stall_session_t *g_sess;
static const char *g_dir;

/* every id obtained so far, by id */
static unsigned char g_seen[STALL_NAME_SLOTS + 1];

static stall_name_t note(stall_name_t id) {
    if (id <= STALL_NAME_SLOTS) g_seen[id] = 1;
    return id;
}

static stall_name_t intern(const char *s) { return note(stall_intern(s)); }

/* names interned before the session, checked through the reader after */
static struct {
    char name[128];
    stall_name_t id;
} g_pre[64];
static int g_npre;

static void pre(const char *name, stall_name_t id) {
    snprintf(g_pre[g_npre].name, sizeof g_pre[g_npre].name, "%s", name);
    g_pre[g_npre].id = id;
    g_npre++;
}

static int group_setup(void **state) {
    (void)state;
    return tu_mkbase(g_base, sizeof g_base, "intern");
}

static int group_teardown(void **state) {
    (void)state;
    tu_session_end(g_sess, g_dir, g_base);
    return 0;
}

static void test_null_and_empty(void **state) {
    (void)state;
    assert_int_equal(stall_intern(NULL), 0);
    assert_int_equal(stall_intern(""), 0);
}

static void test_same_and_different(void **state) {
    (void)state;
    assert_null(stall_session_dir(NULL)); /* no session yet: private table only */
    stall_name_t a = intern("load_batch");
    stall_name_t b = intern("decode");
    stall_name_t c = intern("Decode");  /* case matters */
    stall_name_t d = intern("decode "); /* trailing space matters */
    assert_true(a && b && c && d);
    assert_true(a <= STALL_NAME_SLOTS && b <= STALL_NAME_SLOTS);
    assert_int_not_equal(a, b);
    assert_int_not_equal(b, c);
    assert_int_not_equal(b, d);
    assert_int_not_equal(c, d);
    /* the same string from another buffer */
    char copy[32];
    strcpy(copy, "load_batch");
    assert_int_equal(intern(copy), a);
    assert_int_equal(intern("decode"), b);
    pre("load_batch", a);
    pre("decode", b);
    pre("Decode", c);
    pre("decode ", d);

    /* many names: all distinct, all stable */
    stall_name_t ids[200];
    char nm[32];
    for (int i = 0; i < 200; i++) {
        snprintf(nm, sizeof nm, "op-%d", i);
        ids[i] = intern(nm);
        assert_true(ids[i] != 0);
        for (int j = 0; j < i; j++) assert_int_not_equal(ids[i], ids[j]);
    }
    for (int i = 0; i < 200; i++) {
        snprintf(nm, sizeof nm, "op-%d", i);
        assert_int_equal(intern(nm), ids[i]);
    }
    pre("op-0", ids[0]);
    pre("op-199", ids[199]);

    /* two names with the same 32-bit FNV-1a hash (the library's hash today):
     * equal hashes must not make them one name */
    stall_name_t h1 = intern("op-734300"), h2 = intern("op-39124");
    assert_true(h1 != 0 && h2 != 0);
    assert_int_not_equal(h1, h2);
    assert_int_equal(intern("op-734300"), h1);
    assert_int_equal(intern("op-39124"), h2);
    pre("op-734300", h1);
    pre("op-39124", h2);
}

static void test_long_names_truncated(void **state) {
    (void)state;
    char a[200], b[200], c[200], exact[MAX_LEN + 1];
    memset(a, 'x', sizeof a);
    a[150] = '\0';
    memcpy(b, a, sizeof b);
    b[MAX_LEN] = 'Y'; /* differs only after the kept bytes */
    b[120] = 'Z';
    memcpy(c, a, sizeof c);
    c[MAX_LEN - 1] = 'Y'; /* differs at the last kept byte */
    memcpy(exact, a, MAX_LEN);
    exact[MAX_LEN] = '\0';

    stall_name_t ia = intern(a), ib = intern(b), ic = intern(c), ie = intern(exact);
    assert_true(ia && ic);
    assert_int_equal(ia, ib);
    assert_int_equal(ia, ie); /* the 87-byte prefix is the name */
    assert_int_not_equal(ia, ic);
    pre(exact, ia);
    c[MAX_LEN] = '\0';
    pre(c, ic);

    /* 86 bytes is a different, shorter name */
    exact[MAX_LEN - 1] = '\0';
    stall_name_t i86 = intern(exact);
    assert_true(i86 != 0);
    assert_int_not_equal(i86, ia);
    pre(exact, i86);
}

static void test_mirrored_after_session_start(void **state) {
    (void)state;
    assert_true(g_npre > 5);
    stall_options_t o = {.base_dir = g_base, .no_export = 1, .ring_records = 64};
    g_sess = stall_session_start("intern-test", &o);
    assert_non_null(g_sess);
    note(stall_intern("intern-test")); /* the session interned its name */
    g_dir = stall_session_dir(g_sess);
    assert_non_null(g_dir);

    stall_name_t after = intern("interned-after-start");
    assert_true(after != 0);
    stall_reader_t *r = tu_reader_open(g_dir);
    assert_non_null(r);
    tu_coll_t c = {0};
    tu_drain_all(r, &c); /* finds our process file */
    stall_reader_proc_t p = {0};
    assert_int_equal(tu_find_proc(r, (uint32_t)getpid(), &p), 0);
    for (int i = 0; i < g_npre; i++) {
        const char *got = stall_reader_name(r, p.index, g_pre[i].id);
        if (strcmp(got, g_pre[i].name))
            fail_msg("id %u: reader has \"%s\", want \"%s\"", g_pre[i].id, got, g_pre[i].name);
    }
    assert_string_equal(stall_reader_name(r, p.index, after), "interned-after-start");
    int long_ones = 0;
    for (int i = 0; i < g_npre; i++)
        if (strlen(g_pre[i].name) == MAX_LEN) {
            assert_int_equal(strlen(stall_reader_name(r, p.index, g_pre[i].id)), MAX_LEN);
            long_ones++;
        }
    assert_int_equal(long_ones, 2);
    /* interned while a reader is open: visible at once */
    stall_name_t later = intern("interned-while-reading");
    assert_string_equal(stall_reader_name(r, p.index, later), "interned-while-reading");
    /* unknown ids resolve to "" */
    assert_string_equal(stall_reader_name(r, p.index, 0), "");
    assert_string_equal(stall_reader_name(r, p.index, STALL_NAME_SLOTS + 1), "");
    assert_string_equal(stall_reader_name(r, 9999, after), "");
    tu_coll_free(&c);
    tu_reader_close(r, 0);
}

/* Runs in a forked child: interns new names until the table is full, and
 * checks what it can. Returns 0, or the number of the failed check. */
static int fill_child(int report_fd) {
    unsigned char seen[STALL_NAME_SLOTS + 1];
    memcpy(seen, g_seen, sizeof seen);
    int before = 0;
    for (uint32_t i = 1; i <= STALL_NAME_SLOTS; i++) before += seen[i];
    /* a span first: the child's own file, so new names are mirrored there */
    stall_name_t fs = stall_intern("fill-start");
    if (fs == 0 || fs > STALL_NAME_SLOTS || seen[fs]) return 5;
    seen[fs] = 1;
    stall_begin_id(STALL_KIND_OTHER, fs);
    stall_end();
    uint32_t nfill = 0, last = 0;
    char nm[32];
    for (;;) {
        snprintf(nm, sizeof nm, "fill-%u", nfill);
        stall_name_t id = stall_intern(nm);
        if (id == 0) break;
        if (id > STALL_NAME_SLOTS) return 2;
        if (seen[id]) return 3; /* an id handed out twice */
        seen[id] = 1;
        last = id;
        if (++nfill > STALL_NAME_SLOTS) return 4; /* never full */
    }
    if (stall_intern("fill-start") != fs) return 5;
    int total = 0;
    for (uint32_t i = 1; i <= STALL_NAME_SLOTS; i++) total += seen[i];
    if (total != (int)STALL_NAME_SLOTS) return 6; /* full means every id 1..4096 */
    if ((int)nfill + 1 + before != (int)STALL_NAME_SLOTS) return 7;
    /* full: new names get 0, known names keep their ids */
    if (stall_intern("one-too-many") != 0) return 8;
    if (stall_intern("another-one") != 0) return 9;
    snprintf(nm, sizeof nm, "fill-%u", nfill - 1);
    if (stall_intern(nm) != last) return 10;
    if (stall_intern("load_batch") != g_pre[0].id) return 11;
    /* a span named by a full table still records (with name 0) */
    stall_begin(STALL_KIND_IO, "no-room-for-this-name");
    stall_end_arg(77);
    stall_begin_id(STALL_KIND_IO, last);
    stall_end_arg(78);
    uint32_t msg[2] = {last, nfill};
    if (write(report_fd, msg, sizeof msg) != (ssize_t)sizeof msg) return 12;
    return 0;
}

static void test_table_fills_at_4096(void **state) {
    (void)state;
    assert_non_null(g_dir);
    int p[2];
    assert_int_equal(pipe(p), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        _exit(fill_child(p[1]));
    }
    close(p[1]);
    uint32_t msg[2] = {0, 0};
    ssize_t n = read(p[0], msg, sizeof msg);
    close(p[0]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    if (WEXITSTATUS(st) != 0) fail_msg("fill child failed check %d", WEXITSTATUS(st));
    assert_int_equal(n, (ssize_t)sizeof msg);

    /* the child's shared table is full too, and resolves the last name */
    stall_reader_t *r = tu_reader_open(g_dir);
    assert_non_null(r);
    tu_coll_t c = {0};
    tu_drain_all(r, &c);
    stall_reader_proc_t cp = {0};
    assert_int_equal(tu_find_proc(r, (uint32_t)pid, &cp), 0);
    char want[32];
    snprintf(want, sizeof want, "fill-%u", msg[1] - 1);
    assert_string_equal(stall_reader_name(r, cp.index, msg[0]), want);
    int named0 = 0, namedlast = 0;
    for (size_t i = 0; i < c.n; i++) {
        if (c.v[i].rec.pid != (uint32_t)pid) continue;
        if (c.v[i].rec.arg == 77 && c.v[i].rec.name == 0) named0++;
        if (c.v[i].rec.arg == 78 && c.v[i].rec.name == msg[0]) namedlast++;
    }
    assert_int_equal(named0, 1);
    assert_int_equal(namedlast, 1);
    tu_coll_free(&c);
    tu_reader_close(r, 0);

    /* the parent's table is untouched by the child's filling */
    assert_int_not_equal(intern("parent-still-has-room"), 0);
}

int main(void) {
    tu_clean_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_null_and_empty, tu_teardown_reader),
        cmocka_unit_test_teardown(test_same_and_different, tu_teardown_reader),
        cmocka_unit_test_teardown(test_long_names_truncated, tu_teardown_reader),
        cmocka_unit_test_teardown(test_mirrored_after_session_start, tu_teardown_reader),
        cmocka_unit_test_teardown(test_table_fills_at_4096, tu_teardown_reader),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
