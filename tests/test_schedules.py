"""ddpm_teach.schedules: the betas and every coefficient, checked against numpy float64
re-derivations written here from the papers (DDPM eqs. 4, 7; Improved DDPM eq. 17)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ddpm_teach.schedules import SCHEDULE_KINDS, NoiseSchedule, batch_timesteps, extract, make_betas

KINDS = ["linear", "cosine", "quadratic", "sigmoid"]


def reference_cosine_betas(T: int, s: float = 0.008, max_beta: float = 0.999) -> np.ndarray:
    """Improved DDPM eq. 17, one timestep at a time in plain Python floats:
    ᾱ(t) = f(t)/f(0), f(t) = cos²(((t/T + s)/(1+s))·π/2), β_t = min(1 − ᾱ(t)/ᾱ(t−1), max_beta)."""
    def f(t):
        return math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2

    return np.array([min(1 - (f(t) / f(0)) / (f(t - 1) / f(0)), max_beta) for t in range(1, T + 1)])


def reference_coefficients(betas: np.ndarray) -> dict[str, np.ndarray]:
    """Every coefficient by explicit loops in float64, straight from the definitions."""
    T = len(betas)
    alphas = 1.0 - betas
    alphas_cumprod = np.empty(T)
    running = 1.0
    for t in range(T):
        running *= alphas[t]                     # ᾱ_t = Π_{s≤t} α_s
        alphas_cumprod[t] = running
    alphas_cumprod_prev = np.array([1.0] + list(alphas_cumprod[:-1]))  # ᾱ_{t−1}, with ᾱ_{−1} = 1
    return {
        "alphas": alphas,
        "alphas_cumprod": alphas_cumprod,
        "alphas_cumprod_prev": alphas_cumprod_prev,
        # DDPM eq. 7: β̃_t = (1 − ᾱ_{t−1})/(1 − ᾱ_t) β_t
        "posterior_variance": (1 - alphas_cumprod_prev) / (1 - alphas_cumprod) * betas,
        # DDPM eq. 7: μ̃_t = √ᾱ_{t−1} β_t/(1 − ᾱ_t) x_0 + √α_t (1 − ᾱ_{t−1})/(1 − ᾱ_t) x_t
        "posterior_mean_coef1": np.sqrt(alphas_cumprod_prev) * betas / (1 - alphas_cumprod),
        "posterior_mean_coef2": np.sqrt(alphas) * (1 - alphas_cumprod_prev) / (1 - alphas_cumprod),
        "sqrt_alphas_cumprod": np.sqrt(alphas_cumprod),
        "sqrt_one_minus_alphas_cumprod": np.sqrt(1 - alphas_cumprod),
        "sqrt_recip_alphas_cumprod": 1 / np.sqrt(alphas_cumprod),
        "sqrt_recipm1_alphas_cumprod": np.sqrt(1 / alphas_cumprod - 1),
        "snr": alphas_cumprod / (1 - alphas_cumprod),
        "log_snr": np.log(alphas_cumprod) - np.log1p(-alphas_cumprod),
    }


# ---------------------------------------------------------------------------- make_betas
def test_linear_is_ddpm_schedule():
    betas = make_betas("linear", 1000)
    assert betas.dtype == torch.float64 and betas.shape == (1000,)
    assert betas[0].item() == pytest.approx(1e-4, rel=1e-12)
    assert betas[-1].item() == pytest.approx(0.02, rel=1e-12)
    # evenly spaced: β_t = 1e-4 + t·(0.02 − 1e-4)/999
    expected = 1e-4 + np.arange(1000) * (0.02 - 1e-4) / 999
    np.testing.assert_allclose(betas.numpy(), expected, rtol=1e-12, atol=1e-15)


def test_linear_is_not_rescaled_when_T_shrinks():
    """Notebook 02's lesson: the end points stay 1e-4 and 0.02 whatever T is."""
    betas = make_betas("linear", 10)
    assert betas[0].item() == pytest.approx(1e-4) and betas[-1].item() == pytest.approx(0.02)
    assert len(betas) == 10


