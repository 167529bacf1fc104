"""The run fills the memory it may use (its cgroup's limit) and keeps
training: the kernel reclaims and the tree is close to being OOM-killed.
tests/scenarios/run.py starts it in a memory-limited cgroup (as root).

expect: MEMORY_PRESSURE
needs: memory-cgroup
"""
import os

import torch
from _common import Samples, make_loader, train


def cgroup_memory():
    """(limit, usage) in bytes of this process's memory cgroup, v2 or v1."""
    with open("/proc/self/cgroup") as f:
        lines = f.read().splitlines()
    for line in lines:
        hid, ctrls, path = line.split(":", 2)
        if hid == "0" and os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
            base = "/sys/fs/cgroup" + path
            lim = open(base + "/memory.max").read().strip()
            return (None if lim == "max" else int(lim)), int(open(base + "/memory.current").read())
        if "memory" in ctrls.split(","):
            base = "/sys/fs/cgroup/memory" + path
            return (int(open(base + "/memory.limit_in_bytes").read()),
                    int(open(base + "/memory.usage_in_bytes").read()))
    return None, None


if __name__ == "__main__":
    limit, usage = cgroup_memory()
    if not limit or limit > 1 << 40:
        raise SystemExit("memory_pressure: run me in a memory-limited cgroup (tests/scenarios/run.py does)")
    # fill up to ~94% of the limit with data the loop keeps touching
    hold = torch.ones(int((0.94 * limit - usage) / 4), dtype=torch.float32)
    train([make_loader(Samples(8 * 40), batch_size=8)], step_ms=30)
    print("held %.0f MiB of a %.0f MiB limit" % (hold.numel() * 4 / 2**20, limit / 2**20))
