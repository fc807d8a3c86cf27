"""The command line: train offline on Debian's Fashion-MNIST, resume, sample to PNG and NPZ, guided
sampling, evaluate, and the clear one-line errors.

``train`` and a PNG ``sample`` run as real subprocesses (``python -m ddpm_teach``), side by side;
the other commands call :func:`ddpm_teach.cli.main` in-process: the same code, without a fresh
interpreter and torch import each (seconds apiece on a busy 2-core machine)."""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from ddpm_teach.checkpoint import load_checkpoint, save_checkpoint
from ddpm_teach.cli import _DERIVED_MODEL_FIELDS, build_parser, dataclass_from_args, main, parse_args
from ddpm_teach.data import CLASS_NAMES, DEBIAN_FASHION_MNIST
from ddpm_teach.evaluation import Classifier, ClassifierConfig
from ddpm_teach.trainer import Trainer
from ddpm_teach.training import TrainConfig
from ddpm_teach.unet import UNetConfig

from helpers_training import finish, random_image_data, start_cli

HAVE_FASHION_MNIST = (DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file()
needs_fashion_mnist = pytest.mark.skipif(
    not HAVE_FASHION_MNIST, reason="Debian's dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)")

TINY = ["--steps", "3", "--batch-size", "8", "--base-channels", "8", "--channel-mults", "1", "2",
        "--num-res-blocks", "1", "--attention-resolutions", "14", "--norm-groups", "4"]


def _one_error_line(stderr: str) -> str:
    """The run failed cleanly: no traceback, exactly one line that starts with 'error:'."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def conditional_checkpoint(workdir) -> Path:
    """A class-conditional 28×28 checkpoint with 10 classes, trained one step in-process on random images."""
    torch.set_num_threads(1)
    data = random_image_data(n=32, size=28, num_classes=10)
    config = TrainConfig(steps=1, batch_size=8, conditional=True, device="cpu", out_dir=str(workdir / "cond"),
                         checkpoint_every=0)
    model_config = UNetConfig(base_channels=8, channel_mults=(1, 2), num_res_blocks=1, attention_resolutions=(14,),
                              norm_groups=4)
    trainer = Trainer(config, model_config, data)
    trainer.train(progress=False)
    return trainer.checkpoint_path


@pytest.fixture(scope="module")
def subprocesses(workdir, conditional_checkpoint):
    """The real `python -m ddpm_teach` runs, side by side: `train` offline on Fashion-MNIST (into an
    empty --data-root, so only Debian's files can supply it) and a guided PNG `sample`."""
    empty_root = workdir / "no-data-here"
    empty_root.mkdir()
    procs = {
        "png": start_cli("sample", "--checkpoint", conditional_checkpoint, "--n", "6", "--sampler", "ddim",
                         "--steps", "5", "--labels", "all", "--guidance-scale", "2", "--out", workdir / "x.png"),
    }
    if HAVE_FASHION_MNIST:
        procs["train"] = start_cli("train", "--dataset", "fashion_mnist", "--data-root", empty_root, *TINY,
                                   "--out-dir", workdir / "uncond")
    return {name: finish(proc, timeout=300) for name, proc in procs.items()}


@pytest.fixture(scope="module")
def trained(workdir, subprocesses):
    if "train" not in subprocesses:
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    result = subprocesses["train"]
    assert result.returncode == 0, result.stderr
    return workdir / "uncond" / "checkpoint.pt", result


# -- train and resume -----------------------------------------------------------------------------

@pytest.mark.slow
def test_train_offline_writes_a_checkpoint(trained):
    checkpoint, result = trained
    ckpt = load_checkpoint(checkpoint, kind="diffusion")
    assert ckpt["step"] == 3 and len(ckpt["loss_history"]) == 3
    assert ckpt["dataset"]["name"] == "fashion_mnist" and ckpt["dataset"]["classes"] == list(CLASS_NAMES["fashion_mnist"])
    model = ckpt["model_config"]
    assert (model["image_size"], model["in_channels"], model["base_channels"]) == (28, 1, 8)
    assert model["channel_mults"] == [1, 2] and model["attention_resolutions"] == [14] and model["num_classes"] is None
    assert ckpt["train_config"]["batch_size"] == 8 and ckpt["train_config"]["steps"] == 3
    assert "done: step 3" in result.stdout
    # the resolved config written next to the checkpoint repeats the run's options
    repeated = parse_args(["train", "--config", str(checkpoint.parent / "config.toml")])
    assert (repeated.steps, repeated.batch_size, repeated.base_channels, repeated.channel_mults) == (3, 8, 8, [1, 2])
    assert repeated.dataset == "fashion_mnist" and repeated.out_dir == str(checkpoint.parent)


@pytest.mark.slow
def test_resume_continues_to_more_steps(trained, workdir, capsys):
    checkpoint, _ = trained
    longer = workdir / "resume-longer"
    shutil.copytree(checkpoint.parent, longer)
    assert main(["train", "--out-dir", str(longer), "--resume", "--steps", "5", "--device", "cpu"]) == 0
    assert "at step 3 of 5" in capsys.readouterr().out
    ckpt = load_checkpoint(longer / "checkpoint.pt")
    first = load_checkpoint(checkpoint)
    assert first["step"] == 3                     # the run it was copied from was not written over
    assert ckpt["step"] == 5 and len(ckpt["loss_history"]) == 5
    assert ckpt["loss_history"][:3] == first["loss_history"]
    assert ckpt["train_config"]["steps"] == 5


@pytest.mark.slow
def test_resume_without_steps_keeps_the_runs_own_steps(trained, workdir, capsys, monkeypatch):
    """`train --resume CK` with no --steps continues to the checkpoint's own step count (here: it
    is finished, so nothing to do), saving next to CK, not into the folder the run started in."""
    checkpoint, _ = trained
    moved = workdir / "moved"
    shutil.copytree(checkpoint.parent, moved)
    original = checkpoint.read_bytes()
    real_train = Trainer.train

    def guarded_train(self, *args, **kwargs):     # fail fast instead of training for 10000 steps
        assert self.config.steps == 3, f"the resumed run would train to step {self.config.steps}, not 3"
        return real_train(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "train", guarded_train)
    assert main(["train", "--resume", str(moved / "checkpoint.pt"), "--device", "cpu"]) == 0
    assert "at step 3 of 3" in capsys.readouterr().out
    assert load_checkpoint(moved / "checkpoint.pt")["step"] == 3
    assert checkpoint.read_bytes() == original


# -- sample ---------------------------------------------------------------------------------------

@pytest.mark.slow
def test_sample_writes_a_png(subprocesses, workdir):
    from PIL import Image

    result = subprocesses["png"]
    assert result.returncode == 0, result.stderr
    with Image.open(workdir / "x.png") as image:
        image.load()
        width, height = image.size
    assert width >= 28 * 2 and height >= 28 * 2          # a grid of several 28×28 images
    assert "wrote 6 samples" in result.stdout


@pytest.mark.slow
def test_labels_on_an_unconditional_checkpoint_is_a_clear_error(trained, workdir, capsys):
    checkpoint, _ = trained
    assert main(["sample", "--checkpoint", str(checkpoint), "--n", "2", "--sampler", "ddim", "--steps", "5",
                 "--labels", "3", "--device", "cpu", "--out", str(workdir / "never.npz")]) == 2
    message = _one_error_line(capsys.readouterr().err)
    assert "--labels" in message and "unconditional" in message
    assert not (workdir / "never.npz").exists()


@pytest.mark.slow
def test_sample_writes_an_npz(trained, workdir, capsys):
    checkpoint, _ = trained
    out = workdir / "x.npz"
    assert main(["sample", "--checkpoint", str(checkpoint), "--n", "6", "--sampler", "ddim", "--steps", "5",
                 "--device", "cpu", "--out", str(out)]) == 0
    with np.load(out) as f:
        images, labels = f["images"], f["labels"]
    assert images.dtype == np.uint8 and images.shape == (6, 28, 28)
    assert labels.shape == (6,) and bool((labels == -1).all())       # unconditional: no labels
    assert images.std() > 0


@pytest.mark.slow
def test_sample_passes_precision_to_the_sampling_loop(trained, workdir, monkeypatch):
    # (what bf16 does to the numbers is tested in test_samplers; here: the flag reaches the loop)
    import ddpm_teach.samplers as samplers

    checkpoint, _ = trained
    seen, real_sample = [], samplers.sample
    monkeypatch.setattr(samplers, "sample", lambda *a, **kw: seen.append(kw["precision"]) or real_sample(*a, **kw))
    out = workdir / "x16.npz"
    assert main(["sample", "--checkpoint", str(checkpoint), "--n", "6", "--sampler", "ddim", "--steps", "5",
                 "--device", "cpu", "--precision", "bf16", "--batch-size", "4", "--out", str(out)]) == 0
    assert seen == ["bf16", "bf16"]                                   # both batches
    with np.load(out) as f:
        assert f["images"].shape == (6, 28, 28)
    with pytest.raises(SystemExit):
        main(["sample", "--checkpoint", str(checkpoint), "--precision", "int8", "--out", str(workdir / "never.npz")])
    assert not (workdir / "never.npz").exists()


def test_guided_sampling_cycles_through_the_classes(conditional_checkpoint, workdir):
    out = workdir / "guided.npz"
    assert main(["sample", "--checkpoint", str(conditional_checkpoint), "--n", "12", "--sampler", "ddim",
                 "--steps", "5", "--labels", "all", "--guidance-scale", "2", "--device", "cpu",
                 "--out", str(out)]) == 0
    with np.load(out) as f:
        images, labels = f["images"], f["labels"]
    assert images.shape == (12, 28, 28) and images.dtype == np.uint8
    assert labels.tolist() == [k % 10 for k in range(12)]


def test_missing_checkpoint_is_a_clear_error(workdir, capsys):
    assert main(["sample", "--checkpoint", str(workdir / "nope.pt"), "--n", "2", "--out", str(workdir / "n.png")]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "does not exist" in line and "nope.pt" in line


def test_more_ddim_steps_than_T_is_a_clear_error(conditional_checkpoint, workdir, capsys):
    assert main(["sample", "--sampler", "ddim", "--steps", "2000", "--checkpoint", str(conditional_checkpoint),
                 "--n", "2", "--device", "cpu", "--out", str(workdir / "never.png")]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "2000" in line and "T=1000" in line
    assert not (workdir / "never.png").exists()


def test_train_builds_the_unet_for_the_datas_image_size(tmp_path, capsys):
    """Channel multipliers and attention resolutions are checked against the data's image size
    (here 8×8 images in a folder), not the UNetConfig default of 28."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8), mode="L").save(tmp_path / "data" / name / f"{i}.png")
    out = tmp_path / "run"
    assert main(["train", "--dataset", str(tmp_path / "data"), "--steps", "1", "--batch-size", "4",
                 "--base-channels", "8", "--channel-mults", "1", "2", "2", "2", "--num-res-blocks", "1",
                 "--attention-resolutions", "2", "--norm-groups", "4", "--T", "20", "--device", "cpu",
                 "--out-dir", str(out)]) == 0, capsys.readouterr().err
    model = load_checkpoint(out / "checkpoint.pt")["model_config"]
    assert model["image_size"] == 8 and model["channel_mults"] == [1, 2, 2, 2] and model["attention_resolutions"] == [2]


def test_missing_named_dataset_says_how_to_get_it(workdir, capsys):
    empty = workdir / "empty"
    empty.mkdir(exist_ok=True)
    assert main(["train", "--dataset", "mnist", "--data-root", str(empty), *TINY, "--device", "cpu",
                 "--out-dir", str(workdir / "mnist-run")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "error: mnist" in err and "To get MNIST" in err and "--download" in err and str(empty) in err
    assert not (workdir / "mnist-run" / "checkpoint.pt").exists()


# -- evaluate -------------------------------------------------------------------------------------

@pytest.mark.slow
@needs_fashion_mnist
def test_evaluate_prints_n_and_the_floor(conditional_checkpoint, workdir, capsys):
    samples = workdir / "eval.npz"
    assert main(["sample", "--checkpoint", str(conditional_checkpoint), "--n", "12", "--sampler", "ddim",
                 "--steps", "3", "--labels", "all", "--device", "cpu", "--out", str(samples)]) == 0
    torch.manual_seed(0)
    config = ClassifierConfig(width=4, feature_dim=8)
    clf = save_checkpoint({"kind": "classifier", "model_config": dataclasses.asdict(config),
                           "model": Classifier(config).state_dict(), "classes": list(CLASS_NAMES["fashion_mnist"]),
                           "test_accuracy": 0.1}, workdir / "clf.pt")
    scores_file = workdir / "scores.json"
    capsys.readouterr()
    assert main(["evaluate", "--samples", str(samples), "--classifier", str(clf), "--json", str(scores_file)]) == 0
    out = capsys.readouterr().out
    assert "N=12" in out and "floor at N=12" in out and "accuracy" in out
    scores = json.loads(scores_file.read_text())
    assert scores["n"] == 12 and {"fid", "fid_floor", "accuracy"} <= scores.keys()
    assert 0.0 <= scores["accuracy"] <= 1.0


# -- the parser (in-process) ----------------------------------------------------------------------

def test_every_config_field_has_a_flag(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for field in dataclasses.fields(TrainConfig):
        assert "--" + field.name.replace("_", "-") in text, field.name
    for field in dataclasses.fields(UNetConfig):
        if field.name not in _DERIVED_MODEL_FIELDS:
            assert "--" + field.name.replace("_", "-") in text, field.name
    assert "--no-conditional" in text and "--learn-sigma" in text


def test_flags_build_the_dataclasses():
    args = build_parser().parse_args(["train", "--steps", "7", "--schedule", "cosine", "--conditional",
                                      "--channel-mults", "1", "2", "4", "--lr", "0.001", "--data-root", "/x",
                                      "--mixed-precision", "bf16"])
    args.out_dir = args.out_dir or TrainConfig.out_dir
    config = dataclass_from_args(TrainConfig, args)
    assert config == TrainConfig(steps=7, schedule="cosine", conditional=True, lr=0.001, data_root="/x",
                                 mixed_precision="bf16")
    model = dataclass_from_args(UNetConfig, args, skip=_DERIVED_MODEL_FIELDS)
    assert model.channel_mults == (1, 2, 4) and model.base_channels == UNetConfig().base_channels


@pytest.mark.parametrize("flags, complaint", [(["--schedule", "foo"], "invalid choice: 'foo'"),
                                              (["--mixed-precision", "fp8"], "invalid choice: 'fp8'"),
                                              (["--steps", "many"], "invalid int value")])
def test_bad_flag_values_are_argparse_errors(capsys, flags, complaint):
    with pytest.raises(SystemExit) as info:
        main(["train", *flags])
    assert info.value.code == 2
    assert complaint in capsys.readouterr().err


def test_preset_sets_defaults_and_given_flags_win():
    from ddpm_teach.cli import parse_args

    args = parse_args(["train", "--preset", "cpu-fast", "--lr", "5e-4"])
    assert args.lr == 5e-4                                   # given on the command line
    assert args.batch_size == 64 and args.probe_setup is True    # from the preset
    assert "probe_setup" not in args.given and "lr" in args.given
    assert args.base_channels == 32 and tuple(args.channel_mults) == (1, 2, 2)
    assert args.max_minutes == 15.0
    plain = parse_args(["train"])
    assert plain.batch_size == TrainConfig.batch_size and plain.max_minutes is None


def test_unknown_preset_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--preset", "laptop"])
    assert "invalid choice" in capsys.readouterr().err
