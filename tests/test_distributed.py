"""Data-parallel training: how BatchOrder splits each step's examples between processes, and a real
two-process ``torchrun ... -m ddpm_teach train`` run with gloo on the CPU."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from ddpm_teach.checkpoint import load_checkpoint, load_diffusion_model
from ddpm_teach.training import BatchOrder

from helpers_training import REPO, cli_env


def _orders(n, batch_size, world_size, seed=0):
    return [BatchOrder(n, batch_size, seed, rank=r, world_size=world_size) for r in range(world_size)]


@pytest.mark.parametrize("n, B, W", [(37, 4, 2), (64, 8, 2), (50, 3, 4)])
def test_ranks_get_disjoint_batches_that_together_are_the_single_process_batch(n, B, W):
    ranks = _orders(n, B, W)
    single = BatchOrder(n, B * W, seed=0)                  # one process with a W-times bigger batch
    for k in range(12):                                     # several epochs' worth of steps
        parts = [order.indices(k) for order in ranks]
        assert all(len(p) == B for p in parts)
        together = torch.cat(parts)
        assert len(set(together.tolist())) == B * W          # disjoint across ranks
        assert torch.equal(together, single.indices(k))      # rank r holds slice r of the big batch


@pytest.mark.parametrize("n, B, W", [(37, 4, 2), (64, 8, 2)])
def test_an_epoch_visits_each_example_at_most_once_then_reshuffles(n, B, W):
    ranks = _orders(n, B, W)
    steps_per_epoch = n // (B * W)
    epochs = []
    for epoch in range(2):
        seen = torch.cat([order.indices(epoch * steps_per_epoch + k) for k in range(steps_per_epoch)
                          for order in ranks])
        assert len(seen) == steps_per_epoch * B * W == len(set(seen.tolist()))
        assert int(seen.min()) >= 0 and int(seen.max()) < n
        epochs.append(seen)
    assert not torch.equal(epochs[0], epochs[1])             # a fresh permutation each epoch


def test_batch_order_is_deterministic_and_random_access():
    a, b = BatchOrder(40, 4, seed=3, rank=1, world_size=2), BatchOrder(40, 4, seed=3, rank=1, world_size=2)
    forward = [a.indices(k) for k in range(15)]
    backward = [b.indices(k) for k in reversed(range(15))][::-1]   # asked for in another order
    for x, y in zip(forward, backward):
        assert torch.equal(x, y)
    other_seed = BatchOrder(40, 4, seed=4, rank=1, world_size=2)
    assert any(not torch.equal(other_seed.indices(k), forward[k]) for k in range(15))


def test_too_small_a_dataset_for_all_processes_is_a_clear_error():
    with pytest.raises(ValueError, match="batch_size"):
        BatchOrder(7, 4, seed=0, rank=0, world_size=2)


@pytest.mark.slow
def test_torchrun_two_processes_on_cpu(tmp_path):
    from PIL import Image

    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("this torch has no gloo backend")
    # a small image folder (two classes of 8×8 grey images), so each process loads it in no time
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(16):
            Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8), mode="L").save(tmp_path / "data" / name / f"{i}.png")
    out = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "ddpm_teach", "train", "--dataset", str(tmp_path / "data"), "--steps", "2", "--batch-size", "4",
               "--base-channels", "8", "--channel-mults", "1", "2", "--num-res-blocks", "1",
               "--attention-resolutions", "4", "--norm-groups", "4", "--T", "50", "--device", "cpu",
               "--out-dir", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, env=cli_env(), cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    ckpt = load_checkpoint(out / "checkpoint.pt", kind="diffusion")
    assert ckpt["step"] == 2 and len(ckpt["loss_history"]) == 2
    assert all(np.isfinite(ckpt["loss_history"]))
    assert ckpt["model_config"]["image_size"] == 8 and ckpt["dataset"]["classes"] == ["a", "b"]
    # only rank 0 reports and writes; nothing else is left in the folder
    assert result.stdout.count("done: step 2") == 1
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "config.toml"]
    # the weights are plain (not DDP-wrapped: no "module." prefixes) and load into a UNet
    assert not any(k.startswith("module.") for k in ckpt["model"])
    model, _, _ = load_diffusion_model(out / "checkpoint.pt")
    assert model(torch.zeros(1, 1, 8, 8), torch.tensor([0])).shape == (1, 1, 8, 8)
