/*
 * run.c - `stall run [options] -- CMD [ARGS...]`: profile a program with no
 * change to it, then say what holds it back.
 *
 * The CLI creates the session directory (exported as STALL_SESSION_DIR),
 * puts stall's site hook first on PYTHONPATH so every Python process of the
 * tree instruments its DataLoaders and training step, starts CMD (same
 * stdin/stdout/stderr, directory and environment), and runs the engine here:
 * it drains every process's rings (a tap keeps each record in a spool file
 * for the trace) and samples CMD's process tree. stall is the tree's
 * subreaper, so orphaned workers are still reaped and followed.
 *
 * Signals: a SIGINT/SIGTERM/SIGHUP/SIGQUIT sent to stall by a process (kill)
 * is forwarded to CMD; one from the terminal reaches CMD by itself (same
 * process group) and is not sent twice. Either way stall keeps going until
 * CMD exits, then writes the reports. Exit status: CMD's own, 128+N when it
 * was killed by signal N, 127 when it could not be found, 126 when it could
 * not be executed, 2 for a usage error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "analyze.h"
#include "export.h"
#include "html.h"
#include "internal.h"
#include "report.h"
#include "jsonr.h"
#include "prometheus.h"
#include "run.h"
#include "stall.h"

#define MAX_PROCS 1024
#define MAX_ALERTS 256 /* alert events kept for report.json */
#define GRACE_NS 3000000000ull /* after CMD exits: time left to its orphans to exit */

static const char *run_usage =
    "usage: stall run [--out DIR] [--level basic|detailed|comprehensive]\n"
    "                 [--interval SECONDS] [--threshold NAME=SHARE]... [--quiet]\n"
    "                 [--prometheus ADDRESS] [--log FILE] [--alert-threshold SEVERITY]\n"
    "                 -- CMD [ARGS...]\n"
    "\n"
    "Runs CMD, profiles its whole process tree (Python processes are instrumented\n"
    "with no code change: DataLoaders, training step, copies to the GPU) and prints\n"
    "what slows it down, with the fixes and their expected speedup.\n"
    "\n"
    "  --out DIR          where report.json, report.html and trace.json go (stall-out)\n"
    "  --level LEVEL      basic: loop and loaders; detailed (default): also fetch,\n"
    "                     collate, sampler, pinning, copies, backward, optimizer with\n"
    "                     CPU time; comprehensive: CPU time on every span\n"
    "  --interval SECONDS system and process sampling interval (default 0.1)\n"
    "  --threshold NAME=SHARE\n"
    "                     a detector's threshold, a share in (0, 1]; NAME is\n"
    "                     bottleneck (data-wait share of the loop that makes it\n"
    "                     input-bound, 0.05), memory (used share of the memory the\n"
    "                     run may use, 0.9), gpu (used share of GPU memory, 0.9),\n"
    "                     cpu (busy share of the cores for a run without a training\n"
    "                     loop, 0.9), gpu_busy (GPU utilisation that makes the loop\n"
    "                     GPU-bound, 0.8)\n"
    "  --quiet            no status line while CMD runs\n"
    "  --prometheus ADDRESS\n"
    "                     serve live metrics for Prometheus on http://ADDRESS/metrics\n"
    "                     while CMD runs; ADDRESS is HOST:PORT, [IPV6]:PORT, :PORT or\n"
    "                     PORT (host 127.0.0.1), e.g. 127.0.0.1:9464; under torchrun\n"
    "                     LOCAL_RANK is added to the port, RANK and WORLD_SIZE\n"
    "                     become labels\n"
    "  --log FILE         every alert of the live monitor (as it is raised and when\n"
    "                     it clears) and every finding at the end, one JSON object\n"
    "                     per line, appended to FILE ('-': stderr)\n"
    "  --alert-threshold SEVERITY\n"
    "                     the lowest severity (0..1) of the alerts printed while CMD\n"
    "                     runs (0.8); all of them go to --log and report.json\n"
    "\n"
    "While CMD runs, a live monitor checks the default alert rules (memory used\n"
    "over the memory threshold, the loop waiting for data over 30%% of its time,\n"
    "host CPU saturated) and finds spikes, level shifts and trends in step time,\n"
    "throughput and memory, and memory running out within 30 minutes; alerts of\n"
    "severity 0.8 (--alert-threshold) and more are printed as they come.\n";

