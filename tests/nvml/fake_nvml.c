/*
 * fake_nvml.c - a stand-in for libnvidia-ml.so, built only for the tests of
 * src/collect/nvml/nvml.c and selected only through STALL_NVML_LIBRARY. It
 * exports the NVML functions stall calls, with NVML's signatures and its
 * documented behaviour (NVML_ERROR_UNINITIALIZED before init, the
 * INSUFFICIENT_SIZE protocol of the process queries with the needed count
 * written back, INSUFFICIENT_SIZE for short string buffers), and returns
 * values read from a script.
 *
 * The script is the text file named by the environment variable
 * FAKE_NVML_SCRIPT. It is read at every nvmlInit and by fake_nvml_reload().
 * One directive a line; '#' starts a comment; I is a device index:
 *
 *   init_fail CODE        nvmlInit returns CODE (e.g. 9, DRIVER_NOT_LOADED)
 *   count_fail CODE       nvmlDeviceGetCount returns CODE
 *   count N               number of devices (default 0; at most 128)
 *   dI.handle_fail CODE   nvmlDeviceGetHandleByIndex(I) returns CODE
 *   dI.name TEXT          the rest of the line
 *   dI.uuid TEXT
 *   dI.util GPU MEM       percent
 *   dI.mem TOTAL FREE USED  bytes
 *   dI.power MW
 *   dI.temp C
 *   dI.clock SM MEM       MHz
 *   dI.pcie TX RX         KB/s
 *   dI.proc PID MEM       one line per compute process, in order; MEM may be
 *                         "na" for NVML_VALUE_NOT_AVAILABLE
 *   dI.unsupported WHAT.. these return NVML_ERROR_NOT_SUPPORTED: name uuid
 *                         util mem power temp clock_sm clock_mem pcie_tx
 *                         pcie_rx procs
 *
 * A value never given also answers NVML_ERROR_NOT_SUPPORTED.
 *
 * Control functions for the tests (not NVML): fake_nvml_reload() re-reads
 * the script; fake_nvml_stat(key) returns a call counter: "init",
 * "init_v2", "shutdown", "live" (inits not yet shut down), "procs_v1",
 * "procs_v2", "procs_v3", "insufficient" (INSUFFICIENT_SIZE answers of the
 * process queries); fake_nvml_reset_stats() zeroes them (and "live").
 *
 * Variants, by macro (one shared library each):
 *   (none)            everything: versioned and unversioned names, the
 *                     three process queries, every optional function
 *   FAKE_MIN          only the required symbols (nvmlInit_v2, nvmlShutdown,
 *                     nvmlDeviceGetCount_v2, nvmlDeviceGetHandleByIndex_v2)
 *   FAKE_LEGACY       unversioned names only (nvmlInit, ...), the v1
 *                     process query (16-byte entries), the optional ones
 *   FAKE_NO_SHUTDOWN  FAKE_MIN without nvmlShutdown: a required one missing
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

#if defined(FAKE_NO_SHUTDOWN) && !defined(FAKE_MIN)
#define FAKE_MIN
#endif

typedef int nvmlReturn_t;

#define NVML_SUCCESS 0
#define NVML_ERROR_UNINITIALIZED 1
#define NVML_ERROR_INVALID_ARGUMENT 2
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_ERROR_INSUFFICIENT_SIZE 7
#define NVML_VALUE_NOT_AVAILABLE 0xFFFFFFFFFFFFFFFFull

#define MAX_DEV 128
#define MAX_PROCS 256

enum { U_NAME, U_UUID, U_UTIL, U_MEM, U_POWER, U_TEMP, U_CLOCK_SM, U_CLOCK_MEM, U_PCIE_TX, U_PCIE_RX,
       U_PROCS, U_COUNT_ };
static const char *const u_names[U_COUNT_] = {"name", "uuid", "util", "mem", "power", "temp",
                                               "clock_sm", "clock_mem", "pcie_tx", "pcie_rx", "procs"};

typedef struct fake_dev {
    int handle_fail;
    int has[U_COUNT_]; /* 1 value given, 0 not given, -1 unsupported */
    char name[256], uuid[256];
    unsigned util[2];
    unsigned long long mem[3];
    unsigned power, temp, clock[2], pcie[2];
    unsigned nprocs;
    unsigned pid[MAX_PROCS];
    unsigned long long pmem[MAX_PROCS];
} fake_dev;

