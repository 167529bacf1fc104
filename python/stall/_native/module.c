/*
 * module.c - stall._native, the CPython extension module: the spans, sessions
 * and reader of include/stall.h as Python functions and types, and the
 * module itself (state, initialisation). Profiler, OpSpan, FunctionSpan and
 * register_kind are in ops.c, Engine in engine.c; native.h is shared.
 *
 * Built the way CPython's Modules/_lsprof.c is: multi-phase initialisation,
 * every Python object in module state (no static PyObject *), heap types made
 * with PyType_FromModuleAndSpec, bad arguments raised as TypeError/ValueError
 * naming the function and the argument, the library's own message
 * (stall_last_error) passed on when one of its calls fails.
 *
 * The hot calls, begin() and end(), use METH_FASTCALL, parse no keywords on
 * their fast path and allocate nothing. A name given as a str is turned into
 * its id through a small identity cache (the str object's address, a strong
 * reference kept so the address stays its own), then a dict of str -> id in
 * module state, and is interned by the library only the first time it is seen.
 */
#include "native.h"

/* ---------------------------------------------------- argument helpers */

/* Parses an unsigned 64-bit number argument named `what`. */
int u64_arg(PyObject *o, const char *fn, const char *what, uint64_t *out) {
    if (!PyLong_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s(): %s must be an int, not %.100s", fn, what, Py_TYPE(o)->tp_name);
        return -1;
    }
    unsigned long long v = PyLong_AsUnsignedLongLong(o);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError)) return -1;
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "%s(): %s must be in 0..2**64-1, got %R", fn, what, o);
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

/* Parses an unsigned 32-bit option (0 meaning "the default"). */
int u32_arg(PyObject *o, const char *fn, const char *what, uint32_t *out) {
    uint64_t v;
    if (u64_arg(o, fn, what, &v) < 0) return -1;
    if (v > UINT32_MAX) {
        PyErr_Format(PyExc_ValueError, "%s(): %s must be in 0..4294967295, got %R", fn, what, o);
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

/* Returns the UTF-8 of a non-empty str without NUL characters (owned by the
 * str object), or NULL with TypeError/ValueError naming the argument. */
const char *text_arg(PyObject *o, const char *fn, const char *what, int allow_empty) {
    if (!PyUnicode_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s(): %s must be a str, not %.100s", fn, what, Py_TYPE(o)->tp_name);
        return NULL;
    }
    Py_ssize_t len;
    const char *s = PyUnicode_AsUTF8AndSize(o, &len);
    if (!s) return NULL;
    if (len == 0 && !allow_empty) {
        PyErr_Format(PyExc_ValueError, "%s(): %s must be a non-empty str", fn, what);
        return NULL;
    }
    if (strlen(s) != (size_t)len) {
        PyErr_Format(PyExc_ValueError, "%s(): %s must not contain NUL characters", fn, what);
        return NULL;
    }
    return s;
}

/* Returns a new bytes object with the file system path of `o` (str, bytes or
 * os.PathLike), or NULL with a TypeError naming the argument. */
PyObject *path_arg(PyObject *o, const char *fn, const char *what) {
    PyObject *p = PyOS_FSPath(o);
    if (!p) {
        if (PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "%s(): %s must be a str or os.PathLike, not %.100s", fn, what,
                         Py_TYPE(o)->tp_name);
        }
        return NULL;
    }
    PyObject *bytes = NULL;
    int ok = PyUnicode_FSConverter(p, &bytes);
    Py_DECREF(p);
    if (!ok) return NULL;
    if (PyBytes_GET_SIZE(bytes) == 0) {
        Py_DECREF(bytes);
        PyErr_Format(PyExc_ValueError, "%s(): %s must not be empty", fn, what);
        return NULL;
    }
    return bytes;
}

/* Gathers positional and keyword arguments of a METH_FASTCALL|METH_KEYWORDS
 * call into out[0..nmax-1] (borrowed, NULL when absent). `names` lists the
 * parameter names; the first `npos_only` are positional-only; `nreq` are
 * required. For the slow paths only. */
int gather_args(const char *fn, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                       const char *const *names, int npos_only, int nreq, int nmax, PyObject **out) {
    for (int i = 0; i < nmax; i++) out[i] = NULL;
    if (nargs > nmax) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most %d arguments (%zd given)", fn, nmax, nargs);
        return -1;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) out[i] = args[i];
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, k);
        int found = -1;
        for (int i = npos_only; i < nmax; i++) {
            if (PyUnicode_CompareWithASCIIString(key, names[i]) == 0) {
                found = i;
                break;
            }
        }
        if (found < 0) {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument %R", fn, key);
            return -1;
        }
        if (out[found]) {
            PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'", fn, names[found]);
            return -1;
        }
        out[found] = args[nargs + k];
    }
    for (int i = 0; i < nreq; i++) {
        if (!out[i]) {
            PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s' (pos %d)", fn, names[i], i + 1);
            return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------ names */

/* Interns a str (checked), without any cache. */
int intern_str(PyObject *name, const char *fn, stall_name_t *out) {
    const char *s = text_arg(name, fn, "name", 0);
    if (!s) return -1;
    *out = stall_intern(s); /* 0 when the table is full: the span is recorded unnamed */
    return 0;
}

/* The name id of an exact str missed by the identity cache: from the dict,
 * else interned and remembered. Fills the identity cache. */
int __attribute__((noinline)) str_id_slow(stall_state *st, PyObject *name, const char *fn,
                                                 stall_name_t *out) {
    stall_name_t id;
    PyObject *v = PyDict_GetItemWithError(st->names, name); /* borrowed */
    if (v) {
        id = (stall_name_t)PyLong_AsUnsignedLong(v);
    } else {
        if (PyErr_Occurred()) return -1;
        if (intern_str(name, fn, &id) < 0) return -1;
        if (PyDict_GET_SIZE(st->names) < NAME_DICT_MAX) {
            PyObject *idobj = PyLong_FromUnsignedLong(id);
            if (!idobj) return -1;
            int rc = PyDict_SetItem(st->names, name, idobj);
            Py_DECREF(idobj);
            if (rc < 0) return -1;
        }
    }
    name_hit_t *h = hit_slot(st, name);
    PyObject *old = h->str;
    Py_INCREF(name);
    h->str = name;
    h->id = id;
    Py_XDECREF(old);
    *out = id;
    return 0;
}

/* ------------------------------------------------- module functions */

PyDoc_STRVAR(version_doc,
"version($module, /)\n--\n\n"
"Return the version string of the stall library linked into this module.");

static PyObject *mod_version(PyObject *module, PyObject *Py_UNUSED(ignored)) {
    (void)module;
    return PyUnicode_FromString(stall_version());
}

PyDoc_STRVAR(now_ns_doc,
"now_ns($module, /)\n--\n\n"
"Return the current time in integer nanoseconds of CLOCK_MONOTONIC, the\n"
"clock of every record.");

static PyObject *mod_now_ns(PyObject *module, PyObject *Py_UNUSED(ignored)) {
    (void)module;
    return PyLong_FromUnsignedLongLong(stall_now_ns());
}

PyDoc_STRVAR(kind_name_doc,
"kind_name($module, kind, /)\n--\n\n"
"Return the short name of a span kind (\"data_loading\", ...), or \"unknown\"\n"
"for an int out of range.");

static PyObject *mod_kind_name(PyObject *module, PyObject *kind) {
    (void)module;
    if (!PyLong_Check(kind) || PyBool_Check(kind)) {
        PyErr_Format(PyExc_TypeError, "kind_name(): kind must be an int, not %.100s", Py_TYPE(kind)->tp_name);
        return NULL;
    }
    int overflow;
    long k = PyLong_AsLongAndOverflow(kind, &overflow);
    if (k == -1 && PyErr_Occurred()) return NULL;
    if (overflow || k < INT32_MIN || k > INT32_MAX) k = -1;
    return PyUnicode_FromString(stall_kind_name((int)k));
}

PyDoc_STRVAR(intern_doc,
"intern($module, name, /)\n--\n\n"
"Intern an operation name and return its id (an int), usable in place of\n"
"the str in begin() and instant(). Ids are valid in this process and its\n"
"forked children. Names are truncated to 87 bytes of UTF-8. Returns 0 when\n"
"the process's name table (4096 names) is full.");

static PyObject *mod_intern(PyObject *module, PyObject *name) {
    stall_name_t id;
    if (PyUnicode_CheckExact(name)) {
        if (name_arg(get_state(module), name, "intern", &id) < 0) return NULL;
    } else if (intern_str(name, "intern", &id) < 0) {
        return NULL;
    }
    return PyLong_FromUnsignedLong(id);
}

PyDoc_STRVAR(begin_doc,
"begin($module, kind, name, /)\n--\n\n"
"Open a span of `kind` (an int, a stall.SpanKind) on the calling thread.\n"
"`name` is a str or an int id from intern(). Spans nest: end() closes the\n"
"innermost one. Does nothing when the process records into no session.");

/* begin() and begin_cpu(): kind, name; `extra` is ORed into the kind */
static PyObject *span_open(PyObject *module, PyObject *const *args, Py_ssize_t nargs, const char *fn,
                           int extra) {
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "%s() takes exactly 2 arguments (kind, name) (%zd given)", fn, nargs);
        return NULL;
    }
    int kind;
    stall_name_t id;
    if (kind_arg(args[0], fn, &kind) < 0) return NULL;
    if (name_arg(get_state(module), args[1], fn, &id) < 0) return NULL;
    stall_begin_id(kind | extra, id);
    Py_RETURN_NONE;
}

