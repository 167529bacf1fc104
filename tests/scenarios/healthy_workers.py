"""Healthy with workers: two workers make batches far faster than the long step takes them.

expect: CPU_BOUND
"""
from torch.utils.data import DataLoader

from _common import Samples, Stream, busy, train

if __name__ == "__main__":
    train([DataLoader(Samples(8 * 25, cpu_ms=0.5), batch_size=8, num_workers=2)], step_ms=100)
