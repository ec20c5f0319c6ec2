"""The training loop of ``dgm train``: a DGM / CNN-F fitted by a pluggable objective
(``zoo.training.objectives``: CE at every pass, generative hard EM, hybrid, semi-supervised,
adversarial) with SGD (or Adam) + poly LR. ``train`` = resolve (``_resolve``) → loop
(``_loop``, one ``_step`` per batch) → finish (``_finish``).

One optimiser step per batch (original-cnnf.md §C.2): SGD with momentum and weight decay
(once per tensor: weights are tied functionally, so every parameter appears once), the poly
learning rate set before each step, the global gradient norm clipped. The run directory holds
``log.jsonl`` (a line per step, validation and epoch), ``last.pt`` (written every epoch and
every ``checkpoint_minutes``; ``resume`` continues from it bit-identically: data order is a
function of (seed, epoch), random draws come from checkpointed RNG states), ``best.pt`` (the
best validation accuracy so far; the validation split is held out of the training set, the
test set is never used for selection) and ``summary.json`` when the run is complete.

Nothing is lost or mixed: a run directory that already holds a run is refused unless ``resume``
(which compares the stored configuration with this one and refuses differences not listed in
``allow_changes``; it needs ``last.pt``) or ``overwrite`` (which deletes the old run's files); a
NaN/inf loss or gradient norm stops the run before the step with ``TrainingDiverged``, after
writing the last good state to ``last.pt``; SIGINT (Ctrl-C) stops at the end of the current
step with ``TrainingInterrupted``, after writing ``last.pt`` (a second Ctrl-C aborts at once).

Launched by ``torchrun`` (``WORLD_SIZE`` > 1) the loop is data-parallel
(``zoo.training.distributed``): every process draws the same global batch and augmentation,
keeps its 1/W share, and gradients are averaged before clipping and the step; rank 0 logs,
validates and writes checkpoints (the run directory must be on a shared filesystem for
``resume``). On CUDA the steps run under bf16 autocast (mixed precision).
"""
from __future__ import annotations

import json
import math
import signal
import sys
import threading
import time
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from tqdm import tqdm

from backends import ConfigError
from zoo._outdir import check_writable
from zoo.data import iterate_batches, num_batches, train_val_split
from zoo.models.cnnf import CNNF

from ._jsonl import JsonlLog
from .checkpoint import load_checkpoint, model_state, rng_state, save_checkpoint, set_rng_state
from .distributed import NullLog, init_from_env, shutdown
from .objectives import OBJECTIVES, UNLABELLED, Batch, Objective, make_objective
from .recipes import Recipe, get_recipe
from .schedule import poly_lr
from .semi import keep_labels, mixed_batches, mixed_per_epoch


