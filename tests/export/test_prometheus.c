/*
 * test_prometheus.c - the Prometheus exporter: label escaping and names, the
 * exposition rendered from a made-up engine state (every line in the text
 * format's grammar, every series under its HELP and TYPE, unknown values
 * left out, GPU series only for GPUs), the process CPU counter staying
 * monotonic while workers vanish, come back or restart under a reused pid,
 * the address parser, and the HTTP server on a real engine (GET /metrics,
 * /, 404, 405, a port in use, bad labels, an added source).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <math.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "prometheus.h"
#include "stall.h"
#include "test_util.h"

/* -------------------------------------------------------------- helpers */

static char *render_in(const stall_prom_in_t *in, stall_prom_cpu_t *cpu, const char *labels) {
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    assert_non_null(f);
    assert_int_equal(stall__prom_render(f, in, cpu, labels), 0);
    assert_int_equal(fclose(f), 0);
    return buf;
}

static const char *skip_name(const char *p) {
    if (!(isalpha((unsigned char)*p) || *p == '_' || *p == ':')) return NULL;
    while (isalnum((unsigned char)*p) || *p == '_' || *p == ':') p++;
    return p;
}

/* Checks one exposition: every line is a HELP, a TYPE or a sample in the
 * grammar of text format 0.0.4, each family has one HELP and one TYPE
 * before its samples, and a family's samples are together. Returns the
 * number of samples; fails the test (printing the line) otherwise. */
static int check_exposition(const char *text) {
    char fam[128] = "", helped[128] = "", typed[128] = "", sampled[128] = "";
    char done[64][128];
    int ndone = 0, samples = 0;
    const char *line = text;
    assert_true(strlen(text) > 0 && text[strlen(text) - 1] == '\n');
    while (*line) {
        const char *eol = strchr(line, '\n');
        assert_non_null(eol);
        char l[2048];
        size_t len = (size_t)(eol - line);
        assert_true(len < sizeof l);
        memcpy(l, line, len);
        l[len] = 0;
        line = eol + 1;
        if (!strncmp(l, "# HELP ", 7) || !strncmp(l, "# TYPE ", 7)) {
            const char *e = skip_name(l + 7);
            if (!e || *e != ' ') fail_msg("bad comment: %s", l);
            char name[128];
            snprintf(name, sizeof name, "%.*s", (int)(e - (l + 7)), l + 7);
            if (strcmp(name, fam)) { /* a new family: never seen before */
                for (int i = 0; i < ndone; i++)
                    if (!strcmp(done[i], name)) fail_msg("family %s comes twice", name);
                assert_true(ndone < 64);
                snprintf(done[ndone++], sizeof done[0], "%s", name);
                snprintf(fam, sizeof fam, "%s", name);
            }
            if ((l[2] == 'H' && !strcmp(helped, name)) || (l[2] == 'T' && !strcmp(typed, name)) ||
                (!strcmp(sampled, name)))
                fail_msg("family %s: a second HELP or TYPE, or one after its samples: %s", name, l);
            if (l[2] == 'H') snprintf(helped, sizeof helped, "%s", name);
            else {
                if (strcmp(e + 1, "counter") && strcmp(e + 1, "gauge")) fail_msg("bad type: %s", l);
                snprintf(typed, sizeof typed, "%s", name);
            }
            continue;
        }
        if (l[0] == '#') fail_msg("stray comment: %s", l);
        const char *p = skip_name(l);
        if (!p) fail_msg("bad metric name: %s", l);
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)(p - l), l);
        if (strcmp(name, fam) || strcmp(name, helped) || strcmp(name, typed))
            fail_msg("sample without its HELP and TYPE: %s", l);
        if (*p == '{') {
            p++;
            while (*p != '}') {
                const char *q = skip_name(p);
                if (!q || *q != '=' || q[1] != '"') fail_msg("bad label: %s", l);
                p = q + 2;
                while (*p && *p != '"') {
                    if (*p == '\\') {
                        if (p[1] != '\\' && p[1] != '"' && p[1] != 'n') fail_msg("bad escape: %s", l);
                        p++;
                    } else if (*p == '\n') {
                        fail_msg("raw newline: %s", l);
                    }
                    p++;
                }
                if (*p != '"') fail_msg("unterminated label value: %s", l);
                p++;
                if (*p == ',') p++;
                else if (*p != '}') fail_msg("bad label list: %s", l);
            }
            p++;
        }
        if (*p != ' ') fail_msg("no space before the value: %s", l);
        char *end;
        double v = strtod(p + 1, &end);
        if (end == p + 1 || *end) fail_msg("bad value: %s", l);
        (void)v;
        snprintf(sampled, sizeof sampled, "%s", name);
        samples++;
    }
    return samples;
}

