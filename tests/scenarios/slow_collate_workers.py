"""A heavy collate_fn, even with two workers.

expect: COLLATE_FUNCTION_SLOW
"""
from torch.utils.data import default_collate

from _common import Samples, busy, make_loader, train


def slow_collate(samples):
    busy(30)
    return default_collate(samples)


if __name__ == "__main__":
    train([make_loader(Samples(8 * 40), batch_size=8, collate_fn=slow_collate, num_workers=2)], step_ms=5)
