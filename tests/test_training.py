"""Training (notebook 04): exact resume, bit-for-bit repeats, the LR schedule, gradient
accumulation, EMA, label dropout, the t distribution and the non-finite-loss stop."""
from __future__ import annotations

import copy
import math

import pytest
import torch

import ddpm_teach.trainer as trainer_module
import ddpm_teach.training as training
from ddpm_teach.checkpoint import load_checkpoint
from ddpm_teach.data import ImageData
from ddpm_teach.schedules import NoiseSchedule
from ddpm_teach.trainer import Trainer
from ddpm_teach.training import BatchOrder, NonFiniteLossError, TrainConfig, diffusion_loss, lr_at
from ddpm_teach.unet import UNet

from helpers_training import random_image_data, tiny_model_config, tiny_train_config


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _assert_state_dicts_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def _randomize_zero_init(model: torch.nn.Module, seed: int = 1) -> None:
    """The UNet's output and residual convs start at zero (so it outputs 0 and most gradients
    vanish); give them small random values so gradient checks reach every layer."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.abs().sum() == 0:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)


def _record_diffusion_loss(monkeypatch, *, cheap: bool = False) -> list[dict]:
    """Wrap training.diffusion_loss so every micro-batch's inputs are recorded.  With ``cheap``
    the UNet is not run at all (a constant-plus-0·params loss), for statistics over many steps."""
    calls: list[dict] = []
    real = training.diffusion_loss

    def recorder(model, schedule, x0, t, noise, labels=None, **kwargs):
        calls.append({"x0": x0.detach().clone(), "t": t.detach().clone(), "noise": noise.detach().clone(),
                      "labels": None if labels is None else labels.detach().clone()})
        if cheap:
            loss = sum(p.sum() for p in model.parameters()) * 0.0 + 1.0
            return loss, {"mse": loss.detach()}
        return real(model, schedule, x0, t, noise, labels, **kwargs)

    monkeypatch.setattr(training, "diffusion_loss", recorder)
    return calls


# -- bit-for-bit repeats and exact resume ----------------------------------------------------------

def test_seeded_training_repeats_bit_for_bit(tmp_path):
    data = random_image_data()
    runs = []
    for name in ("a", "b"):
        trainer = Trainer(tiny_train_config(tmp_path / name, steps=4), tiny_model_config(), data)
        trainer.train(progress=False)
        runs.append(trainer)
    a, b = runs
    assert a.loss_history == b.loss_history
    assert len(a.loss_history) == 4 and all(math.isfinite(x) for x in a.loss_history)
    _assert_state_dicts_equal(a.model.state_dict(), b.model.state_dict())
    _assert_state_dicts_equal(a.ema.module.state_dict(), b.ema.module.state_dict())
    # a different seed is a different run (so the equality above is not vacuous)
    c = Trainer(tiny_train_config(tmp_path / "c", steps=4, seed=1), tiny_model_config(), data)
    c.train(progress=False)
    assert c.loss_history != a.loss_history


RESUME_CASES = {
    "eps": dict(),
    "learn_sigma": dict(learn_sigma=True, vlb_weight=0.01),
    "conditional_dropout_accum": dict(conditional=True, label_dropout=0.3, grad_accum=2),
    "hflip_accum": dict(hflip=True, grad_accum=2),
}


@pytest.mark.parametrize("case", list(RESUME_CASES))
def test_resumed_run_matches_uninterrupted_run(tmp_path, case):
    data = random_image_data()
    overrides = RESUME_CASES[case]
    total, stop = 6, 3

    straight = Trainer(tiny_train_config(tmp_path / "straight", steps=total, **overrides), tiny_model_config(), data)
    straight.train(progress=False)

    first = Trainer(tiny_train_config(tmp_path / "resumed", steps=total, **overrides), tiny_model_config(), data)
    first.train(stop, progress=False)
    assert first.step == stop
    # scramble the global RNG (dropout's source), as a fresh process would have it
    torch.manual_seed(12345)
    torch.rand(100)
    resumed = Trainer.resume(first.checkpoint_path, data=data)
    assert resumed.step == stop
    resumed.train(progress=False)

    assert resumed.step == straight.step == total
    assert resumed.loss_history == straight.loss_history
    _assert_state_dicts_equal(resumed.model.state_dict(), straight.model.state_dict())
    _assert_state_dicts_equal(resumed.ema.module.state_dict(), straight.ema.module.state_dict())
    assert torch.equal(resumed.generator.get_state(), straight.generator.get_state())
    assert resumed.lr_scheduler.get_last_lr() == straight.lr_scheduler.get_last_lr()
    # and the run really trained: the weights moved from their initial values
    init = Trainer(tiny_train_config(tmp_path / "init", steps=total, **overrides), tiny_model_config(), data)
    assert not torch.equal(init.model.conv_out.weight, straight.model.conv_out.weight)


def test_resume_can_extend_the_run(tmp_path):
    data = random_image_data()
    trainer = Trainer(tiny_train_config(tmp_path, steps=2), tiny_model_config(), data)
    trainer.train(progress=False)
    longer = Trainer.resume(trainer.checkpoint_path, data=data, steps=4)
    assert longer.config.steps == 4 and longer.step == 2
    longer.train(progress=False)
    assert longer.step == 4 and len(longer.loss_history) == 4
    assert longer.loss_history[:2] == trainer.loss_history
    assert load_checkpoint(trainer.checkpoint_path)["step"] == 4


# -- the learning-rate schedule -------------------------------------------------------------------

def _reference_lr(step: int, warmup: int, total: int, floor: float) -> float:
    """Linear warm-up to 1 over ``warmup`` steps, then half a cosine from 1 down to ``floor`` at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    done = min(step - warmup, total - warmup) / (total - warmup)
    return floor + (1 - floor) * (1 + math.cos(math.pi * done)) / 2


