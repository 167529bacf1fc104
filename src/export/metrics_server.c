/*
 * metrics_server.c - the Prometheus endpoint: a libmicrohttpd daemon with one
 * internal polling thread, bound to the address it is given (127.0.0.1 by
 * default), that renders an engine's state (prometheus.c) at scrape time,
 * on its own thread, so nothing runs on the profiled program's path.
 *
 * GET (or HEAD) /metrics answers the exposition with Content-Type
 * "text/plain; version=0.0.4; charset=utf-8", / a line pointing at /metrics,
 * other paths 404, other methods 405 (with Allow). One render at a time (a
 * lock): the per-process CPU state and the added sources are shared by the
 * server's thread and stall_metrics_text callers.
 *
 * A process that forks after the server started (DataLoader workers) would
 * keep the listening socket open in every child, holding the port (and
 * taking connections nobody answers) should the parent die first; an atfork
 * handler closes it in the child, where stopping the server only frees the
 * handle (the server's thread lives in the parent).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "internal.h"
#include "prometheus.h"

#define MAX_SOURCES 16
#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

typedef struct source_t {
    int (*fn)(void *ctx, FILE *out, const char *labels);
    void *ctx;
} source_t;

struct stall_metrics_server_t {
    stall_engine_t *e;
    struct MHD_Daemon *d;
    int listen_fd;
    pid_t pid;            /* the process whose thread serves (not a forked child) */
    pthread_mutex_t lock; /* one render at a time: cpu, sources */
    stall_prom_cpu_t cpu;
    source_t src[MAX_SOURCES];
    int nsrc;
    char *labels;         /* the constant labels, rendered without braces */
    int port;
    char url[320];
    char mhd_err[256];    /* the last message of libmicrohttpd (start-up failures) */
    stall_metrics_server_t *next; /* the live servers (atfork) */
};

/* ------------------------------------------------------- fork handling */

static pthread_mutex_t g_servers_lock = PTHREAD_MUTEX_INITIALIZER;
static stall_metrics_server_t *g_servers;
static pthread_once_t g_atfork_once = PTHREAD_ONCE_INIT;

static void atfork_prepare(void) { pthread_mutex_lock(&g_servers_lock); }
static void atfork_parent(void) { pthread_mutex_unlock(&g_servers_lock); }

/* In the child: the servers' threads did not come along; their listening
 * sockets must not stay open here. */
static void atfork_child(void) {
    for (stall_metrics_server_t *s = g_servers; s; s = s->next)
        if (s->listen_fd >= 0) close(s->listen_fd);
    g_servers = NULL;
    pthread_mutex_unlock(&g_servers_lock);
}

static void atfork_install(void) { pthread_atfork(atfork_prepare, atfork_parent, atfork_child); }

static void servers_add(stall_metrics_server_t *s) {
    pthread_once(&g_atfork_once, atfork_install);
    pthread_mutex_lock(&g_servers_lock);
    s->next = g_servers;
    g_servers = s;
    pthread_mutex_unlock(&g_servers_lock);
}

static void servers_remove(stall_metrics_server_t *s) {
    pthread_mutex_lock(&g_servers_lock);
    for (stall_metrics_server_t **p = &g_servers; *p; p = &(*p)->next) {
        if (*p == s) {
            *p = s->next;
            break;
        }
    }
    pthread_mutex_unlock(&g_servers_lock);
}

/* ------------------------------------------------------------- labels */

/* Appends k="v" (escaped) to a memstream. */
static void label_out(FILE *f, int *first, const char *k, const char *v) {
    if (!*first) fputc(',', f);
    *first = 0;
    fprintf(f, "%s=\"", k);
    stall__prom_escape(f, v);
    fputc('"', f);
}

