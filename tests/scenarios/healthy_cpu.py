"""Healthy: the data is cheap, the model step computes on the CPU.

expect: CPU_BOUND
"""
from _common import Samples, make_loader, train

if __name__ == "__main__":
    train([make_loader(Samples(8 * 40), batch_size=8)], step_ms=40)