def test_lr_at_warmup_then_cosine():
    config = TrainConfig(warmup_steps=10, steps=110, min_lr_ratio=0.1)
    for step in [0, 1, 4, 9, 10, 11, 35, 60, 85, 109, 110, 200]:
        assert lr_at(step, config) == pytest.approx(_reference_lr(step, 10, 110, 0.1), abs=1e-12), step
    # landmarks, by hand: warm-up is linear from 1/10, the decay starts at 1, is halfway at its
    # midpoint, a quarter of the way in it is at cos(π/4), and it ends (and stays) at min_lr_ratio
    assert lr_at(0, config) == pytest.approx(0.1)
    assert [lr_at(s + 1, config) - lr_at(s, config) for s in range(9)] == pytest.approx([0.1] * 9)
    assert lr_at(9, config) == pytest.approx(1.0) and lr_at(10, config) == pytest.approx(1.0)
    assert lr_at(60, config) == pytest.approx(0.55)
    assert lr_at(35, config) == pytest.approx(0.1 + 0.9 * (1 + math.sqrt(0.5)) / 2)
    assert lr_at(110, config) == pytest.approx(0.1) and lr_at(10_000, config) == pytest.approx(0.1)
    decay = [lr_at(s, config) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(decay, decay[1:]))
    # no warm-up: the cosine starts at once
    assert lr_at(0, TrainConfig(warmup_steps=0, steps=100, min_lr_ratio=0.0)) == pytest.approx(1.0)
    assert lr_at(50, TrainConfig(warmup_steps=0, steps=100, min_lr_ratio=0.0)) == pytest.approx(0.5)


def test_trainer_uses_lr_at_for_each_optimizer_step(tmp_path):
    config = tiny_train_config(tmp_path, steps=6, warmup_steps=3, lr=1e-3, min_lr_ratio=0.2)
    trainer = Trainer(config, tiny_model_config(dropout=0.0), random_image_data())
    for step in range(config.steps):
        assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(config.lr * _reference_lr(step, 3, 6, 0.2))
        trainer.run_step()


# -- gradient accumulation ------------------------------------------------------------------------

