/*
 * main.c - the `stall` command line. The only code of stall that may print
 * to the terminal and exit(). Commands:
 *   stall run [...] -- CMD      profile CMD and diagnose it (run.c)
 *   stall version               print the version
 *   stall dump [--summary] DIR  drain a session directory: every record as one
 *                               JSON line, or a per-operation summary table
 *   stall sample [options]      what the machine and a process tree are doing
 *   stall top [PID]             live view of a `stall run` session (top.c)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <time.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "export.h"
#include "run.h"
#include "stall.h"

static const char *usage_text =
    "usage: stall <command> [options]\n"
    "\n"
    "commands:\n"
    "  run [--out DIR] [--level L] [--interval S] [--threshold NAME=SHARE] [--quiet]\n"
    "      -- CMD [ARGS...]\n"
    "                             run CMD, profile its process tree and its PyTorch\n"
    "                             training loop, and say what slows it down (reports\n"
    "                             in DIR, default stall-out; `stall run --help`)\n"
    "  report REPORT.json [B.json] [--html OUT]\n"
    "                             print a report's diagnosis again (--html: write its\n"
    "                             page), or compare two runs side by side\n"
    "  version                    print stall's version\n"
    "  dump [--summary] [--keep] DIR\n"
    "                             read every span recorded in session directory DIR\n"
    "                             (one JSON object per line, or with --summary a table\n"
    "                             per process and operation); the directory is removed\n"
    "                             afterwards unless --keep is given\n"
    "  sample [--pid PID] [--interval SECONDS] [--count N] [--json]\n"
    "                             sample the system, the process tree of PID (default:\n"
    "                             stall itself) and the GPUs N times (default 2),\n"
    "                             INTERVAL apart (default 0.5), and print each sample\n"
    "  top [--interval S] [--once] [PID]\n"
    "                             live view of a running `stall run` session (default:\n"
    "                             the latest) or of PID's process tree: batches/s, data\n"
    "                             wait, main and worker processes, GPU, pressure,\n"
    "                             findings (`stall top --help`)\n"
    "  help                       show this help\n";

int stall__usage_error(const char *who, const char *usage, const char *fmt, const char *arg) {
    fprintf(stderr, "%s: ", who);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n\n%s", usage);
    return 2;
}

static int usage_error(const char *fmt, const char *arg) { return stall__usage_error("stall", usage_text, fmt, arg); }

/* ------------------------------------------------------------ dump */

typedef struct op_t {
    uint32_t proc, name;
    int kind;
    uint64_t count, total_ns, max_ns, truncated;
} op_t;

typedef struct dump_ctx_t {
    stall_reader_t *r;
    int summary;
    op_t *ops;
    size_t nops, cap;
    uint64_t records;
} dump_ctx_t;

static op_t *op_find(dump_ctx_t *c, uint32_t proc, uint32_t name, int kind) {
    for (size_t i = 0; i < c->nops; i++)
        if (c->ops[i].proc == proc && c->ops[i].name == name && c->ops[i].kind == kind) return &c->ops[i];
    if (c->nops == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        op_t *n = realloc(c->ops, cap * sizeof *n);
        if (!n) return NULL;
        c->ops = n;
        c->cap = cap;
    }
    op_t *o = &c->ops[c->nops++];
    memset(o, 0, sizeof *o);
    o->proc = proc;
    o->name = name;
    o->kind = kind;
    return o;
}

static int on_records(void *ctx, const stall_reader_proc_t *p, const stall_record_t *recs, size_t n) {
    dump_ctx_t *c = ctx;
    c->records += n;
    for (size_t i = 0; i < n; i++) {
        const stall_record_t *r = &recs[i];
        const char *name = stall_reader_name(c->r, p->index, r->name);
        if (c->summary) {
            if (r->flags & STALL_REC_INSTANT) continue;
            op_t *o = op_find(c, p->index, r->name, r->kind);
            if (!o) return 1;
            if (r->flags & STALL_REC_TRUNCATED) {
                o->truncated++;
                continue;
            }
            uint64_t d = r->end_ns - r->start_ns;
            o->count++;
            o->total_ns += d;
            if (d > o->max_ns) o->max_ns = d;
            continue;
        }
        printf("{\"pid\":%" PRIu32 ",\"tid\":%" PRIu32 ",\"name\":", r->pid, r->tid);
        stall__json_str(stdout, name);
        printf(",\"kind\":\"%s\",\"depth\":%u,\"start_ns\":%" PRIu64 ",\"end_ns\":%" PRIu64,
               stall_kind_name(r->kind), r->depth, r->start_ns, r->end_ns);
        if (r->flags & STALL_REC_HAS_CPU) printf(",\"cpu_ns\":%" PRIu64, r->cpu_ns);
        if (r->arg) printf(",\"arg\":%" PRIu64, r->arg);
        if (r->flags & STALL_REC_INSTANT) printf(",\"instant\":true");
        if (r->flags & STALL_REC_TRUNCATED) printf(",\"truncated\":true");
        if (r->flags & STALL_REC_SESSION_BEGIN) printf(",\"session\":\"begin\"");
        if (r->flags & STALL_REC_SESSION_END) printf(",\"session\":\"end\"");
        printf("}\n");
    }
    return 0;
}

