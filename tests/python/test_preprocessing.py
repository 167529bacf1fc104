"""Tests of the preprocessing profiler and optimizer (issue 8):
PreprocessingProfiler.profile_preprocessing_function /
profile_batch_preprocessing / get_optimal_preprocessing_config,
CodeOptimizer.optimize_preprocessing, and every finding type of
stall.preprocessing, each on real small functions and data. Timings are
only compared as ratios with wide margins (the machine is noisy)."""

import concurrent.futures
import inspect
import json
import logging
import pickle
import time

import pytest

torch = pytest.importorskip("torch")

import stall  # noqa: E402
from stall import BottleneckType as BT  # noqa: E402
from stall import preprocessing as P  # noqa: E402


# -- the functions profiled -------------------------------------------------
def loop_standardize(batch):
    """Per-element Python loop: standardises each row (or one item)."""
    single = batch.dim() == 1
    rows = [batch.tolist()] if single else batch.tolist()
    out = []
    for r in rows:
        m = sum(r) / len(r)
        s = (sum((x - m) ** 2 for x in r) / len(r)) ** 0.5 or 1.0
        out.append([(x - m) / s for x in r])
    t = torch.tensor(out)
    return t[0] if single else t


def vec_standardize(batch):
    """The same, vectorised over the batch."""
    m = batch.mean(-1, keepdim=True)
    s = batch.std(-1, unbiased=False, keepdim=True).clamp_min(1e-12)
    return (batch - m) / s


def pairwise_nearest(batch):
    """O(n^2): squared distance of each point to its nearest other point."""
    pts = batch.tolist()
    out = []
    for a in pts:
        best = float("inf")
        for b in pts:
            d = sum((x - y) ** 2 for x, y in zip(a, b))
            if 0.0 < d < best:
                best = d
        out.append(best)
    return torch.tensor(out)


def big_temporaries(batch):
    """Expands each value 1024 times before reducing: a 4 KiB-per-value temporary."""
    t = batch.unsqueeze(-1).expand(-1, -1, 1024).clone()
    return t.sum(-1)


W = torch.randn(512, 512) / 512 ** 0.5


def matmul_chain(batch):
    """CPU-heavy tensor work (native code)."""
    x = batch
    for _ in range(4):
        x = torch.tanh(x @ W)
    return x


def noisy(batch):
    return batch + torch.rand_like(batch)


def scales_in_place(batch):
    return batch.mul_(1.0001)


def item_only(x):
    """Takes one item (1-D) only."""
    if x.dim() != 1:
        raise ValueError("item_only takes one 1-D item")
    return vec_standardize(x)


class Boom(Exception):
    pass


def types_of(result):
    return {f["type"] for f in result["bottlenecks"]}


# -- fixtures ---------------------------------------------------------------
def make(**kw):
    kw.setdefault("save_profiles", False)
    return stall.PreprocessingProfiler(stall.PreprocessingProfilerConfig(**kw))


@pytest.fixture(scope="module")
def rows128():
    g = torch.Generator().manual_seed(1)
    return torch.randn(256, 128, generator=g)


@pytest.fixture(scope="module")
def repeated():
    """40 items, 10 distinct, each 4 times, shuffled: repeat ratio 0.75."""
    g = torch.Generator().manual_seed(2)
    base = torch.randn(10, 256, generator=g)
    return base.repeat(4, 1)[torch.randperm(40, generator=g)]


@pytest.fixture(scope="module")
def loop_batches(rows128):
    return make().profile_batch_preprocessing(loop_standardize, rows128)


@pytest.fixture(scope="module")
def vec_batches(rows128):
    return make().profile_batch_preprocessing(vec_standardize, rows128)


@pytest.fixture(scope="module")
def matmul_profile():
    return make().profile_preprocessing_function(matmul_chain, torch.randn(128, 512), num_iterations=5)


