"""ddpm_teach.exercises.nb08: right answers pass, the typical wrong ones fail with a hint that
names the slip.  The expected values are recomputed here with numpy from the definitions."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ddpm_teach.exercises import nb08

BETAS = np.linspace(1e-4, 0.02, 1000)                 # DDPM's linear schedule, T = 1000
ALPHA_BAR = np.cumprod(1 - BETAS)
ALPHA_BAR_PREV = np.concatenate([[1.0], ALPHA_BAR[:-1]])
BETA_TILDE = BETAS * (1 - ALPHA_BAR_PREV) / (1 - ALPHA_BAR)   # DDPM eq. 7


def sigma2(t: int, v: float) -> float:
    """Improved DDPM eq. 15 in numpy (t ≥ 1, where β̃_t > 0)."""
    return float(np.exp(v * np.log(BETAS[t]) + (1 - v) * np.log(BETA_TILDE[t])))


def respaced(steps: int, spacing: str = "uniform") -> tuple[np.ndarray, np.ndarray]:
    """β' and β̃' of the process respaced to ``steps`` timesteps (Improved DDPM §4), in numpy."""
    if spacing == "uniform":
        tau = np.unique(np.round(np.linspace(0, 999, steps)).astype(int))
    else:
        tau = np.arange(steps) * (1000 // steps)
    ab = ALPHA_BAR[tau]
    ab_prev = np.concatenate([[1.0], ab[:-1]])
    beta = 1 - ab / ab_prev
    return beta, beta * (1 - ab_prev) / (1 - ab)


# ------------------------------------------------------------------ exercise 1: σ² for v = 0.3 at t = 1
def test_learned_variance_right_answers(capsys):
    exact = sigma2(1, 0.3)
    assert math.isclose(nb08.learned_variance_answer(), exact, rel_tol=1e-9)
    assert nb08.check_learned_variance(exact) is True
    assert "Correct!" in capsys.readouterr().out
    assert nb08.check_learned_variance(float(f"{exact:.3g}")) is True          # three significant digits
    assert nb08.check_learned_variance(np.float64(exact)) is True
    assert nb08.check_learned_variance(torch.tensor(exact, dtype=torch.float32)) is True


@pytest.mark.parametrize("wrong, words", [
    (math.log(sigma2(1, 0.3)), "log σ²"),
    (math.sqrt(sigma2(1, 0.3)), "standard deviation"),
    (0.3 * BETAS[1] + 0.7 * BETA_TILDE[1], "logarithms"),
    (sigma2(1, 0.7), "swapped"),
    (sigma2(1, 0.65), "raw output"),
    (BETAS[1], "v = 1"),
    (BETA_TILDE[1], "v = 0"),
    (sigma2(2, 0.3), "one step late"),
    (float(np.exp(0.3 * np.log(BETAS[0]) + 0.7 * np.log(BETA_TILDE[1]))), "one step early"),
    (1e-4, "mix them"),
])
def test_learned_variance_wrong_answers_get_hints(capsys, wrong, words):
    assert nb08.check_learned_variance(wrong) is False
    out = capsys.readouterr().out
    assert out.startswith("Not yet. Hint:") and words in out


def test_learned_variance_rejects_non_numbers(capsys):
    for bad in ("many", None, [1e-4], True, float("nan")):
        assert nb08.check_learned_variance(bad) is False
    assert capsys.readouterr().out.count("one number") == 5


# ------------------------------------------------------------------ exercise 2: β'/β̃' at respaced step 1
def test_respaced_ratio_right_answers(capsys):
    beta, beta_tilde = respaced(25)
    exact = float(beta[1] / beta_tilde[1])
    assert math.isclose(exact, (1 - ALPHA_BAR[42]) / (1 - ALPHA_BAR[0]), rel_tol=1e-9)   # τ_1 = 42, τ_0 = 0
    assert math.isclose(nb08.respaced_ratio_answer(), exact, rel_tol=1e-9)
    assert nb08.check_respaced_ratio(exact) is True
    assert "Correct!" in capsys.readouterr().out
    assert nb08.check_respaced_ratio(round(exact, 1)) is True
    assert nb08.check_respaced_ratio(torch.tensor(exact)) is True


def test_respaced_ratio_wrong_answers_get_hints(capsys):
    beta, beta_tilde = respaced(25)
    lead_beta, lead_beta_tilde = respaced(25, "leading")
    cases = [
        (float(beta_tilde[1] / beta[1]), "inverse"),
        (float(np.log(beta[1] / beta_tilde[1])), "log(β'/β̃')"),
        (float(BETAS[42] / BETA_TILDE[42]), "full T = 1000 process"),
        (float(beta[2] / beta_tilde[2]), "i = 2"),
        (float(lead_beta[1] / lead_beta_tilde[1]), "leading"),
        (3.0, "posterior_variance[1]"),
    ]
    for wrong, words in cases:
        assert nb08.check_respaced_ratio(wrong) is False
        out = capsys.readouterr().out
        assert out.startswith("Not yet. Hint:") and words in out, (wrong, out)
    assert nb08.check_respaced_ratio("x") is False
    assert "one number" in capsys.readouterr().out


@pytest.mark.parametrize("answer", [float("inf"), float("nan"), np.inf, torch.tensor(float("inf")),
                                    torch.tensor(1e-4, dtype=torch.float64) / torch.tensor(0.0, dtype=torch.float64)])
def test_respaced_ratio_step_zero_gets_its_hint(capsys, answer):
    """β'_0 / β̃'_0 divides by β̃'_0 = 0: the learner took index 0 instead of 1."""
    assert nb08.check_respaced_ratio(answer) is False
    out = capsys.readouterr().out
    assert out.startswith("Not yet. Hint:") and "i = 0" in out and "i = 1" in out and "one number" not in out


def test_respaced_ratio_truncated_tau_gets_its_hint(capsys):
    """linspace(0, 999, 25)[1] = 41.625: truncating it gives τ_1 = 41 instead of the rounded 42."""
    truncated = float((1 - ALPHA_BAR[41]) / (1 - ALPHA_BAR[0]))
    assert nb08.check_respaced_ratio(truncated) is False
    out = capsys.readouterr().out
    assert out.startswith("Not yet. Hint:") and "rounded, not truncated" in out and "41" in out and "42" in out
