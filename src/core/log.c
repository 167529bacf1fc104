/*
 * log.c - structured logging: one JSON object per line, {"ts", "level",
 * "event", fields...}, handed to a sink the host sets. With no sink (the
 * default) nothing is formatted and nothing is printed. Never on a hot path.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

static pthread_mutex_t g_log_lock = PTHREAD_MUTEX_INITIALIZER;
static stall_log_sink_fn g_sink;
static void *g_sink_ctx;
static int g_min_level = STALL_LOG_INFO;

void stall_log_set_sink(stall_log_sink_fn sink, void *ctx, int min_level) {
    pthread_mutex_lock(&g_log_lock);
    g_sink = sink;
    g_sink_ctx = ctx;
    g_min_level = min_level;
    pthread_mutex_unlock(&g_log_lock);
}

void stall_log_sink_fd(void *ctx, int level, const char *line, size_t len) {
    (void)level;
    int fd = (int)(intptr_t)ctx;
    while (len > 0) {
        ssize_t n = write(fd, line, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return;
        }
        line += n;
        len -= (size_t)n;
    }
}

const char *stall_log_level_name(int level) {
    if (level >= STALL_LOG_ERROR) return "error";
    if (level >= STALL_LOG_WARNING) return "warning";
    if (level >= STALL_LOG_INFO) return "info";
    return "debug";
}

/* A bounded output buffer; on overflow the line is cut and marked. */
typedef struct buf_t {
    char *p;
    size_t len, cap;
    int overflow;
} buf_t;

static void put(buf_t *b, const char *s, size_t n) {
    if (b->len + n >= b->cap) {
        b->overflow = 1;
        n = b->cap - 1 - b->len;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void puts_(buf_t *b, const char *s) { put(b, s, strlen(s)); }

static void put_json_string(buf_t *b, const char *s) {
    put(b, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        char esc[8];
        switch (*c) {
        case '"': put(b, "\\\"", 2); break;
        case '\\': put(b, "\\\\", 2); break;
        case '\n': put(b, "\\n", 2); break;
        case '\r': put(b, "\\r", 2); break;
        case '\t': put(b, "\\t", 2); break;
        default:
            if (*c < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", *c);
                put(b, esc, 6);
            } else {
                put(b, (const char *)c, 1);
            }
        }
    }
    put(b, "\"", 1);
}

int stall_log(int level, const char *event, const stall_field_t *fields, size_t nfields) {
    if (!event || !*event) return stall__err("stall_log: event must be a non-empty string");
    if (nfields && !fields) return stall__err("stall_log: fields is NULL but nfields is %zu", nfields);

    pthread_mutex_lock(&g_log_lock);
    stall_log_sink_fn sink = g_sink;
    void *ctx = g_sink_ctx;
    int min = g_min_level;
    pthread_mutex_unlock(&g_log_lock);
    if (!sink || level < min) return 0;

    char mem[4096], num[64];
    buf_t b = {mem, 0, sizeof mem - 2, 0}; /* room kept for the closing "}\n" */

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[96];
    snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000);
    puts_(&b, "{\"ts\":\"");
    puts_(&b, when);
    puts_(&b, "\",\"level\":\"");
    puts_(&b, stall_log_level_name(level));
    puts_(&b, "\",\"event\":");
    put_json_string(&b, event);

    for (size_t i = 0; i < nfields; i++) {
        const stall_field_t *f = &fields[i];
        if (!f->key || !*f->key) continue;
        put(&b, ",", 1);
        put_json_string(&b, f->key);
        put(&b, ":", 1);
        switch (f->type) {
        case STALL_FIELD_STR:
            if (f->v.s) put_json_string(&b, f->v.s);
            else puts_(&b, "null");
            break;
        case STALL_FIELD_INT:
            snprintf(num, sizeof num, "%lld", (long long)f->v.i);
            puts_(&b, num);
            break;
        case STALL_FIELD_UINT:
            snprintf(num, sizeof num, "%llu", (unsigned long long)f->v.u);
            puts_(&b, num);
            break;
        case STALL_FIELD_DOUBLE:
            if (isfinite(f->v.d)) {
                snprintf(num, sizeof num, "%.17g", f->v.d);
                puts_(&b, num);
            } else {
                puts_(&b, "null");
            }
            break;
        case STALL_FIELD_BOOL: puts_(&b, f->v.b ? "true" : "false"); break;
        default: puts_(&b, "null"); break;
        }
    }
    if (b.overflow) {
        /* too long: drop the fields, cut the event name (at a UTF-8
         * character boundary) so the line stays one valid JSON object */
        char ev[257];
        size_t n = strnlen(event, sizeof ev - 1);
        if (event[n])
            while (n > 0 && ((unsigned char)event[n] & 0xC0) == 0x80) n--;
        memcpy(ev, event, n);
        ev[n] = '\0';
        b.len = 0;
        b.overflow = 0;
        puts_(&b, "{\"ts\":\"");
        puts_(&b, when);
        puts_(&b, "\",\"level\":\"");
        puts_(&b, stall_log_level_name(level));
        puts_(&b, "\",\"event\":");
        put_json_string(&b, ev);
        puts_(&b, ",\"truncated\":true");
    }
    b.cap += 2;
    put(&b, "}\n", 2);
    sink(ctx, level, b.p, b.len);
    return 0;
}
