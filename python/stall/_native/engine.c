/*
 * engine.c - stall.Engine, the engine of library mode (stall_engine_*) as a
 * Python type: a thread of this process that drains a session directory into
 * an aggregator and runs a sampler, and the read side of both (operation
 * statistics per session, latest samples, time series), plus metric_names().
 *
 * Sampled values come out as dicts keyed by the C field names, built from
 * tables (field, offset, type, validity bits): a field whose validity bits
 * are not all set is None, never 0. The engine thread never touches Python;
 * calls that may wait for it (start, stop, drain, sample_now, close) release
 * the GIL, and a busy count keeps close() from freeing the engine while
 * another Python thread is inside one of them.
 */
#include "native.h"

#include <math.h>
#include <stddef.h>
#include <time.h>

#include "internal.h"
#include "report.h"

typedef struct EngineObject {
    PyObject_HEAD
    stall_engine_t *e; /* NULL once closed */
    PyObject *dir;     /* str */
    int busy;          /* calls in progress with the GIL released */
    int observer;      /* made with observer=True */
    int pins;          /* monitors and metrics servers reading it (nat_engine_pin) */
} EngineObject;

/* ------------------------------------------------------ field tables */

enum { F_U32, F_U64, F_I64, F_DBL, F_INT, F_CHAR, F_STR, F_CGVER };

typedef struct field_t {
    const char *name;
    size_t off;
    int type;
    uint64_t need; /* validity bits that must all be set; 0: always known */
} field_t;

#define SYS(f, t, need) {#f, offsetof(stall_sys_t, f), t, need}
static const field_t sys_fields[] = {
    SYS(t_ns, F_U64, 0),
    SYS(cpu_user, F_DBL, STALL_SYS_CPU | STALL_SYS_RATES),
    SYS(cpu_system, F_DBL, STALL_SYS_CPU | STALL_SYS_RATES),
    SYS(cpu_iowait, F_DBL, STALL_SYS_CPU | STALL_SYS_RATES),
    SYS(cpu_steal, F_DBL, STALL_SYS_CPU | STALL_SYS_RATES),
    SYS(cpu_idle, F_DBL, STALL_SYS_CPU | STALL_SYS_RATES),
    SYS(ncpus, F_U32, STALL_SYS_CPU),
    SYS(usable_cores, F_DBL, STALL_SYS_CPU),
    SYS(ctx_switches, F_U64, STALL_SYS_CPU),
    SYS(ctx_switches_per_s, F_DBL, STALL_SYS_CPU | STALL_SYS_RATES),
    SYS(load1, F_DBL, STALL_SYS_LOAD),
    SYS(load5, F_DBL, STALL_SYS_LOAD),
    SYS(load15, F_DBL, STALL_SYS_LOAD),
    SYS(procs_running, F_U32, STALL_SYS_LOAD),
    SYS(procs_blocked, F_U32, STALL_SYS_LOAD),
    SYS(mem_total_bytes, F_U64, STALL_SYS_MEM),
    SYS(mem_available_bytes, F_U64, STALL_SYS_MEM),
    SYS(mem_cached_bytes, F_U64, STALL_SYS_MEM),
    SYS(swap_total_bytes, F_U64, STALL_SYS_SWAP),
    SYS(swap_free_bytes, F_U64, STALL_SYS_SWAP),
    SYS(mem_usable_available_bytes, F_U64, STALL_SYS_MEM),
    SYS(psi_cpu_some_avg10, F_DBL, STALL_SYS_PSI_CPU),
    SYS(psi_cpu_full_avg10, F_DBL, STALL_SYS_PSI_CPU_FULL),
    SYS(psi_io_some_avg10, F_DBL, STALL_SYS_PSI_IO),
    SYS(psi_io_full_avg10, F_DBL, STALL_SYS_PSI_IO),
    SYS(psi_mem_some_avg10, F_DBL, STALL_SYS_PSI_MEM),
    SYS(psi_mem_full_avg10, F_DBL, STALL_SYS_PSI_MEM),
    SYS(psi_cpu_some_us, F_U64, STALL_SYS_PSI_CPU),
    SYS(psi_cpu_full_us, F_U64, STALL_SYS_PSI_CPU_FULL),
    SYS(psi_io_some_us, F_U64, STALL_SYS_PSI_IO),
    SYS(psi_io_full_us, F_U64, STALL_SYS_PSI_IO),
    SYS(psi_mem_some_us, F_U64, STALL_SYS_PSI_MEM),
    SYS(psi_mem_full_us, F_U64, STALL_SYS_PSI_MEM),
    SYS(disk_read_bytes, F_U64, STALL_SYS_DISK),
    SYS(disk_write_bytes, F_U64, STALL_SYS_DISK),
    SYS(disk_read_bytes_per_s, F_DBL, STALL_SYS_DISK | STALL_SYS_RATES),
    SYS(disk_write_bytes_per_s, F_DBL, STALL_SYS_DISK | STALL_SYS_RATES),
    SYS(disk_busy, F_DBL, STALL_SYS_DISK | STALL_SYS_RATES),
    SYS(net_rx_bytes, F_U64, STALL_SYS_NET),
    SYS(net_tx_bytes, F_U64, STALL_SYS_NET),
    SYS(net_rx_bytes_per_s, F_DBL, STALL_SYS_NET | STALL_SYS_RATES),
    SYS(net_tx_bytes_per_s, F_DBL, STALL_SYS_NET | STALL_SYS_RATES),
    SYS(cpu_freq_mhz, F_DBL, STALL_SYS_FREQ),
    SYS(cgroup_version, F_CGVER, 0),
    SYS(cg_cpu_quota_us, F_I64, STALL_SYS_CG_CPU),
    SYS(cg_cpu_period_us, F_U64, STALL_SYS_CG_CPU),
    SYS(cg_nr_throttled, F_U64, STALL_SYS_CG_THROTTLE),
    SYS(cg_throttled_ns, F_U64, STALL_SYS_CG_THROTTLE),
    SYS(cg_throttled_share, F_DBL, STALL_SYS_CG_THROTTLE | STALL_SYS_RATES),
    SYS(cg_mem_limit_bytes, F_U64, STALL_SYS_CG_MEM),
    SYS(cg_mem_usage_bytes, F_U64, STALL_SYS_CG_MEM),
};
#undef SYS

