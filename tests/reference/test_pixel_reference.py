"""MSE, PSNR, cosine similarity and rgb_to_y against their references on skimage.data photographs.

References, evaluated at test time: ``skimage.metrics.mean_squared_error`` and
``peak_signal_noise_ratio``; numpy ``dot(a, b) / (norm(a) norm(b))``; BasicSR's
``to_y_channel`` (``bgr2ycbcr(img / 255, y_only=True) * 255``) and ``calculate_psnr``, ported in
tests/reference/ports.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio

import torchsim
from tests.helpers import DISTORTIONS, PHOTOS, bicubic, crop, photo_pair, to_nchw, u8
from tests.reference.ports import basicsr_calculate_psnr, basicsr_to_y_channel

CROP = dict(h=120, w=157, top=41, left=29)


def _pair(photos, name, distortion):
    return photo_pair(photos[name], distortion, **CROP)


def _batch(arrays, dtype=None) -> torch.Tensor:
    t = torch.cat([to_nchw(a) for a in arrays])
    return t if dtype is None else t.to(dtype)


CASES = [(n, d) for n in PHOTOS for d in sorted(DISTORTIONS)]


# --------------------------------------------------------------------------- MSE


@pytest.mark.parametrize("name, distortion", CASES)
def test_mse_equals_skimage(photos, name, distortion, device):
    a, b = _pair(photos, name, distortion)
    expected = mean_squared_error(a, b)
    actual = torchsim.mse(to_nchw(a, device=device), to_nchw(b, device=device)).cpu()
    assert actual.dtype == torch.float64
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=0)
    # float32 at float32 precision
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    actual32 = torchsim.mse(to_nchw(a32, device=device), to_nchw(b32, device=device)).cpu()
    assert actual32.dtype == torch.float32
    expected32 = mean_squared_error(a32.astype(np.float64), b32.astype(np.float64))
    torch.testing.assert_close(actual32.double(), torch.tensor(expected32, dtype=torch.float64), rtol=1e-5, atol=0)
    # uint8 is read as 0..255 (skimage casts to float64 first, no wrap-around)
    au, bu = u8(a), u8(b)
    expected_u8 = mean_squared_error(au, bu)
    torch.testing.assert_close(
        torchsim.mse(to_nchw(au, device=device), to_nchw(bu, device=device)).cpu().double(),
        torch.tensor(expected_u8, dtype=torch.float64), rtol=1e-6, atol=0,
    )


def test_mse_batch_reductions_equal_skimage(photos):
    pairs = [_pair(photos, n, d) for n, d in [("astronaut", "noise"), ("coffee", "jpeg"), ("chelsea", "blur")]]
    x, y = _batch([a for a, _ in pairs]), _batch([b for _, b in pairs])
    expected = torch.tensor([mean_squared_error(a, b) for a, b in pairs], dtype=torch.float64)
    torch.testing.assert_close(torchsim.mse(x, y, reduction="none"), expected, rtol=1e-12, atol=0)
    torch.testing.assert_close(torchsim.mse(x, y), expected.mean(), rtol=1e-12, atol=0)
    torch.testing.assert_close(torchsim.mse(x, y, reduction="sum"), expected.sum(), rtol=1e-12, atol=0)


# --------------------------------------------------------------------------- PSNR


@pytest.mark.parametrize("name, distortion", CASES)
def test_psnr_uint8_equals_skimage(photos, name, distortion, device):
    """uint8: skimage's data_range defaults to 255 (the dtype range); so does ours."""
    a, b = _pair(photos, name, distortion)
    au, bu = u8(a), u8(b)
    expected = peak_signal_noise_ratio(au, bu)
    actual = torchsim.psnr(to_nchw(au, device=device), to_nchw(bu, device=device)).cpu()
    assert actual.dtype == torch.float32
    torch.testing.assert_close(actual.double(), torch.tensor(expected, dtype=torch.float64), rtol=1e-6, atol=1e-5)
    again = torchsim.psnr(to_nchw(au, device=device), to_nchw(bu, device=device), data_range=255.0).cpu()
    torch.testing.assert_close(actual, again)


