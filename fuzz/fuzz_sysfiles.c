/*
 * fuzz_sysfiles.c - libFuzzer target of the system-wide /proc parsers:
 * /proc/stat (and its online-CPU count), loadavg, meminfo, the pressure
 * files, cpuinfo. Every parser sees every input.
 */
#include <math.h>

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *buf = fuzz_copy(data, size);
    stall_cpu_times_t total, cores[5], canary;
    uint32_t nc = 0, pr = 0, pb = 0;
    uint64_t ctxt = 0;
    memset(cores, 0x5A, sizeof cores);
    memset(&canary, 0x5A, sizeof canary);
    if (stall__parse_stat(buf, size, &total, cores, 4, &nc, &ctxt, &pr, &pb) == 0) CHECK(nc <= STALL__LX_MAX_CPUS);
    CHECK(memcmp(&cores[4], &canary, sizeof canary) == 0); /* never past max_cores */
    stall__parse_stat(buf, size, &total, NULL, 0, NULL, NULL, NULL, NULL);
    int online = stall__parse_stat_online(buf, size);
    CHECK(online >= 0 && (size_t)online <= size / 5 + 1);

    double a, b, c;
    if (stall__parse_loadavg(buf, size, &a, &b, &c) == 0) CHECK(a >= 0 && b >= 0 && c >= 0 && !isnan(a));

    stall_meminfo_t mi;
    if (stall__parse_meminfo(buf, size, &mi) == 0) CHECK(mi.found != 0 && mi.found < 64);

    stall_psi_t psi;
    if (stall__parse_psi(buf, size, &psi) == 0) {
        CHECK(psi.has_some || psi.has_full);
        CHECK(psi.some_avg10 >= 0 && psi.full_avg10 >= 0);
    }

    double mhz;
    if (stall__parse_cpuinfo_mhz(buf, size, &mhz) == 0) CHECK(mhz >= 0 && mhz < 1e7);
    free(buf);
    return 0;
}