#define PROC(f, t, need) {#f, offsetof(stall_proc_sample_t, f), t, need}
static const field_t proc_fields[] = {
    PROC(pid, F_U32, 0),
    PROC(ppid, F_U32, 0),
    PROC(depth, F_U32, 0),
    PROC(state, F_CHAR, STALL_PROC_STAT),
    PROC(comm, F_STR, 0),
    PROC(starttime, F_U64, STALL_PROC_STAT),
    PROC(utime_ns, F_U64, STALL_PROC_STAT),
    PROC(stime_ns, F_U64, STALL_PROC_STAT),
    PROC(cpu_util, F_DBL, STALL_PROC_STAT | STALL_PROC_RATES),
    PROC(threads, F_U32, STALL_PROC_STAT),
    PROC(rss_bytes, F_U64, STALL_PROC_STAT),
    PROC(pss_bytes, F_U64, STALL_PROC_PSS),
    PROC(read_bytes, F_U64, STALL_PROC_IO),
    PROC(write_bytes, F_U64, STALL_PROC_IO),
    PROC(read_bytes_per_s, F_DBL, STALL_PROC_IO | STALL_PROC_RATES),
    PROC(write_bytes_per_s, F_DBL, STALL_PROC_IO | STALL_PROC_RATES),
    PROC(vol_ctx_switches, F_U64, STALL_PROC_CTXT),
    PROC(invol_ctx_switches, F_U64, STALL_PROC_CTXT),
    PROC(run_ns, F_U64, STALL_PROC_SCHED),
    PROC(runq_wait_ns, F_U64, STALL_PROC_SCHED),
    PROC(runq_wait_share, F_DBL, STALL_PROC_SCHED | STALL_PROC_RATES),
    PROC(gpu_mem_bytes, F_U64, STALL_PROC_GPU),
    PROC(minflt, F_U64, STALL_PROC_STAT),
    PROC(majflt, F_U64, STALL_PROC_STAT),
    PROC(minflt_per_s, F_DBL, STALL_PROC_STAT | STALL_PROC_RATES),
    PROC(majflt_per_s, F_DBL, STALL_PROC_STAT | STALL_PROC_RATES),
    PROC(sys_util, F_DBL, STALL_PROC_STAT | STALL_PROC_RATES),
    PROC(threads_running, F_U32, STALL_PROC_WAIT),
    PROC(threads_disk, F_U32, STALL_PROC_WAIT),
    PROC(threads_net, F_U32, STALL_PROC_WAIT),
    PROC(threads_sleep, F_U32, STALL_PROC_WAIT),
};
#undef PROC

#define GPU(f, t, need) {#f, offsetof(stall_gpu_t, f), t, need}
static const field_t gpu_fields[] = {
    GPU(index, F_U32, 0),
    GPU(name, F_STR, 0),
    GPU(uuid, F_STR, 0),
    GPU(util_sm_pct, F_DBL, STALL_GPU_UTIL),
    GPU(util_mem_pct, F_DBL, STALL_GPU_UTIL),
    GPU(mem_used_bytes, F_U64, STALL_GPU_MEM),
    GPU(mem_total_bytes, F_U64, STALL_GPU_MEM),
    GPU(power_mw, F_DBL, STALL_GPU_POWER),
    GPU(temp_c, F_DBL, STALL_GPU_TEMP),
    GPU(clock_sm_mhz, F_DBL, STALL_GPU_CLOCK),
    GPU(clock_mem_mhz, F_DBL, STALL_GPU_CLOCK),
    GPU(pcie_rx_bytes_per_s, F_DBL, STALL_GPU_PCIE),
    GPU(pcie_tx_bytes_per_s, F_DBL, STALL_GPU_PCIE),
    GPU(tree_mem_bytes, F_U64, STALL_GPU_TREE),
};
#undef GPU

/* Returns a new reference to the value of one field of the struct at base. */
static PyObject *field_value(const field_t *f, const char *base, uint64_t valid) {
    if ((valid & f->need) != f->need) Py_RETURN_NONE;
    const char *p = base + f->off;
    switch (f->type) {
    case F_U32: { uint32_t v; memcpy(&v, p, sizeof v); return PyLong_FromUnsignedLong(v); }
    case F_U64: { uint64_t v; memcpy(&v, p, sizeof v); return PyLong_FromUnsignedLongLong(v); }
    case F_I64: { int64_t v; memcpy(&v, p, sizeof v); return PyLong_FromLongLong(v); }
    case F_INT: { int v; memcpy(&v, p, sizeof v); return PyLong_FromLong(v); }
    case F_CGVER: {
        int v;
        memcpy(&v, p, sizeof v);
        if (v == 0) Py_RETURN_NONE;
        return PyLong_FromLong(v);
    }
    case F_DBL: {
        double v;
        memcpy(&v, p, sizeof v);
        if (isnan(v)) Py_RETURN_NONE;
        return PyFloat_FromDouble(v);
    }
    case F_CHAR: {
        char c = *p;
        if (c == 0) Py_RETURN_NONE;
        return PyUnicode_FromStringAndSize(&c, 1);
    }
    case F_STR: return decode_text(p); /* NUL-terminated char array */
    }
    Py_RETURN_NONE;
}

static PyObject *fields_dict(const field_t *fields, size_t n, const void *base, uint64_t valid) {
    PyObject *d = PyDict_New();
    if (!d) return NULL;
    for (size_t i = 0; i < n; i++) {
        if (dict_set(d, fields[i].name, field_value(&fields[i], base, valid)) < 0) {
            Py_DECREF(d);
            return NULL;
        }
    }
    return d;
}

/* ------------------------------------------------------------ helpers */

static void Engine_dealloc(EngineObject *self);

static int engine_check(EngineObject *self, const char *what) {
    if (self->e) return 0;
    PyErr_Format(PyExc_ValueError, "Engine.%s(): the engine is closed", what);
    return -1;
}

static PyObject *lib_error(PyObject *exc, const char *what) {
    PyErr_Format(exc, "Engine.%s(): %s", what, stall_last_error());
    return NULL;
}

stall_engine_t *nat_engine_pin(PyObject *o, const char *fn) {
    if (!o || Py_TYPE(o)->tp_dealloc != (destructor)Engine_dealloc) {
        PyErr_Format(PyExc_TypeError, "%s(): engine must be a stall._native.Engine, not %s", fn,
                     o ? Py_TYPE(o)->tp_name : "NULL");
        return NULL;
    }
    EngineObject *self = (EngineObject *)o;
    if (!self->e) {
        PyErr_Format(PyExc_ValueError, "%s(): the engine is closed", fn);
        return NULL;
    }
    self->pins++;
    Py_INCREF(o);
    return self->e;
}

void nat_engine_unpin(PyObject *o) {
    EngineObject *self = (EngineObject *)o;
    self->pins--;
    Py_DECREF(o);
}

/* Parses a duration in seconds (int or float) into ns; at least min_s. */
static int seconds_arg(PyObject *o, const char *what, double min_s, uint64_t *out_ns) {
    if (PyBool_Check(o) || (!PyFloat_Check(o) && !PyLong_Check(o))) {
        PyErr_Format(PyExc_TypeError, "Engine(): %s must be a number of seconds, not %.100s", what,
                     Py_TYPE(o)->tp_name);
        return -1;
    }
    double s = PyFloat_AsDouble(o);
    if (s == -1.0 && PyErr_Occurred()) return -1;
    if (!(s >= min_s) || s > 1e9) {
        char lim[32];
        snprintf(lim, sizeof lim, "%g", min_s); /* PyErr_Format has no %g */
        PyErr_Format(PyExc_ValueError, "Engine(): %s must be at least %s s, got %R", what, lim, o);
        return -1;
    }
    *out_ns = (uint64_t)(s * 1e9 + 0.5);
    return 0;
}