# -- profile_preprocessing_function --------------------------------------------
def test_profile_function_reports_time_cpu_and_memory_per_call_and_item(rows128):
    prof = make()
    r = prof.profile_preprocessing_function(vec_standardize, rows128, num_iterations=10)
    assert r["function"] == "vec_standardize" and r["num_iterations"] == 10 and r["items"] == 256
    assert r["wall_s_per_call"] > 0 and r["cpu_s_per_call"] > 0
    assert r["per_item_s"] == pytest.approx(r["wall_s_per_call"] / 256)
    assert r["items_per_second"] == pytest.approx(256 / r["wall_s_per_call"])
    assert 0.2 < r["cpu_share"] < 4.0            # on-CPU work (process CPU: torch threads count)
    assert r["off_cpu_share"] < 0.5
    assert r["peak_memory_bytes"] is not None and r["peak_memory_bytes"] > 0
    assert r["input_bytes"] == 256 * 128 * 4 and r["output_bytes"] == 256 * 128 * 4
    assert r["tensor_devices"] == ["cpu"]
    assert r["python_events_per_item"] == 0      # vectorised: no Python code per item
    # the span statistics come from the engine: one span per timed call
    assert r["timing"]["count"] == 10
    summ = prof.get_session_summary(r["session_id"])
    assert summ["operations"]["vec_standardize"]["count"] == 10
    json.dumps(r)
    healthy = types_of(r)
    assert not healthy & {BT.MEMORY_INTENSIVE.value, BT.I_O_BOUND.value, BT.CACHING_MISSED.value}


def test_cpu_intensive_tensor_work_is_found_and_is_not_io_bound(matmul_profile):
    r = matmul_profile
    # what it wants: CPU it got plus the run-queue wait of its threads (a busy machine does not hide it)
    assert r["cpu_demand_share"] >= 0.8 and r["off_cpu_share"] < 0.5
    assert r["per_item_cpu_s"] >= 100e-6
    t = types_of(r)
    assert BT.CPU_INTENSIVE.value in t and BT.I_O_BOUND.value not in t
    f = next(f for f in r["bottlenecks"] if f["type"] == BT.CPU_INTENSIVE.value)
    assert 0.8 <= f["severity"] <= 1.0 and f["evidence"]["cpu_demand_share"] == r["cpu_demand_share"]
    assert any("num_workers" in s["action"] for s in f["suggestions"])


def test_waiting_on_io_is_found_by_its_off_cpu_time(tmp_path):
    path = tmp_path / "blob.bin"
    path.write_bytes(b"\x01" * 4096)

    def read_remote(batch):
        with open(path, "rb") as f:
            f.read()
        time.sleep(0.003)          # the latency of remote storage
        return batch * 2

    r = make().profile_preprocessing_function(read_remote, torch.randn(32, 16), num_iterations=8)
    assert r["off_cpu_share"] >= 0.5
    t = types_of(r)
    assert BT.I_O_BOUND.value in t and BT.CPU_INTENSIVE.value not in t
    f = next(f for f in r["bottlenecks"] if f["type"] == BT.I_O_BOUND.value)
    assert f["evidence"]["off_cpu_share"] == r["off_cpu_share"] and f["severity"] >= 0.5


def test_large_temporaries_are_memory_intensive_and_a_plain_function_is_not():
    x = torch.randn(64, 256)                     # 64 KiB in, 64 KiB out, 64 MiB temporary
    r = make().profile_preprocessing_function(big_temporaries, x, num_iterations=3)
    assert r["peak_memory_bytes"] >= 48 * (1 << 20)
    assert BT.MEMORY_INTENSIVE.value in types_of(r)
    f = next(f for f in r["bottlenecks"] if f["type"] == BT.MEMORY_INTENSIVE.value)
    assert f["evidence"]["peak_bytes"] == r["peak_memory_bytes"] and f["severity"] > 0.9

    r2 = make().profile_preprocessing_function(lambda b: b.float() / 255.0, torch.randint(0, 255, (64, 256),
                                               dtype=torch.uint8), num_iterations=3)
    assert r2["peak_memory_bytes"] is not None
    assert BT.MEMORY_INTENSIVE.value not in types_of(r2)


def test_memory_tracking_off_leaves_the_peak_unknown(rows128):
    r = make(enable_memory_tracking=False).profile_preprocessing_function(vec_standardize, rows128, 2)
    assert r["peak_memory_bytes"] is None and r["python_peak_bytes"] is None


