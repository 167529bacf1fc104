/*
 * ops.c - the span types of the Python API: Profiler (a base type with
 * profile_operation()), OpSpan (the context manager it returns), FunctionSpan
 * (a callable that records a span around a function) and register_kind()
 * (maps any hashable object, such as an Enum member, to a span kind).
 *
 * The hot path is `with p.profile_operation(name, T): ...`: the name goes
 * through the identity cache of module.c (name_arg), the type through a
 * second identity cache (registered object address -> kind) in module state,
 * and the OpSpan comes from a few spares the Profiler keeps and reuses when
 * nobody else holds them, so a block allocates nothing of its own. An OpSpan
 * holds no Python references (a kind and a name id), so it needs no GC.
 */
#include "native.h"

#include <stddef.h>

#include "structmember.h"

/* OpSpans a Profiler keeps for reuse: nesting deeper than this allocates. */
#define OP_SPARES 4

/* ---------------------------------------------------------- kinds */

static inline kind_hit_t *khit_slot(stall_state *st, PyObject *o) {
    uintptr_t p = (uintptr_t)o;
    return &st->khits[((p >> 4) ^ (p >> 11)) & (KIND_HITS - 1)];
}

/* A plain int as a span kind, for argument `what` of function `fn`. */
static int int_kind(PyObject *o, const char *fn, const char *what, int *out) {
    int overflow;
    long k = PyLong_AsLongAndOverflow(o, &overflow);
    if (k == -1 && PyErr_Occurred()) return -1;
    if (overflow || k < 0 || k >= STALL_KIND_COUNT_) {
        PyErr_Format(PyExc_ValueError, "%s(): %s must be a span kind in 0..%d, got %R", fn, what,
                     STALL_KIND_COUNT_ - 1, o);
        return -1;
    }
    *out = (int)k;
    return 0;
}

/* The kind of an object missed by the identity cache: an exact int, an
 * object given to register_kind (remembered in the cache), another int. */
static int __attribute__((noinline)) kind_of_slow(stall_state *st, PyObject *t, const char *fn, int *out) {
    if (PyLong_CheckExact(t)) return int_kind(t, fn, "type", out);
    PyObject *v = PyDict_GetItemWithError(st->kinds, t); /* borrowed */
    if (v) {
        int k = (int)PyLong_AsLong(v);
        kind_hit_t *h = khit_slot(st, t);
        PyObject *old = h->obj;
        h->obj = Py_NewRef(t);
        h->kind = k;
        Py_XDECREF(old);
        *out = k;
        return 0;
    }
    if (PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_TypeError)) return -1; /* unhashable: a bad type below */
        PyErr_Clear();
    }
    if (PyLong_Check(t) && !PyBool_Check(t)) return int_kind(t, fn, "type", out);
    PyErr_Format(PyExc_TypeError,
                 "%s(): type must be None, an int span kind or an object given to register_kind(), "
                 "not %.100s",
                 fn, Py_TYPE(t)->tp_name);
    return -1;
}

/* Parses the `type` argument of profile_operation / FunctionSpan. */
static inline int kind_of(stall_state *st, PyObject *t, const char *fn, int *out) {
    if (t == Py_None) {
        *out = STALL_KIND_OTHER;
        return 0;
    }
    kind_hit_t *h = khit_slot(st, t);
    if (h->obj == t) {
        *out = h->kind;
        return 0;
    }
    return kind_of_slow(st, t, fn, out);
}

const char nat_register_kind_doc[] =
    "register_kind($module, obj, kind, /)\n--\n\n"
    "Map `obj`, any hashable object (an Enum member such as\n"
    "BottleneckType.DATA_LOADING), to the span kind `kind` (an int, one of\n"
    "KIND_*), so that it can be given as the type of profile_operation() and\n"
    "FunctionSpan. Registering an object again replaces its kind. None and\n"
    "plain ints cannot be registered: they are kinds already.";

