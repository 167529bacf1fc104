/*
 * parse.c - small hand-written scanners for the /proc, /sys and cgroup files
 * the Linux collectors read. Each is a pure function of (buf, len): it never
 * reads past buf[len], never allocates, treats a NUL inside the text as an
 * ordinary (unexpected) character, and returns -1 when the text is not what
 * the file should hold. They are fuzzed (fuzz/) and tested on fixture trees
 * recorded from real machines (tests/collect/).
 */
#include <string.h>

#include "collector.h"
#include "lx.h"

/* ------------------------------------------------------------ the scanner */

/* A cursor over [p, end). Every read checks p < end. */
typedef struct sc_t {
    const char *p, *end;
} sc_t;

static sc_t sc_make(const char *buf, size_t len) {
    sc_t s = {buf, buf + len};
    return s;
}

static int is_blank(char c) { return c == ' ' || c == '\t'; }
static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

static void sc_blanks(sc_t *s) {
    while (s->p < s->end && is_blank(*s->p)) s->p++;
}

static void sc_spaces(sc_t *s) {
    while (s->p < s->end && is_space(*s->p)) s->p++;
}

/* Moves past the end of the current line. */
static void sc_next_line(sc_t *s) {
    while (s->p < s->end && *s->p != '\n') s->p++;
    if (s->p < s->end) s->p++;
}

static int sc_at_eol(const sc_t *s) { return s->p >= s->end || *s->p == '\n'; }

/* Consumes lit when the text at the cursor starts with it. */
static int sc_lit(sc_t *s, const char *lit) {
    size_t n = strlen(lit);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, lit, n) != 0) return 0;
    s->p += n;
    return 1;
}

/* An unsigned decimal number (at least one digit). 0 or -1 (no digit, or it
 * does not fit in 64 bits); on -1 the cursor does not move. */
static int sc_u64(sc_t *s, uint64_t *out) {
    const char *p = s->p;
    uint64_t v = 0;
    if (p >= s->end || !is_digit(*p)) return -1;
    while (p < s->end && is_digit(*p)) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10) return -1;
        v = v * 10 + d;
        p++;
    }
    s->p = p;
    *out = v;
    return 0;
}