# -- profile_batch_preprocessing ------------------------------------------------
def test_batch_profile_covers_each_batch_size(vec_batches, rows128):
    r = vec_batches
    assert [p["batch_size"] for p in r["batch_profiles"]] == [1, 8, 16, 32, 64]
    assert r["accepts_batches"] is True and r["skipped_batch_sizes"] == []
    for p in r["batch_profiles"]:
        assert p["calls"] >= 3 and p["items"] == p["calls"] * p["batch_size"]
        assert p["per_item_s"] == pytest.approx(p["median_s_per_call"] / p["batch_size"])
        assert p["items_per_second"] == pytest.approx(p["batch_size"] / p["median_s_per_call"])
    json.dumps(r)
    # sizes larger than the data are skipped and listed
    small = make(batch_size_range=[1, 4, 512]).profile_batch_preprocessing(vec_standardize, rows128[:10])
    assert [p["batch_size"] for p in small["batch_profiles"]] == [1, 4] and small["skipped_batch_sizes"] == [512]


def test_per_element_python_loop_is_vectorization_inefficient(loop_batches):
    r = loop_batches
    assert r["python_events_per_item"] >= 1
    assert r["per_item_ratio"] >= 0.5              # per-item cost barely falls with batching
    assert r["exponent"] < 1.3                     # linear
    t = types_of(r)
    assert BT.VECTORIZATION_INEFFICIENT.value in t and BT.ALGORITHM_INEFFICIENT.value not in t
    f = next(f for f in r["bottlenecks"] if f["type"] == BT.VECTORIZATION_INEFFICIENT.value)
    assert set(f["evidence"]["cost_us_per_item_by_batch_size"]) == {"1", "8", "16", "32", "64"}
    assert r["cost_basis"] == "cpu"


def test_vectorised_function_is_not_flagged_vectorization_or_algorithm(vec_batches, loop_batches):
    r = vec_batches
    assert r["python_events_per_item"] == 0
    assert r["per_item_ratio"] < 0.5
    assert r["exponent"] < 1.3
    t = types_of(r)
    assert BT.VECTORIZATION_INEFFICIENT.value not in t and BT.ALGORITHM_INEFFICIENT.value not in t
    # and it does the same work several times faster per item at batch 64
    assert loop_batches["batch_profiles"][-1]["per_item_s"] > 3 * r["batch_profiles"][-1]["per_item_s"]


def test_vectorised_function_on_large_items_is_not_vectorization_inefficient():
    # per-item cost cannot fall with batching here either (the work is in the items)
    x = torch.randn(24, 192, 192)
    r = make(batch_size_range=[1, 8, 16]).profile_batch_preprocessing(vec_standardize, x)
    assert r["python_events_per_item"] == 0
    t = types_of(r)
    assert BT.VECTORIZATION_INEFFICIENT.value not in t and BT.ALGORITHM_INEFFICIENT.value not in t


def test_quadratic_function_is_algorithm_inefficient_with_its_exponent(rows128):
    pts = rows128[:, :4].contiguous()
    r = make(batch_size_range=[1, 8, 16, 32, 64, 128]).profile_batch_preprocessing(pairwise_nearest, pts)
    assert 1.6 <= r["exponent"] <= 2.4
    assert r["exponent_sizes"] == [16, 32, 64, 128]
    t = types_of(r)
    assert BT.ALGORITHM_INEFFICIENT.value in t
    assert BT.VECTORIZATION_INEFFICIENT.value not in t     # the growth is the algorithm's
    f = next(f for f in r["bottlenecks"] if f["type"] == BT.ALGORITHM_INEFFICIENT.value)
    assert f["evidence"]["exponent"] == r["exponent"] and 0.5 < f["severity"] <= 1.0


def test_batching_gain_is_batch_size_inefficient(vec_batches):
    r = vec_batches
    assert r["best_batch_size"] >= 8 and r["batching_gain"] >= 1.25
    f = next(f for f in r["bottlenecks"] if f["type"] == BT.BATCH_SIZE_INEFFICIENT.value)
    assert f["evidence"]["best_batch_size"] == r["best_batch_size"]
    assert f"batches of {r['best_batch_size']}" in f["suggestions"][0]["action"]


