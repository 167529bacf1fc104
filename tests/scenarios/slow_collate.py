"""A collate_fn doing heavy per-batch Python work.

expect: COLLATE_FUNCTION_SLOW
"""
from torch.utils.data import default_collate

from _common import Samples, busy, make_loader, train


def slow_collate(samples):
    busy(20)
    return default_collate(samples)


if __name__ == "__main__":
    train([make_loader(Samples(8 * 50), batch_size=8, collate_fn=slow_collate)], step_ms=10)
