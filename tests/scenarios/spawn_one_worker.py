"""One spawned worker for CPU-heavy samples: the second core stays idle.

expect: INSUFFICIENT_WORKERS
"""
from torch.utils.data import DataLoader

from _common import Samples, Stream, busy, train

if __name__ == "__main__":
    train([DataLoader(Samples(8 * 50, cpu_ms=4), batch_size=8, num_workers=1,
                      multiprocessing_context="spawn")], step_ms=8)