static volatile sig_atomic_t g_child = 0;

/* NAME=SHARE into th; -1 for an unknown name or a share outside (0, 1]. */
static int parse_threshold(stall_thresholds_t *th, const char *arg) {
    static const struct {
        const char *name;
        size_t off;
    } names[] = {
        {"bottleneck", offsetof(stall_thresholds_t, bottleneck)}, {"memory", offsetof(stall_thresholds_t, memory)},
        {"gpu", offsetof(stall_thresholds_t, gpu)},               {"cpu", offsetof(stall_thresholds_t, cpu)},
        {"gpu_busy", offsetof(stall_thresholds_t, gpu_busy)},
    };
    const char *eq = strchr(arg, '=');
    if (!eq) return -1;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strlen(names[i].name) != (size_t)(eq - arg) || strncmp(arg, names[i].name, (size_t)(eq - arg))) continue;
        char *end;
        double v = strtod(eq + 1, &end);
        if (end == eq + 1 || *end || !(v > 0 && v <= 1)) return -1;
        *(double *)((char *)th + names[i].off) = v;
        return 0;
    }
    return -1;
}

static int run_usage_error(const char *fmt, const char *arg) {
    return stall__usage_error("stall run", run_usage, fmt, arg);
}

/* A signal sent to stall by a process (si_code <= 0: kill, sigqueue) goes on
 * to CMD; one from the kernel or the terminal already reached CMD's group. */
static void on_signal(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    pid_t child = g_child;
    if (child > 0 && si && si->si_code <= 0 && si->si_pid != child) kill(child, sig);
}

/* -------------------------------------------------------------- helpers */

static int mkdirs(const char *path) {
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return -1;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0777) < 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(buf, 0777) < 0 && errno != EEXIST) return -1;
    return 0;
}

/* Makes sure DIR exists and a file can be created in it; 0 or -1 (errno). */
static int check_out_dir(const char *dir) {
    struct stat st;
    if (mkdirs(dir) < 0) return -1;
    if (stat(dir, &st) < 0) return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    char probe[PATH_MAX];
    snprintf(probe, sizeof probe, "%s/.stall-write-test-%d", dir, (int)getpid());
    int fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return -1;
    close(fd);
    unlink(probe);
    return 0;
}

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

/* The folder holding the `stall` package with its site hook: STALL_PYTHON_ROOT,
 * else <dir of this executable>/python (the build tree), else the
 * site-packages of the prefix this executable was installed into. */
static int find_python_root(char *out, size_t cap) {
    char probe[PATH_MAX + 64];
    const char *env = getenv("STALL_PYTHON_ROOT");
    if (env && *env) {
        snprintf(out, cap, "%s", env);
        return 0;
    }
    char exe[PATH_MAX - 64];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) *slash = 0;
        snprintf(probe, sizeof probe, "%s/python/stall/_run/sitecustomize.py", exe);
        if (file_exists(probe)) {
            snprintf(out, cap, "%s/python", exe);
            return 0;
        }
    }
    if (n > 0) { /* installed (pip, meson install): <prefix>/bin/stall beside <prefix>/lib/python3.X/... */
        char pat[PATH_MAX + 96];
        snprintf(pat, sizeof pat, "%s/../lib/python3*/*-packages/stall/_run/sitecustomize.py", exe);
        glob_t g;
        if (glob(pat, 0, NULL, &g) == 0 && g.gl_pathc > 0) {
            char *hit = g.gl_pathv[0];
            char *cut = strstr(hit, "/stall/_run/sitecustomize.py");
            if (cut) *cut = 0;
            snprintf(out, cap, "%s", hit);
            globfree(&g);
            return 0;
        }
        globfree(&g);
    }
    return -1;
}

static double now_s_since(uint64_t t0) { return (double)(stall_now_ns() - t0) / 1e9; }

static const char *kind_word(const char *type) { return stall__finding_title(type); }

/* ------------------------------------------------------------- run state */

