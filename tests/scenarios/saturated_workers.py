"""Workers already use every core: per-sample CPU work is the limit.

expect: PREPROCESSING_BOTTLENECK
"""
from torch.utils.data import DataLoader

from _common import Samples, Stream, busy, train

if __name__ == "__main__":
    train([DataLoader(Samples(8 * 40, cpu_ms=6), batch_size=8, num_workers=3)], step_ms=10)