static int cmp_ops(const void *a, const void *b) {
    const op_t *x = a, *y = b;
    if (x->proc != y->proc) return x->proc < y->proc ? -1 : 1;
    return x->total_ns < y->total_ns ? 1 : x->total_ns > y->total_ns ? -1 : 0;
}

static int cmd_dump(int argc, char **argv) {
    int summary = 0, keep = 0;
    const char *dir = NULL;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--summary")) summary = 1;
        else if (!strcmp(argv[i], "--keep")) keep = 1;
        else if (argv[i][0] == '-') return usage_error("dump: unknown option %s", argv[i]);
        else if (dir) return usage_error("dump: more than one directory given (%s)", argv[i]);
        else dir = argv[i];
    }
    if (!dir) return usage_error("dump: missing the session directory%s", "");
    stall_reader_t *r = stall_reader_open(dir);
    if (!r) {
        fprintf(stderr, "stall: %s\n", stall_last_error());
        return 1;
    }
    dump_ctx_t c = {.r = r, .summary = summary};
    if (stall_reader_drain(r, on_records, &c) < 0) {
        fprintf(stderr, "stall: %s\n", stall_last_error());
        stall_reader_close(r, 0);
        return 1;
    }
    if (summary) {
        size_t nproc = stall_reader_proc(r, 0, NULL);
        printf("session \"%s\": %zu process(es), %" PRIu64 " records\n", stall_reader_session_name(r), nproc,
               c.records);
        qsort(c.ops, c.nops, sizeof *c.ops, cmp_ops);
        for (size_t pi = 0; pi < nproc; pi++) {
            stall_reader_proc_t p;
            stall_reader_proc(r, pi, &p);
            printf("\npid %u (%s%s%s)  %s  dropped %" PRIu64 "\n", p.pid, p.comm, p.label[0] ? ", " : "",
                   p.label, p.closed ? "exited" : p.alive ? "running" : "exited without detaching",
                   p.dropped);
            printf("  %-28s %-13s %8s %12s %12s %12s\n", "operation", "kind", "count", "total ms", "mean us",
                   "max us");
            for (size_t i = 0; i < c.nops; i++) {
                op_t *o = &c.ops[i];
                if (o->proc != pi) continue;
                const char *name = stall_reader_name(r, o->proc, o->name);
                printf("  %-28.28s %-13s %8" PRIu64 " %12.3f %12.1f %12.1f", name[0] ? name : "(unnamed)",
                       stall_kind_name(o->kind), o->count, o->total_ns / 1e6,
                       o->count ? o->total_ns / 1e3 / (double)o->count : 0.0, o->max_ns / 1e3);
                if (o->truncated) printf("  (+%" PRIu64 " cut short by a crash)", o->truncated);
                printf("\n");
            }
        }
    }
    free(c.ops);
    if (stall_reader_close(r, !keep) < 0) {
        fprintf(stderr, "stall: %s\n", stall_last_error());
        return 1;
    }
    return 0;
}


/* ------------------------------------------------------------ sample */

/* Prints a value with its unit, or "unknown" when its validity bit is clear. */
static void field(const char *label, int known, const char *fmt, double v) {
    printf("  %-26s ", label);
    if (known) printf(fmt, v);
    else printf("unknown");
    printf("\n");
}