typedef struct run_t {
    char *const *argv;
    int argc;
    const char *out_dir;
    const char *level;
    double interval_s;
    stall_thresholds_t th;
    int quiet, tty;
    pid_t child;
    uint64_t start_ns, end_ns;
    time_t started_at;
    stall_engine_t *engine;
    stall_spool_t *spool;
    char spool_path[PATH_MAX];
    const char *session_dir;
    stall_proc_summary_t procs[MAX_PROCS];
    size_t nprocs;
    double (*loop)[3];
    size_t nloop, loop_cap;
    uint64_t last_batches, last_wait_ns, last_tick_ns;
    int status_shown;
    const char *prom_addr;          /* --prometheus, LOCAL_RANK added */
    char prom_buf[320];
    stall_metrics_server_t *metrics;
    stall_monitor_t *monitor;       /* the live monitor (alerts), NULL if it could not start */
    const char *log_path;           /* --log */
    int log_fd;                     /* its descriptor, -1 when none */
    double alert_threshold;         /* --alert-threshold: lowest severity printed (0.8) */
    stall_alert_t alerts[MAX_ALERTS]; /* the run's alert events for report.json, the first MAX_ALERTS */
    size_t nalerts;
    uint64_t alerts_dropped;        /* events beyond MAX_ALERTS (still logged and printed) */
} run_t;

static int spool_tap(void *ctx, const stall_reader_proc_t *p, const stall_record_t *recs, size_t n) {
    run_t *r = ctx;
    if (r->spool) stall__spool_add(r->spool, p, recs, n);
    return 0;
}

static void track_procs(run_t *r) {
    stall_sampler_t *s = stall_engine_sampler(r->engine);
    static stall_proc_sample_t ps[MAX_PROCS];
    size_t n = s ? stall_sampler_procs(s, ps, MAX_PROCS) : 0;
    if (n > MAX_PROCS) n = MAX_PROCS;
    for (size_t i = 0; i < n; i++) {
        stall_proc_summary_t *p = NULL;
        for (size_t j = 0; j < r->nprocs && !p; j++)
            if (r->procs[j].pid == ps[i].pid && r->procs[j].starttime == ps[i].starttime) p = &r->procs[j];
        if (!p) {
            if (r->nprocs == MAX_PROCS) continue;
            p = &r->procs[r->nprocs++];
            memset(p, 0, sizeof *p);
        }
        stall__proc_summary_update(p, &ps[i]);
    }
}

static void analyze_now(run_t *r, stall_analysis_t *an, uint64_t end_ns) {
    stall_analysis_in_t in;
    memset(&in, 0, sizeof in);
    in.agg = stall_engine_agg(r->engine);
    in.sampler = stall_engine_sampler(r->engine);
    in.session_dir = r->session_dir;
    in.start_ns = r->start_ns;
    in.end_ns = end_ns;
    in.th = r->th;
    stall__analyze(&in, an);
}

