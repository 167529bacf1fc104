"""Seed 000 ("Advanced Code Profiling and Optimization System"), section
"Architecture / Core Components / 3. Profiling Components / DataLoadingProfiler".

Reproduces the DataLoadingProfiler example exactly as the document writes it:
a DataLoadingProfiler built from a ProfilingConfig profiles 10 batches of a
DataLoader, then a preprocessing function over some data, then lists the
bottlenecks. The document's module is `stall`.

Fills in what the document leaves undefined: `dataloader` is a DataLoader
over a TensorDataset of random 3x32x32 uint8 images with labels;
`preprocessing_func` scales images to [0, 1] and normalizes them; `data` is a
batch of random uint8 images. Shows: the bottlenecks found.
"""

import torch
from torch.utils.data import DataLoader, TensorDataset

from stall import DataLoadingProfiler, ProfilingConfig, ProfilingLevel

torch.manual_seed(0)
config = ProfilingConfig(enabled=True, level=ProfilingLevel.DETAILED)

images = torch.randint(0, 256, (640, 3, 32, 32), dtype=torch.uint8)
labels = torch.randint(0, 10, (640,))
dataloader = DataLoader(TensorDataset(images, labels), batch_size=32, shuffle=True)


def preprocessing_func(batch):
    x = batch.float() / 255.0
    return (x - x.mean(dim=(0, 2, 3), keepdim=True)) / (x.std(dim=(0, 2, 3), keepdim=True) + 1e-6)


data = torch.randint(0, 256, (128, 3, 32, 32), dtype=torch.uint8)

# --- the document's example ---------------------------------------------
profiler = DataLoadingProfiler(config)
profiler.profile_dataloader(dataloader, num_batches=10)
profiler.profile_preprocessing(preprocessing_func, data)
bottlenecks = profiler.get_bottlenecks()
# --------------------------------------------------------------------------

print(f"bottlenecks ({len(bottlenecks)}):")
for b in bottlenecks:
    print("  ", b)
