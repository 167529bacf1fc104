/*
 * sampler.c - one thread that samples the system, the process tree and the
 * GPUs at a fixed interval, keeps the latest sample for readers, and feeds
 * the time series of the metrics the analysis and the reports use.
 *
 * Sampling (the collectors' work) happens outside the lock that readers
 * take; only the copy of a finished sample into `latest` and the series push
 * are done under it, so a reader never waits for a /proc scan. Deadlines are
 * absolute (start + k * interval) so the rate does not drift, and the thread
 * blocks every signal so the profiled program's signal handling is untouched.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "collector.h"
#include "internal.h"
#include "series.h"

#define MAX_CORES 1024
#define MAX_PROCS 4096
#define MAX_GPUS 64
#define MAX_DEVS 256
#define DEFAULT_INTERVAL_NS 100000000ull
#define DEFAULT_MAX_SAMPLES 1200u
/* Reading PSS (smaps_rollup walks every mapping: ~3 ms for a process with
 * torch loaded) may cost PSS_START_NS of CPU plus PSS_BUDGET of a core over
 * the time sampled: a short run, and the start of a long one, get it at the
 * full rate (pss_interval_ns); then reads wait until the budget allows. */
#define PSS_BUDGET 0.001
#define PSS_START_NS 250000000ull

struct stall_sampler_t {
    stall_sampler_options_t opt;
    char proc_root[256], sys_root[256];
    stall_sys_collector_t *sys;
    stall_tree_collector_t *tree;
    stall_nvml_t *nvml;
    int nvml_tried;
    uint64_t last_pss_ns, first_ns;
    uint64_t tree_cpu_ns; /* CPU time of a tree sample without PSS (smoothed) */
    uint64_t pss_spent_ns; /* CPU time the PSS reads cost so far (estimated) */

    /* scratch, written only by the sampling side (held under sample_lock) */
    pthread_mutex_t sample_lock;
    stall_sys_t s_sys;
    double s_cores[MAX_CORES];
    uint32_t s_ncores;
    stall_proc_sample_t *s_procs;
    size_t s_nprocs;
    stall_gpu_t s_gpus[MAX_GPUS];
    size_t s_ngpus;
    stall_device_t s_devs[MAX_DEVS];
    size_t s_ndevs, s_ndevs_total;
    uint32_t *s_pids;
    uint64_t *s_pid_gpu_mem;
    uint8_t *s_pid_gpu_known;

    /* published state (under lock) */
    pthread_mutex_t lock;
    int have_latest;
    stall_sys_t sys_latest;
    double cores[MAX_CORES];
    size_t ncores;
    stall_proc_sample_t *procs;
    size_t nprocs, nprocs_total;
    stall_gpu_t gpus[MAX_GPUS];
    size_t ngpus;
    stall_device_t devs[MAX_DEVS];
    size_t ndevs, ndevs_total;
    stall_series_t *series;
    uint64_t count;

    /* thread */
    pthread_t thread;
    int running;
    int stop;
    pthread_cond_t wake;
    pid_t owner; /* the process that made it: a forked copy has no thread, and its locks may be held */
};

const char *stall_metric_name(int metric) {
    static const char *const names[] = {
        "cpu_user_share",          "cpu_system_share",        "cpu_iowait_share",
        "cpu_steal_share",         "load1",                   "mem_available_bytes",
        "mem_used_bytes",          "swap_used_bytes",         "psi_cpu_some_avg10_pct",
        "psi_io_some_avg10_pct",   "psi_io_full_avg10_pct",   "psi_mem_some_avg10_pct",
        "psi_mem_full_avg10_pct",  "disk_read_bytes_per_s",   "disk_write_bytes_per_s",
        "disk_busy_share",         "net_rx_bytes_per_s",      "net_tx_bytes_per_s",
        "cgroup_throttled_share",  "tree_processes",          "main_cpu_cores",
        "workers_cpu_cores",       "main_rss_bytes",          "workers_rss_bytes",
        "tree_read_bytes_per_s",   "tree_write_bytes_per_s",  "tree_runq_wait_cores",
        "gpu_util_pct",            "gpu_mem_used_bytes",      "gpu_power_mw",
        "gpu_pcie_rx_bytes_per_s", "gpu_pcie_tx_bytes_per_s", "main_sys_cpu_cores",
        "tree_page_faults_per_s",  "tree_major_faults_per_s", "tree_threads_disk_wait",
        "tree_threads_net_wait",   "tree_threads_sleeping",   "workers_pss_bytes"};
    _Static_assert(sizeof names / sizeof names[0] == STALL_M_COUNT_, "one name per stall_metric_t");
    return metric >= 0 && metric < STALL_M_COUNT_ ? names[metric] : "unknown";
}

