/*
 * nvml.c - the GPU collector: NVIDIA's management library (NVML), loaded
 * with dlopen at run time so that stall neither links against it nor needs
 * its header. A machine without the library, a driver that fails to
 * initialise, or no device all mean "no GPU" (NULL), never an error.
 *
 * Symbols are split in two: the required ones (init, shutdown, device count,
 * handle by index) without which the library is unusable, and the optional
 * ones, each of which may be missing from an old driver or return
 * NVML_ERROR_NOT_SUPPORTED on a given board: their fields are then unknown
 * (their STALL_GPU_* bit stays clear), never 0.
 *
 * The few NVML types used are declared here from NVML's documented ABI
 * (nvml.h): return codes, opaque device handles, and the layouts of
 * nvmlUtilization_t, nvmlMemory_t and nvmlProcessInfo_t (v1, and v2 which
 * the _v2 and _v3 process queries fill).
 *
 * Sampling allocates nothing once the process buffer is large enough: the
 * buffer lives in the collector and only grows (bounded) when NVML says
 * NVML_ERROR_INSUFFICIENT_SIZE.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "collector.h"
#include "internal.h"

/* ------------------------------------------------------------ NVML's ABI */

typedef int nvml_ret_t; /* nvmlReturn_t: an enum, passed as int */
typedef struct nvml_device_st *nvml_device_t; /* nvmlDevice_t: opaque */

#define NVML_SUCCESS 0
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_ERROR_INSUFFICIENT_SIZE 7

#define NVML_TEMPERATURE_GPU 0 /* nvmlTemperatureSensors_t */
#define NVML_CLOCK_SM 1        /* nvmlClockType_t */
#define NVML_CLOCK_MEM 2
#define NVML_PCIE_UTIL_TX_BYTES 0 /* nvmlPcieUtilCounter_t; values in KB/s */
#define NVML_PCIE_UTIL_RX_BYTES 1

/* usedGpuMemory when the driver cannot tell (WDDM, MIG without privilege) */
#define NVML_VALUE_NOT_AVAILABLE 0xFFFFFFFFFFFFFFFFull

#define NVML_DEVICE_NAME_V2_BUFFER_SIZE 96
#define NVML_DEVICE_UUID_V2_BUFFER_SIZE 96

typedef struct {
    unsigned int gpu;    /* % of time a kernel ran, over the last period */
    unsigned int memory; /* % of time device memory was read or written */
} nvml_utilization_t;

typedef struct {
    unsigned long long total, free, used; /* bytes */
} nvml_memory_t;

/* nvmlProcessInfo_v1_t: nvmlDeviceGetComputeRunningProcesses (unversioned) */
typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
} nvml_process_v1_t;

/* nvmlProcessInfo_v2_t (= nvmlProcessInfo_t of current headers): filled by
 * nvmlDeviceGetComputeRunningProcesses_v2 and _v3 */
typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId;
    unsigned int computeInstanceId;
} nvml_process_v2_t;

typedef nvml_ret_t (*nvml_void_fn)(void);
typedef nvml_ret_t (*nvml_count_fn)(unsigned int *count);
typedef nvml_ret_t (*nvml_handle_fn)(unsigned int index, nvml_device_t *dev);
typedef nvml_ret_t (*nvml_str_fn)(nvml_device_t dev, char *buf, unsigned int len);
typedef nvml_ret_t (*nvml_util_fn)(nvml_device_t dev, nvml_utilization_t *out);
typedef nvml_ret_t (*nvml_mem_fn)(nvml_device_t dev, nvml_memory_t *out);
typedef nvml_ret_t (*nvml_uint_fn)(nvml_device_t dev, unsigned int *out);
typedef nvml_ret_t (*nvml_uint_of_fn)(nvml_device_t dev, int which, unsigned int *out);
typedef nvml_ret_t (*nvml_procs_fn)(nvml_device_t dev, unsigned int *count, void *infos);
typedef const char *(*nvml_errstr_fn)(nvml_ret_t ret);

/* ------------------------------------------------------------- the collector */

#define NVML_MAX_DEVICES 64
#define NVML_PROCS_INITIAL 32   /* entries of the process buffer made at open */
#define NVML_PROCS_MAX 16384    /* never grow the process buffer beyond this */
#define NVML_PROCS_TRIES 3      /* INSUFFICIENT_SIZE retries per query */

typedef struct nvml_dev_t {
    nvml_device_t handle;
    uint32_t index; /* NVML's index */
    char name[64];  /* "" when unknown */
    char uuid[80];
} nvml_dev_t;

_Static_assert(sizeof(((nvml_dev_t *)0)->name) == sizeof(((stall_gpu_t *)0)->name), "name size");
_Static_assert(sizeof(((nvml_dev_t *)0)->uuid) == sizeof(((stall_gpu_t *)0)->uuid), "uuid size");