def test_function_taking_one_item_falls_back_to_per_item_calls(rows128):
    r = make(batch_size_range=[1, 8, 32], profiling_duration=1).profile_batch_preprocessing(item_only, rows128)
    assert r["accepts_batches"] is False and r["exponent"] is None
    assert all(p["calls"] >= 3 for p in r["batch_profiles"])
    t = types_of(r)
    assert not t & {BT.VECTORIZATION_INEFFICIENT.value, BT.ALGORITHM_INEFFICIENT.value,
                    BT.BATCH_SIZE_INEFFICIENT.value}


def test_findings_join_the_session_summary():
    prof = make(profiling_duration=1)
    r = prof.profile_batch_preprocessing(loop_standardize, torch.randn(64, 128))
    summ = prof.get_session_summary(r["session_id"])
    ours = [f for f in summ["bottlenecks"] if f.get("metric") == "preprocessing"]
    assert {f["type"] for f in ours} == types_of(r)
    assert set(summ["operations"]) >= {"loop_standardize [batch 1]", "loop_standardize [batch 64]"}


# -- caching -----------------------------------------------------------------
def test_repeated_inputs_of_a_deterministic_function_are_caching_missed(repeated):
    r = make(profiling_duration=1).profile_preprocessing_function(vec_standardize, repeated, num_iterations=3)
    assert r["repeat_ratio"] == 0.75 and r["distinct_items"] == 10 and r["deterministic"] is True
    f = next(f for f in r["bottlenecks"] if f["type"] == BT.CACHING_MISSED.value)
    assert f["evidence"]["repeat_ratio"] == 0.75 and f["severity"] == 0.75
    assert f["suggestions"][0]["expected_speedup"] == 4.0


def test_no_caching_finding_for_random_functions_distinct_inputs_or_caching_off(repeated, rows128):
    r = make().profile_preprocessing_function(noisy, repeated, num_iterations=2)
    assert r["repeat_ratio"] == 0.75 and r["deterministic"] is False
    assert BT.CACHING_MISSED.value not in types_of(r)
    r = make().profile_preprocessing_function(vec_standardize, rows128, num_iterations=2)
    assert r["repeat_ratio"] == 0.0 and BT.CACHING_MISSED.value not in types_of(r)
    r = make(enable_caching=False).profile_preprocessing_function(vec_standardize, repeated, num_iterations=2)
    assert BT.CACHING_MISSED.value not in types_of(r)
    r = make().profile_preprocessing_function(scales_in_place, repeated.clone(), num_iterations=1)
    assert r["deterministic"] is False and BT.CACHING_MISSED.value not in types_of(r)


def test_repeats_are_found_in_lists_of_python_items():
    words = ["cat", "dog", "cat", "emu", "dog", "cat", "cat", "dog"]
    r = make().profile_preprocessing_function(lambda ws: [w.upper() for w in ws], words, num_iterations=2)
    assert r["repeat_ratio"] == pytest.approx(1 - 3 / 8) and r["deterministic"] is True
    assert BT.CACHING_MISSED.value in types_of(r)


# -- GPU_UNDERUTILIZED ---------------------------------------------------------
def test_gpu_underutilized_needs_cuda_and_cpu_heavy_native_tensor_work(matmul_profile, loop_batches):
    if not torch.cuda.is_available():
        assert matmul_profile["cuda_available"] is False
        assert BT.GPU_UNDERUTILIZED.value not in types_of(matmul_profile)
    got = {f["type"] for f in P.detect(matmul_profile, cuda_available=True)}
    assert BT.GPU_UNDERUTILIZED.value in got
    assert BT.GPU_UNDERUTILIZED.value not in {f["type"] for f in P.detect(matmul_profile, cuda_available=False)}
    # an interpreter-bound loop needs vectorising first: not a GPU finding
    assert BT.GPU_UNDERUTILIZED.value not in {f["type"] for f in P.detect(loop_batches, cuda_available=True)}


def test_gpu_underutilized_is_not_reported_for_waiting():
    r = make().profile_preprocessing_function(lambda b: (time.sleep(0.003), b * 2)[1], torch.randn(8, 8), 4)
    assert BT.GPU_UNDERUTILIZED.value not in {f["type"] for f in P.detect(r, cuda_available=True)}


