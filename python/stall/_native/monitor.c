/*
 * monitor.c - stall._native.Monitor: the live monitor of include/stall.h
 * (stall_monitor_*) for the Python layer. The monitor's thread is C and
 * never takes the GIL; Python reads its alerts with next(), which waits with
 * the GIL released, and delivers them to callbacks on a thread of its own.
 * start(engine) pins the Engine object (Engine.close() refuses while a
 * monitor reads it); stop() and deallocation unpin it.
 */
#include "native.h"

#include <math.h>

typedef struct MonitorObject {
    PyObject_HEAD
    stall_monitor_t *m;
    PyObject *engine; /* the pinned Engine while started, else NULL */
} MonitorObject;

static PyObject *num_or_none(double v) { return isfinite(v) ? PyFloat_FromDouble(v) : Py_NewRef(Py_None); }

/* A finite number from a Python int/float, >= lo and <= hi (NaN: no bound). */
static int num_arg(PyObject *o, const char *fn, const char *what, double lo, double hi, double *out) {
    if (PyBool_Check(o) || !(PyLong_Check(o) || PyFloat_Check(o))) {
        PyErr_Format(PyExc_TypeError, "%s(): %s must be a number, not %s", fn, what, Py_TYPE(o)->tp_name);
        return -1;
    }
    double v = PyFloat_AsDouble(o);
    if (v == -1 && PyErr_Occurred()) return -1;
    if (!isfinite(v) || v < lo || v > hi) {
        char range[96];
        if (!isnan(lo) && !isnan(hi)) snprintf(range, sizeof range, "between %g and %g", lo, hi);
        else if (!isnan(lo)) snprintf(range, sizeof range, "a finite number >= %g", lo);
        else snprintf(range, sizeof range, "a finite number");
        PyErr_Format(PyExc_ValueError, "%s(): %s must be %s, got %R", fn, what, range, o);
        return -1;
    }
    *out = v;
    return 0;
}

static int count_arg(PyObject *o, const char *fn, const char *what, uint32_t *out) {
    if (PyBool_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s(): %s must be an int, not bool", fn, what);
        return -1;
    }
    return u32_arg(o, fn, what, out);
}

static PyObject *Monitor_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kw[] = {"interval", "loop_span", "min_severity", "spike_score", "shift_score", "trend_r2",
                         "trend_change", "oom_horizon", "window", "trend_window", "trend_every", "queue",
                         "anomalies", NULL};
    PyObject *o[12] = {0};
    int anomalies = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|$OOOOOOOOOOOOp:Monitor", kw, &o[0], &o[1], &o[2], &o[3], &o[4],
                                     &o[5], &o[6], &o[7], &o[8], &o[9], &o[10], &o[11], &anomalies))
        return NULL;
    stall_monitor_options_t mo;
    memset(&mo, 0, sizeof mo);
    double d;
    if (o[0]) {
        if (num_arg(o[0], "Monitor", "interval", 0.001, 86400, &d) < 0) return NULL;
        mo.interval_ns = (uint64_t)(d * 1e9);
    }
    if (o[1]) {
        if (num_arg(o[1], "Monitor", "loop_span", 0.001, 86400, &d) < 0) return NULL;
        mo.loop_span_ns = (uint64_t)(d * 1e9);
    }
    if (o[2] && num_arg(o[2], "Monitor", "min_severity", 0, 1, &mo.min_severity) < 0) return NULL;
    if (o[3] && num_arg(o[3], "Monitor", "spike_score", 0.1, NAN, &mo.spike_score) < 0) return NULL;
    if (o[4] && num_arg(o[4], "Monitor", "shift_score", 0.1, NAN, &mo.shift_score) < 0) return NULL;
    if (o[5] && num_arg(o[5], "Monitor", "trend_r2", 0.01, 1, &mo.trend_r2) < 0) return NULL;
    if (o[6] && num_arg(o[6], "Monitor", "trend_change", 0.0001, NAN, &mo.trend_change) < 0) return NULL;
    if (o[7] && num_arg(o[7], "Monitor", "oom_horizon", 0.001, NAN, &mo.oom_horizon_s) < 0) return NULL;
    if (o[8] && count_arg(o[8], "Monitor", "window", &mo.window) < 0) return NULL;
    if (o[9] && count_arg(o[9], "Monitor", "trend_window", &mo.trend_window) < 0) return NULL;
    if (o[10] && count_arg(o[10], "Monitor", "trend_every", &mo.trend_every) < 0) return NULL;
    if (o[11] && count_arg(o[11], "Monitor", "queue", &mo.queue) < 0) return NULL;
    if ((o[8] && !mo.window) || (o[9] && !mo.trend_window) || (o[10] && !mo.trend_every) || (o[11] && !mo.queue)) {
        PyErr_SetString(PyExc_ValueError, "Monitor(): window, trend_window, trend_every and queue must be >= 1");
        return NULL;
    }
    mo.no_anomalies = !anomalies;
    stall_monitor_t *m = stall_monitor_new(&mo);
    if (!m) {
        const char *e = stall_last_error();
        const char *p = strstr(e, ": ");
        PyErr_Format(PyExc_ValueError, "Monitor(): %s", p ? p + 2 : e);
        return NULL;
    }
    MonitorObject *self = (MonitorObject *)type->tp_alloc(type, 0);
    if (!self) {
        stall_monitor_free(m);
        return NULL;
    }
    self->m = m;
    return (PyObject *)self;
}

