"""The data is cheap, but every step writes a checkpoint and waits for the
disk to persist it (fsync): the loop is not waiting for data, and the step
spends its time off-CPU on storage writes.

expect: IO_BOUND
"""
import os
import tempfile

from _common import Samples, busy, make_loader, train


class Checkpointing:
    def __init__(self):
        self.path = os.path.join(tempfile.mkdtemp(prefix="stall-scenario-"), "ckpt.bin")
        self.blob = os.urandom(16 << 20)

    def __call__(self):
        with open(self.path, "wb") as f:
            f.write(self.blob)
            f.flush()
            os.fsync(f.fileno())


if __name__ == "__main__":
    save = Checkpointing()
    train([make_loader(Samples(8 * 80), batch_size=8)], step_ms=1, after_step=save)
    os.unlink(save.path)
