/*
 * native.h - private header of stall._native (not installed): the module
 * state shared by the files of the extension (module.c: functions, Session,
 * Reader; ops.c: Profiler, OpSpan, FunctionSpan, register_kind; engine.c:
 * Engine, metric_names) and the argument helpers they share. Symbols
 * declared here are hidden: the module exports only PyInit__native.
 */
#ifndef STALL_NATIVE_H
#define STALL_NATIVE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "stall.h"

#if PY_VERSION_HEX < 0x030A0000 /* Python 3.9 */
static inline PyObject *stall_new_ref(PyObject *o) {
    Py_INCREF(o);
    return o;
}
#define Py_NewRef(o) stall_new_ref((PyObject *)(o))
#endif

/* Names per process (stall_intern: "4096 names per process"); ids are 1..this. */
#define NAME_IDS 4096u
/* Identity cache slots (power of two): str object address -> name id. */
#define NAME_HITS 64u
/* The str -> id dict stops growing here (stall_intern fails past NAME_IDS
 * anyway); names beyond it are interned at each use. */
#define NAME_DICT_MAX 16384

typedef struct name_hit_t {
    PyObject *str; /* strong reference to an exact str, or NULL */
    stall_name_t id;
} name_hit_t;

/* Identity cache slots (power of two): registered object address -> kind. */
#define KIND_HITS 32u

typedef struct kind_hit_t {
    PyObject *obj; /* strong reference to an object given to register_kind, or NULL */
    int kind;
} kind_hit_t;

typedef struct stall_state {
    PyTypeObject *session_type;
    PyTypeObject *reader_type;
    PyTypeObject *record_type; /* struct sequence: one drained record */
    PyObject *names;           /* dict: exact str -> int name id */
    name_hit_t hits[NAME_HITS];
    /* ops.c */
    PyTypeObject *profiler_type;
    PyTypeObject *opspan_type;
    PyTypeObject *funcspan_type;
    PyObject *kinds;           /* dict: object given to register_kind -> int kind */
    kind_hit_t khits[KIND_HITS];
    /* engine.c */
    PyTypeObject *engine_type;
} stall_state;

static inline stall_state *get_state(PyObject *module) {
    return (stall_state *)PyModule_GetState(module);
}

#define NAT_HIDDEN __attribute__((visibility("hidden")))

/* ---------------------------------------------------- argument helpers (module.c) */

NAT_HIDDEN int u64_arg(PyObject *o, const char *fn, const char *what, uint64_t *out);
NAT_HIDDEN int u32_arg(PyObject *o, const char *fn, const char *what, uint32_t *out);
NAT_HIDDEN const char *text_arg(PyObject *o, const char *fn, const char *what, int allow_empty);
NAT_HIDDEN PyObject *path_arg(PyObject *o, const char *fn, const char *what);
NAT_HIDDEN int gather_args(const char *fn, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                           const char *const *names, int npos_only, int nreq, int nmax, PyObject **out);
NAT_HIDDEN int intern_str(PyObject *name, const char *fn, stall_name_t *out);
NAT_HIDDEN int str_id_slow(stall_state *st, PyObject *name, const char *fn, stall_name_t *out);
NAT_HIDDEN PyObject *decode_text(const char *s);
/* Sets d[key] = v and drops the reference to v; -1 when v is NULL or on failure. */
NAT_HIDDEN int dict_set(PyObject *d, const char *key, PyObject *v);

/* Parses a span kind: an int (a stall.SpanKind is one) in 0..KIND_COUNT-1. */
static inline int kind_arg(PyObject *o, const char *fn, int *out) {
    if (PyLong_Check(o) && !PyBool_Check(o)) {
        int overflow;
        long k = PyLong_AsLongAndOverflow(o, &overflow);
        if (!overflow && k >= 0 && k < STALL_KIND_COUNT_) {
            *out = (int)k;
            return 0;
        }
        if (k == -1 && PyErr_Occurred()) return -1;
        PyErr_Format(PyExc_ValueError, "%s(): kind must be a span kind in 0..%d, got %R", fn,
                     STALL_KIND_COUNT_ - 1, o);
        return -1;
    }
    PyErr_Format(PyExc_TypeError, "%s(): kind must be an int (a stall.SpanKind), not %.100s", fn,
                 Py_TYPE(o)->tp_name);
    return -1;
}

