/*
 * metrics.c - stall._native.MetricsServer: the Prometheus endpoint of
 * include/stall.h (stall_metrics_serve and friends) for the Python layer.
 * The server's thread is C: it renders an Engine's state at scrape time and
 * never takes the GIL. The object pins its Engine (Engine.close() refuses
 * while a server reads it); stop(), the context manager's exit and
 * deallocation stop the server and unpin it.
 */
#include "native.h"

#include "prometheus.h"

typedef struct MetricsServerObject {
    PyObject_HEAD
    stall_metrics_server_t *s; /* NULL once stopped */
    PyObject *engine;          /* the pinned Engine while serving, else NULL */
    PyObject *url;             /* str, kept after stop */
    int port;
    int busy;                  /* text() calls in progress with the GIL released */
} MetricsServerObject;

/* A label value: a str, or an int (rank numbers) in decimal. New reference. */
static PyObject *label_value(PyObject *key, PyObject *v) {
    if (PyUnicode_Check(v)) return Py_NewRef(v);
    if (PyLong_Check(v) && !PyBool_Check(v)) return PyObject_Str(v);
    PyErr_Format(PyExc_TypeError, "MetricsServer(): labels[%R] must be a str or an int, not %.100s", key,
                 Py_TYPE(v)->tp_name);
    return NULL;
}

/* labels (None or a mapping str -> str|int) as a flat list [k, v, k, v, ...]
 * of checked str objects. New reference, or NULL with the error set. */
static PyObject *labels_list(PyObject *labels) {
    PyObject *flat = PyList_New(0), *items = NULL;
    if (!flat) return NULL;
    if (!labels || labels == Py_None) return flat;
    if (!PyDict_Check(labels) && !PyObject_HasAttrString(labels, "items")) {
        PyErr_Format(PyExc_TypeError, "MetricsServer(): labels must be a dict of str to str, not %.100s",
                     Py_TYPE(labels)->tp_name);
        goto fail;
    }
    items = PyMapping_Items(labels);
    if (!items) goto fail;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items); i++) {
        PyObject *kv = PyList_GET_ITEM(items, i);
        PyObject *k = PyTuple_GET_ITEM(kv, 0);
        if (!PyUnicode_Check(k)) {
            PyErr_Format(PyExc_TypeError, "MetricsServer(): labels keys must be str, not %.100s",
                         Py_TYPE(k)->tp_name);
            goto fail;
        }
        const char *name = text_arg(k, "MetricsServer", "a labels key", 0);
        if (!name) goto fail;
        if (!stall__prom_label_name_ok(name)) {
            PyErr_Format(PyExc_ValueError,
                         "MetricsServer(): labels: %R is not a label name ([a-zA-Z_][a-zA-Z0-9_]*, "
                         "at most 63 bytes, no leading '__')", k);
            goto fail;
        }
        if (stall__prom_label_reserved(name)) {
            PyErr_Format(PyExc_ValueError, "MetricsServer(): labels: %R is a label of stall's own series", k);
            goto fail;
        }
        PyObject *v = label_value(k, PyTuple_GET_ITEM(kv, 1));
        if (!v) goto fail;
        if (!text_arg(v, "MetricsServer", "a labels value", 1)) {
            Py_DECREF(v);
            goto fail;
        }
        int rc = PyList_Append(flat, k) < 0 || PyList_Append(flat, v) < 0 ? -1 : 0;
        Py_DECREF(v);
        if (rc < 0) goto fail;
    }
    Py_DECREF(items);
    return flat;
fail:
    Py_XDECREF(items);
    Py_DECREF(flat);
    return NULL;
}

