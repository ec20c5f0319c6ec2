"""zoo.training: losses against direct formulas, the poly schedule, bit-identical resume after an
interruption, warm start, model selection on validation only, and the ``dgm train`` CLI."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings

from backends import ConfigError
from dgm import DGM
from dgm import layers as L
from dgm.testing import check_program, problems_for
from inference import preset
from zoo.models.cnnf import CNNF
from zoo.models.fashion import fashion_pixel_dgm
from zoo.training import (RECIPES, Recipe, TrainConfig, adversarial_loss, clean_loss,
                          load_checkpoint, poly_lr, train)
from zoo.training import _jsonl

torch.set_num_threads(1)


def _tiny(config) -> CNNF:
    model = DGM([L.Conv2d(1, 3, 3, padding=1), L.Switch(3), L.MaxPool(2), L.Flatten(),
                 L.Dense(3 * 3 * 3, 6), L.Switch(6)], classes=3, input_shape=(1, 6, 6))
    return CNNF(model, cycles=config.cycles, options=preset(config.mode), seed=config.seed)


def _data(split, data_dir):
    rng = np.random.default_rng(0 if split == "train" else 1)
    y = rng.integers(0, 3, 40 if split == "train" else 12)
    x = rng.uniform(-1, 1, (len(y), 1, 6, 6)).astype(np.float32) * 0.3
    x[:, 0, :3, :3] += (y[:, None, None] - 1).astype(np.float32)   # learnable signal
    return np.clip(x, -1, 1), y.astype(np.int64)


@pytest.fixture
def tiny(monkeypatch):
    calls = []

    def load(split, data_dir):
        calls.append(split)
        return _data(split, data_dir)

    monkeypatch.setitem(RECIPES, "tiny", Recipe("tiny", _tiny, load,
                                                 defaults={"val_size": 8, "eps": 0.1,
                                                           "pgd_step_size": 0.05}))
    return calls


def _config(tmp_path, name, **kw) -> TrainConfig:
    base = dict(dataset="tiny", out=str(tmp_path / name), batch_size=8, epochs=1.5, lr=0.1,
                cycles=1)
    return TrainConfig(**{**base, **kw})


def _final_weights(out) -> dict[str, torch.Tensor]:
    return load_checkpoint(f"{out}/last.pt")["model"]


def test_poly_lr_formula():
    assert poly_lr(0.05, 0, 100) == 0.05
    assert poly_lr(0.05, 100, 100) == 0.0
    assert poly_lr(0.05, 50, 100) == pytest.approx(0.05 * 0.5 ** 0.9)
    lrs = [poly_lr(1.0, s, 10) for s in range(11)]
    assert all(a > b for a, b in zip(lrs, lrs[1:]))
    with pytest.raises(ValueError, match="step"):
        poly_lr(0.05, 11, 10)


def test_clean_loss_is_mean_cross_entropy_over_passes():
    g = torch.Generator().manual_seed(0)
    passes = [torch.randn(5, 4, generator=g) for _ in range(3)]
    y = torch.tensor([0, 1, 2, 3, 0])
    ref = np.mean([-np.mean(np.log(np.exp(z.numpy())[range(5), y.numpy()]
                                   / np.exp(z.numpy()).sum(1))) for z in passes])
    assert float(clean_loss(passes, y)) == pytest.approx(ref, rel=1e-5)


def test_adversarial_loss_matches_recipe_formula():
    g = torch.Generator().manual_seed(1)
    y = torch.tensor([1, 0, 2])
    x_obs = torch.randn(3, 2, 4, 4, generator=g)
    clean = SimpleNamespace(logits=[torch.randn(3, 3, generator=g) for _ in range(3)],
                            renderings=[torch.randn(3, 2, 4, 4, generator=g) for _ in range(2)],
                            x_obs=x_obs)
    adv = SimpleNamespace(logits=[torch.randn(3, 3, generator=g) for _ in range(3)],
                          renderings=[torch.randn(3, 2, 4, 4, generator=g) for _ in range(2)],
                          x_obs=torch.randn(3, 2, 4, 4, generator=g))
    loss, parts = adversarial_loss(clean, adv, y, clean_weight=0.1, mse_weight=0.1)
    ce = sum(0.1 * F.cross_entropy(a, y) + F.cross_entropy(b, y)
             for a, b in zip(clean.logits, adv.logits)) / 6
    mse = np.mean([((r - x_obs) ** 2).mean().item() for r in adv.renderings])
    assert float(loss) == pytest.approx(float(ce) + 0.1 * mse, rel=1e-5)
    assert parts["mse"] == pytest.approx(mse, rel=1e-5)


class _Interrupt(Exception):
    pass


@pytest.mark.parametrize("adversarial", [False, True])
def test_resume_after_interruption_is_bit_identical(tmp_path, tiny, monkeypatch, adversarial):
    straight = train(_config(tmp_path, "straight", adversarial=adversarial))
    assert straight["steps"] == 6                       # 32 train items / 8 = 4 per epoch × 1.5

    write = _jsonl.JsonlLog.write

    def interrupting(self, event, **fields):
        if event == "step" and fields["step"] == 4:      # after step 4's update, before its
            raise _Interrupt                              # checkpoint: resume redoes step 4
        write(self, event, **fields)

    cfg = _config(tmp_path, "resumed", adversarial=adversarial, checkpoint_minutes=0)
    monkeypatch.setattr(_jsonl.JsonlLog, "write", interrupting)
    with pytest.raises(_Interrupt):
        train(cfg)
    monkeypatch.setattr(_jsonl.JsonlLog, "write", write)
    assert load_checkpoint(f"{cfg.out}/last.pt")["progress"]["step"] == 3
    resumed = train(cfg, resume=True)
    assert resumed["steps"] == 6
    a, b = _final_weights(straight["config"]["out"]), _final_weights(cfg.out)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert straight["val"] == resumed["val"]


def test_training_reduces_loss_and_selects_on_validation_only(tmp_path, tiny):
    cfg = _config(tmp_path, "sel", epochs=6, eval_every=2, cycles=0)
    summary = train(cfg)
    assert "test" not in tiny                           # the test split was never loaded
    lines = [json.loads(s) for s in open(f"{cfg.out}/log.jsonl")]
    vals = [r for r in lines if r["event"] == "val"]
    best = max(vals, key=lambda r: r["accuracy"])
    assert summary["val"]["accuracy"] == best["accuracy"]
    assert summary["best_step"] == min(r["step"] for r in vals if r["accuracy"] == best["accuracy"])
    losses = [r["loss"] for r in lines if r["event"] == "step"]
    assert np.mean(losses[-4:]) < np.mean(losses[:4])
    tested = train(_config(tmp_path, "sel", epochs=6, eval_every=2, cycles=0, test=True),
                   resume=True)                          # complete run: only evaluates the test
    assert tiny.count("test") == 1 and tested["test"]["n"] == 12


def test_warm_start_loads_the_checkpoint(tmp_path, tiny):
    first = train(_config(tmp_path, "a", cycles=0))
    cfg = _config(tmp_path, "b", init_from=f"{first['config']['out']}/best.pt", lr=0.0,
                  weight_decay=0.0, cycles=2, epochs=0.25)
    train(cfg)
    start = load_checkpoint(f"{first['config']['out']}/best.pt")["model"]
    end = _final_weights(cfg.out)
    assert all(torch.equal(start[k], end[k]) for k in start)


def test_cli_trains_exports_and_the_weights_reload(tmp_path, tiny):
    from zoo.cli import main
    from zoo.weights import load_weights

    prefix, out = tmp_path / "cnn", tmp_path / "run"
    argv = ["train", "tiny", "--out", str(out), "--cycles", "0", "--epochs", "1",
            "--batch-size", "8", "--no-progress", "--export", str(prefix), "--name", "tiny_cnn"]
    assert main(argv) == 0
    card = json.loads(prefix.with_suffix(".json").read_text())
    assert card["arch"]["cycles"] == 0 and card["training"]["steps"] == 4
    assert card["threat_model"].startswith("Trained on clean images only")
    assert card["training"]["command"] == (f"dgm train tiny --out {out} --batch-size 8 "
                                           f"--export {prefix} --name tiny_cnn --no-progress")
    net = _tiny(TrainConfig(cycles=0))
    assert load_weights(net, f"{prefix}.safetensors")["sha256"] == card["sha256"]
    best = load_checkpoint(out / "best.pt")["model"]
    assert all(torch.equal(best[k], v) for k, v in net.state_dict().items())


def test_the_card_says_whether_the_run_was_adversarial():
    from zoo.training.export import threat_model
    clean = threat_model({"adversarial": False})
    adv = threat_model({"adversarial": True, "pgd_steps": 7, "eps": 0.2, "pgd_step_size": 0.071})
    assert clean.startswith("Trained on clean images only") and "clean images" not in adv
    assert adv.startswith("Adversarially trained: L-inf PGD-7") and "eps 0.2, step 0.071" in adv


def test_exact_feedback_logits_are_quadratic_in_the_head_scale():
    """Why exact mode stalls from scratch (issue 5): with τ² = ∞ the h-step sets h to the
    rendering g_0 ∝ Aᵀe_ŷ, so a later pass's logits s_y = ⟨g_0(ŷ), g_0(y)⟩ (+ bias terms, zero
    here) scale with the head squared, while the plain pass scales linearly: the feedback's
    confidence in the first pass's class, not the input, sets the later passes' margin."""
    net = _tiny(TrainConfig(cycles=2, mode="exact"))
    x = torch.from_numpy(_data("train", None)[0][:8])
    with torch.no_grad():
        base = net.forward_passes(x)
        net.weights["head__weight"].mul_(3.0)
        scaled = net.forward_passes(x)
    assert torch.allclose(scaled[0], 3 * base[0], rtol=1e-5, atol=1e-6)
    for b, s in zip(base[1:], scaled[1:]):
        assert b.abs().max() > 0 and torch.allclose(s, 9 * b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("changes, warns", [({}, True), ({"cycles": 0}, False),
                                            ({"mode": "original"}, False),
                                            ({"init_from": "cnn.pt"}, False)])
def test_exact_feedback_from_scratch_warns(changes, warns):
    from zoo.training import feedback_warning
    config = TrainConfig(**{"cycles": 2, "mode": "exact", **changes})
    message = feedback_warning(config)
    assert (message is not None) == warns
    if warns:
        assert "--init-from" in message and "--mode original" in message


def test_train_emits_the_feedback_warning(tmp_path, tiny):
    with pytest.warns(RuntimeWarning, match="--init-from"):
        train(_config(tmp_path, "exact", cycles=1, epochs=0.25))
    lines = [json.loads(s) for s in open(tmp_path / "exact" / "log.jsonl")]
    assert [r["event"] for r in lines][:2] == ["start", "warning"]


# -- issue 16: nothing lost, nothing mixed --------------------------------------------------------

def _same_weights(a_out, b_out) -> bool:
    a, b = _final_weights(a_out), _final_weights(b_out)
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("change, match", [
    (dict(val_size=0), "--val-size"), (dict(epochs=0), "--epochs"),
    (dict(limit_train=-1), "--limit-train"), (dict(lr=float("nan")), "--lr"),
    (dict(lr=float("inf")), "--lr"), (dict(batch_size=0), "--batch-size"),
    (dict(readout="bogus"), "--readout"), (dict(eps=8.0), "--eps"),
    (dict(grad_clip=float("nan")), "--grad-clip"), (dict(momentum=1.0), "--momentum"),
])
def test_bad_options_are_refused_before_any_work(tmp_path, tiny, change, match):
    """case 4/5/7: --val-size 0 trained an epoch then died (ZeroDivisionError); --epochs 0 ran a
    step; --limit-train -1 meant "all but one"; --lr nan trained NaN to exit 0."""
    with pytest.raises(ConfigError, match=match):
        train(_config(tmp_path, "bad", **change))
    assert tiny == [] and not (tmp_path / "bad").exists()


def test_existing_out_needs_resume_or_overwrite(tmp_path, tiny):
    """case 3: a second run into the same --out kept the old run's files (test accuracy, the
    first command in the exported card)."""
    first = _config(tmp_path, "run", cycles=0, epochs=0.5, test=True)
    train(first)
    second = _config(tmp_path, "run", cycles=0, epochs=0.5, lr=0.05)
    with pytest.raises(ConfigError, match="already holds a run.*--resume.*--overwrite"):
        train(second)
    summary = train(second, overwrite=True)
    assert "test" not in summary                        # the first run's test result is gone
    starts = [json.loads(s) for s in open(tmp_path / "run" / "log.jsonl")]
    assert [r["config"]["lr"] for r in starts if r["event"] == "start"] == [0.05]


def test_resume_needs_a_checkpoint_and_the_same_configuration(tmp_path, tiny):
    """case 6: --resume without a checkpoint started afresh; with another seed/lr/... it
    continued silently (a new seed re-splits train/val)."""
    with pytest.raises(ConfigError, match="last.pt does not exist"):
        train(_config(tmp_path, "r", cycles=0), resume=True)
    train(_config(tmp_path, "r", cycles=0, epochs=0.5))
    for change in (dict(seed=1), dict(lr=0.2), dict(batch_size=4), dict(val_size=4)):
        with pytest.raises(ConfigError, match=f"{next(iter(change))}: .* -> "):
            train(_config(tmp_path, "r", cycles=0, epochs=0.5, **change), resume=True)
    done = train(_config(tmp_path, "r", cycles=0, epochs=1.0), resume=True,
                 allow_changes=("epochs",))
    assert done["steps"] == 4
    with pytest.raises(ConfigError, match="unknown options"):
        train(_config(tmp_path, "r", cycles=0), resume=True, allow_changes=("bogus",))


def test_unwritable_out_fails_before_any_work(tmp_path, tiny):
    """case 4: an unwritable --out failed only after the work."""
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="--out .*file.* not a writable directory"):
        train(_config(tmp_path, "file/run"))
    assert tiny == []


def test_nan_loss_stops_after_keeping_the_last_good_state(tmp_path, tiny, monkeypatch):
    """case 5: a NaN loss trained on to exit 0. Now the run stops before the bad step with the
    state before it in last.pt, from which a resume reproduces the straight run exactly."""
    from zoo.training import loop, objectives
    straight = train(_config(tmp_path, "straight", cycles=0))
    real, calls = objectives.clean_loss, []

    def poisoned(passes, y):
        calls.append(1)
        loss = real(passes, y)
        return loss * float("nan") if len(calls) == 3 else loss

    monkeypatch.setattr(objectives, "clean_loss", poisoned)
    cfg = _config(tmp_path, "nan", cycles=0)
    with pytest.raises(loop.TrainingDiverged, match="step 3.*last good state.*last.pt"):
        train(cfg)
    ckpt = load_checkpoint(f"{cfg.out}/last.pt")
    assert ckpt["progress"]["step"] == 2
    assert all(bool(v.isfinite().all()) for v in ckpt["model"].values())
    monkeypatch.setattr(objectives, "clean_loss", real)
    assert train(cfg, resume=True)["steps"] == 6
    assert _same_weights(straight["config"]["out"], cfg.out)


def _ctrl_c_after_step(monkeypatch, step: int):
    """Send this process SIGINT right after the run logs ``step``; returns the real log writer."""
    import os
    import signal

    write = _jsonl.JsonlLog.write

    def ctrl_c(self, event, **fields):
        write(self, event, **fields)
        if event == "step" and fields["step"] == step:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(_jsonl.JsonlLog, "write", ctrl_c)
    return write


def test_ctrl_c_checkpoints_and_resume_is_bit_identical(tmp_path, tiny, monkeypatch):
    """case 4: Ctrl-C in training printed a 49-line traceback and saved nothing."""
    import signal

    from zoo.training.loop import TrainingInterrupted
    handler_before = signal.getsignal(signal.SIGINT)  # (SIG_IGN when pytest runs in the background)
    straight = train(_config(tmp_path, "straight", cycles=0))
    write = _ctrl_c_after_step(monkeypatch, 2)
    cfg = _config(tmp_path, "int", cycles=0)
    with pytest.raises(TrainingInterrupted, match="after step 2 of 6.*--resume"):
        train(cfg)
    monkeypatch.setattr(_jsonl.JsonlLog, "write", write)
    assert signal.getsignal(signal.SIGINT) is handler_before
    assert load_checkpoint(f"{cfg.out}/last.pt")["progress"]["step"] == 2
    assert train(cfg, resume=True)["steps"] == 6
    assert _same_weights(straight["config"]["out"], cfg.out)


def test_cli_ctrl_c_exits_130_with_one_line(tmp_path, tiny, monkeypatch, capsys):
    from zoo.cli import main
    write = _ctrl_c_after_step(monkeypatch, 1)
    out = tmp_path / "run"
    argv = ["train", "tiny", "--out", str(out), "--cycles", "0", "--batch-size", "8",
            "--no-progress"]
    assert main(argv) == 130
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "interrupted" in err and str(out / "last.pt") in err
    monkeypatch.setattr(_jsonl.JsonlLog, "write", write)
    assert main(argv) == 2                               # the run is there: --resume needed
    assert "--resume" in capsys.readouterr().err
    assert main(argv + ["--resume"]) == 0


def test_full_disk_is_one_clear_error_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    """case 8: a full disk surfaced as "[enforce fail at inline_container.cc:672]"."""
    from zoo.training.checkpoint import save_checkpoint
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"step": 1})

    def full(obj, f):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(OSError, match=r"could not write checkpoint .*last.pt.*disk space"):
        save_checkpoint(path, {"step": 2})
    monkeypatch.undo()
    assert load_checkpoint(path) == {"step": 1} and not (tmp_path / "last.pt.tmp").exists()


def test_keep_labels_keeps_per_class_labels_and_hides_the_rest():
    from zoo.training.semi import keep_labels
    y = np.random.default_rng(3).integers(0, 4, 200)
    kept = keep_labels(y, 5, seed=1)
    assert ((kept == y) | (kept == -1)).all()
    assert np.bincount(kept[kept >= 0], minlength=4).tolist() == [5, 5, 5, 5]
    assert (keep_labels(y, 5, seed=1) == kept).all() and not (keep_labels(y, 5, 2) == kept).all()


@pytest.mark.parametrize("n_lab, n_unl, batch, lab_batch", [(7, 30, 8, 3), (5, 20, 4, 1),
                                                             (12, 9, 4, 4)])
def test_mixed_batches_hold_a_fixed_labelled_share_and_cover_the_unlabelled(
        n_lab, n_unl, batch, lab_batch):
    """Every batch: lab_batch labelled rows then batch - lab_batch unlabelled ones; an epoch
    draws every unlabelled image at most once (all but the drop_last remainder); the labelled
    stream uses every labelled image once per pass (counts differ by at most 1 over the whole
    run, counted independently of the code); a batch depends only on (seed, epoch, index), so
    a resumed epoch (start_batch) is the tail of the full one; L = batch: labelled images only."""
    from zoo.training.semi import mixed_batches, mixed_per_epoch
    rng = np.random.default_rng(4)
    y = torch.from_numpy(np.concatenate([rng.integers(0, 3, n_lab), np.full(n_unl, -1)]))
    perm = torch.from_numpy(rng.permutation(len(y)))
    y = y[perm]
    x = torch.arange(len(y), dtype=torch.float32)[:, None]      # x = the image's own index
    per_epoch = mixed_per_epoch(y, batch, lab_batch)
    assert per_epoch == ((n_lab if lab_batch == batch else n_unl) //
                         (batch if lab_batch == batch else batch - lab_batch))
    seen_lab = []
    for epoch in range(3):
        batches = list(mixed_batches(x, y, batch, lab_batch, seed=5, epoch=epoch))
        assert len(batches) == per_epoch
        unl_ids = []
        for xb, yb in batches:
            ids = xb[:, 0].long()
            assert xb.shape == (batch, 1) and torch.equal(yb, y[ids])      # rows stay paired
            share = lab_batch if lab_batch < batch else batch
            assert (yb[:share] >= 0).all() and (yb[share:] < 0).all()
            seen_lab += ids[:share].tolist()
            unl_ids += ids[share:].tolist()
        assert len(set(unl_ids)) == len(unl_ids) == per_epoch * (batch - lab_batch)
        tail = list(mixed_batches(x, y, batch, lab_batch, seed=5, epoch=epoch, start_batch=1))
        assert all(torch.equal(a[0], b[0]) for a, b in zip(batches[1:], tail, strict=True))
    counts = np.bincount(seen_lab, minlength=len(y))[(y >= 0).numpy()]
    assert counts.max() - counts.min() <= 1 and counts.sum() == len(seen_lab)
    other = [b[0] for b in mixed_batches(x, y, batch, lab_batch, seed=6, epoch=0)]
    assert not all(torch.equal(a[0], b) for a, b in zip(batches, other))


def test_semi_supervised_run_keeps_balanced_labels_of_training_images_only(tmp_path, tiny):
    """--labels-per-class N: N labels per class among the training split's images (none from
    the validation split), the same for the same seed; --labelled-batch L: each step's batch
    holds L of them (the CE term logs only when a batch has labels)."""
    from zoo.training.loop import _resolve
    cfg = _config(tmp_path, "semi", cycles=0, objective="hybrid", labels_per_class=2,
                  labelled_batch=3, batch_size=5, epochs=2)
    run = _resolve(cfg, False, False, ())
    x_all, y_all = _data("train", None)
    lab = run.y_train >= 0
    assert np.bincount(run.y_train[lab].numpy(), minlength=3).tolist() == [2, 2, 2]
    rows = {tuple(r.flatten().tolist()): i for i, r in enumerate(x_all)}   # image -> index
    val_rows = {rows[tuple(r.flatten().tolist())] for r in run.x_val.numpy()}
    lab_rows = [rows[tuple(r.flatten().tolist())] for r in run.x_train[lab].numpy()]
    assert len(val_rows) == 8 and not val_rows & set(lab_rows)
    assert (y_all[lab_rows] == run.y_train[lab].numpy()).all()      # the true labels
    again = _resolve(_config(tmp_path, "semi2", cycles=0, objective="hybrid",
                             labels_per_class=2, labelled_batch=3, batch_size=5), False, False, ())
    assert torch.equal(again.y_train, run.y_train)
    assert run.per_epoch == (32 - 6) // 2
    summary = train(cfg, overwrite=True)
    steps = [r for r in _read_log(summary["config"]["out"]) if r["event"] == "step"]
    assert len(steps) == 2 * 13 and all("ce" in r and "gen" in r for r in steps)


@pytest.mark.parametrize("change, match", [(dict(labelled_batch=2), "--labels-per-class"),
                                           (dict(labels_per_class=1, labelled_batch=9),
                                            "--labelled-batch")])
def test_labelled_batch_needs_labels_and_fits_the_batch(tmp_path, tiny, change, match):
    with pytest.raises(ConfigError, match=match):
        train(_config(tmp_path, "bad", cycles=0, **change))


@pytest.mark.parametrize("extra", [dict(objective="hybrid", gen_weight=2.0),
                                   dict(objective="generative", learn_sigma2=True),
                                   dict(objective="hybrid", labels_per_class=3,
                                        unlabelled="lse", optimizer="adam", lr=0.01)])
def test_generative_objectives_train_resume_and_log_their_terms(tmp_path, tiny, monkeypatch,
                                                              extra):
    """--objective hybrid/generative and semi-supervised runs: the terms are logged, a resume
    after an interruption is bit-identical (σ² included), the summary has σ² when learned."""
    straight = train(_config(tmp_path, "straight", cycles=0, **extra))
    steps = [r for r in _read_log(straight["config"]["out"]) if r["event"] == "step"]
    assert len(steps) == 6 and all("gen" in r for r in steps)
    if extra["objective"] == "hybrid":
        assert all("ce" in r for r in steps)
    write = _jsonl.JsonlLog.write

    def interrupting(self, event, **fields):
        if event == "step" and fields["step"] == 4:
            raise _Interrupt
        write(self, event, **fields)

    cfg = _config(tmp_path, "cut", cycles=0, checkpoint_minutes=0, **extra)
    monkeypatch.setattr(_jsonl.JsonlLog, "write", interrupting)
    with pytest.raises(_Interrupt):
        train(cfg)
    monkeypatch.setattr(_jsonl.JsonlLog, "write", write)
    again = train(cfg, resume=True)
    assert _same_weights(straight["config"]["out"], cfg.out)
    if extra.get("learn_sigma2"):
        assert straight["sigma2"] != 1.0 and straight["sigma2"] == again["sigma2"]


def _read_log(out):
    return [json.loads(line) for line in open(f"{out}/log.jsonl")]


def test_pixel_model_width_multiplies_the_conv_channels(tmp_path):
    """--width w: conv channels 16w and 32w, dense 49·32w → 128 (weights counted by hand);
    the card's arch carries it, so the hub rebuilds the wide model from the weights file."""
    from zoo.models import create_model
    from zoo.training import get_recipe
    from zoo.weights import save_weights
    net = get_recipe("fashion-mnist-pixel").build(TrainConfig(dataset="fashion-mnist-pixel",
                                                              width=2))
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert shapes["weights.layers__0__weight"] == (32, 1, 3, 3)
    assert shapes["weights.layers__3__weight"] == (64, 32, 3, 3)
    assert shapes["weights.layers__7__weight"] == (128, 64 * 7 * 7)
    by_hand = (32 * 9 + 32) + (64 * 32 * 9 + 64) + (128 * 3136 + 128) + (10 * 128 + 10)
    assert sum(v.numel() for v in net.state_dict().values()) == by_hand
    path = tmp_path / "wide.safetensors"
    save_weights(net, path, {"arch": {"width": 2}})
    again = create_model("fashion_dgm", pretrained=path)
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(),
                                                  again.state_dict().values()))
    with pytest.raises(ConfigError, match="--width"):
        TrainConfig(dataset="fashion-mnist-pixel", width=0).validate()


