"""Each sample is read from files on a slow (high-latency) store: the fetch waits, off-CPU.

expect: SLOW_DISK_IO
"""
import os
import tempfile
import time

import torch

from _common import make_loader, train


class Files(torch.utils.data.Dataset):
    def __init__(self, n):
        self.dir = tempfile.mkdtemp(prefix="stall-scenario-")
        self.n = n
        for i in range(n):
            with open(os.path.join(self.dir, "%d.bin" % i), "wb") as f:
                f.write(os.urandom(4096))

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        time.sleep(0.003)  # the storage latency of one read
        with open(os.path.join(self.dir, "%d.bin" % i), "rb") as f:
            raw = f.read()
        return torch.frombuffer(bytearray(raw[:64]), dtype=torch.float32)[:16].nan_to_num(), i % 4


if __name__ == "__main__":
    train([make_loader(Files(8 * 50), batch_size=8)], step_ms=10)
