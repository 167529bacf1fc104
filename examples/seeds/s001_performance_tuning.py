"""Seed 001 ("Code Profiling and Bottleneck Detection System"), section
"Troubleshooting / Performance Tuning".

Reproduces the iterative optimization example exactly as the document
writes it: five iterations of profile_current_configuration(),
get_optimization_suggestions(), apply_optimizations(optimizations) and
measure_improvement(), printing the improvement in percent.

Fills in `profiler`: a BottleneckProfiler with auto_optimize=True whose
session profiled a training loop fed by a DataLoader with a slow collate
function (2 ms a batch), so there is something to tune. Shows: each
iteration's improvement.

The loader is the one the session iterated (stall notes each DataLoader
iterated during a BottleneckProfiler session); the first iteration applies
the measured worker count in place, later ones measure noise around 0%.
"""

import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.dataloader import default_collate

from stall import BottleneckProfiler, BottleneckProfilerConfig, BottleneckType

torch.manual_seed(0)


def slow_collate(batch):
    time.sleep(0.002)
    return default_collate(batch)


data_loader = DataLoader(TensorDataset(torch.randn(2048, 64), torch.randint(0, 10, (2048,))),
                         batch_size=32, shuffle=True, collate_fn=slow_collate)
model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
criterion = nn.CrossEntropyLoss()
sgd = torch.optim.SGD(model.parameters(), lr=0.05)

profiler = BottleneckProfiler(BottleneckProfilerConfig(auto_optimize=True))
profiler.start_profiling_session("performance_tuning")
with profiler.profile_operation("epoch_data_loading", BottleneckType.DATA_LOADING):
    for x, y in data_loader:
        with profiler.profile_operation("train_step", BottleneckType.CPU_COMPUTATION):
            sgd.zero_grad()
            criterion(model(x), y).backward()
            sgd.step()

# --- the document's example ---------------------------------------------
# Iterative optimization
for iteration in range(5):
    # Profile current configuration
    profile = profiler.profile_current_configuration()
    
    # Apply optimizations based on bottlenecks
    optimizations = profiler.get_optimization_suggestions()
    
    # Implement suggested changes
    profiler.apply_optimizations(optimizations)
    
    # Measure improvement
    improvement = profiler.measure_improvement()
    print(f"Iteration {iteration}: {improvement:.2f}% improvement")
# --------------------------------------------------------------------------

profiler.stop_profiling_session()
print("summary:", profiler.get_bottleneck_summary())