stall_sampler_t *stall_sampler_new(const stall_sampler_options_t *o) {
    stall_sampler_options_t opt = {0};
    if (o) opt = *o;
    if (opt.interval_ns == 0) opt.interval_ns = DEFAULT_INTERVAL_NS;
    if (opt.interval_ns < 1000000ull) {
        stall__err("sampler: interval must be at least 1 ms (got %.3f ms)", opt.interval_ns / 1e6);
        return NULL;
    }
    if (opt.max_samples == 0) opt.max_samples = DEFAULT_MAX_SAMPLES;
    if (opt.max_samples < 16 || opt.max_samples > 1000000) {
        stall__err("sampler: max_samples must be in 16..1000000 (got %u)", opt.max_samples);
        return NULL;
    }
    if (opt.root_pid == 0) opt.root_pid = (uint32_t)getpid();
    if (opt.pss_interval_ns == 0) opt.pss_interval_ns = 10 * opt.interval_ns;

    stall_sampler_t *s = calloc(1, sizeof *s);
    if (!s) goto oom;
    s->opt = opt;
    s->owner = getpid();
    stall__strlcpy(s->proc_root, opt.proc_root && *opt.proc_root ? opt.proc_root : "/proc", sizeof s->proc_root);
    stall__strlcpy(s->sys_root, opt.sys_root && *opt.sys_root ? opt.sys_root : "/sys", sizeof s->sys_root);
    s->opt.proc_root = s->proc_root;
    s->opt.sys_root = s->sys_root;
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->sample_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->wake, &ca);
    pthread_condattr_destroy(&ca);
    s->s_procs = calloc(MAX_PROCS, sizeof *s->s_procs);
    s->procs = calloc(MAX_PROCS, sizeof *s->procs);
    s->s_pids = calloc(MAX_PROCS, sizeof *s->s_pids);
    s->s_pid_gpu_mem = calloc(MAX_PROCS, sizeof *s->s_pid_gpu_mem);
    s->s_pid_gpu_known = calloc(MAX_PROCS, sizeof *s->s_pid_gpu_known);
    s->series = stall__series_new(STALL_M_COUNT_, opt.max_samples);
    s->sys = stall__sys_open(s->proc_root, s->sys_root, opt.root_pid);
    s->tree = stall__tree_open(s->proc_root, opt.root_pid);
    if (!s->s_procs || !s->procs || !s->s_pids || !s->s_pid_gpu_mem || !s->s_pid_gpu_known || !s->series || !s->sys || !s->tree) {
        stall_sampler_free(s);
        goto oom;
    }
    return s;
oom:
    stall__err("sampler: out of memory");
    return NULL;
}

