"""stall.tuner: the DataLoader configuration search behind
DataLoadingProfiler.profile_configuration_range and CodeOptimizer.

A configuration (batch_size, num_workers, pin_memory, persistent_workers,
prefetch_factor) is measured by building that DataLoader over the dataset
(the caller's sampler and collate_fn kept) and iterating it: time to the
first batch (worker start-up included), then the steady rate over a window
(samples/s, batches/s, the spread of batch intervals), the CPU the process
tree used (this process's CPU time plus its joined workers'), its peak
memory (main RSS + workers' PSS from stall's C sampler) and the main
thread's CPU per batch (what receiving a worker's batch costs the loop).
When CUDA is there, each batch is copied to the GPU as training would do,
so pin_memory is measured where it matters.

Two strategies:
- grid: every configuration of the space, in order.
- model (default): the throughput model of the diagnosis
  (stall_loader_model_batch_s in C: producer time per batch, its CPU share,
  spare cores, the loop's hand-over cost) is fitted from a few cheap
  measurements: batches made in the loop itself (num_workers=0) at the
  smallest and largest batch size give the producer cost per sample and per
  batch and its CPU share. Then, repeatedly, the unmeasured configuration the
  model predicts fastest is measured and the model recalibrated on it (the
  hand-over cost per sample, and the ratio measured/predicted for worker
  configurations), until no unmeasured configuration is predicted to beat
  the best measured one by MARGIN: more measurements cannot help. Before
  stopping, the best's next worker count up is measured once: the model's
  error is largest just past what it was calibrated on. At most a quarter
  of the grid (+1) is measured.

Among configurations within MARGIN of the best, the one with fewer workers
and then the smaller batch is chosen: workers cost memory and start-up, and
the batch size is a training hyper-parameter. persistent_workers is set
with workers (it saves the measured start-up on every later epoch).
prefetch_factor stays at torch's 2: a deeper queue only absorbs a training
step's jitter, and the search has no training step to show it; the batch
intervals' coefficient of variation is reported (batches from several
workers arrive in bursts, so it is high for any worker count above 1).
"""

import dataclasses as _dc
import datetime as _datetime
import math as _math
import os as _os
import sys as _sys
import time as _time
import warnings as _warnings
import weakref as _weakref
from typing import List, Optional

from . import _engine, _native

__all__ = ["LoaderConfiguration", "OptimalConfiguration", "TuningResult", "search", "measure", "usable_cores",
           "loader_settings", "STRATEGIES"]

STRATEGIES = ("model", "grid")
MARGIN = 0.03        # a configuration must be predicted this much better to be worth measuring
MIN_BATCHES = 4      # steady-state batches per measurement, at least
_SCHEMA = "stall.tuning/1"


@_dc.dataclass
class LoaderConfiguration:
    """One point of the search space and what was measured (or predicted)
    for it. Rates are per second of steady state (after the first batch);
    unknown values are None."""

    batch_size: int
    num_workers: int
    pin_memory: bool = False
    persistent_workers: bool = False
    prefetch_factor: Optional[int] = None
    measured: bool = False
    samples_per_second: Optional[float] = None
    batches_per_second: Optional[float] = None
    time_to_first_batch_s: Optional[float] = None
    peak_memory_bytes: Optional[int] = None
    cpu_cores: Optional[float] = None
    main_cpu_s_per_batch: Optional[float] = None
    batch_time_cv: Optional[float] = None
    predicted_samples_per_second: Optional[float] = None
    measure_seconds: Optional[float] = None
    batches: int = 0
    error: Optional[str] = None
    chosen: bool = False
    order: Optional[int] = None

    @property
    def throughput(self):
        """samples/s (the seeds' name)."""
        return self.samples_per_second

    def key(self):
        return (self.batch_size, self.num_workers, self.pin_memory, self.prefetch_factor)

    def to_dict(self):
        return _dc.asdict(self)


