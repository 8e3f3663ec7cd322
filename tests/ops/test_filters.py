"""torchsim.ops.filters on its own: separable filtering against scipy.ndimage, per padding mode and per axis.

scipy's ``correlate1d`` is the reference: our modes map to scipy's as
symmetric -> 'reflect', reflect -> 'mirror', zero -> 'constant', replicate -> 'nearest';
scipy centres an even window one tap to the right of ours (MATLAB's centre), hence
``origin=-1`` for even lengths.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from torch.autograd import gradcheck

from torchsim.ops import PADDING_MODES, box_sum, box_window, gaussian_window, matlab_downsample, separable_filter, symmetric_pad

SCIPY_MODE = {"symmetric": "reflect", "reflect": "mirror", "zero": "constant", "replicate": "nearest"}
SAME_MODES = tuple(SCIPY_MODE)


def _correlate(a: np.ndarray, windows, mode: str) -> np.ndarray:
    """scipy reference: correlate1d along each spatial axis with its window (None: skip)."""
    for axis, w in enumerate(windows, start=2):
        if w is not None:
            w = np.asarray(w, dtype=np.float64)
            a = ndimage.correlate1d(a, w, axis=axis, mode=SCIPY_MODE[mode], origin=-1 if len(w) % 2 == 0 else 0)
    return a


@pytest.fixture(scope="module")
def image4(photos):
    """(2, 3, 37, 45) float64: two crops of real photographs (odd sizes)."""
    a = photos["astronaut"][100:137, 200:245].transpose(2, 0, 1)
    b = photos["coffee"][150:187, 300:345].transpose(2, 0, 1)
    return np.ascontiguousarray(np.stack([a, b]))


@pytest.fixture(scope="module")
def volume5(photos):
    """(1, 2, 9, 23, 31) float64: a volume whose slices are shifted crops of two photos."""
    cam, cat = photos["camera"], photos["chelsea"][..., 1]
    v = [[p[40 + 3 * d : 63 + 3 * d, 50 + 2 * d : 81 + 2 * d] for d in range(9)] for p in (cam, cat)]
    return np.ascontiguousarray(np.array(v)[None])


@pytest.mark.parametrize("mode", SAME_MODES)
@pytest.mark.parametrize("k", [1, 4, 5, 11])
def test_same_size_modes_match_scipy_4d(image4, mode, k, device):
    w = np.random.default_rng(k).random(k)
    got = separable_filter(torch.from_numpy(image4).to(device), torch.from_numpy(w).to(device), mode)
    assert got.shape == image4.shape
    np.testing.assert_allclose(got.cpu().numpy(), _correlate(image4, (w, w), mode), rtol=0, atol=1e-12)


@pytest.mark.parametrize("mode", SAME_MODES)
@pytest.mark.parametrize("k", [2, 7])
def test_same_size_modes_match_scipy_5d(volume5, mode, k, device):
    w = np.random.default_rng(k).random(k)
    got = separable_filter(torch.from_numpy(volume5).to(device), torch.from_numpy(w).to(device), mode)
    assert got.shape == volume5.shape
    np.testing.assert_allclose(got.cpu().numpy(), _correlate(volume5, (w, w, w), mode), rtol=0, atol=1e-12)


@pytest.mark.parametrize("mode", ["symmetric", "reflect"])
def test_padding_wider_than_the_image_keeps_mirroring(mode):
    """A 9-tap window on axes of 1..4 samples: the pad exceeds the size (scipy folds the same way)."""
    rng = np.random.default_rng(3)
    w = rng.random(9)
    for h, wd in ((1, 4), (2, 3), (4, 1)):
        a = rng.random((1, 2, h, wd))
        got = separable_filter(torch.from_numpy(a), torch.from_numpy(w), mode).numpy()
        np.testing.assert_allclose(got, _correlate(a, (w, w), mode), rtol=0, atol=1e-12)


@pytest.mark.parametrize("k", [3, 4, 11])
def test_valid_is_the_unpadded_part_of_scipy(image4, volume5, k):
    w = np.random.default_rng(k).random(k)
    c = (k - 1) // 2
    for a in (image4, volume5) if k < 9 else (image4,):  # the volume is 9 deep
        ref = _correlate(a, (w,) * (a.ndim - 2), "zero")
        crop = (slice(None), slice(None)) + tuple(slice(c, n - (k - 1 - c)) for n in a.shape[2:])
        got = separable_filter(torch.from_numpy(a), torch.from_numpy(w))  # "valid" is the default
        np.testing.assert_allclose(got.numpy(), ref[crop], rtol=0, atol=1e-12)


@pytest.mark.parametrize("k", [3, 4, 11])
def test_full_matches_scipy_on_zero_padded_input(image4, volume5, k):
    """full[i] = sum_j w[j] x[i + j - (k - 1)]: scipy on x zero-padded by k - 1, shifted by the centre."""
    w = np.random.default_rng(k).random(k)
    c = (k - 1) // 2
    for a in (image4, volume5):
        s = a.ndim - 2
        padded = np.pad(a, [(0, 0), (0, 0)] + [(k - 1, k - 1)] * s)
        ref = _correlate(padded, (w,) * s, "zero")
        crop = (slice(None), slice(None)) + tuple(slice(c, c + n + k - 1) for n in a.shape[2:])
        got = separable_filter(torch.from_numpy(a), torch.from_numpy(w), "full")
        np.testing.assert_allclose(got.numpy(), ref[crop], rtol=0, atol=1e-12)


def test_full_with_the_flipped_window_is_the_adjoint_of_valid(image4):
    g = torch.Generator().manual_seed(0)
    x = torch.from_numpy(image4)
    w = torch.rand(5, generator=g, dtype=torch.float64)
    v = separable_filter(x, w)
    y = torch.rand(v.shape, generator=g, dtype=torch.float64)
    lhs = (v * y).sum()
    rhs = (x * separable_filter(y, w.flip(0), "full")).sum()
    torch.testing.assert_close(lhs, rhs, rtol=1e-12, atol=0)


@pytest.mark.parametrize("mode", ["symmetric", "zero"])
def test_prewitt_and_sobel_per_axis_equal_scipy(photos, mode, device):
    """Windows (smooth, [1, 0, -1]) give -scipy.ndimage.prewitt / 3 and -sobel / 4.

    scipy correlates with the unnormalised [-1, 0, 1] derivative and [1, 1, 1] (prewitt) or
    [1, 2, 1] (sobel) smoothing; our windows are the normalised smoothing and [1, 0, -1],
    i.e. x[i-1] - x[i+1] under correlation: the sign flips and the scale is 1/3 or 1/4.
    """
    img = photos["camera"][100:160, 200:270]
    x = torch.from_numpy(img)[None, None].to(device)
    smooth_p = torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64) / 3
    smooth_s = torch.tensor([1.0, 2.0, 1.0], dtype=torch.float64) / 4
    diff = torch.tensor([1.0, 0.0, -1.0], dtype=torch.float64)
    sm = SCIPY_MODE[mode]
    for axis, (pw, sw) in enumerate((((diff, smooth_p), (diff, smooth_s)), ((smooth_p, diff), (smooth_s, diff)))):
        # axis 0: derivative along H (rows); axis 1: along W (columns).
        prewitt = separable_filter(x, pw, mode)[0, 0].cpu().numpy()
        sobel = separable_filter(x, sw, mode)[0, 0].cpu().numpy()
        np.testing.assert_allclose(prewitt, -ndimage.prewitt(img, axis=axis, mode=sm) / 3, rtol=0, atol=1e-12)
        np.testing.assert_allclose(sobel, -ndimage.sobel(img, axis=axis, mode=sm) / 4, rtol=0, atol=1e-12)


@pytest.mark.parametrize("mode", PADDING_MODES)
def test_per_axis_windows_with_none_match_scipy(image4, volume5, mode):
    rng = np.random.default_rng(5)
    cases = [
        (image4, (rng.random(3), None)),
        (image4, (None, rng.random(4))),
        (image4, (rng.random(5), rng.random(2))),
        (volume5, (rng.random(3), None, rng.random(5))),
        (volume5, (None, rng.random(4), None)),
    ]
    for a, windows in cases:
        got = separable_filter(torch.from_numpy(a), [None if w is None else torch.from_numpy(w) for w in windows], mode)
        if mode == "valid":
            crop = [slice(None), slice(None)]
            for n, w in zip(a.shape[2:], windows):
                k = 1 if w is None else len(w)
                crop.append(slice((k - 1) // 2, n - k // 2))
            ref = _correlate(a, windows, "zero")[tuple(crop)]
        elif mode == "full":
            pads = [(0, 0), (0, 0)] + [(0, 0) if w is None else (len(w) - 1, len(w) - 1) for w in windows]
            crop = [slice(None), slice(None)]
            for n, w in zip(a.shape[2:], windows):
                k = 1 if w is None else len(w)
                crop.append(slice((k - 1) // 2, (k - 1) // 2 + n + k - 1))
            ref = _correlate(np.pad(a, pads), windows, "zero")[tuple(crop)]
        else:
            ref = _correlate(a, windows, mode)
        assert got.shape == ref.shape
        np.testing.assert_allclose(got.numpy(), ref, rtol=0, atol=1e-12)


def test_one_window_equals_the_same_window_per_axis_bit_for_bit(image4, volume5):
    w = gaussian_window(7, 1.5, dtype=torch.float32)
    for a in (image4, volume5):
        x = torch.from_numpy(a).float()
        for mode in PADDING_MODES:
            assert torch.equal(separable_filter(x, w, mode), separable_filter(x, [w] * (a.ndim - 2), mode))


def test_all_axes_none_is_the_identity(image4):
    x = torch.from_numpy(image4)
    assert torch.equal(separable_filter(x, (None, None), "symmetric"), x)


def test_windows_are_cast_to_the_input_dtype(image4):
    x = torch.from_numpy(image4)
    w64 = gaussian_window(5, 1.0, dtype=torch.float64)
    w32 = gaussian_window(5, 1.0, dtype=torch.float32)
    got = separable_filter(x, w32, "reflect")
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, separable_filter(x, w64.float().double(), "reflect"), rtol=0, atol=0)


def test_float32_cpu_output_is_channels_last_and_close_to_float64(image4):
    """The fast path filters in channels_last on CPU (the layout the SSIM kernel relies on)."""
    w = gaussian_window(11, 1.5)
    x = torch.from_numpy(image4)
    got = separable_filter(x.float(), w)
    assert got.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(got.double(), separable_filter(x, w.double()), rtol=0, atol=1e-6)


@pytest.mark.parametrize("mode", PADDING_MODES)
def test_gradcheck_per_mode(mode):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(1, 2, 5, 6, generator=g, dtype=torch.float64, requires_grad=True)
    wh = torch.rand(3, generator=g, dtype=torch.float64, requires_grad=True)
    ww = torch.rand(4, generator=g, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda a, b, c: separable_filter(a, (b, c), mode), (x, wh, ww))
    v = torch.rand(1, 1, 4, 5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda a, b: separable_filter(a, (b, None, b), mode), (v, wh))


def test_gaussian_window_equals_cv2():
    import cv2

    for k, s in ((11, 1.5), (7, 1.0), (49, 8.0)):
        ref = cv2.getGaussianKernel(k, s, cv2.CV_64F)[:, 0]
        np.testing.assert_allclose(gaussian_window(k, s, dtype=torch.float64).numpy(), ref, rtol=1e-14, atol=1e-17)


@pytest.mark.parametrize("factor", [2, 3])
def test_matlab_downsample_is_a_symmetric_box_filter_then_every_factor_th_sample(image4, factor):
    x = torch.from_numpy(image4)
    ref = separable_filter(x, box_window(factor, dtype=torch.float64), "symmetric")[:, :, ::factor, ::factor]
    torch.testing.assert_close(matlab_downsample(x, factor), ref, rtol=0, atol=1e-12)


def test_symmetric_pad_matches_numpy(image4):
    got = symmetric_pad(torch.from_numpy(image4), 2, 5).numpy()
    np.testing.assert_array_equal(got, np.pad(image4, [(0, 0), (0, 0), (2, 5), (2, 5)], mode="symmetric"))
    for left, right in ((0, 3), (37, 0), (36, 45), (40, 50)):  # up to the whole side, and past it
        got = symmetric_pad(torch.from_numpy(image4), left, right).numpy()
        np.testing.assert_array_equal(got, np.pad(image4, [(0, 0), (0, 0), (left, right), (left, right)], mode="symmetric"))


@pytest.mark.parametrize("k", [1, 3, 7, 11, 16])
def test_box_sum_equals_numpy_window_sums_and_is_exact_on_integers(image4, k):
    """Reference: numpy's sums over every k x k window (``sliding_window_view``)."""
    windows = lambda a: np.lib.stride_tricks.sliding_window_view(a, (k, k), axis=(2, 3))  # noqa: E731
    u8 = np.round(image4 * 255).astype(np.int64)
    got = box_sum(torch.from_numpy(u8).to(torch.int32), k)
    assert got.dtype == torch.int32 and got.shape == (2, 3, 38 - k, 46 - k)
    np.testing.assert_array_equal(got.numpy(), windows(u8).sum((-1, -2)))
    got_f = box_sum(torch.from_numpy(image4), k).numpy()
    np.testing.assert_allclose(got_f, windows(image4).sum((-1, -2)), rtol=1e-13, atol=0)