/* Checks the key,value list and renders it, host first unless given. */
static char *render_labels(const char *const *labels) {
    char *buf = NULL;
    size_t n = 0;
    int first = 1, has_host = 0;
    for (size_t i = 0; labels && labels[i]; i += 2) {
        const char *k = labels[i];
        if (!labels[i + 1]) {
            stall__err("metrics labels: label '%s' has no value (the list is key, value, ..., NULL)", k);
            return NULL;
        }
        if (!stall__prom_label_name_ok(k)) {
            stall__err("metrics labels: '%s' is not a label name ([a-zA-Z_][a-zA-Z0-9_]*, at most 63 bytes, "
                       "no leading '__')", k);
            return NULL;
        }
        if (stall__prom_label_reserved(k)) {
            stall__err("metrics labels: '%s' is a label of stall's own series; choose another name", k);
            return NULL;
        }
        for (size_t j = 0; j < i; j += 2)
            if (!strcmp(labels[j], k)) {
                stall__err("metrics labels: label '%s' is given twice", k);
                return NULL;
            }
        if (!strcmp(k, "host")) has_host = 1;
    }
    FILE *f = open_memstream(&buf, &n);
    if (!f) {
        stall__errno(errno, "metrics labels");
        return NULL;
    }
    if (!has_host) {
        char host[256];
        if (gethostname(host, sizeof host) < 0) snprintf(host, sizeof host, "unknown");
        host[sizeof host - 1] = 0;
        label_out(f, &first, "host", host);
    }
    for (size_t i = 0; labels && labels[i]; i += 2) label_out(f, &first, labels[i], labels[i + 1]);
    if (fclose(f) != 0) {
        free(buf);
        stall__err("metrics labels: out of memory");
        return NULL;
    }
    return buf;
}

/* ------------------------------------------------------------ rendering */

/* The exposition, rendered under the server's lock: stall's own series,
 * then each source's (each into its own buffer, kept only when it says 0). */
static char *render(stall_metrics_server_t *s, size_t *len) {
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (!f) {
        stall__errno(errno, "metrics");
        return NULL;
    }
    pthread_mutex_lock(&s->lock);
    int rc = stall__prom_render_engine(f, s->e, &s->cpu, s->labels);
    for (int i = 0; i < s->nsrc && rc == 0; i++) {
        char *sb = NULL;
        size_t sn = 0;
        FILE *sf = open_memstream(&sb, &sn);
        if (!sf) continue;
        int ok = s->src[i].fn(s->src[i].ctx, sf, s->labels) == 0;
        if (fclose(sf) == 0 && ok && sn) fwrite(sb, 1, sn, f);
        free(sb);
    }
    pthread_mutex_unlock(&s->lock);
    if (fclose(f) != 0 && rc == 0) rc = stall__err("metrics: out of memory");
    if (rc < 0) {
        free(buf);
        return NULL;
    }
    if (len) *len = n;
    return buf;
}

char *stall_metrics_text(stall_metrics_server_t *s, size_t *len) {
    if (!s) {
        stall__err("stall_metrics_text: NULL server");
        return NULL;
    }
    return render(s, len);
}

int stall_metrics_server_add_source(stall_metrics_server_t *s, int (*fn)(void *ctx, FILE *out, const char *labels),
                                    void *ctx) {
    if (!s || !fn) return stall__err("stall_metrics_server_add_source: NULL server or function");
    int rc = 0;
    pthread_mutex_lock(&s->lock);
    if (s->nsrc == MAX_SOURCES) {
        rc = stall__err("stall_metrics_server_add_source: at most %d sources", MAX_SOURCES);
    } else {
        s->src[s->nsrc].fn = fn;
        s->src[s->nsrc].ctx = ctx;
        s->nsrc++;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* ---------------------------------------------------------------- HTTP */

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type, char *body, size_t len,
                             enum MHD_ResponseMemoryMode mode) {
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
    if (!r) {
        if (mode == MHD_RESPMEM_MUST_FREE) free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED) MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result reply_text(struct MHD_Connection *c, unsigned status, const char *text) {
    return reply(c, status, "text/plain; charset=utf-8", (char *)text, strlen(text), MHD_RESPMEM_PERSISTENT);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
    stall_metrics_server_t *s = cls;
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)con_cls;
    if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
        return reply_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "405 method not allowed: use GET\n");
    if (!strcmp(url, "/metrics")) {
        size_t len = 0;
        char *body = render(s, &len);
        if (!body) {
            char msg[600];
            snprintf(msg, sizeof msg, "500 cannot render the metrics: %s\n", stall_last_error());
            char *m = strdup(msg);
            if (!m) return MHD_NO;
            return reply(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain; charset=utf-8", m, strlen(m),
                         MHD_RESPMEM_MUST_FREE);
        }
        return reply(c, MHD_HTTP_OK, CONTENT_TYPE, body, len, MHD_RESPMEM_MUST_FREE);
    }
    if (!strcmp(url, "/"))
        return reply_text(c, MHD_HTTP_OK, "stall: Prometheus metrics of this training run are at /metrics\n");
    return reply_text(c, MHD_HTTP_NOT_FOUND, "404 not found: the metrics are at /metrics\n");
}

