"""GMSD against piq and the authors' MATLAB code on skimage.data photographs.

References, evaluated at test time:

* ``piq.gmsd(x, y, data_range=L, reduction="none")`` (piq 0.8) and ``piq.GMSDLoss``;
* ``GMSD.m`` of Xue, Zhang, Mou and Bovik (the code released with the paper,
  http://www.comp.polyu.edu.hk/~cslzhang/IQA/GMSD/GMSD.htm), ported below line by line
  with MATLAB's ``conv2(..., 'same')`` window anchoring and ``std2`` (divides by n - 1).

Generic properties of every registry record (min size, data_range, differentiability,
module and loss signatures) are checked by ``tests/test_registry.py``.
"""

from __future__ import annotations

import math

import numpy as np
import piq
import pytest
import torch
from scipy.signal import convolve2d
from skimage.color import rgb2gray

import torchsim
from tests.helpers import DISTORTIONS, to_nchw

PHOTOS = ("astronaut", "coffee", "chelsea", "camera")
CASES = [(n, d) for n in PHOTOS for d in sorted(DISTORTIONS)]


def _crop(img: np.ndarray, h: int, w: int) -> np.ndarray:
    return np.ascontiguousarray(img[41 : 41 + h, 29 : 29 + w])


def _pair(photos, name, distortion, h=121, w=158):
    """A crop (odd height, even width: the 2x2 mean pads one side) and its distorted copy."""
    a = _crop(photos[name], h, w)
    return a, DISTORTIONS[distortion](a)


def _piq(a: torch.Tensor, b: torch.Tensor, data_range=1.0) -> torch.Tensor:
    """piq.gmsd per image, in float64 (piq reads the images as they are: no uint8 rule)."""
    return piq.gmsd(a.double(), b.double(), data_range=data_range, reduction="none")