/* Parses a session id (an int >= 0; > 0 when positive is set). */
static int session_id_arg(PyObject *o, const char *what, int positive, uint64_t *out) {
    if (PyBool_Check(o)) {
        PyErr_Format(PyExc_TypeError, "Engine.%s(): id must be an int, not bool", what);
        return -1;
    }
    char fn[64];
    snprintf(fn, sizeof fn, "Engine.%s", what);
    if (u64_arg(o, fn, "id", out) < 0) return -1;
    if (positive && *out == 0) {
        PyErr_Format(PyExc_ValueError, "Engine.%s(): id must be > 0 (0 is the whole run)", what);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------- construction */

static PyObject *Engine_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"dir", "interval", "max_samples", "no_sampler", "no_gpu", "drain_interval",
                             "root_pid", "observer", NULL};
    PyObject *dir, *interval = NULL, *max_samples = NULL, *drain_interval = NULL, *root_pid = NULL;
    int no_sampler = 0, no_gpu = 0, observer = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|$OOppOOp:Engine", kwlist, &dir, &interval, &max_samples,
                                     &no_sampler, &no_gpu, &drain_interval, &root_pid, &observer))
        return NULL;
    stall_sampler_options_t so;
    memset(&so, 0, sizeof so);
    uint64_t drain_ns = 100000000ull;
    so.interval_ns = 100000000ull;
    so.max_samples = 1200;
    if (interval && seconds_arg(interval, "interval", 0.001, &so.interval_ns) < 0) return NULL;
    if (drain_interval && seconds_arg(drain_interval, "drain_interval", 0.001, &drain_ns) < 0) return NULL;
    if (max_samples) {
        if (PyBool_Check(max_samples)) {
            PyErr_SetString(PyExc_TypeError, "Engine(): max_samples must be an int, not bool");
            return NULL;
        }
        uint64_t v;
        if (u64_arg(max_samples, "Engine", "max_samples", &v) < 0) return NULL;
        if (v < 16 || v > 1000000) {
            PyErr_Format(PyExc_ValueError, "Engine(): max_samples must be in 16..1000000, got %R", max_samples);
            return NULL;
        }
        so.max_samples = (uint32_t)v;
    }
    if (root_pid && u32_arg(root_pid, "Engine", "root_pid", &so.root_pid) < 0) return NULL;
    so.no_gpu = no_gpu;

    PyObject *bytes = path_arg(dir, "Engine", "dir");
    if (!bytes) return NULL;
    const char *path = PyBytes_AS_STRING(bytes);
    stall_engine_t *e;
    char err[512] = "";
    Py_BEGIN_ALLOW_THREADS
    e = observer ? stall_engine_new_observer(path, &so, no_sampler, drain_ns)
                 : stall_engine_new(path, &so, no_sampler, drain_ns);
    if (!e) snprintf(err, sizeof err, "%s", stall_last_error());
    Py_END_ALLOW_THREADS
    if (!e) {
        raise_open_error("Engine", err, dir, path);
        Py_DECREF(bytes);
        return NULL;
    }
    EngineObject *self = (EngineObject *)type->tp_alloc(type, 0);
    if (!self) {
        stall_engine_free(e, 0);
        Py_DECREF(bytes);
        return NULL;
    }
    self->e = e;
    self->observer = observer;
    self->dir = PyUnicode_DecodeFSDefault(path);
    Py_DECREF(bytes);
    if (!self->dir) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static void Engine_dealloc(EngineObject *self) {
    PyTypeObject *tp = Py_TYPE(self);
    if (self->e) {
        stall_engine_free(self->e, 0); /* the engine thread never takes the GIL */
        self->e = NULL;
    }
    Py_CLEAR(self->dir);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

/* ------------------------------------------------------------ control */

static PyObject *Engine_start(EngineObject *self, PyObject *Py_UNUSED(ignored)) {
    if (engine_check(self, "start") < 0) return NULL;
    int rc;
    char err[512] = "";
    self->busy++;
    Py_BEGIN_ALLOW_THREADS
    rc = stall_engine_start(self->e);
    if (rc < 0) snprintf(err, sizeof err, "%s", stall_last_error());
    Py_END_ALLOW_THREADS
    self->busy--;
    if (rc < 0) {
        PyErr_Format(PyExc_RuntimeError, "Engine.start(): %s", err);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *Engine_stop(EngineObject *self, PyObject *Py_UNUSED(ignored)) {
    if (engine_check(self, "stop") < 0) return NULL;
    self->busy++;
    Py_BEGIN_ALLOW_THREADS
    stall_engine_stop(self->e);
    Py_END_ALLOW_THREADS
    self->busy--;
    Py_RETURN_NONE;
}

static PyObject *Engine_drain(EngineObject *self, PyObject *Py_UNUSED(ignored)) {
    if (engine_check(self, "drain") < 0) return NULL;
    ssize_t n;
    char err[512] = "";
    self->busy++;
    Py_BEGIN_ALLOW_THREADS
    n = stall_engine_drain(self->e);
    if (n < 0) snprintf(err, sizeof err, "%s", stall_last_error());
    Py_END_ALLOW_THREADS
    self->busy--;
    if (n < 0) {
        PyErr_Format(PyExc_OSError, "Engine.drain(): %s", err);
        return NULL;
    }
    return PyLong_FromSsize_t(n);
}

static PyObject *Engine_sample_now(EngineObject *self, PyObject *Py_UNUSED(ignored)) {
    if (engine_check(self, "sample_now") < 0) return NULL;
    stall_sampler_t *s = stall_engine_sampler(self->e);
    if (!s) {
        PyErr_SetString(PyExc_ValueError, "Engine.sample_now(): the engine has no sampler (no_sampler=True)");
        return NULL;
    }
    int rc;
    char err[512] = "";
    self->busy++;
    Py_BEGIN_ALLOW_THREADS
    rc = stall_sampler_sample(s);
    if (rc < 0) snprintf(err, sizeof err, "%s", stall_last_error());
    Py_END_ALLOW_THREADS
    self->busy--;
    if (rc < 0) {
        PyErr_Format(PyExc_OSError, "Engine.sample_now(): %s", err);
        return NULL;
    }
    Py_RETURN_NONE;
}

static const char *const close_names[] = {"remove"};

static PyObject *Engine_close(EngineObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    PyObject *a[1];
    if (gather_args("close", args, nargs, kwnames, close_names, 0, 0, 1, a) < 0) return NULL;
    int remove = a[0] ? PyObject_IsTrue(a[0]) : 0;
    if (remove < 0) return NULL;
    if (!self->e) Py_RETURN_NONE;
    if (self->pins) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Engine.close(): a monitor or metrics server still reads this engine; stop it first");
        return NULL;
    }
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "Engine.close(): another thread is inside a call of this engine");
        return NULL;
    }
    stall_engine_t *e = self->e;
    self->e = NULL; /* closed for every other thread from here on */
    Py_BEGIN_ALLOW_THREADS
    stall_engine_free(e, remove);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *Engine_enter(EngineObject *self, PyObject *Py_UNUSED(ignored)) {
    if (engine_check(self, "__enter__") < 0) return NULL;
    return Py_NewRef(self);
}

static PyObject *Engine_exit(EngineObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)args;
    (void)nargs;
    if (self->e && !self->busy && !self->pins) {
        stall_engine_t *e = self->e;
        self->e = NULL;
        Py_BEGIN_ALLOW_THREADS
        stall_engine_free(e, 0);
        Py_END_ALLOW_THREADS
    }
    Py_RETURN_FALSE;
}

