"""Export a finished ``dgm train`` run: best-validation weights + model card (``zoo.weights``);
and :func:`load_trained`, the loader of training checkpoints as models.

The card records the architecture (``arch``: the registered factory's arguments), the data and
input range, the exact training command, seed, steps, wall time (including a warm start's own
run when ``--init-from`` names a run's checkpoint), validation and test metrics, and a threat
model note saying whether the run was adversarially trained.
"""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any, Optional

import torch

from zoo.models import create_model
from zoo.models.cnnf import CNNF
from zoo.weights import save_weights

from .checkpoint import load_checkpoint, model_state
from .loop import TrainConfig
from .recipes import ARCH_FIELDS, RECIPES, get_recipe

MEASURED = ("any robustness is measured by `dgm eval` under L-inf attacks with eps in [0,1] "
            "pixel units (input units are twice that). Clean accuracy is not a robustness claim.")


def threat_model(config: dict[str, Any]) -> str:
    """The card's threat-model note of a run with ``config`` (clean or adversarial training)."""
    if not config["adversarial"]:
        return f"Trained on clean images only (no adversarial training); {MEASURED}"
    return (f"Adversarially trained: L-inf PGD-{config['pgd_steps']} on the first pass, eps "
            f"{config['eps']:g}, step {config['pgd_step_size']:g} (input units, [-1, 1]); "
            f"{MEASURED}")


def load_trained(checkpoint: str | os.PathLike, model: str | CNNF | None = None) -> CNNF:
    """The model of a training checkpoint (``best.pt``/``last.pt``), its weights loaded.

    Args:
        checkpoint: a file written by ``dgm train`` (its ``config`` says how it was built).
        model: None (built by the run's recipe from the checkpoint's config), a registered
            name (built by the hub with the checkpoint's values of its recipe's
            ``arch_fields``, e.g. ``cycles``, ``ind``, ``norm``, ``mode``, ``readout``), or a
            module to load the weights into.
    A σ² learned by the run (``"sigma2"`` in the checkpoint) is set on the model's DGM.
    """
    ckpt = load_checkpoint(checkpoint)
    config = ckpt.get("config", {})
    if model is None:
        model = get_recipe(config["dataset"]).build(TrainConfig(**config))
    elif isinstance(model, str):
        fields = RECIPES[config["dataset"]].arch_fields if config.get("dataset") in RECIPES \
            else ARCH_FIELDS
        model = create_model(model, **{k: config[k] for k in fields if k in config})
    model.load_state_dict(model_state(ckpt))
    if "sigma2" in ckpt:
        model.dgm.sigma2 = ckpt["sigma2"]
    return model


