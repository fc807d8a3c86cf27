"""ddpm_teach.flow (notebook 11): the straight path and its loss, the Euler and Heun samplers against
the exact velocity of Gaussian data, guidance, the bridge that makes deterministic DDIM flow Euler in
other coordinates, straightness, the command line on a flow checkpoint, exact resume, and the
flow-vs-diffusion benchmark at --quick size."""
from __future__ import annotations

import json
import math
import types

import pytest
import torch

from ddpm_teach.checkpoint import checkpoint_objective, load_checkpoint
from ddpm_teach.cli import main
from ddpm_teach.data import DEBIAN_FASHION_MNIST
from ddpm_teach.flow import (FLOW_TIME_SCALE, EpsAsVelocity, FlowEulerSampler, FlowHeunSampler, ddpm_time_to_flow,
                             ddpm_to_flow_scale, flow_eps_from_v, flow_loss, flow_time_grid, flow_v_from_eps,
                             flow_v_from_x0, flow_x0_from_v, interpolate, make_flow_sampler, network_time,
                             path_straightness, straightness, trajectory_to_flow, velocity_target)
from ddpm_teach.forward import q_sample
from ddpm_teach.samplers import DDIMSampler, guided_model_output, sample
from ddpm_teach.schedules import NoiseSchedule
from ddpm_teach.solvers import _sigmas
from ddpm_teach.trainer import Trainer
from ddpm_teach.training import TrainConfig, make_ema, train_step
from ddpm_teach.unet import UNet, UNetConfig

from helpers_training import REPO, random_image_data, tiny_model_config, tiny_train_config

SHIPPED_DDPM = REPO / "checkpoints" / "fashion_mnist_ddpm.pt"
HAVE_FASHION_MNIST = (DEBIAN_FASHION_MNIST / "t10k-images-idx3-ubyte.gz").is_file()