@dataclass
class TrainConfig:
    """Every option of a run (``None`` = the recipe's default, see ``Recipe.defaults``)."""

    dataset: str = "fashion-mnist"
    out: str = "runs/train"
    cycles: int = 0
    ind: int = 2
    norm: str = "frozen"
    mode: str = "exact"
    readout: str = "last"
    head: str = "adjoint"
    epochs: float = 1.0
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    grad_clip: float = 0.5
    poly_power: float = 0.9
    seed: int = 0
    val_size: Optional[int] = None
    val_limit: Optional[int] = None
    limit_train: Optional[int] = None
    adversarial: bool = False
    eps: Optional[float] = None
    pgd_steps: int = 7
    pgd_step_size: Optional[float] = None
    clean_weight: Optional[float] = None
    mse_weight: float = 0.1
    objective: str = "ce"
    gen_weight: float = 1.0
    estep_cycles: int = 1
    unlabelled: str = "map"
    learn_sigma2: bool = False
    labels_per_class: Optional[int] = None
    labelled_batch: Optional[int] = None
    optimizer: str = "sgd"
    sigma2: float = 1.0
    tau2: float = math.inf
    width: int = 1
    dense_width: int = 128
    eval_every: int = 0
    eval_batch_size: int = 200
    checkpoint_minutes: float = 10.0
    init_from: Optional[str] = None
    data_dir: Optional[str] = None
    test: bool = False
    channels_last: bool = False
    command: str = ""

    def validate(self) -> "TrainConfig":
        """``self`` if every option is in range (finite where a number), else ``ConfigError``
        naming the option (as its ``--flag``)."""
        choices = {"norm": ("none", "frozen", "original"), "mode": ("exact", "original"),
                   "readout": ("last", "avg"), "head": ("adjoint", "nearest"), "objective": OBJECTIVES[:3],
                   "unlabelled": UNLABELLED, "optimizer": ("sgd", "adam")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                _bad(name, f"must be one of {allowed}", getattr(self, name))
        for name, low, strict in _RANGES:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    not math.isfinite(value) or value < low or (strict and value == low):
                _bad(name, f"must be a finite number {'>' if strict else '>='} {low:g}", value)
        if not 0 <= self.momentum < 1:
            _bad("momentum", "must be in [0, 1)", self.momentum)
        if not self.tau2 > 0:
            _bad("tau2", "must be > 0 (inf: no observation term)", self.tau2)
        if self.adversarial and self.objective != "ce":
            _bad("objective", "must be ce with --adversarial (its own objective)", self.objective)
        if self.labelled_batch is not None:
            if self.labels_per_class is None:
                _bad("labelled_batch", "needs --labels-per-class", self.labelled_batch)
            if not 1 <= self.labelled_batch <= self.batch_size:
                _bad("labelled_batch", f"must be in [1, --batch-size {self.batch_size}]",
                     self.labelled_batch)
        if self.eps is not None and self.eps > 2:
            _bad("eps", "must be <= 2 (input units: [-1, 1] spans 2)", self.eps)
        return self

    def resolved(self, recipe: Recipe) -> "TrainConfig":
        """A copy with unset options filled from ``recipe.defaults`` (then generic defaults)."""
        generic = {"val_size": 5000, "eps": 0.0, "pgd_step_size": 0.0, "clean_weight": 1.0}
        values = asdict(self)
        for name in generic:
            if values[name] is None:
                values[name] = recipe.defaults.get(name, generic[name])
        return TrainConfig(**values)


# (option, lower bound, bound excluded): integers and floats that must be finite and in range
_RANGES = (("cycles", 0, False), ("ind", 0, False), ("epochs", 0, True), ("batch_size", 1, False),
           ("lr", 0, False), ("momentum", 0, False), ("weight_decay", 0, False),
           ("grad_clip", 0, True), ("poly_power", 0, False), ("seed", 0, False),
           ("val_size", 1, False), ("val_limit", 1, False), ("limit_train", 1, False),
           ("eps", 0, False), ("pgd_steps", 1, False), ("pgd_step_size", 0, False),
           ("clean_weight", 0, False), ("mse_weight", 0, False), ("eval_every", 0, False),
           ("eval_batch_size", 1, False), ("checkpoint_minutes", 0, False),
           ("gen_weight", 0, False), ("estep_cycles", 0, False), ("labels_per_class", 1, False),
           ("labelled_batch", 1, False), ("sigma2", 0, True), ("width", 1, False),
           ("dense_width", 1, False))
# options that may differ on --resume without being listed: they do not change the trajectory
RESUME_FREE = ("command", "out", "test", "checkpoint_minutes", "eval_batch_size")
RUN_FILES = ("log.jsonl", "last.pt", "best.pt", "summary.json")


def _bad(name: str, what: str, value: Any) -> None:
    raise ConfigError(f"--{name.replace('_', '-')} {what}, got {value!r}")


class TrainingDiverged(ConfigError):
    """The loss or the gradient norm became NaN/inf (the last good state is in ``last.pt``)."""


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT stopped the run at a step boundary; ``str()`` says where the checkpoint is."""


def resume_differences(stored: dict[str, Any], config: "TrainConfig",
                       allow_changes: tuple[str, ...] = ()) -> list[str]:
    """``"name: stored -> new"`` for every option that differs from the run's stored
    configuration, except ``RESUME_FREE`` and ``allow_changes``."""
    new, default = asdict(config), asdict(TrainConfig())
    old = {k: stored.get(k, default[k]) for k in new}  # (options added since: their default)
    return [f"{k}: {old[k]!r} -> {new[k]!r}" for k in new
            if k not in RESUME_FREE and k not in allow_changes and old[k] != new[k]]


def prepare_run_dir(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to mix runs: ``out`` holding a run needs ``resume`` or ``overwrite`` (which
    deletes the run's files, nothing else); ``resume`` needs ``out/last.pt``. The directory
    must be writable (checked by creating it and a probe file) before any work."""
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite exclude each other")
    existing = [f for f in RUN_FILES if (out / f).exists()]
    if resume and not (out / "last.pt").is_file():
        raise ConfigError(f"--resume: {out / 'last.pt'} does not exist (nothing to resume; "
                          f"drop --resume to start the run)")
    if existing and not resume and not overwrite:
        raise ConfigError(f"--out {out} already holds a run ({', '.join(existing)}); pass "
                          f"--resume to continue it or --overwrite to replace it")
    if overwrite:
        for f in existing:
            (out / f).unlink()
    check_writable(out, "--out")


class _StopOnSigint:
    """While active, the first SIGINT only sets ``requested`` (the loop stops at the end of the
    step); a second one raises ``KeyboardInterrupt`` at once. Inactive off the main thread."""

    def __init__(self):
        self.requested, self._previous = False, None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


def total_steps(config: TrainConfig, n_train: int) -> int:
    """Optimiser steps of the run: ``ceil(epochs × batches per epoch)`` (drop_last batches)."""
    per_epoch = num_batches(n_train, config.batch_size, drop_last=True)
    if per_epoch < 1:
        raise ValueError(f"batch_size {config.batch_size} exceeds the {n_train} training items")
    return max(1, math.ceil(config.epochs * per_epoch))


def feedback_warning(config: TrainConfig) -> Optional[str]:
    """Why this run is likely to stall at chance, or None: ``--mode exact`` with feedback
    cycles, trained from scratch (no ``--init-from``).

    With τ² = ∞ the exact h-step replaces the level-0 feature by the rendering g_0 of the first
    pass's class ŷ, and the z-steps align every gate with that rendering, so a later pass
    re-predicts ŷ with logits ⟨g_0(ŷ), g_0(y)⟩ (+ bias terms): quadratic in the rendering's scale
    (a test), whatever the input. With first-pass accuracy p over K classes the cross-entropy of
    such a pass is lowest at margin log(p(K−1)/(1−p)), ≤ 0 while p ≤ 1/K: from scratch the later
    passes' loss, whose gradient is orders of magnitude larger than the plain pass's at
    initialisation, only shrinks the feedback to zero, and after gradient clipping the plain pass
    barely trains (issue 5: WRN-16-2 on CIFAR-10). A warm start from an accurate CNN avoids it.
    """
    if config.mode != "exact" or config.cycles == 0 or config.init_from:
        return None
    return ("--mode exact with feedback cycles trained from scratch tends to stall at chance: "
            "the exact engine's later passes re-predict the first pass's class with a margin "
            "quadratic in the rendering's scale, so while the plain pass is near chance their "
            "cross-entropy (huge at initialisation) only drives the feedback to zero and the "
            "clipped gradient leaves the plain pass untrained. Train the CNN first (--cycles 0) "
            "to a good accuracy and warm-start from it (--init-from RUN/best.pt), or use "
            "--mode original.")


@torch.no_grad()
def evaluate(model: CNNF, x: torch.Tensor, y: torch.Tensor, batch_size: int = 200
             ) -> dict[str, Any]:
    """Accuracy of the model's readout and of every pass on ``(x (N, ...), y (N,))``."""
    correct, per_pass = 0, None
    device = next(model.parameters()).device
    for xb, yb in iterate_batches(x, y, batch_size, shuffle=False):
        xb, yb = xb.to(device), yb.to(device)
        passes = model.forward_passes(xb)
        correct += int((model.readout_logits(passes).argmax(1) == yb).sum())
        hits = [int((z.argmax(1) == yb).sum()) for z in passes]
        per_pass = hits if per_pass is None else [a + b for a, b in zip(per_pass, hits)]
    n = len(y)
    return {"accuracy": correct / n, "per_pass": [h / n for h in per_pass or []], "n": n}


def build_objective(config: TrainConfig) -> Objective:
    """The run's objective (``zoo.training.objectives``): ``config.objective``, with
    ``--adversarial`` meaning the adversarial recipe."""
    name = "adversarial" if config.adversarial else config.objective
    adversarial = dict(eps=config.eps, step_size=config.pgd_step_size, steps=config.pgd_steps,
                       clean_weight=config.clean_weight, mse_weight=config.mse_weight)
    return make_objective(name, gen_weight=config.gen_weight, estep_cycles=config.estep_cycles,
                          unlabelled=config.unlabelled, learn_sigma2=config.learn_sigma2,
                          adversarial=adversarial)


@dataclass
class _Run:
    """Everything a run needs, resolved from its configuration (``_resolve``) and advanced by
    ``_loop``: model, data, optimiser, objective, log and progress."""
    config: TrainConfig
    recipe: Recipe
    out: Path
    ddp: Any
    device: Any
    log: Any
    generator: torch.Generator
    model: CNNF
    objective: Objective
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    optimizer: torch.optim.Optimizer
    progress: dict

    @property
    def per_epoch(self) -> int:
        if self.config.labelled_batch is not None:
            return mixed_per_epoch(self.y_train, self.config.batch_size,
                                   self.config.labelled_batch)
        return num_batches(len(self.y_train), self.config.batch_size, drop_last=True)

    @property
    def total(self) -> int:
        if self.config.labelled_batch is None:
            return total_steps(self.config, len(self.y_train))
        if self.per_epoch < 1:
            raise ConfigError(f"--labelled-batch {self.config.labelled_batch}: no full batch "
                              f"of {self.config.batch_size} can be drawn from the training split")
        return max(1, math.ceil(self.config.epochs * self.per_epoch))

    def batches(self, epoch: int, start_batch: int):
        """The training batches of ``epoch`` from batch ``start_batch`` on: seeded by
        ``(seed, epoch)``; with ``labelled_batch``, ``semi.mixed_batches``."""
        config = self.config
        if config.labelled_batch is not None:
            return mixed_batches(self.x_train, self.y_train, config.batch_size,
                                 config.labelled_batch, seed=config.seed, epoch=epoch,
                                 start_batch=start_batch)
        return iterate_batches(self.x_train, self.y_train, config.batch_size, shuffle=True,
                               seed=config.seed, epoch=epoch, start_batch=start_batch,
                               drop_last=True)

    def checkpoint(self, rng: Optional[dict] = None) -> None:
        save_checkpoint(self.out / "last.pt", {"model": self.model.state_dict(),
                                               "optimizer": self.optimizer.state_dict(),
                                               "rng": rng or rng_state(self.generator),
                                               "progress": dict(self.progress),
                                               "config": asdict(self.config)})

    def validate(self) -> None:
        result = evaluate(self.model, self.x_val, self.y_val, self.config.eval_batch_size)
        self.log.write("val", step=self.progress["step"], **result)
        if result["accuracy"] > self.progress["best_val"]:
            self.progress.update(best_val=result["accuracy"], best_step=self.progress["step"])
            extra = {"sigma2": self.model.dgm.sigma2} if self.config.learn_sigma2 else {}
            save_checkpoint(self.out / "best.pt", {"model": self.model.state_dict(),
                                                   "step": self.progress["step"],
                                                   "val": result, "config": asdict(self.config),
                                                   **extra})


def train(config: TrainConfig, *, resume: bool = False, overwrite: bool = False,
          allow_changes: tuple[str, ...] = (), progress: Optional[bool] = None
          ) -> dict[str, Any]:
    """Run (or resume) training as ``config`` says; returns the run summary (also written to
    ``<out>/summary.json``): steps, wall time, best validation accuracy and step, and the test
    accuracy of the best checkpoint when ``config.test``.

    ``resume``: continue ``<out>/last.pt`` (options other than ``RESUME_FREE`` must equal the
    stored ones unless named in ``allow_changes``); ``overwrite``: replace the run in ``out``.
    Raises ``ConfigError`` (bad options, a run in the way, a resume with another configuration),
    ``TrainingDiverged`` (NaN/inf loss) or ``TrainingInterrupted`` (Ctrl-C), see the module
    docstring. Resolve (``_resolve``) → loop (``_loop``, one ``_step`` per batch, the loss a
    pluggable ``Objective``) → finish (``_finish``)."""
    run = _resolve(config, resume, overwrite, allow_changes)
    _loop(run, progress)
    shutdown(run.ddp)       # all ranks together; finishing (test accuracy) is rank 0's alone
    if not run.ddp.is_main:
        return {"rank": run.ddp.rank, "steps": run.progress["step"]}
    return _finish(run.model, run.config, run.recipe, run.progress, run.log)


def _resolve(config: TrainConfig, resume: bool, overwrite: bool,
             allow_changes: tuple[str, ...]) -> _Run:
    """Build the run of ``config``: options checked and filled from the recipe, the run
    directory prepared, seeded model (warm start), train/validation split (semi-supervised:
    labels kept for ``labels_per_class`` images per class, the rest -1), optimiser, objective;
    a resumed run's state from last.pt."""
    recipe = get_recipe(config.dataset)
    config = config.validate().resolved(recipe).validate()
    out = Path(config.out)
    ddp = init_from_env()
    if ddp.is_main:
        prepare_run_dir(out, resume, overwrite)
    unknown = [o for o in allow_changes if o not in CONFIG_FIELDS]
    if unknown:
        raise ConfigError(f"--allow-change: unknown options {unknown}; known: "
                          f"{', '.join(CONFIG_FIELDS)}")
    if resume:
        stored = load_checkpoint(out / "last.pt").get("config", {})
        changed = resume_differences(stored, config, allow_changes)
        if changed:
            raise ConfigError(f"--resume with another configuration ({'; '.join(changed)}); "
                              f"pass the run's options, or list the changes to accept with "
                              f"--allow-change {','.join(c.split(':')[0] for c in changed)}")
    device = ddp.device()
    log = JsonlLog(out / "log.jsonl") if ddp.is_main else NullLog()
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model = recipe.build(config).to(device)
    if config.channels_last:  # (4-d weights; batches follow in _step)
        model = model.to(memory_format=torch.channels_last)
    if config.init_from:
        model.load_state_dict(model_state(load_checkpoint(config.init_from)))

    x_all, y_all = recipe.load("train", config.data_dir)
    train_idx, val_idx = train_val_split(len(y_all), config.val_size, config.seed)
    if config.limit_train is not None:
        train_idx = train_idx[:config.limit_train]
    if config.val_limit is not None:
        val_idx = val_idx[:config.val_limit]
    x_train, y_train = torch.from_numpy(x_all[train_idx]), torch.from_numpy(y_all[train_idx])
    if config.labels_per_class is not None:
        y_train = torch.from_numpy(keep_labels(y_all[train_idx], config.labels_per_class,
                                               config.seed))
    x_val, y_val = torch.from_numpy(x_all[val_idx]), torch.from_numpy(y_all[val_idx])

    run = _Run(config, recipe, out, ddp, device, log, generator, model, build_objective(config),
               x_train, y_train, x_val, y_val, _optimizer(config, model),
               {"step": 0, "wall_s": 0.0, "best_val": -1.0, "best_step": -1})
    total = run.total
    if resume:
        ckpt = load_checkpoint(out / "last.pt")
        model.load_state_dict(ckpt["model"])
        run.optimizer.load_state_dict(ckpt["optimizer"])
        set_rng_state(ckpt["rng"], generator)
        run.progress.update(ckpt["progress"])
        if "sigma2" in run.progress:
            model.dgm.sigma2 = run.progress["sigma2"]
    ddp.broadcast_parameters(model)
    if not resume:
        log.write("start", config=asdict(config), n_train=len(y_train), n_val=len(y_val),
                  total_steps=total, world_size=ddp.world)
        warning = feedback_warning(config)
        if warning and ddp.is_main:
            warnings.warn(warning, RuntimeWarning, stacklevel=3)
            log.write("warning", message=warning)
    return run


def _optimizer(config: TrainConfig, model: CNNF) -> torch.optim.Optimizer:
    """SGD with momentum and weight decay (the CNN-F recipe) or Adam (``--optimizer adam``)."""
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.lr,
                                weight_decay=config.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                           weight_decay=config.weight_decay)


