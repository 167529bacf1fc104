/*
 * test_session.c - sessions and their directory: option checking and error
 * messages, the directory (0700) and process files (0600), meta.json and the
 * session name, STALL_SESSION_DIR exported or not, one reader at a time,
 * readers on folders that are not sessions, removal at exit unless keep=1,
 * process labels, and a process that joins through STALL_SESSION_DIR.
 *
 * Scenarios that need a process of their own re-execute this binary
 * (/proc/self/exe) with a --child-* argument: the child starts with fresh
 * library state, does its part, reports on stdout and exits.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "test_util.h"

/* a name that needs escaping in meta.json and sanitising in the dir name */
#define CHILD_SESSION_NAME "child \"created\" \\ here/x"

static char g_base[512];
static stall_session_t *g_sess;
static char g_dir[1024];

/* The session of this process, made at first use (not in a group setup, so
 * that the first test sees a process that records nowhere). */
static const char *ensure_session(void) {
    if (!g_sess) {
        /* no options: the base folder comes from STALL_DIR (group setup) */
        g_sess = stall_session_start("unit-session", NULL);
        if (!g_sess) fail_msg("stall_session_start: %s", stall_last_error());
        const char *d = stall_session_dir(g_sess);
        assert_non_null(d);
        snprintf(g_dir, sizeof g_dir, "%s", d);
    }
    return g_dir;
}

static int group_setup(void **state) {
    (void)state;
    if (tu_mkbase(g_base, sizeof g_base, "session") < 0) return -1;
    setenv("STALL_UNIT_BASE", g_base, 1); /* where --child-create makes its session */
    setenv("STALL_DIR", g_base, 1);       /* where ensure_session() makes ours */
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    tu_session_end(g_sess, g_dir, g_base);
    return 0;
}

/* Runs this binary again with up to three arguments (NULL ends them) and the
 * environment of this process; the child's stdout comes back in out (NUL
 * terminated), its pid in *pid_out. Returns the wait status. */