@pytest.mark.parametrize("T", [1, 2, 10, 1000, 4000])
def test_cosine_matches_improved_ddpm_eq17(T):
    betas = make_betas("cosine", T)
    assert betas.dtype == torch.float64 and betas.shape == (T,)
    np.testing.assert_allclose(betas.numpy(), reference_cosine_betas(T), rtol=1e-10, atol=1e-13)


def test_cosine_is_capped_and_alpha_bar_follows_f_until_the_cap():
    T = 1000
    betas = make_betas("cosine", T)
    assert betas.max().item() == pytest.approx(0.999)   # f(T) = 0 would make β_T = 1
    assert betas.max().item() <= 0.999
    capped = betas >= 0.999
    assert capped[-1] and capped.sum() < 5                # only the last few steps hit the cap
    schedule = NoiseSchedule(betas)
    s = 0.008
    f = np.cos((np.arange(T + 1) / T + s) / (1 + s) * np.pi / 2) ** 2
    first_capped = int(capped.nonzero()[0])
    # before the cap, cumprod(1 − β) is exactly the closed form ᾱ(t) = f(t)/f(0), t = 1..T
    np.testing.assert_allclose(schedule.alphas_cumprod[:first_capped].numpy(), (f[1:] / f[0])[:first_capped], rtol=1e-9)
    # ᾱ strictly decreasing, and still positive thanks to the cap
    assert (schedule.alphas_cumprod[1:] < schedule.alphas_cumprod[:-1]).all()
    assert schedule.alphas_cumprod[-1] > 0


