/*
 * series.h - bounded multi-resolution time series of a fixed set of
 * metrics, private to the engine.
 *
 * Level 0 keeps the last `cap` raw samples. Level k (k >= 1) keeps `cap`
 * buckets, each folding STALL_SERIES_FOLD^k consecutive raw samples into
 * min / avg / max. Every raw sample feeds every level, so each level always
 * reaches up to the present at its own resolution, and a read stitches them:
 * coarse buckets for the stretch older than the next finer level holds.
 * Memory is fixed at creation: with cap = 1200 and a 100 ms interval, the
 * four levels reach back 120 s, 20 min, 3.3 h and 33 h.
 */
#ifndef STALL_SERIES_H
#define STALL_SERIES_H

#include <stddef.h>
#include <stdint.h>

#include "stall.h"

#define STALL_SERIES_LEVELS 4
#define STALL_SERIES_FOLD 10

typedef struct stall_series_t stall_series_t;

/* Makes series of nmetrics metrics, cap points per level. NULL when out of
 * memory. */
stall_series_t *stall__series_new(uint32_t nmetrics, uint32_t cap);

/* Appends one raw sample taken at t_ns: values[0..nmetrics), NaN = unknown. */
void stall__series_push(stall_series_t *s, uint64_t t_ns, const double *values);

/* Copies the stitched series of one metric, oldest first, keeping the newest
 * `cap_out` points when there are more. Returns the number of points the
 * series has. */
size_t stall__series_read(const stall_series_t *s, uint32_t metric, stall_point_t *out, size_t cap_out);

/* Bytes held, fixed at creation. */
size_t stall__series_bytes(const stall_series_t *s);

void stall__series_free(stall_series_t *s);

#endif
