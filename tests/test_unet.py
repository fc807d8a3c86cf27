"""ddpm_teach.unet: shapes, conditioning, checks with helpful messages, the shape trace,
gradient flow, and the sinusoidal embedding and attention against independent formulas."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ddpm_teach.unet import AttentionBlock, UNet, UNetConfig, timestep_embedding, trace_shapes


# ------------------------------------------------------------------------------ shapes
@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("learn_sigma", [False, True])
@pytest.mark.parametrize("num_classes", [None, 10])
def test_output_shape(tiny_unet, in_channels, learn_sigma, num_classes):
    model = tiny_unet(in_channels=in_channels, learn_sigma=learn_sigma, num_classes=num_classes)
    x = torch.randn(3, in_channels, 16, 16)
    out = model(x, torch.tensor([0, 5, 999]))
    assert out.shape == (3, in_channels * (2 if learn_sigma else 1), 16, 16)
    assert out.dtype == x.dtype
    assert model.config.out_channels == out.shape[1]


def test_model_runs_in_float64_and_bfloat16(tiny_unet):
    """.double() gives the float32 function to float32 precision; .to(bfloat16) runs and keeps bf16."""
    model = tiny_unet(num_classes=3)
    x, t, labels = torch.randn(2, 1, 16, 16), torch.tensor([4, 900]), torch.tensor([0, 2])
    out32 = model(x, t, labels)
    out64 = model.double()(x.double(), t, labels)
    assert out64.dtype == torch.float64
    torch.testing.assert_close(out64.float(), out32, rtol=1e-4, atol=1e-5)
    out16 = model.to(torch.bfloat16)(x.bfloat16(), t, labels)
    assert out16.dtype == torch.bfloat16 and torch.isfinite(out16.float()).all()


def test_three_levels_and_8x8_images(tiny_unet):
    model = tiny_unet(image_size=8, channel_mults=(1, 2, 2), attention_resolutions=(2,))
    x = torch.randn(2, 1, 8, 8)
    assert model(x, 3).shape == x.shape


def test_output_is_zero_at_init(tiny_unet):
    """conv_out starts at zero (as in improved-diffusion), so an untrained model predicts ε̂ = 0."""
    model = tiny_unet(randomize=False)
    out = model(torch.randn(2, 1, 16, 16), torch.tensor([1, 2]))
    assert torch.count_nonzero(out) == 0


def test_int_t_equals_tensor_t(tiny_unet):
    model = tiny_unet()
    x = torch.randn(3, 1, 16, 16)
    assert torch.equal(model(x, 7), model(x, torch.full((3,), 7, dtype=torch.long)))


def test_output_depends_on_t(tiny_unet):
    model = tiny_unet()
    x = torch.randn(1, 1, 16, 16).expand(2, 1, 16, 16)
    out = model(x, torch.tensor([10, 500]))
    assert not torch.allclose(out[0], out[1], atol=1e-4)


def test_batch_items_are_independent(tiny_unet):
    """GroupNorm and attention work per image: item i's output does not depend on the others.
    In float64, so that batched-vs-single kernel round-off (~1e-6 in float32) cannot hide a leak."""
    model = tiny_unet(num_classes=3).double()
    x = torch.randn(4, 1, 16, 16, dtype=torch.float64)
    t = torch.tensor([0, 10, 100, 999])
    labels = torch.tensor([0, 1, 2, 3])
    full = model(x, t, labels)
    for i in range(4):
        single = model(x[i : i + 1], t[i : i + 1], labels[i : i + 1])
        torch.testing.assert_close(single, full[i : i + 1], rtol=1e-10, atol=1e-10)
    # and changing one image changes only its own output
    x2 = x.clone()
    x2[0] = torch.randn(1, 16, 16, dtype=torch.float64)
    full2 = model(x2, t, labels)
    assert not torch.allclose(full2[0], full[0])
    torch.testing.assert_close(full2[1:], full[1:], rtol=1e-10, atol=1e-10)


# ------------------------------------------------------------------------- conditioning
def test_conditional_model_without_labels_is_the_null_label(tiny_unet):
    model = tiny_unet(num_classes=4)
    x, t = torch.randn(3, 1, 16, 16), torch.tensor([1, 2, 3])
    null = model.null_labels(3)
    assert null.dtype == torch.long and (null == 4).all()
    assert torch.equal(model(x, t), model(x, t, null))
    # a real label changes the prediction
    with_labels = model(x, t, torch.tensor([0, 1, 2]))
    assert not torch.allclose(with_labels, model(x, t), atol=1e-4)
    assert not torch.allclose(with_labels, model(x, t, torch.tensor([3, 3, 3])), atol=1e-4)


def test_labels_to_unconditional_model_raise(tiny_unet):
    model = tiny_unet(num_classes=None)
    with pytest.raises(ValueError, match="unconditional") as info:
        model(torch.randn(2, 1, 16, 16), 0, torch.tensor([0, 1]))
    assert "num_classes" in str(info.value)
    with pytest.raises(ValueError, match="unconditional"):
        model.null_labels(2)


@pytest.mark.parametrize("bad", [[-1, 0], [0, 5]])
def test_label_out_of_range_raises(tiny_unet, bad):
    model = tiny_unet(num_classes=4)
    with pytest.raises(ValueError, match=r"\[0, 3\]"):
        model(torch.randn(2, 1, 16, 16), 0, torch.tensor(bad))


def test_an_int_label_is_repeated_for_the_batch(tiny_unet):
    model = tiny_unet(num_classes=4)
    x = torch.randn(3, 1, 16, 16)
    assert torch.equal(model(x, 5, 2), model(x, 5, torch.tensor([2, 2, 2])))
    assert torch.equal(model(x, 5, 4), model(x, 5))                 # the null label, as an int


def test_labels_of_wrong_shape_raise(tiny_unet):
    model = tiny_unet(num_classes=4)
    with pytest.raises(ValueError, match="labels"):
        model(torch.randn(2, 1, 16, 16), 0, torch.tensor([0, 1, 2]))


# --------------------------------------------------------------------------- input checks
@pytest.mark.parametrize("shape", [(2, 1, 8, 8), (2, 3, 16, 16), (2, 1, 16, 15), (1, 16, 16)])
def test_wrong_image_shape_names_the_expected_shape(tiny_unet, shape):
    model = tiny_unet()
    with pytest.raises(ValueError) as info:
        model(torch.randn(*shape), 0)
    message = str(info.value)
    assert "[B, 1, 16, 16]" in message and str(tuple(shape)) in message


def test_wrong_t_shape_raises(tiny_unet):
    model = tiny_unet()
    with pytest.raises(ValueError, match=r"\[B\]"):
        model(torch.randn(2, 1, 16, 16), torch.tensor([1, 2, 3]))


@pytest.mark.parametrize("image_size,mults", [(28, (1, 2, 2, 2)), (10, (1, 2, 2)), (15, (1, 2))])
def test_image_size_must_pass_through_every_level(image_size, mults):
    with pytest.raises(ValueError) as info:
        UNetConfig(image_size=image_size, channel_mults=mults, base_channels=8, norm_groups=4)
    assert str(2 ** (len(mults) - 1)) in str(info.value) and str(image_size) in str(info.value)
    with pytest.raises(ValueError):
        UNet(image_size=image_size, channel_mults=mults, base_channels=8, norm_groups=4)
    # the largest depth that fits is accepted: 28 = 4·7 passes 3 levels
    UNetConfig(image_size=28, channel_mults=(1, 2, 2), base_channels=8, norm_groups=4)


def test_other_config_checks():
    with pytest.raises(ValueError, match="norm_groups"):
        UNetConfig(base_channels=12, norm_groups=8)
    with pytest.raises(ValueError, match="num_classes"):
        UNetConfig(num_classes=0)


def test_config_round_trip_and_unknown_keys():
    config = UNetConfig(image_size=16, base_channels=8, channel_mults=(1, 2), attention_resolutions=(8,),
                        norm_groups=4, num_classes=10, learn_sigma=True)
    data = config.to_dict()
    assert isinstance(data["channel_mults"], list)
    assert UNetConfig.from_dict(data) == config
    with pytest.raises(ValueError, match="unknown"):
        UNetConfig.from_dict({**data, "nonsense": 1})
    # overrides on top of a config
    model = UNet(config, num_classes=None)
    assert model.config.num_classes is None and model.config.learn_sigma


# ---------------------------------------------------------------------------- shape trace
@pytest.mark.parametrize(
    "mults,attn,expected_path",
    [((1, 2), (8,), [16, 8, 16]), ((1, 2, 2), (4,), [16, 8, 4, 8, 16])],
)
def test_trace_shapes_contracts_and_expands(tiny_unet, mults, attn, expected_path):
    model = tiny_unet(channel_mults=mults, attention_resolutions=attn)
    x = torch.randn(2, 1, 16, 16)
    records = trace_shapes(model, x, torch.tensor([3, 4]))
    names = [name for name, _ in records]
    assert names[0] == "conv_in" and names[-1] == "conv_out"
    assert records[0][1] == (2, 8, 16, 16)
    assert records[-1][1] == tuple(model(x, torch.tensor([3, 4])).shape) == (2, 1, 16, 16)
    assert all(shape[0] == 2 and len(shape) == 4 for _, shape in records)
    # spatial size along the way, consecutive repeats collapsed: down to the bottleneck and back
    path = [records[0][1][-1]]
    for _, shape in records[1:]:
        assert shape[-1] == shape[-2]
        if shape[-1] != path[-1]:
            path.append(shape[-1])
    assert path == expected_path
    downs = [shape for name, shape in records if name.startswith("downsamples")]
    ups = [shape for name, shape in records if name.startswith("upsamples")]
    assert len(downs) == len(ups) == len(mults) - 1
    assert [s[-1] for s in downs] == expected_path[1 : len(mults)]
    assert [s[-1] for s in ups] == expected_path[len(mults) :]
    # attention appears only at the resolutions asked for (the bottleneck always has it)
    attn_sizes = {shape[-1] for name, shape in records if "attn" in name}
    assert attn_sizes == set(attn) | {expected_path[len(mults) - 1]}
    # channels: base·mult on the way down
    channels = {shape[-1]: shape[1] for name, shape in records if name.startswith("down_levels")}
    assert channels == {16 // 2**i: 8 * m for i, m in enumerate(mults)}


def test_trace_shapes_leaves_no_hooks(tiny_unet):
    model = tiny_unet()
    x = torch.randn(1, 1, 16, 16)
    trace_shapes(model, x, 0)
    assert all(not m._forward_hooks for m in model.modules())


# ------------------------------------------------------------------------------ gradients
@pytest.mark.parametrize("randomize", [False, True])
def test_every_parameter_gets_a_gradient(tiny_unet, randomize):
    """No unused parameters (which would break DDP): after one backward every parameter has a
    .grad. At init the zero output conv blocks the gradient to everything before it (the grads are
    zero tensors, not None); once those weights are non-zero every parameter's grad is non-zero."""
    model = tiny_unet(randomize=randomize, num_classes=3, learn_sigma=True).train()
    x = torch.randn(4, 1, 16, 16)
    labels = torch.tensor([0, 1, 2, 3])                # includes the null label
    loss = (model(x, torch.tensor([0, 1, 500, 999]), labels) - torch.randn(4, 2, 16, 16)).square().mean()
    loss.backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None]
    assert not missing, missing
    if randomize:
        zero = [name for name, p in model.named_parameters() if torch.count_nonzero(p.grad) == 0]
        assert not zero, zero
    else:
        assert torch.count_nonzero(model.conv_out.weight.grad) > 0


