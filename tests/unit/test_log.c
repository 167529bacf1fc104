/*
 * test_log.c - structured logging (stall_log): with no sink nothing is
 * called; with a sink each event is one line ending in '\n' holding one JSON
 * object with ts, level, event and the typed fields; strings are escaped;
 * NaN and infinities become null; events below the minimum level are
 * filtered; bad arguments fail with a message; an oversized event still
 * gives one valid JSON line, marked "truncated". Lines are checked with a
 * small strict JSON parser below.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "test_util.h"

/* ------------------------------------------------ a small JSON checker */

enum { J_STR = 1, J_NUM, J_TRUE, J_FALSE, J_NULL, J_OBJ, J_ARR };

#define JMAX 40 /* members kept per object */

typedef struct jmember_t {
    char key[128];
    int type;
    char str[4200]; /* decoded string (J_STR), or the raw number text (J_NUM) */
} jmember_t;

typedef struct jobj_t {
    int n;
    jmember_t m[JMAX];
} jobj_t;

typedef struct jp_t {
    const char *p, *end;
} jp_t;

static void ws(jp_t *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Parses a JSON string; decodes into out (may be NULL). UTF-8 out for \u. */
static int jstring(jp_t *j, char *out, size_t cap) {
    size_t o = 0;
    if (j->p >= j->end || *j->p != '"') return -1;
    j->p++;
    while (j->p < j->end) {
        unsigned char c = (unsigned char)*j->p++;
        if (c == '"') {
            if (out) out[o < cap ? o : cap - 1] = '\0';
            return 0;
        }
        if (c < 0x20) return -1; /* raw control character */
        unsigned cp = c;
        int is_cp = 0;
        if (c == '\\') {
            if (j->p >= j->end) return -1;
            char e = *j->p++;
            switch (e) {
            case '"': cp = '"'; break;
            case '\\': cp = '\\'; break;
            case '/': cp = '/'; break;
            case 'b': cp = '\b'; break;
            case 'f': cp = '\f'; break;
            case 'n': cp = '\n'; break;
            case 'r': cp = '\r'; break;
            case 't': cp = '\t'; break;
            case 'u': {
                if (j->end - j->p < 4) return -1;
                cp = 0;
                for (int k = 0; k < 4; k++) {
                    int h = hexval(j->p[k]);
                    if (h < 0) return -1;
                    cp = cp * 16 + (unsigned)h;
                }
                j->p += 4;
                is_cp = 1;
                break;
            }
            default: return -1;
            }
        }
        if (!out) continue;
        char tmp[4];
        size_t k = 0;
        if (is_cp && cp >= 0x80) { /* BMP only: enough for these tests */
            if (cp < 0x800) {
                tmp[k++] = (char)(0xc0 | (cp >> 6));
            } else {
                tmp[k++] = (char)(0xe0 | (cp >> 12));
                tmp[k++] = (char)(0x80 | ((cp >> 6) & 0x3f));
            }
            tmp[k++] = (char)(0x80 | (cp & 0x3f));
        } else {
            tmp[k++] = (char)cp;
        }
        for (size_t q = 0; q < k; q++)
            if (o + 1 < cap) out[o++] = tmp[q];
    }
    return -1;
}

static int jnumber(jp_t *j, char *out, size_t cap) {
    const char *s = j->p;
    if (j->p < j->end && *j->p == '-') j->p++;
    if (j->p >= j->end) return -1;
    if (*j->p == '0') {
        j->p++;
    } else if (*j->p >= '1' && *j->p <= '9') {
        while (j->p < j->end && isdigit((unsigned char)*j->p)) j->p++;
    } else {
        return -1;
    }
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (j->p >= j->end || !isdigit((unsigned char)*j->p)) return -1;
        while (j->p < j->end && isdigit((unsigned char)*j->p)) j->p++;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-')) j->p++;
        if (j->p >= j->end || !isdigit((unsigned char)*j->p)) return -1;
        while (j->p < j->end && isdigit((unsigned char)*j->p)) j->p++;
    }
    if (out) {
        size_t n = (size_t)(j->p - s);
        if (n >= cap) n = cap - 1;
        memcpy(out, s, n);
        out[n] = '\0';
    }
    return 0;
}