@pytest.fixture(autouse=True)
def _no_progress_bars(monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")


def noise(shape, seed=0, dtype=torch.float64):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# -- the path and the loss ------------------------------------------------------------------------

def test_flow_loss_is_the_mse_of_the_velocity_computed_by_hand(tiny_unet):
    model = tiny_unet(num_classes=3)
    x0, eps = noise((4, 1, 16, 16), 1, torch.float32), noise((4, 1, 16, 16), 2, torch.float32)
    t = torch.tensor([0.0, 0.25, 0.6, 1.0])
    labels = torch.tensor([0, 2, 1, 3])                                   # 3: the null label
    loss, parts = flow_loss(model, x0, t, eps, labels)
    x_t = torch.stack([(1 - float(ti)) * x0[i] + float(ti) * eps[i] for i, ti in enumerate(t)])
    v_hat = model(x_t, t * 999.0, labels)
    expected = ((eps - x0 - v_hat) ** 2).mean()
    assert torch.allclose(loss, expected, rtol=1e-6, atol=0)
    assert torch.equal(parts["mse"], loss.detach())
    assert torch.equal(network_time(t), t * FLOW_TIME_SCALE) and network_time(t).dtype == torch.float32


def test_interpolate_ends_at_data_and_noise_and_rejects_t_outside_0_1():
    x0, eps = noise((2, 1, 4, 4), 1), noise((2, 1, 4, 4), 2)
    assert torch.equal(interpolate(x0, eps, torch.zeros(2, dtype=torch.float64)), x0)
    assert torch.equal(interpolate(x0, eps, torch.ones(2, dtype=torch.float64)), eps)
    for bad in ([-0.1, 0.5], [0.5, 1.5]):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            interpolate(x0, eps, torch.tensor(bad, dtype=torch.float64))


@pytest.mark.parametrize("t", [0.3, torch.tensor([0.05, 0.5, 0.95])])
def test_conversions_round_trip_in_float64(t):
    x0, eps = noise((3, 2, 4, 4), 1), noise((3, 2, 4, 4), 2)
    t_batch = t if isinstance(t, torch.Tensor) else torch.full((3,), t, dtype=torch.float64)
    x_t, v = interpolate(x0, eps, t_batch.double()), velocity_target(x0, eps)
    for got, want in ((flow_x0_from_v(x_t, t, v=v), x0), (flow_eps_from_v(x_t, t, v=v), eps),
                      (flow_v_from_eps(x_t, t, eps=eps), v), (flow_v_from_x0(x_t, t, x0=x0), v)):
        assert torch.allclose(got, want, rtol=0, atol=1e-12)


def test_ddpm_x_t_scaled_by_c_lies_on_the_straight_path_at_the_flow_time():
    schedule = NoiseSchedule.from_name("linear", 1000)
    x0, eps = noise((3, 1, 4, 4), 1), noise((3, 1, 4, 4), 2)
    steps = torch.tensor([0, 400, 999])
    x_t = q_sample(schedule, x0, steps, eps)
    t_flow, c = ddpm_time_to_flow(schedule, steps), ddpm_to_flow_scale(schedule, steps)
    assert torch.allclose(c.reshape(-1, 1, 1, 1) * x_t, interpolate(x0, eps, t_flow), rtol=0, atol=1e-6)
    all_times = ddpm_time_to_flow(schedule, torch.arange(1000))
    assert bool((all_times[1:] > all_times[:-1]).all()) and 0 < float(all_times[0]) and float(all_times[-1]) < 1
    # t/(1 − t) is the σ of the probability-flow ODE (solvers.py)
    assert torch.allclose(all_times / (1 - all_times), _sigmas(schedule), rtol=1e-10, atol=0)


# -- samplers on Gaussian data, where the velocity is exact --------------------------------------------
# x_0 ~ N(μ, s²), ε ~ N(0, 1): x_t = (1−t)x_0 + tε is Gaussian with mean (1−t)μ and variance
# V = (1−t)²s² + t², and Cov(ε − x_0, x_t) = t − (1−t)s², so E[v | x_t] = −μ + (t − (1−t)s²)/V·(x_t − (1−t)μ).
# The ODE keeps the standardised value: x_t = (1−t)μ + √V·x_1, so x_0 = μ + s·x_1 exactly.
MU, S = 0.3, 0.5


class GaussianVelocity(torch.nn.Module):
    """The exact marginal velocity of N(μ, s²) data, called as the samplers call a UNet."""

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))     # sample() reads the device here
        self.config = types.SimpleNamespace(in_channels=1, image_size=2, num_classes=None, learn_sigma=False)

    def forward(self, x, t, labels=None):
        t = (t.double() / FLOW_TIME_SCALE).reshape(-1, 1, 1, 1)
        variance = (1 - t) ** 2 * S**2 + t**2
        return -MU + (t - (1 - t) * S**2) / variance * (x - (1 - t) * MU)


def gaussian_error(sampler_class, steps: int) -> float:
    x_1 = noise((64, 1, 2, 2), 3)
    x_0 = sample(GaussianVelocity(), sampler_class(steps=steps), x_T=x_1, progress=False)
    return float((x_0 - (MU + S * x_1)).abs().max())


def test_euler_with_many_steps_reaches_the_data_distribution():
    x_1 = noise((4096, 1, 2, 2), 4)
    x_0 = sample(GaussianVelocity(), FlowEulerSampler(steps=1000), x_T=x_1, progress=False)
    # against the noise's own mean and std, so that only the solver's error is measured
    assert abs(float(x_0.mean()) - (MU + S * float(x_1.mean()))) < 2e-3
    assert abs(float(x_0.std()) - S * float(x_1.std())) < 2e-3


@pytest.mark.parametrize("sampler_class, steps, bounds", [(FlowEulerSampler, 16, (0.85, 1.15)),
                                                          (FlowHeunSampler, 32, (1.75, 2.25))])