static void print_human(stall_sampler_t *s, const stall_sys_t *y) {
    int rates = (y->valid & STALL_SYS_RATES) != 0;
    printf("system (%u CPUs, %.2f usable)\n", y->ncpus, y->usable_cores);
    if (rates && (y->valid & STALL_SYS_CPU))
        printf("  %-26s %.1f / %.1f / %.1f (steal %.1f)\n", "cpu user/system/iowait %", 100 * y->cpu_user,
               100 * y->cpu_system, 100 * y->cpu_iowait, 100 * y->cpu_steal);
    else
        printf("  %-26s unknown\n", "cpu user/system/iowait %");
    field("load (1 min)", (y->valid & STALL_SYS_LOAD) != 0, "%.2f", y->load1);
    field("memory available GiB", (y->valid & STALL_SYS_MEM) != 0, "%.2f",
          y->mem_usable_available_bytes / 1073741824.0);
    field("memory total GiB", (y->valid & STALL_SYS_MEM) != 0, "%.2f", y->mem_total_bytes / 1073741824.0);
    field("pressure cpu some %", (y->valid & STALL_SYS_PSI_CPU) != 0, "%.2f", y->psi_cpu_some_avg10);
    field("pressure io some/full %", (y->valid & STALL_SYS_PSI_IO) != 0, "%.2f", y->psi_io_some_avg10);
    field("pressure memory some %", (y->valid & STALL_SYS_PSI_MEM) != 0, "%.2f", y->psi_mem_some_avg10);
    field("disk read MB/s", rates && (y->valid & STALL_SYS_DISK), "%.2f", y->disk_read_bytes_per_s / 1e6);
    field("disk write MB/s", rates && (y->valid & STALL_SYS_DISK), "%.2f", y->disk_write_bytes_per_s / 1e6);
    field("disk busy %", rates && (y->valid & STALL_SYS_DISK), "%.1f", 100 * y->disk_busy);
    field("net rx/tx MB/s", rates && (y->valid & STALL_SYS_NET), "%.3f",
          (y->net_rx_bytes_per_s + y->net_tx_bytes_per_s) / 1e6);
    field("cpu MHz", (y->valid & STALL_SYS_FREQ) != 0, "%.0f", y->cpu_freq_mhz);
    if (y->valid & STALL_SYS_CG_CPU) {
        if (y->cg_cpu_quota_us >= 0)
            printf("  %-26s %.2f cores (cgroup v%d)\n", "cpu limit", (double)y->cg_cpu_quota_us / (double)y->cg_cpu_period_us,
                   y->cgroup_version);
        else
            printf("  %-26s none (cgroup v%d)\n", "cpu limit", y->cgroup_version);
    }
    if (y->valid & STALL_SYS_CG_MEM) {
        if (y->cg_mem_limit_bytes != UINT64_MAX)
            printf("  %-26s %.2f GiB\n", "memory limit", y->cg_mem_limit_bytes / 1073741824.0);
        else
            printf("  %-26s none\n", "memory limit");
    }
    stall_device_t dv[64];
    size_t nd = stall_sampler_devices(s, dv, 64);
    printf("devices (%zu)\n  %-12s %-5s %12s %12s %8s\n", nd, "name", "kind", "read MB/s", "write MB/s", "busy %");
    for (size_t i = 0; i < nd && i < 64; i++) {
        int r = (dv[i].valid & STALL_DEV_RATES) != 0;
        char a[16], b[16], c[16];
        snprintf(a, sizeof a, r ? "%.3f" : "unknown", dv[i].read_bytes_per_s / 1e6);
        snprintf(b, sizeof b, r ? "%.3f" : "unknown", dv[i].write_bytes_per_s / 1e6);
        snprintf(c, sizeof c, r && !dv[i].is_net ? "%.1f" : "-", 100 * dv[i].busy);
        printf("  %-12s %-5s %12s %12s %8s\n", dv[i].name, dv[i].is_net ? "net" : "disk", a, b, c);
    }
    stall_proc_sample_t p[64];
    size_t n = stall_sampler_procs(s, p, 64);
    printf("process tree (%zu)\n  %-8s %-6s %-20s %5s %8s %10s %10s\n", n, "pid", "ppid", "command", "state",
           "cpu %", "rss MiB", "read MB/s");
    for (size_t i = 0; i < n && i < 64; i++) {
        int r = (p[i].valid & STALL_PROC_RATES) != 0;
        char cpu[16], rd[16];
        snprintf(cpu, sizeof cpu, r ? "%.1f" : "-", 100 * p[i].cpu_util);
        snprintf(rd, sizeof rd, r && (p[i].valid & STALL_PROC_IO) ? "%.2f" : "-", p[i].read_bytes_per_s / 1e6);
        printf("  %*s%-*u %-6u %-20.20s %5c %8s %10.1f %10s\n", (int)(p[i].depth > 4 ? 8 : 2 * p[i].depth), "",
               8 - (int)(p[i].depth > 4 ? 8 : 2 * p[i].depth), p[i].pid, p[i].ppid, p[i].comm, p[i].state, cpu,
               p[i].rss_bytes / 1048576.0, rd);
    }
    stall_gpu_t g[16];
    size_t ng = stall_sampler_gpus(s, g, 16);
    if (ng == 0) printf("GPUs: none (no NVML library or no device)\n");
    for (size_t i = 0; i < ng && i < 16; i++)
        printf("GPU %u %s: util %s%.0f%%, memory %.2f / %.2f GiB, %.0f W\n", g[i].index, g[i].name,
               (g[i].valid & STALL_GPU_UTIL) ? "" : "unknown ", g[i].util_sm_pct, g[i].mem_used_bytes / 1073741824.0,
               g[i].mem_total_bytes / 1073741824.0, g[i].power_mw / 1000.0);
}