static int jlit(jp_t *j, const char *lit) {
    size_t n = strlen(lit);
    if ((size_t)(j->end - j->p) < n || strncmp(j->p, lit, n)) return -1;
    j->p += n;
    return 0;
}

static int jvalue(jp_t *j, int *type, char *out, size_t cap, int depth);

static int jcontainer(jp_t *j, int depth) {
    char open = *j->p++, close = open == '{' ? '}' : ']';
    ws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        return 0;
    }
    for (;;) {
        int t;
        ws(j);
        if (open == '{') {
            if (jstring(j, NULL, 0) < 0) return -1;
            ws(j);
            if (j->p >= j->end || *j->p++ != ':') return -1;
        }
        if (jvalue(j, &t, NULL, 0, depth + 1) < 0) return -1;
        ws(j);
        if (j->p >= j->end) return -1;
        char c = *j->p++;
        if (c == close) return 0;
        if (c != ',') return -1;
    }
}

static int jvalue(jp_t *j, int *type, char *out, size_t cap, int depth) {
    if (depth > 32) return -1;
    ws(j);
    if (j->p >= j->end) return -1;
    switch (*j->p) {
    case '"': *type = J_STR; return jstring(j, out, cap);
    case 't': *type = J_TRUE; return jlit(j, "true");
    case 'f': *type = J_FALSE; return jlit(j, "false");
    case 'n': *type = J_NULL; return jlit(j, "null");
    case '{': *type = J_OBJ; return jcontainer(j, depth);
    case '[': *type = J_ARR; return jcontainer(j, depth);
    default: *type = J_NUM; return jnumber(j, out, cap);
    }
}

/* Parses one top-level object exactly filling [s, s+len); keeps its members. */
static int parse_object(const char *s, size_t len, jobj_t *o) {
    jp_t j = {s, s + len};
    memset(o, 0, sizeof *o);
    ws(&j);
    if (j.p >= j.end || *j.p++ != '{') return -1;
    ws(&j);
    if (j.p < j.end && *j.p == '}') {
        j.p++;
    } else {
        for (;;) {
            if (o->n >= JMAX) return -1;
            jmember_t *m = &o->m[o->n++];
            ws(&j);
            if (jstring(&j, m->key, sizeof m->key) < 0) return -1;
            ws(&j);
            if (j.p >= j.end || *j.p++ != ':') return -1;
            if (jvalue(&j, &m->type, m->str, sizeof m->str, 0) < 0) return -1;
            ws(&j);
            if (j.p >= j.end) return -1;
            char c = *j.p++;
            if (c == '}') break;
            if (c != ',') return -1;
        }
    }
    ws(&j);
    return j.p == j.end ? 0 : -1;
}

static const jmember_t *get(const jobj_t *o, const char *key) {
    for (int i = 0; i < o->n; i++)
        if (!strcmp(o->m[i].key, key)) return &o->m[i];
    return NULL;
}

/* ------------------------------------------------------ a capture sink */

typedef struct capture_t {
    int calls;
    int level[16];
    size_t len[16];
    char line[16][8192];
    int long_lines; /* lines that did not fit line[] */
} capture_t;

static capture_t g_cap;

static void capture_sink(void *ctx, int level, const char *line, size_t len) {
    capture_t *c = ctx;
    int i = c->calls++;
    if (i >= 16) return;
    c->level[i] = level;
    c->len[i] = len;
    if (len >= sizeof c->line[i]) {
        c->long_lines++;
        len = sizeof c->line[i] - 1;
    }
    memcpy(c->line[i], line, len);
    c->line[i][len] = '\0';
}