@pytest.mark.parametrize("learn_sigma", [False, True])
def test_gradient_of_two_micro_batches_equals_one_double_batch(learn_sigma):
    """Averaging the losses of two micro-batches of B gives the gradient of one batch of 2B
    (same examples, same t and ε): what grad_accum=2 relies on."""
    model = UNet(tiny_model_config(dropout=0.0, learn_sigma=learn_sigma, in_channels=1))
    _randomize_zero_init(model)
    schedule = NoiseSchedule.from_name("linear", 50)
    g = torch.Generator().manual_seed(3)
    B = 4
    x0 = torch.rand(2 * B, 1, 8, 8, generator=g) * 2 - 1
    t = torch.randint(0, 50, (2 * B,), generator=g)
    noise = torch.randn(x0.shape, generator=g)

    def grads(loss):
        model.zero_grad(set_to_none=True)
        loss.backward()
        return [p.grad.clone() for p in model.parameters()]

    full = grads(diffusion_loss(model, schedule, x0, t, noise, learn_sigma=learn_sigma, vlb_weight=0.1)[0])
    halves = [diffusion_loss(model, schedule, x0[s], t[s], noise[s], learn_sigma=learn_sigma, vlb_weight=0.1)[0]
              for s in (slice(0, B), slice(B, 2 * B))]
    accumulated = grads(halves[0] / 2 + halves[1] / 2)
    for a, b in zip(full, accumulated):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    # every parameter gets a gradient (the check is not comparing zeros)
    assert all(a.abs().sum() > 0 for a in full)


def test_trainer_grad_accum_gradient_is_that_of_the_double_batch(tmp_path, monkeypatch):
    """Through the Trainer: with grad_accum=2 and batch_size=B, the gradient it steps with is the
    gradient of one batch of 2B built from the same examples, t and ε it drew."""
    B = 4
    trainer = Trainer(tiny_train_config(tmp_path, batch_size=B, grad_accum=2, grad_clip=0.0),
                      tiny_model_config(dropout=0.0), random_image_data())
    _randomize_zero_init(trainer.model)
    before = copy.deepcopy(trainer.model)
    calls = _record_diffusion_loss(monkeypatch)
    trainer.run_step()
    assert len(calls) == 2 and all(c["x0"].shape[0] == B for c in calls)
    # the two micro-batches are different examples
    assert not torch.equal(calls[0]["x0"], calls[1]["x0"])

    x0, t, noise = (torch.cat([c[k] for c in calls]) for k in ("x0", "t", "noise"))
    loss, _ = diffusion_loss(before, trainer.schedule, x0, t, noise)
    loss.backward()
    for (name, p_after), p_ref in zip(trainer.model.named_parameters(), before.parameters()):
        torch.testing.assert_close(p_after.grad, p_ref.grad, rtol=1e-5, atol=1e-7, msg=name)
    # the loss it reports is the mean over both micro-batches
    assert trainer.loss_history[-1] == pytest.approx(loss.item(), rel=1e-5)


# -- EMA ------------------------------------------------------------------------------------------

def test_ema_is_the_exponential_average_of_the_parameter_snapshots(tmp_path):
    decay, k = 0.8, 4
    trainer = Trainer(tiny_train_config(tmp_path, steps=k, ema_decay=decay, lr=1e-2),
                      tiny_model_config(dropout=0.0), random_image_data())
    snapshots = []
    for _ in range(k):
        trainer.run_step()
        snapshots.append({n: p.detach().double().clone() for n, p in trainer.model.named_parameters()})
    # AveragedModel's first update copies; then ema ← d_n·ema + (1 − d_n)·θ with the warm-up
    # d_n = min(decay, (1 + n)/(10 + n)), n = the number of updates averaged so far
    expected = dict(snapshots[0])
    for n, snap in enumerate(snapshots[1:], start=1):
        d = min(decay, (1 + n) / (10 + n))
        expected = {name: d * expected[name] + (1 - d) * snap[name] for name in expected}
    ema = dict(trainer.ema.module.named_parameters())
    assert int(trainer.ema.n_averaged) == k
    for name, value in expected.items():
        torch.testing.assert_close(ema[name].double(), value, rtol=1e-5, atol=1e-6, msg=name)
    # the EMA lags the raw weights (so the check above is not just "EMA = model")
    assert any(not torch.allclose(ema[n].double(), snapshots[-1][n]) for n in expected)


# -- non-finite loss ------------------------------------------------------------------------------