/* ------------------------------------------------------- aggregation */

static PyObject *Engine_session_begin(EngineObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "Engine.session_begin() takes exactly 3 arguments (id, name, t_ns) (%zd given)",
                     nargs);
        return NULL;
    }
    if (engine_check(self, "session_begin") < 0) return NULL;
    uint64_t id, t;
    if (session_id_arg(args[0], "session_begin", 1, &id) < 0) return NULL;
    const char *name = text_arg(args[1], "Engine.session_begin", "name", 1);
    if (!name) return NULL;
    if (u64_arg(args[2], "Engine.session_begin", "t_ns", &t) < 0) return NULL;
    if (stall_agg_session_begin(stall_engine_agg(self->e), id, name, t) < 0)
        return lib_error(PyExc_ValueError, "session_begin");
    Py_RETURN_NONE;
}

static PyObject *Engine_session_end(EngineObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "Engine.session_end() takes exactly 2 arguments (id, t_ns) (%zd given)", nargs);
        return NULL;
    }
    if (engine_check(self, "session_end") < 0) return NULL;
    uint64_t id, t;
    if (session_id_arg(args[0], "session_end", 1, &id) < 0) return NULL;
    if (u64_arg(args[1], "Engine.session_end", "t_ns", &t) < 0) return NULL;
    if (stall_agg_session_end(stall_engine_agg(self->e), id, t) < 0) return lib_error(PyExc_ValueError, "session_end");
    Py_RETURN_NONE;
}

static PyObject *op_dict(const stall_op_stats_t *o) {
    PyObject *d = PyDict_New();
    if (!d) return NULL;
    if (dict_set(d, "name", decode_text(o->name)) < 0 || dict_set(d, "kind", PyLong_FromLong(o->kind)) < 0 ||
        dict_set(d, "kind_name", PyUnicode_FromString(stall_kind_name(o->kind))) < 0 ||
        dict_set(d, "count", PyLong_FromUnsignedLongLong(o->count)) < 0 ||
        dict_set(d, "total_ns", PyLong_FromUnsignedLongLong(o->total_ns)) < 0 ||
        dict_set(d, "self_ns", PyLong_FromUnsignedLongLong(o->self_ns)) < 0 ||
        dict_set(d, "min_ns", PyLong_FromUnsignedLongLong(o->min_ns)) < 0 ||
        dict_set(d, "max_ns", PyLong_FromUnsignedLongLong(o->max_ns)) < 0 ||
        dict_set(d, "p50_ns", PyLong_FromUnsignedLongLong(o->p50_ns)) < 0 ||
        dict_set(d, "p95_ns", PyLong_FromUnsignedLongLong(o->p95_ns)) < 0 ||
        dict_set(d, "p99_ns", PyLong_FromUnsignedLongLong(o->p99_ns)) < 0 ||
        dict_set(d, "cpu_ns", o->cpu_count ? PyLong_FromUnsignedLongLong(o->cpu_ns) : Py_NewRef(Py_None)) < 0 ||
        dict_set(d, "arg_sum", PyLong_FromUnsignedLongLong(o->arg_sum)) < 0 ||
        dict_set(d, "truncated", PyLong_FromUnsignedLongLong(o->truncated)) < 0 ||
        dict_set(d, "processes", PyLong_FromUnsignedLong(o->processes)) < 0 ||
        dict_set(d, "first_ns", PyLong_FromUnsignedLongLong(o->first_ns)) < 0 ||
        dict_set(d, "last_ns", PyLong_FromUnsignedLongLong(o->last_ns)) < 0) {
        Py_DECREF(d);
        return NULL;
    }
    return d;
}

static const char *const ops_names[] = {"session_id"};

static PyObject *Engine_ops(EngineObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    PyObject *a[1];
    if (gather_args("ops", args, nargs, kwnames, ops_names, 0, 0, 1, a) < 0) return NULL;
    if (engine_check(self, "ops") < 0) return NULL;
    uint64_t id = 0;
    if (a[0] && session_id_arg(a[0], "ops", 0, &id) < 0) return NULL;
    stall_agg_t *agg = stall_engine_agg(self->e);
    stall_op_stats_t *buf = NULL;
    size_t cap = 0;
    ssize_t n;
    for (;;) { /* the engine thread may add operations between two calls */
        n = stall_agg_ops(agg, id, buf, cap);
        if (n < 0) {
            PyMem_Free(buf);
            PyObject *key = PyLong_FromUnsignedLongLong(id);
            if (key) {
                PyErr_SetObject(PyExc_KeyError, key);
                Py_DECREF(key);
            }
            return NULL;
        }
        if ((size_t)n <= cap) break;
        cap = (size_t)n + 16;
        stall_op_stats_t *nb = PyMem_Realloc(buf, cap * sizeof *buf);
        if (!nb) {
            PyMem_Free(buf);
            return PyErr_NoMemory();
        }
        buf = nb;
    }
    PyObject *list = PyList_New(n);
    if (!list) goto fail;
    for (ssize_t i = 0; i < n; i++) {
        PyObject *d = op_dict(&buf[i]);
        if (!d) {
            Py_DECREF(list);
            goto fail;
        }
        PyList_SET_ITEM(list, i, d);
    }
    PyMem_Free(buf);
    return list;
fail:
    PyMem_Free(buf);
    return NULL;
}

/* ------------------------------------------------------------ diagnose */

/* A Python detector in the engine's table: ctx is the callable. It gets a
 * dict of the diagnosis' values and the list of findings so far
 * ({"type", "severity", "summary"}), and returns None or a tuple
 * (type, severity, summary[, evidence dict[, suggestions list of
 * (action, expected_speedup or None, why)]]). The first error is kept in
 * the call's state and raised once the analysis is over. */
typedef struct diag_call_t {
    PyObject *etype, *evalue, *etb; /* the first exception, fetched */
} diag_call_t;

static diag_call_t *diag_current; /* the diagnose() call running (GIL held throughout) */

static void diag_keep_error(void) {
    if (!diag_current || diag_current->etype) {
        PyErr_Clear();
        return;
    }
    PyErr_Fetch(&diag_current->etype, &diag_current->evalue, &diag_current->etb);
}

static PyObject *diag_values(const stall_diagnosis_t *d) {
    PyObject *v = PyDict_New();
    if (!v) return NULL;
    for (int i = 0; stall_diagnosis_value_name(i); i++) {
        const char *name = stall_diagnosis_value_name(i);
        double x = stall_diagnosis_value(d, name);
        PyObject *o = isfinite(x) ? PyFloat_FromDouble(x) : Py_NewRef(Py_None);
        if (!o || PyDict_SetItemString(v, name, o) < 0) {
            Py_XDECREF(o);
            Py_DECREF(v);
            return NULL;
        }
        Py_DECREF(o);
    }
    return v;
}

static PyObject *diag_findings(const stall_diagnosis_t *d) {
    int n = stall_diagnosis_finding_count(d);
    PyObject *l = PyList_New(n);
    if (!l) return NULL;
    for (int i = 0; i < n; i++) {
        const stall_finding_t *f = stall_diagnosis_finding(d, i);
        PyObject *o = Py_BuildValue("{s:s,s:d,s:s}", "type", stall_finding_type(f), "severity",
                                    stall_finding_severity(f), "summary", stall_finding_summary(f));
        if (!o) {
            Py_DECREF(l);
            return NULL;
        }
        PyList_SET_ITEM(l, i, o);
    }
    return l;
}