static int setup(void **state) {
    (void)state;
    memset(&g_cap, 0, sizeof g_cap);
    stall_log_set_sink(capture_sink, &g_cap, STALL_LOG_DEBUG);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    stall_log_set_sink(NULL, NULL, STALL_LOG_INFO);
    return 0;
}

/* Checks line i is one JSON object line and parses it into *o. */
static void line_object(int i, jobj_t *o) {
    assert_true(i < g_cap.calls);
    const char *l = g_cap.line[i];
    size_t len = g_cap.len[i];
    assert_int_equal(g_cap.long_lines, 0);
    assert_int_equal(strlen(l), len); /* no NUL inside */
    assert_true(len >= 2);
    assert_int_equal(l[len - 1], '\n');
    assert_null(memchr(l, '\n', len - 1)); /* exactly one line */
    if (parse_object(l, len - 1, o) < 0)
        fail_msg("not one JSON object (%zu bytes): %.100s ... %s", len, l, len > 100 ? l + len - 60 : "");
}

static void check_header(const jobj_t *o, const char *level, const char *event) {
    const jmember_t *ts = get(o, "ts"), *lv = get(o, "level"), *ev = get(o, "event");
    assert_non_null(ts);
    assert_non_null(lv);
    assert_non_null(ev);
    assert_int_equal(ts->type, J_STR);
    /* 2024-01-02T03:04:05.123456Z */
    assert_int_equal(strlen(ts->str), 27);
    int y, mo, d, h, mi, s, us;
    char z;
    assert_int_equal(sscanf(ts->str, "%4d-%2d-%2dT%2d:%2d:%2d.%6d%c", &y, &mo, &d, &h, &mi, &s, &us, &z), 8);
    assert_int_equal(z, 'Z');
    assert_true(y >= 2020 && mo >= 1 && mo <= 12 && d >= 1 && d <= 31 && h < 24 && mi < 60 && s <= 60);
    assert_int_equal(lv->type, J_STR);
    assert_string_equal(lv->str, level);
    assert_int_equal(ev->type, J_STR);
    assert_string_equal(ev->str, event);
    /* ts, level, event come first, in that order */
    assert_string_equal(o->m[0].key, "ts");
    assert_string_equal(o->m[1].key, "level");
    assert_string_equal(o->m[2].key, "event");
}

/* ---------------------------------------------------------------- tests */

static void test_no_sink_nothing_called(void **state) {
    (void)state;
    stall_log_set_sink(NULL, NULL, STALL_LOG_DEBUG);
    stall_field_t f = {.key = "k", .type = STALL_FIELD_INT, .v.i = 1};
    assert_int_equal(stall_log(STALL_LOG_ERROR, "nobody-listens", &f, 1), 0);
    assert_int_equal(stall_log(STALL_LOG_INFO, "nobody-listens", NULL, 0), 0);
    assert_int_equal(g_cap.calls, 0);
    /* set and unset again: still nothing */
    stall_log_set_sink(capture_sink, &g_cap, STALL_LOG_DEBUG);
    stall_log_set_sink(NULL, &g_cap, STALL_LOG_DEBUG);
    assert_int_equal(stall_log(STALL_LOG_ERROR, "nobody-listens", NULL, 0), 0);
    assert_int_equal(g_cap.calls, 0);
}