def test_non_finite_loss_stops_with_advice_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    data = random_image_data()
    trainer = Trainer(tiny_train_config(tmp_path, steps=6, checkpoint_every=1), tiny_model_config(), data)
    trainer.train(2, progress=False)
    good = trainer.checkpoint_path.read_bytes()
    files_before = sorted(p.name for p in tmp_path.iterdir())

    real_forward = trainer.model.forward
    monkeypatch.setattr(trainer.model, "forward",
                        lambda x, t, labels=None: real_forward(x, t, labels) * float("nan"))
    with pytest.raises(NonFiniteLossError) as info:
        trainer.train(progress=False)
    message = str(info.value)
    assert "nan" in message.lower() and "step 2" in message
    assert "--lr" in message and "--resume" in message          # says what to do
    assert str(trainer.checkpoint_path) in message
    assert isinstance(info.value, FloatingPointError)

    assert trainer.checkpoint_path.read_bytes() == good          # byte-identical
    assert sorted(p.name for p in tmp_path.iterdir()) == files_before   # no stray temp files
    assert trainer.step == 2
    monkeypatch.undo()
    resumed = Trainer.resume(trainer.checkpoint_path, data=data)
    assert resumed.step == 2 and resumed.loss_history == trainer.loss_history[:2]


# -- what each step draws -------------------------------------------------------------------------

def _labelled_constant_images(n: int, num_classes: int) -> ImageData:
    """Image i is filled with 60·label_i, so a batch's true labels can be read off its pixels."""
    labels = torch.arange(n) % num_classes
    images = (labels * 60).to(torch.uint8)[:, None, None, None].expand(n, 1, 8, 8).contiguous()
    return ImageData(images, labels, [f"c{k}" for k in range(num_classes)], "constant")


def test_label_dropout_rate_matches_label_dropout(tmp_path, monkeypatch):
    num_classes, p, steps, B = 3, 0.25, 40, 64
    trainer = Trainer(tiny_train_config(tmp_path, steps=steps, batch_size=B, conditional=True, label_dropout=p),
                      tiny_model_config(), _labelled_constant_images(128, num_classes))
    calls = _record_diffusion_loss(monkeypatch, cheap=True)
    for _ in range(steps):
        trainer.run_step()
    labels = torch.cat([c["labels"] for c in calls])
    true = torch.cat([((c["x0"][:, 0, 0, 0] + 1) * 127.5 / 60).round().long() for c in calls])
    dropped = labels == num_classes                 # the null label
    n = labels.numel()
    assert n == steps * B
    # binomial: the rate is within 5 standard deviations of p
    assert abs(dropped.float().mean().item() - p) < 5 * math.sqrt(p * (1 - p) / n)
    # labels that were not dropped are the examples' own labels
    assert torch.equal(labels[~dropped], true[~dropped])
    assert set(true.tolist()) == set(range(num_classes))


@pytest.mark.parametrize("p, expected", [(0.0, 0.0), (1.0, 1.0)])
def test_label_dropout_extremes(tmp_path, monkeypatch, p, expected):
    trainer = Trainer(tiny_train_config(tmp_path, batch_size=16, conditional=True, label_dropout=p),
                      tiny_model_config(), random_image_data(num_classes=3))
    calls = _record_diffusion_loss(monkeypatch, cheap=True)
    trainer.run_step()
    assert (calls[0]["labels"] == 3).float().mean().item() == expected


def test_unconditional_training_passes_no_labels(tmp_path, monkeypatch):
    trainer = Trainer(tiny_train_config(tmp_path), tiny_model_config(), random_image_data())
    calls = _record_diffusion_loss(monkeypatch, cheap=True)
    trainer.run_step()
    assert calls[0]["labels"] is None
    assert trainer.model.config.num_classes is None


def test_training_timesteps_are_uniform_on_0_to_T_minus_1(tmp_path, monkeypatch):
    T, steps, B = 10, 50, 64
    trainer = Trainer(tiny_train_config(tmp_path, T=T, steps=steps, batch_size=B), tiny_model_config(),
                      random_image_data(n=64))
    calls = _record_diffusion_loss(monkeypatch, cheap=True)
    for _ in range(steps):
        trainer.run_step()
    t = torch.cat([c["t"] for c in calls])
    assert t.dtype == torch.long
    assert int(t.min()) == 0 and int(t.max()) == T - 1        # both ends, 0 included (the paper's t=1)
    counts = torch.bincount(t, minlength=T).double()
    assert counts.numel() == T
    expected = t.numel() / T
    chi2 = ((counts - expected) ** 2 / expected).sum().item()
    assert chi2 < 33.7                                         # χ²(9 dof) at p = 1e-4
    # the noise is standard normal
    noise = torch.cat([c["noise"] for c in calls])
    assert abs(noise.mean().item()) < 0.01 and abs(noise.std().item() - 1) < 0.01