static int diag_fill(stall_finding_t *f, PyObject *r) {
    const char *type, *summary;
    double sev;
    PyObject *ev = NULL, *sugg = NULL;
    if (!PyTuple_Check(r) || !PyArg_ParseTuple(r, "sds|OO", &type, &sev, &summary, &ev, &sugg)) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_TypeError, "a detector must return None or (type, severity, summary, "
                                          "evidence, suggestions), not %.100s", Py_TYPE(r)->tp_name);
        return -1;
    }
    if (stall_finding_set(f, type, sev, summary) < 0) {
        PyErr_Format(PyExc_ValueError, "%s", stall_last_error());
        return -1;
    }
    if (ev && ev != Py_None) {
        if (!PyDict_Check(ev)) {
            PyErr_SetString(PyExc_TypeError, "a detector's evidence must be a dict of numbers");
            return -1;
        }
        PyObject *k, *v;
        Py_ssize_t pos = 0;
        while (PyDict_Next(ev, &pos, &k, &v)) {
            if (!PyUnicode_Check(k) || PyBool_Check(v) || !(PyFloat_Check(v) || PyLong_Check(v))) continue;
            const char *key = PyUnicode_AsUTF8(k);
            double x = PyFloat_AsDouble(v);
            if (!key || (x == -1.0 && PyErr_Occurred())) return -1;
            if (stall_finding_evidence(f, key, x) < 0) break; /* full: the rest is left out */
        }
    }
    if (sugg && sugg != Py_None) {
        PyObject *seq = PySequence_Fast(sugg, "a detector's suggestions must be a list");
        if (!seq) return -1;
        for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
            const char *action, *why;
            PyObject *sp;
            if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "sOs", &action, &sp, &why)) {
                Py_DECREF(seq);
                return -1;
            }
            double x = sp == Py_None ? NAN : PyFloat_AsDouble(sp);
            if (x == -1.0 && PyErr_Occurred()) {
                Py_DECREF(seq);
                return -1;
            }
            if (stall_finding_suggest(f, action, x, why) < 0) break;
        }
        Py_DECREF(seq);
    }
    return 0;
}

static int diag_trampoline(const stall_diagnosis_t *d, stall_finding_t *f, void *ctx) {
    PyObject *values = diag_values(d), *found = values ? diag_findings(d) : NULL, *r = NULL;
    int rc = 0;
    if (!found) goto fail;
    r = PyObject_CallFunctionObjArgs((PyObject *)ctx, values, found, NULL);
    if (!r) goto fail;
    if (r != Py_None) {
        if (diag_fill(f, r) < 0) goto fail;
        rc = 1;
    }
    goto out;
fail:
    diag_keep_error();
    rc = 0;
out:
    Py_XDECREF(r);
    Py_XDECREF(found);
    Py_XDECREF(values);
    return rc;
}

static const char *const diagnose_names[] = {"session_id", "bottleneck", "memory", "gpu", "cpu", "gpu_busy",
                                             "detectors", "report", "command", "level"};

/* report.json of a session (stall.report/1) from its diagnosis: the
 * session's operations, the sampler's series and system, the processes the
 * sampler sees now. command: the argv to show; level: a name. */
static char *session_report(EngineObject *self, uint64_t id, const stall_diagnosis_t *d, PyObject *command,
                            const char *level, size_t *len) {
    stall_report_t rep;
    memset(&rep, 0, sizeof rep);
    char **argv = NULL;
    Py_ssize_t argc = 0;
    PyObject *seq = NULL;
    char *json = NULL;
    stall_proc_summary_t *procs = NULL;
    if (command && command != Py_None) {
        seq = PySequence_Fast(command, "Engine.diagnose(): command must be a list of str");
        if (!seq) return NULL;
        argc = PySequence_Fast_GET_SIZE(seq);
        argv = PyMem_Calloc((size_t)argc + 1, sizeof *argv);
        if (!argv) {
            PyErr_NoMemory();
            goto out;
        }
        for (Py_ssize_t i = 0; i < argc; i++) {
            PyObject *a = PySequence_Fast_GET_ITEM(seq, i);
            if (!PyUnicode_Check(a)) {
                PyErr_Format(PyExc_TypeError, "Engine.diagnose(): command items must be str, not %.100s",
                             Py_TYPE(a)->tp_name);
                goto out;
            }
            argv[i] = (char *)PyUnicode_AsUTF8(a);
            if (!argv[i]) goto out;
        }
    }
    uint64_t begin = 0, end = 0;
    if (stall__agg_session_range(stall_engine_agg(self->e), id, &begin, &end, NULL, 0) < 0) {
        lib_error(PyExc_KeyError, "diagnose");
        goto out;
    }
    if (!end) end = stall_now_ns();
    stall_sampler_t *smp = stall_engine_sampler(self->e);
    enum { MAXP = 256 };
    procs = PyMem_Calloc(MAXP, sizeof *procs);
    stall_proc_sample_t *ps = PyMem_Calloc(MAXP, sizeof *ps);
    size_t np = smp && procs && ps ? stall_sampler_procs(smp, ps, MAXP) : 0;
    if (np > MAXP) np = MAXP;
    for (size_t i = 0; i < np; i++) {
        stall__proc_summary_update(&procs[i], &ps[i]); /* procs is zeroed */
        snprintf(procs[i].label, sizeof procs[i].label, "%s", ps[i].depth == 0 ? "main" : "child");
    }
    PyMem_Free(ps);
    rep.argv = argv;
    rep.argc = (int)argc;
    rep.started_at = time(NULL) - (time_t)((stall_now_ns() - begin) / 1000000000ull);
    rep.start_ns = begin;
    rep.end_ns = end;
    rep.level = level ? level : "detailed";
    rep.interval_s = NAN;
    rep.an = d;
    rep.agg = stall_engine_agg(self->e);
    rep.session_id = id;
    rep.sampler = smp;
    rep.procs = procs;
    rep.nprocs = np;
    json = stall__report_json(&rep, len);
    if (!json) lib_error(PyExc_MemoryError, "diagnose");
out:
    PyMem_Free(procs);
    PyMem_Free(argv);
    Py_XDECREF(seq);
    return json;
}

