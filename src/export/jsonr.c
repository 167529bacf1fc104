/*
 * jsonr.c - a small JSON reader (RFC 8259) for the files stall itself
 * writes and reads back: report.json for `stall report` and the diagnosis
 * the CLI prints. Parses the whole text into a tree of values; objects keep
 * their keys in order. Depth is limited, every error names its byte offset.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonr.h"

#define MAX_DEPTH 64

typedef struct parser_t {
    const char *s;
    size_t n, i;
    char *err;
    size_t errcap;
} parser_t;

static int fail(parser_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(parser_t *p, const char *fmt, ...) {
    if (p->err && p->errcap && !p->err[0]) {
        char msg[160];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        snprintf(p->err, p->errcap, "%s at byte %zu", msg, p->i);
    }
    return -1;
}

static void skip_ws(parser_t *p) {
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r'))
        p->i++;
}

static int grow(void **arr, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap * 2 : 8;
    while (c < need) c *= 2;
    void *a = realloc(*arr, c * elem);
    if (!a) return -1;
    *arr = a;
    *cap = c;
    return 0;
}

static int hex4(parser_t *p, unsigned *out) {
    if (p->i + 4 > p->n) return fail(p, "truncated \\u escape");
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        char c = p->s[p->i++];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return fail(p, "bad \\u escape");
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* A string at p->i (after its opening quote) into a malloc'd buffer. */
static int string(parser_t *p, char **out, size_t *len) {
    size_t cap = 16, n = 0;
    char *b = malloc(cap);
    if (!b) return fail(p, "out of memory");
    for (;;) {
        if (p->i >= p->n) {
            free(b);
            return fail(p, "unterminated string");
        }
        if (grow((void **)&b, &cap, n + 5, 1) < 0) {
            free(b);
            return fail(p, "out of memory");
        }
        unsigned char c = (unsigned char)p->s[p->i++];
        if (c == '"') break;
        if (c < 0x20) {
            free(b);
            return fail(p, "control character in a string");
        }
        if (c != '\\') {
            b[n++] = (char)c;
            continue;
        }
        if (p->i >= p->n) {
            free(b);
            return fail(p, "unterminated escape");
        }
        char e = p->s[p->i++];
        switch (e) {
        case '"': b[n++] = '"'; break;
        case '\\': b[n++] = '\\'; break;
        case '/': b[n++] = '/'; break;
        case 'b': b[n++] = '\b'; break;
        case 'f': b[n++] = '\f'; break;
        case 'n': b[n++] = '\n'; break;
        case 'r': b[n++] = '\r'; break;
        case 't': b[n++] = '\t'; break;
        case 'u': {
            unsigned cp;
            if (hex4(p, &cp) < 0) goto bad;
            if (cp >= 0xD800 && cp <= 0xDBFF) { /* a surrogate pair */
                unsigned lo;
                if (p->i + 2 > p->n || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u') {
                    fail(p, "lone high surrogate");
                    goto bad;
                }
                p->i += 2;
                if (hex4(p, &lo) < 0) goto bad;
                if (lo < 0xDC00 || lo > 0xDFFF) {
                    fail(p, "bad low surrogate");
                    goto bad;
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                fail(p, "lone low surrogate");
                goto bad;
            }
            n += put_utf8(b + n, cp);
            break;
        }
        default: fail(p, "bad escape \\%c", e); goto bad;
        }
    }
    b[n] = 0;
    *out = b;
    *len = n;
    return 0;
bad:
    free(b);
    return -1;
}

static int value(parser_t *p, stall_jv_t *v, int depth);

static int number(parser_t *p, stall_jv_t *v) {
    size_t s = p->i;
    if (p->i < p->n && p->s[p->i] == '-') p->i++;
    if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') return fail(p, "bad number");
    if (p->s[p->i] == '0') p->i++;
    else
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    if (p->i < p->n && p->s[p->i] == '.') {
        p->i++;
        if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') return fail(p, "bad fraction");
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    }
    if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
        p->i++;
        if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-')) p->i++;
        if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') return fail(p, "bad exponent");
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    }
    char buf[64];
    size_t len = p->i - s;
    if (len >= sizeof buf) return fail(p, "number too long");
    memcpy(buf, p->s + s, len);
    buf[len] = 0;
    v->type = STALL_JV_NUM;
    v->num = strtod(buf, NULL);
    return 0;
}

static int literal(parser_t *p, const char *word) {
    size_t k = strlen(word);
    if (p->i + k > p->n || memcmp(p->s + p->i, word, k)) return fail(p, "unexpected character");
    p->i += k;
    return 0;
}