static void json_num(const char *key, int known, double v, int *first) {
    printf("%s\"%s\":", *first ? "" : ",", key);
    *first = 0;
    if (known && isfinite(v)) printf("%.17g", v);
    else printf("null");
}

static void print_json(stall_sampler_t *s, const stall_sys_t *y) {
    int rates = (y->valid & STALL_SYS_RATES) != 0, f = 1;
    printf("{\"t_ns\":%" PRIu64 ",\"system\":{", y->t_ns);
    json_num("ncpus", 1, y->ncpus, &f);
    json_num("usable_cores", 1, y->usable_cores, &f);
    json_num("cpu_user_share", rates && (y->valid & STALL_SYS_CPU), y->cpu_user, &f);
    json_num("cpu_system_share", rates && (y->valid & STALL_SYS_CPU), y->cpu_system, &f);
    json_num("cpu_iowait_share", rates && (y->valid & STALL_SYS_CPU), y->cpu_iowait, &f);
    json_num("load1", (y->valid & STALL_SYS_LOAD) != 0, y->load1, &f);
    json_num("mem_total_bytes", (y->valid & STALL_SYS_MEM) != 0, (double)y->mem_total_bytes, &f);
    json_num("mem_available_bytes", (y->valid & STALL_SYS_MEM) != 0, (double)y->mem_usable_available_bytes, &f);
    json_num("psi_cpu_some_avg10", (y->valid & STALL_SYS_PSI_CPU) != 0, y->psi_cpu_some_avg10, &f);
    json_num("psi_io_some_avg10", (y->valid & STALL_SYS_PSI_IO) != 0, y->psi_io_some_avg10, &f);
    json_num("psi_mem_some_avg10", (y->valid & STALL_SYS_PSI_MEM) != 0, y->psi_mem_some_avg10, &f);
    json_num("disk_read_bytes_per_s", rates && (y->valid & STALL_SYS_DISK), y->disk_read_bytes_per_s, &f);
    json_num("disk_write_bytes_per_s", rates && (y->valid & STALL_SYS_DISK), y->disk_write_bytes_per_s, &f);
    json_num("disk_busy_share", rates && (y->valid & STALL_SYS_DISK), y->disk_busy, &f);
    json_num("cgroup_version", y->cgroup_version != 0, y->cgroup_version, &f);
    printf("},\"processes\":[");
    stall_proc_sample_t p[256];
    size_t n = stall_sampler_procs(s, p, 256);
    for (size_t i = 0; i < n && i < 256; i++) {
        int r = (p[i].valid & STALL_PROC_RATES) != 0, pf = 1;
        printf("%s{\"comm\":", i ? "," : "");
        stall__json_str(stdout, p[i].comm);
        printf(",");
        json_num("pid", 1, p[i].pid, &pf);
        json_num("ppid", 1, p[i].ppid, &pf);
        json_num("depth", 1, p[i].depth, &pf);
        json_num("cpu_cores", r, p[i].cpu_util, &pf);
        json_num("rss_bytes", (p[i].valid & STALL_PROC_STAT) != 0, (double)p[i].rss_bytes, &pf);
        json_num("pss_bytes", (p[i].valid & STALL_PROC_PSS) != 0, (double)p[i].pss_bytes, &pf);
        json_num("read_bytes_per_s", r && (p[i].valid & STALL_PROC_IO), p[i].read_bytes_per_s, &pf);
        json_num("runq_wait_cores", r && (p[i].valid & STALL_PROC_SCHED), p[i].runq_wait_share, &pf);
        json_num("gpu_mem_bytes", (p[i].valid & STALL_PROC_GPU) != 0, (double)p[i].gpu_mem_bytes, &pf);
        printf("}");
    }
    printf("],\"devices\":[");
    stall_device_t dv[64];
    size_t nd = stall_sampler_devices(s, dv, 64);
    for (size_t i = 0; i < nd && i < 64; i++) {
        int r = (dv[i].valid & STALL_DEV_RATES) != 0, df = 1;
        printf("%s{\"name\":", i ? "," : "");
        stall__json_str(stdout, dv[i].name);
        printf(",\"kind\":\"%s\",", dv[i].is_net ? "net" : "disk");
        json_num("read_bytes", 1, (double)dv[i].read_bytes, &df);
        json_num("write_bytes", 1, (double)dv[i].write_bytes, &df);
        json_num("read_bytes_per_s", r, dv[i].read_bytes_per_s, &df);
        json_num("write_bytes_per_s", r, dv[i].write_bytes_per_s, &df);
        json_num("busy_share", r && !dv[i].is_net, dv[i].busy, &df);
        printf("}");
    }
    printf("],\"gpus\":[");
    stall_gpu_t g[16];
    size_t ng = stall_sampler_gpus(s, g, 16);
    for (size_t i = 0; i < ng && i < 16; i++) {
        int gf = 1;
        printf("%s{\"name\":", i ? "," : "");
        stall__json_str(stdout, g[i].name);
        printf(",");
        json_num("index", 1, g[i].index, &gf);
        json_num("util_pct", (g[i].valid & STALL_GPU_UTIL) != 0, g[i].util_sm_pct, &gf);
        json_num("mem_used_bytes", (g[i].valid & STALL_GPU_MEM) != 0, (double)g[i].mem_used_bytes, &gf);
        json_num("mem_total_bytes", (g[i].valid & STALL_GPU_MEM) != 0, (double)g[i].mem_total_bytes, &gf);
        json_num("power_mw", (g[i].valid & STALL_GPU_POWER) != 0, g[i].power_mw, &gf);
        printf("}");
    }
    printf("]}\n");
}

