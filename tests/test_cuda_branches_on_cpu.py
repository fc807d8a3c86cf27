"""The CUDA-only branches of the training code, tested as far as a CPU allows (issue 17 item 7),
so that they cannot rot before a GPU is lent: the choice of fused AdamW, the choice of the autocast
dtype, and the fp16 gradient-scaler logic of ``train_step`` (a CPU ``GradScaler`` runs the same
scale / unscale / skip-on-overflow / update code as the CUDA one).  DDP with gloo in place of nccl
is ``tests/test_distributed.py::test_torchrun_two_processes_on_cpu``."""
from __future__ import annotations

import pytest
import torch

from ddpm_teach.schedules import NoiseSchedule
from ddpm_teach.trainer import amp_dtype_for, optimizer_options
from ddpm_teach.training import make_ema, train_step
from ddpm_teach.unet import UNet

from helpers_training import random_image_data, tiny_model_config


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def test_fused_adamw_on_cuda_only():
    assert optimizer_options(torch.device("cuda")) == {"fused": True}
    assert optimizer_options(torch.device("cuda", 1)) == {"fused": True}
    assert optimizer_options(torch.device("cpu")) == {} and optimizer_options(torch.device("mps")) == {}


@pytest.mark.parametrize("native_bf16,expected", [(True, torch.bfloat16), (False, torch.float16)])
def test_auto_precision_on_cuda_is_bf16_where_native_else_fp16(monkeypatch, native_bf16, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: native_bf16)
    cuda = torch.device("cuda")
    assert amp_dtype_for("auto", cuda) is expected
    assert amp_dtype_for("fp16", cuda) is torch.float16 and amp_dtype_for("bf16", cuda) is torch.bfloat16
    assert amp_dtype_for("no", cuda) is None
    assert amp_dtype_for("auto", torch.device("cpu")) is None
    with pytest.raises(ValueError, match="fp16 mixed precision needs CUDA"):
        amp_dtype_for("fp16", torch.device("cpu"))


def _setup(seed: int = 0):
    """A tiny UNet (all layers non-zero), plain SGD (whose step, unlike Adam's, scales with the
    gradient, so a wrongly scaled gradient shows), an EMA and one batch."""
    torch.manual_seed(seed)
    model = UNet(tiny_model_config(dropout=0.0))
    with torch.no_grad():                                  # give the zero-initialised layers weights too
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    data = random_image_data(n=16)
    x0, labels = data.batch(torch.arange(8), torch.device("cpu"))
    return model, optimizer, make_ema(model, 0.9), [(x0, labels)]


def _step(model, optimizer, ema, batches, scaler, grad_clip):
    return train_step(model, NoiseSchedule.from_name("linear", 50), batches, optimizer, ema,
                      torch.Generator().manual_seed(3), grad_clip=grad_clip, scaler=scaler)


def _weights_after_one_step(scaler, grad_clip):
    model, optimizer, ema, batches = _setup()
    loss = _step(model, optimizer, ema, batches, scaler, grad_clip)
    return loss, [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("grad_clip", [0.0, 0.05])
def test_an_enabled_scaler_gives_the_unscaled_step(grad_clip):
    """Scaling the loss by 2^k and unscaling the gradients before clipping and stepping is exact in
    floating point (a power of two), so the step equals the one without a scaler.  Clipping the
    *scaled* gradients would shrink the step 2^k-fold (that is why train_step unscales first)."""
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 12, enabled=True)
    loss_plain, plain = _weights_after_one_step(None, grad_clip)
    loss_scaled, scaled = _weights_after_one_step(scaler, grad_clip)
    assert loss_plain == pytest.approx(loss_scaled, rel=1e-6)
    for p, q in zip(plain, scaled):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-7)
    assert scaler.get_scale() == 2.0 ** 12                 # no overflow: the scale is kept (growth waits 2000 steps)
    if grad_clip:                                          # and the clip was active: unclipped differs
        _, unclipped = _weights_after_one_step(None, 0.0)
        assert any(not torch.allclose(p, q) for p, q in zip(plain, unclipped))


def test_an_overflowing_gradient_skips_the_step_and_halves_the_scale():
    """fp16's failure mode: an inf in a gradient.  The scaler must skip the optimizer step (the
    weights stay as they were) and halve its scale, and the next finite step must go through."""
    model, optimizer, ema, batches = _setup()
    before = [p.detach().clone() for p in model.parameters()]
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 12, enabled=True)
    hook = model.conv_out.weight.register_hook(lambda g: torch.full_like(g, float("inf")))
    _step(model, optimizer, ema, batches, scaler, grad_clip=1.0)
    hook.remove()
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before))
    assert scaler.get_scale() == 2.0 ** 11
    _step(model, optimizer, ema, batches, scaler, grad_clip=1.0)
    assert not all(torch.equal(p, b) for p, b in zip(model.parameters(), before))
    assert scaler.get_scale() == 2.0 ** 11