static PyObject *mod_begin(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    return span_open(module, args, nargs, "begin", 0);
}

PyDoc_STRVAR(begin_cpu_doc,
"begin_cpu($module, kind, name, /)\n--\n\n"
"Like begin(), and the span also records its thread CPU time (cpu_ns) even\n"
"when the session does not record CPU time for every span. For coarse\n"
"spans (a batch fetch) whose on-CPU share matters; ~400 ns more.");

static PyObject *mod_begin_cpu(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    return span_open(module, args, nargs, "begin_cpu", STALL_WITH_CPU);
}

PyDoc_STRVAR(complete_doc,
"complete($module, kind, name, start_ns, arg=0, /)\n--\n\n"
"Record a span of `kind` named `name` that began at start_ns (a now_ns()\n"
"value taken earlier on this thread) and ends now, at the current nesting\n"
"depth (spans recorded since then at the same depth lie inside it in time\n"
"but are its siblings for self time).\n"
"For intervals that do not open and close in one place (a training step).");

static PyObject *mod_complete(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 3 || nargs > 4) {
        PyErr_Format(PyExc_TypeError,
                     "complete() takes 3 or 4 arguments (kind, name, start_ns, arg=0) (%zd given)", nargs);
        return NULL;
    }
    int kind;
    stall_name_t id;
    uint64_t start = 0, arg = 0;
    if (kind_arg(args[0], "complete", &kind) < 0) return NULL;
    if (name_arg(get_state(module), args[1], "complete", &id) < 0) return NULL;
    if (u64_arg(args[2], "complete", "start_ns", &start) < 0) return NULL;
    if (nargs == 4 && u64_arg(args[3], "complete", "arg", &arg) < 0) return NULL;
    stall_complete(kind, id, start, arg);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(depth_doc,
"depth($module, /)\n--\n\n"
"Return the number of spans open on the calling thread.");