static PyObject *MetricsServer_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kw[] = {"engine", "address", "labels", NULL};
    PyObject *engine, *address = NULL, *labels = NULL, *flat = NULL;
    const char **lab = NULL;
    MetricsServerObject *self = NULL;
    stall_engine_t *e = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|OO:MetricsServer", kw, &engine, &address, &labels))
        return NULL;
    const char *addr = "127.0.0.1:9464";
    if (address && address != Py_None) {
        if (!PyUnicode_Check(address)) {
            PyErr_Format(PyExc_TypeError, "MetricsServer(): address must be a str such as \"127.0.0.1:9464\", "
                         "not %.100s", Py_TYPE(address)->tp_name);
            return NULL;
        }
        addr = text_arg(address, "MetricsServer", "address", 1);
        if (!addr) return NULL;
    }
    stall_prom_addr_t parsed;
    int bad;
    char err[512] = "";
    Py_BEGIN_ALLOW_THREADS /* a host name may take a resolver round trip */
    bad = stall__prom_parse_address(addr, &parsed) < 0;
    if (bad) snprintf(err, sizeof err, "%s", stall_last_error());
    Py_END_ALLOW_THREADS
    if (bad) {
        PyErr_Format(PyExc_ValueError, "MetricsServer(): address: %s", err);
        return NULL;
    }
    flat = labels_list(labels);
    if (!flat) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(flat);
    lab = PyMem_Calloc((size_t)n + 1, sizeof *lab);
    if (!lab) {
        PyErr_NoMemory();
        goto fail;
    }
    for (Py_ssize_t i = 0; i < n; i++) lab[i] = PyUnicode_AsUTF8(PyList_GET_ITEM(flat, i)); /* checked above */
    e = nat_engine_pin(engine, "MetricsServer");
    if (!e) goto fail;
    self = (MetricsServerObject *)type->tp_alloc(type, 0);
    if (!self) goto fail;
    stall_metrics_server_t *s;
    Py_BEGIN_ALLOW_THREADS
    s = stall_metrics_serve(e, addr, lab);
    if (!s) snprintf(err, sizeof err, "%s", stall_last_error());
    Py_END_ALLOW_THREADS
    if (!s) {
        PyErr_Format(PyExc_OSError, "MetricsServer(): %s", err);
        goto fail;
    }
    self->s = s;
    self->engine = engine; /* the pin's reference */
    e = NULL;
    self->port = stall_metrics_server_port(s);
    self->url = PyUnicode_FromString(stall_metrics_server_url(s));
    if (!self->url) goto fail;
    PyMem_Free(lab);
    Py_DECREF(flat);
    return (PyObject *)self;
fail:
    if (e) nat_engine_unpin(engine);
    Py_XDECREF(self); /* dealloc stops a started server */
    PyMem_Free(lab);
    Py_XDECREF(flat);
    return NULL;
}

static void stop_and_unpin(MetricsServerObject *self) {
    if (self->s) {
        stall_metrics_server_t *s = self->s;
        self->s = NULL;
        Py_BEGIN_ALLOW_THREADS
        stall_metrics_server_stop(s); /* waits for a scrape in progress */
        Py_END_ALLOW_THREADS
    }
    if (self->engine) {
        PyObject *e = self->engine;
        self->engine = NULL;
        nat_engine_unpin(e);
    }
}

static void MetricsServer_dealloc(MetricsServerObject *self) {
    PyTypeObject *tp = Py_TYPE(self);
    stop_and_unpin(self);
    Py_CLEAR(self->url);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static int check_serving(MetricsServerObject *self, const char *what) {
    if (self->s) return 0;
    PyErr_Format(PyExc_ValueError, "MetricsServer.%s(): the server is stopped", what);
    return -1;
}

PyDoc_STRVAR(text_doc,
"text($self, /)\n--\n\n"
"Return the exposition a scrape of /metrics gets now (str, Prometheus text\n"
"format 0.0.4), rendered on the calling thread.");

static PyObject *MetricsServer_text(MetricsServerObject *self, PyObject *Py_UNUSED(ignored)) {
    if (check_serving(self, "text") < 0) return NULL;
    char *txt;
    size_t len = 0;
    char err[512] = "";
    self->busy++;
    Py_BEGIN_ALLOW_THREADS
    txt = stall_metrics_text(self->s, &len);
    if (!txt) snprintf(err, sizeof err, "%s", stall_last_error());
    Py_END_ALLOW_THREADS
    self->busy--;
    if (!txt) {
        PyErr_Format(PyExc_RuntimeError, "MetricsServer.text(): %s", err);
        return NULL;
    }
    PyObject *r = PyUnicode_DecodeUTF8(txt, (Py_ssize_t)len, "replace");
    free(txt);
    return r;
}

PyDoc_STRVAR(stop_doc,
"stop($self, /)\n--\n\n"
"Stop serving (a scrape in progress is finished first) and release the\n"
"engine. Stopping a stopped server does nothing.");

static PyObject *MetricsServer_stop(MetricsServerObject *self, PyObject *Py_UNUSED(ignored)) {
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "MetricsServer.stop(): another thread is inside text()");
        return NULL;
    }
    stop_and_unpin(self);
    Py_RETURN_NONE;
}

