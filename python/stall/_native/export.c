/*
 * export.c - the exporters of src/export as module functions of
 * stall._native: render_report_html() turns report JSON into the
 * self-contained report.html page (src/export/html.c), for Python code that
 * builds or reloads a report and wants the same page as `stall run`.
 */
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