static PyObject *Engine_diagnose(EngineObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    PyObject *a[10];
    if (gather_args("diagnose", args, nargs, kwnames, diagnose_names, 0, 0, 10, a) < 0) return NULL;
    int want_report = a[7] ? PyObject_IsTrue(a[7]) : 0;
    if (want_report < 0) return NULL;
    const char *level = NULL;
    if (a[9] && a[9] != Py_None) {
        if (!PyUnicode_Check(a[9])) {
            PyErr_Format(PyExc_TypeError, "Engine.diagnose(): level must be a str, not %.100s", Py_TYPE(a[9])->tp_name);
            return NULL;
        }
        level = PyUnicode_AsUTF8(a[9]);
        if (!level) return NULL;
    }
    if (engine_check(self, "diagnose") < 0) return NULL;
    uint64_t id = 0;
    if (a[0] && session_id_arg(a[0], "diagnose", 0, &id) < 0) return NULL;
    stall_thresholds_t th;
    memset(&th, 0, sizeof th);
    double *slot[5] = {&th.bottleneck, &th.memory, &th.gpu, &th.cpu, &th.gpu_busy};
    for (int i = 0; i < 5; i++) {
        PyObject *o = a[1 + i];
        if (!o || o == Py_None) continue;
        if (PyBool_Check(o) || !(PyFloat_Check(o) || PyLong_Check(o))) {
            PyErr_Format(PyExc_TypeError, "Engine.diagnose(): %s must be a number, not %.100s", diagnose_names[1 + i],
                         Py_TYPE(o)->tp_name);
            return NULL;
        }
        double x = PyFloat_AsDouble(o);
        if (x == -1.0 && PyErr_Occurred()) return NULL;
        if (!(x > 0 && x <= 1)) {
            PyErr_Format(PyExc_ValueError, "Engine.diagnose(): %s must be a share in (0, 1], got %R",
                         diagnose_names[1 + i], o);
            return NULL;
        }
        *slot[i] = x;
    }
    PyObject *dets = NULL;
    Py_ssize_t nd = 0;
    if (a[6] && a[6] != Py_None) {
        dets = PySequence_Fast(a[6], "Engine.diagnose(): detectors must be a list of (name, callable)");
        if (!dets) return NULL;
        nd = PySequence_Fast_GET_SIZE(dets);
    }
    Py_ssize_t added = 0;
    PyObject *result = NULL;
    diag_call_t call = {NULL, NULL, NULL};
    diag_call_t *outer = diag_current;
    for (; added < nd; added++) {
        PyObject *item = PySequence_Fast_GET_ITEM(dets, added);
        const char *name;
        PyObject *fn;
        if (!PyTuple_Check(item) || !PyArg_ParseTuple(item, "sO", &name, &fn)) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "Engine.diagnose(): detectors must be (name, callable) tuples");
            goto done;
        }
        if (!PyCallable_Check(fn)) {
            PyErr_Format(PyExc_TypeError, "Engine.diagnose(): detector %s is not callable", name);
            goto done;
        }
        if (stall_engine_add_detector(self->e, name, diag_trampoline, fn) < 0) {
            PyErr_Format(PyExc_ValueError, "Engine.diagnose(): %s", stall_last_error());
            goto done;
        }
    }
    diag_current = &call;
    stall_diagnosis_t *d = stall_engine_diagnose(self->e, id, &th);
    diag_current = outer;
    if (!d) {
        if (strstr(stall_last_error(), "unknown session")) {
            PyObject *key = PyLong_FromUnsignedLongLong(id);
            if (key) {
                PyErr_SetObject(PyExc_KeyError, key);
                Py_DECREF(key);
            }
        } else {
            lib_error(PyExc_RuntimeError, "diagnose");
        }
        goto done;
    }
    if (call.etype) {
        PyErr_Restore(call.etype, call.evalue, call.etb);
        call.etype = call.evalue = call.etb = NULL;
        stall_diagnosis_free(d);
        goto done;
    }
    size_t len;
    char *json = want_report ? session_report(self, id, d, a[8], level, &len) : stall_diagnosis_json(d, &len);
    stall_diagnosis_free(d);
    if (!json) {
        if (!PyErr_Occurred()) lib_error(PyExc_MemoryError, "diagnose");
        goto done;
    }
    result = PyUnicode_DecodeUTF8(json, (Py_ssize_t)len, "replace");
    free(json);
done:
    Py_XDECREF(call.etype);
    Py_XDECREF(call.evalue);
    Py_XDECREF(call.etb);
    for (Py_ssize_t i = 0; i < added; i++) {
        const char *name;
        PyObject *fn;
        PyObject *item = PySequence_Fast_GET_ITEM(dets, i);
        if (PyArg_ParseTuple(item, "sO", &name, &fn)) stall_engine_remove_detector(self->e, name);
        else PyErr_Clear();
    }
    Py_XDECREF(dets);
    return result;
}

static PyObject *Engine_session_wall_ns(EngineObject *self, PyObject *arg) {
    if (engine_check(self, "session_wall_ns") < 0) return NULL;
    uint64_t id;
    if (session_id_arg(arg, "session_wall_ns", 0, &id) < 0) return NULL;
    return PyLong_FromUnsignedLongLong(stall_agg_session_wall_ns(stall_engine_agg(self->e), id));
}

static PyObject *Engine_kind_time(EngineObject *self, PyObject *arg) {
    if (engine_check(self, "kind_time") < 0) return NULL;
    uint64_t id;
    if (session_id_arg(arg, "kind_time", 0, &id) < 0) return NULL;
    uint64_t ns[STALL_KIND_COUNT_];
    memset(ns, 0, sizeof ns);
    if (stall_agg_kind_time(stall_engine_agg(self->e), id, ns) < 0) {
        PyObject *key = PyLong_FromUnsignedLongLong(id);
        if (key) {
            PyErr_SetObject(PyExc_KeyError, key);
            Py_DECREF(key);
        }
        return NULL;
    }
    PyObject *d = PyDict_New();
    if (!d) return NULL;
    for (int k = 0; k < STALL_KIND_COUNT_; k++) {
        if (dict_set(d, stall_kind_name(k), PyLong_FromUnsignedLongLong(ns[k])) < 0) {
            Py_DECREF(d);
            return NULL;
        }
    }
    return d;
}

/* ---------------------------------------------------------- sampling */

static PyObject *Engine_latest(EngineObject *self, PyObject *Py_UNUSED(ignored)) {
    if (engine_check(self, "latest") < 0) return NULL;
    stall_sampler_t *s = stall_engine_sampler(self->e);
    stall_sys_t y;
    if (!s || stall_sampler_latest(s, &y) < 0) Py_RETURN_NONE;
    return fields_dict(sys_fields, sizeof sys_fields / sizeof sys_fields[0], &y, y.valid);
}

#define DEV(f, t, need) {#f, offsetof(stall_device_t, f), t, need}
static const field_t dev_fields[] = {
    DEV(name, F_STR, 0),
    DEV(is_net, F_U32, 0),
    DEV(read_bytes, F_U64, 0),
    DEV(write_bytes, F_U64, 0),
    DEV(read_bytes_per_s, F_DBL, STALL_DEV_RATES),
    DEV(write_bytes_per_s, F_DBL, STALL_DEV_RATES),
    DEV(busy, F_DBL, STALL_DEV_RATES),
};
#undef DEV

static size_t copy_devs(stall_sampler_t *s, void *out, size_t cap) { return stall_sampler_devices(s, out, cap); }
static size_t copy_procs(stall_sampler_t *s, void *out, size_t cap) { return stall_sampler_procs(s, out, cap); }
static size_t copy_gpus(stall_sampler_t *s, void *out, size_t cap) { return stall_sampler_gpus(s, out, cap); }

/* A list of field dicts of the sampler's latest processes or GPUs: copies
 * them out (growing the buffer until everything fits), then converts each
 * element, whose validity bits sit at valid_off. */