struct stall_nvml_t {
    void *lib;
    /* required */
    nvml_void_fn init;
    nvml_void_fn shutdown;
    nvml_count_fn get_count;
    nvml_handle_fn get_handle;
    /* optional: NULL when the library lacks them */
    nvml_str_fn get_name;
    nvml_str_fn get_uuid;
    nvml_util_fn get_util;
    nvml_mem_fn get_mem;
    nvml_uint_fn get_power;
    nvml_uint_of_fn get_temp;
    nvml_uint_of_fn get_clock;
    nvml_uint_of_fn get_pcie;
    nvml_procs_fn get_procs;
    size_t proc_size; /* sizeof the entry get_procs fills (v1 or v2 layout) */
    nvml_errstr_fn error_string;

    uint32_t ndev;
    nvml_dev_t dev[NVML_MAX_DEVICES];

    unsigned char *procs; /* process buffer: procs_cap entries of proc_size */
    unsigned int procs_cap;
};

/* The library to try, in order; NULL ends the list. STALL_NVML_LIBRARY (a
 * test's fake) replaces the list rather than coming first, so that a test
 * never reaches a real driver. */
static const char *const nvml_sonames[] = {"libnvidia-ml.so.1", "libnvidia-ml.so", NULL};

/* Returns the first of the names that the library exports, or NULL. */
static void *find_sym(void *lib, const char *name, const char *fallback) {
    void *p = dlsym(lib, name);
    if (!p && fallback) p = dlsym(lib, fallback);
    return p;
}

/* Logs (debug level, only when a sink is set) why NVML is not used. */
static void log_unavailable(const char *reason, const char *detail) {
    stall_field_t f[2] = {
        {.key = "reason", .type = STALL_FIELD_STR, .v.s = reason},
        {.key = "detail", .type = STALL_FIELD_STR, .v.s = detail ? detail : ""},
    };
    stall_log(STALL_LOG_DEBUG, "nvml_unavailable", f, 2);
}

static const char *nvml_err(const stall_nvml_t *n, nvml_ret_t r) {
    const char *s = n->error_string ? n->error_string(r) : NULL;
    return s ? s : "NVML error";
}

/* Loads the library and its symbols into n. Returns 0, or -1 (n->lib then
 * NULL) when no library loads or a required symbol is missing. */
static int load_library(stall_nvml_t *n) {
    const char *override = getenv("STALL_NVML_LIBRARY");
    const char *one[2] = {override, NULL};
    const char *const *names = (override && *override) ? one : nvml_sonames;

    for (size_t i = 0; names[i] && !n->lib; i++) n->lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!n->lib) {
        const char *e = dlerror();
        log_unavailable("no library", e);
        return -1;
    }

    n->init = (nvml_void_fn)find_sym(n->lib, "nvmlInit_v2", "nvmlInit");
    n->shutdown = (nvml_void_fn)find_sym(n->lib, "nvmlShutdown", NULL);
    n->get_count = (nvml_count_fn)find_sym(n->lib, "nvmlDeviceGetCount_v2", "nvmlDeviceGetCount");
    n->get_handle =
        (nvml_handle_fn)find_sym(n->lib, "nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetHandleByIndex");
    if (!n->init || !n->shutdown || !n->get_count || !n->get_handle) {
        log_unavailable("required symbol missing", "nvmlInit/nvmlShutdown/nvmlDeviceGetCount/"
                                                   "nvmlDeviceGetHandleByIndex");
        dlclose(n->lib);
        n->lib = NULL;
        return -1;
    }

    n->get_name = (nvml_str_fn)find_sym(n->lib, "nvmlDeviceGetName", NULL);
    n->get_uuid = (nvml_str_fn)find_sym(n->lib, "nvmlDeviceGetUUID", NULL);
    n->get_util = (nvml_util_fn)find_sym(n->lib, "nvmlDeviceGetUtilizationRates", NULL);
    n->get_mem = (nvml_mem_fn)find_sym(n->lib, "nvmlDeviceGetMemoryInfo", NULL);
    n->get_power = (nvml_uint_fn)find_sym(n->lib, "nvmlDeviceGetPowerUsage", NULL);
    n->get_temp = (nvml_uint_of_fn)find_sym(n->lib, "nvmlDeviceGetTemperature", NULL);
    n->get_clock = (nvml_uint_of_fn)find_sym(n->lib, "nvmlDeviceGetClockInfo", NULL);
    n->get_pcie = (nvml_uint_of_fn)find_sym(n->lib, "nvmlDeviceGetPcieThroughput", NULL);
    n->error_string = (nvml_errstr_fn)find_sym(n->lib, "nvmlErrorString", NULL);

    /* newest process query first: _v3 and _v2 fill the v2 layout, the
     * unversioned symbol the v1 layout */
    n->proc_size = sizeof(nvml_process_v2_t);
    n->get_procs = (nvml_procs_fn)find_sym(n->lib, "nvmlDeviceGetComputeRunningProcesses_v3",
                                           "nvmlDeviceGetComputeRunningProcesses_v2");
    if (!n->get_procs) {
        n->proc_size = sizeof(nvml_process_v1_t);
        n->get_procs = (nvml_procs_fn)find_sym(n->lib, "nvmlDeviceGetComputeRunningProcesses", NULL);
    }
    return 0;
}