static int value(parser_t *p, stall_jv_t *v, int depth) {
    memset(v, 0, sizeof *v);
    if (depth > MAX_DEPTH) return fail(p, "nested deeper than %d", MAX_DEPTH);
    skip_ws(p);
    if (p->i >= p->n) return fail(p, "unexpected end");
    char c = p->s[p->i];
    if (c == '"') {
        p->i++;
        v->type = STALL_JV_STR;
        return string(p, &v->str, &v->len);
    }
    if (c == '{' || c == '[') {
        int obj = c == '{';
        size_t cap = 0, kcap = 0;
        v->type = obj ? STALL_JV_OBJ : STALL_JV_ARR;
        p->i++;
        skip_ws(p);
        if (p->i < p->n && p->s[p->i] == (obj ? '}' : ']')) {
            p->i++;
            return 0;
        }
        for (;;) {
            if (grow((void **)&v->items, &cap, v->len + 1, sizeof *v->items) < 0) return fail(p, "out of memory");
            if (obj) {
                if (grow((void **)&v->keys, &kcap, v->len + 1, sizeof *v->keys) < 0) return fail(p, "out of memory");
                v->keys[v->len] = NULL;
                skip_ws(p);
                if (p->i >= p->n || p->s[p->i] != '"') return fail(p, "expected a key");
                p->i++;
                size_t klen;
                if (string(p, &v->keys[v->len], &klen) < 0) return -1;
                skip_ws(p);
                if (p->i >= p->n || p->s[p->i] != ':') {
                    free(v->keys[v->len]);
                    return fail(p, "expected ':'");
                }
                p->i++;
            }
            int rc = value(p, &v->items[v->len], depth + 1);
            v->len++; /* counted even when it failed: stall__jv_free releases what it holds */
            if (rc < 0) return -1;
            skip_ws(p);
            if (p->i < p->n && p->s[p->i] == ',') {
                p->i++;
                continue;
            }
            if (p->i < p->n && p->s[p->i] == (obj ? '}' : ']')) {
                p->i++;
                return 0;
            }
            return fail(p, obj ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    }
    if (c == 't') {
        v->type = STALL_JV_BOOL;
        v->num = 1;
        return literal(p, "true");
    }
    if (c == 'f') {
        v->type = STALL_JV_BOOL;
        return literal(p, "false");
    }
    if (c == 'n') {
        v->type = STALL_JV_NULL;
        return literal(p, "null");
    }
    return number(p, v);
}

static void release(stall_jv_t *v) {
    if (v->type == STALL_JV_STR) free(v->str);
    if (v->type == STALL_JV_ARR || v->type == STALL_JV_OBJ) {
        for (size_t i = 0; i < v->len; i++) {
            release(&v->items[i]);
            if (v->keys) free(v->keys[i]);
        }
        free(v->items);
        free(v->keys);
    }
}

stall_jv_t *stall__json_parse(const char *text, size_t len, char *err, size_t errcap) {
    parser_t p = {text, len, 0, err, errcap};
    if (err && errcap) err[0] = 0;
    stall_jv_t *v = calloc(1, sizeof *v);
    if (!v) {
        fail(&p, "out of memory");
        return NULL;
    }
    if (!text || value(&p, v, 0) < 0) goto bad;
    skip_ws(&p);
    if (p.i != p.n) {
        fail(&p, "text after the value");
        goto bad;
    }
    return v;
bad:
    stall__jv_free(v);
    return NULL;
}

void stall__jv_free(stall_jv_t *v) {
    if (!v) return;
    release(v);
    free(v);
}

const stall_jv_t *stall__jv_get(const stall_jv_t *o, const char *key) {
    if (!o || o->type != STALL_JV_OBJ || !key) return NULL;
    for (size_t i = 0; i < o->len; i++)
        if (o->keys[i] && !strcmp(o->keys[i], key)) return &o->items[i];
    return NULL;
}

const stall_jv_t *stall__jv_at(const stall_jv_t *a, size_t i) {
    return a && (a->type == STALL_JV_ARR || a->type == STALL_JV_OBJ) && i < a->len ? &a->items[i] : NULL;
}

const stall_jv_t *stall__jv_path(const stall_jv_t *o, const char *path) {
    char key[128];
    while (o && path && *path) {
        const char *dot = strchr(path, '.');
        size_t k = dot ? (size_t)(dot - path) : strlen(path);
        if (k >= sizeof key) return NULL;
        memcpy(key, path, k);
        key[k] = 0;
        o = stall__jv_get(o, key);
        path = dot ? dot + 1 : NULL;
    }
    return o;
}

double stall__jv_num(const stall_jv_t *v) { return v && v->type == STALL_JV_NUM ? v->num : NAN; }

const char *stall__jv_str(const stall_jv_t *v) { return v && v->type == STALL_JV_STR ? v->str : NULL; }
