"""Every bad input in SPEC raises the right error type, naming the function and the argument.

Message form (torchsim/_validation.py): ``"<fn>: <arg> must be <expected>, got <received>"``.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

import torchsim
from tests.helpers import MS_SMALL, rand

PAIR_FNS = ["mse", "psnr", "ssim", "ms_ssim", "cosine_similarity"]
RANGE_FNS = ["psnr", "ssim", "ms_ssim"]  # need data_range for floating inputs
WINDOW_FNS = ["ssim", "ms_ssim"]


def _ok_kwargs(fn: str) -> dict:
    return dict(data_range=1.0, **(MS_SMALL if fn == "ms_ssim" else {})) if fn in RANGE_FNS else {}


def _img(*shape, dtype=torch.float32):
    return rand(*shape, dtype=dtype)


def _call(fn, x, y, **kw):
    return getattr(torchsim, fn)(x, y, **{**_ok_kwargs(fn), **kw})


GOOD = (2, 3, 16, 17)


def re_shape(shape) -> str:
    return re.escape(str(tuple(shape)))


def re_escape(s: str) -> str:
    return re.escape(s)


def test_good_inputs_pass():
    """The baseline every case below differs from in exactly one way."""
    for fn in PAIR_FNS:
        _call(fn, _img(*GOOD), _img(*GOOD))


# --------------------------------------------------------------------------- type, rank, shape, dtype


@pytest.mark.parametrize("fn", PAIR_FNS)
def test_not_a_tensor(fn):
    with pytest.raises(TypeError, match=rf"^{fn}: x must be a torch\.Tensor, got ndarray"):
        _call(fn, np.zeros(GOOD, np.float32), _img(*GOOD))
    with pytest.raises(TypeError, match=rf"^{fn}: y must be a torch\.Tensor, got list"):
        _call(fn, _img(*GOOD), [[0.0]])


@pytest.mark.parametrize("shape", [(3, 16, 17), (16, 17), (1, 1, 1, 3, 16, 17)])
@pytest.mark.parametrize("fn", PAIR_FNS)
def test_wrong_rank(fn, shape):
    with pytest.raises(ValueError, match=rf"^{fn}: x must be 4-D \(N, C, H, W\).* got shape {re_shape(shape)}"):
        _call(fn, _img(*shape), _img(*shape))
    with pytest.raises(ValueError, match=rf"^{fn}: y must be 4-D"):
        _call(fn, _img(*GOOD), _img(*shape))


@pytest.mark.parametrize("fn", ["ssim", "ms_ssim", "mse", "psnr", "cosine_similarity"])
def test_volumes_accepted_where_documented(fn):
    """SSIM and MS-SSIM take NCDHW volumes; the 5-D message says so."""
    x = _img(1, 1, 11, 12, 13)
    _call(fn, x, x.clone())
    with pytest.raises(ValueError, match=rf"^{fn}: x must be 4-D \(N, C, H, W\) or 5-D \(N, C, D, H, W\)"):
        _call(fn, _img(1, 1, 1, 9, 10, 11), _img(1, 1, 1, 9, 10, 11))


@pytest.mark.parametrize(
    "shape_y", [(2, 3, 16, 16), (2, 1, 16, 17), (1, 3, 16, 17), (2, 3, 17, 16)], ids=["W", "C", "N", "HW"]
)
@pytest.mark.parametrize("fn", PAIR_FNS)
def test_shape_mismatch_is_never_broadcast(fn, shape_y):
    with pytest.raises(
        ValueError, match=rf"^{fn}: x and y must have the same shape, got {re_shape(GOOD)} and {re_shape(shape_y)}"
    ):
        _call(fn, _img(*GOOD), _img(*shape_y))


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64, torch.int16, torch.int8, torch.bool, torch.complex64], ids=str)
@pytest.mark.parametrize("fn", PAIR_FNS)
def test_unsupported_dtypes(fn, dtype):
    x = (_img(*GOOD) * 100).to(dtype)
    with pytest.raises(TypeError, match=rf"^{fn}: x must have dtype float16, bfloat16, float32, float64, uint8 or uint16.*got {dtype}"):
        _call(fn, x, x.clone())
    with pytest.raises(TypeError, match=rf"^{fn}: y must have dtype"):
        _call(fn, _img(*GOOD), x)


@pytest.mark.parametrize("fn", PAIR_FNS)
def test_mixed_uint8_and_float(fn):
    u = (_img(*GOOD) * 255).to(torch.uint8)
    f = _img(*GOOD)
    with pytest.raises(TypeError, match=rf"^{fn}: x and y must both be floating, both uint8 or both uint16, got torch\.uint8 and torch\.float32"):
        _call(fn, u, f)
    with pytest.raises(TypeError, match=rf"^{fn}: x and y must both be floating, both uint8 or both uint16"):
        _call(fn, f, u)


@pytest.mark.parametrize("fn", PAIR_FNS)
def test_empty(fn):
    with pytest.raises(ValueError, match=rf"^{fn}: x must not be empty"):
        _call(fn, _img(0, 3, 16, 17), _img(0, 3, 16, 17))


# --------------------------------------------------------------------------- reduction


@pytest.mark.parametrize("reduction", ["avg", "Mean", None, "elementwise_mean", 0])
@pytest.mark.parametrize("fn", PAIR_FNS)
def test_unknown_reduction(fn, reduction):
    with pytest.raises(ValueError, match=rf"^{fn}: reduction must be one of 'mean', 'sum', 'none', got {reduction!r}"):
        _call(fn, _img(*GOOD), _img(*GOOD), reduction=reduction)


# --------------------------------------------------------------------------- data_range


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("fn", RANGE_FNS)
def test_missing_data_range_for_float(fn, dtype):
    x = _img(*GOOD, dtype=dtype)
    with pytest.raises(TypeError, match=rf"^{fn}: data_range is required .*data_range=1\.0"):
        _call(fn, x, x.clone(), data_range=None)


def test_rgb_to_y_missing_data_range():
    with pytest.raises(TypeError, match=r"^rgb_to_y: data_range is required .*data_range=1\.0"):
        torchsim.rgb_to_y(_img(1, 3, 4, 4))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), 0.0, -1.0, 0])
@pytest.mark.parametrize("fn", RANGE_FNS)
def test_non_finite_or_non_positive_data_range(fn, bad):
    with pytest.raises(ValueError, match=rf"^{fn}: data_range must be positive and finite, got {re_escape(repr(bad))}"):
        _call(fn, _img(*GOOD), _img(*GOOD), data_range=bad)


@pytest.mark.parametrize(
    "bad",
    [[1.0, float("nan")], [1.0, 0.0], [-1.0, 1.0], [float("inf"), 1.0], [0.0]],
    ids=["nan", "zero", "negative", "inf", "scalar-zero"],
)
@pytest.mark.parametrize("fn", RANGE_FNS)
def test_bad_data_range_cpu_tensor(fn, bad):
    dr = torch.tensor(bad) if len(bad) > 1 else torch.tensor(bad[0])
    with pytest.raises(ValueError, match=rf"^{fn}: data_range must be positive and finite"):
        _call(fn, _img(*GOOD), _img(*GOOD), data_range=dr)


@pytest.mark.parametrize("shape", [(3,), (2, 1), (1, 2)])
@pytest.mark.parametrize("fn", RANGE_FNS)
def test_data_range_tensor_shape(fn, shape):
    with pytest.raises(ValueError, match=rf"^{fn}: data_range tensor must have shape \(N,\) = \(2,\)"):
        _call(fn, _img(*GOOD), _img(*GOOD), data_range=torch.ones(shape))


@pytest.mark.parametrize("bad", ["1.0", True, [1.0, 1.0], None], ids=["str", "bool", "list", "none-placeholder"])
@pytest.mark.parametrize("fn", RANGE_FNS)
def test_data_range_wrong_type(fn, bad):
    if bad is None:
        bad = torch.tensor([1.0, 1.0], dtype=torch.complex64)
    with pytest.raises(TypeError, match=rf"^{fn}: data_range"):
        _call(fn, _img(*GOOD), _img(*GOOD), data_range=bad)


def test_valid_data_range_forms():
    x, y = _img(*GOOD), _img(*GOOD)
    ref = torchsim.ssim(x, y, data_range=1.0)
    for dr in (1, 1.0, np.float64(1.0), torch.tensor(1.0), torch.tensor([1.0]), torch.tensor([1.0, 1.0]), torch.tensor([1, 1])):
        torch.testing.assert_close(torchsim.ssim(x, y, data_range=dr), ref)


# --------------------------------------------------------------------------- kernel, window, options


@pytest.mark.parametrize("k", [10, 0, -3, -1, 3.0, True, "11", None])
@pytest.mark.parametrize("fn", WINDOW_FNS)
def test_bad_kernel_size(fn, k):
    with pytest.raises(ValueError, match=rf"^{fn}: kernel_size must be an odd positive integer, got {re_escape(repr(k))}"):
        _call(fn, _img(1, 1, 40, 40), _img(1, 1, 40, 40), kernel_size=k)


@pytest.mark.parametrize("sigma", [0.0, -1.5, float("nan"), float("inf"), "1.5"])
@pytest.mark.parametrize("fn", WINDOW_FNS)
def test_bad_sigma(fn, sigma):
    with pytest.raises(ValueError, match=rf"^{fn}: sigma must be a positive finite number"):
        _call(fn, _img(1, 1, 40, 40), _img(1, 1, 40, 40), sigma=sigma)


@pytest.mark.parametrize("name", ["k1", "k2"])
@pytest.mark.parametrize("value", [-0.01, float("nan"), float("inf")])
@pytest.mark.parametrize("fn", WINDOW_FNS)
def test_bad_k1_k2(fn, name, value):
    with pytest.raises(ValueError, match=rf"^{fn}: {name} must be"):
        _call(fn, _img(1, 1, 40, 40), _img(1, 1, 40, 40), **{name: value})


@pytest.mark.parametrize(
    "shape, kw",
    [
        ((1, 1, 10, 40), {}),
        ((1, 1, 40, 10), {}),
        ((1, 1, 6, 40), dict(kernel_size=7)),
        ((1, 1, 10, 11, 11), {}),  # a volume too shallow
        ((1, 1, 11, 2), dict(kernel_size=3)),
    ],
)
def test_ssim_image_smaller_than_window(shape, kw):
    k = kw.get("kernel_size", 11)
    with pytest.raises(ValueError, match=rf"^ssim: every spatial dimension must be at least kernel_size={k}.*{re_shape(shape[2:])}"):
        torchsim.ssim(_img(*shape), _img(*shape), data_range=1.0, **kw)


def test_ssim_exactly_one_window_is_fine():
    v, smap = torchsim.ssim(_img(1, 1, 11, 11), _img(1, 1, 11, 11), data_range=1.0, return_map=True)
    assert smap.shape == (1, 1, 1, 1)


@pytest.mark.parametrize(
    "shape, kw, minimum",
    [
        ((1, 1, 160, 200), {}, 161),
        ((1, 3, 200, 160), {}, 161),
        ((1, 1, 160, 160), {}, 161),
        ((1, 1, 8, 20), MS_SMALL, 9),
        ((1, 1, 12, 100), dict(kernel_size=7, weights=(0.5, 0.5)), 13),
        ((1, 1, 170, 170, 160), {}, 161),
    ],
)
def test_ms_ssim_below_minimum_size(shape, kw, minimum):
    with pytest.raises(ValueError, match=rf"^ms_ssim: every spatial dimension must be at least {minimum}\b.*{re_shape(shape[2:])}"):
        torchsim.ms_ssim(_img(*shape), _img(*shape), data_range=1.0, **kw)


def test_ms_ssim_minimum_size_is_accepted():
    torchsim.ms_ssim(_img(1, 1, 161, 161), _img(1, 1, 161, 161), data_range=1.0)
    torchsim.ms_ssim(_img(1, 1, 9, 9), _img(1, 1, 9, 9), data_range=1.0, **MS_SMALL)


@pytest.mark.parametrize("weights, exc", [((), ValueError), (None, TypeError), (0.5, TypeError), (("a", 1.0), TypeError)])
def test_ms_ssim_bad_weights(weights, exc):
    with pytest.raises(exc, match=r"^ms_ssim: weights|could not convert"):
        torchsim.ms_ssim(_img(1, 1, 40, 40), _img(1, 1, 40, 40), data_range=1.0, kernel_size=3, weights=weights)


# --------------------------------------------------------------------------- rgb_to_y


@pytest.mark.parametrize("channels", [1, 2, 4])
def test_rgb_to_y_needs_three_channels(channels):
    with pytest.raises(ValueError, match=rf"^rgb_to_y: x must have 3 channels .*{re_shape((1, channels, 4, 5))}"):
        torchsim.rgb_to_y(_img(1, channels, 4, 5), data_range=1.0)


@pytest.mark.parametrize("shape", [(3, 4, 5), (1, 3, 2, 4, 5)])
def test_rgb_to_y_rank(shape):
    with pytest.raises(ValueError, match=r"^rgb_to_y: x must be 4-D"):
        torchsim.rgb_to_y(_img(*shape), data_range=1.0)


def test_rgb_to_y_dtype_and_data_range():
    with pytest.raises(TypeError, match=r"^rgb_to_y: x must have dtype"):
        torchsim.rgb_to_y(torch.zeros(1, 3, 4, 5, dtype=torch.int32))
    with pytest.raises(ValueError, match=r"^rgb_to_y: data_range must be positive and finite"):
        torchsim.rgb_to_y(_img(1, 3, 4, 5), data_range=math.nan)
    with pytest.raises(TypeError, match=r"^rgb_to_y: x must be a torch\.Tensor"):
        torchsim.rgb_to_y(np.zeros((1, 3, 4, 5)), data_range=1.0)


# --------------------------------------------------------------------------- keyword-only options


@pytest.mark.parametrize("fn", PAIR_FNS)
def test_options_are_keyword_only(fn):
    with pytest.raises(TypeError):
        getattr(torchsim, fn)(_img(*GOOD), _img(*GOOD), "mean")


# --------------------------------------------------------------------------- device mismatch (needs CUDA)


@pytest.mark.cuda
@pytest.mark.parametrize("fn", PAIR_FNS)
def test_device_mismatch(fn):
    x = _img(*GOOD)
    with pytest.raises(ValueError, match=rf"^{fn}: x and y must be on the same device, got cpu and cuda:0"):
        _call(fn, x, x.cuda())
    with pytest.raises(ValueError, match=rf"^{fn}: x and y must be on the same device, got cuda:0 and cpu"):
        _call(fn, x.cuda(), x)


@pytest.mark.cuda
@pytest.mark.parametrize("fn", RANGE_FNS)
def test_per_image_data_range_on_wrong_device(fn):
    x = _img(*GOOD).cuda()
    with pytest.raises(ValueError, match=rf"^{fn}: data_range tensor must be on the images' device cuda:0, got cpu"):
        _call(fn, x, x.clone(), data_range=torch.tensor([1.0, 2.0]))
