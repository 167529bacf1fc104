/*
 * sys.c - the system collector: what the machine and the root process's
 * container are doing. It keeps open <proc>/stat, loadavg, meminfo,
 * pressure/{cpu,io,memory}, diskstats, net/dev, the cpufreq files of the
 * CPUs and the cgroup limit and usage files of the root's cgroup (and of its
 * ancestors: a limit set on a parent applies), re-reads them with pread at
 * each sample and turns counters into rates against the previous sample.
 *
 * Choices:
 *  - Disks: a "whole disk" is a name of diskstats that has <sys>/block/<name>
 *    (partitions do not), except loop*, ram* and zram* (files, RAM and
 *    compressed swap: counting them would count the same bytes twice or
 *    count memory) and stacked devices whose <sys>/block/<name>/slaves is not
 *    empty (dm-*, md* over real disks: their I/O is already counted on the
 *    disks below). disk_busy is the busiest whole disk's io_ticks delta over
 *    the interval.
 *  - Network: every interface but "lo".
 *  - CPU shares: jiffy deltas of the "cpu" line; when no tick elapsed since
 *    the last baseline (samples closer than 1/CLK_TCK), the baseline is kept
 *    and the last shares are reported again.
 *  - cg_throttled_share: delta nr_throttled / delta nr_periods of the cgroup
 *    whose CPU limit is the tightest (throttling is counted where the quota
 *    is), or of the root's own cgroup when no limit is set; 0 when no period
 *    elapsed. Without nr_periods: throttled time / elapsed time.
 *  - cg memory: the tightest limit over the cgroup and its ancestors, and the
 *    usage of the cgroup that sets it (the limit covers its whole subtree).
 *    A v1 limit >= 2^62 (the kernel prints ~2^63 for none) means no limit.
 *  - cpu_freq_mhz: mean of scaling_cur_freq over the CPUs present at open;
 *    without cpufreq, the mean "cpu MHz" of <proc>/cpuinfo read once at open.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "collector.h"
#include "internal.h"
#include "lx.h"

#define SYS_BUF_INIT 16384u
#define SYS_BUF_MAX (16u << 20)
#define CG_MAX_LEVELS 32
#define LIST_MAX 65536u
#define V1_NO_LIMIT (1ull << 62)

typedef struct cg_level_t {
    stall_kfile_t limit;  /* cpu.max | cpu.cfs_quota_us | memory.max | memory.limit_in_bytes */
    stall_kfile_t period; /* v1 cpu.cfs_period_us */
    stall_kfile_t extra;  /* cpu.stat | memory.current | memory.usage_in_bytes */
} cg_level_t;

typedef struct disk_ent_t {
    stall_disk_t d;
    int whole;
} disk_ent_t;

struct stall_sys_collector_t {
    char proc_root[PATH_MAX];
    char sys_root[PATH_MAX];
    uint32_t root_pid;
    long clk_tck;

    stall_kfile_t stat, loadavg, meminfo, psi_cpu, psi_io, psi_mem, diskstats, netdev;
    stall_kfile_t *freq;
    uint32_t nfreq;
    double cpuinfo_mhz;
    int have_cpuinfo_mhz;
    uint32_t affinity; /* CPUs the root may run on; 0 unknown */

    int cg_version;
    cg_level_t cpu_lv[CG_MAX_LEVELS]; /* [0] is the root's own cgroup */
    int ncpu_lv;
    cg_level_t mem_lv[CG_MAX_LEVELS];
    int nmem_lv;

    char *buf;
    size_t cap;

    /* CPU ticks: the baseline of the shares and the last shares */
    stall_cpu_times_t *cores_cur, *cores_base;
    double *core_share;
    uint32_t cores_cap, base_ncores, share_ncores;
    stall_cpu_times_t total_base;
    int have_base, have_shares;
    double sh_user, sh_system, sh_iowait, sh_steal, sh_idle;

    /* disks and interfaces of this and the previous sample */
    stall_disk_t *disk_tmp;
    disk_ent_t *disks, *disks_prev;
    size_t ndisks, ndisks_prev, disks_cap;
    stall_iface_t *ifs, *ifs_prev;
    stall_device_t *devs; /* the per-device view of this sample (disks, then interfaces) */
    size_t ndevs, devs_cap;
    size_t nifs, nifs_prev, ifs_cap;

    /* the previous sample */
    int have_prev;
    uint64_t prev_t_ns, prev_valid, prev_ctxt;
    int prev_thr_level, prev_has_periods;
    uint64_t prev_nr_throttled, prev_nr_periods, prev_throttled_ns;
};

/* ---------------------------------------------------------------- helpers */

static int path_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int path_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* root/a/b into dst; 0 or -1 (too long) */
static int join3(char *dst, size_t cap, const char *root, const char *a, const char *b) {
    char tmp[PATH_MAX];
    if (stall__lx_join(tmp, sizeof tmp, root, a) < 0) return -1;
    return stall__lx_join(dst, cap, tmp, b);
}

