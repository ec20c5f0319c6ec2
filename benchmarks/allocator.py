"""The glibc allocator effect on a large training step (issue 7 §2): the same Fashion-MNIST
CNN-F training step timed in fresh processes with and without ``MALLOC_TRIM_THRESHOLD_`` /
``MALLOC_MMAP_THRESHOLD_`` (which ``dgm`` sets by default, see ``zoo.allocator``), alternating A/B
processes so that both see the same machine load.

Run: ``python -m benchmarks.allocator --batch 256 --cycles 5 --threads 2 --pairs 2``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from zoo.allocator import KEEP_MALLOC as KEEP


def child(batch: int, cycles: int, threads: int, steps: int) -> dict:
    """Time ``steps`` training steps (after one warm-up) in this process: wall and CPU seconds."""
    import torch
    from zoo.models.fashion import fashion_cnnf
    from zoo.training.losses import clean_loss
    torch.set_num_threads(threads)
    net = fashion_cnnf(cycles=cycles)
    opt = torch.optim.SGD(net.parameters(), lr=1e-6, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 1, 28, 28, generator=g) * 2 - 1
    y = torch.randint(0, 10, (batch,), generator=g)
    wall, cpu = [], []
    for i in range(steps + 1):
        w0, c0 = time.perf_counter(), time.process_time()
        opt.zero_grad(set_to_none=True)
        clean_loss(net.forward_passes(x), y).backward()
        opt.step()
        if i:
            wall.append(time.perf_counter() - w0)
            cpu.append(time.process_time() - c0)
    return {"wall_s": statistics.median(wall), "cpu_s": statistics.median(cpu)}


def compare(batch: int = 256, cycles: int = 5, threads: int = 2, steps: int = 2,
            pairs: int = 2) -> dict:
    """Median step time with glibc's defaults vs told to keep freed memory, in fresh processes."""
    runs: dict[str, list] = {"glibc_default": [], "keep_memory": []}
    base = {k: v for k, v in os.environ.items() if k not in KEEP}
    for _ in range(pairs):
        for name, extra in (("glibc_default", {}), ("keep_memory", KEEP)):
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.allocator", "--child", "--batch", str(batch),
                 "--cycles", str(cycles), "--threads", str(threads), "--steps", str(steps)],
                env={**base, **extra}, capture_output=True, text=True, check=True)
            runs[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
    summary = {name: {key: statistics.median(r[key] for r in rs) for key in ("wall_s", "cpu_s")}
               for name, rs in runs.items()}
    summary["speedup_wall"] = summary["glibc_default"]["wall_s"] / summary["keep_memory"]["wall_s"]
    summary["speedup_cpu"] = summary["glibc_default"]["cpu_s"] / summary["keep_memory"]["cpu_s"]
    summary.update(batch=batch, cycles=cycles, threads=threads, steps=steps, pairs=pairs)
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--cycles", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--pairs", type=int, default=2)
    a = p.parse_args(argv)
    if a.child:
        print(json.dumps(child(a.batch, a.cycles, a.threads, a.steps)))
    else:
        print(json.dumps(compare(a.batch, a.cycles, a.threads, a.steps, a.pairs), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
