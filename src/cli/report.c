/*
 * report.c - `stall report`: reads report.json files back. With one file it
 * prints the diagnosis (the same text `stall run` prints at its end: both
 * go through stall__print_report) and with --html re-renders the page; with
 * two it sets the runs side by side (key figures, the change, which is
 * better) and with --html writes a comparison page ("stall.compare/1": both
 * reports embedded in the same template).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "html.h"
#include "internal.h"
#include "export.h"
#include "jsonr.h"
#include "run.h"

#define MAX_REPORT_BYTES (512u << 20)

static const char *report_usage =
    "usage: stall report REPORT.json [--html OUT.html]\n"
    "       stall report A.json B.json [--html OUT.html]\n"
    "\n"
    "Reads report.json files written by `stall run`. With one file: prints its\n"
    "diagnosis, and with --html writes the report page again. With two: shows\n"
    "the runs side by side (duration, throughput, data wait, step time, main\n"
    "finding) with the change from A to B, and with --html writes a page that\n"
    "compares them.\n";

static int report_usage_error(const char *fmt, const char *arg) {
    return stall__usage_error("stall report", report_usage, fmt, arg);
}

/* ------------------------------------------------------------ printing */

/* key=value pairs of an object: first_sep before the first, sep between;
 * null values left out when skip_null is set. */
static void print_kv_object(FILE *f, const stall_jv_t *o, const char *first_sep, const char *sep, int skip_null) {
    int n = 0;
    for (size_t i = 0; o && o->type == STALL_JV_OBJ && i < o->len; i++) {
        const stall_jv_t *v = &o->items[i];
        if (skip_null && v->type == STALL_JV_NULL) continue;
        fprintf(f, "%s%s=", n++ ? sep : first_sep, o->keys[i]);
        switch (v->type) {
        case STALL_JV_NUM: fprintf(f, "%g", v->num); break;
        case STALL_JV_STR: fputs(v->str, f); break;
        case STALL_JV_BOOL: fputs(v->num ? "true" : "false", f); break;
        default: fputs("null", f);
        }
    }
}

void stall__print_report(FILE *f, const stall_jv_t *rep, int max_findings) {
    const stall_jv_t *cmd = stall__jv_get(rep, "command");
    fprintf(f, "\nstall: ");
    for (size_t i = 0; cmd && i < cmd->len && i < 6; i++)
        fprintf(f, "%s%s", i ? " " : "", stall__jv_str(stall__jv_at(cmd, i)) ? stall__jv_str(stall__jv_at(cmd, i)) : "?");
    if (cmd && cmd->len > 6) fprintf(f, " ...");
    double status = stall__jv_num(stall__jv_get(rep, "exit_status"));
    const char *sig = stall__jv_str(stall__jv_get(rep, "signal"));
    if (sig) fprintf(f, " | killed by %s (exit %.0f)", sig, status);
    else if (isfinite(status)) fprintf(f, " | exit %.0f", status);
    double dur = stall__jv_num(stall__jv_get(rep, "duration_s"));
    if (isfinite(dur)) fprintf(f, " | %.1f s", dur);
    double batches = stall__jv_num(stall__jv_path(rep, "throughput.batches"));
    double bps = stall__jv_num(stall__jv_path(rep, "throughput.batches_per_s"));
    if (isfinite(batches) && batches > 0 && isfinite(bps)) fprintf(f, " | %.0f batches, %.1f/s", batches, bps);
    fputc('\n', f);
    double loop = stall__jv_num(stall__jv_path(rep, "breakdown.loop_s"));
    double wait = stall__jv_num(stall__jv_path(rep, "breakdown.data_wait_frac"));
    double comp = stall__jv_num(stall__jv_path(rep, "breakdown.compute_frac"));
    if (isfinite(loop) && isfinite(wait) && isfinite(comp))
        fprintf(f, "  training loop %.1f s: waiting for data %.0f%%, computing %.0f%%\n", loop, 100 * wait, 100 * comp);
    const stall_jv_t *b = stall__jv_get(rep, "bottlenecks");
    size_t shown = b && b->type == STALL_JV_ARR ? b->len : 0;
    if (shown > (size_t)max_findings) shown = (size_t)max_findings;
    if (!shown) fprintf(f, "  no bottleneck found\n");
    for (size_t i = 0; i < shown; i++) {
        const stall_jv_t *x = stall__jv_at(b, i);
        const char *type = stall__jv_str(stall__jv_get(x, "type"));
        const char *title = stall__jv_str(stall__jv_get(x, "title"));
        const char *summ = stall__jv_str(stall__jv_get(x, "summary"));
        double sev = stall__jv_num(stall__jv_get(x, "severity"));
        fprintf(f, "\n  %zu. %s (%s): %.0f%% of wall time\n", i + 1, title ? title : (type ? type : "?"),
                type ? type : "?", isfinite(sev) ? 100 * sev : 0.0);
        if (summ) fprintf(f, "     %s\n", summ);
        const stall_jv_t *ev = stall__jv_get(x, "evidence");
        if (ev && ev->len) {
            fprintf(f, "     evidence:");
            print_kv_object(f, ev, " ", " ", 1);
            fputc('\n', f);
        }
        const stall_jv_t *sg = stall__jv_get(x, "suggestions");
        for (size_t j = 0; sg && j < sg->len; j++) {
            const stall_jv_t *s = stall__jv_at(sg, j);
            const char *action = stall__jv_str(stall__jv_get(s, "action"));
            fprintf(f, "     -> %s", action ? action : "?");
            print_kv_object(f, stall__jv_get(s, "params"), ": ", ", ", 0);
            double sp = stall__jv_num(stall__jv_get(s, "expected_speedup"));
            if (isfinite(sp)) fprintf(f, "  (expected %.2fx faster)", sp);
            fputc('\n', f);
        }
    }
}