static long rd(stall_sys_collector_t *c, stall_kfile_t *f) {
    if (f->fd < 0) return -1;
    return stall__lx_read_grow(f, &c->buf, &c->cap, SYS_BUF_MAX);
}

static uint64_t sub0(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }

static uint64_t ticks_sum(const stall_cpu_times_t *t) {
    return t->user + t->nice + t->system + t->idle + t->iowait + t->irq + t->softirq + t->steal;
}

/* -------------------------------------------------------------- cgroups */

enum { CG_CPU_V1, CG_CPU_V2, CG_MEM_V1, CG_MEM_V2 };

static void cg_open_level(cg_level_t *lv, const char *dir, int kind) {
    lv->limit.fd = lv->period.fd = lv->extra.fd = -1;
    switch (kind) {
    case CG_CPU_V1:
        stall__kf_open(&lv->limit, dir, "cpu.cfs_quota_us");
        stall__kf_open(&lv->period, dir, "cpu.cfs_period_us");
        stall__kf_open(&lv->extra, dir, "cpu.stat");
        break;
    case CG_CPU_V2:
        stall__kf_open(&lv->limit, dir, "cpu.max");
        stall__kf_open(&lv->extra, dir, "cpu.stat");
        break;
    case CG_MEM_V1:
        stall__kf_open(&lv->limit, dir, "memory.limit_in_bytes");
        stall__kf_open(&lv->extra, dir, "memory.usage_in_bytes");
        break;
    default:
        stall__kf_open(&lv->limit, dir, "memory.max");
        stall__kf_open(&lv->extra, dir, "memory.current");
        break;
    }
}

/* A cgroup path that stays below the mount point: absolute, no "..". */
static int cg_path_usable(const char *path) {
    if (!path || path[0] != '/' || path[1] == '\0') return 0;
    for (const char *p = path; *p; p++)
        if (p[0] == '.' && p[1] == '.' && (p == path || p[-1] == '/') && (p[2] == '/' || p[2] == '\0')) return 0;
    return 1;
}

/* Opens the files of base/path and of every parent up to base itself. When
 * base/path does not exist (a container sees "/" or a path of the host while
 * its cgroup is mounted at base), base alone is used. */
static int cg_open_levels(cg_level_t *lv, const char *base, const char *path, int kind) {
    char dir[PATH_MAX];
    int n = 0;
    size_t blen = strlen(base);
    while (blen > 1 && base[blen - 1] == '/') blen--;
    if (cg_path_usable(path) && stall__lx_join(dir, sizeof dir, base, path) == 0 && path_is_dir(dir)) {
        size_t l = strlen(dir);
        while (l > blen && dir[l - 1] == '/') dir[--l] = '\0';
    } else {
        if (blen >= sizeof dir) return 0;
        memcpy(dir, base, blen);
        dir[blen] = '\0';
    }
    for (;;) {
        if (n == CG_MAX_LEVELS) break;
        cg_open_level(&lv[n], dir, kind);
        if (lv[n].limit.fd >= 0 || lv[n].period.fd >= 0 || lv[n].extra.fd >= 0) n++;
        size_t l = strlen(dir);
        if (l <= blen) break;
        while (l > blen && dir[l - 1] != '/') l--;
        while (l > blen && dir[l - 1] == '/') l--;
        if (l < blen) l = blen;
        dir[l] = '\0';
    }
    return n;
}

static void cg_close_levels(cg_level_t *lv, int n) {
    for (int i = 0; i < n; i++) {
        stall__kf_close(&lv[i].limit);
        stall__kf_close(&lv[i].period);
        stall__kf_close(&lv[i].extra);
    }
}

static void cg_open(stall_sys_collector_t *c) {
    char rel[64], base[PATH_MAX], probe[PATH_MAX];
    size_t len = 0;
    stall_cgroup_path_t cg;
    rel[0] = '\0';
    if (stall__lx_catu(rel, sizeof rel, &len, c->root_pid) < 0 || stall__lx_cat(rel, sizeof rel, &len, "/cgroup") < 0)
        return;
    long n = stall__lx_read_once(c->proc_root, rel, c->buf, c->cap);
    if (n < 0 || stall__parse_cgroup(c->buf, (size_t)n, &cg) < 0) return;
    c->cg_version = cg.version;
    if (cg.version == 2) {
        if (join3(base, sizeof base, c->sys_root, "fs/cgroup", NULL) < 0) return;
        /* hybrid hosts mount the unified hierarchy at fs/cgroup/unified */
        if (join3(probe, sizeof probe, base, "cgroup.controllers", NULL) == 0 && !path_exists(probe) &&
            join3(probe, sizeof probe, base, "unified/cgroup.controllers", NULL) == 0 && path_exists(probe))
            join3(base, sizeof base, c->sys_root, "fs/cgroup/unified", NULL);
        c->ncpu_lv = cg_open_levels(c->cpu_lv, base, cg.v2, CG_CPU_V2);
        c->nmem_lv = cg_open_levels(c->mem_lv, base, cg.v2, CG_MEM_V2);
        return;
    }
    static const char *const cpu_dirs[] = {"fs/cgroup/cpu,cpuacct", "fs/cgroup/cpu", "fs/cgroup/cpuacct,cpu"};
    for (size_t i = 0; i < sizeof cpu_dirs / sizeof cpu_dirs[0]; i++) {
        if (join3(base, sizeof base, c->sys_root, cpu_dirs[i], NULL) == 0 && path_is_dir(base)) {
            c->ncpu_lv = cg_open_levels(c->cpu_lv, base, cg.cpu, CG_CPU_V1);
            break;
        }
    }
    if (join3(base, sizeof base, c->sys_root, "fs/cgroup/memory", NULL) == 0 && path_is_dir(base))
        c->nmem_lv = cg_open_levels(c->mem_lv, base, cg.memory, CG_MEM_V1);
}

