"""batch_size=1 through two workers: handing each tiny batch over costs more than making it.

expect: BATCH_SIZE_INEFFICIENCY
"""
from _common import Samples, make_loader, train

if __name__ == "__main__":
    train([make_loader(Samples(600), batch_size=1, num_workers=2)], step_ms=1)