/* The metric vector of one finished sample (scratch side). */
static void metrics_of(stall_sampler_t *s, double *v) {
    const stall_sys_t *y = &s->s_sys;
    for (int i = 0; i < STALL_M_COUNT_; i++) v[i] = NAN;
    int rates = (y->valid & STALL_SYS_RATES) != 0;
    if (rates && (y->valid & STALL_SYS_CPU)) {
        v[STALL_M_CPU_USER] = y->cpu_user;
        v[STALL_M_CPU_SYSTEM] = y->cpu_system;
        v[STALL_M_CPU_IOWAIT] = y->cpu_iowait;
        v[STALL_M_CPU_STEAL] = y->cpu_steal;
    }
    if (y->valid & STALL_SYS_LOAD) v[STALL_M_LOAD1] = y->load1;
    if (y->valid & STALL_SYS_MEM) {
        v[STALL_M_MEM_AVAILABLE] = (double)y->mem_usable_available_bytes;
        v[STALL_M_MEM_USED] = (double)(y->mem_total_bytes - y->mem_available_bytes);
    }
    if (y->valid & STALL_SYS_SWAP) v[STALL_M_SWAP_USED] = (double)(y->swap_total_bytes - y->swap_free_bytes);
    if (y->valid & STALL_SYS_PSI_CPU) v[STALL_M_PSI_CPU_SOME] = y->psi_cpu_some_avg10;
    if (y->valid & STALL_SYS_PSI_IO) {
        v[STALL_M_PSI_IO_SOME] = y->psi_io_some_avg10;
        v[STALL_M_PSI_IO_FULL] = y->psi_io_full_avg10;
    }
    if (y->valid & STALL_SYS_PSI_MEM) {
        v[STALL_M_PSI_MEM_SOME] = y->psi_mem_some_avg10;
        v[STALL_M_PSI_MEM_FULL] = y->psi_mem_full_avg10;
    }
    if (rates && (y->valid & STALL_SYS_DISK)) {
        v[STALL_M_DISK_READ] = y->disk_read_bytes_per_s;
        v[STALL_M_DISK_WRITE] = y->disk_write_bytes_per_s;
        v[STALL_M_DISK_BUSY] = y->disk_busy;
    }
    if (rates && (y->valid & STALL_SYS_NET)) {
        v[STALL_M_NET_RX] = y->net_rx_bytes_per_s;
        v[STALL_M_NET_TX] = y->net_tx_bytes_per_s;
    }
    if (rates && (y->valid & STALL_SYS_CG_THROTTLE)) v[STALL_M_CG_THROTTLED] = y->cg_throttled_share;

    size_t n = s->s_nprocs;
    v[STALL_M_TREE_PROCS] = (double)n;
    double wcpu = 0, wrss = 0, rd = 0, wr = 0, rq = 0, flt = 0, majflt = 0, wdisk = 0, wnet = 0, wsleep = 0, wpss = 0;
    int have_pss = 0, have_cpu = 0, have_io = 0, have_rq = 0, have_flt = 0, have_wait = 0;
    for (size_t i = 0; i < n; i++) {
        const stall_proc_sample_t *p = &s->s_procs[i];
        int r = (p->valid & STALL_PROC_RATES) != 0;
        if (r && (p->valid & STALL_PROC_STAT)) {
            flt += p->minflt_per_s + p->majflt_per_s;
            majflt += p->majflt_per_s;
            have_flt = 1;
        }
        if (p->valid & STALL_PROC_WAIT) {
            wdisk += p->threads_disk;
            wnet += p->threads_net;
            wsleep += p->threads_sleep;
            have_wait = 1;
        }
        if (i == 0) {
            if (r && (p->valid & STALL_PROC_STAT)) {
                v[STALL_M_MAIN_CPU] = p->cpu_util;
                v[STALL_M_MAIN_SYS_CPU] = p->sys_util;
            }
            if (p->valid & STALL_PROC_STAT) v[STALL_M_MAIN_RSS] = (double)p->rss_bytes;
        } else {
            if (r && (p->valid & STALL_PROC_STAT)) {
                wcpu += p->cpu_util;
                have_cpu = 1;
            }
            if (p->valid & STALL_PROC_STAT) wrss += (double)p->rss_bytes;
            if (p->valid & STALL_PROC_PSS) {
                wpss += (double)p->pss_bytes;
                have_pss = 1;
            }
        }
        if (r && (p->valid & STALL_PROC_IO)) {
            rd += p->read_bytes_per_s;
            wr += p->write_bytes_per_s;
            have_io = 1;
        }
        if (r && (p->valid & STALL_PROC_SCHED)) {
            rq += p->runq_wait_share;
            have_rq = 1;
        }
    }
    if (have_pss) v[STALL_M_WORKERS_PSS] = wpss;
    if (n > 1) {
        v[STALL_M_WORKERS_RSS] = wrss;
        if (have_cpu) v[STALL_M_WORKERS_CPU] = wcpu;
    } else if (n == 1) {
        v[STALL_M_WORKERS_RSS] = 0;
        v[STALL_M_WORKERS_CPU] = 0;
    }
    if (have_io) {
        v[STALL_M_TREE_READ] = rd;
        v[STALL_M_TREE_WRITE] = wr;
    }
    if (have_rq) v[STALL_M_TREE_RUNQ_WAIT] = rq;
    if (have_flt) {
        v[STALL_M_TREE_FAULTS] = flt;
        v[STALL_M_TREE_MAJFLT] = majflt;
    }
    if (have_wait) {
        v[STALL_M_TREE_WAIT_DISK] = wdisk;
        v[STALL_M_TREE_WAIT_NET] = wnet;
        v[STALL_M_TREE_WAIT_SLEEP] = wsleep;
    }

    double util = 0, mem = 0, pw = 0, rx = 0, tx = 0;
    int nu = 0, nm = 0, np = 0, nx = 0;
    for (size_t i = 0; i < s->s_ngpus; i++) {
        const stall_gpu_t *g = &s->s_gpus[i];
        if (g->valid & STALL_GPU_UTIL) util += g->util_sm_pct, nu++;
        if (g->valid & STALL_GPU_MEM) mem += (double)g->mem_used_bytes, nm++;
        if (g->valid & STALL_GPU_POWER) pw += g->power_mw, np++;
        if (g->valid & STALL_GPU_PCIE) rx += g->pcie_rx_bytes_per_s, tx += g->pcie_tx_bytes_per_s, nx++;
    }
    if (nu) v[STALL_M_GPU_UTIL] = util / nu;
    if (nm) v[STALL_M_GPU_MEM_USED] = mem;
    if (np) v[STALL_M_GPU_POWER] = pw;
    if (nx) {
        v[STALL_M_GPU_PCIE_RX] = rx;
        v[STALL_M_GPU_PCIE_TX] = tx;
    }
}

