/*
 * prometheus.c - an engine's state in the Prometheus text exposition format
 * (version 0.0.4), for the metrics server (metrics_server.c) and for hosts
 * that serve the text their own way. It renders, computes nothing of its own
 * beyond unit conversion and sums, and keeps one piece of state: the CPU time
 * of processes that left the tree, so the CPU counters never go down when
 * DataLoader workers exit or restart. Also the parser of listening addresses.
 *
 * Every series carries the server's constant labels (host, and rank and
 * world_size under torch.distributed). Unknown values are left out, never
 * written as 0. The series:
 *
 *   name                                   type     labels      what
 *   stall_build_info                       gauge    version     1; the library's version
 *   stall_batches_total                    counter              batches the training loop received
 *   stall_data_wait_seconds_total          counter              time the loop waited for its next batch
 *   stall_kind_seconds_total               counter  kind        time covered by spans of each kind
 *                                                               (data_loading, preprocessing, ...,
 *                                                               nesting merged per thread)
 *   stall_process_cpu_seconds_total        counter  role        user + system CPU time of the tree's
 *                                                               processes: main (the root) or worker
 *                                                               (its descendants), exited ones included
 *   stall_process_resident_memory_bytes    gauge    role        main: RSS; workers: PSS where read, else RSS
 *   stall_processes                        gauge    role        processes in the tree now
 *   stall_host_cpus                        gauge                online CPUs
 *   stall_host_cpu_busy_ratio              gauge                share of all online CPUs' time spent in
 *                                                               user + system code, last interval (0..1)
 *   stall_host_memory_available_bytes      gauge                MemAvailable
 *   stall_host_memory_total_bytes          gauge                MemTotal
 *   stall_gpu_info                         gauge    gpu, name   1 per GPU (NVML's index and name)
 *   stall_gpu_utilization_ratio            gauge    gpu         SM busy share, last interval (0..1)
 *   stall_gpu_memory_used_bytes            gauge    gpu         device memory in use
 *   stall_gpu_memory_total_bytes           gauge    gpu         device memory
 *   stall_sampler_samples_total            counter              samples the sampler took
 *
 * The process, host, GPU and sampler series exist only when the engine has a
 * sampler; the GPU ones only for the GPUs it found.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "analyze.h"
#include "internal.h"
#include "prometheus.h"

const char *stall__prom_role_name(int role) {
    return role == STALL_PROM_MAIN ? "main" : role == STALL_PROM_WORKER ? "worker" : NULL;
}

/* ------------------------------------------------- monotonic process CPU */

static stall_prom_cpu_ent_t *cpu_find(stall_prom_cpu_t *c, uint32_t pid, uint64_t starttime) {
    for (size_t i = 0; i < c->n; i++)
        if (c->ents[i].pid == pid && c->ents[i].starttime == starttime) return &c->ents[i];
    return NULL;
}

/* Forgets the processes that left longest ago beyond STALL_PROM_GONE_MAX
 * (their CPU time stays in the retired totals). */
static void cpu_forget_old(stall_prom_cpu_t *c) {
    size_t gone = 0;
    for (size_t i = 0; i < c->n; i++) gone += c->ents[i].gone != 0;
    while (gone > STALL_PROM_GONE_MAX) {
        size_t oldest = c->n;
        for (size_t i = 0; i < c->n; i++)
            if (c->ents[i].gone && (oldest == c->n || c->ents[i].gone < c->ents[oldest].gone)) oldest = i;
        c->ents[oldest] = c->ents[--c->n];
        gone--;
    }
}