def test_cosine_custom_max_beta():
    betas = make_betas("cosine", 1000, max_beta=0.5)
    assert betas.max().item() == pytest.approx(0.5)
    np.testing.assert_allclose(betas.numpy(), reference_cosine_betas(1000, max_beta=0.5), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("T", [2, 10, 1000])
def test_quadratic_endpoints_and_sqrt_is_linear(T):
    betas = make_betas("quadratic", T)
    assert betas[0].item() == pytest.approx(1e-4, rel=1e-10)
    assert betas[-1].item() == pytest.approx(0.02, rel=1e-10)
    # √β is evenly spaced between √1e-4 and √0.02
    expected = np.linspace(math.sqrt(1e-4), math.sqrt(0.02), T) ** 2
    np.testing.assert_allclose(betas.numpy(), expected, rtol=1e-12)
    assert (betas[1:] > betas[:-1]).all()


@pytest.mark.parametrize("T", [2, 10, 1000])
def test_sigmoid_endpoints_shape_and_monotonicity(T):
    betas = make_betas("sigmoid", T)
    assert betas[0].item() == pytest.approx(1e-4, rel=1e-10)
    assert betas[-1].item() == pytest.approx(0.02, rel=1e-10)
    assert (betas[1:] > betas[:-1]).all()
    # β = start + (end − start)·(σ(x) − σ(−6))/(σ(6) − σ(−6)) on x evenly spaced over [−6, 6]
    x = np.linspace(-6, 6, T)
    sig = 1 / (1 + np.exp(-x))
    expected = 1e-4 + (0.02 - 1e-4) * (sig - sig[0]) / (sig[-1] - sig[0])
    np.testing.assert_allclose(betas.numpy(), expected, rtol=1e-10)


def test_sigmoid_is_symmetric_about_the_middle():
    betas = make_betas("sigmoid", 101).numpy()
    mid = (1e-4 + 0.02) / 2
    np.testing.assert_allclose(betas - mid, -(betas[::-1] - mid), atol=1e-15)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("T", [1, 2, 7, 50, 1000, 4000])
def test_every_kind_gives_float64_betas_in_open_unit_interval(kind, T):
    betas = make_betas(kind, T)
    assert betas.dtype == torch.float64 and betas.shape == (T,)
    assert torch.isfinite(betas).all()
    assert ((betas > 0) & (betas < 1)).all()
    schedule = NoiseSchedule(betas)      # the whole coefficient table must be finite too
    assert (schedule.alphas_cumprod[1:] < schedule.alphas_cumprod[:-1]).all()


@pytest.mark.parametrize("kind", ["linear", "quadratic", "sigmoid"])
def test_custom_end_points(kind):
    betas = make_betas(kind, 20, beta_start=0.001, beta_end=0.1)
    assert betas[0].item() == pytest.approx(0.001) and betas[-1].item() == pytest.approx(0.1)


def test_schedule_kinds_are_the_four_documented():
    assert set(SCHEDULE_KINDS) == set(KINDS)


def test_unknown_kind_names_the_options():
    with pytest.raises(ValueError) as info:
        make_betas("cosinus", 10)
    message = str(info.value)
    assert "cosinus" in message
    for kind in KINDS:
        assert kind in message


@pytest.mark.parametrize("T", [0, -5, 10.0, 2.5, "10", True, None])
def test_bad_T_raises(T):
    with pytest.raises(ValueError, match="T .*positive integer"):
        make_betas("linear", T)


def test_bad_end_points_raise():
    with pytest.raises(ValueError):
        make_betas("linear", 10, beta_start=0.02, beta_end=0.01)
    with pytest.raises(ValueError):
        make_betas("linear", 10, beta_start=0.0, beta_end=0.01)
    with pytest.raises(ValueError):
        make_betas("quadratic", 10, beta_start=0.1, beta_end=1.0)


# ------------------------------------------------------------------------- NoiseSchedule
@pytest.mark.parametrize("kind,T", [("linear", 1000), ("cosine", 1000), ("quadratic", 50), ("sigmoid", 10)])
def test_coefficients_match_float64_reference(kind, T):
    schedule = NoiseSchedule.from_name(kind, T)
    assert schedule.T == T
    reference = reference_coefficients(make_betas(kind, T).numpy())
    for name, expected in reference.items():
        actual = getattr(schedule, name)
        assert actual.dtype == torch.float64, name
        assert actual.shape == (T,), name
        np.testing.assert_allclose(actual.numpy(), expected, rtol=1e-9, atol=1e-14, err_msg=name)


def test_posterior_variance_is_zero_at_t0_and_log_variance_clipped():
    schedule = NoiseSchedule.from_name("linear", 100)
    assert schedule.posterior_variance[0].item() == 0.0
    log_var = schedule.posterior_log_variance_clipped
    assert torch.isfinite(log_var).all()
    assert log_var[0].item() == pytest.approx(math.log(schedule.posterior_variance[1].item()))
    np.testing.assert_allclose(log_var[1:].numpy(), np.log(schedule.posterior_variance[1:].numpy()), rtol=1e-12)


def test_posterior_variance_lies_between_zero_and_beta():
    """β̃_t ≤ β_t, because (1 − ᾱ_{t−1})/(1 − ᾱ_t) < 1."""
    schedule = NoiseSchedule.from_name("cosine", 200)
    assert (schedule.posterior_variance[1:] < schedule.betas[1:]).all()
    assert (schedule.posterior_variance[1:] > 0).all()


def test_snr_is_decreasing_and_log_snr_is_its_log():
    schedule = NoiseSchedule.from_name("linear", 1000)
    assert (schedule.snr[1:] < schedule.snr[:-1]).all()
    np.testing.assert_allclose(schedule.log_snr.numpy(), np.log(schedule.snr.numpy()), rtol=1e-12)
    # SNR(t) = ᾱ/(1 − ᾱ) ⇒ ᾱ = SNR/(1 + SNR)
    np.testing.assert_allclose((schedule.snr / (1 + schedule.snr)).numpy(), schedule.alphas_cumprod.numpy(), rtol=1e-12)


def test_built_from_float32_or_list_betas_is_float64():
    betas32 = make_betas("linear", 10).float()
    for betas in (betas32, betas32.tolist()):
        schedule = NoiseSchedule(betas)
        assert schedule.betas.dtype == torch.float64
        assert schedule.alphas_cumprod.dtype == torch.float64
        assert schedule.betas.device.type == "cpu"


@pytest.mark.parametrize("betas", [[0.1, 1.0], [0.0, 0.1], [-0.1, 0.2], [], [[0.1, 0.2]]])
def test_invalid_betas_raise(betas):
    with pytest.raises(ValueError):
        NoiseSchedule(torch.tensor(betas, dtype=torch.float64))


def test_from_name_records_kind_and_kwargs():
    schedule = NoiseSchedule.from_name("cosine", 10, s=0.01)
    assert schedule.name == "cosine" and schedule.kwargs == {"s": 0.01}
    np.testing.assert_allclose(schedule.betas.numpy(), reference_cosine_betas(10, s=0.01), rtol=1e-10)


@pytest.mark.parametrize(
    "schedule",
    [
        NoiseSchedule.from_name("linear", 1000),
        NoiseSchedule.from_name("cosine", 100, s=0.02, max_beta=0.9),
        NoiseSchedule.from_name("sigmoid", 30, beta_start=1e-3, beta_end=0.05),
        NoiseSchedule(torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)),
    ],
    ids=["linear", "cosine-kwargs", "sigmoid-kwargs", "custom"],
)
def test_config_round_trip(schedule):
    config = schedule.to_config()
    # plain data only, so it can sit in a weights_only checkpoint
    def is_plain(value):
        if isinstance(value, dict):
            return all(isinstance(k, str) and is_plain(v) for k, v in value.items())
        if isinstance(value, (list, tuple)):
            return all(is_plain(v) for v in value)
        return isinstance(value, (int, float, str, bool)) or value is None
    assert is_plain(config)
    rebuilt = NoiseSchedule.from_config(config)
    assert rebuilt.T == schedule.T and rebuilt.name == schedule.name
    assert torch.equal(rebuilt.betas, schedule.betas)
    assert torch.equal(rebuilt.alphas_cumprod, schedule.alphas_cumprod)
    assert rebuilt.to_config() == config
    assert config == NoiseSchedule.from_config(dict(config)).to_config()  # from_config leaves its input alone


