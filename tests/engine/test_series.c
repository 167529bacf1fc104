/*
 * test_series.c - the bounded multi-resolution time series: raw points, the
 * folding into min/avg/max buckets, the stitching of levels on read, unknown
 * values, and memory that does not grow with the number of samples.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "series.h"

#define SEC 1000000000ull

static void raw_points_only(void **state) {
    (void)state;
    stall_series_t *s = stall__series_new(2, 16);
    assert_non_null(s);
    for (int i = 0; i < 5; i++) {
        double v[2] = {i, i % 2 ? NAN : 10.0 * i};
        stall__series_push(s, (uint64_t)i * SEC, v);
    }
    stall_point_t p[16];
    assert_int_equal(stall__series_read(s, 0, p, 16), 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(p[i].t_ns, (uint64_t)i * SEC);
        assert_int_equal(p[i].span_ns, 0);
        assert_true(p[i].min == i && p[i].avg == i && p[i].max == i);
        assert_int_equal(p[i].n, 1);
    }
    assert_int_equal(stall__series_read(s, 1, p, 16), 5);
    assert_true(isnan(p[1].avg));
    assert_int_equal(p[1].n, 0);
    assert_true(p[2].avg == 20.0);
    /* a bad metric reads nothing */
    assert_int_equal(stall__series_read(s, 2, p, 16), 0);
    stall__series_free(s);
}

/* After many samples, old data is in buckets of 10 and 100 samples whose
 * min/avg/max are those of the samples they fold, and points are in time
 * order with no overlap. */
static void folding_and_stitching(void **state) {
    (void)state;
    const uint32_t cap = 16;
    stall_series_t *s = stall__series_new(1, cap);
    assert_non_null(s);
    size_t bytes = stall__series_bytes(s);
    const int N = 1000;
    for (int i = 0; i < N; i++) {
        double v = (double)i;
        stall__series_push(s, (uint64_t)i * SEC, &v);
    }
    assert_int_equal(stall__series_bytes(s), bytes); /* fixed memory */
    stall_point_t p[256];
    size_t n = stall__series_read(s, 0, p, 256);
    assert_true(n > cap && n <= 4 * cap);
    uint64_t prev_end = 0;
    int saw_10 = 0, saw_100 = 0;
    for (size_t i = 0; i < n; i++) {
        if (i > 0) assert_true(p[i].t_ns > prev_end || (prev_end == 0 && p[i].t_ns == 0));
        prev_end = p[i].t_ns + p[i].span_ns;
        double first = (double)(p[i].t_ns / SEC), last = (double)((p[i].t_ns + p[i].span_ns) / SEC);
        /* values equal their time in seconds, so each bucket is exact */
        assert_true(p[i].min == first);
        assert_true(p[i].max == last);
        assert_true(fabs(p[i].avg - (first + last) / 2) < 1e-9);
        assert_int_equal(p[i].n, (uint32_t)(last - first) + 1);
        if (p[i].n == 10) saw_10 = 1;
        if (p[i].n == 100) saw_100 = 1;
    }
    assert_true(saw_10 && saw_100);
    /* the newest points are the last raw samples */
    assert_true(p[n - 1].t_ns == (uint64_t)(N - 1) * SEC && p[n - 1].n == 1);
    /* the oldest point reaches further back than raw and level-1 alone could */
    assert_true(p[0].t_ns < (uint64_t)(N - 10 * cap) * SEC);
    /* reading fewer keeps the newest */
    stall_point_t q[4];
    assert_int_equal(stall__series_read(s, 0, q, 4), n);
    assert_true(q[3].t_ns == p[n - 1].t_ns && q[0].t_ns == p[n - 4].t_ns);
    stall__series_free(s);
}

/* A bucket whose samples were all unknown is NaN with n = 0, and one with a
 * few unknown samples averages only the known ones. */
static void unknown_values_in_buckets(void **state) {
    (void)state;
    stall_series_t *s = stall__series_new(1, 16);
    assert_non_null(s);
    for (int i = 0; i < 400; i++) {
        double v = i < 100 ? NAN : (i % 2 ? 4.0 : NAN);
        stall__series_push(s, (uint64_t)i * SEC, &v);
    }
    stall_point_t p[64];
    size_t n = stall__series_read(s, 0, p, 64);
    int saw_empty = 0, saw_half = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i].t_ns + p[i].span_ns < 100 * SEC && p[i].span_ns > 0) {
            assert_int_equal(p[i].n, 0);
            assert_true(isnan(p[i].avg) && isnan(p[i].min) && isnan(p[i].max));
            saw_empty = 1;
        } else if (p[i].t_ns >= 100 * SEC && p[i].span_ns >= 9 * SEC) {
            assert_true(p[i].avg == 4.0 && p[i].min == 4.0 && p[i].max == 4.0);
            assert_true(p[i].n * 2 == (uint32_t)(p[i].span_ns / SEC) + 1);
            saw_half = 1;
        }
    }
    assert_true(saw_empty && saw_half);
    stall__series_free(s);
}

/* A 24-hour run at 10 samples a second fits in the fixed memory and the
 * stitched series still reaches back over the whole day. */
static void a_day_fits_in_fixed_memory(void **state) {
    (void)state;
    stall_series_t *s = stall__series_new(STALL_M_COUNT_, 1200);
    assert_non_null(s);
    size_t bytes = stall__series_bytes(s);
    double v[STALL_M_COUNT_];
    const uint64_t step = 100000000ull, n = 24ull * 3600 * 10;
    for (uint64_t i = 0; i < n; i++) {
        for (int j = 0; j < STALL_M_COUNT_; j++) v[j] = (double)(i % 100);
        stall__series_push(s, i * step, v);
    }
    assert_int_equal(stall__series_bytes(s), bytes);
    assert_true(bytes < 8u * 1024 * 1024);
    static stall_point_t p[5000];
    size_t got = stall__series_read(s, STALL_M_CPU_USER, p, 5000);
    assert_true(got <= 4 * 1200);
    assert_true(p[0].t_ns <= (n - 1) * step - 23ull * 3600 * SEC); /* reaches back ~a day */
    assert_true(p[got - 1].t_ns == (n - 1) * step);
    stall__series_free(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(raw_points_only),
        cmocka_unit_test(folding_and_stitching),
        cmocka_unit_test(unknown_values_in_buckets),
        cmocka_unit_test(a_day_fits_in_fixed_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
