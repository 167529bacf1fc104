/*
 * fuzz_cgroup.c - libFuzzer target of the cgroup parsers: /proc/<pid>/cgroup,
 * cpu.max, one-number files ("max", "-1"), keyed files (cpu.stat) and CPU
 * lists. The first line of the input also serves as the key looked up.
 */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *buf = fuzz_copy(data, size);
    stall_cgroup_path_t cg;
    if (stall__parse_cgroup(buf, size, &cg) == 0) {
        CHECK(cg.version == 1 || cg.version == 2);
        CHECK_STR(cg.v2);
        CHECK_STR(cg.cpu);
        CHECK_STR(cg.memory);
        CHECK(cg.v2[0] == '\0' || cg.v2[0] == '/');
    }
    int64_t q;
    uint64_t p, v;
    if (stall__parse_cpu_max(buf, size, &q, &p) == 0) CHECK(q >= -1 && p > 0);
    stall__parse_u64_or_max(buf, size, &v);
    static const char *const keys[] = {"nr_periods", "nr_throttled", "throttled_usec", "throttled_time"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) stall__parse_keyed(buf, size, keys[i], &v);
    /* a key taken from the input itself: its first word */
    char key[32];
    size_t k = 0;
    while (k < size && k < sizeof key - 1 && buf[k] != ' ' && buf[k] != '\n' && buf[k] != '\0') {
        key[k] = buf[k];
        k++;
    }
    key[k] = '\0';
    stall__parse_keyed(buf, size, key, &v);
    uint32_t n;
    if (stall__parse_cpulist(buf, size, &n) == 0) CHECK(n <= STALL__LX_MAX_CPUS);
    free(buf);
    return 0;
}