/* Reads a one-number file: 0 or -1. */
static int rd_u64(stall_sys_collector_t *c, stall_kfile_t *f, uint64_t *v) {
    long n = rd(c, f);
    return n < 0 ? -1 : stall__parse_u64_or_max(c->buf, (size_t)n, v);
}

static void cg_sample_cpu(stall_sys_collector_t *c, stall_sys_t *out, double dt_s) {
    int any = 0, chosen = -1;
    double best = 0;
    int64_t best_q = -1;
    uint64_t best_p = 0, first_p = 0;
    for (int i = 0; i < c->ncpu_lv; i++) {
        cg_level_t *lv = &c->cpu_lv[i];
        int64_t q;
        uint64_t p, v;
        if (c->cg_version == 2) {
            long n = rd(c, &lv->limit);
            if (n < 0 || stall__parse_cpu_max(c->buf, (size_t)n, &q, &p) < 0) continue;
        } else {
            if (rd_u64(c, &lv->limit, &v) < 0) continue;
            q = v > (uint64_t)INT64_MAX ? -1 : (int64_t)v;
            if (rd_u64(c, &lv->period, &p) < 0 || p == 0 || p == UINT64_MAX) continue;
        }
        if (!any) first_p = p;
        any = 1;
        if (q >= 0) {
            double cores = (double)q / (double)p;
            if (chosen < 0 || cores < best) {
                best = cores;
                chosen = i;
                best_q = q;
                best_p = p;
            }
        }
    }
    if (any) {
        out->valid |= STALL_SYS_CG_CPU;
        out->cg_cpu_quota_us = chosen >= 0 ? best_q : -1;
        out->cg_cpu_period_us = chosen >= 0 ? best_p : first_p;
    }

    /* throttling, where the quota is (or in the root's own cgroup) */
    for (int i = chosen >= 0 ? chosen : 0; i < c->ncpu_lv; i++) {
        long n = rd(c, &c->cpu_lv[i].extra);
        if (n < 0) {
            if (chosen >= 0) break;
            continue;
        }
        uint64_t thr, tns, per = 0;
        const char *tkey = c->cg_version == 2 ? "throttled_usec" : "throttled_time";
        if (stall__parse_keyed(c->buf, (size_t)n, "nr_throttled", &thr) < 0 ||
            stall__parse_keyed(c->buf, (size_t)n, tkey, &tns) < 0) {
            /* v2: no cpu controller in this cgroup; look further up */
            if (chosen >= 0) break;
            continue;
        }
        if (c->cg_version == 2) tns = tns > UINT64_MAX / 1000 ? UINT64_MAX : tns * 1000;
        int has_per = stall__parse_keyed(c->buf, (size_t)n, "nr_periods", &per) == 0;
        out->valid |= STALL_SYS_CG_THROTTLE;
        out->cg_nr_throttled = thr;
        out->cg_throttled_ns = tns;
        out->cg_throttled_share = 0;
        if (c->have_prev && (c->prev_valid & STALL_SYS_CG_THROTTLE) && c->prev_thr_level == i && dt_s > 0) {
            double share;
            if (has_per && c->prev_has_periods) {
                uint64_t dp = sub0(per, c->prev_nr_periods);
                share = dp ? (double)sub0(thr, c->prev_nr_throttled) / (double)dp : 0.0;
            } else {
                share = (double)sub0(tns, c->prev_throttled_ns) / (dt_s * 1e9);
            }
            out->cg_throttled_share = share > 1.0 ? 1.0 : share;
        }
        c->prev_thr_level = i;
        c->prev_has_periods = has_per;
        c->prev_nr_throttled = thr;
        c->prev_nr_periods = per;
        c->prev_throttled_ns = tns;
        break;
    }
}