def _close64(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """float64 agreement: a few ulps of the summations (piq filters in one 3x3 pass, we in two)."""
    torch.testing.assert_close(actual, expected, rtol=1e-12, atol=1e-15)


def _u8(a: np.ndarray) -> np.ndarray:
    return np.round(a * 255).astype(np.uint8)


# --------------------------------------------------------------------------- the authors' GMSD.m


def _conv2_same(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """MATLAB ``conv2(img, kernel, 'same')``: the full convolution from row/column ``floor(k/2)``
    (scipy's ``mode='same'`` centres even kernels one sample earlier)."""
    full = convolve2d(img, kernel, mode="full")
    kh, kw = kernel.shape
    return full[kh // 2 : kh // 2 + img.shape[0], kw // 2 : kw // 2 + img.shape[1]]


def _gmsd_m(y1: np.ndarray, y2: np.ndarray) -> float:
    """GMSD.m on two grey images on 0..255 (T = 170), line by line."""
    t = 170.0
    dx = np.array([[1, 0, -1], [1, 0, -1], [1, 0, -1]], dtype=np.float64) / 3
    dy = dx.T
    ave = np.ones((2, 2)) / 4  # fspecial('average', 2)
    y1 = _conv2_same(y1, ave)[::2, ::2]
    y2 = _conv2_same(y2, ave)[::2, ::2]
    g1 = np.sqrt(_conv2_same(y1, dx) ** 2 + _conv2_same(y1, dy) ** 2)
    g2 = np.sqrt(_conv2_same(y2, dx) ** 2 + _conv2_same(y2, dy) ** 2)
    quality_map = (2 * g1 * g2 + t) / (g1**2 + g2**2 + t)
    return float(np.std(quality_map, ddof=1))  # std2


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize("name, distortion", CASES)
def test_equals_piq_on_photographs(photos, name, distortion):
    a, b = _pair(photos, name, distortion)
    x, y = to_nchw(a), to_nchw(b)
    expected = _piq(x, y)
    got = torchsim.gmsd(x, y, data_range=1.0, reduction="none")
    assert got.dtype == torch.float64 and got.shape == (1,)
    assert expected.item() > 0.01  # a real distortion, not a trivially small number
    _close64(got, expected)
    # float32 at float32 precision (piq evaluated in float64 on the same float32 values)
    x32, y32 = x.float(), y.float()
    got32 = torchsim.gmsd(x32, y32, data_range=1.0, reduction="none")
    assert got32.dtype == torch.float32
    torch.testing.assert_close(got32.double(), _piq(x32, y32), rtol=2e-6, atol=0)
    # uint8 is read as 0..255 with data_range 255 by default
    xu, yu = to_nchw(_u8(a)), to_nchw(_u8(b))
    got_u8 = torchsim.gmsd(xu, yu, reduction="none")
    assert got_u8.dtype == torch.float32
    torch.testing.assert_close(got_u8.double(), _piq(xu, yu, data_range=255.0), rtol=2e-6, atol=0)


@pytest.mark.parametrize("name", ["astronaut", "chelsea"])
@pytest.mark.parametrize("h, w", [(120, 158), (121, 157), (512, 511)])
def test_grey_images_and_every_parity_of_the_sides(photos, name, h, w):
    """Grey (one-channel) input is used as is; odd and even sides pad the 2x2 mean as piq does."""
    a = _crop(rgb2gray(photos[name]), h, w)
    for distortion in sorted(DISTORTIONS):
        b = DISTORTIONS[distortion](a)
        x, y = to_nchw(a), to_nchw(b)
        _close64(torchsim.gmsd(x, y, data_range=1.0, reduction="none"), _piq(x, y))


@pytest.mark.parametrize("name, distortion", [("camera", "noise"), ("coffee", "jpeg"), ("astronaut", "blur")])
@pytest.mark.parametrize("h, w", [(120, 158), (121, 157)])
def test_equals_the_authors_matlab_code_up_to_std2(photos, name, distortion, h, w):
    """GMSD.m on the same luma on 0..255: std2 divides by n - 1, so it is ours times sqrt(n / (n - 1))."""
    a, b = _pair(photos, name, distortion, h, w)
    x, y = to_nchw(a * 255), to_nchw(b * 255)
    lx = x[0, 0].numpy() if x.shape[1] == 1 else np.tensordot([0.299, 0.587, 0.114], x[0].numpy(), axes=1)
    ly = y[0, 0].numpy() if y.shape[1] == 1 else np.tensordot([0.299, 0.587, 0.114], y[0].numpy(), axes=1)
    n = math.ceil(h / 2) * math.ceil(w / 2)
    ours = torchsim.gmsd(x, y, data_range=255.0).item()
    assert ours * math.sqrt(n / (n - 1)) == pytest.approx(_gmsd_m(lx, ly), rel=1e-12)


def test_batch_reductions_and_per_image_data_range(photos):
    ranges = [1.0, 255.0, 2.0, 65535.0]
    cases = [("astronaut", "noise"), ("coffee", "jpeg"), ("chelsea", "blur"), ("astronaut", "jpeg")]
    pairs = [_pair(photos, n, d) for n, d in cases]
    x = torch.cat([to_nchw(a * r) for (a, _), r in zip(pairs, ranges)])
    y = torch.cat([to_nchw(b * r) for (_, b), r in zip(pairs, ranges)])
    expected = torch.cat([_piq(to_nchw(a * r), to_nchw(b * r), data_range=r) for (a, b), r in zip(pairs, ranges)])
    dr = torch.tensor(ranges, dtype=torch.float64)
    _close64(torchsim.gmsd(x, y, data_range=dr, reduction="none"), expected)
    _close64(torchsim.gmsd(x, y, data_range=dr), expected.mean())
    _close64(torchsim.gmsd(x, y, data_range=dr, reduction="sum"), expected.sum())
    # one float range for the batch equals piq on the batch
    xb, yb = x[:1].repeat(2, 1, 1, 1), y[:1].repeat(2, 1, 1, 1)
    _close64(torchsim.gmsd(xb, yb, data_range=1.0, reduction="none"), _piq(xb, yb))


def test_the_constant_c_equals_piqs_t(photos):
    a, b = _pair(photos, "coffee", "noise")
    x, y = to_nchw(a), to_nchw(b)
    for c in (0.0026, 1e-4, 0.05):
        expected = piq.gmsd(x, y, data_range=1.0, t=c, reduction="none")
        _close64(torchsim.gmsd(x, y, data_range=1.0, c=c, reduction="none"), expected)


@pytest.mark.parametrize("data_range", [1e30, 1e-30])
def test_units_do_not_matter(photos, data_range):
    """float32 images on any scale give the numbers of [0, 1] images (normalised before squaring)."""
    a, b = _pair(photos, "chelsea", "noise")
    x, y = to_nchw(a).float(), to_nchw(b).float()
    expected = torchsim.gmsd(x, y, data_range=1.0)
    got = torchsim.gmsd(x * data_range, y * data_range, data_range=data_range)
    assert torch.isfinite(got)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)


def test_identical_images_give_exactly_zero_and_nan_pixels_give_nan(photos):
    a, b = _pair(photos, "astronaut", "jpeg")
    x, y = torch.cat([to_nchw(a)] * 3), torch.cat([to_nchw(b)] * 3)
    assert torchsim.gmsd(x, x, data_range=1.0, reduction="sum").item() == 0.0
    y[0, 1, 5, 7] = float("nan")
    y[1, 0, 0, 0] = float("inf")
    v = torchsim.gmsd(x, y, data_range=1.0, reduction="none")
    assert torch.isnan(v[:2]).all() and torch.isfinite(v[2])


def test_half_inputs_compute_in_float32(photos):
    a, b = _pair(photos, "coffee", "blur")
    x, y = to_nchw(a).float(), to_nchw(b).float()
    for dtype in (torch.float16, torch.bfloat16):
        xh, yh = x.to(dtype), y.to(dtype)
        got = torchsim.gmsd(xh, yh, data_range=1.0, reduction="none")
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, torchsim.gmsd(xh.float(), yh.float(), data_range=1.0, reduction="none"))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = torchsim.gmsd(x, y, data_range=1.0)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, torchsim.gmsd(x, y, data_range=1.0))
    xc, yc = x.to(memory_format=torch.channels_last), y.to(memory_format=torch.channels_last)
    torch.testing.assert_close(torchsim.gmsd(xc, yc, data_range=1.0), torchsim.gmsd(x, y, data_range=1.0))


