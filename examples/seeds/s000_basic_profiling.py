"""Seed 000 ("Advanced Code Profiling and Optimization System"), section
"Usage Examples / Basic Profiling".

Reproduces the Basic Profiling example exactly as the document writes it:
configure profiling, create an AdvancedProfiler and a CodeOptimizer, profile
a DataLoader for 10 batches, optimize it, profile a preprocessing function
and optimize it, then get the profiling summary and the optimization report.
`from advanced_code_profiling_optimization import ...` becomes
`from stall import ...`; ProfilingLevel and DataLoader, used but not
imported by the document, are imported too.

Fills in what the document leaves undefined: `create_dataset(n)` builds a
TensorDataset of n random 3x32x32 uint8 images with labels; `test_data` is a
batch of 256 such images. Shows: the summary and the optimization report.

With auto_optimize=True, profile_dataloader also tunes the loader's worker
count in place (logged); CodeOptimizer then reuses that search.
"""

import torch
from torch.utils.data import DataLoader, TensorDataset

from stall import (
    ProfilingConfig, AdvancedProfiler, CodeOptimizer
)
from stall import ProfilingLevel

torch.manual_seed(0)


def create_dataset(n):
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8)
    labels = torch.randint(0, 10, (n,))
    return TensorDataset(images, labels)


test_data = torch.randint(0, 256, (256, 3, 32, 32), dtype=torch.uint8)

# --- the document's example ---------------------------------------------
# Configure profiling
config = ProfilingConfig(
    enabled=True,
    level=ProfilingLevel.DETAILED,
    auto_optimize=True
)

# Create profiler and optimizer
profiler = AdvancedProfiler(config)
optimizer = CodeOptimizer(profiler)

# Profile data loading
dataset = create_dataset(1000)
dataloader = DataLoader(dataset, batch_size=32, shuffle=True)
profiler.profile_dataloader(dataloader, num_batches=10)

# Optimize data loading
optimized_dataloader = optimizer.optimize_data_loading(dataloader)

# Profile preprocessing
def preprocessing_func(data):
    return data.float() / 255.0

profiler.profile_preprocessing(preprocessing_func, test_data)
optimized_preprocessing = optimizer.optimize_preprocessing(preprocessing_func)

# Get results
summary = profiler.get_profiling_summary()
optimization_report = optimizer.get_optimization_report()
# --------------------------------------------------------------------------

x, _ = next(iter(optimized_dataloader))
print("optimized loader batch:", tuple(x.shape))
print("optimized preprocessing max:", float(optimized_preprocessing(test_data).max()))
print("summary:", summary)
print("optimization report:", optimization_report)
