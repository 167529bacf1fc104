"""Healthy with workers: two workers make batches far faster than the long step takes them.

expect: CPU_BOUND
"""
from _common import Samples, make_loader, train

if __name__ == "__main__":
    train([make_loader(Samples(8 * 20, cpu_ms=0.5), batch_size=8, num_workers=2)], step_ms=200)
