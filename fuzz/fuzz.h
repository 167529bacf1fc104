/*
 * fuzz.h - shared by the libFuzzer targets of the Linux parsers: the input
 * copied into a buffer of exactly size + 1 bytes (NUL-terminated, as the
 * collectors pass it), so that AddressSanitizer catches any read past
 * buf[len]; and CHECK, which traps when a parser breaks its contract.
 */
#ifndef STALL_FUZZ_H
#define STALL_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "collector.h"
#include "lx.h"

#define CHECK(cond)                          \
    do {                                     \
        if (!(cond)) __builtin_trap();       \
    } while (0)

/* A NUL-terminated heap copy of the input; free() it. */
static inline char *fuzz_copy(const uint8_t *data, size_t size) {
    char *buf = malloc(size + 1);
    if (!buf) abort();
    memcpy(buf, data, size);
    buf[size] = '\0';
    return buf;
}

/* A field of a fixed-size char array is NUL-terminated inside it. */
#define CHECK_STR(arr) CHECK(memchr((arr), '\0', sizeof(arr)) != NULL)

#endif
