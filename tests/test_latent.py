"""ddpm_teach.autoencoder and ddpm_teach.latent (notebook 10): the autoencoder's shapes and
errors, its KL term against torch.distributions' closed form, the loss computed by hand, the
scale factor, the shipped autoencoder's round trip, and latent diffusion end to end: training on
latents, exact resume, the checkpoint that embeds its autoencoder (and refuses a missing or
altered one), and `sample` / `evaluate` writing pixel images."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from ddpm_teach.autoencoder import (Autoencoder, AutoencoderConfig, AutoencoderTrainConfig, ClassifierPerceptualLoss,
                                    DiagonalGaussian, autoencoder_loss, kl_divergence, latent_scale_factor,
                                    load_autoencoder, state_dict_sha256, train_autoencoder)
from ddpm_teach.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ddpm_teach.cli import main
from ddpm_teach.data import DEBIAN_FASHION_MNIST, load_dataset, to_model_range
from ddpm_teach.evaluation import Classifier
from ddpm_teach.latent import LatentCodec, LatentData, codec_from_checkpoint, encode_dataset, load_latent_model
from ddpm_teach.samplers import DDIMSampler, sample
from ddpm_teach.trainer import Trainer

from helpers_training import REPO, random_image_data, tiny_train_config

SHIPPED_AE = REPO / "checkpoints" / "fashion_mnist_autoencoder.pt"
SHIPPED_LATENT = REPO / "checkpoints" / "fashion_mnist_latent.pt"
HAVE_FASHION_MNIST = (DEBIAN_FASHION_MNIST / "t10k-images-idx3-ubyte.gz").is_file()
needs_fashion_mnist = pytest.mark.skipif(not HAVE_FASHION_MNIST, reason="needs Debian's dataset-fashion-mnist")


@pytest.fixture(autouse=True)
def _no_progress_bars(monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")


def tiny_ae_config(**overrides) -> AutoencoderConfig:
    options = dict(image_size=8, in_channels=1, latent_channels=2, base_channels=8, channel_mults=(1, 2),
                   num_res_blocks=1, norm_groups=4)
    options.update(overrides)
    return AutoencoderConfig(**options)


# -- shapes and errors -------------------------------------------------------------------------
@pytest.mark.parametrize("size, channels, latent, mults", [(28, 1, 2, (1, 2, 2)), (28, 1, 8, (1, 2, 4)),
                                                            (32, 3, 4, (1, 2, 2)), (32, 3, 4, (1, 2, 2, 2)),
                                                            (16, 1, 1, (1,))])
def test_encoder_and_decoder_shapes(size, channels, latent, mults):
    config = AutoencoderConfig(image_size=size, in_channels=channels, latent_channels=latent, base_channels=8,
                               channel_mults=mults, norm_groups=4)
    model = Autoencoder(config)
    f = 2 ** (len(mults) - 1)
    x = torch.rand(3, channels, size, size) * 2 - 1
    posterior = model.encode(x)
    assert posterior.mean.shape == posterior.logvar.shape == (3, latent, size // f, size // f)
    assert config.latent_shape == (latent, size // f, size // f) and config.factor == f
    assert model.decode(posterior.mode()).shape == x.shape
    x_hat, _ = model(x, generator=torch.Generator().manual_seed(0))
    assert x_hat.shape == x.shape


@pytest.mark.parametrize("bad, words", [(dict(image_size=30, channel_mults=(1, 2, 2)), "not divisible"),
                                        (dict(latent_channels=0), "latent_channels"),
                                        (dict(base_channels=6, norm_groups=4), "norm_groups")])
def test_bad_autoencoder_configs_are_errors(bad, words):
    with pytest.raises(ValueError, match=words):
        tiny_ae_config(**bad)


def test_wrong_input_shapes_are_errors_that_say_the_expected_shape():
    model = Autoencoder(tiny_ae_config())
    with pytest.raises(ValueError, match=r"\[B, 1, 8, 8\]"):
        model.encode(torch.zeros(2, 1, 16, 16))
    with pytest.raises(ValueError, match=r"\[B, 2, 4, 4\]"):
        model.decode(torch.zeros(2, 3, 4, 4))


# -- the KL term, the posterior, the loss ------------------------------------------------------
def test_kl_equals_the_closed_form_of_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mean = torch.randn(5, 3, 4, 4, generator=g, dtype=torch.float64)
    logvar = torch.randn(5, 3, 4, 4, generator=g, dtype=torch.float64)
    q = torch.distributions.Normal(mean, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mean), torch.ones_like(mean))
    expected = torch.distributions.kl_divergence(q, p).flatten(1).sum(1)
    torch.testing.assert_close(kl_divergence(mean, logvar), expected, rtol=1e-12, atol=1e-12)
    assert torch.all(kl_divergence(torch.zeros(2, 4), torch.zeros(2, 4)) == 0)       # q = prior


def test_posterior_samples_have_the_encoded_mean_and_variance():
    moments = torch.tensor([1.5, -0.5, math.log(0.25), math.log(4.0)], dtype=torch.float64).reshape(1, 4, 1, 1)
    posterior = DiagonalGaussian(moments.expand(200_000, 4, 1, 1))
    z = posterior.sample(torch.Generator().manual_seed(0))
    torch.testing.assert_close(z.mean(0).flatten(), torch.tensor([1.5, -0.5], dtype=torch.float64), atol=0.02, rtol=0)
    torch.testing.assert_close(z.var(0).flatten(), torch.tensor([0.25, 4.0], dtype=torch.float64), rtol=0.02, atol=0)
    assert torch.equal(posterior.mode(), posterior.mean)


def test_autoencoder_loss_is_the_hand_computed_sum():
    torch.manual_seed(0)
    model = Autoencoder(tiny_ae_config())
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    loss, parts = autoencoder_loss(model, x, kl_weight=0.01, generator=torch.Generator().manual_seed(3))
    posterior = model.encode(x)
    z = posterior.sample(torch.Generator().manual_seed(3))
    x_hat = model.decode(z)
    expected = ((x - x_hat).abs().flatten(1).sum(1) + 0.01 * kl_divergence(posterior.mean, posterior.logvar)).mean()
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(parts["recon"], (x - x_hat).abs().mean())
    loss2, _ = autoencoder_loss(model, x, kl_weight=0.0, recon="l2", generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(loss2, (x - x_hat).pow(2).flatten(1).sum(1).mean())


def test_perceptual_distance_is_zero_for_equal_images_and_leaves_the_classifier_frozen():
    classifier = Classifier()
    before = {k: v.clone() for k, v in classifier.state_dict().items()}
    perceptual = ClassifierPerceptualLoss(classifier).train()
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    assert torch.allclose(perceptual(x, x), torch.zeros(3), atol=1e-6)
    x_hat = (x + 0.3 * torch.randn_like(x)).requires_grad_(True)
    distance = perceptual(x, x_hat)
    assert distance.shape == (3,) and bool((distance > 0).all())
    distance.sum().backward()
    assert x_hat.grad is not None and all(p.grad is None for p in classifier.parameters())
    assert not classifier.training
    for k, v in classifier.state_dict().items():                  # BatchNorm running stats untouched
        assert torch.equal(v, before[k]), k


def test_scale_factor_gives_unit_variance_latents():
    g = torch.Generator().manual_seed(0)
    latents = 5.0 * torch.randn(64, 4, 7, 7, generator=g) + 1.0
    scale = latent_scale_factor(latents)
    assert (latents * scale).double().std().item() == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="standard deviation"):
        latent_scale_factor(torch.ones(3, 4))


def test_train_autoencoder_on_tiny_images_lowers_the_reconstruction_error(tmp_path):
    data = random_image_data(n=64, size=8)
    data.images[:] = data.images[:, :, :1, :1]                  # constant images: learnable at once
    config = AutoencoderTrainConfig(latent_channels=2, base_channels=8, channel_mults=(1, 2), steps=250,
                                    batch_size=16, lr=3e-3, mixed_precision="no", device="cpu",
                                    out=str(tmp_path / "ae.pt"))
    model, scale, payload = train_autoencoder(config, train_data=data, progress=False)
    recon = payload["history"]["recon"]
    assert np.mean(recon[-10:]) < 0.5 * np.mean(recon[:10])
    ckpt = load_checkpoint(tmp_path / "ae.pt", kind="autoencoder")       # weights_only inside
    assert ckpt["sha256"] == state_dict_sha256(ckpt["model"]) and ckpt["scale_factor"] == pytest.approx(scale)
    codec = LatentCodec.load(tmp_path / "ae.pt")
    latents = encode_dataset(data, codec)
    assert latents.latents.double().std().item() == pytest.approx(1.0, rel=1e-4)       # the training set's own


# -- the shipped autoencoder ------------------------------------------------------------------
@needs_fashion_mnist
def test_shipped_autoencoder_round_trip_and_unit_variance_latents():
    model, scale, ckpt = load_autoencoder(SHIPPED_AE)
    assert SHIPPED_AE.stat().st_size < 10e6
    test = load_dataset("fashion_mnist", train=False)
    x = to_model_range(test.images[:500])
    codec = LatentCodec(model, scale)
    z = codec.encode(x)
    assert z.shape == (500, *model.config.latent_shape)
    assert z.double().std().item() == pytest.approx(1.0, abs=0.1)            # scale fitted on the training set
    x_hat = codec.decode(z)
    mse = (x - x_hat).pow(2).mean().item()
    assert mse < 0.02, mse                                                  # per pixel, images in [-1, 1]
    assert ckpt["scores"]["n"] >= 1000 and ckpt["scores"]["fid_floor"] > 0


# -- latent diffusion --------------------------------------------------------------------------
def _tiny_latent_setup(tmp_path):
    data = random_image_data(n=64, size=8, num_classes=3)
    torch.manual_seed(0)
    ae = Autoencoder(tiny_ae_config())
    codec = LatentCodec(ae, 1.7, {"kind": "autoencoder", "model_config": ae.config.to_dict(),
                                  "model": ae.state_dict(), "scale_factor": 1.7,
                                  "sha256": state_dict_sha256(ae.state_dict()), "source": "tiny"})
    latents = encode_dataset(data, codec)
    model_config = dict(base_channels=8, channel_mults=(1,), num_res_blocks=1, attention_resolutions=(4,), num_heads=2,
                        dropout=0.0, norm_groups=4)
    return data, codec, latents, model_config


def test_latent_data_has_image_data_interface(tmp_path):
    data, codec, latents, _ = _tiny_latent_setup(tmp_path)
    assert (latents.channels, latents.image_size, len(latents)) == (2, 4, 64)
    z, y = latents.batch(torch.tensor([0, 5, 7]))
    assert z.shape == (3, 2, 4, 4) and torch.equal(y, data.labels[[0, 5, 7]])
    torch.testing.assert_close(z, codec.encode(to_model_range(data.images[[0, 5, 7]])))
    with pytest.raises(ValueError, match="--autoencoder"):
        encode_dataset(random_image_data(n=8, size=16), codec)


def test_trainer_on_latents_embeds_the_autoencoder_and_resumes_exactly(tmp_path):
    _, codec, latents, model_config = _tiny_latent_setup(tmp_path)
    config = tiny_train_config(tmp_path / "a", steps=6, conditional=True, autoencoder="tiny")
    full = Trainer(config, model_config, latents)
    full.train(progress=False)
    ckpt = load_checkpoint(full.checkpoint_path, kind="diffusion")
    assert ckpt["autoencoder"]["sha256"] == codec.record["sha256"]
    assert ckpt["model_config"]["in_channels"] == 2 and ckpt["model_config"]["image_size"] == 4

    half = Trainer(tiny_train_config(tmp_path / "b", steps=3, conditional=True, autoencoder="tiny"), model_config, latents)
    half.train(progress=False)
    resumed = Trainer.resume(half.checkpoint_path, latents, steps=6)
    resumed.train(progress=False)
    assert resumed.loss_history == full.loss_history
    for (name, a), b in zip(full.ema.module.state_dict().items(), resumed.ema.module.state_dict().values()):
        assert torch.equal(a, b), name


def test_latent_checkpoint_samples_pixels_and_refuses_a_missing_or_altered_autoencoder(tmp_path):
    _, codec, latents, model_config = _tiny_latent_setup(tmp_path)
    trainer = Trainer(tiny_train_config(tmp_path / "run", steps=2, conditional=True, autoencoder="tiny"), model_config,
                      latents)
    trainer.train(progress=False)
    model, schedule, loaded_codec, ckpt = load_latent_model(trainer.checkpoint_path)
    sampler = DDIMSampler(schedule, steps=5, clip_x0=False)
    z = sample(model, sampler, 4, labels=torch.tensor([0, 1, 2, 0]), guidance_scale=2.0,
               generator=torch.Generator().manual_seed(0), progress=False)
    images = loaded_codec.decode(z)
    assert z.shape == (4, 2, 4, 4) and images.shape == (4, 1, 8, 8)
    assert images.min() >= -1 and images.max() <= 1

    missing = dict(ckpt)
    del missing["autoencoder"]
    save_checkpoint(missing, tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="missing"):
        load_latent_model(tmp_path / "missing.pt")

    altered = dict(ckpt, autoencoder=dict(ckpt["autoencoder"]))
    altered["autoencoder"]["model"] = {k: v + 1 if v.is_floating_point() else v
                                       for k, v in ckpt["autoencoder"]["model"].items()}
    save_checkpoint(altered, tmp_path / "altered.pt")
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_latent_model(tmp_path / "altered.pt")

    other = Autoencoder(tiny_ae_config(latent_channels=3))
    mismatched = dict(ckpt, autoencoder={"kind": "autoencoder", "model_config": other.config.to_dict(),
                                         "model": other.state_dict(), "scale_factor": 1.0,
                                         "sha256": state_dict_sha256(other.state_dict())})
    save_checkpoint(mismatched, tmp_path / "mismatched.pt")
    with pytest.raises(CheckpointError, match="do not belong together"):
        load_latent_model(tmp_path / "mismatched.pt")
    assert codec_from_checkpoint({"train_config": {}}) is None                      # pixel space


# -- the command line, end to end on Fashion-MNIST ----------------------------------------------
@pytest.fixture(scope="module")
def tiny_fashion_autoencoder(tmp_path_factory):
    if not HAVE_FASHION_MNIST:
        pytest.skip("needs Debian's dataset-fashion-mnist")
    folder = tmp_path_factory.mktemp("ae")
    config = AutoencoderTrainConfig(latent_channels=2, base_channels=8, channel_mults=(1, 2, 2), steps=5,
                                    batch_size=16, mixed_precision="no", device="cpu", out=str(folder / "ae.pt"))
    data = load_dataset("fashion_mnist", train=True).subset(range(2000))
    train_autoencoder(config, train_data=data, progress=False)
    return folder / "ae.pt"


@pytest.fixture(scope="module")
def tiny_latent_run(tiny_fashion_autoencoder, tmp_path_factory):
    out = tmp_path_factory.mktemp("latent") / "run"
    code = main(["train", "--autoencoder", str(tiny_fashion_autoencoder), "--conditional", "--steps", "4",
                 "--batch-size", "8", "--base-channels", "8", "--channel-mults", "1", "--num-res-blocks", "1",
                 "--attention-resolutions", "7", "--num-heads", "2", "--norm-groups", "4", "--T", "50",
                 "--mixed-precision", "no", "--device", "cpu", "--out-dir", str(out)])
    assert code == 0
    return out / "checkpoint.pt"


def test_cli_trains_on_latents_samples_pixels_and_evaluates(tiny_latent_run, tmp_path, capsys):
    exported = tmp_path / "latent.pt"
    assert main(["export", "--checkpoint", str(tiny_latent_run), "--out", str(exported)]) == 0
    ckpt = torch.load(exported, weights_only=True)
    assert ckpt["autoencoder"]["model_config"]["latent_channels"] == 2
    for sampler in (["--sampler", "ddim", "--steps", "3"], ["--sampler", "dpmpp2m", "--steps", "3"]):
        out = tmp_path / f"s_{sampler[1]}.npz"
        assert main(["sample", "--checkpoint", str(exported), "--labels", "all", "--guidance-scale", "2", "--n", "12",
                     *sampler, "--out", str(out)]) == 0
        with np.load(out) as f:
            assert f["images"].shape == (12, 28, 28) and f["images"].dtype == np.uint8
            assert list(f["labels"]) == [k % 10 for k in range(12)]
    printed = capsys.readouterr().out
    assert "clip_x0=False" in printed and "decoded to [1, 28, 28]" in printed
    assert main(["sample", "--checkpoint", str(exported), "--n", "4", "--steps", "2", "--out", str(tmp_path / "g.png")]) == 0
    assert main(["evaluate", "--checkpoint", str(exported), "--n", "20", "--steps", "2", "--labels", "all"]) == 0
    assert "classifier-FID" in capsys.readouterr().out


def test_cli_resumes_a_latent_run_with_its_own_autoencoder(tiny_latent_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_latent_run.parent, run)
    assert main(["train", "--resume", str(run / "checkpoint.pt"), "--steps", "6"]) == 0
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 6
    code = main(["train", "--resume", str(run / "checkpoint.pt"), "--autoencoder", "other.pt", "--steps", "7"])
    assert code == 2 and "cannot change on --resume" in capsys.readouterr().err


def test_cli_latent_errors_are_one_line(tiny_fashion_autoencoder, tmp_path, capsys):
    code = main(["train", "--autoencoder", str(tmp_path / "nope.pt"), "--steps", "1", "--out-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "does not exist" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()
    code = main(["train-autoencoder", "--out", str(tiny_fashion_autoencoder), "--steps", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "--overwrite" in err and len(err.strip().splitlines()) == 1
    code = main(["train-autoencoder", "--latent-channels", "0", "--out", str(tmp_path / "x.pt")])
    assert code == 2 and "latent_channels" in capsys.readouterr().err


@pytest.mark.skipif(not SHIPPED_LATENT.is_file(), reason="the shipped latent checkpoint is not there")
def test_the_readme_sample_command_on_the_shipped_latent_model(tmp_path):
    out = tmp_path / "s.npz"
    assert main(["sample", "--checkpoint", str(SHIPPED_LATENT), "--labels", "all", "--guidance-scale", "2",
                 "--n", "20", "--steps", "5", "--out", str(out)]) == 0
    with np.load(out) as f:
        assert f["images"].shape == (20, 28, 28)
        assert 20 < f["images"].mean() < 160                        # Fashion-MNIST's mean pixel is about 73


# -- the benchmarks, at toy size -----------------------------------------------------------------
@needs_fashion_mnist
def test_autoencoder_sweep_runs_one_variant_and_resumes(tmp_path, capsys):
    from benchmarks import autoencoder_sweep

    argv = ["--minutes", "0.005", "--n", "50", "--variants", "c2", "--runs-dir", str(tmp_path / "runs"),
            "--out", str(tmp_path / "sweep.json")]
    assert autoencoder_sweep.main(argv) == 0
    saved = json.loads((tmp_path / "sweep.json").read_text())
    (row,) = saved["rows"]
    assert row["latent_channels"] == 2 and row["latent_numbers"] == 98 and row["n"] == 50
    assert row["fid_floor"] > 0 and "train-autoencoder --latent-channels 2" in row["command"]
    assert autoencoder_sweep.main(argv + ["--resume"]) == 0
    assert "keeping" in capsys.readouterr().out


def test_latent_vs_pixel_at_toy_size_writes_its_table(tiny_fashion_autoencoder, tmp_path, capsys):
    from benchmarks import latent_vs_pixel

    out = tmp_path / "lvp.json"
    options = ["--minutes", "0.02", "--n", "30", "--sample-steps", "2", "--no-compile", "--autoencoder",
               str(tiny_fashion_autoencoder), "--runs-dir", str(tmp_path / "runs"), "--out", str(out)]
    # a 1-second budget: no time for the start-up probe (it would leave the run 0 steps)
    extra = ["--extra-train-flags", "--base-channels", "8", "--norm-groups", "4", "--num-heads", "2", "--num-res-blocks", "1",
             "--mixed-precision", "no", "--no-probe-setup"]
    argv = options + extra
    assert latent_vs_pixel.main(argv) == 0
    printed = capsys.readouterr().out
    for line in ("ratio latent/pixel training img/s:", "ratio pixel/latent sampling time", "ratio latent/pixel classifier-FID:"):
        assert line in printed
    saved = json.loads(out.read_text())
    pixel, latent = saved["rows"]
    assert pixel["input"] == [1, 28, 28] and latent["input"] == [2, 7, 7]
    assert latent["n"] == pixel["n"] == 30 and "--autoencoder" in latent["train_command"]
    assert out.with_suffix(".md").read_text().count("\n") == 5 and out.with_suffix(".png").stat().st_size > 1000
    assert latent_vs_pixel.main(options + ["--resume"] + extra) == 0
    assert "keeping" in capsys.readouterr().out


def test_latent_vs_pixel_ratio_lines_survive_a_side_with_no_steps():
    """A budget that start-up spends entirely leaves a side at 0 steps: its ratio says so, no crash."""
    from benchmarks.latent_vs_pixel import ratio_lines

    rows = [{"model": "pixel", "train_img_per_s": 0.0, "sample_s_per_1000": 4.0, "fid": 80.0, "accuracy": 0.1},
            {"model": "latent", "train_img_per_s": 2000.0, "sample_s_per_1000": 2.0, "fid": 40.0, "accuracy": 0.2}]
    lines = ratio_lines(rows)
    assert lines[0].startswith("ratio latent/pixel training img/s: n/a") and "--minutes" in lines[0]
    assert lines[1] == "ratio pixel/latent sampling time (decode included): 2.00"
    assert lines[2] == "ratio latent/pixel classifier-FID: 0.50"