static void cg_sample_mem(stall_sys_collector_t *c, stall_sys_t *out) {
    int any = 0, chosen = -1;
    uint64_t best = UINT64_MAX;
    for (int i = 0; i < c->nmem_lv; i++) {
        uint64_t v;
        if (rd_u64(c, &c->mem_lv[i].limit, &v) < 0) continue;
        if (c->cg_version != 2 && v >= V1_NO_LIMIT) v = UINT64_MAX;
        any = 1;
        if (v != UINT64_MAX && v < best) {
            best = v;
            chosen = i;
        }
    }
    if (!any) return;
    for (int i = chosen >= 0 ? chosen : 0; i < c->nmem_lv; i++) {
        uint64_t u;
        if (rd_u64(c, &c->mem_lv[i].extra, &u) == 0 && u != UINT64_MAX) {
            out->valid |= STALL_SYS_CG_MEM;
            out->cg_mem_limit_bytes = best;
            out->cg_mem_usage_bytes = u;
            return;
        }
        if (chosen >= 0) return;
    }
}

/* ------------------------------------------------------------- disks */

/* Whole, physical disks only: see the header comment. */
static int disk_is_whole(stall_sys_collector_t *c, const char *name) {
    char sysname[64], path[PATH_MAX];
    if (!strncmp(name, "loop", 4) || !strncmp(name, "ram", 3) || !strncmp(name, "zram", 4)) return 0;
    stall__strlcpy(sysname, name, sizeof sysname);
    for (char *p = sysname; *p; p++)
        if (*p == '/') *p = '!'; /* cciss/c0d0 is block/cciss!c0d0 */
    if (!sysname[0] || !strcmp(sysname, ".") || !strcmp(sysname, "..")) return 0;
    if (join3(path, sizeof path, c->sys_root, "block", sysname) < 0 || !path_exists(path)) return 0;
    size_t len = strlen(path);
    if (stall__lx_cat(path, sizeof path, &len, "/slaves") < 0) return 1;
    DIR *d = opendir(path);
    if (!d) return 1;
    int stacked = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            stacked = 1;
            break;
        }
    closedir(d);
    return !stacked;
}

static int grow_disks(stall_sys_collector_t *c, size_t ncap) {
    stall_disk_t *t = realloc(c->disk_tmp, ncap * sizeof *t);
    if (!t) return -1;
    c->disk_tmp = t;
    disk_ent_t *a = realloc(c->disks, ncap * sizeof *a);
    if (!a) return -1;
    c->disks = a;
    disk_ent_t *b = realloc(c->disks_prev, ncap * sizeof *b);
    if (!b) return -1;
    c->disks_prev = b;
    c->disks_cap = ncap;
    return 0;
}

static int grow_ifs(stall_sys_collector_t *c, size_t ncap) {
    stall_iface_t *a = realloc(c->ifs, ncap * sizeof *a);
    if (!a) return -1;
    c->ifs = a;
    stall_iface_t *b = realloc(c->ifs_prev, ncap * sizeof *b);
    if (!b) return -1;
    c->ifs_prev = b;
    c->ifs_cap = ncap;
    return 0;
}

/* Appends one device to this sample's per-device view (dropped when the
 * list cannot grow: the totals still count it). */
static void dev_push(stall_sys_collector_t *c, const char *name, uint32_t is_net, uint64_t rd, uint64_t wr,
                     int has_rates, double rd_s, double wr_s, double busy) {
    if (c->ndevs == c->devs_cap) {
        size_t ncap = c->devs_cap ? c->devs_cap * 2 : 16;
        if (ncap > 2 * LIST_MAX) return;
        stall_device_t *d = realloc(c->devs, ncap * sizeof *d);
        if (!d) return;
        c->devs = d;
        c->devs_cap = ncap;
    }
    stall_device_t *d = &c->devs[c->ndevs++];
    memset(d, 0, sizeof *d);
    stall__strlcpy(d->name, name, sizeof d->name);
    d->is_net = is_net;
    d->read_bytes = rd;
    d->write_bytes = wr;
    if (has_rates) {
        d->valid = STALL_DEV_RATES;
        d->read_bytes_per_s = rd_s;
        d->write_bytes_per_s = wr_s;
        d->busy = busy > 1.0 ? 1.0 : busy;
    }
}

size_t stall__sys_devices(const stall_sys_collector_t *c, stall_device_t *out, size_t cap) {
    if (!c) return 0;
    size_t n = c->ndevs < cap ? c->ndevs : cap;
    if (out && n) memcpy(out, c->devs, n * sizeof *out);
    return c->ndevs;
}