static PyObject *sampled_list(EngineObject *self, const char *what, size_t (*copy)(stall_sampler_t *, void *, size_t),
                              size_t elem, const field_t *fields, size_t nfields, size_t valid_off) {
    if (engine_check(self, what) < 0) return NULL;
    stall_sampler_t *s = stall_engine_sampler(self->e);
    if (!s) return PyList_New(0);
    char *buf = NULL;
    size_t cap = 0, n;
    for (;;) {
        n = copy(s, buf, cap);
        if (n <= cap) break;
        cap = n + 8;
        char *nb = PyMem_Realloc(buf, cap * elem);
        if (!nb) {
            PyMem_Free(buf);
            return PyErr_NoMemory();
        }
        buf = nb;
    }
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list && i < n; i++) {
        const char *el = buf + i * elem;
        uint64_t valid;
        memcpy(&valid, el + valid_off, sizeof valid);
        PyObject *d = fields_dict(fields, nfields, el, valid);
        if (!d) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, d);
    }
    PyMem_Free(buf);
    return list;
}

static PyObject *Engine_processes(EngineObject *self, PyObject *Py_UNUSED(ignored)) {
    return sampled_list(self, "processes", copy_procs, sizeof(stall_proc_sample_t), proc_fields,
                        sizeof proc_fields / sizeof proc_fields[0], offsetof(stall_proc_sample_t, valid));
}

static PyObject *Engine_gpus(EngineObject *self, PyObject *Py_UNUSED(ignored)) {
    return sampled_list(self, "gpus", copy_gpus, sizeof(stall_gpu_t), gpu_fields,
                        sizeof gpu_fields / sizeof gpu_fields[0], offsetof(stall_gpu_t, valid));
}

static PyObject *Engine_devices(EngineObject *self, PyObject *Py_UNUSED(ignored)) {
    return sampled_list(self, "devices", copy_devs, sizeof(stall_device_t), dev_fields,
                        sizeof dev_fields / sizeof dev_fields[0], offsetof(stall_device_t, valid));
}

static PyObject *Engine_cores(EngineObject *self, PyObject *Py_UNUSED(ignored)) {
    if (engine_check(self, "cores") < 0) return NULL;
    stall_sampler_t *s = stall_engine_sampler(self->e);
    if (!s) return PyList_New(0);
    double *buf = NULL;
    size_t cap = 0, n;
    for (;;) {
        n = stall_sampler_cores(s, buf, cap);
        if (n <= cap) break;
        cap = n + 8;
        double *nb = PyMem_Realloc(buf, cap * sizeof *buf);
        if (!nb) {
            PyMem_Free(buf);
            return PyErr_NoMemory();
        }
        buf = nb;
    }
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list && i < n; i++) {
        PyObject *v = isnan(buf[i]) ? Py_NewRef(Py_None) : PyFloat_FromDouble(buf[i]);
        if (!v) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, v);
    }
    PyMem_Free(buf);
    return list;
}

static int metric_index(PyObject *name) {
    for (int m = 0; m < STALL_M_COUNT_; m++)
        if (PyUnicode_CompareWithASCIIString(name, stall_metric_name(m)) == 0) return m;
    return -1;
}

static PyObject *num_or_none(double v) {
    if (isnan(v)) Py_RETURN_NONE;
    return PyFloat_FromDouble(v);
}

static PyObject *Engine_series(EngineObject *self, PyObject *name) {
    if (engine_check(self, "series") < 0) return NULL;
    if (!PyUnicode_Check(name)) {
        PyErr_Format(PyExc_TypeError, "Engine.series(): metric must be a str, not %.100s", Py_TYPE(name)->tp_name);
        return NULL;
    }
    int m = metric_index(name);
    if (m < 0) {
        PyErr_Format(PyExc_ValueError, "Engine.series(): metric must be one of metric_names(), got %R", name);
        return NULL;
    }
    stall_sampler_t *s = stall_engine_sampler(self->e);
    if (!s) return PyList_New(0);
    stall_point_t *buf = NULL;
    size_t cap = 0;
    ssize_t n;
    for (;;) {
        n = stall_sampler_series(s, m, buf, cap);
        if (n < 0) {
            PyMem_Free(buf);
            return lib_error(PyExc_ValueError, "series");
        }
        if ((size_t)n <= cap) break;
        cap = (size_t)n + 16;
        stall_point_t *nb = PyMem_Realloc(buf, cap * sizeof *buf);
        if (!nb) {
            PyMem_Free(buf);
            return PyErr_NoMemory();
        }
        buf = nb;
    }
    PyObject *list = PyList_New(n);
    for (ssize_t i = 0; list && i < n; i++) {
        const stall_point_t *p = &buf[i];
        PyObject *t = Py_BuildValue("(KKNNNI)", (unsigned long long)p->t_ns, (unsigned long long)p->span_ns,
                                    num_or_none(p->min), num_or_none(p->avg), num_or_none(p->max), (unsigned)p->n);
        if (!t) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, i, t);
    }
    PyMem_Free(buf);
    return list;
}

static PyObject *Engine_sample_count(EngineObject *self, PyObject *Py_UNUSED(ignored)) {
    if (engine_check(self, "sample_count") < 0) return NULL;
    stall_sampler_t *s = stall_engine_sampler(self->e);
    return PyLong_FromUnsignedLongLong(s ? stall_sampler_count(s) : 0);
}

static PyObject *Engine_memory_bytes(EngineObject *self, PyObject *Py_UNUSED(ignored)) {
    if (engine_check(self, "memory_bytes") < 0) return NULL;
    stall_sampler_t *s = stall_engine_sampler(self->e);
    return PyLong_FromSize_t(s ? stall_sampler_memory_bytes(s) : 0);
}

static PyObject *Engine_get_dir(EngineObject *self, void *Py_UNUSED(c)) { return Py_NewRef(self->dir); }
static PyObject *Engine_get_closed(EngineObject *self, void *Py_UNUSED(c)) { return PyBool_FromLong(self->e == NULL); }
static PyObject *Engine_get_observer(EngineObject *self, void *Py_UNUSED(c)) { return PyBool_FromLong(self->observer); }

static PyObject *Engine_repr(EngineObject *self) {
    return PyUnicode_FromFormat("<stall.Engine dir=%R%s>", self->dir, self->e ? "" : " closed");
}