/* The value of the sample whose line starts with `series ` (name{labels}),
 * or NAN when there is none. */
static double value_of(const char *text, const char *series) {
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (!strncmp(p, series, n) && p[n] == ' ') return strtod(p + n + 1, NULL);
    }
    return NAN;
}

static stall_proc_sample_t proc(uint32_t pid, uint32_t depth, uint64_t starttime, double cpu_s, uint64_t rss) {
    stall_proc_sample_t p;
    memset(&p, 0, sizeof p);
    p.pid = pid;
    p.ppid = depth ? 100 : 1;
    p.depth = depth;
    p.starttime = starttime;
    p.valid = STALL_PROC_STAT;
    p.utime_ns = (uint64_t)(cpu_s * 0.75e9);
    p.stime_ns = (uint64_t)(cpu_s * 1e9) - p.utime_ns;
    p.rss_bytes = rss;
    return p;
}

/* ------------------------------------------------------------- labels */

static void label_values_are_escaped(void **state) {
    (void)state;
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    stall__prom_escape(f, "a\"b\\c\nd\te");
    fclose(f);
    assert_string_equal(buf, "a\\\"b\\\\c\\nd\te");
    free(buf);

    assert_true(stall__prom_label_name_ok("host"));
    assert_true(stall__prom_label_name_ok("_x9"));
    assert_true(stall__prom_label_name_ok("world_size"));
    assert_false(stall__prom_label_name_ok(""));
    assert_false(stall__prom_label_name_ok("9a"));
    assert_false(stall__prom_label_name_ok("a-b"));
    assert_false(stall__prom_label_name_ok("a.b"));
    assert_false(stall__prom_label_name_ok("__name__"));
    assert_false(stall__prom_label_name_ok(NULL));
    assert_true(stall__prom_label_reserved("role"));
    assert_true(stall__prom_label_reserved("kind"));
    assert_false(stall__prom_label_reserved("rank"));
}

/* ---------------------------------------------------------- rendering */