static int run_child(char *out, size_t cap, pid_t *pid_out, const char *a1, const char *a2,
                     const char *a3) {
    int p[2];
    assert_int_equal(pipe(p), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        dup2(p[1], 1);
        close(p[1]);
        execl("/proc/self/exe", "test_session", a1, a2, a3, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    size_t len = 0;
    for (;;) {
        ssize_t n = read(p[0], out + len, cap - 1 - len);
        if (n <= 0) break;
        len += (size_t)n;
        if (len + 1 >= cap) break;
    }
    out[len] = '\0';
    close(p[0]);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (pid_out) *pid_out = pid;
    return st;
}

/* Value of "key=" on its own line of a child's report, copied into v. */
static int report_get(const char *rep, const char *key, char *v, size_t cap) {
    size_t kl = strlen(key);
    for (const char *l = rep; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        if (!strncmp(l, key, kl) && l[kl] == '=') {
            const char *s = l + kl + 1, *e = strchr(s, '\n');
            size_t n = e ? (size_t)(e - s) : strlen(s);
            if (n >= cap) n = cap - 1;
            memcpy(v, s, n);
            v[n] = '\0';
            return 0;
        }
    }
    return -1;
}

/* ------------------------------------------------------------ children */

/* --child-create KEEP NOEXPORT: makes its own session under $STALL_UNIT_BASE,
 * reports its directory and STALL_SESSION_DIR, exits normally. */
static int child_create(const char *base, int keep, int no_export) {
    tu_clean_env();
    stall_options_t o = {.base_dir = base, .keep = keep, .no_export = no_export};
    stall_session_t *s = stall_session_start(CHILD_SESSION_NAME, &o);
    if (!s) {
        printf("error=%s\n", stall_last_error());
        return 2;
    }
    stall_begin(STALL_KIND_IO, "child-span");
    stall_end_arg(9);
    const char *env = getenv("STALL_SESSION_DIR");
    printf("dir=%s\nenv=%s\n", stall_session_dir(s), env ? env : "(unset)");
    stall_session_stop(s);
    fflush(stdout);
    exit(0); /* normal exit: atexit handlers run */
}

/* --child-join: records into the session named by STALL_SESSION_DIR. */
static int child_join(void) {
    if (stall_set_process_label("joiner") != 0) return 2; /* before the file exists */
    /* base_dir is ignored: the process joins the session it inherited */
    stall_options_t o = {.base_dir = "/nonexistent-stall-base"};
    stall_session_t *s = stall_session_start("child-session", &o);
    if (!s) {
        printf("error=%s\n", stall_last_error());
        return 2;
    }
    for (uint64_t i = 0; i < 3; i++) {
        stall_begin(STALL_KIND_DATA_LOADING, "joined-span");
        stall_end_arg(1234 + i);
    }
    printf("dir=%s\n", stall_session_dir(s));
    stall_session_stop(s);
    fflush(stdout);
    exit(0);
}

/* ------------------------------------------------------------- tests */

static void test_no_session_yet(void **state) {
    (void)state;
    assert_null(stall_session_dir(NULL));
    /* spans with nowhere to go are harmless no-ops */
    stall_begin(STALL_KIND_STEP, "nowhere");
    stall_instant(STALL_KIND_OTHER, stall_intern("nowhere-instant"), 1);
    stall_end_arg(1);
    stall_end();
    assert_null(stall_session_dir(NULL));
}

static void expect_bad(const char *name, stall_options_t o, const char *field) {
    stall_session_t *s = stall_session_start(name, &o);
    if (s) fail_msg("stall_session_start accepted bad %s", field);
    const char *e = stall_last_error();
    if (!strstr(e, field)) fail_msg("error for bad %s does not name it: \"%s\"", field, e);
}

static void test_bad_options(void **state) {
    (void)state;
    expect_bad("x", (stall_options_t){.ring_records = 100}, "ring_records");
    expect_bad("x", (stall_options_t){.ring_records = 32}, "ring_records"); /* below 64 */
    expect_bad("x", (stall_options_t){.ring_records = 65}, "ring_records");
    expect_bad("x", (stall_options_t){.ring_records = 0x80000000u}, "ring_records");
    expect_bad("x", (stall_options_t){.max_threads = 1025}, "max_threads");
    expect_bad("x", (stall_options_t){.max_threads = 100000}, "max_threads");
    expect_bad("", (stall_options_t){0}, "name");
    /* an unusable base folder; the other options of the failed call must not
     * stick (checked by test_failed_start_left_no_config) */
    char missing[1024];
    snprintf(missing, sizeof missing, "%s/missing/deeper", g_base);
    expect_bad("x", (stall_options_t){.base_dir = missing, .ring_records = 64, .max_threads = 1}, "base_dir");
    assert_non_null(strstr(stall_last_error(), missing));
    assert_null(stall_session_start(NULL, NULL));
    assert_non_null(strstr(stall_last_error(), "name"));
    /* nothing was created by the failures */
    assert_null(stall_session_dir(NULL));
    DIR *d = opendir(g_base);
    assert_non_null(d);
    struct dirent *e;
    int entries = 0;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) entries++;
    closedir(d);
    assert_int_equal(entries, 0);
    assert_int_equal(stall_session_stop(NULL), -1);
}

static void test_directory_and_files(void **state) {
    (void)state;
    const char *dir = ensure_session();
    assert_int_equal(strncmp(dir, g_base, strlen(g_base)), 0);
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0700);
    assert_int_equal(st.st_uid, getuid());

    /* meta.json names the session */
    char path[1400], buf[2048];
    snprintf(path, sizeof path, "%s/meta.json", dir);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "\"name\":\"unit-session\""));
    assert_int_equal(buf[0], '{');

    /* one process file of ours, 0600 (the session start marker made it) */
    stall_begin(STALL_KIND_OTHER, "make-file");
    stall_end();
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    int pfiles = 0, tmpfiles = 0;
    char want[64];
    snprintf(want, sizeof want, "p-%d-", (int)getpid());
    while ((e = readdir(d))) {
        if (!strncmp(e->d_name, ".tmp", 4)) tmpfiles++;
        if (strncmp(e->d_name, "p-", 2)) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        assert_int_equal(stat(path, &st), 0);
        assert_true(S_ISREG(st.st_mode));
        if ((st.st_mode & 07777) != 0600) fail_msg("%s has mode %o", path, st.st_mode & 07777);
        if (!strncmp(e->d_name, want, strlen(want))) pfiles++;
    }
    closedir(d);
    assert_int_equal(pfiles, 1);
    assert_int_equal(tmpfiles, 0);

    /* the reader sees the name and our process */
    stall_reader_t *r = tu_reader_open(dir);
    assert_non_null(r);
    assert_string_equal(stall_reader_session_name(r), "unit-session");
    tu_coll_t c = {0};
    tu_drain_all(r, &c);
    stall_reader_proc_t p = {0};
    assert_int_equal(tu_find_proc(r, (uint32_t)getpid(), &p), 0);
    assert_int_equal(p.alive, 1);
    assert_int_equal(p.closed, 0);
    assert_int_equal(p.ppid, (uint32_t)getppid());
    assert_true(p.threads >= 1);
    assert_true(p.comm[0] != '\0');
    /* the session start marker */
    int begin_markers = 0;
    for (size_t i = 0; i < c.n; i++) {
        const stall_record_t *x = &c.v[i].rec;
        if (x->kind == STALL_KIND_SESSION && (x->flags & STALL_REC_SESSION_BEGIN)) {
            begin_markers++;
            assert_true(x->flags & STALL_REC_INSTANT);
            assert_string_equal(stall_reader_name(r, c.v[i].proc_index, x->name), "unit-session");
        }
    }
    assert_int_equal(begin_markers, 1);
    tu_coll_free(&c);
    tu_reader_close(r, 0);
    assert_true(tu_exists(dir)); /* close(r, 0) keeps it */
}

