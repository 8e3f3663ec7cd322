"""torchsim.ops.color on its own, against the references each operator reproduces.

References, all computed at test time: ``skimage.util.img_as_ubyte`` (quantisation),
Pillow ``Image.convert("L")`` (luma), ``cv2.cvtColor(..., COLOR_RGB2GRAY)`` (grey),
``skimage.color.rgb2ycbcr`` (MATLAB's ``rgb2ycbcr`` matrix and offset, which BasicSR's
``bgr2ycbcr(y_only=True)`` also uses) and pixelmatch-py 0.4.0's own colour functions
(``pixelmatch.utils.blend`` / ``rgb2y`` / ``rgb2i`` / ``rgb2q`` / ``color_delta``), on
real photographs from ``skimage.data``.
"""

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from pixelmatch import utils as pm
from skimage.color import rgb2ycbcr
from skimage.util import img_as_ubyte

from tests.helpers import DISTORTIONS, jpeg, to_nchw
from torchsim.ops import blend_white, matlab_y, opencv_gray, pil_luma, quantize_u8, yiq, yiq_distance, yiq_y

RGB_PHOTOS = ["astronaut", "coffee", "chelsea"]


def _u8(img: np.ndarray) -> np.ndarray:
    return np.round(img * 255).astype(np.uint8)


def _near_half_steps(dtype, ulps=40) -> np.ndarray:
    """Every value within ``ulps`` steps of each rounding boundary ``(k + 0.5) / 255`` in ``dtype``."""
    mid = ((np.arange(255) + 0.5) / 255).astype(dtype)
    out = [mid]
    up, down = mid.copy(), mid.copy()
    for _ in range(ulps):
        up, down = np.nextafter(up, dtype(2)), np.nextafter(down, dtype(-1))
        out += [up, down]
    return np.concatenate(out + [np.array([0, 1], dtype=dtype)])


# --------------------------------------------------------------------------- quantize_u8


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_quantize_equals_img_as_ubyte_at_every_rounding_boundary(dtype):
    v = _near_half_steps(dtype)
    v = v[(v >= 0) & (v <= 1)]
    got = quantize_u8(torch.from_numpy(v)).numpy()
    np.testing.assert_array_equal(got, img_as_ubyte(v))


def test_quantize_half_is_exact():
    """float16 · 255 is exact in float32: the result is the exact round-half-even of x · 255
    (img_as_ubyte multiplies float16 in float16 and can round before rounding)."""
    v = np.arange(2**16, dtype=np.uint16).view(np.float16)
    v = v[(v >= 0) & (v <= 1)]  # every float16 in [0, 1]
    exact = np.rint(v.astype(np.float64) * 255).astype(np.uint8)
    np.testing.assert_array_equal(quantize_u8(torch.from_numpy(v)).numpy(), exact)
    b = torch.from_numpy(v).to(torch.bfloat16)
    exact_b = np.rint(b.double().numpy() * 255).astype(np.uint8)
    np.testing.assert_array_equal(quantize_u8(b).numpy(), exact_b)


def test_quantize_float32_boundary_values_round_in_float32():
    # 0.5 / 255 in float32 times 255 is exactly 0.5 in float32 (rounded to even: 0), as
    # img_as_ubyte computes; the exact float64 product is just above 0.5 (would give 1)
    v = np.float32(0.5 / 255)
    assert np.float64(v) * 255 > 0.5
    assert quantize_u8(torch.tensor([v])).item() == img_as_ubyte(np.array([v]))[0] == 0