static PyObject *mod_depth(PyObject *module, PyObject *Py_UNUSED(ignored)) {
    (void)module;
    return PyLong_FromUnsignedLong(stall_depth());
}

PyDoc_STRVAR(end_doc,
"end($module, /, arg=0)\n--\n\n"
"Close the innermost open span of the calling thread, recording `arg` with\n"
"it (an int in 0..2**64-1 the caller attaches: bytes, batch size...). An\n"
"end() without an open span is ignored. The span is closed even when `arg`\n"
"is invalid (recorded with 0), so a bad arg never unbalances the spans.");

static const char *const end_names[] = {"arg"};

static PyObject *__attribute__((noinline)) end_slow(PyObject *const *args, Py_ssize_t nargs,
                                                    PyObject *kwnames) {
    PyObject *a[1];
    uint64_t arg = 0;
    if (gather_args("end", args, nargs, kwnames, end_names, 0, 0, 1, a) < 0 ||
        (a[0] && u64_arg(a[0], "end", "arg", &arg) < 0)) {
        stall_end();
        return NULL;
    }
    stall_end_arg(arg);
    Py_RETURN_NONE;
}

static PyObject *mod_end(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    (void)module;
    if (nargs == 0 && kwnames == NULL) {
        stall_end();
        Py_RETURN_NONE;
    }
    if (nargs == 1 && kwnames == NULL && PyLong_CheckExact(args[0])) {
        unsigned long long v = PyLong_AsUnsignedLongLong(args[0]);
        if (!(v == (unsigned long long)-1 && PyErr_Occurred())) {
            stall_end_arg((uint64_t)v);
            Py_RETURN_NONE;
        }
        PyErr_Clear(); /* end_slow raises the right error */
    }
    return end_slow(args, nargs, kwnames);
}

PyDoc_STRVAR(instant_doc,
"instant($module, kind, name, /, arg=0)\n--\n\n"
"Record an instant event (a point in time, no duration) of `kind` named\n"
"`name` (a str or an int id) with `arg`.");

static const char *const instant_names[] = {"kind", "name", "arg"};

static PyObject *mod_instant(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    PyObject *a[3];
    if (gather_args("instant", args, nargs, kwnames, instant_names, 2, 2, 3, a) < 0) return NULL;
    int kind;
    stall_name_t id;
    uint64_t arg = 0;
    if (kind_arg(a[0], "instant", &kind) < 0) return NULL;
    if (name_arg(get_state(module), a[1], "instant", &id) < 0) return NULL;
    if (a[2] && u64_arg(a[2], "instant", "arg", &arg) < 0) return NULL;
    stall_instant(kind, id, arg);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(session_dir_doc,
"session_dir($module, /)\n--\n\n"
"Return the session directory this process records into (one it created,\n"
"or STALL_SESSION_DIR inherited from a parent), or None.");

static PyObject *mod_session_dir(PyObject *module, PyObject *Py_UNUSED(ignored)) {
    (void)module;
    const char *d = stall_session_dir(NULL);
    if (!d) Py_RETURN_NONE;
    return PyUnicode_DecodeFSDefault(d);
}

PyDoc_STRVAR(set_process_label_doc,
"set_process_label($module, label, /)\n--\n\n"
"Set this process's label (a role such as \"main\" or \"worker 3\", at most 31\n"
"bytes of UTF-8 are kept), shown by readers in Reader.processes().");

static PyObject *mod_set_process_label(PyObject *module, PyObject *label) {
    (void)module;
    const char *s = text_arg(label, "set_process_label", "label", 1);
    if (!s) return NULL;
    if (stall_set_process_label(s) < 0) {
        PyErr_SetString(PyExc_ValueError, stall_last_error());
        return NULL;
    }
    Py_RETURN_NONE;
}

/* ---------------------------------------------------------- Session */

typedef struct SessionObject {
    PyObject_HEAD
    stall_session_t *s; /* NULL once stopped */
    PyObject *name;     /* str */
    PyObject *dir;      /* str, or None */
} SessionObject;

/* Makes os.environ agree with the C environment for STALL_SESSION_DIR, which
 * the library sets with setenv(): os.environ is a copy taken at start-up, and
 * code that passes env=dict(os.environ) to a child would otherwise lose it. */
static int sync_environ(void) {
    const char *v = getenv("STALL_SESSION_DIR");
    if (!v) return 0;
    PyObject *os = PyImport_ImportModule("os");
    if (!os) return -1;
    PyObject *environ = PyObject_GetAttrString(os, "environ");
    Py_DECREF(os);
    if (!environ) return -1;
    int rc = -1;
    PyObject *val = PyUnicode_DecodeFSDefault(v);
    PyObject *cur = val ? PyMapping_GetItemString(environ, "STALL_SESSION_DIR") : NULL;
    if (!cur && val && PyErr_ExceptionMatches(PyExc_KeyError)) PyErr_Clear();
    if (val && !PyErr_Occurred()) {
        int same = cur ? PyObject_RichCompareBool(cur, val, Py_EQ) : 0;
        if (same < 0) goto done;
        rc = same ? 0 : PyMapping_SetItemString(environ, "STALL_SESSION_DIR", val);
    }
done:
    Py_XDECREF(cur);
    Py_XDECREF(val);
    Py_DECREF(environ);
    return rc;
}

static PyObject *Session_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"name", "base_dir", "ring_records", "max_threads", "thread_cpu_time",
                             "keep", "no_export", NULL};
    PyObject *name, *base_dir = Py_None, *ring = NULL, *threads = NULL;
    int cpu = 0, keep = 0, no_export = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|$OOOppp:Session", kwlist, &name, &base_dir, &ring,
                                     &threads, &cpu, &keep, &no_export))
        return NULL;

    stall_options_t opts;
    memset(&opts, 0, sizeof opts);
    PyObject *base_bytes = NULL;
    const char *cname = text_arg(name, "Session", "name", 0);
    if (!cname) return NULL;
    if (ring && u32_arg(ring, "Session", "ring_records", &opts.ring_records) < 0) return NULL;
    if (threads && u32_arg(threads, "Session", "max_threads", &opts.max_threads) < 0) return NULL;
    if (base_dir != Py_None) {
        base_bytes = path_arg(base_dir, "Session", "base_dir");
        if (!base_bytes) return NULL;
        opts.base_dir = PyBytes_AS_STRING(base_bytes);
    }
    opts.thread_cpu_time = cpu;
    opts.keep = keep;
    opts.no_export = no_export;

    stall_session_t *s;
    char err[512] = "";
    Py_BEGIN_ALLOW_THREADS
    s = stall_session_start(cname, &opts);
    if (!s) snprintf(err, sizeof err, "%s", stall_last_error());
    Py_END_ALLOW_THREADS
    Py_XDECREF(base_bytes);
    if (!s) {
        PyErr_Format(PyExc_ValueError, "Session(): %s", err[0] ? err : "cannot start the session");
        return NULL;
    }
    if (!no_export && sync_environ() < 0) goto fail;

    SessionObject *self = (SessionObject *)type->tp_alloc(type, 0);
    if (!self) goto fail;
    self->s = s;
    Py_INCREF(name);
    self->name = name;
    const char *d = stall_session_dir(s);
    self->dir = d ? PyUnicode_DecodeFSDefault(d) : Py_NewRef(Py_None);
    if (!self->dir) {
        Py_DECREF(self); /* stops the session */
        return NULL;
    }
    return (PyObject *)self;
