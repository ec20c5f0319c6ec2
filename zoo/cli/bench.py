"""``dgm bench``: throughput, GFLOP/s and peak memory of the engine vs a plain PyTorch CNN.

Runs ``benchmarks.run_suite`` (issue 7): the Fashion-MNIST and WRN-40-2 CNN-F, plain forward,
inference at several cycle counts, clean and adversarial training steps, the numpy reference
engine, each measured side by side with the reference; growth vs cycles and batch size; the
targets and whether they hold. Writes ``bench.json`` and ``bench.md`` to ``--out`` and prints the
markdown. ``--quick`` is the CI-size run (small batches, fewer repeats).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("bench", help="benchmark the engine against a plain PyTorch CNN",
                              description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    p.add_argument("--out", default="bench-out", help="output directory")
    p.add_argument("--quick", action="store_true", help="CI-size run")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats (default 5, quick 3)")
    p.add_argument("--only", default=None,
                   help="comma separated configuration names (fashion-mnist, wrn-40-2)")
    p.add_argument("--no-growth", action="store_true", help="skip the growth curves")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from benchmarks import run_suite, to_markdown
    from benchmarks.suite import default_configs

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: CUDA is not available")
    configs = default_configs(args.quick)
    if args.only:
        wanted = {v.strip() for v in args.only.split(",") if v.strip()}
        unknown = wanted - {c.name for c in configs}
        if unknown:
            raise SystemExit(f"--only: unknown configurations {sorted(unknown)}; "
                             f"known: {[c.name for c in configs]}")
        configs = [c for c in configs if c.name in wanted]
    start = time.perf_counter()
    log = lambda msg: print(f"[{time.perf_counter() - start:6.1f}s] {msg}", file=sys.stderr)
    result = run_suite(threads=args.threads, device=args.device, quick=args.quick,
                       configs=configs, repeats=args.repeats, with_growth=not args.no_growth,
                       log=log)
    result["wall_s"] = time.perf_counter() - start
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(result, indent=1, default=str))
    text = to_markdown(result)
    (out / "bench.md").write_text(text)
    print(text)
    log(f"wrote {out / 'bench.json'} and {out / 'bench.md'}")
    return 0
