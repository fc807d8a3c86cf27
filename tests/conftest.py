"""Shared fixtures: a fixed seed and one CPU thread for every test, and a tiny-UNet factory."""
from __future__ import annotations

import pytest
import torch


# One intra-op thread: the tensors here are tiny, and on a busy 2-core machine two OpenMP threads
# made a 16×16 UNet forward pass take ~1 s instead of ~5 ms (measured).
TEST_THREADS = 1


@pytest.fixture(autouse=True)
def _seed_and_threads():
    """Every test starts from the same global RNG state, on TEST_THREADS CPU threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(TEST_THREADS)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _own_feature_cache(monkeypatch, tmp_path_factory):
    """Tests keep the evaluator's test-set feature cache and the image-folder cache out of ~/.cache (one
    folder per session)."""
    monkeypatch.setenv("DDPM_TEACH_CACHE", str(tmp_path_factory.getbasetemp() / "feature-cache"))


@pytest.fixture
def tiny_unet():
    """``tiny_unet(**overrides)`` builds a small UNet in eval mode (16×16, 2 levels, attention at 8).

    With ``randomize=True`` (the default) the zero-initialised output and residual convs are given
    small random weights, so the network is a non-trivial function of (x_t, t, label) — at init
    it outputs exactly zero, which would make many sampler tests pass for the wrong reason.
    """
    from ddpm_teach.unet import UNet, UNetConfig

    def build(randomize: bool = True, seed: int = 0, **overrides):
        options = dict(image_size=16, in_channels=1, base_channels=8, channel_mults=(1, 2), num_res_blocks=1,
                       attention_resolutions=(8,), num_heads=2, dropout=0.0, norm_groups=4)
        options.update(overrides)
        torch.manual_seed(seed)
        model = UNet(UNetConfig(**options))
        if randomize:
            with torch.no_grad():
                for name, param in model.named_parameters():
                    if param.abs().sum() == 0:  # the zero-initialised convs
                        param.normal_(0.0, 0.2)
        return model.eval()

    return build


class FakeOutputArea:
    """Stands in for the browser side of an ipywidgets ``Output``: ``clear_output(wait=True)``
    empties it when the next output arrives, ``display`` appends.  Records every call."""

    def __init__(self):
        self.outputs: list = []
        self.calls: list[str] = []
        self._pending_clear = False

    def display(self, obj, **kwargs):
        if self._pending_clear:
            self.outputs.clear()
            self._pending_clear = False
        self.outputs.append(obj)
        self.calls.append("display")

    def clear_output(self, wait=False):
        self.calls.append(f"clear(wait={wait})")
        if wait:
            self._pending_clear = True
        else:
            self.outputs.clear()


@pytest.fixture
def area(monkeypatch):
    """The explorers' output area, recorded instead of shown (``ddpm_teach.widgets.base`` draws into it)."""
    pytest.importorskip("ipywidgets")
    from ddpm_teach.widgets import base

    fake = FakeOutputArea()
    monkeypatch.setattr(base, "display", fake.display)
    monkeypatch.setattr(base, "clear_output", fake.clear_output)
    return fake


@pytest.fixture
def display_bundle():
    """Check an explorer's display bundle and return its static PNG (bytes): the widget view for a
    live kernel, a short text, and the current figure as PNG for viewers without a kernel (GitHub,
    nbviewer)."""
    import base64
    import struct

    def check(explorer) -> bytes:
        bundle = explorer._repr_mimebundle_()
        assert bundle["text/plain"] == repr(explorer)
        view = bundle["application/vnd.jupyter.widget-view+json"]
        assert view["model_id"] == explorer.widget.model_id and view["version_major"] == 2
        png = base64.b64decode(bundle["image/png"])
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", png[16:24])
        fig_w, fig_h = explorer.figure.get_size_inches() * explorer.figure.dpi
        assert 0.5 * fig_w < width <= fig_w + 2 and 0.5 * fig_h < height <= fig_h + 2   # tight bbox trims margins only
        return png

    return check