@pytest.mark.parametrize("name", RGB_PHOTOS + ["camera"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_quantize_photos(photos, name, dtype):
    img = DISTORTIONS["noise"](photos[name][::2, ::2])
    x = torch.from_numpy(img).to(dtype)
    ref = img_as_ubyte(x.to(torch.float32 if dtype == torch.bfloat16 else dtype).numpy())
    np.testing.assert_array_equal(quantize_u8(x).numpy(), ref)


def test_quantize_clamps_and_passes_uint8_through():
    assert quantize_u8(torch.tensor([-0.3, 1.7])).tolist() == [0, 255]
    u = torch.arange(256, dtype=torch.uint8)
    assert quantize_u8(u) is u


# --------------------------------------------------------------------------- pil_luma


@pytest.mark.parametrize("name", RGB_PHOTOS)
def test_pil_luma_equals_pillow_on_photos(photos, name):
    rgb = _u8(photos[name])
    ref = np.asarray(Image.fromarray(rgb).convert("L"))
    got = pil_luma(to_nchw(rgb))
    assert got.dtype == torch.float32 and got.shape == (1, 1, *rgb.shape[:2])
    np.testing.assert_array_equal(got[0, 0].numpy(), ref)
    # RGBA: alpha ignored, as Pillow ignores it
    alpha = np.random.default_rng(0).integers(0, 256, (*rgb.shape[:2], 1), dtype=np.uint8)
    rgba = np.concatenate([rgb, alpha], axis=-1)
    assert np.array_equal(np.asarray(Image.fromarray(rgba, "RGBA").convert("L")), ref)
    np.testing.assert_array_equal(pil_luma(to_nchw(rgba))[0, 0].numpy(), ref)
    # floats in [0, 1]: quantised first, then Pillow's luma
    x = torch.from_numpy(photos[name]).permute(2, 0, 1)[None]
    ref_f = np.asarray(Image.fromarray(img_as_ubyte(photos[name])).convert("L"))
    np.testing.assert_array_equal(pil_luma(x)[0, 0].numpy(), ref_f)


def test_pil_luma_random_colours_and_gray():
    rgb = np.random.default_rng(1).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    np.testing.assert_array_equal(pil_luma(to_nchw(rgb))[0, 0].numpy(), np.asarray(Image.fromarray(rgb).convert("L")))
    gray = _u8(np.asarray(Image.fromarray(rgb).convert("L")) / 255.0)
    np.testing.assert_array_equal(pil_luma(to_nchw(gray))[0, 0].numpy(), gray)


# --------------------------------------------------------------------------- opencv_gray


@pytest.mark.parametrize("name", RGB_PHOTOS)
def test_opencv_gray_uint8_equals_cvtcolor(photos, name):
    rgb = _u8(photos[name])
    got = opencv_gray(to_nchw(rgb))
    assert got.dtype == torch.uint8
    np.testing.assert_array_equal(got[0, 0].numpy(), cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))


def test_opencv_gray_uint8_random_colours():
    rgb = np.random.default_rng(2).integers(0, 256, (1024, 1024, 3), dtype=np.uint8)
    np.testing.assert_array_equal(opencv_gray(to_nchw(rgb))[0, 0].numpy(), cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))


@pytest.mark.parametrize("name", RGB_PHOTOS)
def test_opencv_gray_float32_close_to_cvtcolor(photos, name):
    img = jpeg(photos[name]).astype(np.float32)
    got = opencv_gray(to_nchw(img))
    assert got.dtype == torch.float32
    # OpenCV may fuse the multiply-adds: equal to float32 rounding, not bit for bit
    np.testing.assert_allclose(got[0, 0].numpy(), cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), rtol=0, atol=3e-7)


def test_opencv_gray_passes_one_channel_through():
    g = torch.rand(2, 1, 5, 6)
    assert opencv_gray(g) is g


# --------------------------------------------------------------------------- matlab_y


@pytest.mark.parametrize("name", RGB_PHOTOS)
def test_matlab_y_equals_rgb2ycbcr(photos, name):
    img = DISTORTIONS["blur"](photos[name])  # float64 in [0, 1]
    ref = rgb2ycbcr(img)[..., 0]  # MATLAB's Y on 16..235 for [0, 1] input
    x = to_nchw(img)
    np.testing.assert_allclose(matlab_y(x, 1.0)[0, 0].numpy() * 255, ref, rtol=0, atol=1e-10)
    np.testing.assert_allclose(matlab_y(x * 255, 255.0)[0, 0].numpy(), ref, rtol=0, atol=1e-10)


def test_matlab_y_basicsr_formula_per_image_scale():
    """BasicSR's ``bgr2ycbcr(img / 255, y_only=True) * 255`` is
    ``np.dot(bgr, [24.966, 128.553, 65.481]) + 16`` (basicsr/utils/color_util.py), here in RGB
    order; a per-image scale broadcasts over ``(N, 1, H, W)``."""
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (2, 8, 9, 3)).astype(np.float64)
    ref = np.dot(rgb[..., ::-1] / 255.0, [24.966, 128.553, 65.481]) + 16.0
    x = torch.from_numpy(rgb).permute(0, 3, 1, 2)
    scale = torch.tensor([255.0, 1.0], dtype=torch.float64).reshape(2, 1, 1, 1)
    got = matlab_y(x / torch.tensor([1.0, 255.0], dtype=torch.float64).reshape(2, 1, 1, 1), scale)
    np.testing.assert_allclose(got[0, 0].numpy(), ref[0], rtol=0, atol=1e-10)
    np.testing.assert_allclose(got[1, 0].numpy() * 255, ref[1], rtol=0, atol=1e-10)


