"""Performance harness for the DGM / CNN-F engine (issue 7).

Everything that is compared is measured side by side in one run: each group of callables
(our engine, a plain PyTorch reference CNN of the same layer shapes in NCHW and channels-last)
is timed round-robin, warm-up excluded, and summarised by medians, so that the ratios stay
meaningful on a shared, noisy machine. Work is counted in multiply-accumulates (MACs) from the
DGM's layer shapes, so every timing also gives an achieved GFLOP/s (2 FLOPs per MAC).

Modules: ``macs`` (analytic MAC counts), ``reference`` (the plain PyTorch CNN built from a DGM),
``timing`` (interleaved timer, peak memory, machine conv/GEMM peaks), ``suite`` (the
configurations, targets, growth curves, JSON + markdown report), ``allocator`` (a training step
with and without glibc told to keep freed memory, in fresh processes). Requires torch.
"""
from .macs import cnnf_macs, linear_macs
from .reference import reference_cnn
from .suite import Config, run_suite, to_markdown
from .timing import interleaved, machine_peaks, peak_memory

__all__ = ["Config", "cnnf_macs", "interleaved", "linear_macs", "machine_peaks", "peak_memory",
           "reference_cnn", "run_suite", "to_markdown"]
