"""Seed 001 ("Code Profiling and Bottleneck Detection System"), section
"Examples / Complete Training Loop Profiling".

Reproduces the example exactly as the document writes it: a
COMPREHENSIVE BottleneckProfilerConfig with real-time monitoring, a session
"complete_training", per epoch an operation around the data loading with,
per batch, operations for preprocessing, model inference, loss computation
and the backward pass, then in `finally` the session stopped, the
bottleneck count printed and the optimization report generated (under
"bottleneck_profiles" in the current directory).

Fills in what the document leaves undefined: `num_epochs` = 2;
`data_loader` a DataLoader over a TensorDataset of 2048 random 784-feature
samples with labels, batch 64; `preprocess_data` standardizes a batch;
`model` a 784-128-10 MLP; `criterion` CrossEntropyLoss; `optimizer` torch SGD
(the document's loop never zeroes the gradients; the small learning rate
keeps that stable).

generate_optimization_report() writes the session's page under the config's
profile_output_dir.
"""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from stall import BottleneckProfiler, BottleneckProfilerConfig, BottleneckType, ProfilingLevel

torch.manual_seed(0)
num_epochs = 2
data_loader = DataLoader(TensorDataset(torch.randn(2048, 784), torch.randint(0, 10, (2048,))),
                         batch_size=64, shuffle=True)
model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.001)


def preprocess_data(x):
    return (x - x.mean(dim=1, keepdim=True)) / (x.std(dim=1, keepdim=True) + 1e-6)


# --- the document's example ---------------------------------------------
# Setup profiler
config = BottleneckProfilerConfig(
    profiling_level=ProfilingLevel.COMPREHENSIVE,
    enable_real_time_monitoring=True
)
profiler = BottleneckProfiler(config)

# Start profiling session
session_id = profiler.start_profiling_session("complete_training")

try:
    for epoch in range(num_epochs):
        # Profile data loading
        with profiler.profile_operation(f"epoch_{epoch}_data_loading", 
                                      BottleneckType.DATA_LOADING):
            for batch_idx, (data, target) in enumerate(data_loader):
                # Profile preprocessing
                with profiler.profile_operation("preprocessing", 
                                              BottleneckType.PREPROCESSING):
                    data = preprocess_data(data)
                
                # Profile model inference
                with profiler.profile_operation("model_inference", 
                                              BottleneckType.CPU_COMPUTATION):
                    output = model(data)
                
                # Profile loss computation
                with profiler.profile_operation("loss_computation", 
                                              BottleneckType.CPU_COMPUTATION):
                    loss = criterion(output, target)
                
                # Profile backward pass
                with profiler.profile_operation("backward_pass", 
                                              BottleneckType.CPU_COMPUTATION):
                    loss.backward()
                    optimizer.step()

finally:
    # Stop profiling and generate report
    session = profiler.stop_profiling_session()
    summary = profiler.get_bottleneck_summary()
    
    print(f"Training completed with {len(summary.get('bottlenecks', []))} bottlenecks detected")
    
    # Generate comprehensive report
    profiler.generate_optimization_report()
# --------------------------------------------------------------------------

print("last loss:", round(loss.item(), 4))
print("summary:", summary)