def _run_summary(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "summary.json"
    if not path.is_file():
        raise ValueError(f"run {run_dir} has no summary.json: finish (or --resume) it first")
    return json.loads(path.read_text())


def _first_command(run_dir: Path) -> str:
    """The command that started the run (its log's first "start" record)."""
    with (run_dir / "log.jsonl").open() as f:
        for line in f:
            record = json.loads(line)
            if record["event"] == "start":
                return record["config"]["command"]
    raise ValueError(f"run {run_dir} has no start record in log.jsonl")


def build_card(run_dir: str | os.PathLike, name: Optional[str] = None) -> dict[str, Any]:
    """The model card of the finished run in ``run_dir`` (see module docstring)."""
    run_dir = Path(run_dir)
    summary = _run_summary(run_dir)
    config = summary["config"]
    card: dict[str, Any] = {
        "name": name,
        "arch": {k: summary.get(k, config[k]) if k == "sigma2" else config[k]
                 for k in get_recipe(config["dataset"]).arch_fields},
        "dataset": config["dataset"],
        "input_range": [-1.0, 1.0],
        "input_scaling": "x = pixel / 255 * 2 - 1",
        "training": {
            "command": _first_command(run_dir),
            "finished_with": config["command"],
            "recipe": _recipe_text(config),
            "seed": config["seed"], "epochs": config["epochs"],
            "batch_size": config["batch_size"], "lr": config["lr"],
            "schedule": f"poly, power {config['poly_power']}, per batch",
            "momentum": config["momentum"], "weight_decay": config["weight_decay"],
            "grad_clip": config["grad_clip"], "steps": summary["steps"],
            "wall_s": round(summary["wall_s"], 1), "best_step": summary["best_step"],
            "images_per_s": summary.get("images_per_s"),
            "validation": f"{config['val_size']} training images held out "
                          f"(train_val_split seed {config['seed']})" +
                          (f", selection on the first {config['val_limit']}"
                           if config["val_limit"] else ""),
            "hardware": f"{platform.machine()} CPU, torch {torch.__version__}",
        },
        "metrics": {"val": summary["val"], **({"test": summary["test"]}
                                               if "test" in summary else {})},
        "threat_model": threat_model(config),
    }
    if config["init_from"]:
        warm = _warm_start(config["init_from"])
        card["training"]["warm_start"] = warm
        card["training"]["total_wall_s"] = round(summary["wall_s"] + warm.get("total_wall_s", 0), 1)
    return card


def _recipe_text(config: dict[str, Any]) -> str:
    """The objective in words (``zoo.training.objectives``)."""
    if config["adversarial"]:
        k = config["pgd_steps"]
        attack = f"PGD-{k}" + (" (FGSM with random start)" if k == 1 else "")
        return (f"adversarial: L-inf {attack} from a uniform random start on the first pass; "
                f"CE at every pass on the adversarial images + {config['clean_weight']:g} x CE on "
                f"the clean ones, + {config['mse_weight']:g} x MSE(adversarial renderings, "
                f"clean image) (zoo.training.losses.adversarial_loss)")
    objective = config.get("objective", "ce")
    if objective == "ce":
        return "clean (cross-entropy at every pass, averaged)"
    gen = (f"-log p_B(x, h, y, z, t)/D (hard EM, E-step {config['estep_cycles']} cycle(s), "
           f"y = label; unlabelled: {config['unlabelled']})")
    if objective == "generative":
        return f"generative: {config['gen_weight']} * {gen}"
    return f"hybrid: CE at every pass + {config['gen_weight']} * {gen}"


def _warm_start(checkpoint: str) -> dict[str, Any]:
    """The chain of runs a warm start came from (each run's command, steps, wall time)."""
    parent = Path(checkpoint).parent
    warm: dict[str, Any] = {"checkpoint": checkpoint}
    if (parent / "summary.json").is_file() and (parent / "log.jsonl").is_file():
        ps = _run_summary(parent)
        warm.update(command=_first_command(parent), steps=ps["steps"],
                    wall_s=round(ps["wall_s"], 1), val=ps["val"].get("accuracy"),
                    total_wall_s=round(ps["wall_s"], 1))
        if ps["config"]["init_from"]:
            warm["warm_start"] = _warm_start(ps["config"]["init_from"])
            warm["total_wall_s"] = round(ps["wall_s"] + warm["warm_start"].get(
                "total_wall_s", 0), 1)
    return warm


def export_run(run_dir: str | os.PathLike, prefix: str | os.PathLike,
               name: Optional[str] = None, extra: Optional[dict[str, Any]] = None) -> str:
    """Write ``prefix.safetensors`` + ``prefix.json`` from ``run_dir/best.pt``; returns sha256.
    ``extra``: further card fields (e.g. measured robustness), added to the built card."""
    run_dir = Path(run_dir)
    card = {**build_card(run_dir, name), **(extra or {})}
    config = TrainConfig(**_run_summary(run_dir)["config"])
    model = load_trained(run_dir / "best.pt", get_recipe(config.dataset).build(config))
    return save_weights(model, Path(f"{prefix}.safetensors"), card)
