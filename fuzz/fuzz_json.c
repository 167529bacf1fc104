/*
 * fuzz_json.c - libFuzzer target of the JSON reader (src/export/jsonr.c)
 * that `stall report` runs on files given to it: any input either parses
 * into a tree whose strings are NUL-terminated and whose lookups stay in
 * bounds, or fails with a message that names a byte offset.
 */
#include <math.h>
#include <stdio.h>

#include "fuzz.h"
#include "jsonr.h"

static void walk(const stall_jv_t *v, int depth) {
    CHECK(depth <= 70);
    switch (v->type) {
    case STALL_JV_STR: CHECK(v->str && v->str[v->len] == '\0'); break;
    case STALL_JV_ARR:
    case STALL_JV_OBJ:
        for (size_t i = 0; i < v->len; i++) {
            if (v->type == STALL_JV_OBJ) CHECK(v->keys[i] && stall__jv_get(v, v->keys[i]) != NULL);
            walk(&v->items[i], depth + 1);
        }
        CHECK(stall__jv_at(v, v->len) == NULL);
        break;
    case STALL_JV_NUM: CHECK(!isnan(v->num)); break;
    default: break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *buf = fuzz_copy(data, size);
    char err[160];
    stall_jv_t *v = stall__json_parse(buf, size, err, sizeof err);
    if (v) {
        walk(v, 0);
        stall__jv_path(v, "a.b.c");
        stall__jv_free(v);
    } else {
        CHECK(strstr(err, "at byte ") != NULL);
    }
    free(buf);
    return 0;
}