@pytest.mark.parametrize("name, distortion", CASES)
def test_psnr_float_equals_skimage(photos, name, distortion, device):
    a, b = _pair(photos, name, distortion)
    expected = peak_signal_noise_ratio(a, b, data_range=1.0)
    actual = torchsim.psnr(to_nchw(a, device=device), to_nchw(b, device=device), data_range=1.0).cpu()
    assert actual.dtype == torch.float64
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=0)
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    actual32 = torchsim.psnr(to_nchw(a32, device=device), to_nchw(b32, device=device), data_range=1.0).cpu()
    expected32 = peak_signal_noise_ratio(a32.astype(np.float64), b32.astype(np.float64), data_range=1.0)
    torch.testing.assert_close(actual32.double(), torch.tensor(expected32, dtype=torch.float64), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("data_range", [2.0, 255.0, 0.5])
def test_psnr_data_range_equals_skimage(photos, data_range):
    a, b = _pair(photos, "coffee", "noise")
    a, b = a * data_range, b * data_range
    expected = peak_signal_noise_ratio(a, b, data_range=data_range)
    actual = torchsim.psnr(to_nchw(a), to_nchw(b), data_range=data_range)
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=0)


def test_psnr_per_image_data_range_and_mean_of_psnrs(photos):
    """reduction="mean" averages per-image PSNRs (as SR papers report), with one range per image."""
    ranges = [1.0, 255.0, 2.0]
    pairs = [_pair(photos, n, d) for n, d in [("astronaut", "noise"), ("coffee", "jpeg"), ("chelsea", "blur")]]
    x = _batch([a * r for (a, _), r in zip(pairs, ranges)])
    y = _batch([b * r for (_, b), r in zip(pairs, ranges)])
    expected = torch.tensor(
        [peak_signal_noise_ratio(a * r, b * r, data_range=r) for (a, b), r in zip(pairs, ranges)], dtype=torch.float64
    )
    dr = torch.tensor(ranges, dtype=torch.float64)
    torch.testing.assert_close(torchsim.psnr(x, y, data_range=dr, reduction="none"), expected, rtol=1e-12, atol=0)
    torch.testing.assert_close(torchsim.psnr(x, y, data_range=dr), expected.mean(), rtol=1e-12, atol=0)


def test_psnr_identical_is_inf_like_skimage(photos):
    a = crop(photos["chelsea"], **CROP)
    with np.errstate(divide="ignore"):
        expected = peak_signal_noise_ratio(a, a, data_range=1.0)
    assert expected == np.inf
    assert torchsim.psnr(to_nchw(a), to_nchw(a), data_range=1.0).item() == float("inf")


# --------------------------------------------------------------------------- pooled PSNR vs torchmetrics


def test_psnr_pooled_equals_torchmetrics_on_a_batch(photos, device):
    from torchmetrics.functional.image import peak_signal_noise_ratio as tm_psnr

    pairs = [_pair(photos, n, d) for n, d in [("astronaut", "noise"), ("coffee", "jpeg"), ("chelsea", "blur")]]
    x, y = _batch([a for a, _ in pairs]).to(device), _batch([b for _, b in pairs]).to(device)
    # torchmetrics converts to base 10 with a float32 log(10) (relative error 4e-8), even for float64
    torch.testing.assert_close(torchsim.psnr_pooled(x, y, data_range=1.0), tm_psnr(x, y, data_range=1.0), rtol=1e-7, atol=0)
    xf, yf = x.float(), y.float()
    torch.testing.assert_close(torchsim.psnr_pooled(xf, yf, data_range=1.0), tm_psnr(xf, yf, data_range=1.0), rtol=1e-5, atol=0)
    # uint8 (default data_range 255); torchmetrics is fed the same values as floats (uint8 differences wrap)
    xu, yu = _batch([u8(a) for a, _ in pairs]).to(device), _batch([u8(b) for _, b in pairs]).to(device)
    torch.testing.assert_close(
        torchsim.psnr_pooled(xu, yu), tm_psnr(xu.double(), yu.double(), data_range=255.0).float(), rtol=1e-5, atol=0
    )
    # the PSNR of skimage's pooled MSE (images of one size), below the mean of skimage's per-image PSNRs
    pooled = torchsim.psnr_pooled(x, y, data_range=1.0).item()
    assert pooled == pytest.approx(-10 * np.log10(np.mean([mean_squared_error(a, b) for a, b in pairs])), rel=1e-12)
    assert pooled < np.mean([peak_signal_noise_ratio(a, b, data_range=1.0) for a, b in pairs]) - 0.1