static void exposition_of_a_made_up_state(void **state) {
    (void)state;
    stall_prom_in_t in;
    memset(&in, 0, sizeof in);
    in.batches = 42;
    in.data_wait_ns = 1500000001ull;
    in.kind_ns[STALL_KIND_DATA_LOADING] = 2000000000ull;
    in.kind_ns[STALL_KIND_STEP] = 3000000000ull;
    in.has_sampler = 1;
    in.has_sys = 1;
    in.sys.valid = STALL_SYS_CPU | STALL_SYS_RATES | STALL_SYS_MEM;
    in.sys.ncpus = 4;
    in.sys.cpu_user = 0.5;
    in.sys.cpu_system = 0.25;
    in.sys.mem_total_bytes = 8ull << 30;
    in.sys.mem_available_bytes = 5ull << 30;
    stall_proc_sample_t ps[3] = {proc(100, 0, 10, 1.0, 1000), proc(101, 1, 20, 2.0, 300), proc(102, 1, 21, 3.0, 400)};
    ps[2].valid |= STALL_PROC_PSS;
    ps[2].pss_bytes = 250;
    in.procs = ps;
    in.nprocs = 3;
    stall_gpu_t g[2];
    memset(g, 0, sizeof g);
    g[0].index = 0;
    g[0].valid = STALL_GPU_UTIL | STALL_GPU_MEM;
    g[0].util_sm_pct = 87.5;
    g[0].mem_used_bytes = 1000;
    g[0].mem_total_bytes = 4000;
    snprintf(g[0].name, sizeof g[0].name, "Fake \"GPU\" 0");
    g[1].index = 1; /* nothing known of it */
    snprintf(g[1].name, sizeof g[1].name, "Fake GPU 1");
    in.gpus = g;
    in.ngpus = 2;
    in.samples = 7;
    stall_prom_cpu_t cpu;
    memset(&cpu, 0, sizeof cpu);
    char *t = render_in(&in, &cpu, "host=\"a\\\"b\",rank=\"0\"");
    int n = check_exposition(t);
    assert_true(n >= 20);
    const char *L = "host=\"a\\\"b\",rank=\"0\"";
    char key[256];
#define V(series_fmt, ...) (snprintf(key, sizeof key, series_fmt, __VA_ARGS__), value_of(t, key))
    assert_true(V("stall_build_info{%s,version=\"%s\"}", L, stall_version()) == 1);
    assert_true(V("stall_batches_total{%s}", L) == 42);
    assert_true(fabs(V("stall_data_wait_seconds_total{%s}", L) - 1.500000001) < 1e-12);
    assert_true(V("stall_kind_seconds_total{%s,kind=\"data_loading\"}", L) == 2);
    assert_true(V("stall_kind_seconds_total{%s,kind=\"step\"}", L) == 3);
    assert_true(V("stall_kind_seconds_total{%s,kind=\"io\"}", L) == 0);
    assert_true(isnan(V("stall_kind_seconds_total{%s,kind=\"session\"}", L)));
    assert_true(fabs(V("stall_process_cpu_seconds_total{%s,role=\"main\"}", L) - 1) < 1e-9);
    assert_true(fabs(V("stall_process_cpu_seconds_total{%s,role=\"worker\"}", L) - 5) < 1e-9);
    assert_true(V("stall_process_resident_memory_bytes{%s,role=\"main\"}", L) == 1000);
    assert_true(V("stall_process_resident_memory_bytes{%s,role=\"worker\"}", L) == 300 + 250); /* PSS where known */
    assert_true(V("stall_processes{%s,role=\"main\"}", L) == 1);
    assert_true(V("stall_processes{%s,role=\"worker\"}", L) == 2);
    assert_true(V("stall_host_cpus{%s}", L) == 4);
    assert_true(fabs(V("stall_host_cpu_busy_ratio{%s}", L) - 0.75) < 1e-9);
    assert_true(V("stall_host_memory_total_bytes{%s}", L) == (double)(8ull << 30));
    assert_true(V("stall_host_memory_available_bytes{%s}", L) == (double)(5ull << 30));
    assert_true(V("stall_gpu_info{%s,gpu=\"0\",name=\"Fake \\\"GPU\\\" 0\"}", L) == 1);
    assert_true(V("stall_gpu_info{%s,gpu=\"1\",name=\"Fake GPU 1\"}", L) == 1);
    assert_true(fabs(V("stall_gpu_utilization_ratio{%s,gpu=\"0\"}", L) - 0.875) < 1e-9);
    assert_true(V("stall_gpu_memory_used_bytes{%s,gpu=\"0\"}", L) == 1000);
    assert_true(V("stall_gpu_memory_total_bytes{%s,gpu=\"0\"}", L) == 4000);
    /* GPU 1: unknown, so left out (never 0) */
    assert_null(strstr(t, "stall_gpu_utilization_ratio{host=\"a\\\"b\",rank=\"0\",gpu=\"1\"}"));
    assert_null(strstr(t, "stall_gpu_memory_used_bytes{host=\"a\\\"b\",rank=\"0\",gpu=\"1\"}"));
    assert_true(V("stall_sampler_samples_total{%s}", L) == 7);
#undef V
    free(t);

    /* no host sample, no GPU, rates unknown: those families are left out */
    in.sys.valid = STALL_SYS_CPU; /* no STALL_SYS_RATES, no MEM */
    in.ngpus = 0;
    t = render_in(&in, &cpu, "");
    check_exposition(t);
    assert_non_null(strstr(t, "\nstall_host_cpus 4\n"));
    assert_null(strstr(t, "stall_host_cpu_busy_ratio"));
    assert_null(strstr(t, "stall_host_memory"));
    assert_null(strstr(t, "stall_gpu_"));
    assert_non_null(strstr(t, "\nstall_batches_total 42\n")); /* no labels: no braces */
    free(t);

    /* an engine without a sampler: the loop's series only */
    in.has_sampler = 0;
    t = render_in(&in, &cpu, NULL);
    check_exposition(t);
    assert_null(strstr(t, "stall_process"));
    assert_null(strstr(t, "stall_host"));
    assert_null(strstr(t, "stall_sampler_samples_total"));
    assert_non_null(strstr(t, "stall_kind_seconds_total{kind=\"data_wait\"} 0.000000000\n"));
    free(t);

    /* before the first sample: no memory nor process counts (unknown) */
    in.has_sampler = 1;
    in.has_sys = 0;
    in.nprocs = 0;
    in.samples = 0;
    stall_prom_cpu_t fresh;
    memset(&fresh, 0, sizeof fresh);
    t = render_in(&in, &fresh, "host=\"h\"");
    check_exposition(t);
    assert_null(strstr(t, "stall_process_resident_memory_bytes"));
    assert_null(strstr(t, "stall_processes"));
    assert_non_null(strstr(t, "stall_process_cpu_seconds_total{host=\"h\",role=\"worker\"} 0.000000000\n"));
    free(t);
    stall__prom_cpu_free(&fresh);
    stall__prom_cpu_free(&cpu);
}