static void sample_disks(stall_sys_collector_t *c, stall_sys_t *out, double dt_s, int rates) {
    long len = rd(c, &c->diskstats);
    if (len < 0) return;
    int n;
    for (;;) {
        n = stall__parse_diskstats(c->buf, (size_t)len, c->disk_tmp, c->disks_cap);
        if (n < 0) return;
        if ((size_t)n < c->disks_cap || c->disks_cap >= LIST_MAX || grow_disks(c, c->disks_cap * 2) < 0) break;
    }
    uint64_t rs = 0, ws = 0, drs = 0, dws = 0;
    double busy = 0;
    int had_prev = rates && (c->prev_valid & STALL_SYS_DISK);
    for (int i = 0; i < n; i++) {
        disk_ent_t *e = &c->disks[i];
        e->d = c->disk_tmp[i];
        const disk_ent_t *p = NULL;
        if ((size_t)i < c->ndisks_prev && !strcmp(c->disks_prev[i].d.name, e->d.name))
            p = &c->disks_prev[i];
        else
            for (size_t j = 0; j < c->ndisks_prev; j++)
                if (!strcmp(c->disks_prev[j].d.name, e->d.name)) {
                    p = &c->disks_prev[j];
                    break;
                }
        e->whole = p ? p->whole : disk_is_whole(c, e->d.name);
        if (!e->whole) continue;
        rs += e->d.read_sectors;
        ws += e->d.write_sectors;
        if (had_prev && p) {
            uint64_t dr = sub0(e->d.read_sectors, p->d.read_sectors), dw = sub0(e->d.write_sectors, p->d.write_sectors);
            drs += dr;
            dws += dw;
            double b = (double)sub0(e->d.io_ticks_ms, p->d.io_ticks_ms) / (dt_s * 1000.0);
            if (b > busy) busy = b;
            dev_push(c, e->d.name, 0, e->d.read_sectors * 512, e->d.write_sectors * 512, 1,
                     (double)dr * 512.0 / dt_s, (double)dw * 512.0 / dt_s, b);
        } else {
            dev_push(c, e->d.name, 0, e->d.read_sectors * 512, e->d.write_sectors * 512, 0, 0, 0, 0);
        }
    }
    c->ndisks = (size_t)n;
    disk_ent_t *sw = c->disks_prev;
    c->disks_prev = c->disks;
    c->disks = sw;
    c->ndisks_prev = c->ndisks;
    out->valid |= STALL_SYS_DISK;
    out->disk_read_bytes = rs * 512;
    out->disk_write_bytes = ws * 512;
    if (had_prev) {
        out->disk_read_bytes_per_s = (double)drs * 512.0 / dt_s;
        out->disk_write_bytes_per_s = (double)dws * 512.0 / dt_s;
        out->disk_busy = busy > 1.0 ? 1.0 : busy;
    }
}

static void sample_net(stall_sys_collector_t *c, stall_sys_t *out, double dt_s, int rates) {
    long len = rd(c, &c->netdev);
    if (len < 0) return;
    int n;
    for (;;) {
        n = stall__parse_netdev(c->buf, (size_t)len, c->ifs, c->ifs_cap);
        if (n < 0) return;
        if ((size_t)n < c->ifs_cap || c->ifs_cap >= LIST_MAX || grow_ifs(c, c->ifs_cap * 2) < 0) break;
    }
    uint64_t rx = 0, tx = 0, drx = 0, dtx = 0;
    int had_prev = rates && (c->prev_valid & STALL_SYS_NET);
    for (int i = 0; i < n; i++) {
        const stall_iface_t *e = &c->ifs[i];
        if (!strcmp(e->name, "lo")) continue;
        rx += e->rx_bytes;
        tx += e->tx_bytes;
        const stall_iface_t *p = NULL;
        if (had_prev) {
            if ((size_t)i < c->nifs_prev && !strcmp(c->ifs_prev[i].name, e->name))
                p = &c->ifs_prev[i];
            else
                for (size_t j = 0; j < c->nifs_prev; j++)
                    if (!strcmp(c->ifs_prev[j].name, e->name)) {
                        p = &c->ifs_prev[j];
                        break;
                    }
        }
        if (p) {
            uint64_t r = sub0(e->rx_bytes, p->rx_bytes), t = sub0(e->tx_bytes, p->tx_bytes);
            drx += r;
            dtx += t;
            dev_push(c, e->name, 1, e->rx_bytes, e->tx_bytes, 1, (double)r / dt_s, (double)t / dt_s, 0);
        } else {
            dev_push(c, e->name, 1, e->rx_bytes, e->tx_bytes, 0, 0, 0, 0);
        }
    }
    stall_iface_t *sw = c->ifs_prev;
    c->ifs_prev = c->ifs;
    c->ifs = sw;
    c->nifs_prev = (size_t)n;
    out->valid |= STALL_SYS_NET;
    out->net_rx_bytes = rx;
    out->net_tx_bytes = tx;
    if (had_prev) {
        out->net_rx_bytes_per_s = (double)drx / dt_s;
        out->net_tx_bytes_per_s = (double)dtx / dt_s;
    }
}

/* ----------------------------------------------------------------- CPU */

