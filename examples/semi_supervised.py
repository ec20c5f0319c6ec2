"""Issue 15's semi-supervised Fashion-MNIST protocol for the pixel DGM (``fashion_dgm``):
100 labels per class (1,000 labelled training images, the other 54,000 unlabelled) vs the same
network trained on the 1,000 labels alone; target +5 points of test accuracy.

Usage (from the repository root; each run is one ``dgm train`` command, printed before it
starts, skipped when its directory already holds a finished run):

    python examples/semi_supervised.py --out runs/semi            # train, select, table
    python examples/semi_supervised.py --out runs/semi --test     # + test of the chosen two

Protocol: one seed (0) for every run, so the train/validation split, the kept labels and the
batch order are the same everywhere (``--init-from`` chains included); the labels are drawn
from the training split, balanced (``zoo.training.semi.keep_labels``); every choice (learning
rate, λ, variant, epochs = the best-validation checkpoint) is made on the first 1,000 images of
the 5,000-image validation split (``--val-limit 1000``: as many validation labels as training
labels). Semi-supervised batches hold 32 labelled + 32 unlabelled images
(``--labelled-batch 32``); the labels-only runs draw batches of 32 from the 1,000 labelled
images and get more steps than any semi-supervised run. The test set is read only with
``--test``, for the best labels-only run and the best semi-supervised run. The table also gives
each run's best checkpoint on the full 5,000 validation images (not used for any choice).
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

COMMON = ("--seed 0 --labels-per-class 100 --val-limit 1000 --optimizer adam --weight-decay 0 "
          "--estep-cycles 0 --no-progress")
LABELS_ONLY = "--objective ce --batch-size 32 --labelled-batch 32 --epochs 150"
SEMI = "--batch-size 64 --labelled-batch 32 --eval-every 250"
HYBRID = "--objective hybrid --gen-weight"
# name -> options (after COMMON), in the order they run; "@name" is that run's best.pt
RUNS = {
    "lab_lr1e-3": f"{LABELS_ONLY} --lr 1e-3",
    "lab_lr3e-4": f"{LABELS_ONLY} --lr 3e-4",
    "lab_lr3e-3": f"{LABELS_ONLY} --lr 3e-3",
    "lab_lr1e-3_wd1e-4": f"{LABELS_ONLY} --lr 1e-3 --weight-decay 1e-4",
    # control: the hybrid objective on the labelled images alone (no unlabelled image)
    "lab_hy_l1": "--objective hybrid --gen-weight 1 --batch-size 32 --labelled-batch 32 "
                 "--lr 1e-3 --epochs 150",
    "hy_map_l0.1": f"{SEMI} {HYBRID} 0.1 --unlabelled map --lr 1e-3 --epochs 2",
    "hy_map_l1": f"{SEMI} {HYBRID} 1 --unlabelled map --lr 1e-3 --epochs 2",
    "hy_map_l10": f"{SEMI} {HYBRID} 10 --unlabelled map --lr 1e-3 --epochs 2",
    "hy_lse_l1": f"{SEMI} {HYBRID} 1 --unlabelled lse --lr 1e-3 --epochs 1",
    "hy_lse_l10": f"{SEMI} {HYBRID} 10 --unlabelled lse --lr 1e-3 --epochs 1",
    "hy_warm_map_l1": f"{SEMI} {HYBRID} 1 --unlabelled map --lr 3e-4 --epochs 1 "
                      f"--init-from @lab_lr1e-3",
    "hy_map_l1_sigma2": f"{SEMI} {HYBRID} 1 --unlabelled map --lr 1e-3 --epochs 1 "
                        f"--learn-sigma2",
    "hy_elbo_l1": f"{SEMI} {HYBRID} 1 --unlabelled elbo --lr 1e-3 --epochs 1",
    "hy_elbo_l10": f"{SEMI} {HYBRID} 10 --unlabelled elbo --lr 1e-3 --epochs 1",
}


def _command(out: Path, name: str, threads: int, extra: str = "") -> list[str]:
    opts = " ".join(f"{out}/{w[1:]}/best.pt" if w.startswith("@") else w
                    for w in RUNS[name].split())
    return ([sys.executable, "-m", "zoo.cli", "train", "fashion-mnist-pixel", "--out",
             str(out / name), "--threads", str(threads)] + shlex.split(COMMON) +
            shlex.split(opts) + shlex.split(extra))


def _run(cmd: list[str]) -> None:
    print("$", " ".join(shlex.quote(c) for c in cmd[1:]), flush=True)
    subprocess.run(cmd, check=True)


def _val_full(run: Path) -> float:
    """Accuracy of the run's best checkpoint on the whole 5,000-image validation split."""
    import torch

    from zoo.data import train_val_split
    from zoo.training import TrainConfig, evaluate, get_recipe, load_checkpoint
    best = load_checkpoint(run / "best.pt")
    config = TrainConfig(**best["config"])
    recipe = get_recipe(config.dataset)
    net = recipe.build(config)
    net.load_state_dict(best["model"])
    if "sigma2" in best:
        net.dgm.sigma2 = best["sigma2"]
    x, y = recipe.load("train", config.data_dir)
    _, val = train_val_split(len(y), config.val_size, config.seed)
    return evaluate(net.eval(), torch.from_numpy(x[val]), torch.from_numpy(y[val]))["accuracy"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("runs/semi"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--only", default=None, help="comma-separated run names (default: all)")
    p.add_argument("--test", action="store_true",
                   help="test accuracy of the chosen labels-only and semi-supervised runs")
    args = p.parse_args(argv)
    import torch
    torch.set_num_threads(args.threads)
    names = args.only.split(",") if args.only else list(RUNS)
    for name in names:
        if not (args.out / name / "summary.json").is_file():
            _run(_command(args.out, name, args.threads))
    rows = {}
    for name in RUNS:
        path = args.out / name / "summary.json"
        if path.is_file():
            rows[name] = json.loads(path.read_text())
    chosen = {}
    for group, members in (("labels only", [n for n in rows if n.startswith("lab_")]),
                           ("semi-supervised", [n for n in rows if n.startswith("hy_")])):
        if members:   # highest validation accuracy; ties: the earlier best step
            chosen[group] = max(members, key=lambda n: (rows[n]["val"]["accuracy"],
                                                        -rows[n]["best_step"]))
    if args.test:
        for name in chosen.values():
            if "test" not in rows[name]:
                _run(_command(args.out, name, args.threads, "--resume --test"))
                rows[name] = json.loads((args.out / name / "summary.json").read_text())
    print("| run | val (1,000; selection) | val (5,000) | test (10k) | steps (best) | wall s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, s in rows.items():
        test = f"{100 * s['test']['accuracy']:.2f} %" if "test" in s else "–"
        mark = " (chosen)" if name in chosen.values() else ""
        print(f"| {name}{mark} | {100 * s['val']['accuracy']:.1f} % | "
              f"{100 * _val_full(args.out / name):.2f} % | {test} | {s['steps']} "
              f"({s['best_step']}) | {s['wall_s']:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