# -- get_optimal_preprocessing_config -------------------------------------------
def test_optimal_config_needs_a_batch_profile_first(rows128):
    prof = make()
    with pytest.raises(RuntimeError, match="profile_batch_preprocessing"):
        prof.get_optimal_preprocessing_config()
    prof.profile_preprocessing_function(vec_standardize, rows128, 1)
    with pytest.raises(RuntimeError, match="profile_batch_preprocessing"):
        prof.get_optimal_preprocessing_config()


def test_optimal_config_from_the_batch_profile(rows128, repeated):
    prof = make(profiling_duration=1)
    r = prof.profile_batch_preprocessing(vec_standardize, rows128)
    opt = prof.get_optimal_preprocessing_config()
    assert opt["batch_size"] == r["best_batch_size"] and opt["items_per_second"] == r["best_items_per_second"]
    assert opt["use_cache"] is False and opt["cache_size"] == 0 and opt["accepts_batches"] is True
    assert opt["expected_speedup"] == pytest.approx(r["batching_gain"], rel=1e-3)
    json.dumps(opt)
    prof.profile_batch_preprocessing(loop_standardize, repeated)
    opt = prof.get_optimal_preprocessing_config()
    assert opt["use_cache"] is True and opt["cache_size"] == 1000 and opt["repeat_ratio"] == 0.75
    assert opt["function"] == "loop_standardize"


# -- CodeOptimizer.optimize_preprocessing ---------------------------------------
def test_optimizer_caches_a_deterministic_function_whose_inputs_recur(repeated):
    prof = make()
    prof.profile_preprocessing_function(loop_standardize, repeated, num_iterations=2)
    opt = stall.CodeOptimizer(prof)
    fast = opt.optimize_preprocessing(loop_standardize)
    assert fast is not loop_standardize
    entry = opt._entries[-1]
    assert entry["applied"] is True and entry["verified"] is True and "cache" in entry["optimizations"]
    assert entry["measured_speedup"] >= 1.5           # 75% of the calls are repeats (ideal 4x)
    assert entry["repeat_ratio"] == 0.75 and entry["cache_size"] == 1000
    json.dumps(entry)
    assert inspect.signature(fast) == inspect.signature(loop_standardize)
    items = list(repeated)
    for x in items:
        assert torch.equal(fast(x), loop_standardize(x))
    info = fast.cache_info()
    assert info["size"] == 10 and info["hits"] >= 30
    # a caller changing what it got does not change the cache
    y = fast(items[0])
    y.zero_()
    assert torch.equal(fast(items[0]), loop_standardize(items[0]))


def test_cache_is_bounded_and_thread_safe(repeated):
    fast = P.OptimizedFunction(loop_standardize, cache_size=3)
    items = list(repeated)
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        got = list(ex.map(fast, items * 3))
    for x, y in zip(items * 3, got):
        assert torch.equal(y, loop_standardize(x))
    assert fast.cache_info()["size"] <= 3
    # a copy for a DataLoader worker (pickled) works and starts empty
    copy = pickle.loads(pickle.dumps(fast))
    assert copy.cache_info()["size"] == 0 and torch.equal(copy(items[1]), loop_standardize(items[1]))


def test_optimizer_batches_a_function_that_takes_batches(rows128):
    prof = make(profiling_duration=1)
    data = rows128[:64, :32].contiguous()
    prof.profile_batch_preprocessing(vec_standardize, data)
    opt = stall.CodeOptimizer(prof)
    fast = opt.optimize_preprocessing(vec_standardize)
    entry = opt.get_optimization_report()["optimizations"][-1]
    assert entry["kind"] == "preprocessing" and entry["applied"] is True
    assert entry["optimizations"] == ["batching"] and entry["batch_size"] >= 8
    assert entry["measured_speedup"] >= 1.5
    items = list(rows128[:, :32])
    got = fast.map(items)
    assert len(got) == len(items)
    for x, y in zip(items, got):
        assert torch.allclose(y, vec_standardize(x))
    assert torch.equal(fast(items[3]), vec_standardize(items[3]))


