"""A collate_fn doing heavy per-batch Python work.

expect: COLLATE_FUNCTION_SLOW
"""
from torch.utils.data import DataLoader

from _common import Samples, Stream, busy, train

import torch
from torch.utils.data import default_collate


def slow_collate(samples):
    busy(20)
    return default_collate(samples)


if __name__ == "__main__":
    train([DataLoader(Samples(8 * 50), batch_size=8, collate_fn=slow_collate)], step_ms=10)
