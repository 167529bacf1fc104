/*
 * main.c - the `stall` command line. The only code of stall that may print
 * to the terminal and exit(). Commands:
 *   stall version               print the version
 *   stall dump [--summary] DIR  drain a session directory: every record as one
 *                               JSON line, or a per-operation summary table
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stall.h"

static const char *usage_text =
    "usage: stall <command> [options]\n"
    "\n"
    "commands:\n"
    "  version                    print stall's version\n"
    "  dump [--summary] [--keep] DIR\n"
    "                             read every span recorded in session directory DIR\n"
    "                             (one JSON object per line, or with --summary a table\n"
    "                             per process and operation); the directory is removed\n"
    "                             afterwards unless --keep is given\n"
    "  help                       show this help\n";

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "stall: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n\n%s", usage_text);
    return 2;
}

static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

/* ------------------------------------------------------------ dump */

typedef struct op_t {
    uint32_t proc, name;
    int kind;
    uint64_t count, total_ns, max_ns, truncated;
} op_t;

typedef struct dump_ctx_t {
    stall_reader_t *r;
    int summary;
    op_t *ops;
    size_t nops, cap;
    uint64_t records;
} dump_ctx_t;

static op_t *op_find(dump_ctx_t *c, uint32_t proc, uint32_t name, int kind) {
    for (size_t i = 0; i < c->nops; i++)
        if (c->ops[i].proc == proc && c->ops[i].name == name && c->ops[i].kind == kind) return &c->ops[i];
    if (c->nops == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        op_t *n = realloc(c->ops, cap * sizeof *n);
        if (!n) return NULL;
        c->ops = n;
        c->cap = cap;
    }
    op_t *o = &c->ops[c->nops++];
    memset(o, 0, sizeof *o);
    o->proc = proc;
    o->name = name;
    o->kind = kind;
    return o;
}

static int on_records(void *ctx, const stall_reader_proc_t *p, const stall_record_t *recs, size_t n) {
    dump_ctx_t *c = ctx;
    c->records += n;
    for (size_t i = 0; i < n; i++) {
        const stall_record_t *r = &recs[i];
        const char *name = stall_reader_name(c->r, p->index, r->name);
        if (c->summary) {
            if (r->flags & STALL_REC_INSTANT) continue;
            op_t *o = op_find(c, p->index, r->name, r->kind);
            if (!o) return 1;
            if (r->flags & STALL_REC_TRUNCATED) {
                o->truncated++;
                continue;
            }
            uint64_t d = r->end_ns - r->start_ns;
            o->count++;
            o->total_ns += d;
            if (d > o->max_ns) o->max_ns = d;
            continue;
        }
        printf("{\"pid\":%" PRIu32 ",\"tid\":%" PRIu32 ",\"name\":", r->pid, r->tid);
        json_string(stdout, name);
        printf(",\"kind\":\"%s\",\"depth\":%u,\"start_ns\":%" PRIu64 ",\"end_ns\":%" PRIu64,
               stall_kind_name(r->kind), r->depth, r->start_ns, r->end_ns);
        if (r->flags & STALL_REC_HAS_CPU) printf(",\"cpu_ns\":%" PRIu64, r->cpu_ns);
        if (r->arg) printf(",\"arg\":%" PRIu64, r->arg);
        if (r->flags & STALL_REC_INSTANT) printf(",\"instant\":true");
        if (r->flags & STALL_REC_TRUNCATED) printf(",\"truncated\":true");
        if (r->flags & STALL_REC_SESSION_BEGIN) printf(",\"session\":\"begin\"");
        if (r->flags & STALL_REC_SESSION_END) printf(",\"session\":\"end\"");
        printf("}\n");
    }
    return 0;
}

static int cmp_ops(const void *a, const void *b) {
    const op_t *x = a, *y = b;
    if (x->proc != y->proc) return x->proc < y->proc ? -1 : 1;
    return x->total_ns < y->total_ns ? 1 : x->total_ns > y->total_ns ? -1 : 0;
}

static int cmd_dump(int argc, char **argv) {
    int summary = 0, keep = 0;
    const char *dir = NULL;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--summary")) summary = 1;
        else if (!strcmp(argv[i], "--keep")) keep = 1;
        else if (argv[i][0] == '-') return usage_error("dump: unknown option %s", argv[i]);
        else if (dir) return usage_error("dump: more than one directory given (%s)", argv[i]);
        else dir = argv[i];
    }
    if (!dir) return usage_error("dump: missing the session directory%s", "");
    stall_reader_t *r = stall_reader_open(dir);
    if (!r) {
        fprintf(stderr, "stall: %s\n", stall_last_error());
        return 1;
    }
    dump_ctx_t c = {.r = r, .summary = summary};
    if (stall_reader_drain(r, on_records, &c) < 0) {
        fprintf(stderr, "stall: %s\n", stall_last_error());
        stall_reader_close(r, 0);
        return 1;
    }
    if (summary) {
        size_t nproc = stall_reader_proc(r, 0, NULL);
        printf("session \"%s\": %zu process(es), %" PRIu64 " records\n", stall_reader_session_name(r), nproc,
               c.records);
        qsort(c.ops, c.nops, sizeof *c.ops, cmp_ops);
        for (size_t pi = 0; pi < nproc; pi++) {
            stall_reader_proc_t p;
            stall_reader_proc(r, pi, &p);
            printf("\npid %u (%s%s%s)  %s  dropped %" PRIu64 "\n", p.pid, p.comm, p.label[0] ? ", " : "",
                   p.label, p.closed ? "exited" : p.alive ? "running" : "exited without detaching",
                   p.dropped);
            printf("  %-28s %-13s %8s %12s %12s %12s\n", "operation", "kind", "count", "total ms", "mean us",
                   "max us");
            for (size_t i = 0; i < c.nops; i++) {
                op_t *o = &c.ops[i];
                if (o->proc != pi) continue;
                const char *name = stall_reader_name(r, o->proc, o->name);
                printf("  %-28.28s %-13s %8" PRIu64 " %12.3f %12.1f %12.1f", name[0] ? name : "(unnamed)",
                       stall_kind_name(o->kind), o->count, o->total_ns / 1e6,
                       o->count ? o->total_ns / 1e3 / (double)o->count : 0.0, o->max_ns / 1e3);
                if (o->truncated) printf("  (+%" PRIu64 " cut short by a crash)", o->truncated);
                printf("\n");
            }
        }
    }
    free(c.ops);
    if (stall_reader_close(r, !keep) < 0) {
        fprintf(stderr, "stall: %s\n", stall_last_error());
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) return usage_error("missing command%s", "");
    const char *cmd = argv[1];
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("stall %s\n", stall_version());
        return 0;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (!strcmp(cmd, "dump")) return cmd_dump(argc - 2, argv + 2);
    return usage_error("unknown command '%s'", cmd);
}