# ------------------------------------------------------------------------------- extract
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_extract_shape_dtype_and_values(dtype):
    schedule = NoiseSchedule.from_name("linear", 100)
    like = torch.zeros(3, 2, 4, 4, dtype=dtype)
    t = torch.tensor([0, 50, 99])
    values = extract(schedule.alphas_cumprod, t, like)
    assert values.shape == (3, 1, 1, 1) and values.dtype == dtype and values.device == like.device
    expected = reference_coefficients(make_betas("linear", 100).numpy())["alphas_cumprod"][[0, 50, 99]]
    rtol = {torch.float16: 1e-3, torch.float32: 1e-7, torch.float64: 1e-12}[dtype]  # dtype rounding only
    np.testing.assert_allclose(values.double().flatten().numpy(), expected, rtol=rtol)
    # broadcasts against the batch
    assert (values * like).shape == like.shape


def test_extract_scalar_t_other_ranks_and_small_int_dtypes():
    schedule = NoiseSchedule.from_name("cosine", 10)
    value = extract(schedule.betas, 3, torch.zeros(5, 1, 2, 2))
    assert value.shape == (1, 1, 1, 1)
    assert value.item() == pytest.approx(schedule.betas[3].item(), rel=1e-7)
    flat = extract(schedule.betas, torch.tensor([1, 2]), torch.zeros(2, 7))
    assert flat.shape == (2, 1)
    # a uint8 t is an index, not a mask
    small = extract(schedule.betas, torch.tensor([1, 2], dtype=torch.uint8), torch.zeros(2, 7, dtype=torch.float64))
    assert torch.equal(small.flatten(), schedule.betas[[1, 2]])