/* -------------------------------------------------- monotonic CPU time */

static double worker_s(stall_prom_cpu_t *c) { return (double)stall__prom_cpu_total_ns(c, STALL_PROM_WORKER) / 1e9; }

static void cpu_counter_survives_vanishing_workers(void **state) {
    (void)state;
    stall_prom_cpu_t c;
    memset(&c, 0, sizeof c);
    stall_proc_sample_t s1[] = {proc(100, 0, 10, 1.0, 0), proc(101, 1, 20, 2.0, 0), proc(102, 1, 21, 3.0, 0)};
    assert_int_equal(stall__prom_cpu_update(&c, s1, 3), 0);
    assert_true(fabs(worker_s(&c) - 5.0) < 1e-9);
    assert_true(fabs((double)stall__prom_cpu_total_ns(&c, STALL_PROM_MAIN) / 1e9 - 1.0) < 1e-9);

    /* worker 101 exited: its 2 s stay counted */
    stall_proc_sample_t s2[] = {proc(100, 0, 10, 1.5, 0), proc(102, 1, 21, 3.5, 0)};
    assert_int_equal(stall__prom_cpu_update(&c, s2, 2), 0);
    assert_true(fabs(worker_s(&c) - 5.5) < 1e-9);

    /* a restarted worker reuses pid 101 (another starttime): counted from 0 */
    stall_proc_sample_t s3[] = {proc(100, 0, 10, 1.6, 0), proc(101, 1, 99, 1.0, 0), proc(102, 1, 21, 3.5, 0)};
    assert_int_equal(stall__prom_cpu_update(&c, s3, 3), 0);
    assert_true(fabs(worker_s(&c) - 6.5) < 1e-9);

    /* 102 missed by one sample, then seen again: not counted twice */
    stall_proc_sample_t s4[] = {proc(100, 0, 10, 1.7, 0), proc(101, 1, 99, 1.0, 0)};
    assert_int_equal(stall__prom_cpu_update(&c, s4, 2), 0);
    assert_true(fabs(worker_s(&c) - 6.5) < 1e-9);
    stall_proc_sample_t s5[] = {proc(100, 0, 10, 1.8, 0), proc(101, 1, 99, 1.25, 0), proc(102, 1, 21, 3.75, 0)};
    assert_int_equal(stall__prom_cpu_update(&c, s5, 3), 0);
    assert_true(fabs(worker_s(&c) - (2.0 + 1.25 + 3.75)) < 1e-9);

    /* a value read lower than before (never happens, but) does not go back */
    stall_proc_sample_t s6[] = {proc(100, 0, 10, 1.0, 0), proc(101, 1, 99, 1.25, 0), proc(102, 1, 21, 3.75, 0)};
    assert_int_equal(stall__prom_cpu_update(&c, s6, 3), 0);
    assert_true(fabs((double)stall__prom_cpu_total_ns(&c, STALL_PROM_MAIN) / 1e9 - 1.8) < 1e-9);

    /* the whole tree gone: every total stays; a process without STAT is skipped */
    assert_int_equal(stall__prom_cpu_update(&c, NULL, 0), 0);
    assert_true(fabs(worker_s(&c) - 7.0) < 1e-9);
    assert_true(fabs((double)stall__prom_cpu_total_ns(&c, STALL_PROM_MAIN) / 1e9 - 1.8) < 1e-9);
    stall_proc_sample_t nostat = proc(500, 1, 5, 9.0, 0);
    nostat.valid = 0;
    assert_int_equal(stall__prom_cpu_update(&c, &nostat, 1), 0);
    assert_true(fabs(worker_s(&c) - 7.0) < 1e-9);

    /* many short-lived workers: the table stays bounded, the total exact */
    double want = worker_s(&c);
    for (uint32_t i = 0; i < 3 * STALL_PROM_GONE_MAX; i++) {
        stall_proc_sample_t p[] = {proc(100, 0, 10, 1.8, 0), proc(1000 + i, 1, 1000 + i, 0.001, 0)};
        assert_int_equal(stall__prom_cpu_update(&c, p, 2), 0);
        want += 0.001;
        assert_true(worker_s(&c) >= want - 0.001 - 1e-6);
    }
    assert_int_equal(stall__prom_cpu_update(&c, NULL, 0), 0);
    assert_true(fabs(worker_s(&c) - want) < 1e-6);
    assert_true(c.n <= STALL_PROM_GONE_MAX + 2);
    stall__prom_cpu_free(&c);
    assert_null(c.ents);
}

