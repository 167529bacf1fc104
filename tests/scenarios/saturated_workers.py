"""Workers already use every core: per-sample CPU work is the limit.

expect: PREPROCESSING_BOTTLENECK
"""
from _common import Samples, make_loader, train

if __name__ == "__main__":
    train([make_loader(Samples(8 * 40, cpu_ms=6), batch_size=8, num_workers=3)], step_ms=10)