/* The failed start in test_bad_options asked for 64-record rings: the
 * session made later with no options must have the default (16384). */
static void test_failed_start_left_no_config(void **state) {
    (void)state;
    const char *dir = ensure_session();
    stall_reader_t *r = tu_reader_open(dir);
    assert_non_null(r);
    tu_coll_t c = {0};
    tu_drain_all(r, &c);
    stall_reader_proc_t p = {0};
    assert_int_equal(tu_find_proc(r, (uint32_t)getpid(), &p), 0);
    uint64_t d0 = p.dropped;
    for (uint64_t i = 0; i < 1000; i++) {
        stall_begin(STALL_KIND_OTHER, "no-drain");
        stall_end_arg(i);
    }
    tu_coll_reset(&c);
    tu_drain_all(r, &c);
    size_t n;
    tu_rec_t *v = tu_select_tid(&c, (uint32_t)gettid(), &n);
    assert_int_equal(n, 1000);
    free(v);
    assert_int_equal(tu_find_proc(r, (uint32_t)getpid(), &p), 0);
    assert_int_equal(p.dropped, d0);
    tu_coll_free(&c);
    tu_reader_close(r, 0);
}

static void test_env_exported(void **state) {
    (void)state;
    const char *dir = ensure_session();
    const char *env = getenv("STALL_SESSION_DIR");
    assert_non_null(env);
    assert_string_equal(env, dir);
    assert_string_equal(stall_session_dir(NULL), dir);
}

static void test_second_reader_fails(void **state) {
    (void)state;
    const char *dir = ensure_session();
    stall_reader_t *r1 = tu_reader_open(dir);
    assert_non_null(r1);
    stall_reader_t *r2 = tu_reader_open(dir);
    if (r2) {
        tu_reader_close(r2, 0);
        tu_reader_close(r1, 0);
        fail_msg("a second reader opened the same session");
    }
    const char *e = stall_last_error();
    if (!strstr(e, dir)) fail_msg("error does not name the directory: \"%s\"", e);
    tu_reader_close(r1, 0);
    /* once the first is closed, another may open */
    r2 = tu_reader_open(dir);
    assert_non_null(r2);
    tu_reader_close(r2, 0);
}

