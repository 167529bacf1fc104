"""Seed 001 ("Code Profiling and Bottleneck Detection System"), section
"Quick Start / 2. Data Loading Profiling".

Reproduces the Data Loading Profiling example exactly as the document
writes it: a DataLoadingProfilerConfig with batch sizes [16, 32, 64, 128]
and workers [0, 2, 4, 8], profile_configuration_range(dataset),
get_optimal_configuration() (its batch_size and num_workers printed) and
generate_optimization_report() (written under the config's
profile_output_dir, in the current directory).
`from data_loading_profiler import ...` becomes `from stall import ...`.

Fills in `dataset`: a TensorDataset of 2048 random 3x32x32 float images with
labels, small enough for the 16 configurations to be tried in seconds.
Shows: the number of profiles, the optimal configuration and the report path.

The search uses the default model strategy (a few configurations chosen by
stall's throughput model); for this in-memory dataset the loop's own loading
wins (workers cost more to hand a batch over than to make it).
"""

import torch
from torch.utils.data import TensorDataset

from stall import DataLoadingProfiler, DataLoadingProfilerConfig

torch.manual_seed(0)
dataset = TensorDataset(torch.randn(2048, 3, 32, 32), torch.randint(0, 10, (2048,)))

# --- the document's example ---------------------------------------------
# Create profiler
config = DataLoadingProfilerConfig(
    batch_size_range=[16, 32, 64, 128],
    worker_range=[0, 2, 4, 8]
)
profiler = DataLoadingProfiler(config)

# Profile multiple configurations
profiles = profiler.profile_configuration_range(dataset)

# Get optimal configuration
optimal = profiler.get_optimal_configuration()
print(f"Optimal batch size: {optimal.batch_size}")
print(f"Optimal workers: {optimal.num_workers}")

# Generate report
report_path = profiler.generate_optimization_report()
# --------------------------------------------------------------------------

print("configurations profiled:", len(profiles))
print("report:", report_path)
