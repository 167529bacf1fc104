"""A small image-classifier training run with a deliberately misconfigured
DataLoader, for `stall run` (see `make demo`).

Each sample is "decoded" on the CPU (a few small convolutions with numpy,
like JPEG decoding and augmentation) after a short storage latency, and the
DataLoader runs with num_workers=0: the training loop makes every batch
itself, then computes. Nothing here knows about stall.

    stall run -- python3 examples/train/misconfigured_loader.py [--workers N] [--batches N]
"""
import argparse
import time

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset


class DecodedImages(Dataset):
    """Synthetic 32x32 RGB images that cost CPU time and a storage wait to load."""

    def __init__(self, n, decode_rounds, read_latency_s):
        self.n = n
        self.decode_rounds = decode_rounds
        self.read_latency_s = read_latency_s
        self.labels = np.random.default_rng(0).integers(0, 10, size=n)

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        time.sleep(self.read_latency_s)  # waiting on storage
        rng = np.random.default_rng(i)
        img = rng.random((3, 40, 40), dtype=np.float32)
        for _ in range(self.decode_rounds):  # decode + augment on the CPU
            img = 0.25 * (img + np.roll(img, 1, axis=1) + np.roll(img, 1, axis=2) + img[:, ::-1, :])
        img = img[:, 4:36, 4:36]
        return torch.from_numpy(np.ascontiguousarray(img)), int(self.labels[i])


def small_cnn():
    """The model: two small convolutions and a linear classifier for 32x32 RGB."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 8 * 8, 10),
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--batches", type=int, default=120)
    ap.add_argument("--decode-rounds", type=int, default=12)
    ap.add_argument("--read-latency-ms", type=float, default=0.3)
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)  # the step computes on one core
    data = DecodedImages(args.batches * args.batch_size, args.decode_rounds, args.read_latency_ms / 1000)
    loader = DataLoader(data, batch_size=args.batch_size, shuffle=True, num_workers=args.workers)
    model = small_cnn()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    loss_fn = nn.CrossEntropyLoss()
    t0 = time.perf_counter()
    seen = 0
    for x, y in loader:
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        seen += 1
    dt = time.perf_counter() - t0
    print(f"trained {seen} batches in {dt:.2f} s ({seen / dt:.1f} batches/s), last loss {loss.item():.3f}")


if __name__ == "__main__":
    main()