static void stop_and_unpin(MonitorObject *self) {
    if (!self->engine) return;
    Py_BEGIN_ALLOW_THREADS
    stall_monitor_stop(self->m);
    Py_END_ALLOW_THREADS
    PyObject *e = self->engine;
    self->engine = NULL;
    nat_engine_unpin(e);
}

static void Monitor_dealloc(MonitorObject *self) {
    PyTypeObject *tp = Py_TYPE(self);
    if (self->m) {
        stop_and_unpin(self);
        stall_monitor_free(self->m);
        self->m = NULL;
    }
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static int metric_arg(PyObject *o, const char *fn) {
    const char *name = PyUnicode_Check(o) ? PyUnicode_AsUTF8(o) : NULL;
    if (!name) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_TypeError, "%s(): metric must be a str (see mon_metric_names()), not %s", fn,
                         Py_TYPE(o)->tp_name);
        return -1;
    }
    int i = stall_mon_metric_index(name);
    if (i < 0) {
        PyObject *names = PyList_New(0);
        for (int k = 0; names && k < STALL_MON_COUNT_; k++) {
            PyObject *s = PyUnicode_FromString(stall_mon_metric_name(k));
            if (!s || PyList_Append(names, s) < 0) Py_CLEAR(names);
            Py_XDECREF(s);
        }
        PyErr_Format(PyExc_ValueError, "%s(): unknown metric %R; known: %R", fn, o, names);
        Py_XDECREF(names);
    }
    return i;
}