def _loop(run: _Run, progress: Optional[bool]) -> None:
    """Optimiser steps until ``total``: seeded batch order per epoch, validation at each epoch
    end (and every ``eval_every`` steps), checkpoints every epoch and ``checkpoint_minutes``,
    a stop at the end of the step on Ctrl-C."""
    config, ddp, log, state, out = run.config, run.ddp, run.log, run.progress, run.out
    per_epoch, total = run.per_epoch, run.total
    step = state["step"]
    bar = tqdm(total=total, initial=step, disable=not ddp.is_main or (
        not sys.stderr.isatty() if progress is None else not progress),
        desc=f"train {config.dataset}", unit="step")
    started, last_ckpt = time.monotonic() - state["wall_s"], time.monotonic()
    with _StopOnSigint() as sigint:
        while step < total:
            epoch, start_batch = divmod(step, per_epoch)
            for xb, yb in run.batches(epoch, start_batch):
                if step >= total:
                    break
                lr, mean_loss, grad_norm, parts, seconds = _step(run, xb, yb, step, bar)
                step += 1
                state.update(step=step, wall_s=time.monotonic() - started)
                images_per_s = len(xb) / seconds
                log.write("step", step=step, epoch=epoch, lr=lr, loss=mean_loss,
                          grad_norm=grad_norm, seconds=seconds, images_per_s=images_per_s,
                          **parts)
                bar.update(1)
                bar.set_postfix(loss=f"{mean_loss:.3f}", img_s=f"{images_per_s:.1f}")
                end_of_epoch = step % per_epoch == 0 or step == total
                if ddp.is_main and (end_of_epoch or (config.eval_every and
                                                     step % config.eval_every == 0)):
                    run.validate()
                if end_of_epoch:
                    log.write("epoch", epoch=epoch, step=step, wall_s=state["wall_s"])
                stop = ddp.mean(float(sigint.requested)) > 0    # every rank stops together
                if ddp.is_main and (end_of_epoch or stop or time.monotonic() -
                                    last_ckpt >= 60 * config.checkpoint_minutes):
                    run.checkpoint()
                    last_ckpt = time.monotonic()
                if stop:
                    bar.close()
                    shutdown(ddp)
                    raise TrainingInterrupted(
                        f"interrupted after step {step} of {total}; checkpoint written to "
                        f"{out / 'last.pt'}; continue with --resume")
    bar.close()


