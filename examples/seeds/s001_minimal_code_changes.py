"""Seed 001 ("Code Profiling and Bottleneck Detection System"), section
"Integration with Existing Code / Minimal Code Changes".

Reproduces the example exactly as the document writes it: a direct call
`result = my_preprocessing_function(data)`, then the same call wrapped in
`profiler.profile_operation("my_preprocessing", BottleneckType.PREPROCESSING)`.

Fills in what the document leaves undefined: `profiler` is a
BottleneckProfiler with a session open; `my_preprocessing_function`
standardizes and clips a batch; `data` is torch.randn(1000, 784). Shows:
both results are equal (profiling does not change the result) and the
bottleneck summary.
"""

import torch

from stall import BottleneckProfiler, BottleneckProfilerConfig, BottleneckType

torch.manual_seed(0)
data = torch.randn(1000, 784)


def my_preprocessing_function(x):
    x = (x - x.mean(dim=0)) / (x.std(dim=0) + 1e-6)
    return x.clamp(-3.0, 3.0)


profiler = BottleneckProfiler(BottleneckProfilerConfig())
profiler.start_profiling_session("minimal_code_changes")

# --- the document's example ---------------------------------------------
# Before: Direct function call
result = my_preprocessing_function(data)
before = result

# After: Profiled function call
with profiler.profile_operation("my_preprocessing", BottleneckType.PREPROCESSING):
    result = my_preprocessing_function(data)
# --------------------------------------------------------------------------

assert torch.equal(before, result)
session = profiler.stop_profiling_session()
print("result:", tuple(result.shape), "unchanged by profiling")
print("summary:", profiler.get_bottleneck_summary())