int stall_sampler_sample(stall_sampler_t *s) {
    if (!s) return stall__err("stall_sampler_sample: sampler is NULL");
    pthread_mutex_lock(&s->sample_lock);
    uint64_t now = stall__clock_ns(CLOCK_MONOTONIC);
    stall__sys_sample(s->sys, now, &s->s_sys, s->s_cores, MAX_CORES, &s->s_ncores);
    s->s_ndevs_total = stall__sys_devices(s->sys, s->s_devs, MAX_DEVS);
    s->s_ndevs = s->s_ndevs_total < MAX_DEVS ? s->s_ndevs_total : MAX_DEVS;
    if (!s->first_ns) s->first_ns = now;
    double allowed = (double)PSS_START_NS + PSS_BUDGET * (double)(now - s->first_ns);
    int pss_due = s->last_pss_ns == 0 ||
                  (now - s->last_pss_ns >= s->opt.pss_interval_ns && (double)s->pss_spent_ns <= allowed);
    if (pss_due) s->last_pss_ns = now;
    uint64_t c0 = stall__clock_ns(CLOCK_THREAD_CPUTIME_ID);
    size_t total = stall__tree_sample(s->tree, now, pss_due, s->s_procs, MAX_PROCS);
    uint64_t spent = stall__clock_ns(CLOCK_THREAD_CPUTIME_ID) - c0;
    if (!pss_due)
        s->tree_cpu_ns = s->tree_cpu_ns ? (7 * s->tree_cpu_ns + spent) / 8 : spent;
    else /* before a sample without PSS is known, all of it counts */
        s->pss_spent_ns += spent > s->tree_cpu_ns ? spent - s->tree_cpu_ns : 0;
    s->s_nprocs = total < MAX_PROCS ? total : MAX_PROCS;

    if (!s->nvml_tried && !s->opt.no_gpu) {
        s->nvml_tried = 1;
        s->nvml = stall__nvml_open(); /* NULL: no GPU */
    }
    s->s_ngpus = 0;
    if (s->nvml) {
        for (size_t i = 0; i < s->s_nprocs; i++) {
            s->s_pids[i] = s->s_procs[i].pid;
            s->s_pid_gpu_mem[i] = 0;
            s->s_pid_gpu_known[i] = 1;
        }
        size_t ng = stall__nvml_sample(s->nvml, s->s_gpus, MAX_GPUS, s->s_pids, s->s_nprocs, s->s_pid_gpu_mem,
                                       s->s_pid_gpu_known);
        s->s_ngpus = ng < MAX_GPUS ? ng : MAX_GPUS;
        for (size_t i = 0; i < s->s_nprocs; i++) {
            s->s_procs[i].gpu_mem_bytes = s->s_pid_gpu_mem[i];
            if (s->s_pid_gpu_known[i]) s->s_procs[i].valid |= STALL_PROC_GPU;
        }
    }
    double v[STALL_M_COUNT_];
    metrics_of(s, v);

    pthread_mutex_lock(&s->lock);
    s->sys_latest = s->s_sys;
    memcpy(s->cores, s->s_cores, s->s_ncores * sizeof *s->cores);
    s->ncores = s->s_ncores;
    memcpy(s->procs, s->s_procs, s->s_nprocs * sizeof *s->procs);
    s->nprocs = s->s_nprocs;
    s->nprocs_total = total;
    memcpy(s->gpus, s->s_gpus, s->s_ngpus * sizeof *s->gpus);
    s->ngpus = s->s_ngpus;
    memcpy(s->devs, s->s_devs, s->s_ndevs * sizeof *s->devs);
    s->ndevs = s->s_ndevs;
    s->ndevs_total = s->s_ndevs_total;
    stall__series_push(s->series, now, v);
    s->count++;
    s->have_latest = 1;
    pthread_mutex_unlock(&s->lock);
    pthread_mutex_unlock(&s->sample_lock);
    return 0;
}

