"""One spawned worker for CPU-heavy samples: the second core stays idle.

expect: INSUFFICIENT_WORKERS
"""
from _common import Samples, make_loader, train

if __name__ == "__main__":
    train([make_loader(Samples(8 * 50, cpu_ms=4), batch_size=8, num_workers=1,
                      multiprocessing_context="spawn")], step_ms=8)