static void test_one_line_per_event(void **state) {
    (void)state;
    assert_int_equal(stall_log(STALL_LOG_INFO, "first", NULL, 0), 0);
    assert_int_equal(stall_log(STALL_LOG_WARNING, "second", NULL, 0), 0);
    assert_int_equal(stall_log(STALL_LOG_ERROR, "third", NULL, 0), 0);
    assert_int_equal(stall_log(STALL_LOG_DEBUG, "fourth", NULL, 0), 0);
    assert_int_equal(g_cap.calls, 4);
    const char *lv[] = {"info", "warning", "error", "debug"};
    const char *ev[] = {"first", "second", "third", "fourth"};
    const int levels[] = {STALL_LOG_INFO, STALL_LOG_WARNING, STALL_LOG_ERROR, STALL_LOG_DEBUG};
    for (int i = 0; i < 4; i++) {
        jobj_t o;
        line_object(i, &o);
        check_header(&o, lv[i], ev[i]);
        assert_int_equal(o.n, 3);
        assert_int_equal(g_cap.level[i], levels[i]);
    }
}

static void test_typed_fields(void **state) {
    (void)state;
    stall_field_t f[] = {
        {.key = "path", .type = STALL_FIELD_STR, .v.s = "/data/shard-0001.tar"},
        {.key = "neg", .type = STALL_FIELD_INT, .v.i = -42},
        {.key = "min", .type = STALL_FIELD_INT, .v.i = INT64_MIN},
        {.key = "big", .type = STALL_FIELD_UINT, .v.u = UINT64_MAX},
        {.key = "zero", .type = STALL_FIELD_UINT, .v.u = 0},
        {.key = "ratio", .type = STALL_FIELD_DOUBLE, .v.d = 0.1},
        {.key = "tiny", .type = STALL_FIELD_DOUBLE, .v.d = -2.5e-300},
        {.key = "huge", .type = STALL_FIELD_DOUBLE, .v.d = 1e300},
        {.key = "whole", .type = STALL_FIELD_DOUBLE, .v.d = 3.0},
        {.key = "third", .type = STALL_FIELD_DOUBLE, .v.d = 1.0 / 3.0}, /* needs 17 digits */
        {.key = "sum", .type = STALL_FIELD_DOUBLE, .v.d = 0.1 + 0.2},
        {.key = "yes", .type = STALL_FIELD_BOOL, .v.b = 1},
        {.key = "no", .type = STALL_FIELD_BOOL, .v.b = 0},
        {.key = "truthy", .type = STALL_FIELD_BOOL, .v.b = 17},
        {.key = "nostr", .type = STALL_FIELD_STR, .v.s = NULL},
    };
    size_t nf = sizeof f / sizeof f[0];
    assert_int_equal(stall_log(STALL_LOG_INFO, "batch_loaded", f, nf), 0);
    assert_int_equal(g_cap.calls, 1);
    jobj_t o;
    line_object(0, &o);
    check_header(&o, "info", "batch_loaded");
    assert_int_equal(o.n, 3 + (int)nf);
    for (size_t i = 0; i < nf; i++) assert_string_equal(o.m[3 + i].key, f[i].key); /* in order */

    const jmember_t *m;
    assert_non_null(m = get(&o, "path"));
    assert_int_equal(m->type, J_STR);
    assert_string_equal(m->str, "/data/shard-0001.tar");
    assert_non_null(m = get(&o, "neg"));
    assert_int_equal(m->type, J_NUM);
    assert_string_equal(m->str, "-42");
    assert_string_equal(get(&o, "min")->str, "-9223372036854775808");
    assert_string_equal(get(&o, "big")->str, "18446744073709551615");
    assert_string_equal(get(&o, "zero")->str, "0");
    /* doubles read back exactly */
    const char *dk[] = {"ratio", "tiny", "huge", "whole", "third", "sum"};
    const double dv[] = {0.1, -2.5e-300, 1e300, 3.0, 1.0 / 3.0, 0.1 + 0.2};
    for (int i = 0; i < 6; i++) {
        assert_non_null(m = get(&o, dk[i]));
        assert_int_equal(m->type, J_NUM);
        if (strtod(m->str, NULL) != dv[i]) fail_msg("%s: %s does not read back as %.17g", dk[i], m->str, dv[i]);
    }
    assert_int_equal(get(&o, "yes")->type, J_TRUE);
    assert_int_equal(get(&o, "no")->type, J_FALSE);
    assert_int_equal(get(&o, "truthy")->type, J_TRUE);
    assert_int_equal(get(&o, "nostr")->type, J_NULL);
}