static void *sampler_main(void *arg) {
    pthread_setname_np(pthread_self(), "stall-sampler"); /* top -H, /proc/<pid>/task/<tid>/comm */
    stall_sampler_t *s = arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    uint64_t start = stall__clock_ns(CLOCK_MONOTONIC), k = 0;
    pthread_mutex_lock(&s->lock);
    while (!s->stop) {
        pthread_mutex_unlock(&s->lock);
        stall_sampler_sample(s);
        pthread_mutex_lock(&s->lock);
        uint64_t now = stall__clock_ns(CLOCK_MONOTONIC);
        uint64_t next = start + (++k) * s->opt.interval_ns;
        if (next <= now) { /* fell behind (a slow sample, a stopped VM): skip ahead */
            k = (now - start) / s->opt.interval_ns + 1;
            next = start + k * s->opt.interval_ns;
        }
        struct timespec ts = {(time_t)(next / 1000000000ull), (long)(next % 1000000000ull)};
        while (!s->stop) {
            int rc = pthread_cond_timedwait(&s->wake, &s->lock, &ts);
            if (rc == ETIMEDOUT) break;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

int stall_sampler_start(stall_sampler_t *s) {
    if (!s) return stall__err("stall_sampler_start: sampler is NULL");
    if (s->owner != getpid())
        return stall__err("stall_sampler_start: the sampler was made by process %d; a forked child makes its own",
                          (int)s->owner);
    pthread_mutex_lock(&s->lock);
    if (s->running) {
        pthread_mutex_unlock(&s->lock);
        return stall__err("stall_sampler_start: the sampler is already running");
    }
    s->stop = 0;
    int rc = pthread_create(&s->thread, NULL, sampler_main, s);
    if (rc == 0) s->running = 1;
    pthread_mutex_unlock(&s->lock);
    return rc == 0 ? 0 : stall__errno(rc, "stall_sampler_start: cannot start the sampling thread");
}

int stall_sampler_stop(stall_sampler_t *s) {
    if (!s) return stall__err("stall_sampler_stop: sampler is NULL");
    if (s->owner != getpid()) return 0; /* a forked copy: the thread stayed in the parent */
    pthread_mutex_lock(&s->lock);
    if (!s->running) {
        pthread_mutex_unlock(&s->lock);
        return 0;
    }
    s->stop = 1;
    pthread_cond_broadcast(&s->wake);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL);
    pthread_mutex_lock(&s->lock);
    s->running = 0;
    pthread_mutex_unlock(&s->lock);
    return 0;
}

int stall_sampler_latest(stall_sampler_t *s, stall_sys_t *out) {
    if (!s || !out) return stall__err("stall_sampler_latest: sampler and out are required");
    pthread_mutex_lock(&s->lock);
    int have = s->have_latest;
    if (have) *out = s->sys_latest;
    pthread_mutex_unlock(&s->lock);
    return have ? 0 : stall__err("stall_sampler_latest: no sample taken yet");
}

/* Copies min(n, cap) elements of a published array under the lock and
 * returns *total (how many there are, which may exceed what was kept). */
static size_t copy_published(stall_sampler_t *s, void *out, size_t cap, const void *src, const size_t *n,
                             const size_t *total, size_t elem) {
    pthread_mutex_lock(&s->lock);
    size_t k = *n < cap ? *n : cap;
    if (out && k) memcpy(out, src, k * elem);
    size_t t = *total;
    pthread_mutex_unlock(&s->lock);
    return t;
}

size_t stall_sampler_procs(stall_sampler_t *s, stall_proc_sample_t *out, size_t cap) {
    if (!s) return 0;
    return copy_published(s, out, cap, s->procs, &s->nprocs, &s->nprocs_total, sizeof *out);
}

size_t stall_sampler_gpus(stall_sampler_t *s, stall_gpu_t *out, size_t cap) {
    if (!s) return 0;
    return copy_published(s, out, cap, s->gpus, &s->ngpus, &s->ngpus, sizeof *out);
}

size_t stall_sampler_devices(stall_sampler_t *s, stall_device_t *out, size_t cap) {
    if (!s) return 0;
    return copy_published(s, out, cap, s->devs, &s->ndevs, &s->ndevs_total, sizeof *out);
}

size_t stall_sampler_cores(stall_sampler_t *s, double *out, size_t cap) {
    if (!s) return 0;
    return copy_published(s, out, cap, s->cores, &s->ncores, &s->ncores, sizeof *out);
}

ssize_t stall_sampler_series(stall_sampler_t *s, int metric, stall_point_t *out, size_t cap) {
    if (!s) return stall__err("stall_sampler_series: sampler is NULL");
    if (metric < 0 || metric >= STALL_M_COUNT_)
        return stall__err("stall_sampler_series: metric %d is not a stall_metric_t", metric);
    pthread_mutex_lock(&s->lock);
    size_t n = stall__series_read(s->series, (uint32_t)metric, out, out ? cap : 0);
    pthread_mutex_unlock(&s->lock);
    return (ssize_t)n;
}

uint64_t stall_sampler_count(stall_sampler_t *s) {
    if (!s) return 0;
    pthread_mutex_lock(&s->lock);
    uint64_t n = s->count;
    pthread_mutex_unlock(&s->lock);
    return n;
}

size_t stall_sampler_memory_bytes(const stall_sampler_t *s) {
    if (!s) return 0;
    return sizeof *s + stall__series_bytes(s->series) + 2 * MAX_PROCS * sizeof(stall_proc_sample_t) +
           MAX_PROCS * (sizeof(uint32_t) + sizeof(uint64_t) + sizeof(uint8_t));
}

void stall_sampler_free(stall_sampler_t *s) {
    if (!s) return;
    /* a forked copy is left as it is: its locks and condition may be held by
     * threads that stayed in the parent (destroying them can block for ever),
     * and NVML is the parent's; the process's exit returns the memory */
    if (s->owner != getpid()) return;
    stall_sampler_stop(s);
    if (s->sys) stall__sys_close(s->sys);
    if (s->tree) stall__tree_close(s->tree);
    if (s->nvml) stall__nvml_close(s->nvml);
    stall__series_free(s->series);
    free(s->s_procs);
    free(s->procs);
    free(s->s_pids);
    free(s->s_pid_gpu_mem);
    free(s->s_pid_gpu_known);
    pthread_cond_destroy(&s->wake);
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->sample_lock);
    free(s);
}