def test_psnr_pooled_module_equals_torchmetrics_streamed_over_an_sr_folder(photos):
    """Whole photos of three sizes with bicubic x4 (SR baseline), noise and JPEG copies, streamed in
    uneven batches: PSNRPooled.compute() equals torchmetrics' PeakSignalNoiseRatio over the same
    batches, and the pooled MSE computed by hand with skimage."""
    from torchmetrics.image import PeakSignalNoiseRatio

    batches = []
    for name in ("astronaut", "coffee", "chelsea"):  # 512x512, 400x600, 300x451: one size per batch
        ref = photos[name]
        tests = [bicubic(ref), DISTORTIONS["noise"](ref), DISTORTIONS["jpeg"](ref)]
        u8_ref = _batch([u8(ref)] * 3)
        u8_test = _batch([u8(t) for t in tests])
        batches += [(u8_test[:1], u8_ref[:1]), (u8_test[1:], u8_ref[1:])]
    ours, mean = torchsim.PSNRPooled(), torchsim.PSNR()
    theirs = PeakSignalNoiseRatio(data_range=255.0)  # its state and result are float32
    sse, values = 0.0, 0
    for x, y in batches:
        batch_value = ours(x, y)
        mean.update(x, y)
        torch.testing.assert_close(batch_value, theirs(x.float(), y.float()), rtol=1e-5, atol=0)
        for a, b in zip(x, y):  # float64 by hand, with skimage's MSE
            sse += mean_squared_error(a.numpy(), b.numpy()) * a.numel()
            values += a.numel()
    assert ours.compute().dtype == torch.float64
    torch.testing.assert_close(ours.compute().float(), theirs.compute(), rtol=1e-5, atol=0)
    # per-image MSEs of uint8 images are computed in float32, then pooled in float64
    assert ours.compute().item() == pytest.approx(10 * np.log10(255.0**2 / (sse / values)), rel=1e-6)
    # the documented gap: mean of per-image PSNRs (SR papers) vs torchmetrics' pooled number
    assert mean.compute().item() - ours.compute().item() > 0.5


# --------------------------------------------------------------------------- cosine similarity


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize("name, distortion", CASES)
def test_cosine_equals_numpy(photos, name, distortion, device):
    a, b = _pair(photos, name, distortion)
    expected = _cosine(a, b)
    actual = torchsim.cosine_similarity(to_nchw(a, device=device), to_nchw(b, device=device)).cpu()
    assert actual.dtype == torch.float64
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=0)
    # centred images give a value far from 1, which exercises the sign and the norms
    ac, bc = a - a.mean(), b - b.mean()
    torch.testing.assert_close(
        torchsim.cosine_similarity(to_nchw(ac, device=device), to_nchw(bc, device=device)).cpu(),
        torch.tensor(_cosine(ac, bc), dtype=torch.float64), rtol=1e-10, atol=1e-12,
    )
    au, bu = u8(a), u8(b)
    torch.testing.assert_close(
        torchsim.cosine_similarity(to_nchw(au, device=device), to_nchw(bu, device=device)).cpu().double(),
        torch.tensor(_cosine(au, bu), dtype=torch.float64), rtol=1e-6, atol=1e-6,
    )