/* ------------------------------------------------------------ reading */

typedef struct loaded_t {
    const char *path;
    char *text;
    size_t len;
    stall_jv_t *doc;
} loaded_t;

static void loaded_free(loaded_t *l) {
    free(l->text);
    stall__jv_free(l->doc);
}

/* Reads and checks one report.json; prints why not and returns -1. */
static int load(const char *path, loaded_t *out) {
    memset(out, 0, sizeof *out);
    out->path = path;
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "stall report: cannot read %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 1 << 16;
    out->text = malloc(cap);
    size_t n = 0, r;
    while (out->text && (r = fread(out->text + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (n + 1 == cap) {
            if (cap >= MAX_REPORT_BYTES) break;
            char *t = realloc(out->text, cap * 2);
            if (!t) {
                free(out->text);
                out->text = NULL;
                break;
            }
            out->text = t;
            cap *= 2;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (!out->text || bad || n + 1 >= MAX_REPORT_BYTES) {
        fprintf(stderr, "stall report: cannot read %s: %s\n", path,
                !out->text ? "out of memory" : bad ? "read error" : "larger than 512 MB");
        return -1;
    }
    out->text[n] = 0;
    out->len = n;
    char err[200];
    out->doc = stall__json_parse(out->text, n, err, sizeof err);
    if (!out->doc) {
        fprintf(stderr, "stall report: %s is not valid JSON: %s\n", path, err);
        return -1;
    }
    const char *schema = stall__jv_str(stall__jv_get(out->doc, "schema"));
    if (!schema || strcmp(schema, "stall.report/1")) {
        fprintf(stderr, "stall report: %s is not a stall report (its \"schema\" is %s%s%s, expected "
                        "\"stall.report/1\"; give the report.json that `stall run` wrote)\n",
                path, schema ? "\"" : "", schema ? schema : "missing", schema ? "\"" : "");
        return -1;
    }
    return 0;
}

static int write_page(const char *out, const char *json, size_t len) {
    if (stall__report_html_write(out, json, len) < 0) {
        fprintf(stderr, "stall report: cannot write %s: %s\n", out, stall_last_error());
        return -1;
    }
    fprintf(stderr, "  page: %s\n", out);
    return 0;
}

/* ------------------------------------------------------------ comparing */

typedef struct figure_t {
    const char *label, *path;
    int better;  /* +1: higher is better, -1: lower is better */
    int kind;    /* 0: seconds, 1: rate, 2: share (pp), 3: ms */
} figure_t;

static const figure_t figures[] = {
    {"duration", "duration_s", -1, 0},
    {"batches/s", "throughput.batches_per_s", +1, 1},
    {"data wait", "breakdown.data_wait_frac", -1, 2},
    {"mean step", "throughput.step_ms_mean", -1, 3},
    {"mean wait", "throughput.wait_ms_mean", -1, 3},
    {"loop", "breakdown.loop_s", -1, 0},
};

static void cell(char *buf, size_t cap, double v, int kind) {
    if (!isfinite(v)) snprintf(buf, cap, "-");
    else if (kind == 0) snprintf(buf, cap, "%.2f s", v);
    else if (kind == 1) snprintf(buf, cap, "%.2f", v);
    else if (kind == 2) snprintf(buf, cap, "%.0f%%", 100 * v);
    else snprintf(buf, cap, "%.2f ms", v);
}

static void compare_text(const loaded_t *a, const loaded_t *b) {
    FILE *f = stdout;
    fprintf(f, "stall report: A = %s\n              B = %s\n\n", a->path, b->path);
    fprintf(f, "  %-12s %14s %14s   %s\n", "", "A", "B", "B against A");
    for (size_t i = 0; i < sizeof figures / sizeof figures[0]; i++) {
        const figure_t *g = &figures[i];
        double x = stall__jv_num(stall__jv_path(a->doc, g->path)), y = stall__jv_num(stall__jv_path(b->doc, g->path));
        char cx[32], cy[32], ch[64] = "";
        cell(cx, sizeof cx, x, g->kind);
        cell(cy, sizeof cy, y, g->kind);
        if (isfinite(x) && isfinite(y)) {
            if (g->kind == 2) {
                double pp = 100 * (y - x);
                snprintf(ch, sizeof ch, "%+.0f pp%s", pp, fabs(pp) < 1 ? "" : (pp * g->better > 0 ? "  (better)" : "  (worse)"));
            } else if (x > 0 && y > 0) {
                double r = g->better > 0 ? y / x : x / y; /* > 1: B is better */
                if (fabs(r - 1) < 0.02) snprintf(ch, sizeof ch, "same");
                else if (r > 1) snprintf(ch, sizeof ch, "%.2fx better", r);
                else snprintf(ch, sizeof ch, "%.2fx worse", 1 / r);
            }
        }
        fprintf(f, "  %-12s %14s %14s   %s\n", g->label, cx, cy, ch);
    }
    const char *ta = stall__jv_str(stall__jv_path(stall__jv_at(stall__jv_get(a->doc, "bottlenecks"), 0), "type"));
    const char *tb = stall__jv_str(stall__jv_path(stall__jv_at(stall__jv_get(b->doc, "bottlenecks"), 0), "type"));
    fprintf(f, "\n  main finding  A: %s\n                B: %s  (%s)\n", ta ? ta : "none", tb ? tb : "none",
            (ta && tb && !strcmp(ta, tb)) || (!ta && !tb) ? "same" : "changed");
}

/* {"schema":"stall.compare/1","a_label":...,"b_label":...,"a":A,"b":B}: the
 * two reports are embedded as their own (already validated) text */
static char *compare_json(const loaded_t *a, const loaded_t *b, size_t *len) {
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (!f) return NULL;
    fputs("{\"schema\":\"stall.compare/1\",\"a_label\":", f);
    stall__json_str(f, a->path);
    fputs(",\"b_label\":", f);
    stall__json_str(f, b->path);
    fputs(",\"a\":", f);
    fwrite(a->text, 1, a->len, f);
    fputs(",\"b\":", f);
    fwrite(b->text, 1, b->len, f);
    fputc('}', f);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    *len = size;
    return buf;
}

/* ------------------------------------------------------------ command */

int stall__cmd_report(int argc, char **argv) {
    const char *files[2] = {NULL, NULL}, *html = NULL;
    int nfiles = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(report_usage, stdout);
            return 0;
        }
        if (!strncmp(a, "--html", 6) && (a[6] == 0 || a[6] == '=')) {
            if (a[6] == '=') html = a + 7;
            else if (i + 1 < argc) html = argv[++i];
            else return report_usage_error("option %s needs a file name", "--html");
            if (!*html) return report_usage_error("option %s needs a file name", "--html");
            continue;
        }
        if (a[0] == '-' && a[1]) return report_usage_error("unknown option '%s'", a);
        if (nfiles == 2) return report_usage_error("at most two reports, got a third: '%s'", a);
        files[nfiles++] = a;
    }
    if (!nfiles) return report_usage_error("no report given%s", "");
    loaded_t l[2];
    memset(l, 0, sizeof l);
    int rc = 2;
    for (int i = 0; i < nfiles; i++)
        if (load(files[i], &l[i]) < 0) goto out;
    rc = 1;
    if (nfiles == 1) {
        stall__print_report(stdout, l[0].doc, 16);
        if (html && write_page(html, l[0].text, l[0].len) < 0) goto out;
    } else {
        compare_text(&l[0], &l[1]);
        if (html) {
            size_t len;
            char *j = compare_json(&l[0], &l[1], &len);
            if (!j) {
                fprintf(stderr, "stall report: out of memory\n");
                goto out;
            }
            int w = write_page(html, j, len);
            free(j);
            if (w < 0) goto out;
        }
    }
    rc = 0;
out:
    loaded_free(&l[0]);
    loaded_free(&l[1]);
    return rc;
}
