/*
 * fuzz_pid.c - libFuzzer target of the per-process parsers: /proc/<pid>/stat
 * (comm with spaces and parentheses) with its page-fault fields, io, status
 * (context switches, CPU affinity), schedstat, smaps_rollup,
 * task/<tid>/children pid lists, a thread's state, wchan and syscall.
 */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *buf = fuzz_copy(data, size);
    stall_pid_stat_t st;
    if (stall__parse_pid_stat(buf, size, &st) == 0) {
        CHECK_STR(st.comm);
        CHECK(st.state != '\0' || size > 0);
    }
    uint64_t minflt = 0, majflt = 0;
    stall__parse_pid_stat_x(buf, size, &st, &minflt, &majflt);
    char state = 0;
    if (stall__parse_task_state(buf, size, &state) == 0) CHECK(state != '\0');
    int w = stall__classify_wchan(buf, size);
    CHECK(w >= STALL__WCHAN_OTHER && w <= STALL__WCHAN_SLEEP);
    long nr;
    uint64_t arg0;
    stall__parse_task_syscall(buf, size, &nr, &arg0);
    stall_pid_io_t io;
    stall__parse_pid_io(buf, size, &io);
    uint64_t a, b;
    stall__parse_pid_status(buf, size, &a, &b);
    uint32_t cpus;
    if (stall__parse_cpus_allowed(buf, size, &cpus) == 0) CHECK(cpus <= STALL__LX_MAX_CPUS);
    stall__parse_schedstat(buf, size, &a, &b);
    stall__parse_smaps_rollup(buf, size, &a);

    uint32_t pids[5];
    memset(pids, 0xA5, sizeof pids);
    int n = stall__parse_pid_list(buf, size, pids, 4);
    CHECK(n >= -1 && n <= 4);
    CHECK(pids[4] == 0xA5A5A5A5u);
    for (int i = 0; i < n; i++) CHECK(pids[i] != 0);
    CHECK(stall__parse_pid_list(buf, size, NULL, 0) <= 0);
    free(buf);
    return 0;
}