static int sc_u32(sc_t *s, uint32_t *out) {
    uint64_t v;
    const char *save = s->p;
    if (sc_u64(s, &v) < 0) return -1;
    if (v > UINT32_MAX) {
        s->p = save;
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

/* A non-negative decimal number with an optional fraction ("5.90", "2000",
 * "0.5"). No sign, exponent, inf or nan. 0 or -1. */
static int sc_double(sc_t *s, double *out) {
    const char *p = s->p;
    double v = 0.0;
    int digits = 0;
    while (p < s->end && is_digit(*p)) {
        if (v < 1e300) v = v * 10.0 + (double)(*p - '0');
        p++;
        digits++;
    }
    if (p < s->end && *p == '.') {
        p++;
        double scale = 0.1;
        while (p < s->end && is_digit(*p)) {
            if (scale > 1e-30) v += (double)(*p - '0') * scale;
            scale *= 0.1;
            p++;
            digits++;
        }
    }
    if (!digits) return -1;
    s->p = p;
    *out = v;
    return 0;
}

/* Skips one token (a run of non-space characters); 0, or -1 when none. */
static int sc_skip_token(sc_t *s) {
    const char *p = s->p;
    while (p < s->end && !is_space(*p)) p++;
    if (p == s->p) return -1;
    s->p = p;
    return 0;
}

/* Reads a "Key:" at the start of a line: on success *key and *klen name it and
 * the cursor is past the ':' and the blanks after it. */
static int sc_key_colon(sc_t *s, const char **key, size_t *klen) {
    const char *p = s->p;
    while (p < s->end && *p != ':' && *p != '\n') p++;
    if (p >= s->end || *p != ':') return -1;
    *key = s->p;
    *klen = (size_t)(p - s->p);
    s->p = p + 1;
    sc_blanks(s);
    return 0;
}

static int key_is(const char *key, size_t klen, const char *want) {
    size_t n = strlen(want);
    return klen == n && memcmp(key, want, n) == 0;
}

/* "<number> kB" (or a bare number) in bytes. */
static int sc_kb(sc_t *s, uint64_t *bytes) {
    uint64_t v;
    if (sc_u64(s, &v) < 0) return -1;
    sc_blanks(s);
    if (sc_lit(s, "kB")) {
        if (v > UINT64_MAX / 1024) return -1;
        v *= 1024;
    }
    *bytes = v;
    return 0;
}

/* The text is blank (only spaces and newlines). */
static int all_space(const char *buf, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (!is_space(buf[i])) return 0;
    return 1;
}

/* Copies [p, p+n) into dst (capacity cap), truncating, NUL-terminated. */
static void copy_name(char *dst, size_t cap, const char *p, size_t n) {
    if (n >= cap) n = cap - 1;
    memcpy(dst, p, n);
    dst[n] = '\0';
}

/* ----------------------------------------------------------- /proc/stat */

/* The tick fields after "cpu" or "cpuN": at least 4 (user nice system
 * idle); later ones missing on old kernels count as 0. */
static int parse_cpu_times(sc_t *s, stall_cpu_times_t *t) {
    uint64_t v[8] = {0};
    int n = 0;
    while (n < 8) {
        sc_blanks(s);
        if (sc_at_eol(s)) break;
        if (sc_u64(s, &v[n]) < 0) return -1;
        n++;
    }
    if (n < 4) return -1;
    t->user = v[0];
    t->nice = v[1];
    t->system = v[2];
    t->idle = v[3];
    t->iowait = v[4];
    t->irq = v[5];
    t->softirq = v[6];
    t->steal = v[7];
    return 0;
}

int stall__parse_stat(const char *buf, size_t len, stall_cpu_times_t *total, stall_cpu_times_t *cores,
                      uint32_t max_cores, uint32_t *ncores, uint64_t *ctxt, uint32_t *procs_running,
                      uint32_t *procs_blocked) {
    if (!buf || !total) return -1;
    if (!cores) max_cores = 0;
    memset(total, 0, sizeof *total);
    if (max_cores) memset(cores, 0, sizeof *cores * max_cores);
    if (ncores) *ncores = 0;
    if (ctxt) *ctxt = 0;
    if (procs_running) *procs_running = 0;
    if (procs_blocked) *procs_blocked = 0;

    sc_t s = sc_make(buf, len);
    int have_total = 0;
    uint32_t n = 0;
    while (s.p < s.end) {
        if (sc_lit(&s, "cpu")) {
            stall_cpu_times_t t;
            if (s.p < s.end && is_blank(*s.p)) {
                if (parse_cpu_times(&s, &t) == 0) {
                    *total = t;
                    have_total = 1;
                }
            } else {
                uint64_t idx;
                if (sc_u64(&s, &idx) == 0 && idx < STALL__LX_MAX_CPUS && s.p < s.end && is_blank(*s.p) &&
                    parse_cpu_times(&s, &t) == 0) {
                    if (idx < max_cores) cores[idx] = t;
                    if (idx + 1 > n) n = (uint32_t)idx + 1;
                }
            }
        } else if (sc_lit(&s, "ctxt ")) {
            uint64_t v;
            sc_blanks(&s);
            if (sc_u64(&s, &v) == 0 && ctxt) *ctxt = v;
        } else if (sc_lit(&s, "procs_running ")) {
            uint32_t v;
            sc_blanks(&s);
            if (sc_u32(&s, &v) == 0 && procs_running) *procs_running = v;
        } else if (sc_lit(&s, "procs_blocked ")) {
            uint32_t v;
            sc_blanks(&s);
            if (sc_u32(&s, &v) == 0 && procs_blocked) *procs_blocked = v;
        }
        sc_next_line(&s);
    }
    if (ncores) *ncores = n;
    return have_total ? 0 : -1;
}

int stall__parse_stat_online(const char *buf, size_t len) {
    if (!buf) return -1;
    sc_t s = sc_make(buf, len);
    int n = 0;
    while (s.p < s.end) {
        uint64_t idx;
        if (sc_lit(&s, "cpu") && sc_u64(&s, &idx) == 0 && idx < STALL__LX_MAX_CPUS && s.p < s.end &&
            is_blank(*s.p))
            n++;
        sc_next_line(&s);
    }
    return n;
}

/* ------------------------------------------------------------ loadavg */

int stall__parse_loadavg(const char *buf, size_t len, double *l1, double *l5, double *l15) {
    if (!buf) return -1;
    sc_t s = sc_make(buf, len);
    double v[3];
    for (int i = 0; i < 3; i++) {
        sc_blanks(&s);
        if (sc_double(&s, &v[i]) < 0) return -1;
        if (s.p < s.end && !is_space(*s.p)) return -1;
    }
    if (l1) *l1 = v[0];
    if (l5) *l5 = v[1];
    if (l15) *l15 = v[2];
    return 0;
}

/* ------------------------------------------------------------ meminfo */

int stall__parse_meminfo(const char *buf, size_t len, stall_meminfo_t *out) {
    static const char *const keys[] = {"MemTotal", "MemAvailable", "Cached", "Buffers", "SwapTotal", "SwapFree"};
    if (!buf || !out) return -1;
    memset(out, 0, sizeof *out);
    uint64_t *dst[] = {&out->total, &out->available, &out->cached, &out->buffers, &out->swap_total, &out->swap_free};
    sc_t s = sc_make(buf, len);
    while (s.p < s.end) {
        const char *key;
        size_t klen;
        uint64_t v;
        if (sc_key_colon(&s, &key, &klen) == 0) {
            for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
                if (key_is(key, klen, keys[i])) {
                    if (sc_kb(&s, &v) == 0) {
                        *dst[i] = v;
                        out->found |= 1u << i;
                    }
                    break;
                }
            }
        }
        sc_next_line(&s);
    }
    return out->found ? 0 : -1;
}

/* ---------------------------------------------------------------- PSI */

int stall__parse_psi(const char *buf, size_t len, stall_psi_t *out) {
    if (!buf || !out) return -1;
    memset(out, 0, sizeof *out);
    sc_t s = sc_make(buf, len);
    while (s.p < s.end) {
        int full = -1;
        if (sc_lit(&s, "some"))
            full = 0;
        else if (sc_lit(&s, "full"))
            full = 1;
        if (full >= 0 && s.p < s.end && is_blank(*s.p)) {
            double avg10 = 0;
            uint64_t total = 0;
            int have_avg = 0, have_total = 0, bad = 0;
            for (;;) {
                sc_blanks(&s);
                if (sc_at_eol(&s)) break;
                if (sc_lit(&s, "avg10=")) {
                    if (sc_double(&s, &avg10) < 0) bad = 1;
                    have_avg = 1;
                } else if (sc_lit(&s, "total=")) {
                    if (sc_u64(&s, &total) < 0) bad = 1;
                    have_total = 1;
                } else if (sc_skip_token(&s) < 0) {
                    bad = 1;
                }
                if (bad) break;
            }
            if (!bad && have_avg && have_total) {
                if (full) {
                    out->full_avg10 = avg10;
                    out->full_total_us = total;
                    out->has_full = 1;
                } else {
                    out->some_avg10 = avg10;
                    out->some_total_us = total;
                    out->has_some = 1;
                }
            }
        }
        sc_next_line(&s);
    }
    return out->has_some || out->has_full ? 0 : -1;
}

/* ---------------------------------------------------------- diskstats */

int stall__parse_diskstats(const char *buf, size_t len, stall_disk_t *out, size_t cap) {
    if (!buf || (!out && cap)) return -1;
    sc_t s = sc_make(buf, len);
    size_t n = 0;
    int parsed = 0;
    while (s.p < s.end) {
        uint64_t major, minor, st[10];
        sc_blanks(&s);
        if (sc_u64(&s, &major) == 0 && (sc_blanks(&s), sc_u64(&s, &minor) == 0)) {
            sc_blanks(&s);
            const char *name = s.p;
            if (sc_skip_token(&s) == 0 && s.p < s.end && is_blank(*s.p)) {
                size_t nlen = (size_t)(s.p - name);
                int k = 0;
                for (; k < 10; k++) {
                    sc_blanks(&s);
                    if (sc_u64(&s, &st[k]) < 0) break;
                }
                /* stats: 0 reads 1 merged 2 sectors read 3 ms 4 writes 5 merged
                 * 6 sectors written 7 ms 8 in flight 9 io_ticks */
                if (k == 10 && (sc_at_eol(&s) || is_blank(*s.p)) && !memchr(name, '\0', nlen)) {
                    parsed = 1;
                    if (n < cap) {
                        stall_disk_t *d = &out[n];
                        copy_name(d->name, sizeof d->name, name, nlen);
                        d->read_sectors = st[2];
                        d->write_sectors = st[6];
                        d->io_ticks_ms = st[9];
                        n++;
                    }
                }
            }
        }
        sc_next_line(&s);
    }
    if (!parsed && !all_space(buf, len)) return -1;
    return (int)n;
}

/* ------------------------------------------------------------ net/dev */

int stall__parse_netdev(const char *buf, size_t len, stall_iface_t *out, size_t cap) {
    if (!buf || (!out && cap)) return -1;
    sc_t s = sc_make(buf, len);
    size_t n = 0;
    int parsed = 0, candidates = 0;
    while (s.p < s.end) {
        const char *line = s.p, *colon = NULL, *q = s.p;
        while (q < s.end && *q != '\n') {
            if (*q == ':' && !colon) colon = q;
            q++;
        }
        if (colon) {
            candidates++;
            const char *a = line, *b = colon;
            while (a < b && is_blank(*a)) a++;
            while (b > a && is_blank(b[-1])) b--;
            sc_t f = {colon + 1, q};
            uint64_t v[9];
            int k = 0;
            for (; k < 9; k++) {
                sc_blanks(&f);
                if (sc_u64(&f, &v[k]) < 0) break;
            }
            if (b > a && k == 9 && !memchr(a, '\0', (size_t)(b - a))) {
                parsed = 1;
                if (n < cap) {
                    copy_name(out[n].name, sizeof out[n].name, a, (size_t)(b - a));
                    out[n].rx_bytes = v[0];
                    out[n].tx_bytes = v[8];
                    n++;
                }
            }
        }
        s.p = q;
        sc_next_line(&s);
    }
    if (!parsed && candidates) return -1;
    return (int)n;
}

/* ------------------------------------------------------- /proc/<pid>/stat */

int stall__parse_pid_stat(const char *buf, size_t len, stall_pid_stat_t *out) {
    return stall__parse_pid_stat_x(buf, len, out, NULL, NULL);
}

int stall__parse_pid_stat_x(const char *buf, size_t len, stall_pid_stat_t *out, uint64_t *minflt, uint64_t *majflt) {
    if (!buf || !out) return -1;
    memset(out, 0, sizeof *out);
    uint64_t mn = 0, mj = 0;
    sc_t s = sc_make(buf, len);
    uint64_t pid;
    if (sc_u64(&s, &pid) < 0 || !sc_lit(&s, " (")) return -1;
    /* comm runs to the LAST ')' of the text: it may hold spaces and ')' */
    const char *open = s.p, *close = NULL;
    for (const char *q = s.end; q > open; q--)
        if (q[-1] == ')') {
            close = q - 1;
            break;
        }
    if (!close) return -1;
    copy_name(out->comm, sizeof out->comm, open, (size_t)(close - open));
    s.p = close + 1;
    if (!sc_lit(&s, " ") || s.p >= s.end || is_space(*s.p)) return -1;
    out->state = *s.p;
    if (sc_skip_token(&s) < 0) return -1;
    /* fields from 4 on: 4 ppid, 10 minflt, 12 majflt, 14 utime, 15 stime,
     * 20 num_threads, 22 starttime, 24 rss (pages) */
    for (int field = 4; field <= 24; field++) {
        if (!sc_lit(&s, " ")) return -1;
        uint64_t v;
        switch (field) {
        case 4:
            if (sc_u32(&s, &out->ppid) < 0) return -1;
            break;
        case 10:
            if (sc_u64(&s, &mn) < 0) return -1;
            break;
        case 12:
            if (sc_u64(&s, &mj) < 0) return -1;
            break;
        case 14:
            if (sc_u64(&s, &out->utime) < 0) return -1;
            break;
        case 15:
            if (sc_u64(&s, &out->stime) < 0) return -1;
            break;
        case 20:
            if (sc_u32(&s, &out->threads) < 0) return -1;
            break;
        case 22:
            if (sc_u64(&s, &out->starttime) < 0) return -1;
            break;
        case 24:
            if (sc_u64(&s, &v) < 0) return -1;
            out->rss_pages = v;
            break;
        default:
            if (sc_skip_token(&s) < 0) return -1;
        }
        if (s.p < s.end && !is_space(*s.p)) return -1;
    }
    if (minflt) *minflt = mn;
    if (majflt) *majflt = mj;
    return 0;
}

/* ------------------------------------------- /proc/<pid>/task/<tid>/... */

int stall__parse_task_state(const char *buf, size_t len, char *state) {
    if (!buf || !state) return -1;
    sc_t s = sc_make(buf, len);
    uint64_t tid;
    if (sc_u64(&s, &tid) < 0 || !sc_lit(&s, " (")) return -1;
    /* the state follows the LAST ')': comm may hold spaces and ')' */
    const char *close = NULL;
    for (const char *q = s.end; q > s.p; q--)
        if (q[-1] == ')') {
            close = q - 1;
            break;
        }
    if (!close) return -1;
    s.p = close + 1;
    if (!sc_lit(&s, " ") || s.p >= s.end || is_space(*s.p) || !(*s.p >= 'A' && *s.p <= 'z')) return -1;
    if (s.p + 1 < s.end && !is_space(s.p[1])) return -1;
    *state = *s.p;
    return 0;
}

/* Does [p, p+n) name sym, ignoring a compiler suffix (".constprop.0",
 * ".isra.0", ".part.0", ".cold")? */
static int sym_is(const char *p, size_t n, const char *sym) {
    size_t k = strlen(sym);
    return n >= k && memcmp(p, sym, k) == 0 && (n == k || p[k] == '.');
}

int stall__classify_wchan(const char *buf, size_t len) {
    if (!buf) return STALL__WCHAN_OTHER;
    while (len > 0 && is_space(buf[len - 1])) len--;
    while (len > 0 && is_space(*buf)) buf++, len--;
    /* blocked on an inet socket: the waits of tcp receive, accept, send
     * (socket buffer full) and connect. Datagram receives
     * (__skb_wait_for_more_packets) are left out: unix datagram sockets,
     * which PyTorch's worker machinery uses, wait there as UDP does. */
    static const char *const net[] = {"sk_wait_data",         "inet_csk_accept",
                                      "tcp_recvmsg",          "sk_stream_wait_memory",
                                      "sk_wait_event",        "inet_wait_for_connect",
                                      "tcp_recvmsg_locked"};
    static const char *const sleep[] = {"hrtimer_nanosleep", "do_nanosleep", "clock_nanosleep",
                                        "common_nsleep"};
    for (size_t i = 0; i < sizeof net / sizeof net[0]; i++)
        if (sym_is(buf, len, net[i])) return STALL__WCHAN_NET;
    /* sk_wait_data inlined into wait_woken on recent kernels; ttys, inotify
     * and netlink wait there too */
    if (sym_is(buf, len, "wait_woken")) return STALL__WCHAN_NET_MAYBE;
    for (size_t i = 0; i < sizeof sleep / sizeof sleep[0]; i++)
        if (sym_is(buf, len, sleep[i])) return STALL__WCHAN_SLEEP;
    return STALL__WCHAN_OTHER; /* "0", unix_stream_read_generic, anon_pipe_read, futex... */
}

int stall__parse_task_syscall(const char *buf, size_t len, long *nr, uint64_t *arg0) {
    if (!buf) return -1;
    sc_t s = sc_make(buf, len);
    uint64_t n, a = 0;
    /* "running", or "-1 <sp> <pc>" when blocked outside a system call */
    if (sc_u64(&s, &n) < 0 || n > 100000 || !sc_lit(&s, " 0x")) return -1;
    const char *p = s.p;
    int digits = 0;
    for (; p < s.end && digits < 16; p++, digits++) {
        char ch = *p;
        unsigned d;
        if (ch >= '0' && ch <= '9')
            d = (unsigned)(ch - '0');
        else if (ch >= 'a' && ch <= 'f')
            d = (unsigned)(ch - 'a' + 10);
        else
            break;
        a = a << 4 | d;
    }
    if (!digits || (p < s.end && !is_space(*p))) return -1;
    if (nr) *nr = (long)n;
    if (arg0) *arg0 = a;
    return 0;
}

/* --------------------------------------------------------- /proc/<pid>/io */

int stall__parse_pid_io(const char *buf, size_t len, stall_pid_io_t *out) {
    if (!buf || !out) return -1;
    memset(out, 0, sizeof *out);
    sc_t s = sc_make(buf, len);
    int have = 0;
    while (s.p < s.end) {
        const char *key;
        size_t klen;
        uint64_t v;
        if (sc_key_colon(&s, &key, &klen) == 0 && sc_u64(&s, &v) == 0) {
            if (key_is(key, klen, "rchar"))
                out->rchar = v;
            else if (key_is(key, klen, "wchar"))
                out->wchar = v;
            else if (key_is(key, klen, "read_bytes")) {
                out->read_bytes = v;
                have |= 1;
            } else if (key_is(key, klen, "write_bytes")) {
                out->write_bytes = v;
                have |= 2;
            }
        }
        sc_next_line(&s);
    }
    return have == 3 ? 0 : -1;
}

/* ------------------------------------------------------- /proc/<pid>/status */

int stall__parse_pid_status(const char *buf, size_t len, uint64_t *vol, uint64_t *invol) {
    if (!buf) return -1;
    sc_t s = sc_make(buf, len);
    int have = 0;
    uint64_t a = 0, b = 0;
    while (s.p < s.end) {
        const char *key;
        size_t klen;
        uint64_t v;
        if (sc_key_colon(&s, &key, &klen) == 0) {
            if (key_is(key, klen, "voluntary_ctxt_switches") && sc_u64(&s, &v) == 0) {
                a = v;
                have |= 1;
            } else if (key_is(key, klen, "nonvoluntary_ctxt_switches") && sc_u64(&s, &v) == 0) {
                b = v;
                have |= 2;
            }
        }
        sc_next_line(&s);
    }
    if (have != 3) return -1;
    if (vol) *vol = a;
    if (invol) *invol = b;
    return 0;
}

int stall__parse_cpulist(const char *buf, size_t len, uint32_t *count) {
    if (!buf || !count) return -1;
    sc_t s = sc_make(buf, len);
    uint32_t n = 0;
    sc_blanks(&s);
    while (!sc_at_eol(&s)) {
        uint64_t a, b;
        if (sc_u64(&s, &a) < 0 || a >= STALL__LX_MAX_CPUS) return -1;
        b = a;
        if (sc_lit(&s, "-") && (sc_u64(&s, &b) < 0 || b < a || b >= STALL__LX_MAX_CPUS)) return -1;
        n += (uint32_t)(b - a + 1);
        if (n > STALL__LX_MAX_CPUS) return -1;
        if (sc_lit(&s, ",")) {
            if (sc_at_eol(&s)) return -1;
            continue;
        }
        sc_spaces(&s);
        if (s.p < s.end) return -1;
    }
    *count = n;
    return 0;
}

int stall__parse_cpus_allowed(const char *buf, size_t len, uint32_t *count) {
    if (!buf || !count) return -1;
    sc_t s = sc_make(buf, len);
    while (s.p < s.end) {
        const char *key;
        size_t klen;
        if (sc_key_colon(&s, &key, &klen) == 0 && key_is(key, klen, "Cpus_allowed_list")) {
            const char *start = s.p;
            while (s.p < s.end && *s.p != '\n') s.p++;
            return stall__parse_cpulist(start, (size_t)(s.p - start), count);
        }
        sc_next_line(&s);
    }
    return -1;
}

/* ------------------------------------------------------------ cpuinfo */

int stall__parse_cpuinfo_mhz(const char *buf, size_t len, double *mhz) {
    if (!buf || !mhz) return -1;
    sc_t s = sc_make(buf, len);
    double sum = 0;
    uint32_t n = 0;
    while (s.p < s.end) {
        if (sc_lit(&s, "cpu MHz")) {
            double v;
            sc_blanks(&s);
            if (sc_lit(&s, ":")) {
                sc_blanks(&s);
                if (sc_double(&s, &v) == 0 && v < 1e7) {
                    sum += v;
                    n++;
                }
            }
        }
        sc_next_line(&s);
    }
    if (!n) return -1;
    *mhz = sum / n;
    return 0;
}

/* ---------------------------------------------------- schedstat, smaps */

int stall__parse_schedstat(const char *buf, size_t len, uint64_t *run_ns, uint64_t *wait_ns) {
    if (!buf) return -1;
    sc_t s = sc_make(buf, len);
    uint64_t a, b;
    sc_blanks(&s);
    if (sc_u64(&s, &a) < 0 || !(s.p < s.end && is_blank(*s.p))) return -1;
    sc_blanks(&s);
    if (sc_u64(&s, &b) < 0 || (s.p < s.end && !is_space(*s.p))) return -1;
    if (run_ns) *run_ns = a;
    if (wait_ns) *wait_ns = b;
    return 0;
}

int stall__parse_smaps_rollup(const char *buf, size_t len, uint64_t *pss_bytes) {
    if (!buf) return -1;
    sc_t s = sc_make(buf, len);
    while (s.p < s.end) {
        const char *key;
        size_t klen;
        uint64_t v;
        if (sc_key_colon(&s, &key, &klen) == 0 && key_is(key, klen, "Pss") && sc_kb(&s, &v) == 0) {
            if (pss_bytes) *pss_bytes = v;
            return 0;
        }
        sc_next_line(&s);
    }
    return -1;
}

/* ------------------------------------------------------------ pid lists */

int stall__parse_pid_list(const char *buf, size_t len, uint32_t *out, size_t cap) {
    if (!buf || (!out && cap)) return -1;
    sc_t s = sc_make(buf, len);
    size_t n = 0;
    for (;;) {
        sc_spaces(&s);
        if (s.p >= s.end) break;
        uint32_t v;
        if (sc_u32(&s, &v) < 0 || v == 0) return -1;
        if (s.p < s.end && !is_space(*s.p)) return -1;
        if (n < cap) out[n++] = v;
    }
    return (int)n;
}

/* --------------------------------------------------------------- cgroups */

/* Does the comma-separated list [p, end) name controller c? */
static int has_controller(const char *p, const char *end, const char *c) {
    size_t n = strlen(c);
    while (p < end) {
        const char *q = p;
        while (q < end && *q != ',') q++;
        if ((size_t)(q - p) == n && memcmp(p, c, n) == 0) return 1;
        p = q < end ? q + 1 : q;
    }
    return 0;
}

int stall__parse_cgroup(const char *buf, size_t len, stall_cgroup_path_t *out) {
    if (!buf || !out) return -1;
    memset(out, 0, sizeof *out);
    sc_t s = sc_make(buf, len);
    int lines = 0, v2 = 0, v1 = 0;
    while (s.p < s.end) {
        uint64_t id;
        const char *ctl, *ctl_end, *path, *eol;
        if (sc_u64(&s, &id) == 0 && sc_lit(&s, ":")) {
            ctl = s.p;
            while (s.p < s.end && *s.p != ':' && *s.p != '\n') s.p++;
            ctl_end = s.p;
            if (sc_lit(&s, ":")) {
                path = s.p;
                while (s.p < s.end && *s.p != '\n') s.p++;
                eol = s.p;
                size_t plen = (size_t)(eol - path);
                if (plen > 0 && path[0] == '/' && plen < sizeof out->v2 && !memchr(path, '\0', plen)) {
                    lines++;
                    if (id == 0 && ctl == ctl_end) {
                        copy_name(out->v2, sizeof out->v2, path, plen);
                        v2 = 1;
                    } else {
                        if (has_controller(ctl, ctl_end, "cpu")) {
                            copy_name(out->cpu, sizeof out->cpu, path, plen);
                            v1 = 1;
                        }
                        if (has_controller(ctl, ctl_end, "memory")) {
                            copy_name(out->memory, sizeof out->memory, path, plen);
                            v1 = 1;
                        }
                    }
                }
            }
        }
        sc_next_line(&s);
    }
    if (!lines) return -1;
    out->version = v2 && !v1 ? 2 : 1;
    return 0;
}

int stall__parse_cpu_max(const char *buf, size_t len, int64_t *quota_us, uint64_t *period_us) {
    if (!buf) return -1;
    sc_t s = sc_make(buf, len);
    int64_t q;
    uint64_t v, period;
    sc_blanks(&s);
    if (sc_lit(&s, "max"))
        q = -1;
    else if (sc_u64(&s, &v) == 0 && v <= INT64_MAX)
        q = (int64_t)v;
    else
        return -1;
    if (!(s.p < s.end && is_blank(*s.p))) return -1;
    sc_blanks(&s);
    if (sc_u64(&s, &period) < 0 || period == 0) return -1;
    sc_spaces(&s);
    if (s.p < s.end) return -1;
    if (quota_us) *quota_us = q;
    if (period_us) *period_us = period;
    return 0;
}

int stall__parse_u64_or_max(const char *buf, size_t len, uint64_t *out) {
    if (!buf) return -1;
    sc_t s = sc_make(buf, len);
    uint64_t v;
    sc_spaces(&s);
    if (sc_lit(&s, "max") || sc_lit(&s, "-1"))
        v = UINT64_MAX;
    else if (sc_u64(&s, &v) < 0)
        return -1;
    sc_spaces(&s);
    if (s.p < s.end) return -1;
    if (out) *out = v;
    return 0;
}

int stall__parse_keyed(const char *buf, size_t len, const char *key, uint64_t *out) {
    if (!buf || !key || !*key) return -1;
    sc_t s = sc_make(buf, len);
    while (s.p < s.end) {
        uint64_t v;
        if (sc_lit(&s, key) && s.p < s.end && is_blank(*s.p)) {
            sc_blanks(&s);
            if (sc_u64(&s, &v) == 0 && (sc_at_eol(&s) || is_space(*s.p))) {
                if (out) *out = v;
                return 0;
            }
        }
        sc_next_line(&s);
    }
    return -1;
}