static void status_line(run_t *r, double bps, double wait_share, const stall_analysis_t *an) {
    char line[512];
    int len = snprintf(line, sizeof line, "stall %5.0fs", now_s_since(r->start_ns));
    if (isfinite(bps)) len += snprintf(line + len, sizeof line - (size_t)len, " | %.1f batches/s", bps);
    if (isfinite(wait_share))
        len += snprintf(line + len, sizeof line - (size_t)len, " | data wait %.0f%%", 100 * wait_share);
    stall_sampler_t *s = stall_engine_sampler(r->engine);
    stall_sys_t y;
    if (s && stall_sampler_latest(s, &y) == 0 && (y.valid & STALL_SYS_RATES)) {
        static stall_proc_sample_t ps[MAX_PROCS];
        size_t n = stall_sampler_procs(s, ps, MAX_PROCS);
        double cores = 0;
        for (size_t i = 0; i < n && i < MAX_PROCS; i++)
            if (ps[i].valid & STALL_PROC_RATES) cores += ps[i].cpu_util;
        len += snprintf(line + len, sizeof line - (size_t)len, " | CPU %.0f%%", 100 * cores);
    }
    stall_gpu_t g[8];
    size_t ng = s ? stall_sampler_gpus(s, g, 8) : 0;
    if (ng && (g[0].valid & STALL_GPU_UTIL)) {
        double u = 0;
        for (size_t i = 0; i < ng && i < 8; i++) u += g[i].util_sm_pct;
        len += snprintf(line + len, sizeof line - (size_t)len, " | GPU %.0f%%", u / (double)(ng < 8 ? ng : 8));
    }
    if (an && an->nfindings)
        len += snprintf(line + len, sizeof line - (size_t)len, " | %s", kind_word(an->findings[0].type));
    struct winsize ws;
    size_t width = ioctl(2, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 10 ? ws.ws_col - 1 : 79;
    if (strlen(line) > width) line[width] = 0;
    fprintf(stderr, "\r\033[K%s", line);
    fflush(stderr);
    r->status_shown = 1;
}

static void tick(run_t *r) {
    uint64_t now = stall_now_ns();
    track_procs(r);
    uint64_t batches, wait_ns;
    stall__loop_totals(stall_engine_agg(r->engine), &batches, &wait_ns);
    double dt = (double)(now - r->last_tick_ns) / 1e9;
    double bps = NAN, share = NAN;
    if (dt > 0 && batches > r->last_batches) {
        bps = (double)(batches - r->last_batches) / dt;
        share = fmin(1.0, (double)(wait_ns - r->last_wait_ns) / 1e9 / dt);
    } else if (dt > 0 && wait_ns > r->last_wait_ns) {
        bps = 0;
        share = fmin(1.0, (double)(wait_ns - r->last_wait_ns) / 1e9 / dt);
    }
    if (r->nloop == r->loop_cap) {
        size_t cap = r->loop_cap ? r->loop_cap * 2 : 256;
        void *p = realloc(r->loop, cap * sizeof *r->loop);
        if (p) {
            r->loop = p;
            r->loop_cap = cap;
        }
    }
    if (r->nloop < r->loop_cap) {
        r->loop[r->nloop][0] = (double)(now - r->start_ns) / 1e9;
        r->loop[r->nloop][1] = bps;
        r->loop[r->nloop][2] = share;
        r->nloop++;
    }
    r->last_batches = batches;
    r->last_wait_ns = wait_ns;
    r->last_tick_ns = now;
    if (r->tty && !r->quiet) {
        static stall_analysis_t an;
        analyze_now(r, &an, now);
        status_line(r, bps, share, &an);
    }
}

/* ------------------------------------------------------------- the end */

/* The diagnosis on stderr: the report just rendered, read back through the
 * same printer as `stall report`, and where the files went. */
static void print_diagnosis(const char *json, size_t len, const char *pj, const char *ph, const char *pt) {
    char err[200];
    stall_jv_t *doc = json ? stall__json_parse(json, len, err, sizeof err) : NULL;
    if (doc) stall__print_report(stderr, doc, 3);
    else fprintf(stderr, "\nstall: no diagnosis to print (%s)\n", json ? err : stall_last_error());
    stall__jv_free(doc);
    fprintf(stderr, "\n  reports:");
    if (pj) fprintf(stderr, " %s", pj);
    if (ph) fprintf(stderr, " %s", ph);
    if (pt) fprintf(stderr, " %s", pt);
    fputc('\n', stderr);
}

static int write_file(const char *path, const char *data, size_t len) {
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return -1;
    size_t w = fwrite(data, 1, len, f);
    if (fclose(f) != 0 || w != len) {
        unlink(tmp);
        return -1;
    }
    return rename(tmp, path);
}

/* The live monitor's alerts so far: to the JSON-lines log, and printed
 * (above the status line) when they matter. */
static void take_alerts(run_t *r) {
    stall_alert_t a;
    while (r->monitor && stall_monitor_next(r->monitor, &a, 0) == 1) {
        stall_alert_log(&a); /* nothing without --log */
        if (r->nalerts < MAX_ALERTS) r->alerts[r->nalerts++] = a;
        else r->alerts_dropped++;
        if (r->quiet || a.suppressed || a.state != STALL_ALERT_FIRING) continue;
        if (r->status_shown) fputs("\r\033[K", stderr);
        fprintf(stderr, "stall alert: %s (severity %.2f)\n", a.message, a.severity);
    }
}

static void monitor_start(run_t *r) {
    stall_monitor_options_t mo;
    memset(&mo, 0, sizeof mo);
    mo.interval_ns = (uint64_t)(r->interval_s * 1e9);
    mo.min_severity = r->alert_threshold;
    r->monitor = stall_monitor_new(&mo);
    if (r->monitor && stall_monitor_add_default_rules(r->monitor, &r->th) == 0 &&
        stall_monitor_start(r->monitor, r->engine) == 0) {
        if (r->metrics) stall_metrics_server_add_source(r->metrics, stall_monitor_prometheus, r->monitor);
        return;
    }
    fprintf(stderr, "stall run: alerts off: %s\n", stall_last_error());
    stall_monitor_free(r->monitor);
    r->monitor = NULL;
}

/* Each finding of the diagnosis as one "finding" line of the JSON-lines log. */
static void log_findings(const stall_analysis_t *an) {
    for (int i = 0; i < an->nfindings; i++) {
        const stall_finding_t *f = &an->findings[i];
        stall_field_t fl[] = {
            {"type", STALL_FIELD_STR, {.s = f->type}},
            {"severity", STALL_FIELD_DOUBLE, {.d = f->severity}},
            {"summary", STALL_FIELD_STR, {.s = f->summary}},
            {"suggestion", STALL_FIELD_STR, {.s = f->nsugg ? f->sugg[0].action : ""}},
            {"expected_speedup", STALL_FIELD_DOUBLE, {.d = f->nsugg ? f->sugg[0].expected_speedup : NAN}},
        };
        stall_log(STALL_LOG_WARNING, "finding", fl, sizeof fl / sizeof fl[0]);
    }
}

static void finish(run_t *r, int status, int sig) {
    stall_engine_stop(r->engine);
    stall_engine_drain(r->engine); /* what the tree recorded up to its end */
    track_procs(r);
    stall_reader_t *rd = stall_engine_reader(r->engine);
    uint64_t dropped = 0;
    stall_reader_proc_t rp;
    size_t np = stall_reader_proc(rd, 0, NULL);
    for (size_t i = 0; i < np; i++) {
        if (stall_reader_proc(rd, i, &rp) < i + 1) break;
        dropped += rp.dropped;
        if ((pid_t)rp.pid == getpid()) continue; /* stall's own session marker */
        stall_proc_summary_t *p = NULL;
        for (size_t j = 0; j < r->nprocs && !p; j++)
            if (r->procs[j].pid == rp.pid) p = &r->procs[j];
        if (!p && r->nprocs < MAX_PROCS) { /* too short-lived for the sampler to see */
            p = &r->procs[r->nprocs++];
            memset(p, 0, sizeof *p);
            p->pid = rp.pid;
            p->ppid = rp.ppid;
            p->cpu_s = NAN;
            snprintf(p->comm, sizeof p->comm, "%s", rp.comm);
        }
        if (!p) continue;
        snprintf(p->label, sizeof p->label, "%s", rp.label);
        p->spans = rp.records_read;
        p->dropped = rp.dropped;
    }
    for (size_t j = 0; j < r->nprocs; j++) {
        stall_proc_summary_t *p = &r->procs[j];
        p->alive = kill((pid_t)p->pid, 0) == 0 && (pid_t)p->pid != r->child;
        if (!p->label[0] && (pid_t)p->pid == r->child) snprintf(p->label, sizeof p->label, "main");
    }

    static stall_analysis_t an;
    analyze_now(r, &an, r->end_ns);
    if (r->monitor) {
        stall_monitor_stop(r->monitor);
        take_alerts(r);
    }
    log_findings(&an);

    char pj[PATH_MAX], ph[PATH_MAX], pt[PATH_MAX];
    snprintf(pj, sizeof pj, "%s/report.json", r->out_dir);
    snprintf(ph, sizeof ph, "%s/report.html", r->out_dir);
    snprintf(pt, sizeof pt, "%s/trace.json", r->out_dir);
    int ok_t = 0, ok_j = 0, ok_h = 0;

    stall_trace_opts_t to;
    memset(&to, 0, sizeof to);
    to.t0_ns = r->start_ns;
    to.end_ns = r->end_ns;
    char title[512] = "";
    for (int i = 0, len = 0; i < r->argc && len < (int)sizeof title - 2; i++)
        len += snprintf(title + len, sizeof title - (size_t)len, "%s%s", i ? " " : "", r->argv[i]);
    to.title = title;
    if (r->spool && stall__trace_write(pt, r->spool, rd, stall_engine_sampler(r->engine), &to) == 0) ok_t = 1;
    else fprintf(stderr, "stall: could not write %s: %s\n", pt, stall_last_error());

    stall_report_t rep;
    memset(&rep, 0, sizeof rep);
    rep.argv = r->argv;
    rep.argc = r->argc;
    rep.exit_status = status;
    rep.term_signal = sig;
    rep.started_at = r->started_at;
    rep.start_ns = r->start_ns;
    rep.end_ns = r->end_ns;
    rep.level = r->level;
    rep.interval_s = r->interval_s;
    rep.an = &an;
    rep.agg = stall_engine_agg(r->engine);
    rep.sampler = stall_engine_sampler(r->engine);
    rep.procs = r->procs;
    rep.nprocs = r->nprocs;
    rep.loop = (const double(*)[3])r->loop;
    rep.nloop = r->nloop;
    rep.dropped_events = dropped;
    rep.alerts = r->alerts;
    rep.nalerts = r->nalerts;
    rep.alerts_dropped = r->alerts_dropped;
    rep.out_json = pj;
    rep.out_html = ph;
    rep.out_trace = ok_t ? pt : NULL;
    size_t len = 0;
    char *json = stall__report_json(&rep, &len);
    if (json && write_file(pj, json, len) == 0) ok_j = 1;
    else fprintf(stderr, "stall: could not write %s: %s\n", pj, json ? strerror(errno) : stall_last_error());
    if (json && stall__report_html_write(ph, json, len) == 0) ok_h = 1;
    else fprintf(stderr, "stall: could not write %s: %s\n", ph, stall_last_error());
    print_diagnosis(json, len, ok_j ? pj : NULL, ok_h ? ph : NULL, ok_t ? pt : NULL);
    free(json);
}

/* ------------------------------------------------------------- command */

static int spawn(run_t *r) {
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0) return -1;
    sigset_t chld, old;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, &old);
    pid_t pid = fork();
    if (pid < 0) {
        close(pfd[0]);
        close(pfd[1]);
        return -1;
    }
    if (pid == 0) {
        close(pfd[0]);
        sigprocmask(SIG_SETMASK, &old, NULL);
        execvp(r->argv[0], r->argv);
        int e = errno;
        ssize_t w = write(pfd[1], &e, sizeof e);
        (void)w;
        _exit(127);
    }
    close(pfd[1]);
    int e = 0;
    ssize_t n;
    do n = read(pfd[0], &e, sizeof e);
    while (n < 0 && errno == EINTR);
    close(pfd[0]);
    if (n == (ssize_t)sizeof e) { /* exec failed */
        int st;
        waitpid(pid, &st, 0);
        errno = e;
        return -2;
    }
    r->child = pid;
    g_child = pid;
    return 0;
}