static int cmd_sample(int argc, char **argv) {
    long pid = 0, count = 2;
    double interval = 0.5;
    int json = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        char *end;
        if (!strcmp(a, "--json")) {
            json = 1;
        } else if (!strcmp(a, "--pid") || !strcmp(a, "--interval") || !strcmp(a, "--count")) {
            if (i + 1 >= argc) return usage_error("sample: %s needs a value", a);
            const char *v = argv[++i];
            if (!strcmp(a, "--interval")) {
                interval = strtod(v, &end);
                if (*end || !(interval >= 0.001)) return usage_error("sample: --interval must be >= 0.001 seconds (got %s)", v);
            } else {
                long x = strtol(v, &end, 10);
                if (*end || x <= 0) return usage_error("sample: the value must be a positive integer (got %s)", v);
                if (!strcmp(a, "--pid")) pid = x;
                else count = x;
            }
        } else {
            return usage_error("sample: unknown option %s", a);
        }
    }
    if (pid && kill((pid_t)pid, 0) < 0 && errno == ESRCH) {
        fprintf(stderr, "stall: sample: no process with pid %ld\n", pid);
        return 1;
    }
    stall_sampler_options_t o = {.root_pid = (uint32_t)pid, .interval_ns = (uint64_t)(interval * 1e9)};
    stall_sampler_t *s = stall_sampler_new(&o);
    if (!s) {
        fprintf(stderr, "stall: %s\n", stall_last_error());
        return 1;
    }
    stall_sampler_sample(s); /* baseline for the rates */
    for (long k = 0; k < count; k++) {
        struct timespec ts = {(time_t)interval, (long)((interval - (double)(time_t)interval) * 1e9)};
        nanosleep(&ts, NULL);
        stall_sampler_sample(s);
        stall_sys_t y;
        stall_sampler_latest(s, &y);
        if (json) print_json(s, &y);
        else {
            if (k) printf("\n");
            print_human(s, &y);
        }
        fflush(stdout);
    }
    stall_sampler_free(s);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) return usage_error("missing command%s", "");
    const char *cmd = argv[1];
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("stall %s\n", stall_version());
        return 0;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (!strcmp(cmd, "run")) return stall__cmd_run(argc - 2, argv + 2);
    if (!strcmp(cmd, "report")) return stall__cmd_report(argc - 2, argv + 2);
    if (!strcmp(cmd, "top")) return stall__cmd_top(argc - 2, argv + 2);
    if (!strcmp(cmd, "dump")) return cmd_dump(argc - 2, argv + 2);
    if (!strcmp(cmd, "sample")) return cmd_sample(argc - 2, argv + 2);
    return usage_error("unknown command '%s'", cmd);
}