static int grow_cores(stall_sys_collector_t *c, uint32_t n) {
    stall_cpu_times_t *a = realloc(c->cores_cur, n * sizeof *a);
    if (!a) return -1;
    c->cores_cur = a;
    stall_cpu_times_t *b = realloc(c->cores_base, n * sizeof *b);
    if (!b) return -1;
    c->cores_base = b;
    double *s = realloc(c->core_share, n * sizeof *s);
    if (!s) return -1;
    c->core_share = s;
    for (uint32_t i = c->cores_cap; i < n; i++) {
        memset(&b[i], 0, sizeof b[i]);
        s[i] = 0;
    }
    c->cores_cap = n;
    return 0;
}

static double busy_share(const stall_cpu_times_t *cur, const stall_cpu_times_t *base, double prev) {
    uint64_t d = sub0(ticks_sum(cur), ticks_sum(base));
    if (!d) return prev;
    uint64_t idle = sub0(cur->idle, base->idle) + sub0(cur->iowait, base->iowait);
    double s = 1.0 - (double)idle / (double)d;
    return s < 0 ? 0 : s > 1 ? 1 : s;
}

static void sample_cpu(stall_sys_collector_t *c, stall_sys_t *out, double dt_s, int rates) {
    long len = rd(c, &c->stat);
    if (len < 0) return;
    stall_cpu_times_t tot;
    uint32_t nc = 0, pr = 0, pb = 0;
    uint64_t ctxt = 0;
    if (stall__parse_stat(c->buf, (size_t)len, &tot, c->cores_cur, c->cores_cap, &nc, &ctxt, &pr, &pb) < 0) return;
    if (nc > c->cores_cap && grow_cores(c, nc) == 0)
        stall__parse_stat(c->buf, (size_t)len, &tot, c->cores_cur, c->cores_cap, &nc, &ctxt, &pr, &pb);
    if (nc > c->cores_cap) nc = c->cores_cap;
    int online = stall__parse_stat_online(c->buf, (size_t)len);

    out->valid |= STALL_SYS_CPU;
    out->ncpus = online > 0 ? (uint32_t)online : nc;
    out->ctx_switches = ctxt;
    out->procs_running = pr;
    out->procs_blocked = pb;
    if (rates && (c->prev_valid & STALL_SYS_CPU)) out->ctx_switches_per_s = (double)sub0(ctxt, c->prev_ctxt) / dt_s;
    c->prev_ctxt = ctxt;

    if (c->have_base) {
        const stall_cpu_times_t *b = &c->total_base;
        uint64_t du = sub0(tot.user, b->user) + sub0(tot.nice, b->nice);
        uint64_t ds = sub0(tot.system, b->system) + sub0(tot.irq, b->irq) + sub0(tot.softirq, b->softirq);
        uint64_t dw = sub0(tot.iowait, b->iowait), dst = sub0(tot.steal, b->steal), di = sub0(tot.idle, b->idle);
        uint64_t d = du + ds + dw + dst + di;
        if (d > 0) {
            c->sh_user = (double)du / (double)d;
            c->sh_system = (double)ds / (double)d;
            c->sh_iowait = (double)dw / (double)d;
            c->sh_steal = (double)dst / (double)d;
            c->sh_idle = (double)di / (double)d;
            for (uint32_t i = 0; i < nc; i++)
                c->core_share[i] = i < c->base_ncores
                                       ? busy_share(&c->cores_cur[i], &c->cores_base[i], c->have_shares ? c->core_share[i] : 0)
                                       : 0;
            c->share_ncores = nc;
            c->have_shares = 1;
        } else {
            return; /* no tick elapsed: keep the baseline, report the last shares */
        }
    }
    c->total_base = tot;
    if (nc) memcpy(c->cores_base, c->cores_cur, nc * sizeof *c->cores_base);
    c->base_ncores = nc;
    c->have_base = 1;
}

/* --------------------------------------------------------------- open */