def test_extract_follows_the_device_of_like():
    """The meta device stands in for an accelerator: the values go where ``like`` lives."""
    schedule = NoiseSchedule.from_name("linear", 10)
    like = torch.empty(2, 1, 3, 3, device="meta", dtype=torch.bfloat16)
    values = extract(schedule.snr, torch.tensor([0, 9]), like)
    assert values.device.type == "meta" and values.dtype == torch.bfloat16 and values.shape == (2, 1, 1, 1)
    if torch.cuda.is_available():
        values = extract(schedule.snr, torch.tensor([0, 9], device="cuda"), torch.zeros(2, 1, 3, 3, device="cuda"))
        assert values.device.type == "cuda"


def test_coefficients_are_declared_attributes_looked_up_by_tensor():
    """Every coefficient is a declared field (so a typo is an AttributeError where it is written,
    and editors and type checkers see it), a float64 [T] tensor, and extract() takes the tensor."""
    from dataclasses import fields

    schedule = NoiseSchedule.from_name("linear", 10)
    declared = {f.name for f in fields(NoiseSchedule) if not f.init}
    assert set(reference_coefficients(schedule.betas.numpy())) <= declared
    assert {"posterior_log_variance_clipped", "sqrt_recip_alphas_cumprod"} <= declared
    for name in declared | {"betas"}:
        value = getattr(schedule, name)
        assert isinstance(value, torch.Tensor) and value.dtype == torch.float64 and value.shape == (10,), name
    with pytest.raises(AttributeError):
        schedule.sqrt_alpha_cumprod                          # a typo fails at once, not inside a lookup
    assert not hasattr(NoiseSchedule, "gather")              # no look-up by string any more
    like = torch.zeros(2, 1, 1, 1, dtype=torch.float64)
    torch.testing.assert_close(extract(schedule.posterior_mean_coef1, torch.tensor([0, 5]), like).flatten(),
                               schedule.posterior_mean_coef1[[0, 5]], rtol=0, atol=0)


@pytest.mark.parametrize("bad_t", [-1, 10, torch.tensor([0, 10]), torch.tensor([-1, 3])])
def test_check_t_out_of_range_names_the_valid_range(bad_t):
    schedule = NoiseSchedule.from_name("linear", 10)
    for like in (None, torch.zeros(2, 1, 2, 2)):
        with pytest.raises(ValueError) as info:
            schedule.check_t(bad_t, like=like)
        message = str(info.value)
        assert "[0, 9]" in message and "T=10" in message


@pytest.mark.parametrize("bad_t", [1.0, torch.tensor([1.0, 2.0]), torch.tensor(3.5)])
def test_check_t_float_t_is_a_type_error(bad_t):
    schedule = NoiseSchedule.from_name("linear", 10)
    for like in (None, torch.zeros(2, 1, 2, 2)):
        with pytest.raises(TypeError, match="integer"):
            schedule.check_t(bad_t, like=like)


def test_check_t_with_like_broadcasts_an_int_and_checks_the_shape():
    schedule = NoiseSchedule.from_name("linear", 10)
    like = torch.zeros(3, 1, 2, 2)
    assert torch.equal(schedule.check_t(4, like=like), torch.tensor([4, 4, 4]))
    assert torch.equal(schedule.check_t(torch.tensor([1, 2, 3], dtype=torch.int32), like=like), torch.tensor([1, 2, 3]))
    for bad in (torch.tensor([1, 2]), torch.tensor([[1, 2, 3]])):
        with pytest.raises(ValueError, match=r"\[B\]=3"):
            schedule.check_t(bad, like=like)
    assert torch.equal(batch_timesteps(7, 2), torch.tensor([7, 7]))


def test_check_t_accepts_edges_and_int_dtypes():
    schedule = NoiseSchedule.from_name("linear", 10)
    for t in (0, 9, torch.tensor([0, 9], dtype=torch.int32), torch.tensor([5], dtype=torch.uint8)):
        checked = schedule.check_t(t)
        assert checked.dtype == torch.long
        assert torch.equal(checked, torch.as_tensor(t).long())
