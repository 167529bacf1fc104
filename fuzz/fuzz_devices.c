/*
 * fuzz_devices.c - libFuzzer target of the device-table parsers:
 * /proc/diskstats and /proc/net/dev, with a small and a large table.
 */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *buf = fuzz_copy(data, size);
    stall_disk_t d[9];
    stall_iface_t f[9];
    memset(d, 0x5A, sizeof d);
    memset(f, 0x5A, sizeof f);
    stall_disk_t dcanary;
    stall_iface_t fcanary;
    memset(&dcanary, 0x5A, sizeof dcanary);
    memset(&fcanary, 0x5A, sizeof fcanary);

    int n = stall__parse_diskstats(buf, size, d, 2);
    CHECK(n >= -1 && n <= 2);
    CHECK(memcmp(&d[2], &dcanary, sizeof dcanary) == 0);
    n = stall__parse_diskstats(buf, size, d, 8);
    CHECK(n >= -1 && n <= 8);
    for (int i = 0; i < n; i++) CHECK_STR(d[i].name);
    CHECK(stall__parse_diskstats(buf, size, NULL, 0) >= -1);

    n = stall__parse_netdev(buf, size, f, 2);
    CHECK(n >= -1 && n <= 2);
    CHECK(memcmp(&f[2], &fcanary, sizeof fcanary) == 0);
    n = stall__parse_netdev(buf, size, f, 8);
    CHECK(n >= -1 && n <= 8);
    for (int i = 0; i < n; i++) {
        CHECK_STR(f[i].name);
        CHECK(f[i].name[0] != '\0');
    }
    free(buf);
    return 0;
}