static void test_reader_not_a_session(void **state) {
    (void)state;
    char empty[1024];
    snprintf(empty, sizeof empty, "%s/not-a-session", g_base);
    assert_int_equal(mkdir(empty, 0700), 0);
    stall_reader_t *r = tu_reader_open(empty);
    assert_null(r);
    const char *e = stall_last_error();
    if (!strstr(e, empty) || !strstr(e, "session")) fail_msg("unclear error: \"%s\"", e);
    char lock[1100];
    snprintf(lock, sizeof lock, "%s/reader.lock", empty);
    assert_false(tu_exists(lock)); /* a failed open leaves nothing behind */
    assert_int_equal(rmdir(empty), 0);

    char missing[1024];
    snprintf(missing, sizeof missing, "%s/does-not-exist", g_base);
    assert_null(tu_reader_open(missing));
    assert_non_null(strstr(stall_last_error(), missing));

    /* a regular file */
    char file[1024];
    snprintf(file, sizeof file, "%s/plain-file", g_base);
    int fd = open(file, O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    close(fd);
    assert_null(tu_reader_open(file));
    assert_non_null(strstr(stall_last_error(), file));
    unlink(file);

    assert_null(tu_reader_open(NULL));
    assert_true(stall_last_error()[0] != '\0');
    assert_null(tu_reader_open(""));
    assert_true(stall_last_error()[0] != '\0');
}

static void check_created_child(int keep, int no_export) {
    char out[4096], dir[2048], env[2048];
    char keep_s[4], noexp_s[4];
    snprintf(keep_s, sizeof keep_s, "%d", keep);
    snprintf(noexp_s, sizeof noexp_s, "%d", no_export);
    int st = run_child(out, sizeof out, NULL, "--child-create", keep_s, noexp_s);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fail_msg("child failed (status %d): %s", st, out);
    assert_int_equal(report_get(out, "dir", dir, sizeof dir), 0);
    assert_int_equal(report_get(out, "env", env, sizeof env), 0);
    assert_int_equal(strncmp(dir, g_base, strlen(g_base)), 0);
    assert_string_not_equal(dir, g_dir[0] ? g_dir : "");
    if (no_export) assert_string_equal(env, "(unset)");
    else assert_string_equal(env, dir);
    if (!keep) {
        if (tu_exists(dir)) fail_msg("%s still exists after its creator exited", dir);
        return;
    }
    /* kept: a reader can still read what the child wrote, then remove it */
    assert_true(tu_exists(dir));
    stall_reader_t *r = tu_reader_open(dir);
    assert_non_null(r);
    assert_string_equal(stall_reader_session_name(r), CHILD_SESSION_NAME);
    tu_coll_t c = {0};
    tu_drain_all(r, &c);
    int spans = 0;
    for (size_t i = 0; i < c.n; i++)
        if (c.v[i].rec.kind == STALL_KIND_IO && c.v[i].rec.arg == 9) spans++;
    assert_int_equal(spans, 1);
    assert_int_equal(stall_reader_proc(r, 0, NULL), 1);
    stall_reader_proc_t p = {0};
    stall_reader_proc(r, 0, &p);
    assert_int_equal(p.alive, 0);
    assert_int_equal(p.closed, 1);
    tu_coll_free(&c);
    assert_int_equal(tu_reader_close(r, 1), 0);
    assert_false(tu_exists(dir));
}

static void test_removed_at_exit(void **state) {
    (void)state;
    check_created_child(0, 0);
}

static void test_kept_with_keep(void **state) {
    (void)state;
    check_created_child(1, 0);
}

static void test_no_export(void **state) {
    (void)state;
    check_created_child(0, 1);
}

static void test_process_label(void **state) {
    (void)state;
    const char *dir = ensure_session();
    assert_int_equal(stall_set_process_label(NULL), -1);
    assert_true(stall_last_error()[0] != '\0');
    assert_int_equal(stall_set_process_label("main-label"), 0);
    stall_reader_t *r = tu_reader_open(dir);
    assert_non_null(r);
    tu_coll_t c = {0};
    tu_drain_all(r, &c);
    stall_reader_proc_t p = {0};
    assert_int_equal(tu_find_proc(r, (uint32_t)getpid(), &p), 0);
    assert_string_equal(p.label, "main-label");
    /* changed while a reader is open: seen at the next look */
    assert_int_equal(stall_set_process_label("a label that is much longer than thirty-one bytes"), 0);
    assert_int_equal(tu_find_proc(r, (uint32_t)getpid(), &p), 0);
    assert_int_equal(strlen(p.label), 31);
    assert_int_equal(strncmp(p.label, "a label that is much longer than", 31), 0);
    tu_coll_free(&c);
    tu_reader_close(r, 0);
}

static void test_join_via_env(void **state) {
    (void)state;
    const char *dir = ensure_session();
    assert_string_equal(getenv("STALL_SESSION_DIR"), dir);
    char out[4096], cdir[2048];
    pid_t pid;
    int st = run_child(out, sizeof out, &pid, "--child-join", NULL, NULL);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fail_msg("child failed (status %d): %s", st, out);
    assert_int_equal(report_get(out, "dir", cdir, sizeof cdir), 0);
    assert_string_equal(cdir, dir);

    stall_reader_t *r = tu_reader_open(dir);
    assert_non_null(r);
    tu_coll_t c = {0};
    tu_drain_all(r, &c);
    stall_reader_proc_t p = {0};
    assert_int_equal(tu_find_proc(r, (uint32_t)pid, &p), 0);
    assert_string_equal(p.label, "joiner");
    assert_int_equal(p.ppid, (uint32_t)getpid());
    assert_int_equal(p.alive, 0);
    assert_int_equal(p.closed, 1);
    int spans = 0, begins = 0, ends = 0;
    for (size_t i = 0; i < c.n; i++) {
        const stall_record_t *x = &c.v[i].rec;
        if (x->pid != (uint32_t)pid) continue;
        assert_int_equal(c.v[i].proc_index, p.index);
        const char *nm = stall_reader_name(r, p.index, x->name);
        if (x->kind == STALL_KIND_SESSION) {
            assert_string_equal(nm, "child-session");
            if (x->flags & STALL_REC_SESSION_BEGIN) begins++;
            if (x->flags & STALL_REC_SESSION_END) ends++;
            continue;
        }
        assert_string_equal(nm, "joined-span");
        assert_int_equal(x->arg, 1234 + (uint64_t)spans);
        spans++;
    }
    assert_int_equal(spans, 3);
    assert_int_equal(begins, 1);
    assert_int_equal(ends, 1);
    tu_coll_free(&c);
    tu_reader_close(r, 0);
    /* the joining child did not remove the session when it exited */
    assert_true(tu_exists(dir));
}

static void test_kind_names_and_version(void **state) {
    (void)state;
    assert_string_equal(stall_kind_name(STALL_KIND_DATA_LOADING), "data_loading");
    assert_string_equal(stall_kind_name(STALL_KIND_IO), "io");
    assert_string_equal(stall_kind_name(STALL_KIND_SESSION), "session");
    assert_string_equal(stall_kind_name(STALL_KIND_COUNT_), "unknown");
    assert_string_equal(stall_kind_name(-1), "unknown");
    assert_string_equal(stall_version(), STALL_VERSION_STRING);
    uint64_t a = stall_now_ns(), b = stall_now_ns();
    assert_true(a != 0 && a <= b);
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "--child-create") && argc >= 4) {
        const char *base = getenv("STALL_UNIT_BASE");
        return child_create(base, atoi(argv[2]), atoi(argv[3]));
    }
    if (argc >= 2 && !strcmp(argv[1], "--child-join")) return child_join();
    tu_clean_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_no_session_yet, tu_teardown_reader), /* first: nothing started yet */
        cmocka_unit_test_teardown(test_bad_options, tu_teardown_reader),
        cmocka_unit_test_teardown(test_directory_and_files, tu_teardown_reader),
        cmocka_unit_test_teardown(test_failed_start_left_no_config, tu_teardown_reader),
        cmocka_unit_test_teardown(test_env_exported, tu_teardown_reader),
        cmocka_unit_test_teardown(test_second_reader_fails, tu_teardown_reader),
        cmocka_unit_test_teardown(test_reader_not_a_session, tu_teardown_reader),
        cmocka_unit_test_teardown(test_removed_at_exit, tu_teardown_reader),
        cmocka_unit_test_teardown(test_kept_with_keep, tu_teardown_reader),
        cmocka_unit_test_teardown(test_no_export, tu_teardown_reader),
        cmocka_unit_test_teardown(test_process_label, tu_teardown_reader),
        cmocka_unit_test_teardown(test_join_via_env, tu_teardown_reader),
        cmocka_unit_test_teardown(test_kind_names_and_version, tu_teardown_reader),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
