"""num_workers=0 with CPU-heavy samples while a core stays idle.

expect: INSUFFICIENT_WORKERS
"""
from torch.utils.data import DataLoader

from _common import Samples, Stream, busy, train

if __name__ == "__main__":
    train([DataLoader(Samples(8 * 60, cpu_ms=3), batch_size=8)], step_ms=10)