static int setup_env(const run_t *r) {
    char root[PATH_MAX];
    if (find_python_root(root, sizeof root) < 0) {
        fprintf(stderr, "stall: the Python hook was not found (set STALL_PYTHON_ROOT to the folder holding "
                        "the stall package); Python processes get process and system profiling only\n");
    } else {
        const char *old = getenv("PYTHONPATH");
        size_t cap = strlen(root) * 2 + 32 + (old ? strlen(old) : 0);
        char *pp = malloc(cap);
        if (!pp) return -1;
        snprintf(pp, cap, "%s/stall/_run:%s%s%s", root, root, old && *old ? ":" : "", old && *old ? old : "");
        setenv("PYTHONPATH", pp, 1);
        free(pp);
    }
    setenv("STALL_RUN", "1", 1);
    setenv("STALL_LEVEL", r->level, 1);
    if (!strcmp(r->level, "comprehensive")) setenv("STALL_THREAD_CPU", "1", 1);
    return 0;
}

/* --prometheus ADDRESS: checked now (a bad one is a usage error); under
 * torchrun (LOCAL_RANK set) the rank is added to the port so the ranks of
 * one host do not clash (port 0 stays 0: any free port). 0 or -1 (error set). */
static int prom_address(run_t *r, const char *val) {
    stall_prom_addr_t a;
    if (stall__prom_parse_address(val, &a) < 0) return -1;
    const char *lr = getenv("LOCAL_RANK");
    char *end = NULL;
    long add = lr && *lr ? strtol(lr, &end, 10) : 0;
    if (!end || *end || add < 0) add = 0;
    r->prom_addr = val;
    if (add == 0 || a.port == 0) return 0;
    if (a.port + add > 65535)
        return stall__err("metrics address '%s': port %d + LOCAL_RANK %ld is past 65535", val, a.port, add);
    const char *colon = strrchr(val, ':');
    int hl = colon ? (int)(colon - val + 1) : 0;
    snprintf(r->prom_buf, sizeof r->prom_buf, "%.*s%ld", hl, val, a.port + add);
    r->prom_addr = r->prom_buf;
    return 0;
}