def test_training_throughput_is_logged_per_step_and_summarised(tmp_path, tiny):
    """images/s of each step = its batch over its seconds; the run's = all batches over all
    step seconds (recomputed here from the step count, batch size and logged seconds)."""
    cfg = _config(tmp_path, "speed", cycles=0)
    summary = train(cfg)
    steps = [json.loads(s) for s in open(f"{cfg.out}/log.jsonl")]
    steps = [r for r in steps if r["event"] == "step"]
    assert all(r["images_per_s"] == pytest.approx(8 / r["seconds"]) for r in steps)
    total_seconds = sum(r["seconds"] for r in steps)
    assert summary["images_per_s"] == pytest.approx(8 * len(steps) / total_seconds, abs=0.01)


def test_pixel_model_dense_width_sets_the_dense_units(tmp_path):
    """--dense-width n: dense 1568 → n and head n → 10 (weights counted by hand); the card's
    arch carries it, so the hub rebuilds the model."""
    from zoo.models import create_model
    from zoo.training import get_recipe
    from zoo.weights import save_weights
    net = get_recipe("fashion-mnist-pixel").build(TrainConfig(dataset="fashion-mnist-pixel",
                                                              dense_width=40))
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert shapes["weights.layers__7__weight"] == (40, 32 * 7 * 7)
    assert shapes["weights.head__weight"] == (10, 40)
    by_hand = (16 * 9 + 16) + (32 * 16 * 9 + 32) + (40 * 1568 + 40) + (10 * 40 + 10)
    assert sum(v.numel() for v in net.state_dict().values()) == by_hand
    path = tmp_path / "dense.safetensors"
    save_weights(net, path, {"arch": {"dense_width": 40}})
    again = create_model("fashion_dgm", pretrained=path)
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(),
                                                  again.state_dict().values()))
    with pytest.raises(ConfigError, match="--dense-width"):
        TrainConfig(dataset="fashion-mnist-pixel", dense_width=0).validate()


@settings(max_examples=3, deadline=None)
@given(problems_for(fashion_pixel_dgm(dense_width=5), max_batch=1, grids=(None,)))
def test_pixel_model_with_a_dense_width_has_the_program_s_log_joint(p):
    """The wider pixel model is a DGM whose closed-form log joint (every term of §1.5) equals
    the program interpreter's, at random parameters and states (dgm.testing)."""
    check_program(p, pyro=False)
