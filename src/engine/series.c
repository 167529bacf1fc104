/*
 * series.c - bounded multi-resolution time series (see series.h).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "series.h"

typedef struct level_t {
    uint64_t *t_ns;    /* first sample of the point */
    uint64_t *span_ns; /* last - first sample time */
    double *min, *avg, *max; /* [metric * cap + i]; level 0 uses avg only */
    uint32_t *n;       /* [metric * cap + i]; NULL for level 0 */
    uint32_t head;     /* next slot to write */
    uint32_t count;    /* points held, <= cap */
    /* the bucket being filled (levels >= 1) */
    uint64_t acc_t0, acc_t1;
    uint32_t acc_samples;
    double *acc_min, *acc_max, *acc_sum;
    uint32_t *acc_n;
} level_t;

struct stall_series_t {
    uint32_t nmetrics, cap;
    size_t bytes;
    level_t lv[STALL_SERIES_LEVELS];
};

static void *zalloc(stall_series_t *s, size_t n, size_t size) {
    s->bytes += n * size;
    return calloc(n, size);
}

stall_series_t *stall__series_new(uint32_t nmetrics, uint32_t cap) {
    stall_series_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->nmetrics = nmetrics;
    s->cap = cap;
    s->bytes = sizeof *s;
    size_t cells = (size_t)nmetrics * cap;
    for (int k = 0; k < STALL_SERIES_LEVELS; k++) {
        level_t *l = &s->lv[k];
        l->t_ns = zalloc(s, cap, sizeof *l->t_ns);
        l->span_ns = zalloc(s, cap, sizeof *l->span_ns);
        l->avg = zalloc(s, cells, sizeof *l->avg);
        if (!l->t_ns || !l->span_ns || !l->avg) goto fail;
        if (k == 0) continue;
        l->min = zalloc(s, cells, sizeof *l->min);
        l->max = zalloc(s, cells, sizeof *l->max);
        l->n = zalloc(s, cells, sizeof *l->n);
        l->acc_min = zalloc(s, nmetrics, sizeof *l->acc_min);
        l->acc_max = zalloc(s, nmetrics, sizeof *l->acc_max);
        l->acc_sum = zalloc(s, nmetrics, sizeof *l->acc_sum);
        l->acc_n = zalloc(s, nmetrics, sizeof *l->acc_n);
        if (!l->min || !l->max || !l->n || !l->acc_min || !l->acc_max || !l->acc_sum || !l->acc_n) goto fail;
    }
    return s;
fail:
    stall__series_free(s);
    return NULL;
}

void stall__series_free(stall_series_t *s) {
    if (!s) return;
    for (int k = 0; k < STALL_SERIES_LEVELS; k++) {
        level_t *l = &s->lv[k];
        free(l->t_ns);
        free(l->span_ns);
        free(l->min);
        free(l->avg);
        free(l->max);
        free(l->n);
        free(l->acc_min);
        free(l->acc_max);
        free(l->acc_sum);
        free(l->acc_n);
    }
    free(s);
}

size_t stall__series_bytes(const stall_series_t *s) { return s ? s->bytes : 0; }

static uint32_t level_samples(int k) {
    uint32_t n = 1;
    while (k-- > 0) n *= STALL_SERIES_FOLD;
    return n;
}

void stall__series_push(stall_series_t *s, uint64_t t_ns, const double *v) {
    uint32_t cap = s->cap, m = s->nmetrics;
    level_t *l0 = &s->lv[0];
    l0->t_ns[l0->head] = t_ns;
    l0->span_ns[l0->head] = 0;
    for (uint32_t j = 0; j < m; j++) l0->avg[(size_t)j * cap + l0->head] = v[j];
    l0->head = (l0->head + 1) % cap;
    if (l0->count < cap) l0->count++;

    for (int k = 1; k < STALL_SERIES_LEVELS; k++) {
        level_t *l = &s->lv[k];
        if (l->acc_samples == 0) {
            l->acc_t0 = t_ns;
            for (uint32_t j = 0; j < m; j++) {
                l->acc_min[j] = INFINITY;
                l->acc_max[j] = -INFINITY;
                l->acc_sum[j] = 0;
                l->acc_n[j] = 0;
            }
        }
        l->acc_t1 = t_ns;
        for (uint32_t j = 0; j < m; j++) {
            double x = v[j];
            if (isnan(x)) continue;
            if (x < l->acc_min[j]) l->acc_min[j] = x;
            if (x > l->acc_max[j]) l->acc_max[j] = x;
            l->acc_sum[j] += x;
            l->acc_n[j]++;
        }
        if (++l->acc_samples < level_samples(k)) continue;
        uint32_t h = l->head;
        l->t_ns[h] = l->acc_t0;
        l->span_ns[h] = l->acc_t1 - l->acc_t0;
        for (uint32_t j = 0; j < m; j++) {
            size_t c = (size_t)j * cap + h;
            uint32_t n = l->acc_n[j];
            l->n[c] = n;
            l->min[c] = n ? l->acc_min[j] : NAN;
            l->max[c] = n ? l->acc_max[j] : NAN;
            l->avg[c] = n ? l->acc_sum[j] / n : NAN;
        }
        l->head = (h + 1) % cap;
        if (l->count < cap) l->count++;
        l->acc_samples = 0;
    }
}

/* Index of the i-th oldest point of a level. */
static uint32_t nth(const level_t *l, uint32_t cap, uint32_t i) { return (l->head + cap - l->count + i) % cap; }

size_t stall__series_read(const stall_series_t *s, uint32_t metric, stall_point_t *out, size_t cap_out) {
    if (!s || metric >= s->nmetrics) return 0;
    uint32_t cap = s->cap;
    /* usable[k]: how many of level k's oldest points end before the oldest
     * time that the finer levels already cover */
    uint32_t usable[STALL_SERIES_LEVELS];
    size_t total = 0;
    uint64_t boundary = UINT64_MAX;
    for (int k = 0; k < STALL_SERIES_LEVELS; k++) {
        const level_t *l = &s->lv[k];
        uint32_t hi = l->count;
        while (k > 0 && hi > 0) {
            uint32_t idx = nth(l, cap, hi - 1);
            if (l->t_ns[idx] + l->span_ns[idx] < boundary) break;
            hi--;
        }
        usable[k] = hi;
        total += hi;
        if (hi > 0 && l->t_ns[nth(l, cap, 0)] < boundary) boundary = l->t_ns[nth(l, cap, 0)];
    }
    size_t skip = total > cap_out ? total - cap_out : 0, o = 0, seen = 0;
    for (int k = STALL_SERIES_LEVELS - 1; k >= 0; k--) {
        const level_t *l = &s->lv[k];
        for (uint32_t i = 0; i < usable[k]; i++, seen++) {
            if (seen < skip) continue;
            uint32_t idx = nth(l, cap, i);
            size_t c = (size_t)metric * cap + idx;
            stall_point_t *p = &out[o++];
            p->t_ns = l->t_ns[idx];
            p->span_ns = l->span_ns[idx];
            if (k == 0) {
                double x = l->avg[c];
                p->min = p->avg = p->max = x;
                p->n = isnan(x) ? 0 : 1;
            } else {
                p->min = l->min[c];
                p->avg = l->avg[c];
                p->max = l->max[c];
                p->n = l->n[c];
            }
        }
    }
    return total;
}