static PyMethodDef engine_methods[] = {
    {"start", (PyCFunction)Engine_start, METH_NOARGS,
     "start($self, /)\n--\n\nStart the engine thread (drains every drain_interval, samples every interval)."},
    {"stop", (PyCFunction)Engine_stop, METH_NOARGS, "stop($self, /)\n--\n\nStop the engine thread."},
    {"drain", (PyCFunction)Engine_drain, METH_NOARGS,
     "drain($self, /)\n--\n\nDrain the session's rings now; return the number of records taken."},
    {"close", (PyCFunction)(void (*)(void))Engine_close, METH_FASTCALL | METH_KEYWORDS,
     "close($self, /, remove=False)\n--\n\nStop, drain one last time and free the engine; remove=True also\n"
     "deletes the session directory (never for an observer). Closing a closed engine does nothing."},
    {"session_begin", (PyCFunction)(void (*)(void))Engine_session_begin, METH_FASTCALL,
     "session_begin($self, id, name, t_ns, /)\n--\n\nOpen session `id` (> 0) named `name` at t_ns (from now_ns())."},
    {"session_end", (PyCFunction)(void (*)(void))Engine_session_end, METH_FASTCALL,
     "session_end($self, id, t_ns, /)\n--\n\nClose session `id` at t_ns."},
    {"ops", (PyCFunction)(void (*)(void))Engine_ops, METH_FASTCALL | METH_KEYWORDS,
     "ops($self, /, session_id=0)\n--\n\nStatistics per operation of a session (0: the whole run), largest\n"
     "total first, as dicts: name, kind, kind_name, count, total_ns, self_ns,\n"
     "min_ns, max_ns, p50_ns, p95_ns, p99_ns, cpu_ns (None when no span carried\n"
     "CPU time), arg_sum, truncated, processes, first_ns, last_ns. KeyError for\n"
     "an unknown session."},
    {"diagnose", (PyCFunction)(void (*)(void))Engine_diagnose, METH_FASTCALL | METH_KEYWORDS,
     "diagnose($self, /, session_id=0, bottleneck=None, memory=None, gpu=None, cpu=None, gpu_busy=None,\n"
     "         detectors=None, report=False, command=None, level=None)\n--\n\n"
     "The diagnosis of a session (0: the whole run) by the C detectors, as JSON:\n"
     "{\"bottlenecks\": [...], \"breakdown\": {...}, \"loaders\": [...]}. Thresholds are\n"
     "shares in (0, 1] (None: the default). detectors: (name, fn) pairs joining the\n"
     "table for this call; fn(values, findings_so_far) returns None or (type,\n"
     "severity, summary[, evidence[, [(action, speedup, why), ...]]]). An exception in\n"
     "fn is raised after the analysis. KeyError for an unknown session. report=True:\n"
     "the whole report.json of the session instead (stall.report/1: bottlenecks,\n"
     "breakdown, loaders, ops, processes, system, series), with command (list of\n"
     "str) and level shown in it."},
    {"session_wall_ns", (PyCFunction)Engine_session_wall_ns, METH_O,
     "session_wall_ns($self, id, /)\n--\n\nWall time of a session (end, or now if open, minus begin); 0 if unknown."},
    {"kind_time", (PyCFunction)Engine_kind_time, METH_O,
     "kind_time($self, id, /)\n--\n\nTime of a session covered by spans of each kind (nesting merged),\n"
     "as a dict kind_name -> ns. KeyError for an unknown session."},
    {"latest", (PyCFunction)Engine_latest, METH_NOARGS,
     "latest($self, /)\n--\n\nThe latest system sample as a dict of stall_sys_t fields (unknown: None),\n"
     "or None before the first sample."},
    {"processes", (PyCFunction)Engine_processes, METH_NOARGS,
     "processes($self, /)\n--\n\nThe latest process-tree sample, root first, as dicts (unknown: None)."},
    {"devices", (PyCFunction)Engine_devices, METH_NOARGS,
     PyDoc_STR("devices() -> list of dicts: the latest sample's whole disks and network interfaces "
               "(name, is_net, read_bytes, write_bytes, read_bytes_per_s, write_bytes_per_s, busy; rates None "
               "until a second sample)")},
    {"gpus", (PyCFunction)Engine_gpus, METH_NOARGS,
     "gpus($self, /)\n--\n\nThe latest GPU samples as dicts (unknown: None); [] without GPUs."},
    {"cores", (PyCFunction)Engine_cores, METH_NOARGS, "cores($self, /)\n--\n\nPer-core busy shares (0..1)."},
    {"series", (PyCFunction)Engine_series, METH_O,
     "series($self, metric, /)\n--\n\nThe time series of a metric of metric_names(), oldest first, as tuples\n"
     "(t_ns, span_ns, min, avg, max, n); unknown values are None."},
    {"sample_now", (PyCFunction)Engine_sample_now, METH_NOARGS,
     "sample_now($self, /)\n--\n\nTake one sample now on the calling thread."},
    {"sample_count", (PyCFunction)Engine_sample_count, METH_NOARGS,
     "sample_count($self, /)\n--\n\nSamples taken so far."},
    {"memory_bytes", (PyCFunction)Engine_memory_bytes, METH_NOARGS,
     "memory_bytes($self, /)\n--\n\nBytes the sampler's series hold (fixed at creation)."},
    {"__enter__", (PyCFunction)Engine_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))Engine_exit, METH_FASTCALL, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef engine_getset[] = {
    {"dir", (getter)Engine_get_dir, NULL, "The session directory (str).", NULL},
    {"closed", (getter)Engine_get_closed, NULL, "True once close() was called.", NULL},
    {"observer", (getter)Engine_get_observer, NULL, "True for an observer engine (observer=True).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyDoc_STRVAR(engine_doc,
"Engine(dir, *, interval=0.1, max_samples=1200, no_sampler=False,\n"
"       no_gpu=False, drain_interval=0.1, root_pid=0, observer=False)\n"
"--\n\n"
"The engine of library mode: reads session directory `dir` (draining its\n"
"rings into per-operation statistics per session) and, unless no_sampler,\n"
"samples the machine and this process's tree (or root_pid's) every\n"
"`interval` seconds, keeping max_samples points per level of each series.\n"
"observer=True reads beside the session's one draining reader (e.g. `stall\n"
"run`) without taking its place: nothing shared is written, and\n"
"close(remove=True) leaves the directory.\n"
"ValueError naming the argument for bad values; OSError when dir cannot be\n"
"reached. start() runs it on its own thread; close() frees it.");

static PyType_Slot engine_slots[] = {
    {Py_tp_doc, (void *)engine_doc},
    {Py_tp_new, (void *)Engine_new},
    {Py_tp_dealloc, (void *)Engine_dealloc},
    {Py_tp_repr, (void *)Engine_repr},
    {Py_tp_methods, engine_methods},
    {Py_tp_getset, engine_getset},
    {0, NULL},
};

#ifndef Py_TPFLAGS_IMMUTABLETYPE
#define Py_TPFLAGS_IMMUTABLETYPE 0
#endif

static PyType_Spec engine_spec = {
    .name = "stall.Engine",
    .basicsize = sizeof(EngineObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = engine_slots,
};

/* ------------------------------------------------------------ module */

const char nat_metric_names_doc[] =
    "metric_names($module, /)\n--\n\n"
    "Return the names of the metrics kept as time series (Engine.series()),\n"
    "with their units (\"cpu_user_share\", \"mem_available_bytes\"...).";

PyObject *nat_metric_names(PyObject *module, PyObject *Py_UNUSED(ignored)) {
    (void)module;
    PyObject *list = PyList_New(STALL_M_COUNT_);
    for (int m = 0; list && m < STALL_M_COUNT_; m++) {
        PyObject *s = PyUnicode_FromString(stall_metric_name(m));
        if (!s) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, m, s);
    }
    return list;
}

int nat_engine_exec(PyObject *m, stall_state *st) {
    st->engine_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &engine_spec, NULL);
    if (!st->engine_type) return -1;
    return PyModule_AddType(m, st->engine_type);
}

int nat_engine_traverse(stall_state *st, visitproc visit, void *arg) {
    Py_VISIT(st->engine_type);
    return 0;
}

void nat_engine_clear(stall_state *st) { Py_CLEAR(st->engine_type); }
