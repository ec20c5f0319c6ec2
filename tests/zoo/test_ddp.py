"""Data-parallel training (zoo.training.distributed): 2 CPU processes on gloo take the same
steps as one process on the same global batch (gradients and resulting weights), both with
the primitives and through the training loop (``zoo.training.train``) as torchrun runs it."""
from __future__ import annotations

import os
import socket
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from zoo.data import random_crop_flip
from zoo.models.wrn import cnnf_wrn
from zoo.training import RECIPES, Recipe, TrainConfig, load_checkpoint, register_recipe, train
from zoo.training.distributed import Dist, shutdown
from zoo.training.losses import clean_loss

WORLD, BATCH, STEPS = 2, 8, 2


def _tiny():
    torch.manual_seed(0)
    return cnnf_wrn(depth=10, widen=1, cycles=1, ind=0, seed=0)


def _data():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(STEPS, BATCH, 3, 32, 32, generator=g) * 2 - 1
    y = torch.randint(0, 10, (STEPS, BATCH), generator=g)
    return x, y


def _train(info: Dist, net) -> list[dict[str, torch.Tensor]]:
    """STEPS SGD steps on this rank's share; returns the averaged gradients of every step."""
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    x, y = _data()
    grads = []
    for s in range(STEPS):
        xb, yb = info.shard(x[s], y[s])
        opt.zero_grad()
        clean_loss(net.forward_passes(xb), yb).backward()
        info.average_gradients(net.parameters())
        grads.append({k: p.grad.clone() for k, p in net.named_parameters()})
        opt.step()
    return grads


def _worker(rank: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=WORLD)
    info = Dist(rank=rank, world=WORLD)
    try:
        net = _tiny()
        if rank == 1:  # a different init on rank 1 must be overwritten by the broadcast
            with torch.no_grad():
                for p in net.parameters():
                    p.add_(1.0)
        info.broadcast_parameters(net)
        grads = _train(info, net)
        torch.save({"grads": grads, "weights": net.state_dict()}, f"{out}/rank{rank}.pt")
    finally:
        shutdown(info)
    _exit_without_finalisation()


def _exit_without_finalisation() -> None:
    """End a worker whose results are on disk, skipping interpreter finalisation: gloo's
    C++ threads can abort the process (SIGABRT) while the interpreter is torn down
    (pytorch/pytorch#179291, seen once in CI), after everything this test checks is done."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_gloo_equals_single_process(tmp_path):
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    single = _tiny()
    ref_grads = _train(Dist(), single)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    for res in ranks:
        for step, ref in zip(res["grads"], ref_grads):
            for k in ref:
                torch.testing.assert_close(step[k], ref[k], rtol=1e-4, atol=1e-6)
        for k, v in single.state_dict().items():
            torch.testing.assert_close(res["weights"][k], v, rtol=1e-4, atol=1e-6)
    # the check can fail: the ranks' own (un-averaged) gradients differ from the global one
    net = _tiny()
    x, y = _data()
    clean_loss(net.forward_passes(x[0, :BATCH // 2]), y[0, :BATCH // 2]).backward()
    k = next(iter(ref_grads[0]))
    assert not torch.allclose(dict(net.named_parameters())[k].grad, ref_grads[0][k])


def test_shard_and_noop():
    info = Dist(rank=1, world=2)
    x = torch.arange(6)
    (part,) = info.shard(x)
    assert part.tolist() == [3, 4, 5]
    with pytest.raises(ValueError, match="divisible"):
        info.shard(torch.arange(5))
    assert Dist().shard(x)[0] is x and not Dist().enabled and Dist().is_main


def _tiny_data(split, data_dir):
    g = torch.Generator().manual_seed(5)
    x = (torch.rand(48, 3, 32, 32, generator=g) * 2 - 1).numpy()
    return x, torch.randint(0, 10, (48,), generator=g).numpy()


if "ddp-tiny" not in RECIPES:
    register_recipe(Recipe(
        name="ddp-tiny", load=_tiny_data,
        build=lambda c: cnnf_wrn(depth=10, widen=1, cycles=c.cycles, ind=0, seed=c.seed),
        augment=lambda x, g: random_crop_flip(x, 4, generator=g)))


def _config(out) -> TrainConfig:
    return TrainConfig(dataset="ddp-tiny", out=str(out), cycles=1, ind=0, epochs=0.4,
                       batch_size=8, val_size=8, eval_batch_size=8)


def _loop_worker(rank: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    train(_config(out), progress=False)
    _exit_without_finalisation()


def test_training_loop_data_parallel_equals_single_process(tmp_path):
    mp.spawn(_loop_worker, args=(_free_port(), str(tmp_path / "ddp")), nprocs=WORLD, join=True)
    train(_config(tmp_path / "single"), progress=False)
    ddp = load_checkpoint(tmp_path / "ddp" / "last.pt")
    single = load_checkpoint(tmp_path / "single" / "last.pt")
    assert ddp["progress"]["step"] == single["progress"]["step"] == 2
    for k, v in single["model"].items():
        torch.testing.assert_close(ddp["model"][k], v, rtol=1e-4, atol=1e-6)
    init = _config(tmp_path).resolved(RECIPES["ddp-tiny"])
    fresh = RECIPES["ddp-tiny"].build(init).state_dict()
    assert any(not torch.allclose(fresh[k], v) for k, v in single["model"].items())
