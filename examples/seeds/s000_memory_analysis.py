"""Seed 000 ("Advanced Code Profiling and Optimization System"), section
"Troubleshooting / Debugging Tools / 3. Memory Analysis".

Reproduces the example exactly as the document writes it: if the config
enables tracemalloc, print the current and peak traced memory in GB, then
"the top memory allocations". Note: the document's
`top_stats = tracemalloc.get_traced_memory()` returns the (current, peak)
pair again, so its loop prints those two numbers; the call is kept as
written. The real top allocations (tracemalloc.take_snapshot()) are printed
after the example.

Fills in `config` (a ProfilingConfig with enable_tracemalloc=True) and the
profiler that traces memory while the example runs: an AdvancedProfiler with
that config, started around allocations of Python objects and tensors.
"""

import tracemalloc

import torch

from stall import AdvancedProfiler, ProfilingConfig, ProfilingLevel

config = ProfilingConfig(enabled=True, level=ProfilingLevel.DETAILED, enable_tracemalloc=True)
profiler = AdvancedProfiler(config)
profiler.start_profiling()
rows = [list(range(1000)) for _ in range(200)]          # Python allocations
tensors = [torch.randn(256, 256) for _ in range(8)]

# --- the document's example ---------------------------------------------
# Detailed memory analysis
if config.enable_tracemalloc:
    current, peak = tracemalloc.get_traced_memory()
    print(f"Current memory: {current / 1024**3:.2f} GB")
    print(f"Peak memory: {peak / 1024**3:.2f} GB")
    
    # Get top memory allocations
    top_stats = tracemalloc.get_traced_memory()
    for stat in top_stats[:10]:
        print(stat)
# --------------------------------------------------------------------------

print("tracemalloc tracing during profiling:", tracemalloc.is_tracing())
if tracemalloc.is_tracing():
    for stat in tracemalloc.take_snapshot().statistics("lineno")[:5]:
        print("top allocation:", stat)
results = profiler.stop_profiling()
print("bottlenecks:", results['bottlenecks'])
