/*
 * export.c - the exporters of src/export as module functions of
 * stall._native: render_report_html() turns report JSON into the
 * self-contained report.html page (src/export/html.c), for Python code that
 * builds or reloads a report and wants the same page as `stall run`.
 */
#include <math.h>

#include "native.h"

/* Not public (not in include/stall.h): the extension links the static
 * library, so its internal symbols resolve here. */
#include "../../../src/export/html.h"

const char nat_render_report_html_doc[] =
    "render_report_html($module, json, /)\n--\n\n"
    "Return report.html as a str: the report JSON `json` (a str, as written\n"
    "to report.json) inside the self-contained page that draws it. The JSON\n"
    "is embedded escaped (every '<' as \\u003c...), not otherwise checked: a\n"
    "page made from invalid JSON says so when opened. ValueError for an\n"
    "empty str or one containing NUL characters.";

PyObject *nat_render_report_html(PyObject *module, PyObject *json) {
    (void)module;
    if (!PyUnicode_Check(json)) {
        PyErr_Format(PyExc_TypeError, "render_report_html(): json must be a str, not %.100s", Py_TYPE(json)->tp_name);
        return NULL;
    }
    Py_ssize_t len;
    const char *s = PyUnicode_AsUTF8AndSize(json, &len); /* owned by the str */
    if (!s) return NULL;
    size_t out_len = 0;
    char *page;
    int err;
    Py_BEGIN_ALLOW_THREADS
    page = stall__report_html_render(s, (size_t)len, &out_len);
    err = errno;
    Py_END_ALLOW_THREADS
    if (!page) {
        if (err == ENOMEM) return PyErr_NoMemory();
        PyErr_Format(PyExc_ValueError, "render_report_html(): %s", stall_last_error());
        return NULL;
    }
    PyObject *r = PyUnicode_DecodeUTF8(page, (Py_ssize_t)out_len, NULL);
    free(page);
    return r;
}

const char nat_loader_model_batch_s_doc[] =
    "loader_model_batch_s($module, workers, /, *, consumer_s, producer_s,\n"
    "                     producer_cpu_frac, cores, handover_s)\n--\n\n"
    "Seconds per batch that the diagnosis' throughput model\n"
    "(stall_loader_model_batch_s in stall.h) predicts for a loop spending\n"
    "consumer_s per batch, fed by `workers` DataLoader workers that each take\n"
    "producer_s per batch (producer_cpu_frac of it on CPU) on `cores` spare\n"
    "cores, receiving a batch costing the loop handover_s. workers=0: the loop\n"
    "makes its batches itself. ValueError for negative or non-finite inputs.";

PyObject *nat_loader_model_batch_s(PyObject *module, PyObject *args, PyObject *kwargs) {
    (void)module;
    static char *kwlist[] = {"workers", "consumer_s", "producer_s", "producer_cpu_frac", "cores", "handover_s", NULL};
    double n, c = 0, p = NAN, cpu = 1, cores = NAN, h = 0; /* producer_s and cores are required */
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "d|$ddddd:loader_model_batch_s", kwlist, &n, &c, &p, &cpu,
                                     &cores, &h))
        return NULL;
    stall_loader_model_t m = {.consumer_s = c, .producer_s = p, .producer_cpu_frac = cpu, .cores = cores,
                              .handover_s = h};
    double t = stall_loader_model_batch_s(&m, n);
    if (!isfinite(t)) {
        PyErr_SetString(PyExc_ValueError,
                        "loader_model_batch_s(): workers, consumer_s, producer_s, cores and handover_s must be "
                        "finite and >= 0");
        return NULL;
    }
    return PyFloat_FromDouble(t);
}