# -- clear errors ---------------------------------------------------------------------------------

def test_dataset_smaller_than_batch_size_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"(?i)batch.size"):
        Trainer(tiny_train_config(tmp_path, batch_size=32), tiny_model_config(), random_image_data(n=20))
    with pytest.raises(ValueError, match=r"(?i)batch.size"):
        BatchOrder(20, 32, seed=0)


def test_bad_options_are_clear_errors(tmp_path):
    data = random_image_data()
    with pytest.raises(ValueError, match="grad_accum"):
        Trainer(tiny_train_config(tmp_path, grad_accum=0), tiny_model_config(), data)
    with pytest.raises(ValueError, match="fp16"):
        Trainer(tiny_train_config(tmp_path, mixed_precision="fp16"), tiny_model_config(), data)


def test_trainer_derives_the_model_shape_from_the_data(tmp_path):
    data = random_image_data(size=8, channels=3, num_classes=5)
    trainer = Trainer(tiny_train_config(tmp_path, conditional=True, learn_sigma=True),
                      tiny_model_config(image_size=16, in_channels=1, attention_resolutions=(8,)), data)
    cfg = trainer.model.config
    assert (cfg.image_size, cfg.in_channels, cfg.num_classes, cfg.learn_sigma) == (8, 3, 5, True)
    out = trainer.model(torch.zeros(2, 3, 8, 8), torch.tensor([0, 1]), torch.tensor([0, 5]))
    assert out.shape == (2, 6, 8, 8)


def test_ema_without_warmup_uses_the_fixed_decay(tmp_path):
    decay, k = 0.8, 3
    trainer = Trainer(tiny_train_config(tmp_path, steps=k, ema_decay=decay, ema_warmup=False, lr=1e-2),
                      tiny_model_config(dropout=0.0), random_image_data())
    snapshots = []
    for _ in range(k):
        trainer.run_step()
        snapshots.append({n: p.detach().double().clone() for n, p in trainer.model.named_parameters()})
    expected = dict(snapshots[0])
    for snap in snapshots[1:]:
        expected = {n: decay * expected[n] + (1 - decay) * snap[n] for n in expected}
    ema = dict(trainer.ema.module.named_parameters())
    for name, value in expected.items():
        torch.testing.assert_close(ema[name].double(), value, rtol=1e-5, atol=1e-6, msg=name)


def test_an_interrupted_run_saves_and_resumes_exactly(tmp_path):
    """Ctrl-C (KeyboardInterrupt) in the middle of train() saves the state at that step, and
    --resume continues as if nothing had happened."""
    data = random_image_data()
    straight = Trainer(tiny_train_config(tmp_path / "a", steps=6), tiny_model_config(), data)
    straight.train(progress=False)

    def stop_at_3(trainer, loss):
        if trainer.step == 3:
            raise KeyboardInterrupt

    interrupted = Trainer(tiny_train_config(tmp_path / "b", steps=6), tiny_model_config(), data)
    with pytest.raises(KeyboardInterrupt):
        interrupted.train(progress=False, callback=stop_at_3)
    resumed = Trainer.resume(tmp_path / "b" / "checkpoint.pt", data=data)
    assert resumed.step == 3
    resumed.train(progress=False)
    assert resumed.loss_history == straight.loss_history
    _assert_state_dicts_equal(resumed.model.state_dict(), straight.model.state_dict())


class _FakeClock:
    """A stand-in for time.perf_counter that advances only when a training step runs."""

    def __init__(self, seconds_per_step: float):
        self.now, self.seconds_per_step = 1000.0, seconds_per_step

    def __call__(self) -> float:
        return self.now


def _budgeted_trainer(tmp_path, monkeypatch, seconds_per_step: float, **overrides):
    clock = _FakeClock(seconds_per_step)
    monkeypatch.setattr(trainer_module, "_now", clock)
    trainer = Trainer(tiny_train_config(tmp_path, **overrides), tiny_model_config(), data=random_image_data())
    real_step = trainer.run_step

    def timed_step():
        clock.now += clock.seconds_per_step
        return real_step()

    monkeypatch.setattr(trainer, "run_step", timed_step)
    return trainer


