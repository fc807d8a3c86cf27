"""Checkpoints: round trips, atomic writes, refusing pickled code, clear errors, EMA vs raw weights,
and the inference-only files (strip_for_inference)."""
from __future__ import annotations

import os
import pickle
import random
import re

import pytest
import torch

from ddpm_teach.checkpoint import (FORMAT, CheckpointError, load_checkpoint, load_diffusion_model,
                                   load_state_dict_checked, save_checkpoint, strip_for_inference)
from ddpm_teach.trainer import Trainer
from ddpm_teach.unet import UNet

from helpers_training import random_image_data, tiny_model_config, tiny_train_config


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny run trained for 3 steps (so its EMA differs from its raw weights), saved to disk."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("run")
    data = random_image_data()
    trainer = Trainer(tiny_train_config(out, steps=3, ema_decay=0.5, lr=1e-2), tiny_model_config(), data)
    trainer.train(progress=False)
    return trainer, data


def _assert_nested_equal(a, b, where="root"):
    assert type(a) is type(b), where
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_nested_equal(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_nested_equal(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def _unet_state(seed: int, **overrides) -> dict:
    torch.manual_seed(seed)
    return UNet(tiny_model_config(**overrides)).state_dict()


# -- round trip and atomic writes -----------------------------------------------------------------

def test_save_load_round_trip(tmp_path):
    payload = {"kind": "diffusion", "model": _unet_state(0), "step": 7, "name": "x", "ratio": 0.25,
               "nested": {"ints": [1, 2, 3], "none": None, "long": torch.arange(5),
                          "f64": torch.randn(3, 2, dtype=torch.float64), "bool": torch.tensor([True, False])}}
    path = save_checkpoint(payload, tmp_path / "sub" / "ck.pt")
    assert path == tmp_path / "sub" / "ck.pt" and path.is_file()
    loaded = load_checkpoint(path)
    assert loaded["format"] == FORMAT
    _assert_nested_equal({k: v for k, v in loaded.items() if k != "format"}, payload)
    # the contract: plain torch.load with weights_only=True reads it
    _assert_nested_equal(torch.load(path, weights_only=True), loaded)


def test_trainer_state_round_trips(trained, tmp_path):
    trainer, _ = trained
    state = trainer.state_dict()
    path = save_checkpoint(state, tmp_path / "ck.pt")
    loaded = load_checkpoint(path, kind="diffusion")
    _assert_nested_equal({k: v for k, v in loaded.items() if k != "format"}, state)


def test_save_leaves_no_temporary_files(tmp_path):
    save_checkpoint({"kind": "diffusion", "a": torch.ones(3)}, tmp_path / "ck.pt")
    save_checkpoint({"kind": "diffusion", "a": torch.zeros(3)}, tmp_path / "ck.pt")   # overwrite
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]
    assert torch.equal(load_checkpoint(tmp_path / "ck.pt")["a"], torch.zeros(3))


@pytest.mark.parametrize("error", [OSError("No space left on device"), KeyboardInterrupt()])
def test_failure_mid_save_keeps_the_old_file(tmp_path, monkeypatch, error):
    path = save_checkpoint({"kind": "diffusion", "a": torch.ones(3)}, tmp_path / "ck.pt")
    old = path.read_bytes()

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a checkpoint")     # some bytes reach the disk, then it fails
        raise error

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(type(error)):
        save_checkpoint({"kind": "diffusion", "a": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == old
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]
    assert torch.equal(load_checkpoint(path)["a"], torch.ones(3))


# -- refusing code, corrupt files, foreign files ---------------------------------------------------

class _ShellPayload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


class _OpenPayload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))        # creates the marker file if it is ever called


@pytest.mark.parametrize("payload_class", [_ShellPayload, _OpenPayload])
def test_pickled_code_is_refused_and_never_runs(tmp_path, payload_class):
    marker = tmp_path / "PWNED"
    evil = tmp_path / "evil.pt"
    # looks like a ddpm_teach checkpoint, but one value is a pickled call
    torch.save({"format": FORMAT, "kind": "diffusion", "model": payload_class(marker)}, evil)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(evil)
    assert "refused" in str(info.value) and "arbitrary code" in str(info.value)
    with pytest.raises(CheckpointError):
        load_diffusion_model(evil)
    assert not marker.exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("protocol", [2, 4])
