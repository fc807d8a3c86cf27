"""The diffusers peer of the benchmarks (``benchmarks.common.build_peer``), issue 17 item 1.

``layout="matched"`` must be our UNet in diffusers' code: the same parameter count, the same
GroupNorm groups and attention heads, the same zero initialisation, and, with our weights copied
in, the same function (float64, to round-off).  ``layout="defaults"`` is diffusers' defaults at our
widths; the test shows what its 32 GroupNorm groups do at width 32: one channel per group, so its
output cannot depend on a per-channel constant before the last norm, where ours and the matched
peer's do."""
from __future__ import annotations

import re

import pytest
import torch

from ddpm_teach.unet import UNet, UNetConfig

diffusers = pytest.importorskip("diffusers")

from benchmarks.common import COURSE_UNET, build_peer  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _groupnorms(module: torch.nn.Module) -> list[torch.nn.GroupNorm]:
    return [m for m in module.modules() if isinstance(m, torch.nn.GroupNorm)]


def our_weights_for_peer(model: UNet) -> dict[str, torch.Tensor]:
    """Our UNet's state dict under the matched peer's names (attention's 1×1 qkv conv split into
    diffusers' to_q, to_k, to_v linears)."""
    rename = [(r"^time_mlp\.0\.", "time_embedding.linear_1."), (r"^time_mlp\.2\.", "time_embedding.linear_2."),
              (r"^down_levels\.(\d+)\.blocks\.", r"down_blocks.\1.resnets."),
              (r"^down_levels\.(\d+)\.attns\.", r"down_blocks.\1.attentions."),
              (r"^downsamples\.(\d+)\.conv\.", r"down_blocks.\1.downsamplers.0.conv."),
              (r"^up_levels\.(\d+)\.blocks\.", r"up_blocks.\1.resnets."),
              (r"^up_levels\.(\d+)\.attns\.", r"up_blocks.\1.attentions."),
              (r"^upsamples\.(\d+)\.conv\.", r"up_blocks.\1.upsamplers.0.conv."),
              (r"^mid_block1\.", "mid_block.resnets.0."), (r"^mid_block2\.", "mid_block.resnets.1."),
              (r"^mid_attn\.", "mid_block.attentions.0."), (r"^norm_out\.", "conv_norm_out."),
              (r"\.emb_proj\.", ".time_emb_proj."), (r"\.skip\.", ".conv_shortcut."),
              (r"(attentions\.\d+)\.norm\.", r"\1.group_norm."), (r"(attentions\.\d+)\.proj\.", r"\1.to_out.0.")]
    out = {}
    for key, value in model.state_dict().items():
        for pattern, replacement in rename:
            key = re.sub(pattern, replacement, key)
        if ".qkv." in key:                                   # [3C, C, 1, 1] -> to_q, to_k, to_v [C, C]
            for name, part in zip(("to_q", "to_k", "to_v"), value.chunk(3, dim=0)):
                out[key.replace("qkv", name)] = part.flatten(1) if part.ndim == 4 else part
        elif key.endswith("to_out.0.weight"):
            out[key] = value.flatten(1)
        else:
            out[key] = value
    return out


def _randomized_ours(config: UNetConfig, seed: int = 0) -> UNet:
    torch.manual_seed(seed)
    model = UNet(config)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))          # the zero-initialised layers too
    return model.eval()


@pytest.mark.parametrize("config", [
    COURSE_UNET,
    UNetConfig(image_size=16, base_channels=16, channel_mults=(1, 1), num_res_blocks=2, attention_resolutions=(8, 16),
               num_heads=2, norm_groups=4, dropout=0.0, in_channels=3),
], ids=["course", "two-levels"])
def test_matched_peer_is_our_unet_in_diffusers_code(config):
    ours = _randomized_ours(config).double()
    peer = build_peer(config, layout="matched").double().eval()
    assert sum(p.numel() for p in peer.parameters()) == ours.num_parameters()
    peer.load_state_dict(our_weights_for_peer(ours), strict=True)
    x = torch.randn(3, config.in_channels, config.image_size, config.image_size, dtype=torch.float64)
    t = torch.tensor([0, 417, 999])
    with torch.no_grad():
        torch.testing.assert_close(peer(x, t).sample, ours(x, t), rtol=1e-9, atol=1e-10)