/* ------------------------------------------------------------ addresses */

static void addresses(void **state) {
    (void)state;
    stall_prom_addr_t a;
    assert_int_equal(stall__prom_parse_address("127.0.0.1:9464", &a), 0);
    assert_int_equal(a.port, 9464);
    assert_int_equal(a.ss.ss_family, AF_INET);
    assert_string_equal(a.host, "127.0.0.1");
    assert_int_equal(ntohs(((struct sockaddr_in *)&a.ss)->sin_port), 9464);
    assert_int_equal(stall__prom_parse_address(":8080", &a), 0);
    assert_int_equal(a.port, 8080);
    assert_string_equal(a.host, "127.0.0.1");
    assert_int_equal(stall__prom_parse_address("9100", &a), 0);
    assert_int_equal(a.port, 9100);
    assert_int_equal(((struct sockaddr_in *)&a.ss)->sin_addr.s_addr, htonl(INADDR_LOOPBACK));
    assert_int_equal(stall__prom_parse_address("0.0.0.0:0", &a), 0);
    assert_int_equal(a.port, 0);
    assert_int_equal(stall__prom_parse_address("[::1]:65535", &a), 0);
    assert_int_equal(a.ss.ss_family, AF_INET6);
    assert_int_equal(a.port, 65535);
    assert_string_equal(a.host, "::1");
    assert_int_equal(stall__prom_parse_address("localhost:1234", &a), 0);
    assert_int_equal(a.ss.ss_family, AF_INET); /* IPv4 first */

    static const struct {
        const char *addr, *says;
    } bad[] = {
        {"", "empty"},
        {"localhost", "no port"},
        {"1.2.3.4:", "port"},
        {"1.2.3.4:65536", "port"},
        {"1.2.3.4:-1", "port"},
        {"1.2.3.4:12ab", "port"},
        {"1.2.3.4:123456", "port"},
        {"::1:80", "brackets"},
        {"[::1]", "':PORT'"},
        {"[::1:80", "]"},
        {"[]:80", "empty"},
        {"[127.0.0.1]:80", "resolve"},
        {"no.such.host.invalid:80", "resolve"},
        {"1.2.3.4:9464 ", "port"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (stall__prom_parse_address(bad[i].addr, &a) == 0) fail_msg("accepted '%s'", bad[i].addr);
        if (!strstr(stall_last_error(), bad[i].says))
            fail_msg("'%s': error '%s' does not say '%s'", bad[i].addr, stall_last_error(), bad[i].says);
    }
    assert_int_equal(stall__prom_parse_address(NULL, &a), -1);
}

/* ------------------------------------------------------------ the server */

static char g_base[256];
static stall_session_t *g_sess;
static const char *g_dir;

/* One HTTP/1.0 request to 127.0.0.1:port; the whole answer (malloc'd). */
static char *http(int port, const char *method, const char *path) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    char req[256];
    int n = snprintf(req, sizeof req, "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", method, path);
    assert_int_equal(write(fd, req, (size_t)n), n);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    for (;;) {
        if (len + 4096 > cap) buf = realloc(buf, cap *= 2);
        ssize_t r = read(fd, buf + len, cap - len - 1);
        if (r <= 0) break;
        len += (size_t)r;
    }
    buf[len] = 0;
    close(fd);
    return buf;
}