def test_max_minutes_fits_the_cosine_to_the_budget_and_stops_with_it(tmp_path, monkeypatch):
    # 1 s per step and a 60 s budget: steps 10-40 measure 1 step/s, so at step 40 (40 s spent)
    # the run plans 20 more steps and the cosine must end at step 60, not at the configured 1000
    trainer = _budgeted_trainer(tmp_path, monkeypatch, 1.0, steps=1000, max_minutes=1.0, warmup_steps=5)
    trainer.train(progress=False)
    assert trainer.step == 60
    assert trainer.config.steps == 60
    assert lr_at(59, trainer.config) == pytest.approx(trainer.config.min_lr_ratio, abs=0.01)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["train_config"]["steps"] == 60


def test_max_minutes_stops_on_time_before_calibration(tmp_path, monkeypatch):
    # a budget of 15 steps' time ends the run at step 15, before the cosine could be fitted
    trainer = _budgeted_trainer(tmp_path, monkeypatch, 1.0, steps=1000, max_minutes=0.25)
    trainer.train(progress=False)
    assert trainer.step == 15
    assert trainer.config.steps == 1000
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 15


def test_max_minutes_never_lengthens_the_run(tmp_path, monkeypatch):
    # a fast run whose budget would allow 6000 steps still ends at the configured 50
    trainer = _budgeted_trainer(tmp_path, monkeypatch, 0.01, steps=50, max_minutes=1.0)
    trainer.train(progress=False)
    assert trainer.step == 50 and trainer.config.steps == 50


def test_cpu_fast_preset_is_the_benchmarked_configuration():
    from ddpm_teach.devices import cpu_has_native_bf16
    from ddpm_teach.unet import UNetConfig

    values = training.preset("cpu-fast")
    model_fields, train_fields = set(UNetConfig.__dataclass_fields__), set(TrainConfig.__dataclass_fields__)
    assert set(values) <= model_fields | train_fields
    config, model_config = training.preset_configs("cpu-fast")
    assert 1.0e6 < UNet(model_config).num_parameters() < 1.2e6
    assert model_config.base_channels == values["base_channels"] and config.lr == values["lr"]
    assert config.probe_setup and config.max_minutes == 15.0 and config.batch_size == 64
    # the probe decides compile, channels_last and bf16 (which it tries only where the CPU has it natively);
    # these are its starting values
    assert not config.compile and not config.channels_last
    assert config.mixed_precision == ("bf16" if cpu_has_native_bf16() else "no")
    assert set(training.preset("gpu")) <= train_fields


def test_unknown_preset_is_a_clear_error():
    with pytest.raises(ValueError, match="cpu-fast"):
        training.preset("laptop")


def test_gpu_preset_trains_on_cpu_in_fp32(tmp_path):
    # the GPU path's settings, minus torch.compile (minutes on a CPU), on a tiny model: on a CPU
    # "auto" mixed precision is plain fp32 and the data stay where they are
    config, _ = training.preset_configs("gpu", compile=False, batch_size=8, steps=2, out_dir=str(tmp_path),
                                        device="cpu", T=50)
    assert config.mixed_precision == "auto" and config.lr == training.preset("gpu")["lr"]
    trainer = Trainer(config, tiny_model_config(), data=random_image_data())
    assert trainer.amp_dtype is None and trainer.data.images.device.type == "cpu"
    losses = trainer.train(progress=False)
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)


# -- the pure step against the runner ---------------------------------------------------------------