static fake_dev g_dev[MAX_DEV];
static unsigned g_count;
static int g_init_fail, g_count_fail;
static int g_live;
static unsigned long g_stat_init, g_stat_init_v2, g_stat_shutdown, g_stat_procs[4], g_stat_insufficient;

static void set_value(fake_dev *d, int which, const char *s, char *text, size_t cap) {
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strcspn(s, "\r\n");
    if (n >= cap) n = cap - 1;
    memcpy(text, s, n);
    text[n] = '\0';
    d->has[which] = 1;
}

static int read_script(void) {
    memset(g_dev, 0, sizeof g_dev);
    g_count = 0;
    g_init_fail = g_count_fail = 0;
    const char *path = getenv("FAKE_NVML_SCRIPT");
    if (!path) return 0;
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        char key[64];
        int off = 0;
        if (sscanf(line, " %63s%n", key, &off) != 1) continue;
        const char *rest = line + off;
        if (strcmp(key, "init_fail") == 0) {
            g_init_fail = atoi(rest);
            continue;
        }
        if (strcmp(key, "count_fail") == 0) {
            g_count_fail = atoi(rest);
            continue;
        }
        if (strcmp(key, "count") == 0) {
            g_count = (unsigned)strtoul(rest, NULL, 10);
            if (g_count > MAX_DEV) g_count = MAX_DEV;
            continue;
        }
        unsigned i;
        char field[32];
        if (sscanf(key, "d%u.%31s", &i, field) != 2 || i >= MAX_DEV) continue;
        fake_dev *d = &g_dev[i];
        if (strcmp(field, "handle_fail") == 0) {
            d->handle_fail = atoi(rest);
        } else if (strcmp(field, "name") == 0) {
            set_value(d, U_NAME, rest, d->name, sizeof d->name);
        } else if (strcmp(field, "uuid") == 0) {
            set_value(d, U_UUID, rest, d->uuid, sizeof d->uuid);
        } else if (strcmp(field, "util") == 0) {
            if (sscanf(rest, "%u %u", &d->util[0], &d->util[1]) == 2) d->has[U_UTIL] = 1;
        } else if (strcmp(field, "mem") == 0) {
            if (sscanf(rest, "%llu %llu %llu", &d->mem[0], &d->mem[1], &d->mem[2]) == 3) d->has[U_MEM] = 1;
        } else if (strcmp(field, "power") == 0) {
            if (sscanf(rest, "%u", &d->power) == 1) d->has[U_POWER] = 1;
        } else if (strcmp(field, "temp") == 0) {
            if (sscanf(rest, "%u", &d->temp) == 1) d->has[U_TEMP] = 1;
        } else if (strcmp(field, "clock") == 0) {
            if (sscanf(rest, "%u %u", &d->clock[0], &d->clock[1]) == 2) d->has[U_CLOCK_SM] = d->has[U_CLOCK_MEM] = 1;
        } else if (strcmp(field, "pcie") == 0) {
            if (sscanf(rest, "%u %u", &d->pcie[0], &d->pcie[1]) == 2) d->has[U_PCIE_TX] = d->has[U_PCIE_RX] = 1;
        } else if (strcmp(field, "proc") == 0) {
            unsigned pid;
            char mem[32];
            if (d->nprocs < MAX_PROCS && sscanf(rest, "%u %31s", &pid, mem) == 2) {
                d->pid[d->nprocs] = pid;
                d->pmem[d->nprocs] = strcmp(mem, "na") == 0 ? NVML_VALUE_NOT_AVAILABLE : strtoull(mem, NULL, 10);
                d->nprocs++;
            }
            d->has[U_PROCS] = 1;
        } else if (strcmp(field, "unsupported") == 0) {
            char what[32];
            int n;
            while (sscanf(rest, " %31s%n", what, &n) == 1) {
                for (int u = 0; u < U_COUNT_; u++)
                    if (strcmp(what, u_names[u]) == 0) d->has[u] = -1;
                rest += n;
            }
        }
    }
    fclose(f);
    return 0;
}

/* ------------------------------------------------------------- control */

EXPORT int fake_nvml_reload(void) { return read_script(); }