def test_optimizer_returns_the_function_itself_when_it_cannot_help(repeated, rows128):
    prof = make()
    prof.profile_preprocessing_function(noisy, repeated, num_iterations=1)
    opt = stall.CodeOptimizer(prof)
    assert opt.optimize_preprocessing(noisy) is noisy
    e = opt._entries[-1]
    assert e["applied"] is False and "deterministic" in e["reason"] and "batching" in e["candidates"]
    # never profiled, no data: nothing to measure on
    assert opt.optimize_preprocessing(loop_standardize) is loop_standardize
    assert "not profiled" in opt._entries[-1]["reason"]
    # no profiler, data given: a function of one item cannot be batched, its inputs do not recur
    opt = stall.CodeOptimizer()
    assert opt.optimize_preprocessing(item_only, data=rows128[:16]) is item_only
    e = opt._entries[-1]
    assert "rejects a stacked batch" in e["candidates"]["batching"] and "recur" in e["candidates"]["cache"]


def test_optimizer_uses_what_advanced_profiler_profiled(repeated):
    prof = stall.AdvancedProfiler(stall.ProfilingConfig())
    prof.profile_preprocessing(loop_standardize, repeated, num_iterations=1)
    opt = stall.CodeOptimizer(prof)
    fast = opt.optimize_preprocessing(loop_standardize)
    assert fast is not loop_standardize and opt._entries[-1]["applied"] is True
    json.dumps(prof.get_profiling_summary()["data_profiles"])


def test_auto_optimize_applies_and_logs_one_line(repeated, caplog):
    prof = make(auto_optimize=True, profiling_duration=1)
    with caplog.at_level(logging.INFO, logger="stall"):
        r = prof.profile_batch_preprocessing(loop_standardize, repeated)
    assert callable(r["optimized_function"]) and r["optimization"]["applied"] is True
    lines = [rec.getMessage() for rec in caplog.records if "optimize_preprocessing" in rec.getMessage()]
    assert len(lines) == 1 and "applied" in lines[0]
    x = repeated[5]
    assert torch.equal(r["optimized_function"](x), loop_standardize(x))
    json.dumps({k: v for k, v in r.items() if k != "optimized_function"})


# -- bad input ----------------------------------------------------------------
@pytest.mark.parametrize("args, exc, word", [
    (("not callable", [1, 2]), TypeError, "fn"),
    ((vec_standardize, []), ValueError, "data"),
    ((vec_standardize, torch.empty(0, 3)), ValueError, "data"),
    ((vec_standardize, torch.tensor(3.0)), TypeError, "data"),
    ((vec_standardize, 5), TypeError, "data"),
    ((vec_standardize, {"a": 1}), TypeError, "data"),
    ((vec_standardize, "abc"), TypeError, "data"),
])
def test_bad_arguments_name_the_argument(args, exc, word):
    prof = make()
    with pytest.raises(exc, match=word):
        prof.profile_preprocessing_function(*args)
    with pytest.raises(exc, match=word):
        prof.profile_batch_preprocessing(*args)


@pytest.mark.parametrize("n, exc", [(0, ValueError), (-2, ValueError), (1.5, TypeError), (True, TypeError),
                                    ("3", TypeError)])
def test_num_iterations_must_be_an_int_of_at_least_one(n, exc):
    with pytest.raises(exc, match="num_iterations"):
        make().profile_preprocessing_function(vec_standardize, torch.randn(4, 4), num_iterations=n)


def test_batch_sizes_all_larger_than_the_data_are_refused():
    with pytest.raises(ValueError, match="data has 3 items"):
        make(batch_size_range=[8, 16]).profile_batch_preprocessing(vec_standardize, torch.randn(3, 4))


def test_the_functions_own_exception_propagates_unchanged():
    err = Boom("bad item")

    def broken(batch):
        raise err

    prof = make()
    with pytest.raises(Boom) as e:
        prof.profile_preprocessing_function(broken, torch.randn(4, 4))
    assert e.value is err
    with pytest.raises(Boom) as e:
        prof.profile_batch_preprocessing(broken, torch.randn(4, 4))
    assert e.value is err
    # the sessions opened for it are closed
    assert all(not s.active for s in prof._sessions.values())