def test_solvers_converge_at_their_order(sampler_class, steps, bounds):
    """The error at t = 0 falls as steps^-p: p ≈ 1 for Euler, 2 for Heun (the log2 of the error
    ratio between steps and 2·steps)."""
    coarse, fine = gaussian_error(sampler_class, steps), gaussian_error(sampler_class, 2 * steps)
    order = math.log2(coarse / fine)
    assert bounds[0] <= order <= bounds[1], (sampler_class.__name__, coarse, fine, order)


def test_grid_shift_and_heun_timesteps():
    grid = flow_time_grid(4)
    assert torch.allclose(grid, torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0], dtype=torch.float64))
    shifted = flow_time_grid(4, shift=3.0)
    assert shifted[0] == 1 and shifted[-1] == 0 and bool((shifted[1:-1] > grid[1:-1]).all())
    heun = FlowHeunSampler(steps=4)
    assert heun.timesteps.tolist() == [1.0, 0.75, 0.75, 0.5, 0.5, 0.25, 0.25, 0.0]
    assert heun.nfe == len(heun) == 8 and FlowEulerSampler(steps=4).nfe == 4
    assert FlowEulerSampler(steps=4).timesteps.tolist() == [1.0, 0.75, 0.5, 0.25]
    assert repr(FlowHeunSampler(steps=4)) == "FlowHeunSampler(steps=4, nfe=8, shift=1)"
    assert isinstance(make_flow_sampler("heun", steps=3), FlowHeunSampler)


@pytest.mark.parametrize("bad", [dict(steps=0), dict(steps=2.5), dict(shift=0.0), dict(shift=float("nan")),
                                 dict(times=[0.5, 0.7, 0.0]), dict(times=[1.2, 0.0]), dict(times=[1.0]),
                                 dict(steps=3, times=[1.0, 0.0])])
def test_bad_grids_are_errors(bad):
    with pytest.raises(ValueError):
        FlowEulerSampler(**bad)


def test_wrong_sampler_name_and_out_of_order_steps_are_errors():
    with pytest.raises(ValueError, match="euler"):
        make_flow_sampler("ddim", steps=4)
    sampler = FlowEulerSampler(steps=4)
    x = noise((1, 1, 2, 2))
    with pytest.raises(ValueError, match=r"begin\(\)"):
        sampler.step(x, 0.75, x)                                # the first call expects t = 1
    with pytest.raises(ValueError, match="EpsAsVelocity"):
        sampler.step(torch.cat([x, x], 1), 1.0, x)              # a learned-variance output is no velocity


@pytest.mark.parametrize("sampler", [FlowEulerSampler(steps=5), FlowHeunSampler(steps=3),
                                     FlowEulerSampler.from_times([0.9, 0.5, 0.2])])
def test_nfe_counted_in_the_loop_is_sampler_nfe(sampler, tiny_unet):
    model = tiny_unet()
    calls = []
    model.register_forward_hook(lambda module, args, output: calls.append(args[1].clone()))
    _, trajectory = sample(model, sampler, 2, progress=False, return_trajectory=True,
                           generator=torch.Generator().manual_seed(0))
    assert trajectory.nfe == sampler.nfe == len(calls) == len(sampler.timesteps)
    # the network saw the float time t·999 at each of sampler.timesteps
    assert all(c.dtype == torch.float32 for c in calls)
    assert torch.allclose(torch.stack([c[0] for c in calls]).double(), sampler.timesteps * 999, rtol=1e-6)
    again = sample(model, sampler, 2, progress=False, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again, trajectory.x[-1])                 # begin() resets: a second run repeats exactly