static inline name_hit_t *hit_slot(stall_state *st, PyObject *s) {
    uintptr_t p = (uintptr_t)s;
    return &st->hits[((p >> 4) ^ (p >> 12)) & (NAME_HITS - 1)];
}

/* Parses a span name: a str (interned, cached) or an int name id. */
static inline int name_arg(stall_state *st, PyObject *name, const char *fn, stall_name_t *out) {
    if (PyUnicode_CheckExact(name)) {
        name_hit_t *h = hit_slot(st, name);
        if (h->str == name) {
            *out = h->id;
            return 0;
        }
        return str_id_slow(st, name, fn, out);
    }
    if (PyLong_Check(name) && !PyBool_Check(name)) {
        unsigned long v = PyLong_AsUnsignedLong(name);
        if (v == (unsigned long)-1 && PyErr_Occurred()) {
            if (!PyErr_ExceptionMatches(PyExc_OverflowError)) return -1;
            PyErr_Clear();
            v = (unsigned long)UINT32_MAX + 1;
        }
        if (v > UINT32_MAX) {
            PyErr_Format(PyExc_ValueError, "%s(): name id must be in 0..4294967295, got %R", fn, name);
            return -1;
        }
        *out = (stall_name_t)v;
        return 0;
    }
    if (PyUnicode_Check(name)) return intern_str(name, fn, out); /* a str subclass: not cached */
    PyErr_Format(PyExc_TypeError, "%s(): name must be a str or an int name id, not %.100s", fn,
                 Py_TYPE(name)->tp_name);
    return -1;
}

/* ------------------------------------------- ops.c and engine.c */

/* Adds Profiler, OpSpan, FunctionSpan to the module; 0 or -1. */
NAT_HIDDEN int nat_ops_exec(PyObject *m, stall_state *st);
NAT_HIDDEN int nat_ops_traverse(stall_state *st, visitproc visit, void *arg);
NAT_HIDDEN void nat_ops_clear(stall_state *st);
/* Adds Engine to the module; 0 or -1. */
NAT_HIDDEN int nat_engine_exec(PyObject *m, stall_state *st);
NAT_HIDDEN int nat_engine_traverse(stall_state *st, visitproc visit, void *arg);
NAT_HIDDEN void nat_engine_clear(stall_state *st);
/* The stall_engine_t of an Engine object, pinned: Engine.close() refuses
 * while pinned, and the object is kept alive (a new reference). TypeError
 * for another object, ValueError for a closed engine (NULL). */
NAT_HIDDEN stall_engine_t *nat_engine_pin(PyObject *engine, const char *fn);
/* Releases a pin (and its reference). */
NAT_HIDDEN void nat_engine_unpin(PyObject *engine);

NAT_HIDDEN PyObject *nat_register_kind(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
NAT_HIDDEN PyObject *nat_metric_names(PyObject *module, PyObject *unused);
NAT_HIDDEN extern const char nat_register_kind_doc[];
NAT_HIDDEN extern const char nat_metric_names_doc[];
NAT_HIDDEN int nat_monitor_exec(PyObject *m); /* monitor.c: Monitor */
NAT_HIDDEN int nat_metrics_exec(PyObject *m); /* metrics.c: MetricsServer */
NAT_HIDDEN PyObject *nat_mon_metric_names(PyObject *module, PyObject *unused);
NAT_HIDDEN extern const char nat_mon_metric_names_doc[];
NAT_HIDDEN PyObject *nat_render_report_html(PyObject *module, PyObject *json); /* export.c */
NAT_HIDDEN extern const char nat_render_report_html_doc[];
NAT_HIDDEN PyObject *nat_loader_model_batch_s(PyObject *module, PyObject *args, PyObject *kwargs); /* export.c */
NAT_HIDDEN extern const char nat_loader_model_batch_s_doc[];

/* Raises the error of a session directory Reader()/Engine() could not open
 * (module.c). */
NAT_HIDDEN void raise_open_error(const char *who, const char *libmsg, PyObject *dir, const char *path);

#endif /* STALL_NATIVE_H */