def test_cosine_batch_equals_numpy(photos):
    pairs = [_pair(photos, n, d) for n, d in [("astronaut", "blur"), ("coffee", "noise"), ("chelsea", "jpeg")]]
    x, y = _batch([a for a, _ in pairs]), _batch([b for _, b in pairs])
    expected = torch.tensor([_cosine(a, b) for a, b in pairs], dtype=torch.float64)
    torch.testing.assert_close(torchsim.cosine_similarity(x, y, reduction="none"), expected, rtol=1e-12, atol=0)
    # float32 inputs, float32 result
    out32 = torchsim.cosine_similarity(x.float(), y.float(), reduction="none")
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32.double(), expected, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- rgb_to_y vs BasicSR


@pytest.mark.parametrize("distortion", [None, *sorted(DISTORTIONS)])
@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea"])
def test_rgb_to_y_equals_basicsr(photos, name, distortion):
    a = crop(photos[name], **CROP)
    if distortion is not None:
        a = DISTORTIONS[distortion](a)
    a255 = np.round(a * 255)
    expected = torch.from_numpy(basicsr_to_y_channel(a255[..., ::-1], np.float64)[..., 0])[None, None]
    # float64 on 0..255
    y64 = torchsim.rgb_to_y(to_nchw(a255), data_range=255.0)
    assert y64.shape == (1, 1, *a.shape[:2]) and y64.dtype == torch.float64
    torch.testing.assert_close(y64, expected, rtol=1e-12, atol=1e-10)
    # uint8 (data_range defaults to 255), float32 result, not rounded
    yu = torchsim.rgb_to_y(to_nchw(a255.astype(np.uint8)))
    assert yu.dtype == torch.float32
    torch.testing.assert_close(yu.double(), expected, rtol=1e-6, atol=1e-4)
    assert not torch.equal(yu, yu.round())
    # on the [0, 1] scale the result is the same luma divided by 255
    y1 = torchsim.rgb_to_y(to_nchw(a255 / 255.0), data_range=1.0)
    torch.testing.assert_close(y1, expected / 255.0, rtol=1e-12, atol=1e-12)


def test_rgb_to_y_range_and_batch(photos):
    """Black maps to 16/255 L and white to 235/255 L; a batch with per-image ranges equals single calls."""
    white = torch.ones(1, 3, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(torchsim.rgb_to_y(0 * white, data_range=1.0), torch.full((1, 1, 4, 4), 16 / 255, dtype=torch.float64))
    torch.testing.assert_close(torchsim.rgb_to_y(white, data_range=1.0), torch.full((1, 1, 4, 4), 235 / 255, dtype=torch.float64))
    a = crop(photos["astronaut"], **CROP)
    b = crop(photos["coffee"], **CROP)
    x = torch.cat([to_nchw(a), to_nchw(b * 255)])
    out = torchsim.rgb_to_y(x, data_range=torch.tensor([1.0, 255.0], dtype=torch.float64))
    torch.testing.assert_close(out[:1], torchsim.rgb_to_y(to_nchw(a), data_range=1.0))
    torch.testing.assert_close(out[1:], torchsim.rgb_to_y(to_nchw(b * 255), data_range=255.0))


def test_psnr_on_y_channel_equals_basicsr_recipe(photos):
    """BasicSR calculate_psnr(test_y_channel=True): PSNR of the float Y channels with L = 255
    (its Y channel computed in float64 here; BasicSR itself works in float32)."""
    a = u8(crop(photos["astronaut"], **CROP))
    b = u8(DISTORTIONS["jpeg"](crop(photos["astronaut"], **CROP)))
    expected = basicsr_calculate_psnr(a[..., ::-1], b[..., ::-1], crop_border=0, test_y_channel=True, y_dtype=np.float64)
    x, y = to_nchw(a.astype(np.float64)), to_nchw(b.astype(np.float64))
    actual = torchsim.psnr(torchsim.rgb_to_y(x, data_range=255.0), torchsim.rgb_to_y(y, data_range=255.0), data_range=255.0)
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=torch.float64), rtol=1e-10, atol=0)