# -- guidance ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("scale", [0.0, 1.0, 2.5])
def test_guided_velocity_is_v_u_plus_s_times_v_c_minus_v_u(scale, tiny_unet):
    """sample() with a flow sampler against a hand-written Euler loop on v_u + s(v_c − v_u); at s=1
    it is the conditional velocity, at s=0 the unconditional one (the null label)."""
    model = tiny_unet(num_classes=3).double()
    labels = torch.tensor([0, 2])
    x_1 = noise((2, 1, 16, 16), 5)
    got = sample(model, FlowEulerSampler(steps=3), x_T=x_1, labels=labels, guidance_scale=scale, progress=False)
    x, times = x_1, flow_time_grid(3)
    null = model.null_labels(2)
    with torch.no_grad():
        for t_now, t_next in zip(times[:-1].tolist(), times[1:].tolist()):
            t_in = network_time(torch.full((2,), t_now))
            v_c, v_u = model(x, t_in, labels), model(x, t_in, null)
            v = {0.0: v_u, 1.0: v_c}.get(scale, v_u + scale * (v_c - v_u))
            assert torch.allclose(guided_model_output(model, x, t_in, labels, scale), v, rtol=0, atol=1e-12)
            x = x + (t_next - t_now) * v
    assert torch.allclose(got, x, rtol=0, atol=1e-12)


# -- DDIM is flow Euler in other coordinates ---------------------------------------------------------

@pytest.mark.parametrize("T, steps, scale", [(1000, 10, 1.0), (50, 7, 1.0), (1000, 1, 1.0), (1000, 6, 2.0)])
def test_ddim_eta0_equals_flow_euler_on_the_wrapped_eps_model(T, steps, scale, tiny_unet):
    """x_flow = c·x_t and Euler x' = x + (t' − t)(ε̂ − x̂_0) = (1 − t')x̂_0 + t'ε̂, which is DDIM's
    √ᾱ' x̂_0 + √(1−ᾱ') ε̂ times c'.  Same samples, and same paths in flow coordinates (guided too)."""
    model = tiny_unet(num_classes=3).double()
    schedule = NoiseSchedule.from_name("linear", T)
    ddim = DDIMSampler(schedule, steps=steps, clip_x0=False)
    x_T = noise((3, 1, 16, 16), 6)
    labels = torch.tensor([0, 1, 2])
    ddim_x0, ddim_path = sample(model, ddim, x_T=x_T, labels=labels, guidance_scale=scale, progress=False,
                                return_trajectory=True)
    flow = FlowEulerSampler.from_ddpm_timesteps(schedule, ddim.timesteps)
    assert flow.nfe == ddim.nfe and float(flow.times[-1]) == 0.0
    c = float(ddpm_to_flow_scale(schedule, int(ddim.timesteps[0])))
    flow_x0, flow_path = sample(EpsAsVelocity(model, schedule), flow, x_T=c * x_T, labels=labels,
                                guidance_scale=scale, progress=False, return_trajectory=True)
    tolerance = 1e-9 * float(ddim_x0.abs().max())
    assert torch.allclose(flow_x0, ddim_x0, rtol=0, atol=tolerance)
    assert torch.allclose(flow_path.pred_x0, ddim_path.pred_x0, rtol=0, atol=tolerance)      # the same x̂_0 at each step
    times, xs = trajectory_to_flow(schedule, ddim_path)
    assert torch.equal(times, flow.times)
    assert torch.allclose(xs, flow_path.x, rtol=0, atol=tolerance)


def test_eps_as_velocity_between_timesteps_and_past_the_schedule(tiny_unet):
    model = tiny_unet().double()
    schedule = NoiseSchedule.from_name("linear", 1000)
    wrapped = EpsAsVelocity(model, schedule)
    x = noise((2, 1, 16, 16), 7)
    top = float(ddpm_time_to_flow(schedule, 999))
    with pytest.raises(ValueError, match="from_ddpm_timesteps"):
        wrapped(x, network_time(torch.full((2,), 1.0)))
    with pytest.raises(TypeError, match="float"):
        wrapped(x, torch.full((2,), 5))
    # the ε-model sees timestep 500 exactly at t_flow(500), x/c there, and a τ in (500, 501) between
    # t_flow(500) and t_flow(501); below t_flow(0) τ = 0 (t = 0 included)
    seen = []
    model.register_forward_hook(lambda module, args, output: seen.append((args[0].clone(), args[1].clone())))
    t_a, t_b = ddpm_time_to_flow(schedule, torch.tensor([500, 501]))
    for t in (t_a, (t_a + t_b) / 2, torch.tensor(0.0)):
        v = wrapped(x, network_time(torch.full((2,), float(t))))
        assert v.shape == x.shape and bool(torch.isfinite(v).all())
    (x_a, tau_a), (_, tau_mid), (x_0, tau_0) = seen
    assert tau_a.tolist() == [500.0, 500.0] and bool(((500 < tau_mid) & (tau_mid < 501)).all())
    assert torch.allclose(x_a, x / float(ddpm_to_flow_scale(schedule, 500)), rtol=1e-12, atol=0)
    assert tau_0.tolist() == [0.0, 0.0] and torch.equal(x_0, x) and top < 1


