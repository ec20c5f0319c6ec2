"""One-shot GPU run for the seed's CIFAR-10 table at WRN-40-2 (issue 17): adversarially train
the WRN-40-2 CNN and CNN-F with one short recipe, evaluate the table, write bundle-ready cards.

Made for one lent GPU with a small time budget: every invocation trains for at most
``--minutes`` of wall clock (both models share it, the CNN-F gets ``--cnnf-share`` of it),
checkpointing every minute; a model that is not finished is stopped with SIGINT at its
deadline (``dgm train`` then writes ``last.pt`` and exits 130) and the next invocation resumes
it (``--resume``, bit-identical). Once both are trained the table is evaluated (``dgm eval
--table cifar10``, PGD/SPSA first and e2e, transfer, min; the CNN-F scored on "last" and
"avg") and merged into the cards. On CUDA the training steps run under bf16 autocast
(``zoo.training``) and the models in channels-last memory format (``--channels-last``).

The recipe is the seed's (original-cnnf.md §C, ``dgm train cifar10 --adversarial``: PGD-7 at
ε = 8/255 against the first pass, CE on clean (λ_c 0.05) and adversarial logits at every pass
plus 0.1 × the reconstruction MSE, SGD 0.05 + poly, clip 0.5, crop + flip), shortened to
``--epochs`` (default 2) for both networks; the CNN-F runs in the faithful original-compatible
mode (2 cycles, ind 5, recomputed norm, nearest-upsampling head), as released.

    python examples/wrn40_2_gpu.py --out runs/wrn40_2 --minutes 9    # run 1 (trains)
    python examples/wrn40_2_gpu.py --out runs/wrn40_2 --minutes 9    # run 2 (resumes, evaluates)
    python examples/wrn40_2_gpu.py --out /tmp/wrn --dry-run           # tiny CPU check (a test)

Outputs under ``--out``: ``<name>/`` run folders (log.jsonl, checkpoints), ``bundle/<name>
.safetensors`` + ``.json`` cards with the table, ``eval/table.md``, ``status.json``.
"""
from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

MODELS = {  # registry name → architecture flags of `dgm train cifar10`
    "cnn_wrn_40_2": ["--cycles", "0"],
    "cnnf_wrn_40_2": ["--cycles", "2", "--ind", "5", "--norm", "original", "--mode", "original",
                      "--head", "nearest", "--readout", "last"],
}
DRY_RUN = {"epochs": 1.0, "batch_size": 4, "limit_train": 8, "val_size": 8, "pgd_steps": 1,
           "n_eval": 4, "spsa_samples": 2, "spsa_steps": 1, "threads": 1}


def dgm(*args: str) -> list[str]:
    """The `dgm` command of this interpreter's checkout."""
    return [sys.executable, "-m", "zoo.cli", *args]


def train_command(name: str, out: Path, a: argparse.Namespace) -> list[str]:
    run = out / name
    cmd = dgm("train", "cifar10", "--out", str(run), *MODELS[name], "--adversarial",
              "--epochs", str(a.epochs), "--batch-size", str(a.batch_size), "--seed", str(a.seed),
              "--pgd-steps", str(a.pgd_steps), "--checkpoint-minutes", "1",
              "--val-limit", str(a.val_limit), "--export", str(out / "bundle" / name),
              "--name", name, "--no-progress")
    if not a.dry_run:  # the card's clean accuracy on all 10,000 test images
        cmd.append("--test")
    if a.channels_last:
        cmd.append("--channels-last")
    for flag, value in (("--limit-train", a.limit_train), ("--val-size", a.val_size),
                        ("--threads", a.threads)):
        if value is not None:
            cmd += [flag, str(value)]
    if (run / "last.pt").is_file():
        cmd.append("--resume")
    return cmd


STOPPED = 130
"""Exit status of a run stopped at its deadline (``dgm train`` on SIGINT: last.pt, exit 130)."""


