"""Seed 001 ("Code Profiling and Bottleneck Detection System"), section
"Advanced Features / Session Management".

Reproduces the example exactly as the document writes it: two profiling
sessions started ("training_phase_1", "training_phase_2"), each summarized
with get_session_summary() to compare them.

Fills in what the document leaves undefined: `profiler` is a
BottleneckProfiler; each phase does real work after its session starts
(phase 1: MLP training steps; phase 2: a DataLoader loop), and the profiler's
session is stopped at the end. Shows: both session summaries.
"""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from stall import BottleneckProfiler, BottleneckProfilerConfig, BottleneckType

torch.manual_seed(0)
profiler = BottleneckProfiler(BottleneckProfilerConfig())
model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
criterion = nn.CrossEntropyLoss()
sgd = torch.optim.SGD(model.parameters(), lr=0.05)
data_loader = DataLoader(TensorDataset(torch.randn(2048, 64), torch.randint(0, 10, (2048,))),
                         batch_size=32)


def phase_1():
    with profiler.profile_operation("train_steps", BottleneckType.CPU_COMPUTATION):
        for _ in range(100):
            sgd.zero_grad()
            criterion(model(torch.randn(64, 64)), torch.randint(0, 10, (64,))).backward()
            sgd.step()


def phase_2():
    with profiler.profile_operation("data_loading", BottleneckType.DATA_LOADING):
        for _ in data_loader:
            pass


# --- the document's example ---------------------------------------------
# Start multiple profiling sessions
session1 = profiler.start_profiling_session("training_phase_1")
phase_1()
session2 = profiler.start_profiling_session("training_phase_2")
phase_2()

# Compare sessions
session1_summary = profiler.get_session_summary(session1)
session2_summary = profiler.get_session_summary(session2)
# --------------------------------------------------------------------------

profiler.stop_profiling_session()
print("session ids:", session1, session2)
print("training_phase_1:", session1_summary)
print("training_phase_2:", session2_summary)