stall_sys_collector_t *stall__sys_open(const char *proc_root, const char *sys_root, uint32_t root_pid) {
    stall_sys_collector_t *c = calloc(1, sizeof *c);
    if (!c) goto fail;
    stall_kfile_t *all[] = {&c->stat, &c->loadavg, &c->meminfo, &c->psi_cpu,
                            &c->psi_io, &c->psi_mem, &c->diskstats, &c->netdev};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) all[i]->fd = -1;
    stall__strlcpy(c->proc_root, proc_root && *proc_root ? proc_root : "/proc", sizeof c->proc_root);
    stall__strlcpy(c->sys_root, sys_root && *sys_root ? sys_root : "/sys", sizeof c->sys_root);
    c->root_pid = root_pid ? root_pid : (uint32_t)getpid();
    c->clk_tck = sysconf(_SC_CLK_TCK);
    if (c->clk_tck <= 0) c->clk_tck = 100;
    c->cap = SYS_BUF_INIT;
    c->buf = malloc(c->cap);
    if (!c->buf || grow_disks(c, 64) < 0 || grow_ifs(c, 16) < 0 || grow_cores(c, 64) < 0) goto fail;

    static const char *const rels[] = {"stat", "loadavg", "meminfo", "pressure/cpu",
                                       "pressure/io", "pressure/memory", "diskstats", "net/dev"};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) stall__kf_open(all[i], c->proc_root, rels[i]);

    /* CPUs present now: their cpufreq files */
    uint32_t nc = 0;
    long len = rd(c, &c->stat);
    if (len >= 0) {
        stall_cpu_times_t tot;
        stall__parse_stat(c->buf, (size_t)len, &tot, NULL, 0, &nc, NULL, NULL, NULL);
    }
    if (nc) {
        c->freq = calloc(nc, sizeof *c->freq);
        if (!c->freq) goto fail;
        for (uint32_t i = 0; i < nc; i++) {
            char rel[96];
            size_t l = 0;
            rel[0] = '\0';
            stall_kfile_t f = {-1};
            if (stall__lx_cat(rel, sizeof rel, &l, "devices/system/cpu/cpu") == 0 &&
                stall__lx_catu(rel, sizeof rel, &l, i) == 0 &&
                stall__lx_cat(rel, sizeof rel, &l, "/cpufreq/scaling_cur_freq") == 0 &&
                stall__kf_open(&f, c->sys_root, rel) == 0)
                c->freq[c->nfreq++] = f;
        }
    }
    if (!c->nfreq) {
        long n = stall__lx_read_once(c->proc_root, "cpuinfo", c->buf, c->cap);
        /* cpuinfo is long on big machines: read it with the growing buffer */
        stall_kfile_t f;
        if (n >= 0 && (size_t)n + 1 >= c->cap && stall__kf_open(&f, c->proc_root, "cpuinfo") == 0) {
            n = rd(c, &f);
            stall__kf_close(&f);
        }
        if (n >= 0 && stall__parse_cpuinfo_mhz(c->buf, (size_t)n, &c->cpuinfo_mhz) == 0) c->have_cpuinfo_mhz = 1;
    }

    /* CPU affinity of the root */
    {
        char rel[64];
        size_t l = 0;
        rel[0] = '\0';
        uint32_t cnt;
        if (stall__lx_catu(rel, sizeof rel, &l, c->root_pid) == 0 && stall__lx_cat(rel, sizeof rel, &l, "/status") == 0) {
            stall_kfile_t f;
            if (stall__kf_open(&f, c->proc_root, rel) == 0) {
                long n = rd(c, &f);
                stall__kf_close(&f);
                if (n >= 0 && stall__parse_cpus_allowed(c->buf, (size_t)n, &cnt) == 0 && cnt > 0) c->affinity = cnt;
            }
        }
    }

    cg_open(c);
    return c;
fail:
    stall__sys_close(c);
    stall__err("sys collector: out of memory");
    return NULL;
}

void stall__sys_close(stall_sys_collector_t *c) {
    if (!c) return;
    stall_kfile_t *all[] = {&c->stat, &c->loadavg, &c->meminfo, &c->psi_cpu,
                            &c->psi_io, &c->psi_mem, &c->diskstats, &c->netdev};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) stall__kf_close(all[i]);
    for (uint32_t i = 0; i < c->nfreq; i++) stall__kf_close(&c->freq[i]);
    cg_close_levels(c->cpu_lv, c->ncpu_lv);
    cg_close_levels(c->mem_lv, c->nmem_lv);
    free(c->freq);
    free(c->buf);
    free(c->cores_cur);
    free(c->cores_base);
    free(c->core_share);
    free(c->disk_tmp);
    free(c->disks);
    free(c->disks_prev);
    free(c->devs);
    free(c->ifs);
    free(c->ifs_prev);
    free(c);
}

/* ------------------------------------------------------------- sample */

static int sample_psi(stall_sys_collector_t *c, stall_kfile_t *f, stall_psi_t *p) {
    long n = rd(c, f);
    return n < 0 ? -1 : stall__parse_psi(c->buf, (size_t)n, p);
}