static void test_odd_fields(void **state) {
    (void)state;
    stall_field_t f[] = {
        {.key = NULL, .type = STALL_FIELD_INT, .v.i = 1}, /* skipped */
        {.key = "", .type = STALL_FIELD_INT, .v.i = 2},   /* skipped */
        {.key = "kept", .type = STALL_FIELD_INT, .v.i = 3},
        {.key = "weird", .type = 99, .v.i = 4}, /* unknown type: null */
    };
    assert_int_equal(stall_log(STALL_LOG_INFO, "odd", f, 4), 0);
    jobj_t o;
    line_object(0, &o);
    check_header(&o, "info", "odd");
    assert_int_equal(o.n, 5);
    assert_string_equal(get(&o, "kept")->str, "3");
    assert_int_equal(get(&o, "weird")->type, J_NULL);
}

static void test_string_escaping(void **state) {
    (void)state;
    const char *nasty = "say \"hi\" \\ back\\slash\nnew line\r\ttab \x01\x1f\x7f end \xc3\xa9 /";
    const char *nasty_key = "k\"e\\y\n";
    const char *nasty_event = "ev\"ent\\\n\x02";
    stall_field_t f[] = {
        {.key = "msg", .type = STALL_FIELD_STR, .v.s = nasty},
        {.key = nasty_key, .type = STALL_FIELD_INT, .v.i = 5},
        {.key = "empty", .type = STALL_FIELD_STR, .v.s = ""},
    };
    assert_int_equal(stall_log(STALL_LOG_WARNING, nasty_event, f, 3), 0);
    jobj_t o;
    line_object(0, &o);
    check_header(&o, "warning", nasty_event);
    const jmember_t *m = get(&o, "msg");
    assert_non_null(m);
    assert_int_equal(m->type, J_STR);
    assert_string_equal(m->str, nasty); /* decodes back to the original */
    assert_non_null(m = get(&o, nasty_key));
    assert_string_equal(m->str, "5");
    assert_non_null(m = get(&o, "empty"));
    assert_int_equal(m->type, J_STR);
    assert_string_equal(m->str, "");
    /* the raw line holds no control characters before its '\n' */
    for (size_t i = 0; i + 1 < g_cap.len[0]; i++) assert_true((unsigned char)g_cap.line[0][i] >= 0x20);
}

static void test_non_finite_is_null(void **state) {
    (void)state;
    stall_field_t f[] = {
        {.key = "nan", .type = STALL_FIELD_DOUBLE, .v.d = NAN},
        {.key = "inf", .type = STALL_FIELD_DOUBLE, .v.d = INFINITY},
        {.key = "ninf", .type = STALL_FIELD_DOUBLE, .v.d = -INFINITY},
        {.key = "ok", .type = STALL_FIELD_DOUBLE, .v.d = -0.5},
    };
    assert_int_equal(stall_log(STALL_LOG_ERROR, "numbers", f, 4), 0);
    jobj_t o;
    line_object(0, &o);
    check_header(&o, "error", "numbers");
    assert_int_equal(get(&o, "nan")->type, J_NULL);
    assert_int_equal(get(&o, "inf")->type, J_NULL);
    assert_int_equal(get(&o, "ninf")->type, J_NULL);
    assert_int_equal(get(&o, "ok")->type, J_NUM);
    assert_true(strtod(get(&o, "ok")->str, NULL) == -0.5);
}