@_dc.dataclass
class OptimalConfiguration:
    """The configuration the search chose (get_optimal_configuration)."""

    batch_size: int
    num_workers: int
    pin_memory: bool
    persistent_workers: bool
    prefetch_factor: Optional[int]
    throughput: Optional[float]           # samples/s measured
    time_to_first_batch_s: Optional[float] = None
    peak_memory_bytes: Optional[int] = None
    speedup_vs_baseline: Optional[float] = None

    def loader_kwargs(self):
        """The DataLoader keyword arguments of this configuration."""
        return loader_settings(self)

    def to_dict(self):
        return _dc.asdict(self)


def loader_settings(c):
    kw = {"batch_size": c.batch_size, "num_workers": c.num_workers, "pin_memory": c.pin_memory}
    if c.num_workers > 0:
        kw["persistent_workers"] = c.persistent_workers
        kw["prefetch_factor"] = c.prefetch_factor if c.prefetch_factor is not None else 2
    return kw


@_dc.dataclass
class TuningResult:
    strategy: str
    configurations: List[LoaderConfiguration]
    chosen: Optional[LoaderConfiguration]
    grid_size: int
    search_seconds: float
    stop_reason: str
    cores: float
    cuda: bool
    dataset: dict
    model: Optional[dict] = None
    baseline: Optional[LoaderConfiguration] = None

    def measured(self):
        return sorted((c for c in self.configurations if c.measured), key=lambda c: c.order)

    def optimal(self):
        c = self.chosen
        if c is None:
            return None
        sp = None
        if self.baseline is not None and self.baseline.samples_per_second and c.samples_per_second:
            sp = c.samples_per_second / self.baseline.samples_per_second
        return OptimalConfiguration(c.batch_size, c.num_workers, c.pin_memory, c.persistent_workers,
                                    c.prefetch_factor, c.samples_per_second, c.time_to_first_batch_s,
                                    c.peak_memory_bytes, sp)

    def to_doc(self):
        """The stall.tuning/1 document the tuning page renders."""
        opt = self.optimal()
        chosen = None
        if opt is not None:
            chosen = {k: getattr(opt, k) for k in ("batch_size", "num_workers", "pin_memory", "persistent_workers",
                                                   "prefetch_factor")}
            chosen["samples_per_second"] = opt.throughput
            chosen["speedup_vs_baseline"] = opt.speedup_vs_baseline
        base = None
        if self.baseline is not None:
            b = self.baseline
            base = {"batch_size": b.batch_size, "num_workers": b.num_workers, "pin_memory": b.pin_memory,
                    "persistent_workers": b.persistent_workers, "prefetch_factor": b.prefetch_factor,
                    "samples_per_second": b.samples_per_second}
        return {
            "schema": _SCHEMA,
            "created": _datetime.datetime.now(_datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "dataset": self.dataset, "strategy": self.strategy, "cores": self.cores, "cuda": self.cuda,
            "search_seconds": self.search_seconds, "grid_size": self.grid_size,
            "measured": len(self.measured()), "stop_reason": self.stop_reason, "baseline": base,
            "chosen": chosen, "model": self.model,
            "configurations": [_finite(c.to_dict()) for c in self.configurations],
        }


def _finite(d):
    return {k: (None if isinstance(v, float) and not _math.isfinite(v) else v) for k, v in d.items()}


# ---------------------------------------------------------------- machine

def usable_cores():
    """CPUs this process may run on, as stall's C sampler reads them
    (CPU count, cgroup v1/v2 quota, affinity); the CPU count when the
    sampler cannot tell."""
    try:
        eng = _engine.engine()
        s = eng.latest()
        if s is None:  # before the sampler's first sample
            eng.sample_now()
            s = eng.latest()
        n = s.get("usable_cores") if s else None
    except Exception:
        n = None
    return max(1.0, float(n)) if n else float(_os.cpu_count() or 1)


def _cuda():
    from .profilers import _torch_cuda  # (profilers imports this module)
    return _torch_cuda() is not None


# ---------------------------------------------------------------- measuring

def _batch_len(b, default):
    """Samples in a batch: the first dimension of its first tensor."""
    for _ in range(4):
        if isinstance(b, dict):
            b = next(iter(b.values()), None)
        elif isinstance(b, (list, tuple)):
            b = b[0] if b else None
        else:
            break
    shape = getattr(b, "shape", None)
    if shape is not None and len(shape) > 0:
        return int(shape[0])
    return default


def _to_device(b, dev, non_blocking):
    if hasattr(b, "to") and hasattr(b, "is_cuda"):
        return b.to(dev, non_blocking=non_blocking)
    if isinstance(b, (list, tuple)):
        return [_to_device(x, dev, non_blocking) for x in b]
    if isinstance(b, dict):
        return {k: _to_device(v, dev, non_blocking) for k, v in b.items()}
    return b


def _peak_memory(eng, t0, t1):
    """Peak of main RSS + workers' PSS (RSS where PSS is unknown) over the
    samples in [t0, t1], or None."""
    try:
        main = {p[0]: p[4] for p in eng.series("main_rss_bytes") if t0 <= p[0] <= t1 and p[4] is not None}
        pss = {p[0]: p[4] for p in eng.series("workers_pss_bytes") if t0 <= p[0] <= t1 and p[4] is not None}
        rss = {p[0]: p[4] for p in eng.series("workers_rss_bytes") if t0 <= p[0] <= t1 and p[4] is not None}
    except Exception:
        return None
    if not main:
        return None
    return int(max(v + pss.get(t, rss.get(t, 0.0)) for t, v in main.items()))


def measure(make_loader, cfg, window_s, max_s=None, cuda=False):
    """Measures configuration cfg (a LoaderConfiguration, filled in place):
    make_loader(cfg) builds the DataLoader; it is iterated (epoch after
    epoch, workers kept between epochs) until window_s of steady state and
    MIN_BATCHES batches after the first, or max_s in all. A failure of the
    loader (a worker that died, an exception in the dataset) is recorded in
    cfg.error, not raised; KeyboardInterrupt is."""
    max_s = max_s if max_s is not None else max(10.0, 10 * window_s)
    eng = None
    try:
        eng = _engine.engine()
        eng.sample_now()
    except Exception:
        eng = None
    now = _time.perf_counter
    t0_ns = _native.now_ns()
    ch0 = _os.times()
    cpu0 = _time.process_time()
    t0 = now()
    loader = it = None
    intervals = []
    samples = batches = 0
    first = last = None
    main_cpu0 = None
    dev = "cuda" if cuda else None
    # steady state starts once the batches queued during start-up are taken
    skip = 1 + (cfg.num_workers * (cfg.prefetch_factor or 2) if cfg.num_workers > 0 else 0)
    # torch warns about more workers than cores: the search tries that on purpose
    with _warnings.catch_warnings():
        _warnings.simplefilter("ignore", UserWarning)
        try:
            loader = make_loader(cfg)
            it = iter(loader)
            epochs = 0
            while True:
                try:
                    b = next(it)
                except StopIteration:
                    epochs += 1
                    if first is None or epochs >= 1000:
                        break
                    it = iter(loader)
                    continue
                if dev is not None:
                    b = _to_device(b, dev, cfg.pin_memory)
                t = now()
                if first is None:
                    cfg.time_to_first_batch_s = t - t0
                if skip > 0:  # the first batch, then those the workers queued during start-up
                    skip -= 1
                    first = t
                    main_cpu0 = _time.thread_time()
                else:
                    batches += 1
                    samples += _batch_len(b, cfg.batch_size)
                    intervals.append(t - last)
                last = t
                if (t - first >= window_s and batches >= MIN_BATCHES) or t - t0 >= max_s:
                    break
            if dev is not None:
                import torch
                torch.cuda.synchronize()
            if first is None:
                cfg.error = "the loader gave no batch (empty dataset or sampler?)"
            main_cpu1 = _time.thread_time()
            t_last = last
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # a dying worker raises RuntimeError; keep measuring the others
            lines = [x for x in str(e).strip().splitlines() if x.strip()] or [""]
            # a worker's error carries its traceback: keep the first line and the original error
            cfg.error = f"{type(e).__name__}: {lines[0]}" + (f" ... {lines[-1].strip()}" if len(lines) > 1 else "")
            cfg.error = cfg.error[:300]
            main_cpu1 = None
            t_last = last
        finally:
            if eng is not None:
                try:
                    eng.sample_now()
                except Exception:
                    pass
            t1_ns = _native.now_ns()
            del it
            try:
                shut = getattr(loader, "_iterator", None)
                if shut is not None and hasattr(shut, "_shutdown_workers"):
                    shut._shutdown_workers()
            except Exception:
                pass
            del loader
    t_end = now()
    ch1 = _os.times()
    cpu = (_time.process_time() - cpu0) + (ch1.children_user - ch0.children_user) + \
        (ch1.children_system - ch0.children_system)
    cfg.measured = True
    cfg.measure_seconds = t_end - t0
    cfg.batches = batches
    cfg.cpu_cores = cpu / cfg.measure_seconds if cfg.measure_seconds > 0 else None
    if batches and first is not None and t_last is not None and t_last > first:
        steady = t_last - first
        cfg.samples_per_second = samples / steady
        cfg.batches_per_second = batches / steady
        mean = steady / batches
        if len(intervals) >= 2 and mean > 0:
            var = sum((x - mean) ** 2 for x in intervals) / (len(intervals) - 1)
            cfg.batch_time_cv = _math.sqrt(var) / mean
        if main_cpu0 is not None and main_cpu1 is not None:
            cfg.main_cpu_s_per_batch = (main_cpu1 - main_cpu0) / batches
    elif cfg.error is None and first is not None:
        cfg.error = "the loader gave only one batch: too few samples to measure a rate"
    if eng is not None:
        cfg.peak_memory_bytes = _peak_memory(eng, t0_ns, t1_ns)
    return cfg


# ---------------------------------------------------------------- the model

def _line(pts):
    """(intercept, slope) >= 0 of a least-squares line through (x, y)
    points; one x only: all in the intercept. A negative slope (noise: y
    does not grow with x) gives (mean y, 0); a negative intercept, the line
    through the origin."""
    xs = {x for x, _ in pts}
    n = len(pts)
    my = sum(y for _, y in pts) / n
    if len(xs) == 1:
        return max(0.0, my), 0.0
    mx = sum(x for x, _ in pts) / n
    a = sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)
    if a <= 0:
        return max(0.0, my), 0.0
    c0 = my - a * mx
    if c0 < 0:
        return 0.0, sum(x * y for x, y in pts) / sum(x * x for x, _ in pts)
    return c0, a