def _step(run: _Run, xb: torch.Tensor, yb: torch.Tensor, step: int, bar) -> tuple:
    """One optimiser step on a batch: augment, shard, poly learning rate, the objective's loss,
    backward, gradient averaging and clipping, the update, the objective's closed-form
    updates (σ²). A NaN/inf loss or gradient norm writes the state before the step and raises
    ``TrainingDiverged``. Returns ``(lr, mean loss, grad norm, parts, seconds)``."""
    config, model, optimizer, ddp, device = run.config, run.model, run.optimizer, run.ddp, \
        run.device
    rng_before = rng_state(run.generator)
    if run.recipe.augment is not None:
        xb = run.recipe.augment(xb, run.generator)
    xb, yb = (t.to(device) for t in ddp.shard(xb, yb))
    if run.config.channels_last:
        xb = xb.contiguous(memory_format=torch.channels_last)
    lr = poly_lr(config.lr, step, run.total, config.poly_power)
    for group in optimizer.param_groups:
        group["lr"] = lr
    t0 = time.monotonic()
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        loss, parts = run.objective(model, Batch(xb, yb, run.generator))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    ddp.average_gradients(model.parameters())
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    mean_loss = ddp.mean(float(loss.detach()))
    if not (math.isfinite(mean_loss) and math.isfinite(float(grad_norm))):
        if ddp.is_main:       # the model is still the one before this step
            run.checkpoint(rng_before)
        bar.close()
        shutdown(ddp)
        raise TrainingDiverged(
            f"training diverged at step {step + 1}: loss {mean_loss}, gradient "
            f"norm {float(grad_norm)} (lr {lr:g}); the last good state (step "
            f"{step}) is in {run.out / 'last.pt'}; lower --lr or --grad-clip")
    optimizer.step()
    run.objective.after_step(model)
    if config.learn_sigma2:
        run.progress["sigma2"] = model.dgm.sigma2
    return lr, mean_loss, float(grad_norm), parts, time.monotonic() - t0


