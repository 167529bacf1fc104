"""stall's DataLoader tuner against what a user has: the newcomer's loader,
and an exhaustive grid search over the same ranges.

The pipeline is the bundled example's dataset (examples/train/
misconfigured_loader.py: per-sample CPU decoding + a 0.3 ms storage wait),
loaded as a newcomer does: DataLoader(dataset, batch_size=8, shuffle=True),
num_workers=0. Ranges: batch_size 8/16/32/64/128 x num_workers 0/1/2/4/8
(25 configurations), each measured over the same window.

1. Tuned vs newcomer: CodeOptimizer(DataLoadingProfiler(...))
   .optimize_data_loading(newcomer) gives the tuned loader; both are then
   timed over whole epochs, alternating (newcomer, tuned, newcomer, ...);
   the figure is the median of the per-pair ratios of samples/s.
2. Model vs grid, in the same run, alternating which goes first:
   profile_configuration_range(strategy="grid") and (strategy="model");
   search time ratio, and the throughput of the model's pick against the
   grid's pick, re-measured head to head (alternating, median of pairs),
   so that neither side's number is the luckiest of many noisy ones.

    PYTHONPATH=build/python /usr/bin/python3 bench/bench_tuner.py [REPS] [WINDOW_S]
"""
import os
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "examples", "train"))

import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

import stall  # noqa: E402
from stall import tuner  # noqa: E402
from misconfigured_loader import DecodedImages  # noqa: E402

SIZES = [8, 16, 32, 64, 128]
WORKERS = [0, 1, 2, 4, 8]


def epoch_rate(loader, epochs=1):
    """samples/s over whole epochs (worker start-up included, as training sees it)."""
    n = 0
    t0 = time.perf_counter()
    for _ in range(epochs):
        for x, _y in loader:
            n += x.shape[0]
    return n / (time.perf_counter() - t0)


def config(window):
    return stall.DataLoadingProfilerConfig(batch_size_range=SIZES, worker_range=WORKERS, save_profiles=False,
                                           profiling_duration=max(1, int(window * 2 * len(SIZES) * len(WORKERS))))


def head_to_head(ds, a, b, window, pairs=3):
    """Median over alternating pairs of rate(a)/rate(b), each measured by the tuner's measure()."""
    make = tuner.loader_factory(ds)
    ratios = []
    for _ in range(pairs):
        ra = tuner.measure(make, tuner.LoaderConfiguration(a.batch_size, a.num_workers, prefetch_factor=a.prefetch_factor),
                           window * 2).samples_per_second
        rb = tuner.measure(make, tuner.LoaderConfiguration(b.batch_size, b.num_workers, prefetch_factor=b.prefetch_factor),
                           window * 2).samples_per_second
        ratios.append(ra / rb)
    return statistics.median(ratios), ratios


def main():
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    window = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
    torch.manual_seed(0)
    torch.set_num_threads(1)
    ds = DecodedImages(4096, 12, 0.0003)
    print(f"machine: {tuner.usable_cores():g} usable cores; dataset {len(ds)} samples; window {window:g} s; "
          f"space {len(SIZES)}x{len(WORKERS)} = {len(SIZES) * len(WORKERS)} configurations")

    # 1. tuned vs newcomer
    newcomer = DataLoader(ds, batch_size=8, shuffle=True)
    opt = stall.CodeOptimizer(stall.DataLoadingProfiler(config(window)))
    tuned = opt.optimize_data_loading(newcomer, measure_seconds=window, progress=False)
    e = opt.get_optimization_report()["optimizations"][0]
    print(f"\n1. optimize_data_loading: {e['changes']} in {e['search_seconds']:.1f} s "
          f"({e['configurations_measured']} of {e['grid_size']} measured); search's own figure {e['measured_speedup']:.2f}x")
    ratios = []
    for i in range(reps):
        a = epoch_rate(newcomer)
        b = epoch_rate(tuned)
        ratios.append(b / a)
        print(f"   pair {i + 1}: newcomer {a:8.0f} samples/s   tuned {b:8.0f} samples/s   {b / a:.2f}x")
    print(f"   tuned / newcomer, median of {reps} pairs: {statistics.median(ratios):.2f}x  (goal >= 2x)")

    # 2. model vs grid
    print("\n2. strategy model vs grid over the same ranges")
    rows = []
    for i in range(reps):
        out = {}
        for strat in (("grid", "model") if i % 2 == 0 else ("model", "grid")):
            p = stall.DataLoadingProfiler(config(window))
            t0 = time.perf_counter()
            p.profile_configuration_range(ds, strategy=strat, measure_seconds=window, progress=False)
            out[strat] = (time.perf_counter() - t0, p.get_optimal_configuration(), p._tuning)
        tg, og, rg = out["grid"]
        tm, om, rm = out["model"]
        in_grid = next((c.samples_per_second for c in rg.configurations
                        if (c.batch_size, c.num_workers) == (om.batch_size, om.num_workers) and c.measured), None)
        h2h, pr = head_to_head(ds, om, og, window)
        rows.append((tm / tg, h2h, in_grid / og.throughput if in_grid else None))
        print(f"   rep {i + 1}: grid {tg:5.1f} s -> bs={og.batch_size} w={og.num_workers} {og.throughput:6.0f}/s | "
              f"model {tm:5.1f} s ({len(rm.measured())} measured) -> bs={om.batch_size} w={om.num_workers} "
              f"{om.throughput:6.0f}/s | time {tm / tg:.0%} | model pick / grid pick head to head "
              f"{h2h:.1%} ({', '.join(f'{r:.2f}' for r in pr)}); in the grid's own run "
              f"{(in_grid / og.throughput) if in_grid else float('nan'):.1%}")
    print(f"   median: model time / grid time {statistics.median(r[0] for r in rows):.0%} (goal <= 30%); "
          f"model pick / grid pick {statistics.median(r[1] for r in rows):.1%} (goal >= 95%)")


if __name__ == "__main__":
    main()