@pytest.mark.parametrize(
    "x, window, mode, exc, text",
    [
        (torch.zeros(2, 8, 8), torch.ones(3), "valid", ValueError, r"separable_filter: x must be 4-D or 5-D, got shape \(2, 8, 8\)"),
        (torch.zeros(1, 1, 8, 8), torch.ones(3), "same", ValueError, r"separable_filter: mode must be one of 'valid', .*got 'same'"),
        (torch.zeros(1, 1, 8, 8), [torch.ones(3)] * 3, "valid", ValueError, r"separable_filter: window must be .* sequence of 2 .*got a sequence of 3"),
        (torch.zeros(1, 1, 8, 8), torch.ones(3, 3), "valid", ValueError, r"separable_filter: each window must be a non-empty 1-D tensor or None, got shape \(3, 3\)"),
        (torch.zeros(1, 1, 8, 8), (torch.ones(3), [1, 0, -1]), "valid", ValueError, r"separable_filter: each window .*got \[1, 0, -1\]"),
        (torch.zeros(1, 1, 8, 8), (torch.ones(0), None), "zero", ValueError, r"separable_filter: each window .*got shape \(0,\)"),
    ],
)
def test_errors(x, window, mode, exc, text):
    with pytest.raises(exc, match=text):
        separable_filter(x, window, mode)


