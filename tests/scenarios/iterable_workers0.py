"""An iterable dataset with CPU-heavy samples, loaded in the training loop.

expect: INSUFFICIENT_WORKERS
"""
from _common import Stream, make_loader, train

if __name__ == "__main__":
    train([make_loader(Stream(8 * 60, cpu_ms=3), batch_size=8)], step_ms=10)