def test_plain_pickle_with_code_is_refused(tmp_path, protocol):
    marker = tmp_path / "PWNED"
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"format": FORMAT, "x": _ShellPayload(marker)}, protocol=protocol))
    with pytest.raises(CheckpointError):
        load_checkpoint(evil)
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["truncated", "random", "empty", "text"])
def test_corrupt_file_is_a_clear_error(tmp_path, damage):
    good = save_checkpoint({"kind": "diffusion", "model": _unet_state(0)}, tmp_path / "good.pt").read_bytes()
    content = {"truncated": good[: len(good) // 2], "random": random.Random(0).randbytes(4096), "empty": b"",
               "text": b"this is not a checkpoint\n" * 10}[damage]
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert "corrupt" in message and str(path) in message
    assert "refused" not in message       # damaged bytes are not reported as an attack


def test_foreign_files_are_refused(tmp_path):
    torch.save({"a": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a ddpm_teach checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    torch.save(torch.ones(3), tmp_path / "tensor.pt")
    with pytest.raises(CheckpointError, match="not a ddpm_teach checkpoint"):
        load_checkpoint(tmp_path / "tensor.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    save_checkpoint({"kind": "classifier", "model": {}}, tmp_path / "clf.pt")
    with pytest.raises(CheckpointError, match="classifier.*diffusion"):
        load_checkpoint(tmp_path / "clf.pt", kind="diffusion")


def test_mismatched_state_dict_names_the_mismatch(tmp_path):
    small = _unet_state(0, base_channels=8)
    model = UNet(tiny_model_config(base_channels=16))
    with pytest.raises(CheckpointError) as info:
        load_state_dict_checked(model, small, source="small.pt")
    message = str(info.value)
    assert "shape mismatch" in message
    # it names layers that differ, with both shapes and where each comes from
    named = re.findall(r"([\w.]+): (\([\d, ]*\)) in small\.pt, (\([\d, ]*\)) in the model", message)
    assert named
    for name, theirs, ours in named:
        assert theirs == str(tuple(small[name].shape)) and ours == str(tuple(model.state_dict()[name].shape))
        assert theirs != ours
    # a conditional model's weights have keys an unconditional one lacks, and vice versa
    conditional = _unet_state(0, num_classes=3)
    with pytest.raises(CheckpointError, match="unexpected.*label_emb"):
        load_state_dict_checked(UNet(tiny_model_config()), conditional)
    with pytest.raises(CheckpointError, match="missing.*label_emb"):
        load_state_dict_checked(UNet(tiny_model_config(num_classes=3)), _unet_state(0))
    # nothing was half-loaded into the model
    torch.manual_seed(5)
    fresh = UNet(tiny_model_config(base_channels=16))
    torch.manual_seed(5)
    target = UNet(tiny_model_config(base_channels=16))
    with pytest.raises(CheckpointError):
        load_state_dict_checked(target, small)
    for a, b in zip(fresh.parameters(), target.parameters()):
        assert torch.equal(a, b)


def test_load_diffusion_model_with_a_config_that_does_not_fit_its_weights(trained, tmp_path):
    trainer, _ = trained
    state = trainer.state_dict()
    state["model_config"] = {**state["model_config"], "base_channels": 16}
    path = save_checkpoint(state, tmp_path / "wrong.pt")
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_diffusion_model(path)


# -- EMA vs raw weights, inference-only checkpoints -----------------------------------------------

def test_load_diffusion_model_uses_ema_by_default(trained):
    trainer, _ = trained
    ema_state, raw_state = trainer.ema.module.state_dict(), trainer.model.state_dict()
    assert any(not torch.equal(ema_state[k], raw_state[k]) for k in raw_state)   # they differ

    model, schedule, ckpt = load_diffusion_model(trainer.checkpoint_path)
    assert not model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, ema_state[k]), k
    raw, _, _ = load_diffusion_model(trainer.checkpoint_path, use_ema=False)
    for k, v in raw.state_dict().items():
        assert torch.equal(v, raw_state[k]), k
    assert schedule.T == trainer.schedule.T and torch.equal(schedule.betas, trainer.schedule.betas)
    assert ckpt["step"] == 3
    assert model.config == trainer.model.config


def test_strip_for_inference_keeps_ema_and_drops_training_state(trained, tmp_path):
    trainer, data = trained
    full = load_checkpoint(trainer.checkpoint_path)
    small = strip_for_inference(full)
    for key in ("optimizer", "lr_scheduler", "scaler", "rng_per_rank"):
        assert key not in small
    assert small["ema"] is None
    for k, v in small["model"].items():
        assert torch.equal(v, full["ema"][k]), k
    assert small["model_config"] == full["model_config"] and small["schedule"] == full["schedule"]
    assert small["step"] == full["step"]

    path = save_checkpoint(small, tmp_path / "small.pt")
    assert path.stat().st_size < trainer.checkpoint_path.stat().st_size
    for use_ema in (True, False):       # either way: the EMA weights are all it has
        model, _, _ = load_diffusion_model(path, use_ema=use_ema)
        for k, v in model.state_dict().items():
            assert torch.equal(v, full["ema"][k]), k

    with pytest.raises(CheckpointError, match="inference-only"):
        Trainer.resume(path, data=data)