/* Reads a string property (name, UUID) into dst (cap bytes), "" if unknown. */
static void read_string(nvml_str_fn fn, nvml_device_t h, char *dst, size_t cap) {
    char buf[NVML_DEVICE_NAME_V2_BUFFER_SIZE > NVML_DEVICE_UUID_V2_BUFFER_SIZE
                 ? NVML_DEVICE_NAME_V2_BUFFER_SIZE
                 : NVML_DEVICE_UUID_V2_BUFFER_SIZE];
    dst[0] = '\0';
    if (!fn) return;
    buf[0] = '\0';
    if (fn(h, buf, (unsigned int)sizeof buf) != NVML_SUCCESS) return;
    buf[sizeof buf - 1] = '\0';
    stall__strlcpy(dst, buf, cap);
}

stall_nvml_t *stall__nvml_open(void) {
    stall_nvml_t *n = calloc(1, sizeof *n);
    if (!n) {
        stall__err("stall__nvml_open: out of memory");
        return NULL;
    }
    int inited = 0;
    if (load_library(n) < 0) goto fail;

    nvml_ret_t r = n->init();
    if (r != NVML_SUCCESS) {
        log_unavailable("nvmlInit failed", nvml_err(n, r));
        goto fail;
    }
    inited = 1;

    unsigned int count = 0;
    r = n->get_count(&count);
    if (r != NVML_SUCCESS || count == 0) {
        log_unavailable(r != NVML_SUCCESS ? "nvmlDeviceGetCount failed" : "no device",
                        r != NVML_SUCCESS ? nvml_err(n, r) : "");
        goto fail;
    }
    if (count > NVML_MAX_DEVICES) count = NVML_MAX_DEVICES;

    for (unsigned int i = 0; i < count; i++) {
        nvml_device_t h = NULL;
        if (n->get_handle(i, &h) != NVML_SUCCESS) continue; /* e.g. no permission on that one */
        nvml_dev_t *d = &n->dev[n->ndev++];
        d->handle = h;
        d->index = i;
        read_string(n->get_name, h, d->name, sizeof d->name);
        read_string(n->get_uuid, h, d->uuid, sizeof d->uuid);
    }
    if (n->ndev == 0) {
        log_unavailable("no device handle", "");
        goto fail;
    }

    if (n->get_procs) {
        n->procs = calloc(NVML_PROCS_INITIAL, n->proc_size);
        if (!n->procs) {
            stall__err("stall__nvml_open: out of memory");
            goto fail;
        }
        n->procs_cap = NVML_PROCS_INITIAL;
    }
    return n;

fail:
    if (inited) n->shutdown();
    if (n->lib) dlclose(n->lib);
    free(n->procs);
    free(n);
    return NULL;
}

/* Queries the compute processes of one device into n->procs, growing the
 * buffer when NVML asks for more room. Returns the number of entries, or -1
 * when the query failed (the device's tree memory is then unknown). */
static long query_procs(stall_nvml_t *n, nvml_device_t h) {
    for (int attempt = 0; attempt < NVML_PROCS_TRIES; attempt++) {
        unsigned int count = n->procs_cap;
        nvml_ret_t r = n->get_procs(h, &count, n->procs);
        if (r == NVML_SUCCESS) return count <= n->procs_cap ? (long)count : -1;
        if (r != NVML_ERROR_INSUFFICIENT_SIZE) return -1;
        /* count now holds what NVML needs; leave room for processes that
         * start before the next call */
        if (count <= n->procs_cap) count = n->procs_cap + 1;
        size_t want = (size_t)count + count / 4 + 8;
        if (want > NVML_PROCS_MAX) want = NVML_PROCS_MAX;
        if (want <= n->procs_cap) return -1; /* at the bound: give up */
        unsigned char *p = realloc(n->procs, want * n->proc_size);
        if (!p) return -1;
        n->procs = p;
        n->procs_cap = (unsigned int)want;
    }
    return -1;
}