EXPORT unsigned long fake_nvml_stat(const char *key) {
    if (strcmp(key, "init") == 0) return g_stat_init;
    if (strcmp(key, "init_v2") == 0) return g_stat_init_v2;
    if (strcmp(key, "shutdown") == 0) return g_stat_shutdown;
    if (strcmp(key, "live") == 0) return (unsigned long)g_live;
    if (strcmp(key, "procs_v1") == 0) return g_stat_procs[1];
    if (strcmp(key, "procs_v2") == 0) return g_stat_procs[2];
    if (strcmp(key, "procs_v3") == 0) return g_stat_procs[3];
    if (strcmp(key, "insufficient") == 0) return g_stat_insufficient;
    return (unsigned long)-1;
}

EXPORT void fake_nvml_reset_stats(void) {
    g_live = 0; /* a failed test may have left a collector open */
    g_stat_init = g_stat_init_v2 = g_stat_shutdown = g_stat_insufficient = 0;
    memset(g_stat_procs, 0, sizeof g_stat_procs);
}

/* ---------------------------------------------------------- NVML, shared */

typedef struct fake_dev *nvmlDevice_t;

static nvmlReturn_t do_init(void) {
    g_stat_init++;
    read_script();
    if (g_init_fail) return g_init_fail;
    g_live++;
    return NVML_SUCCESS;
}

static nvmlReturn_t do_count(unsigned int *count) {
    if (g_live <= 0) return NVML_ERROR_UNINITIALIZED;
    if (!count) return NVML_ERROR_INVALID_ARGUMENT;
    if (g_count_fail) return g_count_fail;
    *count = g_count;
    return NVML_SUCCESS;
}

static nvmlReturn_t do_handle(unsigned int index, nvmlDevice_t *dev) {
    if (g_live <= 0) return NVML_ERROR_UNINITIALIZED;
    if (!dev || index >= g_count) return NVML_ERROR_INVALID_ARGUMENT;
    if (g_dev[index].handle_fail) return g_dev[index].handle_fail;
    *dev = &g_dev[index];
    return NVML_SUCCESS;
}

/* Checks the library state and the handle; returns NVML_SUCCESS or why not. */
__attribute__((unused)) static nvmlReturn_t check(nvmlDevice_t d, const void *out, int what) {
    if (g_live <= 0) return NVML_ERROR_UNINITIALIZED;
    if (!d || d < g_dev || d >= g_dev + g_count || !out) return NVML_ERROR_INVALID_ARGUMENT;
    if (d->has[what] != 1) return NVML_ERROR_NOT_SUPPORTED;
    return NVML_SUCCESS;
}

#ifndef FAKE_LEGACY
EXPORT nvmlReturn_t nvmlInit_v2(void) {
    g_stat_init_v2++;
    return do_init();
}

#endif

#ifndef FAKE_NO_SHUTDOWN
EXPORT nvmlReturn_t nvmlShutdown(void) {
    g_stat_shutdown++;
    if (g_live <= 0) return NVML_ERROR_UNINITIALIZED;
    g_live--;
    return NVML_SUCCESS;
}
#endif

#ifndef FAKE_LEGACY
EXPORT nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) { return do_count(count); }

EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *dev) {
    return do_handle(index, dev);
}
#endif

#ifndef FAKE_MIN

typedef struct {
    unsigned int gpu, memory;
} nvmlUtilization_t;

typedef struct {
    unsigned long long total, free, used;
} nvmlMemory_t;

typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
} nvmlProcessInfo_v1_t;

typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId, computeInstanceId;
} nvmlProcessInfo_v2_t;

static nvmlReturn_t copy_string(nvmlDevice_t d, int what, const char *s, char *buf, unsigned int len) {
    nvmlReturn_t r = check(d, buf, what);
    if (r != NVML_SUCCESS) return r;
    if (strlen(s) + 1 > len) return NVML_ERROR_INSUFFICIENT_SIZE;
    memcpy(buf, s, strlen(s) + 1);
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char *name, unsigned int len) {
    return copy_string(d, U_NAME, d ? d->name : "", name, len);
}

EXPORT nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char *uuid, unsigned int len) {
    return copy_string(d, U_UUID, d ? d->uuid : "", uuid, len);
}

EXPORT nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t d, nvmlUtilization_t *u) {
    nvmlReturn_t r = check(d, u, U_UTIL);
    if (r == NVML_SUCCESS) {
        u->gpu = d->util[0];
        u->memory = d->util[1];
    }
    return r;
}

EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t *m) {
    nvmlReturn_t r = check(d, m, U_MEM);
    if (r == NVML_SUCCESS) {
        m->total = d->mem[0];
        m->free = d->mem[1];
        m->used = d->mem[2];
    }
    return r;
}

EXPORT nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t d, unsigned int *mw) {
    nvmlReturn_t r = check(d, mw, U_POWER);
    if (r == NVML_SUCCESS) *mw = d->power;
    return r;
}

EXPORT nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t d, int sensor, unsigned int *t) {
    if (sensor != 0) return NVML_ERROR_INVALID_ARGUMENT; /* NVML_TEMPERATURE_GPU */
    nvmlReturn_t r = check(d, t, U_TEMP);
    if (r == NVML_SUCCESS) *t = d->temp;
    return r;
}

EXPORT nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t d, int type, unsigned int *mhz) {
    /* NVML_CLOCK_GRAPHICS 0, SM 1, MEM 2, VIDEO 3: only SM and MEM scripted */
    if (type != 1 && type != 2) return NVML_ERROR_NOT_SUPPORTED;
    nvmlReturn_t r = check(d, mhz, type == 1 ? U_CLOCK_SM : U_CLOCK_MEM);
    if (r == NVML_SUCCESS) *mhz = d->clock[type - 1];
    return r;
}

EXPORT nvmlReturn_t nvmlDeviceGetPcieThroughput(nvmlDevice_t d, int counter, unsigned int *kbs) {
    /* NVML_PCIE_UTIL_TX_BYTES 0, RX_BYTES 1 */
    if (counter != 0 && counter != 1) return NVML_ERROR_INVALID_ARGUMENT;
    nvmlReturn_t r = check(d, kbs, counter == 0 ? U_PCIE_TX : U_PCIE_RX);
    if (r == NVML_SUCCESS) *kbs = d->pcie[counter];
    return r;
}

EXPORT const char *nvmlErrorString(nvmlReturn_t r) {
    switch (r) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
    default: return "Unknown Error";
    }
}

/* The process query protocol: *count in = room in infos (infos may be NULL
 * when it is 0); too little room: INSUFFICIENT_SIZE with the needed count
 * written back and infos untouched; else the entries and their count. */
static nvmlReturn_t procs(nvmlDevice_t d, unsigned int *count, void *infos, int version) {
    g_stat_procs[version]++;
    nvmlReturn_t r = check(d, count, U_PROCS);
    if (r != NVML_SUCCESS) return r;
    if (*count < d->nprocs) {
        *count = d->nprocs;
        g_stat_insufficient++;
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    if (d->nprocs && !infos) return NVML_ERROR_INVALID_ARGUMENT;
    for (unsigned i = 0; i < d->nprocs; i++) {
        if (version == 1) {
            nvmlProcessInfo_v1_t *p = (nvmlProcessInfo_v1_t *)infos + i;
            p->pid = d->pid[i];
            p->usedGpuMemory = d->pmem[i];
        } else {
            nvmlProcessInfo_v2_t *p = (nvmlProcessInfo_v2_t *)infos + i;
            p->pid = d->pid[i];
            p->usedGpuMemory = d->pmem[i];
            p->gpuInstanceId = 0xFFFFFFFFu;
            p->computeInstanceId = 0xFFFFFFFFu;
        }
    }
    *count = d->nprocs;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses(nvmlDevice_t d, unsigned int *count,
                                                         nvmlProcessInfo_v1_t *infos) {
    return procs(d, count, infos, 1);
}

#ifndef FAKE_LEGACY
EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v2(nvmlDevice_t d, unsigned int *count,
                                                            nvmlProcessInfo_v2_t *infos) {
    return procs(d, count, infos, 2);
}

EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t d, unsigned int *count,
                                                            nvmlProcessInfo_v2_t *infos) {
    return procs(d, count, infos, 3);
}
#endif

/* the unversioned entry points of old drivers */
EXPORT nvmlReturn_t nvmlInit(void) { return do_init(); }

EXPORT nvmlReturn_t nvmlDeviceGetCount(unsigned int *count) { return do_count(count); }

EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex(unsigned int index, nvmlDevice_t *dev) {
    return do_handle(index, dev);
}

#endif /* !FAKE_MIN */
