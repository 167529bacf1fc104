"""Seed 001 ("Code Profiling and Bottleneck Detection System"), section
"Quick Start / 3. Preprocessing Profiling".

Reproduces the Preprocessing Profiling example exactly as the document
writes it: a PreprocessingProfilerConfig with batch sizes [1, 8, 16, 32, 64]
and caching on, profile_preprocessing_function(normalize_function,
sample_data, num_iterations=10), profile_batch_preprocessing(
normalize_function, sample_data) and get_optimal_preprocessing_config().
`from preprocessing_profiler import ...` becomes `from stall import ...`.

Fills in what the document leaves undefined: `normalize_function`
standardizes each row of a tensor (zero mean, unit variance); `sample_data`
is torch.randn(1000, 784), the "representative" data of the document's best
practice 3. Shows: the profile, the number of batch profiles, the optimal
configuration.

The findings come from measurement (see stall.preprocessing).
"""

import torch

from stall import PreprocessingProfiler, PreprocessingProfilerConfig

torch.manual_seed(0)
sample_data = torch.randn(1000, 784)


def normalize_function(x):
    return (x - x.mean(dim=-1, keepdim=True)) / (x.std(dim=-1, keepdim=True) + 1e-6)


# --- the document's example ---------------------------------------------
# Create profiler
config = PreprocessingProfilerConfig(
    batch_size_range=[1, 8, 16, 32, 64],
    enable_caching=True
)
profiler = PreprocessingProfiler(config)

# Profile preprocessing function
profile = profiler.profile_preprocessing_function(
    normalize_function, sample_data, num_iterations=10
)

# Profile with different batch sizes
batch_profiles = profiler.profile_batch_preprocessing(
    normalize_function, sample_data
)

# Get optimal configuration
optimal = profiler.get_optimal_preprocessing_config()
# --------------------------------------------------------------------------

print("profile:", profile)
print("batch profiles:", len(batch_profiles["batch_profiles"]))
print("optimal:", optimal)