/* Serves the engine for Prometheus, with rank and world_size labels from
 * torchrun's RANK and WORLD_SIZE. A failure (port in use) costs the metrics
 * only: CMD runs on. */
static void prom_start(run_t *r) {
    const char *labels[5];
    int k = 0;
    const char *rank = getenv("RANK"), *world = getenv("WORLD_SIZE");
    if (rank && *rank) {
        labels[k++] = "rank";
        labels[k++] = rank;
    }
    if (world && *world) {
        labels[k++] = "world_size";
        labels[k++] = world;
    }
    labels[k] = NULL;
    r->metrics = stall_metrics_serve(r->engine, r->prom_addr, labels);
    if (!r->metrics) fprintf(stderr, "stall run: metrics off: %s\n", stall_last_error());
    else fprintf(stderr, "stall: metrics on %s\n", stall_metrics_server_url(r->metrics));
}

int stall__cmd_run(int argc, char **argv) {
    static run_t run;
    run_t *r = &run;
    memset(r, 0, sizeof *r);
    r->out_dir = "stall-out";
    r->level = "detailed";
    r->interval_s = 0.1;
    r->alert_threshold = 0.8;
    int i = 0;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) {
            i++;
            break;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(run_usage, stdout);
            return 0;
        }
        if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
            r->quiet = 1;
            continue;
        }
        const char *val = NULL;
        const char *opts[] = {"--out", "--level", "--interval", "--threshold", "--prometheus", "--log", "--alert-threshold"};
        int which = -1;
        for (int k = 0; k < 7; k++) {
            size_t l = strlen(opts[k]);
            if (!strncmp(a, opts[k], l) && (a[l] == 0 || a[l] == '=')) {
                which = k;
                if (a[l] == '=') val = a + l + 1;
                else if (i + 1 < argc) val = argv[++i];
                else return run_usage_error("option %s needs a value", opts[k]);
            }
        }
        if (which < 0) {
            if (a[0] == '-') return run_usage_error("unknown option '%s'", a);
            return run_usage_error("put '--' before the command to run (got '%s')", a);
        }
        if (which == 0) {
            if (!*val) return run_usage_error("--out needs a folder%s", "");
            r->out_dir = val;
        } else if (which == 1) {
            if (strcmp(val, "basic") && strcmp(val, "detailed") && strcmp(val, "comprehensive"))
                return run_usage_error("--level must be basic, detailed or comprehensive, not '%s'", val);
            r->level = val;
        } else if (which == 6) {
            char *end;
            double v = strtod(val, &end);
            if (end == val || *end || !(v >= 0 && v <= 1))
                return run_usage_error("--alert-threshold must be a severity between 0 and 1, not '%s'", val);
            r->alert_threshold = v;
        } else if (which == 5) {
            if (!*val) return run_usage_error("--log needs a file, or '-' for stderr%s", "");
            r->log_path = val;
        } else if (which == 4) {
            if (prom_address(r, val) < 0) return run_usage_error("--prometheus: %s", stall_last_error());
        } else if (which == 3) {
            if (parse_threshold(&r->th, val) < 0)
                return run_usage_error("--threshold takes NAME=SHARE with NAME one of bottleneck, memory, gpu, "
                                       "cpu, gpu_busy and SHARE in (0, 1], not '%s'", val);
        } else {
            char *end;
            double v = strtod(val, &end);
            if (*end || !isfinite(v) || v < 0.001 || v > 60)
                return run_usage_error("--interval must be seconds between 0.001 and 60, not '%s'", val);
            r->interval_s = v;
        }
    }
    if (i >= argc) return run_usage_error("no command given: stall run [options] -- CMD [ARGS...]%s", "");
    r->argv = argv + i;
    r->argc = argc - i;
    if (check_out_dir(r->out_dir) < 0) {
        fprintf(stderr, "stall run: cannot write reports into '%s': %s (choose another folder with --out)\n",
                r->out_dir, strerror(errno));
        return 2;
    }
    r->tty = isatty(2);
    r->log_fd = -1;
    if (r->log_path) {
        r->log_fd = strcmp(r->log_path, "-") ? open(r->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644) : 2;
        if (r->log_fd < 0) {
            fprintf(stderr, "stall run: --log: cannot open '%s' for appending: %s\n", r->log_path, strerror(errno));
            return 2;
        }
        stall_log_set_sink(stall_log_sink_fd, (void *)(intptr_t)r->log_fd, STALL_LOG_INFO);
    }

    stall_options_t so;
    memset(&so, 0, sizeof so);
    stall_session_t *sess = stall_session_start("run", &so); /* exports STALL_SESSION_DIR */
    if (!sess) {
        fprintf(stderr, "stall run: cannot create the session directory: %s\n", stall_last_error());
        return 1;
    }
    r->session_dir = stall_session_dir(sess);
    if (setup_env(r) < 0) return 1;
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    int fwd[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
    for (size_t k = 0; k < sizeof fwd / sizeof fwd[0]; k++) sigaction(fwd[k], &sa, NULL);

    r->started_at = time(NULL);
    r->start_ns = stall_now_ns();
    r->last_tick_ns = r->start_ns;
    int rc = spawn(r);
    if (rc == -2) {
        int e = errno;
        if (e == ENOENT) {
            fprintf(stderr, "stall run: %s: command not found\n", r->argv[0]);
            return 127;
        }
        fprintf(stderr, "stall run: cannot execute %s: %s\n", r->argv[0], strerror(e));
        return 126;
    }
    if (rc < 0) {
        fprintf(stderr, "stall run: cannot start %s: %s\n", r->argv[0], strerror(errno));
        return 1;
    }

    stall_sampler_options_t sopt;
    memset(&sopt, 0, sizeof sopt);
    sopt.interval_ns = (uint64_t)(r->interval_s * 1e9);
    sopt.root_pid = (uint32_t)r->child;
    r->engine = stall_engine_new(r->session_dir, &sopt, 0, 0);
    if (!r->engine) {
        /* stall's failure must not cost the program: it runs on unprofiled */
        fprintf(stderr, "stall run: profiling off: %s\n", stall_last_error());
    } else {
        snprintf(r->spool_path, sizeof r->spool_path, "%s/.stall-spool-%d", r->out_dir, (int)getpid());
        r->spool = stall__spool_new(r->spool_path);
        if (r->spool) {
            unlink(r->spool_path); /* lives as an open file only: nothing left behind if stall is killed */
            stall_engine_set_tap(r->engine, spool_tap, r);
        }
        if (stall_engine_start(r->engine) < 0)
            fprintf(stderr, "stall run: profiling thread: %s\n", stall_last_error());
        if (r->prom_addr) prom_start(r);
        monitor_start(r);
    }

    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    int status = 0, sig = 0, done = 0;
    uint64_t next_tick = r->start_ns + 1000000000ull, exited_ns = 0;
    for (;;) {
        int st;
        pid_t p;
        while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
            if (p != r->child) continue; /* an orphan of the tree, reaped */
            done = 1;
            r->end_ns = exited_ns = stall_now_ns();
            g_child = 0;
            if (WIFSIGNALED(st)) {
                sig = WTERMSIG(st);
                status = 128 + sig;
            } else {
                status = WEXITSTATUS(st);
            }
        }
        if (done && (p < 0 && errno == ECHILD)) break;           /* nothing left of the tree */
        uint64_t now = stall_now_ns();
        if (done && now - exited_ns >= GRACE_NS) break;           /* orphans still running: go on */
        if (!done && r->engine && now >= next_tick) {
            take_alerts(r);
            tick(r);
            next_tick += 1000000000ull;
            if (next_tick <= now) next_tick = now + 1000000000ull;
        }
        uint64_t wait_ns = done ? 50000000ull : (next_tick > now ? next_tick - now : 0);
        if (wait_ns > 1000000000ull) wait_ns = 1000000000ull;
        struct timespec ts = {(time_t)(wait_ns / 1000000000ull), (long)(wait_ns % 1000000000ull)};
        sigtimedwait(&chld, NULL, &ts);
    }
    if (r->status_shown) fputs("\r\033[K", stderr);
    if (r->engine) {
        finish(r, status, sig);
        stall_metrics_server_stop(r->metrics); /* answered scrapes up to the diagnosis */
        stall_monitor_free(r->monitor);
        stall_log_set_sink(NULL, NULL, STALL_LOG_INFO);
        if (r->log_fd > 2) close(r->log_fd);
        stall__spool_free(r->spool);
        stall_engine_free(r->engine, 0);
    }
    stall_session_stop(sess);
    free(r->loop);
    return status;
}