int stall__prom_cpu_update(stall_prom_cpu_t *c, const stall_proc_sample_t *procs, size_t n) {
    int rc = 0;
    for (size_t i = 0; i < c->n; i++) c->ents[i].seen = 0;
    for (size_t i = 0; i < n; i++) {
        const stall_proc_sample_t *p = &procs[i];
        if (!(p->valid & STALL_PROC_STAT)) continue;
        uint64_t cpu = p->utime_ns + p->stime_ns;
        stall_prom_cpu_ent_t *e = cpu_find(c, p->pid, p->starttime);
        if (!e) {
            if (c->n == c->cap) {
                size_t cap = c->cap ? c->cap * 2 : 32;
                stall_prom_cpu_ent_t *m = realloc(c->ents, cap * sizeof *m);
                if (!m) {
                    rc = stall__err("prometheus: out of memory for the process table");
                    continue;
                }
                c->ents = m;
                c->cap = cap;
            }
            e = &c->ents[c->n++];
            memset(e, 0, sizeof *e);
            e->pid = p->pid;
            e->starttime = p->starttime;
            e->role = p->depth == 0 ? STALL_PROM_MAIN : STALL_PROM_WORKER;
        } else if (e->gone) { /* missed by a sample, back now: out of the retired total */
            c->retired_ns[e->role] -= e->cpu_ns;
            e->gone = 0;
        }
        if (cpu > e->cpu_ns) e->cpu_ns = cpu;
        e->seen = 1;
    }
    for (size_t i = 0; i < c->n; i++) {
        stall_prom_cpu_ent_t *e = &c->ents[i];
        if (e->seen || e->gone) continue;
        c->retired_ns[e->role] += e->cpu_ns;
        e->gone = ++c->gone_seq;
    }
    cpu_forget_old(c);
    return rc;
}

uint64_t stall__prom_cpu_total_ns(const stall_prom_cpu_t *c, int role) {
    if (role < 0 || role >= STALL_PROM_ROLES) return 0;
    uint64_t t = c->retired_ns[role];
    for (size_t i = 0; i < c->n; i++)
        if (c->ents[i].role == role && !c->ents[i].gone) t += c->ents[i].cpu_ns;
    return t;
}

void stall__prom_cpu_free(stall_prom_cpu_t *c) {
    if (!c) return;
    free(c->ents);
    memset(c, 0, sizeof *c);
}

/* --------------------------------------------------------------- labels */

void stall__prom_escape(FILE *out, const char *s) {
    for (; s && *s; s++) {
        if (*s == '\\') fputs("\\\\", out);
        else if (*s == '"') fputs("\\\"", out);
        else if (*s == '\n') fputs("\\n", out);
        else fputc(*s, out);
    }
}

int stall__prom_label_name_ok(const char *s) {
    if (!s || !(isalpha((unsigned char)s[0]) || s[0] == '_')) return 0;
    if (s[0] == '_' && s[1] == '_') return 0;
    size_t n = 0;
    for (; s[n]; n++)
        if (!(isalnum((unsigned char)s[n]) || s[n] == '_')) return 0;
    return n <= 63;
}

int stall__prom_label_reserved(const char *s) {
    static const char *const own[] = {"role", "kind", "gpu", "name", "version"};
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
        if (s && !strcmp(s, own[i])) return 1;
    return 0;
}

/* ------------------------------------------------------------ rendering */