# -- straightness ------------------------------------------------------------------------------------

def test_path_straightness_by_hand():
    times = torch.tensor([1.0, 0.5, 0.0], dtype=torch.float64)
    straight = torch.stack([torch.full((1, 1, 1, 2), v, dtype=torch.float64) for v in (2.0, 1.0, 0.0)])
    assert path_straightness(times, straight) == 0.0
    # velocities 4 then 0 (x: 2 → 0 → 0): the line's is 2, so S = ½·4 + ½·4 = 4
    bent = torch.stack([torch.full((1, 1, 1, 2), v, dtype=torch.float64) for v in (2.0, 0.0, 0.0)])
    assert path_straightness(times, bent) == pytest.approx(4.0)


def test_straightness_is_zero_for_a_constant_velocity_and_positive_for_gaussian_data():
    class Constant(GaussianVelocity):
        def forward(self, x, t, labels=None):
            return torch.full_like(x, 0.7)

    x_1 = noise((8, 1, 2, 2), 8)
    assert straightness(Constant(), FlowEulerSampler(steps=8), x_T=x_1) == pytest.approx(0.0, abs=1e-24)
    assert straightness(GaussianVelocity(), FlowEulerSampler(steps=8), x_T=x_1) > 1e-3
    with pytest.raises(ValueError, match="FlowEulerSampler"):
        straightness(Constant(), FlowHeunSampler(steps=2), x_T=x_1)


def test_straightness_of_ddim_path_equals_that_of_the_wrapped_eps_model(tiny_unet):
    model = tiny_unet().double()
    schedule = NoiseSchedule.from_name("linear", 1000)
    ddim = DDIMSampler(schedule, steps=8, clip_x0=False)
    x_T = noise((2, 1, 16, 16), 9)
    _, path = sample(model, ddim, x_T=x_T, progress=False, return_trajectory=True)
    from_ddim = path_straightness(*trajectory_to_flow(schedule, path))
    c = float(ddpm_to_flow_scale(schedule, 999))
    wrapped = straightness(EpsAsVelocity(model, schedule), FlowEulerSampler.from_ddpm_timesteps(schedule, ddim.timesteps),
                           x_T=c * x_T)
    assert from_ddim == pytest.approx(wrapped, rel=1e-9)


# -- training -----------------------------------------------------------------------------------------

def test_training_a_tiny_flow_unet_makes_the_loss_fall():
    torch.manual_seed(0)
    model = UNet(tiny_model_config(dropout=0.0))
    ema = make_ema(model, 0.9)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    x0 = torch.linspace(-1, 1, 8).reshape(8, 1, 1, 1).expand(8, 1, 8, 8).contiguous()    # 8 flat grey images
    probe = torch.Generator().manual_seed(2)
    t_probe, eps_probe = torch.rand(64, generator=probe), torch.randn((64, 1, 8, 8), generator=probe)
    x0_probe = x0.repeat(8, 1, 1, 1)

    def probe_loss():
        with torch.no_grad():
            return float(flow_loss(model.eval(), x0_probe, t_probe, eps_probe)[0])

    before = probe_loss()
    generator = torch.Generator().manual_seed(3)
    schedule = NoiseSchedule.from_name("linear", 10)                  # not used by the flow objective
    losses = [train_step(model, schedule, [(x0, None)], optimizer, ema, generator, objective="flow",
                         t_sampling="logit_normal") for _ in range(30)]
    assert all(math.isfinite(x) for x in losses)
    after = probe_loss()
    assert after < 0.5 * before, (before, after)