static PyObject *MetricsServer_enter(MetricsServerObject *self, PyObject *Py_UNUSED(ignored)) {
    if (check_serving(self, "__enter__") < 0) return NULL;
    return Py_NewRef(self);
}

static PyObject *MetricsServer_exit(MetricsServerObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)args;
    (void)nargs;
    if (!self->busy) stop_and_unpin(self);
    Py_RETURN_FALSE;
}

static PyObject *MetricsServer_get_port(MetricsServerObject *self, void *Py_UNUSED(c)) {
    return PyLong_FromLong(self->port);
}
static PyObject *MetricsServer_get_url(MetricsServerObject *self, void *Py_UNUSED(c)) {
    return Py_NewRef(self->url);
}
static PyObject *MetricsServer_get_stopped(MetricsServerObject *self, void *Py_UNUSED(c)) {
    return PyBool_FromLong(self->s == NULL);
}

static PyObject *MetricsServer_repr(MetricsServerObject *self) {
    return PyUnicode_FromFormat("<stall.MetricsServer %U%s>", self->url, self->s ? "" : " stopped");
}

static PyMethodDef metrics_methods[] = {
    {"text", (PyCFunction)MetricsServer_text, METH_NOARGS, text_doc},
    {"stop", (PyCFunction)MetricsServer_stop, METH_NOARGS, stop_doc},
    {"__enter__", (PyCFunction)MetricsServer_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))MetricsServer_exit, METH_FASTCALL, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef metrics_getset[] = {
    {"port", (getter)MetricsServer_get_port, NULL, "The port the server is bound to (int).", NULL},
    {"url", (getter)MetricsServer_get_url, NULL, "The URL of the exposition, http://HOST:PORT/metrics.", NULL},
    {"stopped", (getter)MetricsServer_get_stopped, NULL, "True once stop() was called.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyDoc_STRVAR(metrics_doc,
"MetricsServer(engine, address=\"127.0.0.1:9464\", labels=None)\n--\n\n"
"Serves an Engine's state for Prometheus on http://ADDRESS/metrics (text\n"
"format 0.0.4), rendered at scrape time on a C thread of its own. address\n"
"is \"HOST:PORT\", \"[IPV6]:PORT\", \":PORT\" or \"PORT\"; port 0 picks a free\n"
"one (.port). labels: a dict of constant labels (str or int values) every\n"
"series carries; host is added unless given. TypeError/ValueError name the\n"
"argument at fault; OSError when the address cannot be bound (port in use).\n"
"A context manager; stop() ends it.");

static PyType_Slot metrics_slots[] = {
    {Py_tp_doc, (void *)metrics_doc},
    {Py_tp_new, (void *)MetricsServer_new},
    {Py_tp_dealloc, (void *)MetricsServer_dealloc},
    {Py_tp_repr, (void *)MetricsServer_repr},
    {Py_tp_methods, metrics_methods},
    {Py_tp_getset, metrics_getset},
    {0, NULL},
};

static PyType_Spec metrics_spec = {
    .name = "stall._native.MetricsServer",
    .basicsize = sizeof(MetricsServerObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = metrics_slots,
};

int nat_metrics_exec(PyObject *m) {
    PyObject *t = PyType_FromModuleAndSpec(m, &metrics_spec, NULL);
    if (!t) return -1;
    int rc = PyModule_AddType(m, (PyTypeObject *)t);
    Py_DECREF(t);
    return rc;
}
