"""Seed 001 ("Code Profiling and Bottleneck Detection System"), section
"Integration with Existing Code / Context Manager Usage".

Reproduces the example exactly as the document writes it: one operation
"data_loading" (BottleneckType.DATA_LOADING) around a loop over
`data_loader`, and one "model_inference" (BottleneckType.CPU_COMPUTATION)
around `output = model(input_data)`.

Fills in what the document leaves undefined: `profiler` is a
BottleneckProfiler with a session open; `data_loader` a DataLoader over a
TensorDataset of random tensors; `model` a 2-layer MLP; `input_data` a batch
of random inputs. Shows: the output shape and the bottleneck summary.
"""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from stall import BottleneckProfiler, BottleneckProfilerConfig, BottleneckType

torch.manual_seed(0)
data_loader = DataLoader(TensorDataset(torch.randn(4096, 128), torch.randint(0, 10, (4096,))),
                         batch_size=64, shuffle=True)
model = nn.Sequential(nn.Linear(128, 256), nn.ReLU(), nn.Linear(256, 10))
input_data = torch.randn(512, 128)

profiler = BottleneckProfiler(BottleneckProfilerConfig())
profiler.start_profiling_session("context_manager_usage")

# --- the document's example ---------------------------------------------
# Profile specific operations
with profiler.profile_operation("data_loading", BottleneckType.DATA_LOADING):
    for batch in data_loader:
        # Your data loading code
        pass

with profiler.profile_operation("model_inference", BottleneckType.CPU_COMPUTATION):
    output = model(input_data)
# --------------------------------------------------------------------------

session = profiler.stop_profiling_session()
print("output:", tuple(output.shape))
print("summary:", profiler.get_bottleneck_summary())