/* libmicrohttpd's messages: kept (the last one) to explain a failed start;
 * the library never prints. */
static void on_log(void *cls, const char *fmt, va_list ap) {
    stall_metrics_server_t *s = cls;
    vsnprintf(s->mhd_err, sizeof s->mhd_err, fmt, ap);
    size_t n = strlen(s->mhd_err);
    while (n && (s->mhd_err[n - 1] == '\n' || s->mhd_err[n - 1] == '.')) s->mhd_err[--n] = 0;
}

/* ---------------------------------------------------------- the server */

static void server_free(stall_metrics_server_t *s) {
    if (!s) return;
    /* in a forked child the daemon's thread does not exist: nothing to stop
     * (its socket was closed at fork), its memory is left alone */
    if (s->d && s->pid == getpid()) MHD_stop_daemon(s->d);
    pthread_mutex_destroy(&s->lock);
    stall__prom_cpu_free(&s->cpu);
    free(s->labels);
    free(s);
}

stall_metrics_server_t *stall_metrics_serve(stall_engine_t *e, const char *address, const char *const *labels) {
    stall_metrics_server_t *s = NULL;
    stall_prom_addr_t a;
    if (!e) {
        stall__err("stall_metrics_serve: NULL engine");
        goto fail;
    }
    if (!address) address = "127.0.0.1:9464";
    if (stall__prom_parse_address(address, &a) < 0) goto fail;
    s = calloc(1, sizeof *s);
    if (!s) {
        stall__err("stall_metrics_serve: out of memory");
        goto fail;
    }
    s->e = e;
    s->listen_fd = -1;
    s->pid = getpid();
    pthread_mutex_init(&s->lock, NULL);
    s->labels = render_labels(labels);
    if (!s->labels) goto fail;

    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;
    if (a.ss.ss_family == AF_INET6) flags |= MHD_USE_IPv6;
    /* the daemon's thread takes no signal: they stay with the program's threads */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    s->d = MHD_start_daemon(flags, (uint16_t)a.port, NULL, NULL, on_request, s,
                            MHD_OPTION_EXTERNAL_LOGGER, on_log, s,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&a.ss,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)32,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
                            MHD_OPTION_END);
    int err = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!s->d) {
        const char *why = s->mhd_err[0] ? s->mhd_err : err ? strerror(err) : "libmicrohttpd could not start";
        stall__err("cannot serve metrics on %s: %s", address, why);
        goto fail;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_LISTEN_FD);
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    if (!info || getsockname(info->listen_fd, (struct sockaddr *)&bound, &blen) < 0) {
        stall__err("cannot serve metrics on %s: the listening socket cannot be read", address);
        goto fail;
    }
    s->listen_fd = info->listen_fd;
    s->port = bound.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                                          : ntohs(((struct sockaddr_in *)&bound)->sin_port);
    int v6 = strchr(a.host, ':') != NULL;
    snprintf(s->url, sizeof s->url, "http://%s%s%s:%d/metrics", v6 ? "[" : "", a.host, v6 ? "]" : "", s->port);
    servers_add(s);
    return s;
fail:
    server_free(s);
    return NULL;
}

int stall_metrics_server_port(const stall_metrics_server_t *s) { return s ? s->port : -1; }

const char *stall_metrics_server_url(const stall_metrics_server_t *s) { return s ? s->url : ""; }

void stall_metrics_server_stop(stall_metrics_server_t *s) {
    if (!s) return;
    servers_remove(s);
    server_free(s);
}