static void test_min_level_filters(void **state) {
    (void)state;
    stall_log_set_sink(capture_sink, &g_cap, STALL_LOG_WARNING);
    assert_int_equal(stall_log(STALL_LOG_DEBUG, "d", NULL, 0), 0);
    assert_int_equal(stall_log(STALL_LOG_INFO, "i", NULL, 0), 0);
    assert_int_equal(stall_log(STALL_LOG_WARNING - 1, "almost", NULL, 0), 0);
    assert_int_equal(g_cap.calls, 0);
    assert_int_equal(stall_log(STALL_LOG_WARNING, "w", NULL, 0), 0);
    assert_int_equal(stall_log(STALL_LOG_ERROR, "e", NULL, 0), 0);
    assert_int_equal(g_cap.calls, 2);
    jobj_t o;
    line_object(0, &o);
    check_header(&o, "warning", "w");
    line_object(1, &o);
    check_header(&o, "error", "e");
    /* raise it further */
    stall_log_set_sink(capture_sink, &g_cap, STALL_LOG_ERROR);
    assert_int_equal(stall_log(STALL_LOG_WARNING, "w2", NULL, 0), 0);
    assert_int_equal(g_cap.calls, 2);
}

static void test_level_names(void **state) {
    (void)state;
    assert_string_equal(stall_log_level_name(STALL_LOG_DEBUG), "debug");
    assert_string_equal(stall_log_level_name(STALL_LOG_INFO), "info");
    assert_string_equal(stall_log_level_name(STALL_LOG_WARNING), "warning");
    assert_string_equal(stall_log_level_name(STALL_LOG_ERROR), "error");
    assert_string_equal(stall_log_level_name(0), "debug");
    assert_string_equal(stall_log_level_name(25), "info");
    assert_string_equal(stall_log_level_name(1000), "error");
}

static void test_bad_args(void **state) {
    (void)state;
    assert_int_equal(stall_log(STALL_LOG_ERROR, NULL, NULL, 0), -1);
    assert_non_null(strstr(stall_last_error(), "event"));
    assert_int_equal(stall_log(STALL_LOG_ERROR, "", NULL, 0), -1);
    assert_non_null(strstr(stall_last_error(), "event"));
    assert_int_equal(stall_log(STALL_LOG_ERROR, "ev", NULL, 2), -1);
    assert_non_null(strstr(stall_last_error(), "fields"));
    assert_int_equal(g_cap.calls, 0);
    /* also with no sink: the arguments are still checked */
    stall_log_set_sink(NULL, NULL, STALL_LOG_DEBUG);
    assert_int_equal(stall_log(STALL_LOG_ERROR, NULL, NULL, 0), -1);
}

static void check_truncated_line(const char *event) {
    assert_int_equal(g_cap.calls, 1);
    assert_true(g_cap.len[0] <= 4096);
    jobj_t o;
    line_object(0, &o);
    const jmember_t *t = get(&o, "truncated");
    if (!t) fail_msg("oversized event not marked truncated: %.200s...", g_cap.line[0]);
    assert_int_equal(t->type, J_TRUE);
    const jmember_t *ev = get(&o, "event");
    assert_non_null(ev);
    assert_int_equal(ev->type, J_STR);
    /* the event name is kept, or at least a prefix of it */
    assert_true(strlen(ev->str) > 0);
    assert_int_equal(strncmp(ev->str, event, strlen(ev->str)), 0);
    assert_non_null(get(&o, "ts"));
    assert_non_null(get(&o, "level"));
}

