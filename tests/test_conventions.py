"""Conventions by name: presets resolve to their arguments, explicit arguments win, errors list the names.

Also the new options the presets set (per-axis windows, padding modes, stride, the
downsampling and halving modes, channel_mean, PSNR caps and pooling, rgb_to_y's range and
rounding): behaviour, gradients (gradcheck in float64, finite gradients on flat inputs) and
the module / loss forms. Agreement with the references themselves is in
tests/reference/test_conventions_reference.py and tests/test_agreement.py.
"""

from __future__ import annotations

import inspect
import math

import pytest
import torch
from torch.autograd import gradcheck

import torchsim
from torchsim import conventions, registry

MS_SMALL = dict(kernel_size=3, weights=(0.3, 0.3, 0.4))  # min side 9 (12 with pooling="floor")


def _pair(*shape, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(*shape, generator=g, dtype=dtype)
    y = (x + 0.2 * (torch.rand(*shape, generator=g, dtype=dtype) - 0.5)).clamp(0, 1)
    return x, y


def _call(metric, x, y, **kw):
    return getattr(torchsim, metric)(x, y, data_range=1.0, reduction="none", **kw)


def _cases():
    """(metric, convention) for every preset, with a small image that fits it."""
    for metric in conventions.METRICS:
        for name in conventions.names(metric):
            yield metric, name


def _images(metric, convention=None):
    if metric == "ms_ssim":
        return _pair(2, 3, 178, 181)
    return _pair(3, 2, 37, 41)


# --------------------------------------------------------------------------- resolution


@pytest.mark.parametrize("metric, name", list(_cases()))
def test_a_preset_is_its_arguments(metric, name):
    x, y = _images(metric)
    preset = conventions.settings(metric, metric, name)
    torch.testing.assert_close(_call(metric, x, y, convention=name), _call(metric, x, y, **preset), rtol=0, atol=0)


@pytest.mark.parametrize("metric", conventions.METRICS)
def test_none_and_wang_are_the_defaults(metric):
    x, y = _images(metric)
    ref = _call(metric, x, y)
    for c in (None, "wang"):
        torch.testing.assert_close(_call(metric, x, y, convention=c), ref, rtol=0, atol=0)


OVERRIDES = [
    ("ssim", "skimage", dict(kernel_size=11)),
    ("ssim", "skimage", dict(gaussian=True, kernel_size=7)),
    ("ssim", "skimage", dict(sample_covariance=False)),
    ("ssim", "torchmetrics", dict(padding="valid")),
    ("ssim", "torchmetrics", dict(padding="symmetric", kernel_size=(11, 7))),
    ("ssim", "ffmpeg", dict(stride=1)),
    ("ssim", "ffmpeg", dict(k1=0.01, k2=0.03)),
    ("ssim", "matlab", dict(downsample=False)),
    ("ms_ssim", "torchmetrics", dict(pooling="zero")),
    ("ms_ssim", "torchmetrics", dict(channel_mean="last", padding="valid")),
    ("ms_ssim", "piq", dict(pooling="floor")),
    ("psnr", "piq", dict(eps=0.0)),
    ("psnr", "libvmaf", dict(max_db=30.0)),
    ("psnr", "torchmetrics", dict(pooled=False)),
]


@pytest.mark.parametrize("metric, name, override", OVERRIDES)
def test_explicit_arguments_override_the_preset(metric, name, override):
    x, y = _images(metric)
    expected = _call(metric, x, y, **{**conventions.settings(metric, metric, name), **override})
    torch.testing.assert_close(_call(metric, x, y, convention=name, **override), expected, rtol=0, atol=0)


def test_an_explicit_default_value_still_wins():
    """kernel_size=7 is skimage's preset; passing the function's own default 11 explicitly keeps 11."""
    x, y = _pair(2, 1, 40, 40)
    got = torchsim.ssim(x, y, data_range=1.0, convention="skimage", kernel_size=11)
    expected = torchsim.ssim(x, y, data_range=1.0, gaussian=False, sample_covariance=True, kernel_size=11)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert got != torchsim.ssim(x, y, data_range=1.0, convention="skimage")


def test_presets_change_the_numbers():
    x, y = _pair(2, 3, 64, 67)
    values = {c: float(torchsim.ssim(x, y, data_range=1.0, convention=c)) for c in ("wang", "skimage", "torchmetrics", "ffmpeg")}
    assert len(set(values.values())) == 4, values


@pytest.mark.parametrize("metric", conventions.METRICS)
def test_unknown_convention_lists_the_known_ones(metric):
    x, y = _images(metric)
    known = ", ".join(repr(n) for n in conventions.names(metric))
    with pytest.raises(ValueError, match=rf"^{metric}: convention must be None or one of {known}, got 'nope'$"):
        _call(metric, x, y, convention="nope")
    with pytest.raises(ValueError, match=rf"^{metric}: convention must be None or one of"):
        _call(metric, x, y, convention=3)


@pytest.mark.parametrize(
    "metric, name", [("ms_ssim", "skimage"), ("ms_ssim", "ffmpeg"), ("psnr", "pytorch_msssim"), ("ssim", "libvmaf")]
)
def test_a_convention_without_the_metric_says_so(metric, name):
    x, y = _images(metric)
    with pytest.raises(ValueError, match=rf"^{metric}: convention '{name}' publishes no {metric} .*conventions with {metric}: 'wang'"):
        _call(metric, x, y, convention=name)


def test_signatures_show_the_real_defaults():
    params = inspect.signature(torchsim.ssim).parameters
    assert params["kernel_size"].default == 11 and params["convention"].default is None
    assert inspect.signature(torchsim.psnr).parameters["max_db"].default is None
    assert torchsim.ssim.__name__ == "ssim" and "Convention:" in torchsim.ssim.__doc__


def test_module_and_loss_take_a_convention_and_explicit_options_win():
    x, y = _pair(2, 3, 40, 41)
    m = torchsim.SSIM(data_range=1.0, convention="skimage")
    assert m.options["kernel_size"] == 7 and m.options["gaussian"] is False and "convention='skimage'" in repr(m)
    torch.testing.assert_close(m(x, y), torchsim.ssim(x, y, data_range=1.0, convention="skimage"), rtol=0, atol=0)
    m11 = torchsim.SSIM(data_range=1.0, convention="skimage", kernel_size=11)
    assert m11.options["kernel_size"] == 11 and m11.options["sample_covariance"] is True
    loss = torchsim.SSIMLoss(data_range=1.0, convention="torchmetrics")
    torch.testing.assert_close(loss(x, y), 1 - torchsim.ssim(x, y, data_range=1.0, padding="reflect"))
    psnr = torchsim.PSNR(data_range=1.0, convention="piq")
    assert psnr(x, x).item() == pytest.approx(80.0)
    assert inspect.signature(torchsim.SSIM).parameters["kernel_size"].default == 11


def test_module_convention_errors_name_the_class():
    with pytest.raises(ValueError, match=r"^MSSSIM: convention 'skimage' publishes no ms_ssim"):
        torchsim.MSSSIM(data_range=1.0, convention="skimage")
    with pytest.raises(ValueError, match=r"^SSIMLoss: convention must be None or one of 'wang'"):
        torchsim.SSIMLoss(data_range=1.0, convention="tf")


def test_streaming_module_with_a_preset():
    x, y = _pair(4, 1, 30, 30)
    m = torchsim.SSIM(data_range=1.0, convention="ffmpeg")
    m.update(x[:2], y[:2])
    m.update(x[2:], y[2:])
    torch.testing.assert_close(m.compute(), torchsim.ssim(x, y, data_range=1.0, convention="ffmpeg"), rtol=1e-12, atol=1e-12)


def test_registry_lists_conventions_and_sizes_with_presets():
    assert registry.get("ssim").conventions == conventions.names("ssim")
    assert "libvmaf" in registry.get("psnr").conventions and registry.get("mse").conventions == []
    rec = registry.get("ms_ssim")
    assert rec.min_size() == 161 and rec.min_size(convention="torchmetrics") == 176
    assert rec.min_size(convention="torchmetrics", pooling="zero") == 161
    assert registry.get("ssim").min_size(kernel_size=(11, 7)) == 11


def test_conventions_api():
    assert conventions.names()[0] == "wang" and set(conventions.METRICS) == {"ssim", "ms_ssim", "psnr"}
    c = conventions.get("piq")
    assert c.settings["ssim"] == {"downsample": "avg_pool"} and "piq.ssim" in c.references["ssim"]
    with pytest.raises(ValueError, match=r"unknown convention 'x'; known: wang, skimage"):
        conventions.get("x")
    with pytest.raises(TypeError):
        c.settings["ssim"]["downsample"] = False  # read-only
    table = conventions.markdown_table()
    assert all(f"| `{n}` |" in table for n in conventions.names())


def test_readme_lists_every_convention():
    import pathlib

    readme = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    assert conventions.markdown_table() in readme, "README's table of conventions is stale: paste conventions.markdown_table()"
    assert "docs/AGREEMENT.md" in readme


# --------------------------------------------------------------------------- the options themselves


def test_per_axis_windows_equal_separable_products():
    x, y = _pair(2, 2, 33, 40)
    same = torchsim.ssim(x, y, data_range=1.0, kernel_size=(7, 7), sigma=(1.2, 1.2))
    torch.testing.assert_close(same, torchsim.ssim(x, y, data_range=1.0, kernel_size=7, sigma=1.2), rtol=0, atol=0)
    v, m = torchsim.ssim(x, y, data_range=1.0, kernel_size=(11, 5), sigma=(1.5, 0.8), return_map=True)
    assert m.shape == (2, 2, 33 - 10, 40 - 4) and not torch.equal(v, same)
    # a 1-tap axis is no filtering along it: rows of a 1 x 5 box window are 1-D SSIMs
    _, m1 = torchsim.ssim(x, y, data_range=1.0, kernel_size=(1, 5), gaussian=False, return_map=True)
    _, row = torchsim.ssim(x[:, :, 4:5], y[:, :, 4:5], data_range=1.0, kernel_size=(1, 5), gaussian=False, return_map=True)
    assert m1.shape == (2, 2, 33, 36)
    torch.testing.assert_close(m1[:, :, 4:5], row)


def test_per_axis_volume_and_errors():
    x, y = _pair(1, 1, 9, 12, 14)
    _, m = torchsim.ssim(x, y, data_range=1.0, kernel_size=(3, 5, 7), sigma=(0.5, 1.0, 1.5), return_map=True)
    assert m.shape == (1, 1, 7, 8, 8)
    with pytest.raises(ValueError, match=r"^ssim: kernel_size must be an odd positive integer or a sequence of 3"):
        torchsim.ssim(x, y, data_range=1.0, kernel_size=(3, 5))
    with pytest.raises(ValueError, match=r"^ssim: sigma must be a number or a sequence of 3"):
        torchsim.ssim(x, y, data_range=1.0, sigma=(1.0, 1.0))
    with pytest.raises(ValueError, match=r"^ssim: every spatial dimension must be at least its kernel_size \(3, 5, 15\)"):
        torchsim.ssim(x, y, data_range=1.0, kernel_size=(3, 5, 15))


def test_even_windows_only_uniform_and_valid():
    x, y = _pair(1, 1, 20, 20)
    torchsim.ssim(x, y, data_range=1.0, kernel_size=8, gaussian=False)
    with pytest.raises(ValueError, match=r"^ssim: kernel_size must be an odd positive integer, got 8 \(even sizes only"):
        torchsim.ssim(x, y, data_range=1.0, kernel_size=8)
    with pytest.raises(ValueError, match=r"^ssim: kernel_size must be an odd positive integer, got 8"):
        torchsim.ssim(x, y, data_range=1.0, kernel_size=8, gaussian=False, padding="reflect")


@pytest.mark.parametrize("padding", ["symmetric", "reflect", "zero", "replicate"])
def test_padding_gives_a_same_size_map_whose_mean_is_the_value(padding):
    x, y = _pair(2, 3, 23, 30)
    v, m = torchsim.ssim(x, y, data_range=1.0, padding=padding, return_map=True, reduction="none")
    assert m.shape == x.shape
    torch.testing.assert_close(v, m.mean((1, 2, 3)))
    # the interior (windows inside the image) is the valid map
    _, valid = torchsim.ssim(x, y, data_range=1.0, return_map=True)
    torch.testing.assert_close(m[..., 5:-5, 5:-5], valid, rtol=1e-12, atol=1e-12)


def test_stride_is_every_stride_th_position_of_the_map():
    x, y = _pair(2, 1, 30, 37)
    _, full = torchsim.ssim(x, y, data_range=1.0, kernel_size=8, gaussian=False, return_map=True)
    v, m = torchsim.ssim(x, y, data_range=1.0, kernel_size=8, gaussian=False, stride=4, return_map=True, reduction="none")
    torch.testing.assert_close(m, full[..., ::4, ::4], rtol=0, atol=0)
    torch.testing.assert_close(v, m.mean((1, 2, 3)))
    with pytest.raises(ValueError, match=r"^ssim: stride must be an integer >= 1, got 0"):
        torchsim.ssim(x, y, data_range=1.0, stride=0)


def test_downsample_modes():
    x, y = _pair(1, 1, 640, 300)  # min side 300: f = 1 either way
    base = torchsim.ssim(x, y, data_range=1.0)
    for d in (True, "matlab", "avg_pool"):
        torch.testing.assert_close(torchsim.ssim(x, y, data_range=1.0, downsample=d), base, rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"^ssim: downsample must be False, True, 'matlab' or 'avg_pool', got str 'piq'"):
        torchsim.ssim(x, y, data_range=1.0, downsample="piq")


def test_downsample_rounding_differs_at_two_and_a_half():
    """640 px: MATLAB rounds 2.5 to 3, Python (piq) to 2 — the two modes see different images."""
    x, y = _pair(1, 1, 640, 640)
    _, m_matlab = torchsim.ssim(x, y, data_range=1.0, downsample="matlab", return_map=True)
    _, m_pool = torchsim.ssim(x, y, data_range=1.0, downsample="avg_pool", return_map=True)
    assert m_matlab.shape[-1] == math.ceil(640 / 3) - 10 and m_pool.shape[-1] == 640 // 2 - 10


@pytest.mark.parametrize("pooling", ["zero", "floor", "replicate_start", "symmetric_end"])
@pytest.mark.parametrize("channel_mean", ["last", "first"])
def test_ms_ssim_options_gradcheck(pooling, channel_mean):
    x, y = _pair(1, 2, 13, 14)
    x.requires_grad_(True)
    y.requires_grad_(True)
    kw = dict(MS_SMALL, pooling=pooling, channel_mean=channel_mean, data_range=1.0)
    assert gradcheck(lambda a, b: torchsim.ms_ssim(a, b, **kw), (x, y))


def test_ms_ssim_padding_and_errors():
    x, y = _pair(2, 3, 13, 15)
    kw = dict(MS_SMALL, data_range=1.0, reduction="none")
    a = torchsim.ms_ssim(x, y, padding="reflect", **kw)
    assert a.shape == (2,) and not torch.equal(a, torchsim.ms_ssim(x, y, **kw))
    with pytest.raises(ValueError, match=r"^ms_ssim: pooling must be one of 'zero', 'floor'"):
        torchsim.ms_ssim(x, y, pooling="avg", **kw)
    with pytest.raises(ValueError, match=r"^ms_ssim: channel_mean must be one of 'last', 'first', got 'before'"):
        torchsim.ms_ssim(x, y, channel_mean="before", **kw)
    with pytest.raises(ValueError, match=r"^ms_ssim: every spatial dimension must be at least 12 for kernel_size=3 .*kernel_size \* 2\*\*2"):
        torchsim.ms_ssim(x[..., :11, :], y[..., :11, :], pooling="floor", **kw)


@pytest.mark.parametrize(
    "kw",
    [
        dict(padding="reflect", kernel_size=5),
        dict(padding="symmetric", kernel_size=(5, 3), sigma=(1.0, 0.7)),
        dict(padding="zero", kernel_size=5),
        dict(padding="replicate", kernel_size=7, return_map=True),
        dict(kernel_size=4, gaussian=False, stride=2, sample_covariance=True),
        dict(convention="ffmpeg"),
        dict(kernel_size=(3, 5), sigma=(0.8, 1.1), reduction="none"),
    ],
    ids=["reflect", "symmetric-axes", "zero", "replicate-map", "stride", "ffmpeg", "axes"],
)
def test_ssim_new_options_gradcheck(kw):
    x, y = _pair(1, 2, 10, 12)
    x.requires_grad_(True)
    y.requires_grad_(True)

    def f(a, b):
        out = torchsim.ssim(a, b, data_range=1.0, **kw)
        return out[0] + out[1].sum() if isinstance(out, tuple) else out

    assert gradcheck(f, (x, y))


@pytest.mark.parametrize("convention", conventions.names("ssim"))
def test_flat_and_identical_inputs_have_finite_gradients(convention):
    flat = torch.full((1, 1, 20, 21), 0.5, dtype=torch.float64, requires_grad=True)
    for other in (flat.detach().clone(), torch.full_like(flat, 0.25)):
        v = torchsim.ssim(flat, other, data_range=1.0, convention=convention)
        (g,) = torch.autograd.grad(v, flat)
        assert torch.isfinite(v) and torch.isfinite(g).all()


# --------------------------------------------------------------------------- PSNR


def test_psnr_caps():
    x, y = _pair(3, 1, 8, 8)
    x2 = torch.cat([x[:1], y[1:]])  # image 0 identical, the others not
    plain = torchsim.psnr(x, x2, data_range=1.0, reduction="none")
    assert torch.isinf(plain[0]) and torch.isfinite(plain[1:]).all()
    capped = torchsim.psnr(x, x2, data_range=1.0, max_db=30.0, reduction="none")
    torch.testing.assert_close(capped, plain.clamp(max=30.0))
    piq = torchsim.psnr(x, x2, data_range=1.0, eps=1e-8, reduction="none")
    assert piq[0].item() == pytest.approx(80.0)
    mse = torchsim.mse(x, x2, reduction="none")
    torch.testing.assert_close(piq[1:], -10 * torch.log10(mse[1:] + 1e-8))
    assert torchsim.psnr(x, x, data_range=255.0, convention="libvmaf").item() == 60.0


def test_psnr_pooled():
    x, y = _pair(4, 3, 9, 9)
    pooled = torchsim.psnr(x, y, data_range=1.0, pooled=True)
    mse = torchsim.mse(x, y, reduction="none")
    torch.testing.assert_close(pooled, -10 * torch.log10(mse.mean()))
    torch.testing.assert_close(
        torchsim.psnr(x, y, data_range=1.0, pooled=True, reduction="none"), torchsim.psnr(x, y, data_range=1.0, reduction="none")
    )
    with pytest.raises(ValueError, match=r"^psnr: pooled=True gives one PSNR of the batch and needs reduction 'mean' or 'none', got 'sum'"):
        torchsim.psnr(x, y, data_range=1.0, pooled=True, reduction="sum")


@pytest.mark.parametrize("kw", [dict(max_db=25.0), dict(eps=1e-3), dict(pooled=True)])
def test_psnr_options_gradcheck_and_errors(kw):
    x, y = _pair(2, 1, 5, 5)
    x.requires_grad_(True)
    assert gradcheck(lambda a: torchsim.psnr(a, y, data_range=1.0, **kw), (x,))
    with pytest.raises(ValueError, match=r"^psnr: max_db must be a finite number > 0, got -1"):
        torchsim.psnr(x, y, data_range=1.0, max_db=-1)
    with pytest.raises(ValueError, match=r"^psnr: eps must be a finite number >= 0, got -1e-08"):
        torchsim.psnr(x, y, data_range=1.0, eps=-1e-8)


def test_psnr_identical_with_a_cap_has_a_zero_gradient():
    x = torch.rand(1, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    for kw in (dict(max_db=60.0), dict(eps=1e-8)):
        (g,) = torch.autograd.grad(torchsim.psnr(x, x.detach(), data_range=1.0, **kw), x)
        assert torch.isfinite(g).all()


# --------------------------------------------------------------------------- rgb_to_y


def test_rgb_to_y_full_range_and_rounding():
    u8 = torch.tensor([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]], dtype=torch.uint8).T.reshape(1, 3, 1, 4)
    full = torchsim.rgb_to_y(u8, y_range="full").flatten()
    torch.testing.assert_close(full, torch.tensor([0.299, 0.587, 0.114, 1.0]) * 255)
    limited = torchsim.rgb_to_y(u8).flatten()
    rounded = torchsim.rgb_to_y(u8, y_round=True).flatten()
    torch.testing.assert_close(rounded, torch.floor(limited + 0.5))
    # on another scale the rounding is still to 8-bit levels
    f = u8.double() / 255
    torch.testing.assert_close(torchsim.rgb_to_y(f, data_range=1.0, y_round=True).flatten(), rounded.double() / 255)
    with pytest.raises(ValueError, match=r"^rgb_to_y: y_range must be one of 'limited', 'full', got 'jpeg'"):
        torchsim.rgb_to_y(u8, y_range="jpeg")
    with pytest.raises(TypeError, match=r"^rgb_to_y: y_round must be True or False"):
        torchsim.rgb_to_y(u8, y_round=1)


def test_rgb_to_y_full_is_differentiable():
    x = torch.rand(1, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda a: torchsim.rgb_to_y(a, data_range=1.0, y_range="full"), (x,))


# --------------------------------------------------------------------------- command line


@pytest.fixture()
def image_dirs(tmp_path, photos):
    from PIL import Image

    from tests.helpers import DISTORTIONS, crop

    ref, test = tmp_path / "ref", tmp_path / "test"
    ref.mkdir()
    test.mkdir()
    a = crop(photos["astronaut"], 181, 197, 40, 60)
    for name, dist in (("a.png", "jpeg"), ("b.png", "noise")):
        Image.fromarray((a * 255).round().astype("uint8")).save(ref / name)
        Image.fromarray((DISTORTIONS[dist](a) * 255).round().astype("uint8")).save(test / name)
    return ref, test


def _u8_dir(folder):
    import numpy as np
    from PIL import Image

    return {p.name: torch.from_numpy(np.asarray(Image.open(p)).copy()).permute(2, 0, 1)[None] for p in sorted(folder.iterdir())}


def test_score_convention_scores_as_the_preset(image_dirs, capsys):
    import json

    from torchsim.cli import main

    ref, test = image_dirs
    code = main(["score", str(ref), str(test), "--metrics", "psnr,ssim,ms_ssim", "--convention", "torchmetrics", "--json", "--no-progress"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["convention"] == "torchmetrics"
    xs, ys = _u8_dir(ref), _u8_dir(test)
    for row in report["images"]:
        x, y = xs[row["name"]], ys[row["name"]]
        assert row["ssim"] == pytest.approx(float(torchsim.ssim(x, y, convention="torchmetrics")), abs=1e-6)
        assert row["ms_ssim"] == pytest.approx(float(torchsim.ms_ssim(x, y, convention="torchmetrics")), abs=1e-6)
        # per image, a pooled PSNR is the image's own PSNR
        assert row["psnr"] == pytest.approx(float(torchsim.psnr(x, y)), abs=1e-4)


def test_score_convention_errors(image_dirs, capsys):
    from torchsim.cli import main

    ref, test = image_dirs
    assert main(["score", str(ref), str(test), "--metrics", "ms_ssim", "--convention", "skimage"]) == 2
    assert "--convention: convention 'skimage' publishes no ms_ssim" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["score", str(ref), str(test), "--convention", "nope"])
    assert exc.value.code == 2 and "invalid choice: 'nope' (choose from 'wang', 'skimage'" in capsys.readouterr().err


def test_compare_convention_rows(image_dirs, capsys):
    from torchsim.cli import main

    ref, test = image_dirs
    assert main(["compare", str(ref / "b.png"), str(test / "b.png"), "--convention", "ffmpeg"]) == 0
    out = capsys.readouterr().out
    x, y = _u8_dir(ref)["b.png"], _u8_dir(test)["b.png"]
    ssim_line = next(line for line in out.splitlines() if line.startswith("SSIM "))
    assert f"{float(torchsim.ssim(x, y, convention='ffmpeg')):.4f}" in ssim_line and "convention ffmpeg" in ssim_line
    assert "ffmpeg publishes no ms_ssim: the defaults" in next(line for line in out.splitlines() if line.startswith("MS-SSIM"))


# --------------------------------------------------------------------------- presets with masks and the Triton backend


@pytest.fixture(scope="module")
def masked_photos(photos):
    """Two 8-bit crops (astronaut, coffee) and their JPEG / noise copies, float64 in [0, 1], and a mask
    per image (True = ignore) of different sizes: a rectangle, and a rectangle plus the border rows."""
    from tests.helpers import DISTORTIONS, crop, to_nchw

    a = [crop(photos[n], 61, 74, 40, 90) for n in ("astronaut", "coffee")]
    b = [DISTORTIONS[d](i) for i, d in zip(a, ("jpeg", "noise"))]
    x = torch.cat([to_nchw(i) for i in a]).mul(255).round().div(255)
    y = torch.cat([to_nchw(i) for i in b]).clamp(0, 1).mul(255).round().div(255)
    m = torch.zeros(2, 1, 61, 74, dtype=torch.bool)
    m[0, :, 20:41, 10:35] = True
    m[1, :, 5:15, 30:70] = True
    m[1, :, :3] = True
    return x, y, m


@pytest.mark.parametrize("name", conventions.names("ssim"))
def test_every_ssim_preset_takes_a_mask(masked_photos, name):
    """A preset with ``mask=`` is its arguments with ``mask=``, and the mean is over the map's
    positions whose window centre is kept (the ignored centres' map values are left out)."""
    x, y, m = masked_photos
    preset = conventions.settings("ssim", "ssim", name)
    v, smap = torchsim.ssim(x, y, data_range=1.0, convention=name, mask=m, return_map=True, reduction="none")
    torch.testing.assert_close(v, torchsim.ssim(x, y, data_range=1.0, mask=m, reduction="none", **preset), rtol=0, atol=0)
    _, full = torchsim.ssim(x, y, data_range=1.0, convention=name, return_map=True, reduction="none")
    keep = smap != 1  # the masked map is 1 at ignored centres (no kept value of these pairs is exactly 1)
    assert keep.sum() < full.numel()
    for i in range(2):
        torch.testing.assert_close(v[i], full[i][keep[i]].mean(), rtol=1e-12, atol=1e-12)


def test_masked_presets_equal_the_references_maps(masked_photos):
    """torchmetrics' and kornia's same-size maps and scikit-image's full map (valid crop), averaged over
    the kept pixels, are the masked values of their presets."""
    import kornia
    import torchmetrics.functional.image as tmf
    from skimage.metrics import structural_similarity

    x, y, m = masked_photos
    keep = ~m[:, 0]
    _, tm_map = tmf.structural_similarity_index_measure(x, y, data_range=1.0, return_full_image=True, reduction="none")
    kn_map = kornia.metrics.ssim(x, y, 11, max_val=1.0, eps=0.0)
    for name, ref_map in (("torchmetrics", tm_map), ("kornia", kn_map)):
        got = torchsim.ssim(x, y, data_range=1.0, convention=name, mask=m, reduction="none")
        expected = torch.stack([ref_map[i].mean(0)[keep[i]].mean() for i in range(2)])
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10, msg=lambda s, n=name: f"{n}: {s}")
    got = torchsim.ssim(x, y, data_range=1.0, convention="skimage", mask=m, reduction="none")
    for i in range(2):
        a, b = x[i].permute(1, 2, 0).numpy(), y[i].permute(1, 2, 0).numpy()
        _, full = structural_similarity(a, b, data_range=1.0, channel_axis=-1, full=True)
        valid = torch.from_numpy(full[3:-3, 3:-3].mean(-1))  # 7x7 windows inside the image
        torch.testing.assert_close(got[i], valid[keep[i, 3:-3, 3:-3]].mean(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", conventions.names("psnr"))
def test_every_psnr_preset_takes_a_mask(masked_photos, name):
    """The PSNR of the kept pixels as the preset's reference computes it: per image (scikit-image, with
    piq's 1e-8 and libvmaf's cap), or one PSNR of every kept value of the batch (torchmetrics)."""
    import torchmetrics.functional.image as tmf
    from skimage.metrics import peak_signal_noise_ratio

    x, y, m = masked_photos
    keep = (~m).expand_as(x)
    got = torchsim.psnr(x, y, data_range=1.0, convention=name, mask=m)
    settings = conventions.settings("psnr", "psnr", name)
    tol = dict(rtol=1e-10, atol=1e-10)
    if settings.get("pooled"):
        expected = tmf.peak_signal_noise_ratio(x[keep], y[keep], data_range=1.0)
        tol = dict(rtol=1e-6, atol=1e-5)  # torchmetrics keeps data_range as a float32 tensor
    else:
        per = []
        for i in range(2):
            a, b = x[i][keep[i]].numpy(), y[i][keep[i]].numpy()
            if "eps" in settings:
                per.append(-10 * math.log10(float(((a - b) ** 2).mean()) + settings["eps"]))
            else:
                per.append(min(peak_signal_noise_ratio(a, b, data_range=1.0), settings.get("max_db", math.inf)))
        expected = torch.tensor(per, dtype=torch.float64).mean()
    torch.testing.assert_close(got, expected.double(), **tol)
    if settings.get("pooled"):  # not the mean of the per-image masked MSEs: the masks differ in size
        unweighted = -10 * torch.log10(torchsim.mse(x, y, mask=m, reduction="none").mean())
        assert abs(float(got) - float(unweighted)) > 1e-3


def test_ms_ssim_has_no_mask():
    x, y = _pair(1, 1, 161, 161)
    with pytest.raises(TypeError, match="mask"):
        torchsim.ms_ssim(x, y, data_range=1.0, convention="piq", mask=torch.zeros(1, 1, 161, 161, dtype=torch.bool))


# the fused kernels get c1, c2 and the covariance factor as float32 scalars: float64 agrees to ~1e-9
# (tests/test_triton.py::test_float64_per_image_range_map_channels_last)
TRITON_F64 = dict(rtol=1e-8, atol=1e-8)


@pytest.fixture
def triton_interpret(monkeypatch):
    pytest.importorskip("triton", reason="the fused SSIM backend needs the triton package")
    monkeypatch.setenv("TRITON_INTERPRET", "1")


@pytest.mark.parametrize("name", conventions.names("ssim"))
def test_every_ssim_preset_runs_on_the_triton_backend(triton_interpret, masked_photos, name):
    """``backend="triton"`` (Triton's interpreter on CPU) gives the preset's value, map and mask handling:
    odd windows (padded or not) run fused; ffmpeg's even 8x8 blocks take the reference kernel."""
    x, y, m = masked_photos
    x, y, m = x[:, :2, :29, :33], y[:, :2, :29, :33], m[..., :29, :33]
    for mask in (None, m):
        got = torchsim.ssim(x, y, data_range=1.0, convention=name, backend="triton", mask=mask, return_map=True, reduction="none")
        ref = torchsim.ssim(x, y, data_range=1.0, convention=name, backend="torch", mask=mask, return_map=True, reduction="none")
        torch.testing.assert_close(got[0], ref[0], **TRITON_F64)
        torch.testing.assert_close(got[1], ref[1], **TRITON_F64)


@pytest.mark.parametrize("name", conventions.names("ms_ssim"))
def test_every_ms_ssim_preset_runs_on_the_triton_backend(triton_interpret, masked_photos, name):
    x, y, _ = masked_photos
    x, y = x[:1, :2, :27, :30], y[:1, :2, :27, :30]
    kw = dict(MS_SMALL, data_range=1.0, convention=name, reduction="none")
    torch.testing.assert_close(
        torchsim.ms_ssim(x, y, backend="triton", **kw), torchsim.ms_ssim(x, y, backend="torch", **kw), **TRITON_F64
    )


def test_triton_backend_errors_clearly_without_the_interpreter_on_cpu(monkeypatch, masked_photos):
    pytest.importorskip("triton", reason="the fused SSIM backend needs the triton package")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    x, y, m = masked_photos
    with pytest.raises(ValueError, match=r"^ssim: backend='triton'"):
        torchsim.ssim(x, y, data_range=1.0, convention="torchmetrics", backend="triton", mask=m)