static int extra_source(void *ctx, FILE *out, const char *labels) {
    int *calls = ctx;
    (*calls)++;
    fprintf(out, "# HELP stall_test_extra A test family.\n# TYPE stall_test_extra gauge\n");
    fprintf(out, "stall_test_extra{%s} %d\n", labels, *calls);
    return 0;
}

static int failing_source(void *ctx, FILE *out, const char *labels) {
    (void)ctx;
    (void)labels;
    fputs("half a line", out);
    return -1;
}

static void server_on_a_real_engine(void **state) {
    (void)state;
    stall_sampler_options_t so;
    memset(&so, 0, sizeof so);
    so.no_gpu = 1;
    stall_engine_t *e = stall_engine_new(g_dir, &so, 0, 0);
    assert_non_null(e);
    stall_name_t wait = stall_intern("dl0.wait");
    for (int i = 0; i < 3; i++) {
        stall_begin_id(STALL_KIND_DATA_WAIT, wait);
        usleep(2000);
        stall_end_arg(1);
    }
    assert_true(stall_engine_drain(e) >= 3);
    /* CPU time to see: /proc counts it in clock ticks (10 ms) */
    struct timespec t0, t1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
    volatile uint64_t spin = 0;
    do {
        for (int i = 0; i < 100000; i++) spin += (uint64_t)i;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
    } while ((t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec) < 50000000L);
    assert_int_equal(stall_sampler_sample(stall_engine_sampler(e)), 0);
    /* the engine's thread drains and samples while the server renders */
    assert_int_equal(stall_engine_start(e), 0);

    /* bad arguments */
    assert_null(stall_metrics_serve(NULL, ":0", NULL));
    assert_null(stall_metrics_serve(e, "nope", NULL));
    assert_non_null(strstr(stall_last_error(), "'nope'"));
    const char *bad1[] = {"bad-name", "x", NULL};
    assert_null(stall_metrics_serve(e, "127.0.0.1:0", bad1));
    assert_non_null(strstr(stall_last_error(), "bad-name"));
    const char *bad2[] = {"role", "x", NULL};
    assert_null(stall_metrics_serve(e, "127.0.0.1:0", bad2));
    const char *bad3[] = {"rank", "0", "rank", "1", NULL};
    assert_null(stall_metrics_serve(e, "127.0.0.1:0", bad3));
    assert_non_null(strstr(stall_last_error(), "twice"));
    const char *bad4[] = {"rank", NULL};
    assert_null(stall_metrics_serve(e, "127.0.0.1:0", bad4));

    const char *labels[] = {"rank", "3", "world_size", "8", NULL};
    stall_metrics_server_t *s = stall_metrics_serve(e, "127.0.0.1:0", labels);
    if (!s) fail_msg("serve: %s", stall_last_error());
    int port = stall_metrics_server_port(s);
    assert_true(port > 0 && port < 65536);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", port);
    assert_string_equal(stall_metrics_server_url(s), url);

    char *r = http(port, "GET", "/metrics");
    assert_non_null(strstr(r, "HTTP/1.1 200") ? r : strstr(r, "HTTP/1.0 200"));
    assert_non_null(strstr(r, "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
    char *body = strstr(r, "\r\n\r\n");
    assert_non_null(body);
    body += 4;
    check_exposition(body);
    char host[256], key[512];
    gethostname(host, sizeof host);
    snprintf(key, sizeof key, "stall_batches_total{host=\"%s\",rank=\"3\",world_size=\"8\"}", host);
    assert_true(value_of(body, key) == 3);
    snprintf(key, sizeof key, "stall_data_wait_seconds_total{host=\"%s\",rank=\"3\",world_size=\"8\"}", host);
    assert_true(value_of(body, key) >= 0.005);
    snprintf(key, sizeof key, "stall_process_cpu_seconds_total{host=\"%s\",rank=\"3\",world_size=\"8\",role=\"main\"}",
             host);
    assert_true(value_of(body, key) > 0);
    free(r);

    r = http(port, "HEAD", "/metrics");
    assert_non_null(strstr(r, " 200 "));
    assert_null(strstr(r, "stall_batches_total"));
    free(r);
    r = http(port, "GET", "/");
    assert_non_null(strstr(r, " 200 "));
    assert_non_null(strstr(r, "/metrics"));
    free(r);
    r = http(port, "GET", "/nope");
    assert_non_null(strstr(r, " 404 "));
    free(r);
    r = http(port, "POST", "/metrics");
    assert_non_null(strstr(r, " 405 "));
    assert_non_null(strstr(r, "Allow: GET, HEAD"));
    free(r);

    /* the port is taken: a second server says so, naming the address */
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    assert_null(stall_metrics_serve(e, addr, NULL));
    assert_non_null(strstr(stall_last_error(), addr));
    assert_non_null(strstr(stall_last_error(), "in use"));

    /* added sources: appended with the constant labels; a failing one left out */
    int calls = 0;
    assert_int_equal(stall_metrics_server_add_source(s, extra_source, &calls), 0);
    assert_int_equal(stall_metrics_server_add_source(s, failing_source, NULL), 0);
    assert_int_equal(stall_metrics_server_add_source(s, NULL, NULL), -1);
    size_t len = 0;
    char *t = stall_metrics_text(s, &len);
    assert_non_null(t);
    assert_int_equal(len, strlen(t));
    check_exposition(t);
    snprintf(key, sizeof key, "stall_test_extra{host=\"%s\",rank=\"3\",world_size=\"8\"}", host);
    assert_true(value_of(t, key) == 1);
    assert_null(strstr(t, "half a line"));
    free(t);
    r = http(port, "GET", "/metrics");
    assert_true(value_of(strstr(r, "\r\n\r\n") + 4, key) == 2);
    free(r);

    stall_metrics_server_stop(s);
    stall_metrics_server_stop(NULL);
    /* stopped: the port is free again */
    s = stall_metrics_serve(e, addr, NULL);
    if (!s) fail_msg("serve again: %s", stall_last_error());
    stall_metrics_server_stop(s);
    assert_int_equal(stall_engine_stop(e), 0);
    stall_engine_free(e, 0);
}

static int group_setup(void **state) {
    (void)state;
    tu_clean_env();
    return tu_session_start(g_base, sizeof g_base, "prom-test", 0, &g_sess, &g_dir);
}

static int group_teardown(void **state) {
    (void)state;
    tu_session_end(g_sess, g_dir, g_base);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(label_values_are_escaped),
        cmocka_unit_test(exposition_of_a_made_up_state),
        cmocka_unit_test(cpu_counter_survives_vanishing_workers),
        cmocka_unit_test(addresses),
        cmocka_unit_test(server_on_a_real_engine),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