def test_seeded_flow_run_resumes_exactly(tmp_path):
    data = random_image_data()
    options = dict(objective="flow", t_sampling="logit_normal", conditional=True, label_dropout=0.3)
    total, stop = 6, 3
    straight = Trainer(tiny_train_config(tmp_path / "straight", steps=total, **options), tiny_model_config(), data)
    straight.train(progress=False)
    first = Trainer(tiny_train_config(tmp_path / "resumed", steps=total, **options), tiny_model_config(), data)
    first.train(stop, progress=False)
    torch.manual_seed(12345)                                          # as a fresh process would have it
    resumed = Trainer.resume(first.checkpoint_path, data=data)
    resumed.train(progress=False)
    assert resumed.step == straight.step == total
    assert resumed.loss_history == straight.loss_history
    for a, b in ((resumed.model, straight.model), (resumed.ema.module, straight.ema.module)):
        for key, value in a.state_dict().items():
            assert torch.equal(value, b.state_dict()[key]), key
    ckpt = load_checkpoint(resumed.checkpoint_path)
    assert checkpoint_objective(ckpt) == "flow" and ckpt["train_config"]["t_sampling"] == "logit_normal"
    # a checkpoint from before flow matching has no objective: it is an ε-model
    del ckpt["train_config"]["objective"]
    assert checkpoint_objective(ckpt) == "eps"


