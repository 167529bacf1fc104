"""Seed 000 ("Advanced Code Profiling and Optimization System"), section
"Architecture / Core Components / 5. CodeOptimizer".

Reproduces the CodeOptimizer example exactly as the document writes it:
automatic code optimization based on profiling results: optimize a
DataLoader, optimize a preprocessing function, get the optimization report.
The document's module is `stall`.

Fills in what the document leaves undefined: `profiler` is an AdvancedProfiler
that has profiled `dataloader` (a DataLoader over random tensors) and
`preprocessing_func` (uint8 images scaled to [0, 1]); after optimizing, one
batch is drawn from the optimized loader and the optimized function is
applied, to show both still work. Shows: the optimization report.

The loader is measured against the configurations stall's tuner chooses
(stall.tuner); the function against a cached and a batched version
(stall.preprocessing). The report says what changed and the measured gain.
"""

import torch
from torch.utils.data import DataLoader, TensorDataset

from stall import AdvancedProfiler, CodeOptimizer, ProfilingConfig, ProfilingLevel

torch.manual_seed(0)
config = ProfilingConfig(enabled=True, level=ProfilingLevel.DETAILED, auto_optimize=True)

images = torch.randint(0, 256, (1024, 3, 32, 32), dtype=torch.uint8)
labels = torch.randint(0, 10, (1024,))
dataloader = DataLoader(TensorDataset(images, labels), batch_size=32, shuffle=True)


def preprocessing_func(data):
    return data.float() / 255.0


profiler = AdvancedProfiler(config)
profiler.profile_dataloader(dataloader, num_batches=10)
profiler.profile_preprocessing(preprocessing_func, images[:256])

# --- the document's example ---------------------------------------------
optimizer = CodeOptimizer(profiler)
optimized_dataloader = optimizer.optimize_data_loading(dataloader)
optimized_preprocessing = optimizer.optimize_preprocessing(preprocessing_func)
report = optimizer.get_optimization_report()
# --------------------------------------------------------------------------

x, y = next(iter(optimized_dataloader))
out = optimized_preprocessing(x)
assert torch.allclose(out, preprocessing_func(x))
print("optimized batch:", tuple(x.shape), "preprocessed range:", float(out.min()), float(out.max()))
print("optimization report:", report)