fail:
    stall_session_stop(s);
    return NULL;
}

static void Session_dealloc(SessionObject *self) {
    PyTypeObject *tp = Py_TYPE(self);
    if (self->s) {
        stall_session_stop(self->s);
        self->s = NULL;
    }
    Py_CLEAR(self->name);
    Py_CLEAR(self->dir);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

PyDoc_STRVAR(session_stop_doc,
"stop($self, /)\n--\n\n"
"Stop the session: record its end marker. The process goes on recording\n"
"into the session directory (other sessions may be open, a reader may be\n"
"draining). Stopping a stopped session does nothing.");

static PyObject *Session_stop(SessionObject *self, PyObject *Py_UNUSED(ignored)) {
    if (self->s) {
        stall_session_stop(self->s);
        self->s = NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *Session_enter(SessionObject *self, PyObject *Py_UNUSED(ignored)) {
    if (!self->s) {
        PyErr_Format(PyExc_ValueError, "Session %R is stopped", self->name);
        return NULL;
    }
    return Py_NewRef(self);
}

static PyObject *Session_exit(SessionObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)args;
    (void)nargs;
    if (self->s) {
        stall_session_stop(self->s);
        self->s = NULL;
    }
    Py_RETURN_FALSE; /* never swallows the exception */
}

static PyObject *Session_get_name(SessionObject *self, void *Py_UNUSED(c)) { return Py_NewRef(self->name); }
static PyObject *Session_get_dir(SessionObject *self, void *Py_UNUSED(c)) { return Py_NewRef(self->dir); }
static PyObject *Session_get_stopped(SessionObject *self, void *Py_UNUSED(c)) {
    return PyBool_FromLong(self->s == NULL);
}

static PyObject *Session_repr(SessionObject *self) {
    return PyUnicode_FromFormat("<stall.Session %R dir=%R %s>", self->name, self->dir,
                                self->s ? "running" : "stopped");
}

static PyMethodDef session_methods[] = {
    {"stop", (PyCFunction)Session_stop, METH_NOARGS, session_stop_doc},
    {"__enter__", (PyCFunction)Session_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))Session_exit, METH_FASTCALL, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef session_getset[] = {
    {"name", (getter)Session_get_name, NULL, "The session's name.", NULL},
    {"dir", (getter)Session_get_dir, NULL,
     "The session directory the process records into (str), or None.", NULL},
    {"stopped", (getter)Session_get_stopped, NULL, "True once stop() was called.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyDoc_STRVAR(session_doc,
"Session(name, *, base_dir=None, ring_records=0, max_threads=0,\n"
"        thread_cpu_time=False, keep=False, no_export=False)\n"
"--\n\n"
"A named stretch of the run that spans are recorded into.\n\n"
"The first session of a process creates the session directory (under\n"
"base_dir, else $STALL_DIR, /dev/shm or the temporary folder) and exports\n"
"it as STALL_SESSION_DIR (also in os.environ) unless no_export is true, so\n"
"that child processes record into it; later sessions, and processes that\n"
"inherit STALL_SESSION_DIR, join it and only mark their start and end.\n"
"base_dir, ring_records (records per thread, a power of two >= 64),\n"
"max_threads (1..1024) and no_export apply only when the directory is\n"
"created; 0 means the default. thread_cpu_time=True records each span's\n"
"thread CPU time from then on, in the whole process. keep=True leaves the\n"
"directory in place when the creating process exits.\n\n"
"Raises ValueError with the library's message when the session cannot\n"
"start. Use it as a context manager, or call stop(); a session that is\n"
"garbage-collected while running is stopped.");

static PyType_Slot session_slots[] = {
    {Py_tp_doc, (void *)session_doc},
    {Py_tp_new, (void *)Session_new},
    {Py_tp_dealloc, (void *)Session_dealloc},
    {Py_tp_repr, (void *)Session_repr},
    {Py_tp_methods, session_methods},
    {Py_tp_getset, session_getset},
    {0, NULL},
};

#ifndef Py_TPFLAGS_IMMUTABLETYPE
#define Py_TPFLAGS_IMMUTABLETYPE 0
#endif

static PyType_Spec session_spec = {
    .name = "stall.Session",
    .basicsize = sizeof(SessionObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = session_slots,
};

/* ------------------------------------------------------------ Reader */

typedef struct ReaderObject {
    PyObject_HEAD
    stall_reader_t *r;  /* NULL once closed */
    PyObject *dir;      /* str */
    PyObject ***names;  /* per process index: NAME_IDS+1 str or NULL, filled lazily */
    size_t nnames;
} ReaderObject;

static void reader_free_names(ReaderObject *self) {
    for (size_t i = 0; i < self->nnames; i++) {
        if (!self->names[i]) continue;
        for (size_t k = 0; k <= NAME_IDS; k++) Py_XDECREF(self->names[i][k]);
        PyMem_Free(self->names[i]);
    }
    PyMem_Free(self->names);
    self->names = NULL;
    self->nnames = 0;
}

PyObject *decode_text(const char *s) {
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "replace");
}

/* Returns a new reference to the str of name id `id` in process `proc`. A
 * resolved name never changes, so it is kept for the reader's lifetime. */
static PyObject *reader_name(ReaderObject *self, uint32_t proc, uint32_t id) {
    if (id == 0 || id > NAME_IDS) return decode_text(stall_reader_name(self->r, proc, id));
    if (proc >= self->nnames) {
        size_t n = self->nnames ? self->nnames : 8;
        while (n <= proc) n *= 2;
        PyObject ***nn = PyMem_Realloc(self->names, n * sizeof *nn);
        if (!nn) return PyErr_NoMemory();
        memset(nn + self->nnames, 0, (n - self->nnames) * sizeof *nn);
        self->names = nn;
        self->nnames = n;
    }
    PyObject **tab = self->names[proc];
    if (!tab) {
        tab = PyMem_Calloc(NAME_IDS + 1, sizeof *tab);
        if (!tab) return PyErr_NoMemory();
        self->names[proc] = tab;
    }
    if (tab[id]) return Py_NewRef(tab[id]);
    const char *s = stall_reader_name(self->r, proc, id);
    PyObject *str = decode_text(s);
    if (str && s[0]) tab[id] = Py_NewRef(str); /* "" may still become known */
    return str;
}

static PyObject *u64_or_none(int valid, uint64_t v) {
    if (!valid) Py_RETURN_NONE;
    return PyLong_FromUnsignedLongLong(v);
}

/* One record as a stall.Record (a struct sequence). */
static PyObject *record_new(ReaderObject *self, PyTypeObject *rtype, const stall_reader_proc_t *proc,
                            const stall_record_t *r) {
    PyObject *rec = PyStructSequence_New(rtype);
    if (!rec) return NULL;
    int no_end = (r->flags & (STALL_REC_TRUNCATED | STALL_REC_OPEN)) != 0;
    PyObject *items[10] = {
        PyLong_FromUnsignedLong(r->pid),
        PyLong_FromUnsignedLong(r->tid),
        reader_name(self, proc->index, r->name),
        PyLong_FromLong(r->kind),
        PyLong_FromLong(r->depth),
        PyLong_FromUnsignedLongLong(r->start_ns),
        u64_or_none(!no_end, r->end_ns),
        u64_or_none((r->flags & STALL_REC_HAS_CPU) != 0, r->cpu_ns),
        PyLong_FromUnsignedLongLong(r->arg),
        PyLong_FromLong(r->flags),
    };
    int ok = 1;
    for (int i = 0; i < 10; i++) {
        if (!items[i]) ok = 0;
        PyStructSequence_SetItem(rec, i, items[i]); /* steals; NULL left as is */
    }
    if (!ok) {
        Py_DECREF(rec);
        return NULL;
    }
    return rec;
}

typedef struct drain_ctx_t {
    ReaderObject *self;
    PyTypeObject *rtype;
    PyObject *list;
    int failed; /* a Python error is set: stop, raise after the library call */
} drain_ctx_t;

static int on_records(void *arg, const stall_reader_proc_t *proc, const stall_record_t *recs, size_t n) {
    drain_ctx_t *c = arg;
    for (size_t i = 0; i < n; i++) {
        PyObject *rec = record_new(c->self, c->rtype, proc, &recs[i]);
        if (!rec || PyList_Append(c->list, rec) < 0) {
            Py_XDECREF(rec);
            c->failed = 1;
            return 1;
        }
        Py_DECREF(rec);
    }
    return 0;
}

static int reader_check_open(ReaderObject *self, const char *what) {
    if (self->r) return 0;
    PyErr_Format(PyExc_ValueError, "Reader.%s(): the reader is closed", what);
    return -1;
}

static PyObject *reader_collect(ReaderObject *self, const char *what,
                                ssize_t (*call)(stall_reader_t *, stall_record_fn, void *)) {
    if (reader_check_open(self, what) < 0) return NULL;
    stall_state *st = PyType_GetModuleState(Py_TYPE(self));
    if (!st) return NULL;
    drain_ctx_t c = {self, st->record_type, PyList_New(0), 0};
    if (!c.list) return NULL;
    ssize_t n = call(self->r, on_records, &c);
    if (c.failed) {
        Py_DECREF(c.list);
        return NULL;
    }
    if (n < 0) {
        Py_DECREF(c.list);
        PyErr_Format(PyExc_OSError, "Reader.%s(): %s", what, stall_last_error());
        return NULL;
    }
    return c.list;
}

PyDoc_STRVAR(reader_drain_doc,
"drain($self, /)\n--\n\n"
"Return every record written since the last drain, by every process of\n"
"the session, as a list of stall.Record (pid, tid, name, kind, depth,\n"
"start_ns, end_ns, cpu_ns, arg, flags). cpu_ns is None unless the record\n"
"has REC_HAS_CPU; end_ns is None for spans cut short (REC_TRUNCATED). The\n"
"records of each thread come in the order their spans ended.");

static PyObject *Reader_drain(ReaderObject *self, PyObject *Py_UNUSED(ignored)) {
    return reader_collect(self, "drain", stall_reader_drain);
}

PyDoc_STRVAR(reader_open_spans_doc,
"open_spans($self, /)\n--\n\n"
"Return the spans open right now in live processes (REC_OPEN, end_ns None),\n"
"without consuming anything: what each thread is doing.");

static PyObject *Reader_open_spans(ReaderObject *self, PyObject *Py_UNUSED(ignored)) {
    return reader_collect(self, "open_spans", stall_reader_open_spans);
}

int dict_set(PyObject *d, const char *key, PyObject *v) {
    if (!v) return -1;
    int rc = PyDict_SetItemString(d, key, v);
    Py_DECREF(v);
    return rc;
}

PyDoc_STRVAR(reader_processes_doc,
"processes($self, /)\n--\n\n"
"Return what the reader knows of each process seen so far, as a list of\n"
"dicts: index, pid, ppid, alive, closed (detached cleanly), start_ns,\n"
"dropped (spans lost), threads (rings in use), comm, label, records_read.");

static PyObject *Reader_processes(ReaderObject *self, PyObject *Py_UNUSED(ignored)) {
    if (reader_check_open(self, "processes") < 0) return NULL;
    size_t n = stall_reader_proc(self->r, 0, NULL);
    PyObject *list = PyList_New(0);
    if (!list) return NULL;
    for (size_t i = 0; i < n; i++) {
        stall_reader_proc_t p;
        memset(&p, 0, sizeof p);
        stall_reader_proc(self->r, i, &p);
        PyObject *d = PyDict_New();
        if (!d) goto fail;
        if (dict_set(d, "index", PyLong_FromUnsignedLong(p.index)) < 0 ||
            dict_set(d, "pid", PyLong_FromUnsignedLong(p.pid)) < 0 ||
            dict_set(d, "ppid", PyLong_FromUnsignedLong(p.ppid)) < 0 ||
            dict_set(d, "alive", PyBool_FromLong(p.alive)) < 0 ||
            dict_set(d, "closed", PyBool_FromLong(p.closed)) < 0 ||
            dict_set(d, "start_ns", PyLong_FromUnsignedLongLong(p.start_ns)) < 0 ||
            dict_set(d, "dropped", PyLong_FromUnsignedLongLong(p.dropped)) < 0 ||
            dict_set(d, "threads", PyLong_FromUnsignedLong(p.threads)) < 0 ||
            dict_set(d, "comm", decode_text(p.comm)) < 0 || dict_set(d, "label", decode_text(p.label)) < 0 ||
            dict_set(d, "records_read", PyLong_FromUnsignedLongLong(p.records_read)) < 0 ||
            PyList_Append(list, d) < 0) {
            Py_DECREF(d);
            goto fail;
        }
        Py_DECREF(d);
    }
    return list;
fail:
    Py_DECREF(list);
    return NULL;
}

/* Closes the reader; returns 0, or -1 (Python error set) when removing the
 * directory failed. */
static int reader_close(ReaderObject *self, int remove) {
    if (!self->r) return 0;
    stall_reader_t *r = self->r;
    self->r = NULL;
    reader_free_names(self);
    if (stall_reader_close(r, remove) < 0) {
        PyErr_Format(PyExc_OSError, "Reader.close(): %s", stall_last_error());
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(reader_close_doc,
"close($self, /, remove=False)\n--\n\n"
"Close the reader; with remove=True also delete the session directory.\n"
"Closing a closed reader does nothing.");

static const char *const close_names[] = {"remove"};

static PyObject *Reader_close(ReaderObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    PyObject *a[1];
    if (gather_args("close", args, nargs, kwnames, close_names, 0, 0, 1, a) < 0) return NULL;
    int remove = a[0] ? PyObject_IsTrue(a[0]) : 0;
    if (remove < 0) return NULL;
    if (reader_close(self, remove) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *Reader_enter(ReaderObject *self, PyObject *Py_UNUSED(ignored)) {
    if (reader_check_open(self, "__enter__") < 0) return NULL;
    return Py_NewRef(self);
}

static PyObject *Reader_exit(ReaderObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)args;
    (void)nargs;
    if (reader_close(self, 0) < 0) return NULL;
    Py_RETURN_FALSE;
}

/* Raises the error of a session directory that could not be opened: an
 * OSError subclass picked from errno (FileNotFoundError...) when the path
 * itself is unusable, else ValueError (not a session, already being read),
 * with the library's message. Shared by Reader() and Engine(). */
void raise_open_error(const char *who, const char *libmsg, PyObject *dir, const char *path) {
    struct stat st;
    int e = stat(path, &st) < 0 ? errno : 0;
    PyObject *msg = PyUnicode_FromFormat("%s(): %s", who, libmsg && *libmsg ? libmsg : "cannot open the session");
    if (msg && e) {
        PyObject *exc = PyObject_CallFunction(PyExc_OSError, "iOO", e, msg, dir);
        if (exc) {
            PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
            Py_DECREF(exc);
        }
    } else if (msg) {
        PyErr_SetObject(PyExc_ValueError, msg);
    }
    Py_XDECREF(msg);
}

static PyObject *Reader_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"dir", NULL};
    PyObject *dir;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O:Reader", kwlist, &dir)) return NULL;
    PyObject *bytes = path_arg(dir, "Reader", "dir");
    if (!bytes) return NULL;
    const char *path = PyBytes_AS_STRING(bytes);
    stall_reader_t *r = stall_reader_open(path);
    if (!r) {
        raise_open_error("Reader", stall_last_error(), dir, path);
        Py_DECREF(bytes);
        return NULL;
    }
    ReaderObject *self = (ReaderObject *)type->tp_alloc(type, 0);
    if (!self) {
        stall_reader_close(r, 0);
        Py_DECREF(bytes);
        return NULL;
    }
    self->r = r;
    self->dir = PyUnicode_DecodeFSDefault(path);
    Py_DECREF(bytes);
    if (!self->dir) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static void Reader_dealloc(ReaderObject *self) {
    PyTypeObject *tp = Py_TYPE(self);
    if (self->r) {
        stall_reader_close(self->r, 0);
        self->r = NULL;
    }
    reader_free_names(self);
    Py_CLEAR(self->dir);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyObject *Reader_get_dir(ReaderObject *self, void *Py_UNUSED(c)) { return Py_NewRef(self->dir); }
static PyObject *Reader_get_closed(ReaderObject *self, void *Py_UNUSED(c)) {
    return PyBool_FromLong(self->r == NULL);
}
static PyObject *Reader_get_session_name(ReaderObject *self, void *Py_UNUSED(c)) {
    if (reader_check_open(self, "session_name") < 0) return NULL;
    return decode_text(stall_reader_session_name(self->r));
}

static PyObject *Reader_repr(ReaderObject *self) {
    return PyUnicode_FromFormat("<stall.Reader dir=%R%s>", self->dir, self->r ? "" : " closed");
}

static PyMethodDef reader_methods[] = {
    {"drain", (PyCFunction)Reader_drain, METH_NOARGS, reader_drain_doc},
    {"open_spans", (PyCFunction)Reader_open_spans, METH_NOARGS, reader_open_spans_doc},
    {"processes", (PyCFunction)Reader_processes, METH_NOARGS, reader_processes_doc},
    {"close", (PyCFunction)(void (*)(void))Reader_close, METH_FASTCALL | METH_KEYWORDS, reader_close_doc},
    {"__enter__", (PyCFunction)Reader_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))Reader_exit, METH_FASTCALL, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef reader_getset[] = {
    {"dir", (getter)Reader_get_dir, NULL, "The session directory (str).", NULL},
    {"closed", (getter)Reader_get_closed, NULL, "True once close() was called.", NULL},
    {"session_name", (getter)Reader_get_session_name, NULL,
     "The name of the session that created the directory.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyDoc_STRVAR(reader_doc,
"Reader(dir)\n--\n\n"
"Drains the records of every process of the session directory `dir`, from\n"
"any process, including processes that exited or crashed. One reader\n"
"drains a session at a time. Raises OSError (FileNotFoundError...) when\n"
"dir cannot be reached, ValueError when it is not a stall session or\n"
"another reader holds it. Use it as a context manager, or call close().");

static PyType_Slot reader_slots[] = {
    {Py_tp_doc, (void *)reader_doc},
    {Py_tp_new, (void *)Reader_new},
    {Py_tp_dealloc, (void *)Reader_dealloc},
    {Py_tp_repr, (void *)Reader_repr},
    {Py_tp_methods, reader_methods},
    {Py_tp_getset, reader_getset},
    {0, NULL},
};

static PyType_Spec reader_spec = {
    .name = "stall.Reader",
    .basicsize = sizeof(ReaderObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = reader_slots,
};

/* ------------------------------------------------------------ Record */

static PyStructSequence_Field record_fields[] = {
    {"pid", "process id"},
    {"tid", "thread id (as gettid(), threading.get_native_id())"},
    {"name", "operation name (\"\" when unnamed or unknown)"},
    {"kind", "span kind (int, see SpanKind)"},
    {"depth", "nesting depth, 0 for a top-level span"},
    {"start_ns", "CLOCK_MONOTONIC at begin"},
    {"end_ns", "CLOCK_MONOTONIC at end, or None (REC_TRUNCATED, REC_OPEN)"},
    {"cpu_ns", "thread CPU time inside the span, or None (no REC_HAS_CPU)"},
    {"arg", "the number given to end() or instant(); the session id for markers"},
    {"flags", "REC_* bits"},
    {NULL, NULL},
};

static PyStructSequence_Desc record_desc = {
    "stall.Record",
    "One recorded span, instant or session marker, as drained by a Reader.",
    record_fields,
    10,
};

/* ------------------------------------------------------------ module */

static PyMethodDef module_methods[] = {
    {"version", mod_version, METH_NOARGS, version_doc},
    {"now_ns", mod_now_ns, METH_NOARGS, now_ns_doc},
    {"kind_name", mod_kind_name, METH_O, kind_name_doc},
    {"intern", mod_intern, METH_O, intern_doc},
    {"begin", (PyCFunction)(void (*)(void))mod_begin, METH_FASTCALL, begin_doc},
    {"begin_cpu", (PyCFunction)(void (*)(void))mod_begin_cpu, METH_FASTCALL, begin_cpu_doc},
    {"complete", (PyCFunction)(void (*)(void))mod_complete, METH_FASTCALL, complete_doc},
    {"depth", mod_depth, METH_NOARGS, depth_doc},
    {"end", (PyCFunction)(void (*)(void))mod_end, METH_FASTCALL | METH_KEYWORDS, end_doc},
    {"instant", (PyCFunction)(void (*)(void))mod_instant, METH_FASTCALL | METH_KEYWORDS, instant_doc},
    {"session_dir", mod_session_dir, METH_NOARGS, session_dir_doc},
    {"set_process_label", mod_set_process_label, METH_O, set_process_label_doc},
    {"register_kind", (PyCFunction)(void (*)(void))nat_register_kind, METH_FASTCALL, nat_register_kind_doc},
    {"metric_names", nat_metric_names, METH_NOARGS, nat_metric_names_doc},
    {"mon_metric_names", nat_mon_metric_names, METH_NOARGS, nat_mon_metric_names_doc},
    {"render_report_html", nat_render_report_html, METH_O, nat_render_report_html_doc},
    {"loader_model_batch_s", (PyCFunction)(void (*)(void))nat_loader_model_batch_s, METH_VARARGS | METH_KEYWORDS,
     nat_loader_model_batch_s_doc},
    {NULL, NULL, 0, NULL},
};

static const struct {
    const char *name;
    long value;
} int_constants[] = {
    {"KIND_OTHER", STALL_KIND_OTHER},
    {"KIND_DATA_LOADING", STALL_KIND_DATA_LOADING},
    {"KIND_PREPROCESSING", STALL_KIND_PREPROCESSING},
    {"KIND_CPU_COMPUTE", STALL_KIND_CPU_COMPUTE},
    {"KIND_GPU_COMPUTE", STALL_KIND_GPU_COMPUTE},
    {"KIND_TRANSFER", STALL_KIND_TRANSFER},
    {"KIND_IO", STALL_KIND_IO},
    {"KIND_DATA_WAIT", STALL_KIND_DATA_WAIT},
    {"KIND_STEP", STALL_KIND_STEP},
    {"KIND_SESSION", STALL_KIND_SESSION},
    {"KIND_COUNT", STALL_KIND_COUNT_},
    {"REC_HAS_CPU", STALL_REC_HAS_CPU},
    {"REC_INSTANT", STALL_REC_INSTANT},
    {"REC_TRUNCATED", STALL_REC_TRUNCATED},
    {"REC_SESSION_BEGIN", STALL_REC_SESSION_BEGIN},
    {"REC_SESSION_END", STALL_REC_SESSION_END},
    {"REC_OPEN", STALL_REC_OPEN},
    {"VERSION_NUMBER", STALL_VERSION_NUMBER},
};

static int add_type(PyObject *m, PyTypeObject **slot, PyType_Spec *spec) {
    *slot = (PyTypeObject *)PyType_FromModuleAndSpec(m, spec, NULL);
    if (!*slot) return -1;
    return PyModule_AddType(m, *slot);
}

static int module_exec(PyObject *m) {
    stall_state *st = get_state(m);
    st->names = PyDict_New();
    if (!st->names) return -1;
    if (add_type(m, &st->session_type, &session_spec) < 0) return -1;
    if (add_type(m, &st->reader_type, &reader_spec) < 0) return -1;
    st->record_type = PyStructSequence_NewType(&record_desc);
    if (!st->record_type || PyModule_AddType(m, st->record_type) < 0) return -1;
    for (size_t i = 0; i < sizeof int_constants / sizeof int_constants[0]; i++)
        if (PyModule_AddIntConstant(m, int_constants[i].name, int_constants[i].value) < 0) return -1;
    if (PyModule_AddStringConstant(m, "__version__", stall_version()) < 0) return -1;
    if (nat_ops_exec(m, st) < 0 || nat_engine_exec(m, st) < 0) return -1;
    if (nat_monitor_exec(m) < 0) return -1;
    if (nat_metrics_exec(m) < 0) return -1;
    return 0;
}

static int module_traverse(PyObject *m, visitproc visit, void *arg) {
    stall_state *st = get_state(m);
    if (!st) return 0;
    Py_VISIT(st->session_type);
    Py_VISIT(st->reader_type);
    Py_VISIT(st->record_type);
    Py_VISIT(st->names);
    int rc = nat_ops_traverse(st, visit, arg);
    if (rc) return rc;
    return nat_engine_traverse(st, visit, arg);
}

static int module_clear(PyObject *m) {
    stall_state *st = get_state(m);
    if (!st) return 0;
    Py_CLEAR(st->session_type);
    Py_CLEAR(st->reader_type);
    Py_CLEAR(st->record_type);
    Py_CLEAR(st->names);
    for (size_t i = 0; i < NAME_HITS; i++) Py_CLEAR(st->hits[i].str);
    nat_ops_clear(st);
    nat_engine_clear(st);
    return 0;
}

static void module_free(void *m) { (void)module_clear((PyObject *)m); }

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, (void *)module_exec},
#ifdef Py_mod_multiple_interpreters
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
    {0, NULL},
};

PyDoc_STRVAR(module_doc,
"stall._native: the C core of stall (spans, sessions, reader, engine) for Python.\n\n"
"begin(kind, name) / end(arg=0) record spans into the calling thread's\n"
"ring in the session directory; Session starts (or joins) a session;\n"
"Reader drains a session directory from any process; Profiler,\n"
"FunctionSpan and register_kind record spans for the Python API; Engine\n"
"drains, aggregates and samples in this process.");

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "stall._native",
    .m_doc = module_doc,
    .m_size = sizeof(stall_state),
    .m_methods = module_methods,
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyMODINIT_FUNC PyInit__native(void) { return PyModuleDef_Init(&module_def); }
