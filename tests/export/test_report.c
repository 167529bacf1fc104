/*
 * test_report.c - report.json stays small for a long run: a day of
 * per-second loop points is folded to at most 1500, each the mean of the
 * seconds it stands for, and the result parses (src/export/jsonr.c).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "jsonr.h"
#include "report.h"

static void a_day_of_loop_points_is_folded(void **state) {
    (void)state;
    enum { N = 86400 };
    double(*loop)[3] = calloc(N, sizeof *loop);
    assert_non_null(loop);
    for (int i = 0; i < N; i++) {
        loop[i][0] = i;
        loop[i][1] = i % 2 ? 10.0 : 20.0; /* folded pairs average to 15 */
        loop[i][2] = i % 100 == 0 ? NAN : 0.25;
    }
    stall_analysis_t an;
    memset(&an, 0, sizeof an);
    stall_agg_t *agg = stall_agg_new();
    assert_non_null(agg);
    char *argv[] = {"train.py", NULL};
    stall_report_t r;
    memset(&r, 0, sizeof r);
    r.argv = argv;
    r.argc = 1;
    r.start_ns = 1;
    r.end_ns = 86400ull * 1000000000ull;
    r.level = "basic";
    r.interval_s = 1;
    r.an = &an;
    r.agg = agg;
    r.loop = (const double(*)[3])loop;
    r.nloop = N;
    size_t len = 0;
    char *json = stall__report_json(&r, &len);
    assert_non_null(json);
    assert_true(len < 200000);
    char err[160];
    stall_jv_t *doc = stall__json_parse(json, len, err, sizeof err);
    assert_non_null(doc);
    const stall_jv_t *pts = stall__jv_path(doc, "series.loop");
    assert_non_null(pts);
    assert_true(pts->len <= 1500 && pts->len >= 1000);
    for (size_t i = 0; i + 1 < pts->len; i++) {
        const stall_jv_t *p = stall__jv_at(pts, i);
        assert_true(fabs(stall__jv_num(stall__jv_at(p, 1)) - 15.0) < 1e-9);
        assert_true(fabs(stall__jv_num(stall__jv_at(p, 2)) - 0.25) < 1e-9); /* unknown seconds left out */
    }
    stall__jv_free(doc);
    free(json);
    stall_agg_free(agg);
    free(loop);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_day_of_loop_points_is_folded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
