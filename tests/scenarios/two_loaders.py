"""Two loaders zipped: the main data is cheap, the auxiliary one is CPU-heavy and loaded inline.

expect: INSUFFICIENT_WORKERS
"""
from _common import Samples, make_loader, train

if __name__ == "__main__":
    fast = make_loader(Samples(8 * 60), batch_size=8)
    slow = make_loader(Samples(8 * 60, cpu_ms=3), batch_size=8)
    train([fast, slow], step_ms=10)
