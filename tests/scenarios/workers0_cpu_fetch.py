"""num_workers=0 with CPU-heavy samples while a core stays idle.

expect: INSUFFICIENT_WORKERS
"""
from _common import Samples, make_loader, train

if __name__ == "__main__":
    train([make_loader(Samples(8 * 60, cpu_ms=3), batch_size=8)], step_ms=10)
