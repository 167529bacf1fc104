/*
 * jsonr.h - a small JSON reader (library-internal): parses a whole text into
 * a tree of values, for the report files stall reads back (`stall report`,
 * the diagnosis the CLI prints).
 */
#ifndef STALL_EXPORT_JSONR_H
#define STALL_EXPORT_JSONR_H

#include <stddef.h>

enum { STALL_JV_NULL, STALL_JV_BOOL, STALL_JV_NUM, STALL_JV_STR, STALL_JV_ARR, STALL_JV_OBJ };

typedef struct stall_jv_t {
    int type;                  /* STALL_JV_* */
    double num;                /* a number; a bool: 1 or 0 */
    char *str;                 /* a string (UTF-8, NUL-terminated; may hold NULs: len counts them) */
    size_t len;                /* a string's bytes, an array's or object's members */
    struct stall_jv_t *items;  /* members of an array or object */
    char **keys;               /* an object's keys, in the order of the text */
} stall_jv_t;

/* Parses len bytes of JSON text. Returns the root value, which the caller
 * frees with stall__jv_free; NULL for invalid JSON (or no memory) with a
 * message naming the byte offset written into err (errcap bytes). */
stall_jv_t *stall__json_parse(const char *text, size_t len, char *err, size_t errcap);
void stall__jv_free(stall_jv_t *v);

/* An object's member by key, an array's i-th item, a member by dotted path
 * ("breakdown.data_wait_frac"): NULL when absent or of another type. */
const stall_jv_t *stall__jv_get(const stall_jv_t *o, const char *key);
const stall_jv_t *stall__jv_at(const stall_jv_t *a, size_t i);
const stall_jv_t *stall__jv_path(const stall_jv_t *o, const char *path);
/* A number (NaN when v is not one), a string (NULL when not one). */
double stall__jv_num(const stall_jv_t *v);
const char *stall__jv_str(const stall_jv_t *v);

#endif