static void test_oversized_string_field(void **state) {
    (void)state;
    static char big[10000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    stall_field_t f[] = {
        {.key = "before", .type = STALL_FIELD_INT, .v.i = 1},
        {.key = "big", .type = STALL_FIELD_STR, .v.s = big},
    };
    assert_int_equal(stall_log(STALL_LOG_INFO, "too-big", f, 2), 0);
    check_truncated_line("too-big");
}

static void test_oversized_escapes(void **state) {
    (void)state;
    /* cut in the middle of escape sequences */
    static char big[3000];
    for (size_t i = 0; i + 1 < sizeof big; i++) big[i] = i % 3 ? '"' : '\x01';
    big[sizeof big - 1] = '\0';
    stall_field_t f = {.key = "q", .type = STALL_FIELD_STR, .v.s = big};
    assert_int_equal(stall_log(STALL_LOG_INFO, "escapes", &f, 1), 0);
    check_truncated_line("escapes");
}

static void test_oversized_many_fields(void **state) {
    (void)state;
    static stall_field_t f[600];
    static char keys[600][16];
    for (int i = 0; i < 600; i++) {
        snprintf(keys[i], sizeof keys[i], "field_%d", i);
        f[i] = (stall_field_t){.key = keys[i], .type = STALL_FIELD_UINT, .v.u = UINT64_MAX - (uint64_t)i};
    }
    assert_int_equal(stall_log(STALL_LOG_INFO, "many", f, 600), 0);
    check_truncated_line("many");
}

static void test_oversized_event_name(void **state) {
    (void)state;
    static char ev[6000];
    memset(ev, 'e', sizeof ev - 1);
    ev[sizeof ev - 1] = '\0';
    assert_int_equal(stall_log(STALL_LOG_INFO, ev, NULL, 0), 0);
    check_truncated_line(ev);
}

static void test_fd_sink(void **state) {
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    stall_log_set_sink(stall_log_sink_fd, (void *)(intptr_t)p[1], STALL_LOG_INFO);
    stall_field_t f = {.key = "n", .type = STALL_FIELD_INT, .v.i = 7};
    assert_int_equal(stall_log(STALL_LOG_INFO, "to-fd", &f, 1), 0);
    assert_int_equal(stall_log(STALL_LOG_INFO, "again", NULL, 0), 0);
    close(p[1]);
    char buf[1024];
    size_t len = 0;
    ssize_t n;
    while ((n = read(p[0], buf + len, sizeof buf - 1 - len)) > 0) len += (size_t)n;
    close(p[0]);
    buf[len] = '\0';
    char *nl = strchr(buf, '\n');
    assert_non_null(nl);
    assert_non_null(strchr(nl + 1, '\n'));
    assert_int_equal(buf[len - 1], '\n');
    jobj_t o;
    assert_int_equal(parse_object(buf, (size_t)(nl - buf), &o), 0);
    assert_string_equal(get(&o, "event")->str, "to-fd");
    assert_string_equal(get(&o, "n")->str, "7");
    assert_int_equal(parse_object(nl + 1, strlen(nl + 1) - 1, &o), 0);
    assert_string_equal(get(&o, "event")->str, "again");
}

/* The checker itself must reject what is not JSON. */
static void test_checker_rejects(void **state) {
    (void)state;
    jobj_t o;
    const char *bad[] = {"{", "{\"a\":}", "{\"a\":1,}", "{\"a\":\"x\ny\"}", "{\"a\":01}",
                         "{\"a\":\"\\q\"}", "{\"a\":nul}", "{\"a\":1} x", "{\"a\":\"unterminated}",
                         "[1]", "{\"a\":1.}", "{a:1}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (parse_object(bad[i], strlen(bad[i]), &o) == 0) fail_msg("checker accepted %s", bad[i]);
    const char *good = "{\"a\":[1,{\"b\":null}],\"c\":-1.5e+3,\"d\":\"\\u00e9\\\"\"}";
    assert_int_equal(parse_object(good, strlen(good), &o), 0);
    assert_string_equal(get(&o, "d")->str, "\xc3\xa9\"");
}

int main(void) {
    tu_clean_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_checker_rejects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_sink_nothing_called, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_line_per_event, setup, teardown),
        cmocka_unit_test_setup_teardown(test_typed_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_odd_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_string_escaping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_non_finite_is_null, setup, teardown),
        cmocka_unit_test_setup_teardown(test_min_level_filters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_level_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_args, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_string_field, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_escapes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_many_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_event_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fd_sink, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