PyObject *nat_register_kind(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "register_kind() takes exactly 2 arguments (obj, kind) (%zd given)", nargs);
        return NULL;
    }
    stall_state *st = get_state(module);
    PyObject *obj = args[0];
    int kind;
    if (obj == Py_None || PyLong_CheckExact(obj) || PyBool_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "register_kind(): obj must not be None, a bool or a plain int, got %R", obj);
        return NULL;
    }
    if (kind_arg(args[1], "register_kind", &kind) < 0) return NULL;
    PyObject *k = PyLong_FromLong(kind);
    if (!k) return NULL;
    int rc = PyDict_SetItem(st->kinds, obj, k);
    Py_DECREF(k);
    if (rc < 0) {
        if (PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "register_kind(): obj must be hashable, not %.100s", Py_TYPE(obj)->tp_name);
        }
        return NULL;
    }
    /* an object equal to obj may sit in the cache with its old kind */
    for (size_t i = 0; i < KIND_HITS; i++) Py_CLEAR(st->khits[i].obj);
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------ OpSpan */

typedef struct OpSpanObject {
    PyObject_HEAD
    vectorcallfunc vectorcall; /* OpSpan_vectorcall: the with-statement protocol */
    int kind;
    stall_name_t name;
    int open; /* spans this object opened and has not closed yet */
} OpSpanObject;

static void OpSpan_dealloc(OpSpanObject *self);

static PyObject *OpSpan_enter(OpSpanObject *self, PyObject *Py_UNUSED(ignored)) {
    stall_begin_id(self->kind, self->name);
    self->open++;
    return Py_NewRef(self);
}

static PyObject *OpSpan_exit(OpSpanObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)args;
    (void)nargs;
    if (self->open > 0) { /* an exit without its enter must not close an outer span */
        self->open--;
        stall_end();
    }
    Py_RETURN_FALSE; /* exceptions propagate */
}

/* `with` looks __enter__ and __exit__ up on the type and binds them; bound
 * C methods would be two allocations per block. Here both names hold an
 * OpSpanMethod, a descriptor whose __get__ returns the OpSpan itself, and
 * calling the OpSpan with no argument enters, with three (type, value,
 * traceback) exits. */
static PyObject *OpSpan_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (kwnames == NULL) {
        if (nargs == 0) return OpSpan_enter((OpSpanObject *)callable, NULL);
        if (nargs == 3) return OpSpan_exit((OpSpanObject *)callable, args, nargs);
    }
    PyErr_Format(PyExc_TypeError,
                 "OpSpan takes no argument (__enter__) or three positional arguments (__exit__), %zd given", nargs);
    return NULL;
}

typedef struct OpSpanMethodObject {
    PyObject_HEAD
    const char *name;
} OpSpanMethodObject;

static PyObject *OpSpanMethod_get(PyObject *self, PyObject *obj, PyObject *type) {
    (void)type;
    if (obj == NULL || obj == Py_None) return Py_NewRef(self);
    return Py_NewRef(obj);
}

/* OpSpan.__enter__(span) / OpSpan.__exit__(span, t, v, tb) through the class. */
static PyObject *OpSpanMethod_call(PyObject *self, PyObject *args, PyObject *kwds) {
    OpSpanMethodObject *m = (OpSpanMethodObject *)self;
    Py_ssize_t n = PyTuple_GET_SIZE(args);
    if (kwds && PyDict_GET_SIZE(kwds)) {
        PyErr_Format(PyExc_TypeError, "OpSpan.%s() takes no keyword arguments", m->name);
        return NULL;
    }
    PyObject *span = n >= 1 ? PyTuple_GET_ITEM(args, 0) : NULL;
    if (!span || Py_TYPE(span)->tp_dealloc != (destructor)OpSpan_dealloc) {
        PyErr_Format(PyExc_TypeError, "OpSpan.%s() needs an OpSpan as its first argument", m->name);
        return NULL;
    }
    return OpSpan_vectorcall(span, &PyTuple_GET_ITEM(args, 1), (size_t)(n - 1), NULL);
}

