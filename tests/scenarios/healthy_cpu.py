"""Healthy: the data is cheap, the model step computes on the CPU.

expect: CPU_BOUND
"""
from torch.utils.data import DataLoader

from _common import Samples, Stream, busy, train

if __name__ == "__main__":
    train([DataLoader(Samples(8 * 40), batch_size=8)], step_ms=40)