# --------------------------------------------------------------------------- YIQ (pixelmatch)


@pytest.fixture(scope="module")
def pixel_pairs(photos):
    """3000 RGBA pixel pairs from a photo and its JPEG copy, with random alpha (a quarter opaque)."""
    a = _u8(photos["astronaut"][::4, ::4])
    b = _u8(jpeg(photos["astronaut"][::4, ::4], quality=10))
    rng = np.random.default_rng(4)
    idx = rng.choice(a.shape[0] * a.shape[1], 3000, replace=False)
    alpha = rng.integers(0, 256, (2, 3000))
    alpha[:, :750] = 255
    pa = np.concatenate([a.reshape(-1, 3)[idx], alpha[0][:, None]], 1).astype(np.float64)
    pb = np.concatenate([b.reshape(-1, 3)[idx], alpha[1][:, None]], 1).astype(np.float64)
    return pa, pb


def test_yiq_equals_pixelmatch_py_bit_for_bit(pixel_pairs):
    pa, _ = pixel_pairs
    r, g, b = (torch.from_numpy(pa[:, k].copy()) for k in range(3))
    y, i, q = yiq(r, g, b)
    ref = np.array([[pm.rgb2y(*p[:3]), pm.rgb2i(*p[:3]), pm.rgb2q(*p[:3])] for p in pa.tolist()])
    np.testing.assert_array_equal(torch.stack([y, i, q], 1).numpy(), ref)
    np.testing.assert_array_equal(yiq_y(r, g, b).numpy(), ref[:, 0])


def test_blend_white_equals_pixelmatch_py(pixel_pairs):
    pa, _ = pixel_pairs
    planes = tuple(torch.from_numpy(pa[:, k].copy()) for k in range(4))
    got = torch.stack(blend_white(planes[:3], planes[3]), 1).numpy()
    ref = np.array([[pm.blend(c, p[3] / 255) for c in p[:3]] for p in pa.tolist()])
    np.testing.assert_array_equal(got, ref)
    opaque = pa[:, 3] == 255
    np.testing.assert_array_equal(got[opaque], pa[opaque, :3])  # alpha 255 is the identity


def test_colour_delta_equals_pixelmatch_py(pixel_pairs):
    """blend (always; the identity at alpha 255) -> YIQ -> differences -> distance, as
    pixelmatch-py's ``color_delta`` (which blends only when alpha < 255)."""
    pa, pb = pixel_pairs

    def planes(p):
        t = [torch.from_numpy(p[:, k].copy()) for k in range(4)]
        return yiq(*blend_white(t[:3], t[3]))

    (ya, ia, qa), (yb, ib, qb) = planes(pa), planes(pb)
    got = yiq_distance(ya - yb, ia - ib, qa - qb).numpy()
    img1, img2 = pa.reshape(-1).tolist(), pb.reshape(-1).tolist()
    ref = np.array([pm.color_delta(img1, img2, 4 * k, 4 * k) for k in range(len(pa))])
    np.testing.assert_array_equal(got, ref)
    ref_y = np.array([pm.color_delta(img1, img2, 4 * k, 4 * k, y_only=True) for k in range(len(pa))])
    np.testing.assert_array_equal((ya - yb).numpy(), ref_y)
    assert (got > 0).mean() > 0.9  # the pairs really differ


def test_operators_keep_device(device):
    x = torch.rand(2, 3, 4, 5, device=device)
    for out in (quantize_u8(x), pil_luma(x), opencv_gray(x), matlab_y(x, 1.0), yiq_y(*x.unbind(1))):
        assert out.device.type == device.type
    torch.testing.assert_close(pil_luma(x).cpu(), pil_luma(x.cpu()))
    torch.testing.assert_close(opencv_gray((x * 255).to(torch.uint8)).cpu(), opencv_gray((x.cpu() * 255).to(torch.uint8)))