def _halve_by_pooling(x, mode):
    """Reference for halve: PyTorch's padding and average pooling, as pytorch-msssim (zero),
    torchmetrics (floor), piq (replicate_start) and TensorFlow (symmetric_end) halve."""
    import torch.nn.functional as F

    pool = F.avg_pool2d if x.dim() == 4 else F.avg_pool3d
    sizes = x.shape[2:]
    if mode == "zero":
        return pool(x, 2, padding=[s % 2 for s in sizes])
    if mode == "replicate_start" and any(s % 2 for s in sizes):
        x = F.pad(x, [1, 0] * len(sizes), mode="replicate")
    if mode == "symmetric_end":  # mirroring one sample past the edge repeats it
        x = F.pad(x, [p for s in reversed(sizes) for p in (0, s % 2)], mode="replicate")
    return pool(x, 2)


@pytest.mark.parametrize("mode", ["zero", "floor", "replicate_start", "symmetric_end"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_halve_equals_padding_and_average_pooling_bit_for_bit(mode, dtype):
    """Values bit for bit (the strided sums add in avg_pool's order) and gradients, on even and
    odd sides, images and volumes, with and without autograd."""
    from torchsim.ops import halve

    g = torch.Generator().manual_seed(0)
    for shape in [(2, 3, 16, 12), (2, 2, 9, 12), (1, 1, 8, 7), (1, 1, 7, 7), (1, 2, 5, 6, 7), (1, 1, 4, 6, 8)]:
        x = torch.rand(shape, generator=g, dtype=dtype)
        ref = _halve_by_pooling(x, mode)
        assert torch.equal(halve(x, mode), ref), (mode, shape)
        xg, xr = x.clone().requires_grad_(), x.clone().requires_grad_()
        out, ref = halve(xg, mode), _halve_by_pooling(xr, mode)
        assert torch.equal(out, ref)
        gout = torch.rand(out.shape, generator=g, dtype=dtype)
        out.backward(gout)
        ref.backward(gout)
        torch.testing.assert_close(xg.grad, xr.grad, rtol=1e-6 if dtype == torch.float32 else 1e-13, atol=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_halve_half_precision_sums_in_float32_as_avg_pool(dtype):
    from torchsim.ops import halve

    g = torch.Generator().manual_seed(1)
    for shape in [(2, 3, 16, 12), (2, 2, 9, 13)]:
        x = torch.rand(shape, generator=g).to(dtype)
        for mode in ("zero", "floor", "replicate_start", "symmetric_end"):
            out = halve(x, mode)
            assert out.dtype == dtype and torch.equal(out, _halve_by_pooling(x, mode)), (mode, shape)


@pytest.mark.parametrize("mode", ["zero", "floor", "replicate_start", "symmetric_end"])
def test_halve_is_differentiable_to_any_order_and_under_torch_func(mode):
    """Plain tensor ops in eager mode: double backward, torch.func and forward-mode AD work."""
    import torch.autograd.forward_ad as fwAD
    from torch.autograd import gradgradcheck

    from torchsim.ops import halve

    x = torch.rand(1, 2, 7, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda t: halve(t, mode), (x,)) and gradgradcheck(lambda t: halve(t, mode), (x,))
    grad = torch.func.grad(lambda t: halve(t, mode).sum())(x.detach())
    torch.testing.assert_close(grad, torch.autograd.grad(_halve_by_pooling(x, mode).sum(), x)[0])
    tangent = torch.rand_like(x)
    with fwAD.dual_level():
        jvp = fwAD.unpack_dual(halve(fwAD.make_dual(x.detach(), tangent), mode)).tangent
    torch.testing.assert_close(jvp, _halve_by_pooling(tangent, mode))