# ---------------------------------------------------------------------- time embedding
@pytest.mark.parametrize("dim", [8, 16, 9])
def test_timestep_embedding_is_the_transformer_sinusoid(dim):
    t = torch.tensor([0, 1, 7, 250, 999])
    emb = timestep_embedding(t, dim)
    assert emb.shape == (5, dim) and emb.dtype == torch.float32
    half = dim // 2
    expected = np.zeros((5, dim))
    for row, step in enumerate(t.tolist()):
        for i in range(half):
            omega = 10000.0 ** (-i / half)               # ω_i = max_period^(−i/half)
            expected[row, i] = math.cos(step * omega)
            expected[row, half + i] = math.sin(step * omega)
    # float32: t·ω is rounded to ~6e-8·999 ≈ 6e-5 and ω itself to ~1e-7 relative, so the
    # sine/cosine can be off by about 1e-4 at t=999; at small t it is exact to ~1e-7
    np.testing.assert_allclose(emb.double().numpy(), expected, atol=2e-4, rtol=0)
    np.testing.assert_allclose(emb[:3].double().numpy(), expected[:3], atol=1e-6, rtol=0)
    if dim % 2:
        assert (emb[:, -1] == 0).all()


def test_timestep_embedding_max_period():
    t = torch.tensor([3])
    emb = timestep_embedding(t, 4, max_period=100.0)
    expected = [math.cos(3), math.cos(3 / 10), math.sin(3), math.sin(3 / 10)]  # ω = 100^(−i/2)
    np.testing.assert_allclose(emb[0].numpy(), expected, atol=1e-6)