class _Model:
    """The diagnosis' throughput model fitted to the measurements."""

    def __init__(self, cores):
        self.cores = cores
        self.per_sample_s = None   # producer cost: per_batch_s + per_sample_s * batch_size
        self.per_batch_s = None
        self.cpu_frac = 1.0
        self.handover_per_batch_s = 0.0
        self.handover_per_sample_s = 0.0
        self.ratio = 1.0           # measured/predicted for worker configurations

    def fit_producer(self, loop_runs):
        """Least squares of seconds per batch over batch size for batches
        made in the loop (num_workers=0)."""
        pts = [(c.batch_size, 1.0 / c.batches_per_second, c) for c in loop_runs if c.batches_per_second]
        if not pts:
            return False
        self.per_batch_s, self.per_sample_s = _line([(b, t) for b, t, _ in pts])
        fr = [c.cpu_cores for _, _, c in pts if c.cpu_cores is not None]
        if fr:
            self.cpu_frac = min(1.0, max(0.02, sum(fr) / len(fr)))
        return True

    def calibrate(self, worker_runs):
        ok = [c for c in worker_runs if c.samples_per_second and c.main_cpu_s_per_batch is not None]
        pts = [(c.batch_size, c.main_cpu_s_per_batch) for c in ok]
        if pts:  # the loop's CPU per batch received: per batch + per sample
            self.handover_per_batch_s, self.handover_per_sample_s = _line(pts)
        ratios = []
        for c in ok:
            p = self.predict(c, calibrated=False)
            if p:
                ratios.append(c.samples_per_second / p)
        if ratios:
            ratios.sort()
            self.ratio = min(1.5, max(0.5, ratios[len(ratios) // 2]))

    def predict(self, c, calibrated=True):
        """samples/s the model predicts for configuration c, or None."""
        if self.per_sample_s is None:
            return None
        producer = self.per_batch_s + self.per_sample_s * c.batch_size
        h = self.handover_per_batch_s + self.handover_per_sample_s * c.batch_size if c.num_workers > 0 else 0.0
        # the loop's own share of a core is not available to the workers
        spare = self.cores
        t = None
        for _ in range(3):
            t = _native.loader_model_batch_s(c.num_workers, consumer_s=0.0, producer_s=producer,
                                             producer_cpu_frac=self.cpu_frac, cores=max(0.5, spare),
                                             handover_s=h)
            spare = self.cores - (min(1.0, h / t) if t > 0 and c.num_workers > 0 else 0.0)
        if not t or t <= 0:
            return None
        rate = c.batch_size / t
        if calibrated and c.num_workers > 0:
            rate *= self.ratio
        return rate

    def to_dict(self):
        return {"per_sample_s": self.per_sample_s, "per_batch_s": self.per_batch_s, "cpu_frac": self.cpu_frac,
                "handover_s_per_batch": self.handover_per_batch_s,
                "handover_s_per_sample": self.handover_per_sample_s, "cores": self.cores,
                "workers_measured_over_predicted": self.ratio}


# ---------------------------------------------------------------- the search

class _Progress:
    """One line on a terminal's stderr, redrawn per configuration."""

    def __init__(self, enabled, total):
        self.on = enabled
        self.total = total

    def show(self, k, c, note=""):
        if not self.on:
            return
        width = 24
        done = int(width * min(k, self.total) / self.total) if self.total else width
        rate = f"{c.samples_per_second:,.0f} samples/s" if c.samples_per_second else (c.error or "no rate")[:40]
        line = (f"\rstall tune [{'#' * done}{'.' * (width - done)}] {k}/{self.total}{note} "
                f"batch_size={c.batch_size} num_workers={c.num_workers}: {rate}")
        _sys.stderr.write(line[:160].ljust(100))
        _sys.stderr.flush()

    def end(self):
        if self.on:
            _sys.stderr.write("\n")
            _sys.stderr.flush()


def _better(a, b):
    """True when configuration a should be preferred to b: faster by more
    than MARGIN, or as fast with fewer workers, then a smaller batch."""
    ra, rb = a.samples_per_second or 0.0, b.samples_per_second or 0.0
    if ra > rb * (1 + MARGIN):
        return True
    if rb > ra * (1 + MARGIN):
        return False
    return (a.num_workers, a.batch_size, a.pin_memory) < (b.num_workers, b.batch_size, b.pin_memory)


def _best(confs):
    best = None
    for c in confs:
        if c.measured and c.samples_per_second and (best is None or _better(c, best)):
            best = c
    return best


def _next_up(space, c):
    """The unmeasured configuration of space with c's settings and the next
    larger worker count, or None."""
    ups = [x for x in space if (x.batch_size, x.pin_memory) == (c.batch_size, c.pin_memory)
           and x.num_workers > c.num_workers]
    if not ups:
        return None
    up = min(ups, key=lambda x: x.num_workers)
    return None if up.measured else up


def build_space(batch_sizes, workers, cuda):
    pins = (False, True) if cuda else (False,)
    out = []
    for b in batch_sizes:
        for w in workers:
            for p in pins:
                out.append(LoaderConfiguration(b, w, pin_memory=p, persistent_workers=w > 0,
                                               prefetch_factor=2 if w > 0 else None))
    return out


def search(make_loader, batch_sizes, workers, strategy="model", window_s=1.0, budget_s=None, progress=None,
           dataset_info=None, baseline=None):
    """Runs the search; returns a TuningResult. make_loader(cfg) builds the
    DataLoader of a configuration. budget_s (None: no limit) bounds the whole
    search: past it, no new configuration is started."""
    if strategy not in STRATEGIES:
        raise ValueError(f"profile_configuration_range(): strategy must be one of {STRATEGIES}, got {strategy!r}")
    cuda = _cuda()
    cores = usable_cores()
    space = build_space(sorted(batch_sizes), sorted(workers), cuda)
    grid_size = len(space)
    if progress is None:
        progress = _sys.stderr.isatty()
    t_start = _time.perf_counter()
    order = [0]
    bar = _Progress(progress, len(space) if strategy == "grid" else max(3, (len(space) + 3) // 4))

    def run(c, note=""):
        order[0] += 1
        c.order = order[0]
        measure(make_loader, c, window_s, cuda=cuda)
        bar.show(order[0], c, note)
        return c

    def over_budget():
        return budget_s is not None and _time.perf_counter() - t_start >= budget_s

    model = None
    extra = []  # probes outside the space (num_workers=0 when the range lacks it)
    stop = ""
    if strategy == "grid":
        for c in space:
            if over_budget():
                stop = f"time budget of {budget_s:g} s spent after {order[0]} of {len(space)} configurations"
                break
            run(c)
        else:
            stop = "every configuration measured"
    else:
        model = _Model(cores)
        by_key = {c.key(): c for c in space}
        bs = sorted(batch_sizes)
        probes = []
        for b in ([bs[0], bs[-1]] if len(bs) > 1 else bs):
            c = by_key.get((b, 0, False, None))
            if c is None:
                c = LoaderConfiguration(b, 0)
                extra.append(c)
            probes.append(run(c, " (fit)"))
        if not model.fit_producer(probes):
            model = None
            stop = "the loader gave no rate in the loop itself; measured every configuration instead"
            for c in space:
                if not c.measured and not over_budget():
                    run(c)
        else:
            max_runs = max(len(probes) + 2, (len(space) + 3) // 4 + 1)
            checked = set()
            while True:
                best = _best(space + extra)
                cand = [c for c in space if not c.measured]
                for c in cand:  # a measured one keeps the prediction it was chosen on
                    c.predicted_samples_per_second = model.predict(c)
                cand = [c for c in cand if c.predicted_samples_per_second]
                if not cand:
                    stop = "every configuration measured"
                    break
                nxt = None
                for c in cand:
                    if nxt is None or c.predicted_samples_per_second > nxt.predicted_samples_per_second * (1 + MARGIN) \
                            or (c.predicted_samples_per_second >= nxt.predicted_samples_per_second / (1 + MARGIN)
                                and (c.num_workers, c.batch_size) < (nxt.num_workers, nxt.batch_size)):
                        nxt = c
                if best is not None and nxt.predicted_samples_per_second < best.samples_per_second * (1 + MARGIN):
                    # the model is calibrated on what was measured; its error is
                    # largest just past that, so the best's next worker count up
                    # is measured once before stopping
                    up = _next_up(space, best)
                    if up is not None and best.key() not in checked and order[0] < max_runs and not over_budget():
                        checked.add(best.key())
                        run(up, " (check)")
                        model.calibrate([c for c in space + extra if c.measured and c.num_workers > 0])
                        continue
                    stop = (f"no unmeasured configuration is predicted to beat the best measured one by "
                            f"{MARGIN:.0%} or more")
                    break
                if order[0] >= max_runs:
                    stop = f"measurement limit ({max_runs}) reached"
                    break
                if over_budget():
                    stop = f"time budget of {budget_s:g} s spent"
                    break
                run(nxt)
                model.calibrate([c for c in space + extra if c.measured and c.num_workers > 0])
    best = _best(space)
    bar.end()
    if best is not None:
        best.chosen = True
    res = TuningResult(strategy=strategy, configurations=space + extra, chosen=best, grid_size=grid_size,
                       search_seconds=_time.perf_counter() - t_start, stop_reason=stop, cores=cores, cuda=cuda,
                       dataset=dataset_info or {}, model=model.to_dict() if model else None, baseline=baseline)
    return res


def loader_factory(dataset, base=None):
    """make_loader for search(): a DataLoader over dataset with a
    configuration's settings; with base (a DataLoader), its sampler object,
    collate_fn, drop_last, worker_init_fn, generator,
    multiprocessing_context and timeout are kept. A base whose
    batch_sampler is not torch's BatchSampler keeps it (its batch size
    cannot change). Workers persist during a measurement so that epochs
    follow each other without a new start-up."""
    from torch.utils.data import DataLoader, BatchSampler

    common = {}
    fixed_batches = None
    if base is not None:
        common = {"collate_fn": base.collate_fn, "worker_init_fn": base.worker_init_fn, "timeout": base.timeout,
                  "generator": base.generator}
        mc = getattr(base, "multiprocessing_context", None)
        if mc is not None:
            common["multiprocessing_context"] = mc
        bs = base.batch_sampler
        if bs is not None and type(bs) is not BatchSampler:
            fixed_batches = bs
        elif base.batch_size is not None:
            common["drop_last"] = base.drop_last
            common["sampler"] = base.sampler

    def make(c, measuring=True):
        kw = loader_settings(c)
        if c.num_workers > 0 and measuring:
            kw["persistent_workers"] = True
        if fixed_batches is not None:
            kw.pop("batch_size")
            kw["batch_sampler"] = fixed_batches
        return DataLoader(dataset, **common, **kw)

    return make


def dataset_info(dataset):
    try:
        n = len(dataset)
    except Exception:
        n = None
    return {"type": type(dataset).__name__, "length": n}


def check_dataset(dataset, who):
    try:
        from torch.utils.data import IterableDataset
    except ImportError as e:  # pragma: no cover - torch is required for DataLoaders
        raise RuntimeError(f"{who}: needs PyTorch (import torch failed: {e})") from None
    if isinstance(dataset, IterableDataset):
        raise TypeError(f"{who}: dataset is an IterableDataset; the search needs a map-style dataset "
                        "(__getitem__ and __len__): with workers an IterableDataset is copied into each worker "
                        "and would be measured as duplicated data")
    if not (hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")):
        raise TypeError(f"{who}: dataset must be a map-style torch Dataset with __getitem__ and __len__, "
                        f"not {type(dataset).__name__}")
    if len(dataset) == 0:
        raise ValueError(f"{who}: dataset is empty")


def current_configuration(loader):
    """The LoaderConfiguration of an existing DataLoader (not measured)."""
    w = int(loader.num_workers)
    return LoaderConfiguration(int(loader.batch_size) if loader.batch_size is not None else 0, w,
                               pin_memory=bool(loader.pin_memory),
                               persistent_workers=bool(getattr(loader, "persistent_workers", False)),
                               prefetch_factor=getattr(loader, "prefetch_factor", 2) if w > 0 else None)


# DataLoader attributes torch lets a program change after construction
# (they take effect at the loader's next iter()).
_SETTABLE = ("num_workers", "pin_memory", "prefetch_factor")


def apply_in_place(loader, settings):
    """Sets the settings torch allows changing on an existing DataLoader;
    returns (applied {name: (old, new)}, refused {name: why})."""
    applied, refused = {}, {}
    for k, v in settings.items():
        old = getattr(loader, k, None)
        if old == v:
            continue
        if k not in _SETTABLE:
            refused[k] = "DataLoader does not allow changing it after construction (use CodeOptimizer." \
                         "optimize_data_loading for a new loader)"
            continue
        try:
            setattr(loader, k, v)
            applied[k] = (old, v)
        except Exception as e:
            refused[k] = f"{type(e).__name__}: {e}"
    return applied, refused


def worker_candidates(cores, current=0):
    """0, then powers of two up to twice the usable cores (workers that
    wait on storage or the network can use more than one per core), and
    the loader's own count."""
    out, n = {0, int(current)}, 1
    while n <= 2 * cores:
        out.add(n)
        n *= 2
    return sorted(out)


def tune_loader(loader, batch_sizes, workers, strategy, window_s, progress=None, who="optimize_data_loading()"):
    """Measures loader as it is (the baseline), then searches batch_sizes x
    workers over its dataset with its sampler and collate_fn kept. A loader
    with its own batch_sampler keeps its batches (batch_sizes ignored).
    Returns (TuningResult, make_loader)."""
    from torch.utils.data import DataLoader
    if not isinstance(loader, DataLoader):
        raise TypeError(f"{who}: dataloader must be a torch.utils.data.DataLoader, not {type(loader).__name__}")
    check_dataset(loader.dataset, who)
    make = loader_factory(loader.dataset, base=loader)
    cur = current_configuration(loader)
    if loader.batch_size is None:  # a batch_sampler of its own: its batch size stays
        cur.batch_size = int(getattr(loader.batch_sampler, "batch_size", 0) or 1)
        batch_sizes = [cur.batch_size]
    base = measure(make, _dc.replace(cur), window_s, cuda=_cuda())
    res = search(make, sorted(set(batch_sizes)), sorted(set(workers) | {cur.num_workers}), strategy, window_s,
                 progress=progress, dataset_info=dataset_info(loader.dataset), baseline=base)
    return res, make


def changes(loader, c):
    """{setting: [old, new]} between an existing loader and configuration c."""
    cur = current_configuration(loader)
    out = {}
    for k in ("batch_size", "num_workers", "pin_memory", "persistent_workers", "prefetch_factor"):
        old, new = getattr(cur, k), getattr(c, k)
        if k in ("persistent_workers", "prefetch_factor") and c.num_workers == 0:
            continue
        if old != new:
            out[k] = [old, new]
    return out


# ---------------------------------------------------------------- loaders seen

_seen = []  # (weakref to a DataLoader, monotonic ns of its last iter()), most recent last


def _note(loader):
    for i, (r, _) in enumerate(_seen):
        if r() is loader:
            del _seen[i]
            break
    _seen.append((_weakref.ref(loader), _native.now_ns()))
    del _seen[:-8]


def watch_loaders():
    """Makes DataLoader.__iter__ remember (weakly) the last loaders
    iterated, so that a profiler can tune the loader of its session without
    being handed it. Only when torch is imported already; True when
    watching. The wrapper never raises into the caller's loop."""
    if "torch" not in _sys.modules:
        return False
    try:
        from torch.utils.data import DataLoader
    except Exception:
        return False
    orig = DataLoader.__iter__
    if getattr(orig, "_stall_watch", False):
        return True

    def __iter__(self):
        try:
            _note(self)
        except Exception:
            pass
        return orig(self)

    __iter__._stall_watch = True
    __iter__.__wrapped__ = orig
    __iter__.__doc__ = orig.__doc__
    DataLoader.__iter__ = __iter__
    return True


def recent_loader(since_ns=0):
    """The DataLoader iterated last (at or after since_ns), or None."""
    for r, t in reversed(_seen):
        dl = r()
        if dl is not None and t >= since_ns:
            return dl
    return None