def test_device(device, photos):
    a, b = _pair(photos, "astronaut", "noise")
    x, y = to_nchw(a).to(device), to_nchw(b).to(device)
    got = torchsim.gmsd(x, y, data_range=1.0, reduction="none")
    assert got.device == x.device
    _close64(got.cpu(), _piq(x, y).cpu())
    got32 = torchsim.gmsd(x.float(), y.float(), data_range=1.0, reduction="none")
    torch.testing.assert_close(got32.cpu().double(), _piq(x.float(), y.float()).cpu(), rtol=2e-6, atol=0)


def test_compile_fullgraph_equals_eager():
    torch._dynamo.reset()
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(2, 3, 17, 16, generator=g), torch.rand(2, 3, 17, 16, generator=g)
    compiled = torch.compile(torchsim.gmsd, backend="aot_eager", fullgraph=True)
    eager = torchsim.gmsd(x, y, data_range=1.0, reduction="none")
    torch.testing.assert_close(compiled(x, y, data_range=1.0, reduction="none"), eager)


# --------------------------------------------------------------------------- module and loss


def test_module_and_loss_behave_as_the_function(photos):
    pairs = [_pair(photos, n, d) for n, d in [("astronaut", "noise"), ("coffee", "jpeg"), ("chelsea", "blur")]]
    x = torch.cat([to_nchw(a) for a, _ in pairs])
    y = torch.cat([to_nchw(b) for _, b in pairs])
    per_image = torchsim.gmsd(x, y, data_range=1.0, reduction="none")
    _close64(per_image, _piq(x, y))

    metric = torchsim.GMSD(data_range=1.0)
    assert isinstance(metric, torchsim.modules.Metric) and metric.record is torchsim.registry.get("gmsd")
    torch.testing.assert_close(metric(x, y), per_image.mean(), rtol=0, atol=0)
    for i in range(3):  # streaming: the mean over every image seen, batch by batch
        metric.update(x[i : i + 1], y[i : i + 1])
    torch.testing.assert_close(metric.compute(), per_image.mean(), rtol=1e-12, atol=0)
    metric.reset()
    assert repr(metric) == "GMSD(data_range=1.0, c=0.00261437908496732, reduction='mean')"

    loss_fn = torchsim.GMSDLoss(data_range=1.0)
    assert isinstance(loss_fn, torchsim.losses.Loss)
    torch.testing.assert_close(loss_fn(x, y), per_image.mean(), rtol=0, atol=0)
    summed = torchsim.GMSDLoss(data_range=1.0, reduction="sum")(x, y)
    torch.testing.assert_close(summed, per_image.sum(), rtol=0, atol=0)
    _close64(loss_fn(x, y), piq.GMSDLoss(data_range=1.0)(x, y))
    # the loss's gradient is piq's wherever piq's is defined (piq's is NaN near flat blocks, ours 0)
    xg = x.clone().requires_grad_(True)
    loss_fn(xg, y).backward()
    xp = x.clone().requires_grad_(True)
    piq.GMSDLoss(data_range=1.0)(xp, y).backward()
    defined = torch.isfinite(xp.grad)
    assert torch.isfinite(xg.grad).all() and defined.double().mean() > 0.9
    torch.testing.assert_close(xg.grad[defined], xp.grad[defined], rtol=1e-9, atol=1e-15)

    with pytest.raises(TypeError, match=r"GMSDLoss: unexpected keyword argument 't'"):
        torchsim.GMSDLoss(data_range=1.0, t=0.1)
    with pytest.raises(ValueError, match=r"GMSD: data_range must be a positive finite number"):
        torchsim.GMSD(data_range=-1.0)