@pytest.mark.parametrize("options", [dict(), dict(conditional=True, label_dropout=0.5, learn_sigma=True, grad_accum=2)])
def test_train_step_function_is_what_the_runner_does(tmp_path, options):
    """One step of training.train_step, called by hand with the runner's seeds and batches, gives
    bit-for-bit the weights, EMA and loss of one Trainer.run_step: the runner adds no maths."""
    data = random_image_data()
    config = tiny_train_config(tmp_path, **options)
    runner = Trainer(config, tiny_model_config(), data)
    batches = runner.micro_batches()                       # what the runner will feed its first step
    runner_loss = runner.run_step()

    torch.manual_seed(config.seed)                         # the runner's seeding, by hand
    model = UNet(runner.model_config)
    torch.manual_seed(config.seed)
    ema = training.make_ema(model, config.ema_decay, config.ema_warmup)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr * lr_at(0, config), weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    loss = training.train_step(model, runner.schedule, batches, optimizer, ema, generator,
                               num_classes=3 if config.conditional else None, label_dropout=config.label_dropout,
                               learn_sigma=config.learn_sigma, vlb_weight=config.vlb_weight, grad_clip=config.grad_clip)
    assert loss == runner_loss
    _assert_state_dicts_equal(model.state_dict(), runner.model.state_dict())
    _assert_state_dicts_equal(ema.module.state_dict(), runner.ema.module.state_dict())
    assert torch.equal(generator.get_state(), runner.generator.get_state())
    # the step moved the weights (the equality above is not that of two untouched models)
    assert not torch.equal(model.conv_out.weight, UNet(runner.model_config).conv_out.weight)


def test_train_step_refuses_a_non_finite_loss_before_any_weight_changes():
    model = UNet(tiny_model_config(dropout=0.0, in_channels=1))
    before = copy.deepcopy(model.state_dict())
    ema = training.make_ema(model, 0.9)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    x0 = torch.full((4, 1, 8, 8), float("nan"))
    with pytest.raises(NonFiniteLossError, match="nan"):
        training.train_step(model, NoiseSchedule.from_name("linear", 50), [(x0, None)], optimizer, ema,
                            torch.Generator().manual_seed(0))
    _assert_state_dicts_equal(model.state_dict(), before)
    assert int(ema.n_averaged) == 0


def test_non_finite_loss_before_any_checkpoint_cites_none(tmp_path, monkeypatch):
    trainer = Trainer(tiny_train_config(tmp_path, steps=3), tiny_model_config(), random_image_data())
    real_forward = trainer.model.forward
    monkeypatch.setattr(trainer.model, "forward", lambda x, t, labels=None: real_forward(x, t, labels) * float("inf"))
    with pytest.raises(NonFiniteLossError) as info:
        trainer.train(progress=False)
    message = str(info.value)
    assert "No checkpoint of this run had been written yet" in message and "last good checkpoint" not in message
    assert "step 0" in message and "--lr" in message
    assert not trainer.checkpoint_path.exists()


def test_a_signal_mid_step_is_handled_at_the_step_boundary(tmp_path, monkeypatch):
    """A real SIGINT delivered in the middle of a step (between drawing t, ε and the optimizer
    step) lets that step finish, then saves and stops: the checkpoint is a consistent step k+1,
    and resuming from it repeats the uninterrupted run exactly."""
    import os
    import signal

    data = random_image_data()
    straight = Trainer(tiny_train_config(tmp_path / "a", steps=6), tiny_model_config(), data)
    straight.train(progress=False)

    interrupted = Trainer(tiny_train_config(tmp_path / "b", steps=6), tiny_model_config(), data)
    real_loss, calls = training.diffusion_loss, []

    def loss_then_signal(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:                                # inside step index 2, after its random draws
            os.kill(os.getpid(), signal.SIGINT)
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(training, "diffusion_loss", loss_then_signal)
    before = signal.getsignal(signal.SIGINT)      # default_int_handler, or SIG_IGN under nohup / a background job
    with pytest.raises(KeyboardInterrupt):
        interrupted.train(progress=False)
    monkeypatch.undo()
    assert interrupted.step == 3
    saved = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert saved["step"] == 3 and saved["loss_history"] == straight.loss_history[:3]
    assert signal.getsignal(signal.SIGINT) is before      # the handler that was there before is given back
    resumed = Trainer.resume(tmp_path / "b" / "checkpoint.pt", data=data)
    resumed.train(progress=False)
    assert resumed.loss_history == straight.loss_history
    _assert_state_dicts_equal(resumed.model.state_dict(), straight.model.state_dict())


def test_several_processes_without_a_process_group_is_a_clear_error(tmp_path):
    from ddpm_teach.trainer import Processes

    with pytest.raises(RuntimeError, match="init_distributed"):
        Trainer(tiny_train_config(tmp_path), tiny_model_config(), random_image_data(), processes=Processes(0, 0, 2))