static void family(FILE *f, const char *name, const char *type, const char *help) {
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Writes `name{labels,k1="v1",k2="v2"} ` (k1, k2 may be NULL). */
static void series(FILE *f, const char *name, const char *labels, const char *k1, const char *v1, const char *k2,
                   const char *v2) {
    int has = labels && *labels;
    fputs(name, f);
    if (has || k1) {
        fputc('{', f);
        if (has) fputs(labels, f);
        const char *k[2] = {k1, k2}, *v[2] = {v1, v2};
        for (int i = 0; i < 2 && k[i]; i++) {
            if (has || i) fputc(',', f);
            fprintf(f, "%s=\"", k[i]);
            stall__prom_escape(f, v[i]);
            fputc('"', f);
        }
        fputc('}', f);
    }
    fputc(' ', f);
}

static void val_u64(FILE *f, uint64_t v) { fprintf(f, "%" PRIu64 "\n", v); }

/* Nanoseconds as seconds, exactly (no rounding through a double). */
static void val_seconds(FILE *f, uint64_t ns) {
    fprintf(f, "%" PRIu64 ".%09" PRIu64 "\n", (uint64_t)(ns / 1000000000u), (uint64_t)(ns % 1000000000u));
}

static void val_dbl(FILE *f, double v) { fprintf(f, "%.9g\n", v); }

static double clamp01(double v) { return v < 0 ? 0 : v > 1 ? 1 : v; }

static void render_loop(FILE *f, const stall_prom_in_t *in, const char *L) {
    family(f, "stall_batches_total", "counter", "Batches the training loop received from its DataLoaders.");
    series(f, "stall_batches_total", L, NULL, NULL, NULL, NULL);
    val_u64(f, in->batches);
    family(f, "stall_data_wait_seconds_total", "counter",
           "Time the training loop spent waiting for its next batch, in seconds.");
    series(f, "stall_data_wait_seconds_total", L, NULL, NULL, NULL, NULL);
    val_seconds(f, in->data_wait_ns);
    family(f, "stall_kind_seconds_total", "counter",
           "Time covered by spans of each kind, nested spans merged per thread, in seconds.");
    for (int k = 0; k < STALL_KIND_COUNT_; k++) {
        if (k == STALL_KIND_SESSION) continue; /* instant markers: no duration */
        series(f, "stall_kind_seconds_total", L, "kind", stall_kind_name(k), NULL, NULL);
        val_seconds(f, in->kind_ns[k]);
    }
}

static void render_procs(FILE *f, const stall_prom_in_t *in, const stall_prom_cpu_t *cpu, const char *L) {
    uint64_t count[STALL_PROM_ROLES] = {0}, mem[STALL_PROM_ROLES] = {0};
    int mem_known[STALL_PROM_ROLES] = {1, 1};
    for (size_t i = 0; i < in->nprocs; i++) {
        const stall_proc_sample_t *p = &in->procs[i];
        int role = p->depth == 0 ? STALL_PROM_MAIN : STALL_PROM_WORKER;
        count[role]++;
        if (role == STALL_PROM_WORKER && (p->valid & STALL_PROC_PSS)) mem[role] += p->pss_bytes;
        else if (p->valid & STALL_PROC_STAT) mem[role] += p->rss_bytes;
        else mem_known[role] = 0;
    }
    int sampled = in->samples > 0 || in->nprocs > 0; /* before the first sample nothing is known */
    if (!count[STALL_PROM_MAIN]) mem_known[STALL_PROM_MAIN] = 0; /* no root: not sampled yet, or gone */
    if (!sampled) mem_known[STALL_PROM_WORKER] = 0;
    family(f, "stall_process_cpu_seconds_total", "counter",
           "User and system CPU time of the profiled processes (main: the root; worker: its descendants, "
           "exited ones included), in seconds.");
    for (int r = 0; r < STALL_PROM_ROLES; r++) {
        series(f, "stall_process_cpu_seconds_total", L, "role", stall__prom_role_name(r), NULL, NULL);
        val_seconds(f, stall__prom_cpu_total_ns(cpu, r));
    }
    if (mem_known[0] || mem_known[1]) {
        family(f, "stall_process_resident_memory_bytes", "gauge",
               "Memory of the profiled processes: RSS of main, PSS of the workers where known, else RSS, in bytes.");
        for (int r = 0; r < STALL_PROM_ROLES; r++) {
            if (!mem_known[r]) continue;
            series(f, "stall_process_resident_memory_bytes", L, "role", stall__prom_role_name(r), NULL, NULL);
            val_u64(f, mem[r]);
        }
    }
    if (!sampled) return;
    family(f, "stall_processes", "gauge", "Processes of the profiled tree now.");
    for (int r = 0; r < STALL_PROM_ROLES; r++) {
        series(f, "stall_processes", L, "role", stall__prom_role_name(r), NULL, NULL);
        val_u64(f, count[r]);
    }
}

static void render_host(FILE *f, const stall_sys_t *y, const char *L) {
    if (y->valid & STALL_SYS_CPU) {
        family(f, "stall_host_cpus", "gauge", "Online CPUs of the host.");
        series(f, "stall_host_cpus", L, NULL, NULL, NULL, NULL);
        val_u64(f, y->ncpus);
    }
    double busy = y->cpu_user + y->cpu_system;
    if ((y->valid & (STALL_SYS_CPU | STALL_SYS_RATES)) == (STALL_SYS_CPU | STALL_SYS_RATES) && isfinite(busy)) {
        family(f, "stall_host_cpu_busy_ratio", "gauge",
               "Share of all online CPUs' time spent in user and system code over the last sampling interval.");
        series(f, "stall_host_cpu_busy_ratio", L, NULL, NULL, NULL, NULL);
        val_dbl(f, clamp01(busy));
    }
    if (y->valid & STALL_SYS_MEM) {
        family(f, "stall_host_memory_available_bytes", "gauge", "Memory available for new work (MemAvailable), in bytes.");
        series(f, "stall_host_memory_available_bytes", L, NULL, NULL, NULL, NULL);
        val_u64(f, y->mem_available_bytes);
        family(f, "stall_host_memory_total_bytes", "gauge", "Memory of the host (MemTotal), in bytes.");
        series(f, "stall_host_memory_total_bytes", L, NULL, NULL, NULL, NULL);
        val_u64(f, y->mem_total_bytes);
    }
}

/* One GPU family: the GPUs whose `need` bits are set (none: no family). */
static void render_gpu_family(FILE *f, const stall_prom_in_t *in, const char *L, const char *name, const char *type,
                              const char *help, uint64_t need, int what) {
    int any = 0;
    for (size_t i = 0; i < in->ngpus; i++) {
        const stall_gpu_t *g = &in->gpus[i];
        if ((g->valid & need) != need) continue;
        if (what == 0 && !isfinite(g->util_sm_pct)) continue;
        if (!any++) family(f, name, type, help);
        char idx[16];
        snprintf(idx, sizeof idx, "%u", g->index);
        if (what == 3) series(f, name, L, "gpu", idx, "name", g->name);
        else series(f, name, L, "gpu", idx, NULL, NULL);
        if (what == 0) val_dbl(f, clamp01(g->util_sm_pct / 100.0));
        else if (what == 1) val_u64(f, g->mem_used_bytes);
        else if (what == 2) val_u64(f, g->mem_total_bytes);
        else val_u64(f, 1);
    }
}

int stall__prom_render(FILE *out, const stall_prom_in_t *in, stall_prom_cpu_t *cpu, const char *labels) {
    if (!out || !in || !cpu) return stall__err("stall__prom_render: NULL argument");
    const char *L = labels ? labels : "";
    int rc = 0;
    if (in->has_sampler && stall__prom_cpu_update(cpu, in->procs, in->nprocs) < 0) rc = -1;

    family(out, "stall_build_info", "gauge", "Always 1; the version label is the stall library's.");
    series(out, "stall_build_info", L, "version", stall_version(), NULL, NULL);
    val_u64(out, 1);
    render_loop(out, in, L);
    if (in->has_sampler) {
        render_procs(out, in, cpu, L);
        if (in->has_sys) render_host(out, &in->sys, L);
        render_gpu_family(out, in, L, "stall_gpu_info", "gauge", "Always 1 per GPU; the name label is the model.",
                          0, 3);
        render_gpu_family(out, in, L, "stall_gpu_utilization_ratio", "gauge",
                          "Share of the last sampling interval the GPU's streaming multiprocessors were busy.",
                          STALL_GPU_UTIL, 0);
        render_gpu_family(out, in, L, "stall_gpu_memory_used_bytes", "gauge", "GPU memory in use, in bytes.",
                          STALL_GPU_MEM, 1);
        render_gpu_family(out, in, L, "stall_gpu_memory_total_bytes", "gauge", "GPU memory, in bytes.",
                          STALL_GPU_MEM, 2);
        family(out, "stall_sampler_samples_total", "counter", "Samples of the host and the process tree taken.");
        series(out, "stall_sampler_samples_total", L, NULL, NULL, NULL, NULL);
        val_u64(out, in->samples);
    }
    if (ferror(out)) return stall__err("prometheus: writing the exposition failed");
    return rc;
}

int stall__prom_render_engine(FILE *out, stall_engine_t *e, stall_prom_cpu_t *cpu, const char *labels) {
    stall_prom_in_t in;
    stall_proc_sample_t *procs = NULL;
    stall_gpu_t *gpus = NULL;
    int rc = -1;
    memset(&in, 0, sizeof in);
    if (!e) {
        stall__err("prometheus: no engine");
        goto fail;
    }
    stall_agg_t *agg = stall_engine_agg(e);
    if (stall__loop_totals(agg, &in.batches, &in.data_wait_ns) < 0) goto fail;
    if (stall_agg_kind_time(agg, 0, in.kind_ns) < 0) goto fail;
    stall_sampler_t *s = stall_engine_sampler(e);
    if (s) {
        in.has_sampler = 1;
        in.has_sys = stall_sampler_latest(s, &in.sys) == 0;
        size_t cap = 64, n = 0;
        for (int tries = 0; tries < 4; tries++) { /* the tree may grow between two calls */
            stall_proc_sample_t *m = realloc(procs, cap * sizeof *procs);
            if (!m) {
                stall__err("prometheus: out of memory");
                goto fail;
            }
            procs = m;
            n = stall_sampler_procs(s, procs, cap);
            if (n <= cap) break;
            cap = n + 16;
        }
        in.procs = procs;
        in.nprocs = n < cap ? n : cap;
        cap = 8;
        for (int tries = 0; tries < 3; tries++) {
            stall_gpu_t *m = realloc(gpus, cap * sizeof *gpus);
            if (!m) {
                stall__err("prometheus: out of memory");
                goto fail;
            }
            gpus = m;
            n = stall_sampler_gpus(s, gpus, cap);
            if (n <= cap) break;
            cap = n;
        }
        in.gpus = gpus;
        in.ngpus = n < cap ? n : cap;
        in.samples = stall_sampler_count(s);
    }
    rc = stall__prom_render(out, &in, cpu, labels);
fail:
    free(procs);
    free(gpus);
    return rc;
}

/* ------------------------------------------------------------ addresses */

/* The live monitor's series, from its public summary (a metrics source). */
int stall_monitor_prometheus(void *ctx, FILE *out, const char *labels) {
    stall_monitor_summary_t s;
    if (!ctx || !out || stall_monitor_summary((stall_monitor_t *)ctx, &s) < 0) return -1;
    family(out, "stall_alerts_total", "counter", "Alerts the live monitor raised, by kind.");
    for (int k = 0; k < 5; k++) {
        series(out, "stall_alerts_total", labels, "kind", stall_alert_kind_name(k), NULL, NULL);
        val_u64(out, s.fired_by_kind[k]);
    }
    family(out, "stall_alerts_active", "gauge", "Alert conditions raised and not cleared.");
    series(out, "stall_alerts_active", labels, NULL, NULL, NULL, NULL);
    val_u64(out, s.active);
    static const struct {
        int metric;
        const char *name, *help;
    } loop[] = {
        {STALL_MON_STEP_TIME_S, "stall_step_time_seconds", "Mean time per batch of the training loop, last span."},
        {STALL_MON_THROUGHPUT, "stall_throughput_batches_per_second", "Batches per second, last span."},
        {STALL_MON_DATA_WAIT_SHARE, "stall_data_wait_ratio", "Share of the last span the loop waited for data."},
    };
    for (size_t i = 0; i < sizeof loop / sizeof loop[0]; i++) {
        double v = s.last[loop[i].metric];
        if (!isfinite(v)) continue; /* unknown is left out */
        family(out, loop[i].name, "gauge", loop[i].help);
        series(out, loop[i].name, labels, NULL, NULL, NULL, NULL);
        val_dbl(out, v);
    }
    const double secs[2] = {s.oom_host_s, s.oom_gpu_s};
    const char *const where[2] = {"host", "gpu"};
    int header = 0;
    for (int i = 0; i < 2; i++) {
        if (!isfinite(secs[i])) continue;
        if (!header++)
            family(out, "stall_memory_exhaustion_seconds", "gauge",
                   "Predicted seconds until memory runs out at the current growth.");
        series(out, "stall_memory_exhaustion_seconds", labels, "memory", where[i], NULL, NULL);
        val_dbl(out, secs[i]);
    }
    return ferror(out) ? -1 : 0;
}

static const char *addr_forms = "give HOST:PORT, [IPV6]:PORT, :PORT or PORT";

int stall__prom_parse_address(const char *addr, stall_prom_addr_t *out) {
    struct addrinfo hints, *res = NULL;
    const char *port;
    size_t hl;
    int bracket = 0;
    memset(out, 0, sizeof *out);
    if (!addr || !*addr) return stall__err("metrics address is empty: %s", addr_forms);
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (!close) return stall__err("metrics address '%s': no ']' after the IPv6 address", addr);
        if (close[1] != ':') return stall__err("metrics address '%s': ':PORT' must follow ']'", addr);
        hl = (size_t)(close - addr - 1);
        if (hl == 0) return stall__err("metrics address '%s': the IPv6 address is empty", addr);
        if (hl >= sizeof out->host) return stall__err("metrics address '%s': the host is too long", addr);
        memcpy(out->host, addr + 1, hl);
        port = close + 2;
        bracket = 1;
    } else {
        const char *colon = strrchr(addr, ':');
        if (!colon) {
            for (const char *p = addr; *p; p++)
                if (!isdigit((unsigned char)*p)) return stall__err("metrics address '%s': no port (%s)", addr, addr_forms);
            port = addr;
            hl = 0;
        } else {
            if (memchr(addr, ':', (size_t)(colon - addr)))
                return stall__err("metrics address '%s': put an IPv6 address in brackets, as in [::1]:9464", addr);
            hl = (size_t)(colon - addr);
            if (hl >= sizeof out->host) return stall__err("metrics address '%s': the host is too long", addr);
            memcpy(out->host, addr, hl);
            port = colon + 1;
        }
        if (hl == 0) snprintf(out->host, sizeof out->host, "127.0.0.1");
    }
    size_t pl = strlen(port);
    long pv = 0;
    int digits = pl > 0 && pl <= 5;
    for (size_t i = 0; digits && i < pl; i++) digits = isdigit((unsigned char)port[i]) != 0;
    if (digits) pv = strtol(port, NULL, 10);
    if (!digits || pv > 65535)
        return stall__err("metrics address '%s': the port must be a number in 0..65535 (0: any free port)", addr);
    out->port = (int)pv;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = bracket ? AF_INET6 : AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = bracket ? AI_NUMERICHOST : 0;
    int g = getaddrinfo(out->host, NULL, &hints, &res);
    if (g != 0 || !res)
        return stall__err("metrics address '%s': cannot resolve host '%s': %s", addr, out->host,
                          g ? gai_strerror(g) : "no address");
    const struct addrinfo *pick = NULL;
    for (const struct addrinfo *a = res; a && !pick; a = a->ai_next) /* IPv4 first: what "localhost" means to most */
        if (a->ai_family == AF_INET) pick = a;
    for (const struct addrinfo *a = res; a && !pick; a = a->ai_next)
        if (a->ai_family == AF_INET6) pick = a;
    if (!pick || pick->ai_addrlen > sizeof out->ss) {
        freeaddrinfo(res);
        return stall__err("metrics address '%s': host '%s' has no IPv4 or IPv6 address", addr, out->host);
    }
    memcpy(&out->ss, pick->ai_addr, pick->ai_addrlen);
    out->len = (socklen_t)pick->ai_addrlen;
    freeaddrinfo(res);
    if (out->ss.ss_family == AF_INET) ((struct sockaddr_in *)&out->ss)->sin_port = htons((uint16_t)out->port);
    else ((struct sockaddr_in6 *)&out->ss)->sin6_port = htons((uint16_t)out->port);
    return 0;
}