# --------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("shape", [(2, 3, 7, 8), (1, 1, 9, 6)])
def test_gradcheck_float64(shape):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(*shape, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.rand(*shape, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: torchsim.gmsd(a, b, data_range=1.0, reduction="none"), (x, y))


def test_finite_gradients_where_piqs_are_nan(photos):
    """Flat regions (zero gradient magnitude) and zero deviation (identical images) back-propagate
    zeros, not the NaN of a plain sqrt (piq.gmsd's gradient is NaN in all three cases)."""
    a = to_nchw(_crop(photos["coffee"], 32, 33))
    const = torch.full_like(a, 0.5)
    cases = {
        "identical": (a, a.clone()),
        "constant": (const, const.clone()),
        "constant vs other constant": (const, torch.full_like(a, 0.2)),
        "photo vs constant": (a, const),
        "flat block in a photo": (torch.cat([a[..., :16], const[..., 16:]], -1), a),
        "zero images": (torch.zeros_like(a), torch.zeros_like(a)),
    }
    for what, (x, y) in cases.items():
        x = x.clone().requires_grad_(True)
        y = y.clone().requires_grad_(True)
        torchsim.GMSDLoss(data_range=1.0)(x, y).backward()
        assert torch.isfinite(x.grad).all() and torch.isfinite(y.grad).all(), what
    xp = a.clone().requires_grad_(True)
    piq.gmsd(xp, a, data_range=1.0).backward()
    assert torch.isnan(xp.grad).any()  # the failure this guards against is real


# --------------------------------------------------------------------------- errors


def test_bad_input_names_function_argument_and_value():
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(TypeError, match=r"^gmsd: data_range is required for floating inputs"):
        torchsim.gmsd(x, x)
    with pytest.raises(ValueError, match=r"^gmsd: x must have 1 or 3 channels \(dim 1\), got shape \(1, 4, 8, 8\)"):
        torchsim.gmsd(torch.rand(1, 4, 8, 8), torch.rand(1, 4, 8, 8), data_range=1.0)
    with pytest.raises(ValueError, match=r"^gmsd: x must be 4-D \(N, C, H, W\), got shape \(1, 3, 4, 8, 8\)"):
        torchsim.gmsd(torch.rand(1, 3, 4, 8, 8), torch.rand(1, 3, 4, 8, 8), data_range=1.0)
    with pytest.raises(ValueError, match=r"^gmsd: x and y must have the same shape"):
        torchsim.gmsd(x, x[..., :7], data_range=1.0)
    with pytest.raises(ValueError, match=r"^gmsd: c must be a finite number > 0, got 0"):
        torchsim.gmsd(x, x, data_range=1.0, c=0)
    with pytest.raises(ValueError, match=r"^gmsd: reduction must be one of 'mean', 'sum', 'none', got 'avg'"):
        torchsim.gmsd(x, x, data_range=1.0, reduction="avg")
    with pytest.raises(ValueError, match=r"^gmsd: data_range must be positive and finite"):
        torchsim.gmsd(x, x, data_range=float("inf"))