/* Reads entry i of the process buffer, whatever its layout. */
static void proc_entry(const stall_nvml_t *n, size_t i, uint32_t *pid, uint64_t *mem) {
    if (n->proc_size == sizeof(nvml_process_v1_t)) {
        const nvml_process_v1_t *p = (const nvml_process_v1_t *)(const void *)n->procs + i;
        *pid = p->pid;
        *mem = p->usedGpuMemory;
    } else {
        const nvml_process_v2_t *p = (const nvml_process_v2_t *)(const void *)n->procs + i;
        *pid = p->pid;
        *mem = p->usedGpuMemory;
    }
}

/* Sums the memory of the tree's processes on one device into *tree and
 * per_pid_mem. Returns 1 when the sum is known: the query succeeded and
 * every tree process it listed had a known usage. */
static int sample_tree(stall_nvml_t *n, nvml_device_t h, const uint32_t *pids, size_t npids,
                       uint64_t *per_pid_mem, uint8_t *per_pid_known, uint64_t *tree) {
    long np = n->get_procs ? query_procs(n, h) : -1;
    if (np < 0) {
        if (per_pid_known)
            for (size_t j = 0; j < npids; j++) per_pid_known[j] = 0;
        return 0;
    }
    int known = 1;
    uint64_t sum = 0;
    for (long k = 0; k < np; k++) {
        uint32_t pid;
        uint64_t mem;
        proc_entry(n, (size_t)k, &pid, &mem);
        for (size_t j = 0; j < npids; j++) {
            if (pids[j] != pid) continue;
            if (mem == NVML_VALUE_NOT_AVAILABLE) {
                known = 0;
                if (per_pid_known) per_pid_known[j] = 0;
            } else {
                sum += mem;
                if (per_pid_mem) per_pid_mem[j] += mem;
            }
            break; /* a pid appears once in the tree */
        }
    }
    *tree = sum;
    return known;
}

size_t stall__nvml_sample(stall_nvml_t *n, stall_gpu_t *out, size_t cap, const uint32_t *pids, size_t npids,
                          uint64_t *per_pid_mem, uint8_t *per_pid_known) {
    if (!n) return 0;
    if (!pids) npids = 0;
    for (uint32_t i = 0; i < n->ndev; i++) {
        const nvml_dev_t *d = &n->dev[i];
        nvml_device_t h = d->handle;
        uint64_t tree = 0;
        int tree_known = sample_tree(n, h, pids, npids, per_pid_mem, per_pid_known, &tree);
        if (!out || i >= cap) continue; /* per_pid_mem still counts every device */

        stall_gpu_t *g = &out[i];
        memset(g, 0, sizeof *g);
        g->index = d->index;
        memcpy(g->name, d->name, sizeof g->name);
        memcpy(g->uuid, d->uuid, sizeof g->uuid);

        nvml_utilization_t u;
        if (n->get_util && n->get_util(h, &u) == NVML_SUCCESS) {
            g->util_sm_pct = u.gpu;
            g->util_mem_pct = u.memory;
            g->valid |= STALL_GPU_UTIL;
        }
        nvml_memory_t m;
        if (n->get_mem && n->get_mem(h, &m) == NVML_SUCCESS) {
            g->mem_used_bytes = m.used;
            g->mem_total_bytes = m.total;
            g->valid |= STALL_GPU_MEM;
        }
        unsigned int v, w;
        if (n->get_power && n->get_power(h, &v) == NVML_SUCCESS) {
            g->power_mw = v;
            g->valid |= STALL_GPU_POWER;
        }
        if (n->get_temp && n->get_temp(h, NVML_TEMPERATURE_GPU, &v) == NVML_SUCCESS) {
            g->temp_c = v;
            g->valid |= STALL_GPU_TEMP;
        }
        /* one bit covers both clocks: set only when both are known */
        if (n->get_clock && n->get_clock(h, NVML_CLOCK_SM, &v) == NVML_SUCCESS &&
            n->get_clock(h, NVML_CLOCK_MEM, &w) == NVML_SUCCESS) {
            g->clock_sm_mhz = v;
            g->clock_mem_mhz = w;
            g->valid |= STALL_GPU_CLOCK;
        }
        /* KB/s (1 KB = 1024 bytes, sampled by the driver over 20 ms) */
        if (n->get_pcie && n->get_pcie(h, NVML_PCIE_UTIL_RX_BYTES, &v) == NVML_SUCCESS &&
            n->get_pcie(h, NVML_PCIE_UTIL_TX_BYTES, &w) == NVML_SUCCESS) {
            g->pcie_rx_bytes_per_s = (double)v * 1024.0;
            g->pcie_tx_bytes_per_s = (double)w * 1024.0;
            g->valid |= STALL_GPU_PCIE;
        }
        if (tree_known) {
            g->tree_mem_bytes = tree;
            g->valid |= STALL_GPU_TREE;
        }
    }
    return n->ndev;
}

void stall__nvml_close(stall_nvml_t *n) {
    if (!n) return;
    n->shutdown();
    dlclose(n->lib);
    free(n->procs);
    free(n);
}