# -- the command line ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def flow_checkpoint(tmp_path_factory):
    """A class-conditional 28×28 flow checkpoint (10 classes), trained two steps on random images."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("flow")
    config = TrainConfig(steps=2, batch_size=8, conditional=True, objective="flow", device="cpu", out_dir=str(out),
                         checkpoint_every=0, mixed_precision="no")
    model_config = UNetConfig(base_channels=8, channel_mults=(1, 2), num_res_blocks=1, attention_resolutions=(14,),
                              norm_groups=4, dropout=0.0)
    trainer = Trainer(config, model_config, random_image_data(n=32, size=28, num_classes=10))
    trainer.train(progress=False)
    return trainer.checkpoint_path


def _run(argv, capsys):
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr()


def _one_error_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_cli_samples_a_flow_checkpoint_with_euler_heun_and_guidance(flow_checkpoint, tmp_path, capsys):
    import numpy as np

    code, out = _run(["sample", "--checkpoint", flow_checkpoint, "--sampler", "heun", "--steps", "2", "--n", "3",
                      "--seed", "1", "--out", tmp_path / "a.npz"], capsys)
    assert code == 0, out.err
    assert "FlowHeunSampler(steps=2, nfe=4, shift=1): 4 network evaluations" in out.out
    with np.load(tmp_path / "a.npz") as f:
        assert f["images"].shape == (3, 28, 28) and f["images"].dtype == np.uint8
    code, out = _run(["sample", "--checkpoint", flow_checkpoint, "--steps", "3", "--n", "4", "--labels", "all",
                      "--guidance-scale", "2", "--flow-shift", "2", "--out", tmp_path / "b.png"], capsys)
    assert code == 0, out.err
    assert "FlowEulerSampler(steps=3, nfe=3, shift=2)" in out.out and (tmp_path / "b.png").stat().st_size > 0


@pytest.mark.parametrize("flags, words", [
    (["--sampler", "ddim"], ["--sampler ddim", "euler or heun"]),
    (["--sampler", "dpmpp2m"], ["--sampler dpmpp2m"]),
    (["--eta", "0.5"], ["--eta 0.5"]),
    (["--sampler", "euler", "--variance-type", "fixed_large"], ["--variance-type fixed_large"]),
    (["--spacing", "karras"], ["--spacing karras"]),
])
def test_cli_diffusion_flags_on_a_flow_checkpoint_are_one_line_errors(flow_checkpoint, tmp_path, capsys, flags, words):
    code, out = _run(["sample", "--checkpoint", flow_checkpoint, "--n", "2", *flags, "--out", tmp_path / "x.npz"], capsys)
    assert code == 2
    line = _one_error_line(out.err)
    assert all(w in line for w in words + ["flow-matching"]), line
    assert not (tmp_path / "x.npz").exists()


def test_cli_flow_only_flags_on_an_eps_checkpoint_are_one_line_errors(tmp_path, capsys):
    code, out = _run(["sample", "--checkpoint", SHIPPED_DDPM, "--n", "2", "--flow-shift", "3",
                      "--out", tmp_path / "x.npz"], capsys)
    assert code == 2
    assert "--flow-shift 3" in _one_error_line(out.err)
    code, out = _run(["train", "--t-sampling", "logit_normal", "--steps", "1", "--out-dir", tmp_path / "run"], capsys)
    assert code == 2
    assert "--t-sampling" in _one_error_line(out.err) and "--objective flow" in out.err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_FASHION_MNIST, reason="Debian's dataset-fashion-mnist is not installed")
def test_cli_evaluate_scores_samples_of_a_flow_model(flow_checkpoint, tmp_path, capsys):
    code, out = _run(["sample", "--checkpoint", flow_checkpoint, "--steps", "2", "--n", "8", "--labels", "all",
                      "--out", tmp_path / "s.npz"], capsys)
    assert code == 0, out.err
    code, out = _run(["evaluate", "--samples", tmp_path / "s.npz", "--json", tmp_path / "s.json"], capsys)
    assert code == 0, out.err
    scores = json.loads((tmp_path / "s.json").read_text())
    assert scores["n"] == 8 and math.isfinite(scores["fid"]) and 0 <= scores["accuracy"] <= 1


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_FASHION_MNIST, reason="Debian's dataset-fashion-mnist is not installed")
def test_cli_resumes_a_flow_run_and_refuses_to_change_its_objective(flow_checkpoint, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(flow_checkpoint.parent, run)
    code, out = _run(["train", "--resume", run / "checkpoint.pt", "--objective", "eps", "--device", "cpu"], capsys)
    assert code == 2 and "--objective 'eps'" in _one_error_line(out.err)
    code, out = _run(["train", "--resume", run / "checkpoint.pt", "--steps", "3", "--device", "cpu"], capsys)
    assert code == 0, out.err
    ckpt = load_checkpoint(run / "checkpoint.pt")
    assert ckpt["step"] == 3 and checkpoint_objective(ckpt) == "flow"


# -- the benchmark ------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.skipif(not HAVE_FASHION_MNIST, reason="Debian's dataset-fashion-mnist is not installed")
def test_flow_vs_diffusion_quick_runs_with_a_tiny_flow_checkpoint_and_resumes(flow_checkpoint, tmp_path, capsys):
    from benchmarks import flow_vs_diffusion

    out = tmp_path / "f.json"
    common = ["--quick", "--n", "6", "--straightness-n", "2", "--flow-checkpoint", str(flow_checkpoint),
              "--out", str(out)]
    assert flow_vs_diffusion.main(common) == 0
    printed = capsys.readouterr().out
    saved = json.loads(out.read_text())
    fid_rows = [r for r in saved["rows"] if r["table"] == "fid_vs_nfe"]
    assert [r["setting"] for r in fid_rows] == [
        "flow Euler NFE=1", "flow Euler NFE=4", "flow Euler NFE=16", "flow Heun NFE=4", "flow Heun NFE=16",
        "ε DDIM NFE=1", "ε DDIM NFE=4", "ε DDIM NFE=16", "ε DPM++2M NFE=1", "ε DPM++2M NFE=4", "ε DPM++2M NFE=16"]
    assert all(r["n"] == 6 and math.isfinite(r["fid"]) and r["fid_floor"] > 0 for r in fid_rows)
    s_rows = [r for r in saved["rows"] if r["table"] == "straightness"]
    assert len(s_rows) == 2 and all(r["straightness"] >= 0 and r["n"] == 2 for r in s_rows)
    for line in ("flow best FID / eps best FID: ", "at NFE<=8: flow Euler/Heun best vs DDIM best: ",
                 "real-vs-real floor at N=6: "):
        assert line in printed, printed
    assert out.with_suffix(".png").stat().st_size > 0
    # --resume keeps every row (not re-measured: the seconds are the saved ones)
    assert flow_vs_diffusion.main(common + ["--resume"]) == 0
    again = json.loads(out.read_text())["rows"]
    assert [(r["setting"], r.get("seconds")) for r in again] == [(r["setting"], r.get("seconds")) for r in saved["rows"]]
    assert "kept from the earlier run" in capsys.readouterr().out


@pytest.fixture(scope="module")
def logit_normal_checkpoint(tmp_path_factory):
    """The flow_checkpoint recipe with logit-normal t (unconditional), trained two steps on random images."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("flow_ln")
    config = TrainConfig(steps=2, batch_size=8, objective="flow", t_sampling="logit_normal", device="cpu",
                         out_dir=str(out), checkpoint_every=0, mixed_precision="no")
    model_config = UNetConfig(base_channels=8, channel_mults=(1, 2), num_res_blocks=1, attention_resolutions=(14,),
                              norm_groups=4, dropout=0.0)
    trainer = Trainer(config, model_config, random_image_data(n=32, size=28))
    trainer.train(progress=False)
    return trainer.checkpoint_path


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_FASHION_MNIST, reason="Debian's dataset-fashion-mnist is not installed")
def test_flow_vs_diffusion_compares_logit_normal_t_at_the_same_nfe(flow_checkpoint, logit_normal_checkpoint, tmp_path,
                                                                    capsys):
    from benchmarks import flow_vs_diffusion

    out = tmp_path / "ln.json"
    argv = ["--n", "6", "--nfes", "1", "2", "--families", "flow Euler", "flow Heun", "--straightness-n", "2",
            "--flow-checkpoint", str(flow_checkpoint), "--logit-normal-checkpoint", str(logit_normal_checkpoint),
            "--out", str(out)]
    assert flow_vs_diffusion.main(argv) == 0
    printed = capsys.readouterr().out
    saved = json.loads(out.read_text())
    assert [r["setting"] for r in saved["rows"] if r["table"] == "fid_vs_nfe"] == [
        "flow Euler NFE=1", "flow Euler NFE=2", "flow Heun NFE=2",
        "flow Euler (logit-normal t) NFE=1", "flow Euler (logit-normal t) NFE=2", "flow Heun (logit-normal t) NFE=2"]
    assert [r["setting"] for r in saved["rows"] if r["table"] == "straightness"] == [
        "flow Euler-64", "ε DDIM-64 η=0 no clip, flow coordinates", "flow Euler-64 (logit-normal t)"]
    fid = {r["setting"]: r["fid"] for r in saved["rows"] if r["table"] == "fid_vs_nfe"}
    expected = (f"flow Euler (logit-normal t) / uniform t, FID ratio at NFE 1: "
                f"{fid['flow Euler (logit-normal t) NFE=1'] / fid['flow Euler NFE=1']:.2f}, 2: "
                f"{fid['flow Euler (logit-normal t) NFE=2'] / fid['flow Euler NFE=2']:.2f}")
    assert expected in printed, printed
    # the logit-normal rows do not count as the uniform model's best, and no ε family was asked for
    assert "flow best FID / eps best FID" not in printed
    assert saved["logit_normal_checkpoint"] == str(logit_normal_checkpoint)


def test_flow_vs_diffusion_refuses_a_uniform_model_as_the_logit_normal_one(flow_checkpoint, tmp_path):
    from benchmarks import flow_vs_diffusion

    with pytest.raises(SystemExit, match="--t-sampling logit_normal"):
        flow_vs_diffusion.main(["--n", "2", "--nfes", "1", "--flow-checkpoint", str(flow_checkpoint),
                                "--logit-normal-checkpoint", str(flow_checkpoint), "--out", str(tmp_path / "x.json")])
