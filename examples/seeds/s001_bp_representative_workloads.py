"""Seed 001 ("Code Profiling and Bottleneck Detection System"), section
"Best Practices / 3. Profile Representative Workloads".

Reproduces the example exactly as the document writes it: profile with
realistic data sizes, `sample_data = torch.randn(1000, 784)`.

Fills in a use of that data: a BottleneckProfiler session that profiles the
preprocessing (standardization) and the inference of a 784-256-10 MLP on
sample_data, each as an operation. Shows: the output shape and the summary.
"""

import torch
from torch import nn

from stall import BottleneckProfiler, BottleneckProfilerConfig, BottleneckType

torch.manual_seed(0)

# --- the document's example ---------------------------------------------
# Profile with realistic data sizes
sample_data = torch.randn(1000, 784)  # Representative batch size
# --------------------------------------------------------------------------

model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
profiler = BottleneckProfiler(BottleneckProfilerConfig())
profiler.start_profiling_session("representative_workload")
for _ in range(5):
    with profiler.profile_operation("preprocessing", BottleneckType.PREPROCESSING):
        x = (sample_data - sample_data.mean(dim=0)) / (sample_data.std(dim=0) + 1e-6)
    with profiler.profile_operation("model_inference", BottleneckType.CPU_COMPUTATION):
        with torch.no_grad():
            out = model(x)
profiler.stop_profiling_session()
print("sample_data:", tuple(sample_data.shape), "-> output", tuple(out.shape))
print("summary:", profiler.get_bottleneck_summary())