def _throughput(log_path: Path, batch_size: int) -> Optional[float]:
    """Training images per second over the whole run (every session of a resumed run): one
    full global batch per logged step (batches are drawn with drop_last) over the sum of the
    step times (augmentation, attack, forward, backward and update; validation and checkpoints
    excluded). Steps logged before throughput was recorded are left out."""
    lines = log_path.read_text().splitlines() if log_path.is_file() else []
    seconds = [event["seconds"] for event in map(json.loads, lines)
               if event.get("event") == "step" and "images_per_s" in event]
    return round(batch_size * len(seconds) / sum(seconds), 2) if sum(seconds) > 0 else None


def _finish(model: CNNF, config: TrainConfig, recipe: Recipe, progress_state: dict,
            log: JsonlLog) -> dict[str, Any]:
    out = Path(config.out)
    summary_path = out / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    best = load_checkpoint(out / "best.pt")
    summary.update(config=asdict(config), steps=progress_state["step"],
                   wall_s=progress_state["wall_s"], best_step=best["step"], val=best["val"],
                   images_per_s=_throughput(out / "log.jsonl", config.batch_size))
    if "sigma2" in best:
        summary["sigma2"] = best["sigma2"]
    if config.test and "test" not in summary:
        model.load_state_dict(best["model"])
        if "sigma2" in best:
            model.dgm.sigma2 = best["sigma2"]
        x_test, y_test = recipe.load("test", config.data_dir)
        summary["test"] = evaluate(model, torch.from_numpy(x_test), torch.from_numpy(y_test),
                                   config.eval_batch_size)
        log.write("test", step=best["step"], **summary["test"])
    summary_path.write_text(json.dumps(summary, indent=2))
    return summary

CONFIG_FIELDS = tuple(f.name for f in fields(TrainConfig))
