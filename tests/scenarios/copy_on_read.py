"""The dataset keeps its per-sample metadata as tuples of Python
numbers (a common newcomer pattern), and two forked workers read them: each
read updates reference counts, so every page of metadata a worker touches is
copied into it, and the workers' memory grows through the epoch
(copy-on-read; PyTorch issue 13246). Data comes in time: the risk is memory.

expect: MEMORY_PRESSURE
"""
import torch

from _common import make_loader, train

PER_SAMPLE = 3000  # Python floats of metadata per sample


class Annotated(torch.utils.data.Dataset):
    def __init__(self, n):
        self.meta = [tuple(float(i * PER_SAMPLE + j) for j in range(PER_SAMPLE)) for i in range(n)]

    def __len__(self):
        return len(self.meta)

    def __getitem__(self, i):
        m = self.meta[i]
        return torch.tensor(m[:16]), int(sum(m)) % 4


if __name__ == "__main__":
    train([make_loader(Annotated(32 * 75), batch_size=32, num_workers=2)], step_ms=120)
