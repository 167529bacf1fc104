"""Healthy iterable dataset: cheap samples, a long step.

expect: CPU_BOUND
"""
from _common import Stream, make_loader, train

if __name__ == "__main__":
    train([make_loader(Stream(8 * 40), batch_size=8)], step_ms=40)
