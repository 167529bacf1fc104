"""A sampler that does expensive Python work for every index.

expect: SAMPLER_OVERHEAD
"""
from torch.utils.data import Sampler

from _common import Samples, busy, make_loader, train


class SlowSampler(Sampler):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __iter__(self):
        for i in range(self.n):
            busy(2)
            yield i


if __name__ == "__main__":
    data = Samples(8 * 50)
    train([make_loader(data, batch_size=8, sampler=SlowSampler(len(data)))], step_ms=10)
