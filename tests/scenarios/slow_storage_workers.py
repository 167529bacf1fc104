"""Two workers reading from a slow store: still waiting, and off-CPU.

expect: SLOW_DISK_IO
"""
from _common import Samples, make_loader, train

if __name__ == "__main__":
    train([make_loader(Samples(8 * 50, wait_ms=6), batch_size=8, num_workers=2)], step_ms=5)