static void OpSpanMethod_dealloc(PyObject *self) {
    PyTypeObject *tp = Py_TYPE(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyType_Slot opspan_method_slots[] = {
    {Py_tp_descr_get, (void *)OpSpanMethod_get},
    {Py_tp_call, (void *)OpSpanMethod_call},
    {Py_tp_dealloc, (void *)OpSpanMethod_dealloc},
    {0, NULL},
};

static PyType_Spec opspan_method_spec = {
    .name = "stall._OpSpanMethod",
    .basicsize = sizeof(OpSpanMethodObject),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = opspan_method_slots,
};

static void OpSpan_dealloc(OpSpanObject *self) {
    PyTypeObject *tp = Py_TYPE(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyObject *OpSpan_repr(OpSpanObject *self) {
    return PyUnicode_FromFormat("<stall.OpSpan kind=%s name_id=%u%s>", stall_kind_name(self->kind),
                                (unsigned)self->name, self->open ? " open" : "");
}

static PyObject *OpSpan_get_kind(OpSpanObject *self, void *Py_UNUSED(c)) { return PyLong_FromLong(self->kind); }
static PyObject *OpSpan_get_name_id(OpSpanObject *self, void *Py_UNUSED(c)) {
    return PyLong_FromUnsignedLong(self->name);
}

static PyMemberDef opspan_members[] = {
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(OpSpanObject, vectorcall), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef opspan_getset[] = {
    {"kind", (getter)OpSpan_get_kind, NULL, "The span kind (int).", NULL},
    {"name_id", (getter)OpSpan_get_name_id, NULL, "The interned name id (int).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyDoc_STRVAR(opspan_doc,
"A span of one operation, returned by Profiler.profile_operation(): a\n"
"context manager whose __enter__ opens the span and whose __exit__ closes\n"
"it and lets any exception propagate.");

static PyType_Slot opspan_slots[] = {
    {Py_tp_doc, (void *)opspan_doc},
    {Py_tp_dealloc, (void *)OpSpan_dealloc},
    {Py_tp_repr, (void *)OpSpan_repr},
    {Py_tp_call, (void *)PyVectorcall_Call},
    {Py_tp_members, opspan_members},
    {Py_tp_getset, opspan_getset},
    {0, NULL},
};

#ifndef Py_TPFLAGS_IMMUTABLETYPE
#define Py_TPFLAGS_IMMUTABLETYPE 0
#endif
#ifndef Py_TPFLAGS_DISALLOW_INSTANTIATION
#define Py_TPFLAGS_DISALLOW_INSTANTIATION 0
#endif

static PyType_Spec opspan_spec = {
    .name = "stall.OpSpan",
    .basicsize = sizeof(OpSpanObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION |
             Py_TPFLAGS_HAVE_VECTORCALL,
    .slots = opspan_slots,
};

/* ---------------------------------------------------------- Profiler */

typedef struct ProfilerObject {
    PyObject_HEAD
    stall_state *st;                /* of the module that defines Profiler (which its type keeps alive) */
    OpSpanObject *spare[OP_SPARES]; /* reused when only the profiler holds them */
    PyObject *op_types;             /* _op_types: name -> the type last given for it (a dict, or NULL) */
} ProfilerObject;

static void Profiler_dealloc(ProfilerObject *self);

static const char *const profile_operation_names[] = {"name", "type"};

PyDoc_STRVAR(profile_operation_doc,
"profile_operation($self, /, name, type=None)\n--\n\n"
"Return a context manager that records one span named `name` (a str)\n"
"around its block. `type` is None (KIND_OTHER), an int span kind, or an\n"
"object given to register_kind(); TypeError otherwise. Exceptions raised\n"
"in the block propagate; the span ends either way.");

/* A plain METH_FASTCALL|METH_KEYWORDS method (no METH_METHOD), so that the
 * interpreter's specialised call path for method descriptors applies; the
 * module state comes from the object instead of the defining class. */
static PyObject *Profiler_profile_operation(ProfilerObject *self, PyObject *const *args, Py_ssize_t nargs,
                                            PyObject *kwnames) {
    PyObject *name, *type = Py_None;
    if (kwnames == NULL && (nargs == 1 || nargs == 2)) {
        name = args[0];
        if (nargs == 2) type = args[1];
    } else {
        PyObject *a[2];
        if (gather_args("profile_operation", args, nargs, kwnames, profile_operation_names, 0, 1, 2, a) < 0)
            return NULL;
        name = a[0];
        if (a[1]) type = a[1];
    }
    stall_state *st = self->st;
    stall_name_t id;
    int kind;
    if (!PyUnicode_Check(name)) {
        PyErr_Format(PyExc_TypeError, "profile_operation(): name must be a str, not %.100s", Py_TYPE(name)->tp_name);
        return NULL;
    }
    if (name_arg(st, name, "profile_operation", &id) < 0) return NULL;
    if (kind_of(st, type, "profile_operation", &kind) < 0) return NULL;
    /* remember the type the user gave for this name (summaries report it) */
    if (type != Py_None && self->op_types && PyDict_CheckExact(self->op_types)) {
        PyObject *cur = PyDict_GetItemWithError(self->op_types, name);
        if (cur != type && (PyErr_Occurred() || PyDict_SetItem(self->op_types, name, type) < 0)) return NULL;
    }

    OpSpanObject *sp = NULL;
    int empty = -1;
    for (int i = 0; i < OP_SPARES; i++) {
        OpSpanObject *s = self->spare[i];
        if (!s) {
            if (empty < 0) empty = i;
        } else if (Py_REFCNT(s) == 1) {
            sp = (OpSpanObject *)Py_NewRef(s);
            break;
        }
    }
    if (!sp) {
        sp = PyObject_New(OpSpanObject, st->opspan_type);
        if (!sp) return NULL;
        sp->vectorcall = OpSpan_vectorcall;
        if (empty >= 0) self->spare[empty] = (OpSpanObject *)Py_NewRef(sp);
    }
    sp->kind = kind;
    sp->name = id;
    sp->open = 0;
    return (PyObject *)sp;
}

/* The state of the module whose Profiler type is in type's MRO. */
static stall_state *profiler_state(PyTypeObject *type) {
    PyObject *mro = type->tp_mro;
    for (Py_ssize_t i = 0; mro && i < PyTuple_GET_SIZE(mro); i++) {
        PyTypeObject *b = (PyTypeObject *)PyTuple_GET_ITEM(mro, i);
        if ((b->tp_flags & Py_TPFLAGS_HEAPTYPE) && b->tp_dealloc == (destructor)Profiler_dealloc)
            return PyType_GetModuleState(b);
    }
    PyErr_Format(PyExc_TypeError, "Profiler.__new__(%.100s): not a Profiler subtype", type->tp_name);
    return NULL;
}

static PyObject *Profiler_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    (void)args; /* a subclass's __init__ takes its own arguments */
    (void)kwds;
    stall_state *st = profiler_state(type);
    if (!st) return NULL;
    ProfilerObject *self = (ProfilerObject *)type->tp_alloc(type, 0);
    if (self) self->st = st;
    return (PyObject *)self;
}

static void Profiler_dealloc(ProfilerObject *self) {
    PyTypeObject *tp = Py_TYPE(self);
    for (int i = 0; i < OP_SPARES; i++) Py_CLEAR(self->spare[i]);
    Py_CLEAR(self->op_types);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyMemberDef profiler_members[] = {
    {"_op_types", T_OBJECT, offsetof(ProfilerObject, op_types), 0,
     "dict: operation name -> the type last given to profile_operation for it (None until set)"},
    {NULL, 0, 0, 0, NULL},
};

static PyMethodDef profiler_methods[] = {
    {"profile_operation", (PyCFunction)(void (*)(void))Profiler_profile_operation,
     METH_FASTCALL | METH_KEYWORDS, profile_operation_doc},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(profiler_doc,
"Profiler()\n--\n\n"
"Base type of stall's profilers: Python classes subclass it and inherit\n"
"profile_operation(), implemented in C.");

static PyType_Slot profiler_slots[] = {
    {Py_tp_doc, (void *)profiler_doc},
    {Py_tp_new, (void *)Profiler_new},
    {Py_tp_dealloc, (void *)Profiler_dealloc},
    {Py_tp_methods, profiler_methods},
    {Py_tp_members, profiler_members},
    {0, NULL},
};

static PyType_Spec profiler_spec = {
    .name = "stall.Profiler",
    .basicsize = sizeof(ProfilerObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .slots = profiler_slots,
};

/* ------------------------------------------------------ FunctionSpan */

typedef struct FuncSpanObject {
    PyObject_HEAD
    PyObject *func;
    PyObject *span_name; /* str */
    PyObject *dict;      /* __name__, __qualname__, __doc__, __module__, func's __dict__... */
    PyObject *weaklist;
    vectorcallfunc vectorcall;
    int kind;
    stall_name_t name;
} FuncSpanObject;

static PyObject *FuncSpan_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    FuncSpanObject *self = (FuncSpanObject *)callable;
    stall_begin_id(self->kind, self->name);
    PyObject *r = PyObject_Vectorcall(self->func, args, nargsf, kwnames);
    stall_end(); /* also when func raised: touches no Python state, the exception stays set */
    return r;
}

/* Copies func's metadata as functools.update_wrapper does. */
static int copy_wrapper_attrs(PyObject *dict, PyObject *func) {
    static const char *const assigned[] = {"__module__", "__name__", "__qualname__", "__doc__", "__annotations__"};
    for (size_t i = 0; i < sizeof assigned / sizeof assigned[0]; i++) {
        PyObject *v = PyObject_GetAttrString(func, assigned[i]);
        if (!v) {
            if (!PyErr_ExceptionMatches(PyExc_AttributeError)) return -1;
            PyErr_Clear();
            continue;
        }
        int rc = PyDict_SetItemString(dict, assigned[i], v);
        Py_DECREF(v);
        if (rc < 0) return -1;
    }
    PyObject *fd = PyObject_GetAttrString(func, "__dict__");
    if (!fd) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) return -1;
        PyErr_Clear();
        return 0;
    }
    int rc = PyDict_Check(fd) ? PyDict_Update(dict, fd) : 0;
    Py_DECREF(fd);
    return rc;
}

static PyObject *FuncSpan_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"func", "name", "type", NULL};
    PyObject *func, *name, *kind_obj = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|O:FunctionSpan", kwlist, &func, &name, &kind_obj)) return NULL;
    if (!PyCallable_Check(func)) {
        PyErr_Format(PyExc_TypeError, "FunctionSpan(): func must be callable, not %.100s", Py_TYPE(func)->tp_name);
        return NULL;
    }
    stall_state *st = PyType_GetModuleState(type);
    if (!st) return NULL;
    stall_name_t id;
    int kind;
    if (!text_arg(name, "FunctionSpan", "name", 0)) return NULL;
    if (PyUnicode_CheckExact(name) ? name_arg(st, name, "FunctionSpan", &id) < 0
                                   : intern_str(name, "FunctionSpan", &id) < 0)
        return NULL;
    if (kind_of(st, kind_obj, "FunctionSpan", &kind) < 0) return NULL;

    FuncSpanObject *self = (FuncSpanObject *)type->tp_alloc(type, 0);
    if (!self) return NULL;
    self->vectorcall = FuncSpan_vectorcall;
    self->kind = kind;
    self->name = id;
    self->func = Py_NewRef(func);
    self->span_name = Py_NewRef(name);
    self->dict = PyDict_New();
    if (!self->dict || copy_wrapper_attrs(self->dict, func) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static int FuncSpan_traverse(FuncSpanObject *self, visitproc visit, void *arg) {
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->func);
    Py_VISIT(self->dict);
    return 0;
}

static int FuncSpan_clear(FuncSpanObject *self) {
    Py_CLEAR(self->func);
    Py_CLEAR(self->dict);
    return 0;
}

static void FuncSpan_dealloc(FuncSpanObject *self) {
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    if (self->weaklist) PyObject_ClearWeakRefs((PyObject *)self);
    FuncSpan_clear(self);
    Py_CLEAR(self->span_name);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

/* Binding as a method, like a Python function: f.__get__(obj) is a bound method. */
static PyObject *FuncSpan_descr_get(PyObject *self, PyObject *obj, PyObject *type) {
    (void)type;
    if (obj == NULL || obj == Py_None) return Py_NewRef(self);
    return PyMethod_New(self, obj);
}

static PyObject *FuncSpan_repr(FuncSpanObject *self) {
    return PyUnicode_FromFormat("<stall.FunctionSpan %R of %R>", self->span_name, self->func);
}

static PyObject *FuncSpan_get_span_name(FuncSpanObject *self, void *Py_UNUSED(c)) {
    return Py_NewRef(self->span_name);
}
static PyObject *FuncSpan_get_kind(FuncSpanObject *self, void *Py_UNUSED(c)) { return PyLong_FromLong(self->kind); }

static PyMemberDef funcspan_members[] = {
    {"__wrapped__", T_OBJECT, offsetof(FuncSpanObject, func), READONLY, "The wrapped callable."},
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(FuncSpanObject, vectorcall), READONLY, NULL},
    {"__dictoffset__", T_PYSSIZET, offsetof(FuncSpanObject, dict), READONLY, NULL},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(FuncSpanObject, weaklist), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef funcspan_getset[] = {
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {"span_name", (getter)FuncSpan_get_span_name, NULL, "The name of the spans it records (str).", NULL},
    {"kind", (getter)FuncSpan_get_kind, NULL, "The kind of the spans it records (int).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyDoc_STRVAR(funcspan_doc,
"FunctionSpan(func, name, type=None)\n--\n\n"
"A callable that records a span named `name` of kind `type` (as in\n"
"Profiler.profile_operation) around each call of func, with the same\n"
"positional and keyword arguments, returning what func returns. The span\n"
"ends also when func raises, and the exception propagates unchanged.\n"
"Carries func's __name__, __qualname__, __doc__, __module__ and __dict__,\n"
"has __wrapped__, and binds as a method like a function.");

static PyType_Slot funcspan_slots[] = {
    {Py_tp_doc, (void *)funcspan_doc},
    {Py_tp_new, (void *)FuncSpan_new},
    {Py_tp_dealloc, (void *)FuncSpan_dealloc},
    {Py_tp_traverse, (void *)FuncSpan_traverse},
    {Py_tp_clear, (void *)FuncSpan_clear},
    {Py_tp_repr, (void *)FuncSpan_repr},
    {Py_tp_call, (void *)PyVectorcall_Call},
    {Py_tp_descr_get, (void *)FuncSpan_descr_get},
    {Py_tp_members, funcspan_members},
    {Py_tp_getset, funcspan_getset},
    {0, NULL},
};

static PyType_Spec funcspan_spec = {
    .name = "stall.FunctionSpan",
    .basicsize = sizeof(FuncSpanObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_METHOD_DESCRIPTOR |
             Py_TPFLAGS_IMMUTABLETYPE,
    .slots = funcspan_slots,
};

/* ------------------------------------------------------------ module */

static int add_type(PyObject *m, PyTypeObject **slot, PyType_Spec *spec) {
    *slot = (PyTypeObject *)PyType_FromModuleAndSpec(m, spec, NULL);
    if (!*slot) return -1;
    return PyModule_AddType(m, *slot);
}

int nat_ops_exec(PyObject *m, stall_state *st) {
    st->kinds = PyDict_New();
    if (!st->kinds) return -1;
    if (add_type(m, &st->opspan_type, &opspan_spec) < 0) return -1;
    PyTypeObject *mt = (PyTypeObject *)PyType_FromModuleAndSpec(m, &opspan_method_spec, NULL);
    if (!mt) return -1;
    static const char *const protocol[] = {"__enter__", "__exit__"};
    for (int i = 0; i < 2; i++) {
        OpSpanMethodObject *d = PyObject_New(OpSpanMethodObject, mt);
        if (!d) {
            Py_DECREF(mt);
            return -1;
        }
        d->name = protocol[i];
        int rc = PyDict_SetItemString(st->opspan_type->tp_dict, protocol[i], (PyObject *)d);
        Py_DECREF(d);
        if (rc < 0) {
            Py_DECREF(mt);
            return -1;
        }
    }
    Py_DECREF(mt); /* the descriptors keep their type alive */
    PyType_Modified(st->opspan_type);
    if (add_type(m, &st->profiler_type, &profiler_spec) < 0) return -1;
    if (add_type(m, &st->funcspan_type, &funcspan_spec) < 0) return -1;
    return 0;
}

int nat_ops_traverse(stall_state *st, visitproc visit, void *arg) {
    Py_VISIT(st->opspan_type);
    Py_VISIT(st->profiler_type);
    Py_VISIT(st->funcspan_type);
    Py_VISIT(st->kinds);
    for (size_t i = 0; i < KIND_HITS; i++) Py_VISIT(st->khits[i].obj);
    return 0;
}

void nat_ops_clear(stall_state *st) {
    Py_CLEAR(st->opspan_type);
    Py_CLEAR(st->profiler_type);
    Py_CLEAR(st->funcspan_type);
    Py_CLEAR(st->kinds);
    for (size_t i = 0; i < KIND_HITS; i++) Py_CLEAR(st->khits[i].obj);
}