static PyObject *Monitor_add_rule(MonitorObject *self, PyObject *args, PyObject *kwds) {
    static char *kw[] = {"name", "metric", "threshold", "below", "for_s", "hysteresis", "severity", NULL};
    PyObject *name, *metric, *thr, *for_s = NULL, *hyst = NULL, *sev = NULL;
    int below = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOO|$pOOO:add_rule", kw, &name, &metric, &thr, &below, &for_s, &hyst,
                                     &sev))
        return NULL;
    stall_alert_rule_t r;
    memset(&r, 0, sizeof r);
    r.name = text_arg(name, "Monitor.add_rule", "name", 0);
    if (!r.name) return NULL;
    if ((r.metric = metric_arg(metric, "Monitor.add_rule")) < 0) return NULL;
    if (num_arg(thr, "Monitor.add_rule", "threshold", NAN, NAN, &r.threshold) < 0) return NULL;
    r.below = below;
    r.severity = 0.5;
    if (for_s && num_arg(for_s, "Monitor.add_rule", "for_s", 0, NAN, &r.for_s) < 0) return NULL;
    if (hyst && num_arg(hyst, "Monitor.add_rule", "hysteresis", 0, NAN, &r.hysteresis) < 0) return NULL;
    if (sev && num_arg(sev, "Monitor.add_rule", "severity", 0, 1, &r.severity) < 0) return NULL;
    if (stall_monitor_add_rule(self->m, &r) < 0) {
        PyErr_Format(PyExc_ValueError, "Monitor.add_rule(): %s", strstr(stall_last_error(), ": ") + 2);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *Monitor_remove_rule(MonitorObject *self, PyObject *name) {
    const char *n = text_arg(name, "Monitor.remove_rule", "name", 0);
    if (!n) return NULL;
    if (stall_monitor_remove_rule(self->m, n) < 0) {
        PyErr_Format(PyExc_KeyError, "Monitor.remove_rule(): no rule named %R", name);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *Monitor_add_default_rules(MonitorObject *self, PyObject *args, PyObject *kwds) {
    static char *kw[] = {"memory", "gpu", "cpu", NULL};
    PyObject *o[3] = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|$OOO:add_default_rules", kw, &o[0], &o[1], &o[2])) return NULL;
    stall_thresholds_t th;
    memset(&th, 0, sizeof th);
    if (o[0] && num_arg(o[0], "Monitor.add_default_rules", "memory", 0, 1, &th.memory) < 0) return NULL;
    if (o[1] && num_arg(o[1], "Monitor.add_default_rules", "gpu", 0, 1, &th.gpu) < 0) return NULL;
    if (o[2] && num_arg(o[2], "Monitor.add_default_rules", "cpu", 0, 1, &th.cpu) < 0) return NULL;
    if (stall_monitor_add_default_rules(self->m, &th) < 0) {
        PyErr_Format(PyExc_ValueError, "Monitor.add_default_rules(): %s", stall_last_error());
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *Monitor_start(MonitorObject *self, PyObject *engine) {
    if (self->engine) {
        PyErr_SetString(PyExc_RuntimeError, "Monitor.start(): already running; stop() it first");
        return NULL;
    }
    stall_engine_t *e = nat_engine_pin(engine, "Monitor.start");
    if (!e) return NULL;
    if (stall_monitor_start(self->m, e) < 0) {
        nat_engine_unpin(engine);
        PyErr_Format(PyExc_RuntimeError, "Monitor.start(): %s", stall_last_error());
        return NULL;
    }
    self->engine = engine;
    Py_RETURN_NONE;
}

static PyObject *Monitor_stop(MonitorObject *self, PyObject *Py_UNUSED(ignored)) {
    stop_and_unpin(self);
    Py_RETURN_NONE;
}

/* values: a mapping metric name -> number or None */
static int values_arg(PyObject *map, double *v) {
    for (int i = 0; i < STALL_MON_COUNT_; i++) v[i] = NAN;
    if (!PyDict_Check(map)) {
        PyErr_Format(PyExc_TypeError, "Monitor.observe(): values must be a dict of metric name -> number, not %s",
                     Py_TYPE(map)->tp_name);
        return -1;
    }
    PyObject *k, *x;
    Py_ssize_t pos = 0;
    while (PyDict_Next(map, &pos, &k, &x)) {
        int i = metric_arg(k, "Monitor.observe");
        if (i < 0) return -1;
        if (x == Py_None) continue;
        if (PyBool_Check(x) || !(PyLong_Check(x) || PyFloat_Check(x))) {
            PyErr_Format(PyExc_TypeError, "Monitor.observe(): values[%R] must be a number or None, not %s", k,
                         Py_TYPE(x)->tp_name);
            return -1;
        }
        v[i] = PyFloat_AsDouble(x);
        if (v[i] == -1 && PyErr_Occurred()) return -1;
    }
    return 0;
}

static PyObject *Monitor_observe(MonitorObject *self, PyObject *args) {
    PyObject *t, *map;
    if (!PyArg_ParseTuple(args, "OO:observe", &t, &map)) return NULL;
    uint64_t t_ns;
    if (u64_arg(t, "Monitor.observe", "t_ns", &t_ns) < 0) return NULL;
    double v[STALL_MON_COUNT_];
    if (values_arg(map, v) < 0) return NULL;
    int n = stall_monitor_observe(self->m, t_ns, v);
    if (n < 0) {
        PyErr_Format(PyExc_ValueError, "Monitor.observe(): %s", strstr(stall_last_error(), ": ") + 2);
        return NULL;
    }
    return PyLong_FromLong(n);
}

static PyObject *Monitor_tick(MonitorObject *self, PyObject *engine) {
    stall_engine_t *e = nat_engine_pin(engine, "Monitor.tick");
    if (!e) return NULL;
    int n;
    Py_BEGIN_ALLOW_THREADS
    n = stall_monitor_tick(self->m, e);
    Py_END_ALLOW_THREADS
    nat_engine_unpin(engine);
    if (n < 0) {
        PyErr_Format(PyExc_RuntimeError, "Monitor.tick(): %s", stall_last_error());
        return NULL;
    }
    return PyLong_FromLong(n);
}

static PyObject *alert_dict(const stall_alert_t *a) {
    return Py_BuildValue("{s:K,s:K,s:s,s:s,s:s,s:s,s:N,s:N,s:N,s:d,s:O,s:s}", "seq", (unsigned long long)a->seq,
                         "t_ns", (unsigned long long)a->t_ns, "state",
                         a->state == STALL_ALERT_FIRING ? "firing" : "resolved", "kind", a->kind, "rule", a->rule,
                         "metric", a->metric, "value", num_or_none(a->value), "threshold", num_or_none(a->threshold),
                         "baseline", num_or_none(a->baseline), "severity", a->severity, "suppressed",
                         a->suppressed ? Py_True : Py_False, "message", a->message);
}

static PyObject *Monitor_next(MonitorObject *self, PyObject *args, PyObject *kwds) {
    static char *kw[] = {"timeout", NULL};
    PyObject *timeout = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:next", kw, &timeout)) return NULL;
    int ms = -1;
    if (timeout != Py_None) {
        double s;
        if (num_arg(timeout, "Monitor.next", "timeout", 0, NAN, &s) < 0) return NULL;
        ms = s * 1e3 > 2e9 ? 2000000000 : (int)(s * 1e3);
    }
    stall_alert_t a;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = stall_monitor_next(self->m, &a, ms);
    Py_END_ALLOW_THREADS
    if (rc < 0) {
        PyErr_Format(PyExc_RuntimeError, "Monitor.next(): %s", stall_last_error());
        return NULL;
    }
    if (rc == 0) Py_RETURN_NONE;
    return alert_dict(&a);
}

static PyObject *Monitor_wake(MonitorObject *self, PyObject *Py_UNUSED(ignored)) {
    stall_monitor_wake(self->m);
    Py_RETURN_NONE;
}

static const char *const kind_keys[5] = {"threshold", "spike", "shift", "trend", "oom"};

static PyObject *Monitor_summary(MonitorObject *self, PyObject *Py_UNUSED(ignored)) {
    stall_monitor_summary_t s;
    stall_monitor_summary(self->m, &s);
    PyObject *metrics = PyDict_New(), *kinds = PyDict_New();
    if (!metrics || !kinds) goto fail;
    for (int i = 0; i < STALL_MON_COUNT_; i++) {
        PyObject *d = Py_BuildValue("{s:N,s:N,s:N,s:N,s:K}", "avg", num_or_none(s.avg[i]), "min",
                                    num_or_none(s.n[i] ? s.min[i] : NAN), "max", num_or_none(s.n[i] ? s.max[i] : NAN),
                                    "last", num_or_none(s.last[i]), "n", (unsigned long long)s.n[i]);
        if (!d || PyDict_SetItemString(metrics, stall_mon_metric_name(i), d) < 0) {
            Py_XDECREF(d);
            goto fail;
        }
        Py_DECREF(d);
    }
    for (int k = 0; k < 5; k++) {
        PyObject *n = PyLong_FromUnsignedLongLong(s.fired_by_kind[k]);
        if (!n || PyDict_SetItemString(kinds, kind_keys[k], n) < 0) {
            Py_XDECREF(n);
            goto fail;
        }
        Py_DECREF(n);
    }
    return Py_BuildValue("{s:K,s:K,s:K,s:N,s:K,s:K,s:K,s:K,s:N,s:I,s:N,s:N,s:K,s:d}", "samples",
                         (unsigned long long)s.samples, "first_ns", (unsigned long long)s.first_ns, "last_ns",
                         (unsigned long long)s.last_ns, "metrics", metrics, "fired", (unsigned long long)s.fired,
                         "resolved", (unsigned long long)s.resolved, "suppressed", (unsigned long long)s.suppressed,
                         "dropped", (unsigned long long)s.dropped, "fired_by_kind", kinds, "active", s.active,
                         "oom_host_s", num_or_none(s.oom_host_s), "oom_gpu_s", num_or_none(s.oom_gpu_s), "batches",
                         (unsigned long long)s.batches, "data_wait_s", s.data_wait_s);
fail:
    Py_XDECREF(metrics);
    Py_XDECREF(kinds);
    return NULL;
}

static PyObject *Monitor_memory_bytes(MonitorObject *self, PyObject *Py_UNUSED(ignored)) {
    return PyLong_FromSize_t(stall_monitor_memory_bytes(self->m));
}

static PyObject *Monitor_get_running(MonitorObject *self, void *Py_UNUSED(c)) {
    return PyBool_FromLong(self->engine != NULL);
}

PyObject *nat_mon_metric_names(PyObject *module, PyObject *unused) {
    (void)module, (void)unused;
    PyObject *l = PyList_New(STALL_MON_COUNT_);
    for (int i = 0; l && i < STALL_MON_COUNT_; i++) {
        PyObject *s = PyUnicode_FromString(stall_mon_metric_name(i));
        if (!s) {
            Py_CLEAR(l);
            break;
        }
        PyList_SET_ITEM(l, i, s);
    }
    return l;
}

const char nat_mon_metric_names_doc[] =
    "mon_metric_names()\n--\n\nThe live monitor's metric names (stall_mon_metric_name), in order.";

static PyMethodDef monitor_methods[] = {
    {"add_rule", (PyCFunction)(void (*)(void))Monitor_add_rule, METH_VARARGS | METH_KEYWORDS,
     "add_rule($self, name, metric, threshold, *, below=False, for_s=0.0, hysteresis=0.0, severity=0.5)\n--\n\n"
     "Raise one alert when metric stays above (below) threshold for for_s seconds; it clears once back\n"
     "past threshold -/+ hysteresis."},
    {"remove_rule", (PyCFunction)Monitor_remove_rule, METH_O,
     "remove_rule($self, name, /)\n--\n\nRemove a rule (its raised alert is resolved); KeyError if none."},
    {"add_default_rules", (PyCFunction)(void (*)(void))Monitor_add_default_rules, METH_VARARGS | METH_KEYWORDS,
     "add_default_rules($self, *, memory=0.9, gpu=0.9, cpu=0.9)\n--\n\nThe rules of stall_monitor_add_default_rules."},
    {"start", (PyCFunction)Monitor_start, METH_O,
     "start($self, engine, /)\n--\n\nStart the C thread reading engine every interval."},
    {"stop", (PyCFunction)Monitor_stop, METH_NOARGS, "stop($self, /)\n--\n\nStop the thread (queued alerts stay)."},
    {"observe", (PyCFunction)Monitor_observe, METH_VARARGS,
     "observe($self, t_ns, values, /)\n--\n\nOne sample: values maps metric names to numbers (None or\n"
     "missing: unknown). Returns the alert events it made."},
    {"tick", (PyCFunction)Monitor_tick, METH_O, "tick($self, engine, /)\n--\n\nRead engine once and observe it."},
    {"next", (PyCFunction)(void (*)(void))Monitor_next, METH_VARARGS | METH_KEYWORDS,
     "next($self, timeout=None)\n--\n\nThe oldest queued alert as a dict, or None after timeout seconds\n"
     "(None: wait until one comes or wake())."},
    {"wake", (PyCFunction)Monitor_wake, METH_NOARGS, "wake($self, /)\n--\n\nMake a waiting next() return None."},
    {"summary", (PyCFunction)Monitor_summary, METH_NOARGS,
     "summary($self, /)\n--\n\nSamples, per-metric avg/min/max/last/n, alert counts, OOM predictions."},
    {"memory_bytes", (PyCFunction)Monitor_memory_bytes, METH_NOARGS,
     "memory_bytes($self, /)\n--\n\nThe monitor's own heap bytes (fixed at creation)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef monitor_getset[] = {
    {"running", (getter)Monitor_get_running, NULL, "True while the thread runs.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot monitor_slots[] = {
    {Py_tp_new, Monitor_new},
    {Py_tp_dealloc, Monitor_dealloc},
    {Py_tp_methods, monitor_methods},
    {Py_tp_getset, monitor_getset},
    {Py_tp_doc, "Monitor(*, interval=1.0, loop_span=1.0, min_severity=0.0, spike_score=6, shift_score=8,\n"
                "        trend_r2=0.9, trend_change=0.1, oom_horizon=1800, window=60, trend_window=60,\n"
                "        trend_every=10, queue=256, anomalies=True)\n"
                "The live monitor: alert rules, anomalies, memory exhaustion prediction."},
    {0, NULL},
};

static PyType_Spec monitor_spec = {"stall._native.Monitor", sizeof(MonitorObject), 0, Py_TPFLAGS_DEFAULT,
                                   monitor_slots};

int nat_monitor_exec(PyObject *m) {
    PyObject *t = PyType_FromModuleAndSpec(m, &monitor_spec, NULL);
    if (!t) return -1;
    int rc = PyModule_AddType(m, (PyTypeObject *)t);
    Py_DECREF(t);
    return rc;
}
