"""The step allocates large temporaries every time (64 MB activations made
afresh): glibc hands allocations that big back to the kernel on free, so each
step faults its memory in again, zeroed page by page. The loop does not wait
for data; the step's CPU time goes to the kernel.

expect: MEMORY_BOUND
"""
import torch

from _common import Samples, make_loader, train


def fresh_activations():
    x = torch.ones(16 << 20)  # 64 MB, new pages every step
    return float((x * 2).sum())


if __name__ == "__main__":
    train([make_loader(Samples(8 * 60), batch_size=8)], step_ms=2, after_step=fresh_activations)