def test_matched_peer_matches_our_norms_heads_and_initialisation():
    ours, peer = UNet(COURSE_UNET), build_peer(COURSE_UNET, layout="matched")
    assert {g.num_groups for g in _groupnorms(peer)} == {g.num_groups for g in _groupnorms(ours)} == {8}
    assert [a.heads for a in peer.modules() if isinstance(a, diffusers.models.attention_processor.Attention)] \
        == [COURSE_UNET.num_heads] * 4                                   # down, mid and two up attentions
    # the same tensors start at zero (under the peer's names): GroupNorm shifts in both by default, and
    # our zero-initialised ResBlock conv2, attention projection (diffusers' to_out.0) and conv_out
    zero_ours = {n for n, p in our_weights_for_peer(ours).items() if not p.any()}
    zero_peer = {n for n, p in peer.state_dict().items() if not p.any()}
    assert zero_ours == zero_peer
    assert {"conv_out.weight", "mid_block.resnets.0.conv2.weight", "mid_block.attentions.0.to_out.0.weight"} <= zero_peer
    defaults = build_peer(COURSE_UNET)
    assert {g.num_groups for g in _groupnorms(defaults)} == {32}        # one channel per group at width 32
    assert all(p.any() for p in defaults.parameters() if p.ndim > 1)     # PyTorch's initialisation everywhere


def _output_shift_from_a_constant_before_the_last_norm(model: torch.nn.Module, norm: torch.nn.Module, call) -> float:
    """How far the output moves when a per-channel constant is added to the input of the last GroupNorm."""
    x, t = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(0)), torch.tensor([900, 900])
    with torch.no_grad():
        before = call(model, x, t)
        shift = torch.linspace(-1, 1, norm.num_channels).view(1, -1, 1, 1)
        hook = norm.register_forward_pre_hook(lambda m, args: (args[0] + shift,))
        try:
            after = call(model, x, t)
        finally:
            hook.remove()
    return float((after - before).abs().max())


def test_a_per_channel_constant_reaches_the_output_of_ours_and_the_matched_peer_only():
    """With 32 groups at width 32 every channel is normalised alone, so a per-channel constant
    before the last norm vanishes: the library-defaults peer cannot express a per-channel mean
    there (issue 17's finding); ours and the matched peer can."""
    ours = _randomized_ours(COURSE_UNET)
    peer_call = lambda m, x, t: m(x, t).sample                      # noqa: E731
    results = {}
    for layout in ("matched", "defaults"):
        torch.manual_seed(1)
        peer = build_peer(COURSE_UNET, layout=layout).eval()
        with torch.no_grad():
            for p in peer.parameters():
                p.add_(0.05 * torch.randn_like(p))
        results[layout] = _output_shift_from_a_constant_before_the_last_norm(peer, peer.conv_norm_out, peer_call)
    results["ours"] = _output_shift_from_a_constant_before_the_last_norm(ours, ours.norm_out, lambda m, x, t: m(x, t))
    assert results["ours"] > 1e-2 and results["matched"] > 1e-2
    assert results["defaults"] < 1e-5


def test_build_peer_refuses_what_it_cannot_match():
    with pytest.raises(ValueError, match="layout must be one of"):
        build_peer(COURSE_UNET, layout="similar")
    with pytest.raises(ValueError, match="block='resnet'"):
        build_peer(UNetConfig(**{**COURSE_UNET.to_dict(), "block": "convnext"}), layout="matched")
    with pytest.raises(ValueError, match="one attention head size"):
        build_peer(UNetConfig(**{**COURSE_UNET.to_dict(), "attention_resolutions": (28, 7)}), layout="matched")