int stall__sys_sample(stall_sys_collector_t *c, uint64_t now_ns, stall_sys_t *out, double *cores,
                      uint32_t max_cores, uint32_t *ncores) {
    if (ncores) *ncores = 0;
    if (!c || !out) return stall__err("sys sample: NULL argument");
    memset(out, 0, sizeof *out);
    out->t_ns = now_ns;
    out->cg_cpu_quota_us = -1;
    out->cg_mem_limit_bytes = UINT64_MAX;
    out->cgroup_version = c->cg_version;
    c->ndevs = 0;

    int rates = c->have_prev && now_ns > c->prev_t_ns;
    double dt_s = rates ? (double)(now_ns - c->prev_t_ns) / 1e9 : 0.0;

    sample_cpu(c, out, dt_s, rates);

    long n = rd(c, &c->loadavg);
    if (n >= 0 && (out->valid & STALL_SYS_CPU) &&
        stall__parse_loadavg(c->buf, (size_t)n, &out->load1, &out->load5, &out->load15) == 0)
        out->valid |= STALL_SYS_LOAD;

    stall_meminfo_t mi;
    n = rd(c, &c->meminfo);
    if (n >= 0 && stall__parse_meminfo(c->buf, (size_t)n, &mi) == 0) {
        if ((mi.found & 3u) == 3u) { /* MemTotal, MemAvailable */
            out->valid |= STALL_SYS_MEM;
            out->mem_total_bytes = mi.total;
            out->mem_available_bytes = mi.available;
            out->mem_cached_bytes = mi.cached;
            out->mem_usable_available_bytes = mi.available;
        }
        if ((mi.found & 0x30u) == 0x30u) { /* SwapTotal, SwapFree */
            out->valid |= STALL_SYS_SWAP;
            out->swap_total_bytes = mi.swap_total;
            out->swap_free_bytes = mi.swap_free;
        }
    }

    stall_psi_t p;
    if (sample_psi(c, &c->psi_cpu, &p) == 0 && p.has_some) {
        out->valid |= STALL_SYS_PSI_CPU;
        out->psi_cpu_some_avg10 = p.some_avg10;
        out->psi_cpu_some_us = p.some_total_us;
        if (p.has_full) {
            out->valid |= STALL_SYS_PSI_CPU_FULL;
            out->psi_cpu_full_avg10 = p.full_avg10;
            out->psi_cpu_full_us = p.full_total_us;
        }
    }
    if (sample_psi(c, &c->psi_io, &p) == 0 && p.has_some && p.has_full) {
        out->valid |= STALL_SYS_PSI_IO;
        out->psi_io_some_avg10 = p.some_avg10;
        out->psi_io_full_avg10 = p.full_avg10;
        out->psi_io_some_us = p.some_total_us;
        out->psi_io_full_us = p.full_total_us;
    }
    if (sample_psi(c, &c->psi_mem, &p) == 0 && p.has_some && p.has_full) {
        out->valid |= STALL_SYS_PSI_MEM;
        out->psi_mem_some_avg10 = p.some_avg10;
        out->psi_mem_full_avg10 = p.full_avg10;
        out->psi_mem_some_us = p.some_total_us;
        out->psi_mem_full_us = p.full_total_us;
    }

    sample_disks(c, out, dt_s, rates);
    sample_net(c, out, dt_s, rates);

    if (c->nfreq) {
        double sum = 0;
        uint32_t k = 0;
        for (uint32_t i = 0; i < c->nfreq; i++) {
            uint64_t khz;
            if (rd_u64(c, &c->freq[i], &khz) == 0 && khz != UINT64_MAX) {
                sum += (double)khz / 1000.0;
                k++;
            }
        }
        if (k) {
            out->valid |= STALL_SYS_FREQ;
            out->cpu_freq_mhz = sum / k;
        }
    } else if (c->have_cpuinfo_mhz) {
        out->valid |= STALL_SYS_FREQ;
        out->cpu_freq_mhz = c->cpuinfo_mhz;
    }

    cg_sample_cpu(c, out, dt_s);
    cg_sample_mem(c, out);

    if (out->valid & STALL_SYS_CPU) {
        double u = out->ncpus;
        if (c->affinity && c->affinity < u) u = c->affinity;
        if ((out->valid & STALL_SYS_CG_CPU) && out->cg_cpu_quota_us >= 0 && out->cg_cpu_period_us) {
            double q = (double)out->cg_cpu_quota_us / (double)out->cg_cpu_period_us;
            if (q < u) u = q;
        }
        out->usable_cores = u;
    }
    if ((out->valid & STALL_SYS_MEM) && (out->valid & STALL_SYS_CG_MEM) && out->cg_mem_limit_bytes != UINT64_MAX) {
        uint64_t room = sub0(out->cg_mem_limit_bytes, out->cg_mem_usage_bytes);
        if (room < out->mem_usable_available_bytes) out->mem_usable_available_bytes = room;
    }

    /* the rates are there when a previous sample exists and, for the CPU
     * shares, at least one tick elapsed since the first baseline */
    if (rates && (!(out->valid & STALL_SYS_CPU) || c->have_shares)) {
        out->valid |= STALL_SYS_RATES;
        if (out->valid & STALL_SYS_CPU) {
            out->cpu_user = c->sh_user;
            out->cpu_system = c->sh_system;
            out->cpu_iowait = c->sh_iowait;
            out->cpu_steal = c->sh_steal;
            out->cpu_idle = c->sh_idle;
            if (cores && ncores) {
                uint32_t k = c->share_ncores < max_cores ? c->share_ncores : max_cores;
                memcpy(cores, c->core_share, k * sizeof *cores);
                *ncores = k;
            }
        }
    }

    c->have_prev = 1;
    c->prev_t_ns = now_ns;
    c->prev_valid = out->valid;
    return 0;
}
