"""Timing and memory measurement: interleaved medians, peak working memory, machine peaks.

``interleaved`` runs a group of callables round-robin (warm-up rounds first, excluded), so that
load changes on a shared machine hit every member alike; compare members by their medians.
``peak_memory`` is the peak of tensor memory allocated during one call above what was live
before it: on CUDA from the caching allocator's statistics, on CPU from the profiler's
memory accounting (a running sum of each op's own net allocation, in time order). ``machine_peaks`` measures a large 3×3
convolution and a large GEMM with the same threads/device, the practical ceiling for GFLOP/s.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable

import torch


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def interleaved(fns: dict[str, Callable[[], object]], *, repeats: int = 5, warmup: int = 1,
                device: str = "cpu") -> dict[str, dict]:
    """Wall-clock seconds of each callable, measured round-robin; ``{name: {"median", "times"}}``."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got {repeats}, {warmup}")
    times: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(warmup + repeats):
        for name, fn in fns.items():
            synchronize(device)
            start = time.perf_counter()
            fn()
            synchronize(device)
            if r >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: {"median": statistics.median(ts), "times": ts} for name, ts in times.items()}


def peak_memory(fn: Callable[[], object], device: str = "cpu") -> int:
    """Peak bytes of tensor memory allocated by one call of ``fn`` beyond what was live before."""
    if device.startswith("cuda"):
        synchronize(device)
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        synchronize(device)
        return int(torch.cuda.max_memory_allocated() - before)
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    # op events carry the memory they (and their children) allocated net of what they freed;
    # "[memory]" events are frees outside any op: accumulate self amounts in time order
    events = sorted((e.time_range.start, e.cpu_memory_usage
                     - sum(c.cpu_memory_usage for c in e.cpu_children)) for e in prof.events())
    live = peak = 0
    for _, delta in events:
        live += delta
        peak = max(peak, live)
    return int(peak)


def machine_peaks(device: str = "cpu", quick: bool = False, repeats: int = 3) -> dict[str, float]:
    """Achieved GFLOP/s of a large float32 3×3 convolution and a large square GEMM."""
    n, c, side, m = (8, 64, 32, 1024) if quick else (32, 128, 32, 2048)
    x = torch.randn(n, c, side, side, device=device)
    w = torch.randn(c, c, 3, 3, device=device)
    a = torch.randn(m, m, device=device)
    conv_macs = n * c * c * 9 * side * side
    with torch.inference_mode():
        t = interleaved({"conv": lambda: torch.nn.functional.conv2d(x, w, padding=1),
                         "gemm": lambda: a @ a}, repeats=repeats, device=device)
    return {"conv_gflops": 2 * conv_macs / t["conv"]["median"] / 1e9,
            "gemm_gflops": 2 * m ** 3 / t["gemm"]["median"] / 1e9}