def run_until(cmd: list[str], seconds: float) -> int:
    """Run ``cmd``; at the deadline send SIGINT and wait. A run stopped there returns
    ``STOPPED`` (also when the signal came before it could write a checkpoint: the next
    invocation then starts it again)."""
    print("$", " ".join(cmd), flush=True)
    # (a script started in the background inherits an ignored SIGINT: give the run the default)
    proc = subprocess.Popen(cmd, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        return proc.wait(timeout=max(seconds, 1.0))
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        rc = proc.wait()
        return rc if rc == 0 else STOPPED


def merge_table(out: Path, command: list[str]) -> None:
    """Copy the table (config, every cell and row of both models: the comparison is the
    point) into each model's card as ``robustness_table``."""
    records = [json.loads(line) for line in (out / "eval" / "table.jsonl").read_text().splitlines()
               if line.strip()]
    for name in MODELS:
        card_path = out / "bundle" / f"{name}.json"
        card = json.loads(card_path.read_text())
        card["robustness_table"] = {"command": " ".join(command[1:]),
                                    "records": records}
        card_path.write_text(json.dumps(card, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--minutes", type=float, default=9.0, help="training wall clock per invocation")
    p.add_argument("--cnnf-share", type=float, default=0.75, help="the CNN-F's share of it")
    p.add_argument("--epochs", type=float, default=2.0)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--pgd-steps", type=int, default=7)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-limit", type=int, default=1000)
    p.add_argument("--n-eval", type=int, default=1000, help="test images of the table")
    p.add_argument("--spsa-samples", type=int, default=128)
    p.add_argument("--spsa-steps", type=int, default=7)
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--dry-run", action="store_true", help="tiny CPU configuration (a test)")
    a = p.parse_args(argv)
    a.limit_train = a.val_size = a.threads = None
    if a.dry_run:
        for key, value in DRY_RUN.items():
            setattr(a, key, value)
        a.val_limit, a.channels_last = DRY_RUN["val_size"], False
    out = Path(a.out)
    (out / "bundle").mkdir(parents=True, exist_ok=True)
    status: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "models": {}}
    budget = {"cnn_wrn_40_2": (1 - a.cnnf_share) * 60 * a.minutes,
              "cnnf_wrn_40_2": a.cnnf_share * 60 * a.minutes}
    for name in MODELS:
        if (out / name / "done").is_file():
            status["models"][name] = "done"
            continue
        start = time.monotonic()
        rc = run_until(train_command(name, out, a), budget[name])
        status["models"][name] = {"rc": rc, "seconds": round(time.monotonic() - start, 1)}
        if rc == 0:
            (out / name / "done").write_text("trained\n")
        elif rc != STOPPED:
            print(f"error: training {name} failed (exit {rc}); see {out / name}", file=sys.stderr)
            return rc
        if name == "cnn_wrn_40_2" and rc == STOPPED:  # the CNN-F waits for the CNN (transfer)
            break
    if all((out / n / "done").is_file() for n in MODELS):
        models = ",".join(f"{n}={out / 'bundle' / n}.safetensors" for n in MODELS)
        cmd = dgm("eval", "--table", "cifar10", "--models", models, "--out", str(out / "eval"),
                  "--n-examples", str(a.n_eval), "--table-spsa-samples", str(a.spsa_samples),
                  "--table-spsa-steps", str(a.spsa_steps), "--no-progress")
        if a.threads is not None:
            cmd += ["--threads", str(a.threads)]
        start = time.monotonic()
        rc = run_until(cmd, 3600.0)
        status["eval"] = {"rc": rc, "seconds": round(time.monotonic() - start, 1)}
        if rc != 0:
            print(f"error: the table evaluation failed (exit {rc})", file=sys.stderr)
            return rc
        merge_table(out, cmd)
        status["done"] = True
    (out / "status.json").write_text(json.dumps(status, indent=2) + "\n")
    print(json.dumps(status))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