# ----------------------------------------------------------------------------- attention
def test_attention_block_is_multi_head_softmax_attention():
    """Against a head-by-head loop: softmax(q kᵀ/√d) v on GroupNorm'ed input, then proj, plus x."""
    torch.manual_seed(1)
    block = AttentionBlock(channels=8, num_heads=2, groups=4).double()
    with torch.no_grad():
        block.proj.weight.normal_()
        block.proj.bias.normal_()
    x = torch.randn(2, 8, 3, 3, dtype=torch.float64)
    out = block(x)

    B, C, H, W = x.shape
    heads, hs = 2, C // 2
    qkv = block.qkv(block.norm(x)).reshape(B, 3 * C, H * W)
    expected = torch.empty(B, C, H * W, dtype=torch.float64)
    for b in range(B):
        for h in range(heads):
            # channel layout of the qkv conv: [q | k | v], each split into heads of hs channels
            q = qkv[b, 0 * C + h * hs : 0 * C + (h + 1) * hs].T       # (HW, hs)
            k = qkv[b, 1 * C + h * hs : 1 * C + (h + 1) * hs].T
            v = qkv[b, 2 * C + h * hs : 2 * C + (h + 1) * hs].T
            weights = torch.softmax(q @ k.T / math.sqrt(hs), dim=-1)   # (HW, HW)
            expected[b, h * hs : (h + 1) * hs] = (weights @ v).T
    expected = x + F.conv2d(expected.reshape(B, C, H, W), block.proj.weight, block.proj.bias)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)


def test_attention_is_permutation_equivariant():
    """Self-attention without positions: permuting the H·W positions permutes the output
    (GroupNorm statistics do not depend on order either)."""
    torch.manual_seed(2)
    block = AttentionBlock(channels=8, num_heads=4, groups=4).double()
    with torch.no_grad():
        block.proj.weight.normal_()
    x = torch.randn(1, 8, 4, 4, dtype=torch.float64)
    perm = torch.randperm(16)
    out_perm = block(x.reshape(1, 8, 16)[:, :, perm].reshape(1, 8, 4, 4))
    torch.testing.assert_close(out_perm, block(x).reshape(1, 8, 16)[:, :, perm].reshape(1, 8, 4, 4))


def test_heads_must_divide_channels():
    with pytest.raises(ValueError, match="num_heads"):
        AttentionBlock(channels=8, num_heads=3, groups=4)
