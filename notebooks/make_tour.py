"""Write ``notebooks/tour.ipynb`` from the cells below and execute it, so that the stored file
shows its outputs (the pictures are visible where the repository is browsed):

    python notebooks/make_tour.py               # build, run (about a minute on a CPU), write
    python notebooks/make_tour.py --no-execute  # build and write without outputs

Run it after changing a cell or the library's output; ``tests/test_notebook.py`` checks that the
stored cells are these and executes the notebook again. Execution uses this interpreter as the
kernel and this checkout's torchsim. Sections that show a feature torchsim does not have yet
(checked with ``hasattr(torchsim, ...)`` when this script runs) become marked markdown stubs.
"""

from __future__ import annotations

import argparse
import os
import sys

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # the checkout's torchsim, for the hasattr checks

import torchsim  # noqa: E402


def md(text: str):
    return new_markdown_cell(text.strip("\n"))


def code(text: str):
    return new_code_cell(text.strip("\n"))


def stub(title: str, feature: str):
    return md(f"""
## {title}

> **TODO (stub):** this section is added together with `torchsim.{feature}`, which this
> version of torchsim does not have yet.
""")


INTRO = md("""
# A tour of torchsim, in pictures

torchsim computes image similarity metrics — PSNR, SSIM, MS-SSIM, histograms,
mutual information, perceptual hashes, pixelmatch — on batched `(N, C, H, W)`
tensors, on CPU or GPU, differentiably where the math allows, equal to the
reference implementations (scikit-image, OpenCV, BasicSR, pytorch-msssim, ...).

This notebook runs on a CPU in well under a minute: small images, few steps.
""")

SETUP = code("""
import numpy as np
import matplotlib.pyplot as plt
import torch
import torchvision.transforms.functional as TF
from torchvision.io import decode_jpeg, encode_jpeg
from skimage import data

import torchsim

torch.manual_seed(0)
plt.rcParams["figure.dpi"] = 80


def photo(a, size=256):
    \"\"\"HxWx3 uint8 photo -> (1, 3, size, size) float tensor in [0, 1] (center crop, resize).\"\"\"
    t = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).float() / 255
    side = min(t.shape[1:])
    t = TF.center_crop(t, [side, side])
    return TF.resize(t, [size, size], antialias=True).clamp(0, 1)[None]


def show(t):
    \"\"\"(1, C, H, W) tensor -> HxWxC (or HxW) array for imshow.\"\"\"
    a = t[0].detach().float()
    if a.dtype == torch.uint8 or a.max() > 1.5:
        a = a / 255
    a = a.clamp(0, 1).permute(1, 2, 0).numpy()
    return a[..., 0] if a.shape[-1] == 1 else a


# three distortions, with a strength parameter each
def add_noise(x, sigma, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (x + sigma * torch.randn(x.shape, generator=g)).clamp(0, 1)


def blur(x, sigma):
    if sigma <= 0:
        return x
    k = 2 * int(3 * sigma) + 1
    return TF.gaussian_blur(x, [k, k], [sigma, sigma])


def jpeg(x, quality):
    u8 = (x[0] * 255).round().to(torch.uint8)
    return decode_jpeg(encode_jpeg(u8, quality=int(quality)))[None].float() / 255


astronaut = photo(data.astronaut())
coffee = photo(data.coffee())
chelsea = photo(data.chelsea())
print(astronaut.shape, astronaut.dtype)
""")

SSIM_MAPS_MD = md("""
## SSIM maps

`torchsim.ssim(x, y, data_range=1.0, return_map=True)` returns the mean SSIM and the
per-channel SSIM map over the valid region (the 11×11 Gaussian window fully inside the
image). Dark is where the distorted image's local structure departs from the original:
noise hurts flat regions most, blur hurts edges, JPEG hurts block edges and textures.
""")

SSIM_MAPS = code("""
distorted = {
    "noise σ=0.1": add_noise(astronaut, 0.1),
    "blur σ=2": blur(astronaut, 2.0),
    "JPEG q=10": jpeg(astronaut, 10),
}
fig, axes = plt.subplots(2, 4, figsize=(13, 6.5))
axes[0, 0].imshow(show(astronaut)); axes[0, 0].set_title("original")
axes[1, 0].axis("off")
for k, (name, d) in enumerate(distorted.items(), start=1):
    value, smap = torchsim.ssim(d, astronaut, data_range=1.0, return_map=True)
    p = torchsim.psnr(d, astronaut, data_range=1.0)
    axes[0, k].imshow(show(d)); axes[0, k].set_title(f"{name}\\nPSNR {p:.2f} dB")
    im = axes[1, k].imshow(smap[0].mean(0), cmap="magma", vmin=0, vmax=1)
    axes[1, k].set_title(f"SSIM map, mean {value:.3f}")
for ax in axes.flat:
    ax.set_xticks([]); ax.set_yticks([])
fig.colorbar(im, ax=axes[1, :].tolist(), shrink=0.8)
plt.show()
""")

CURVES_MD = md("""
## SSIM, MS-SSIM and PSNR against distortion strength

Every distortion level of a sweep goes into one batch: `reduction="none"` gives one value
per image.
""")

CURVES = code("""
sweeps = {
    "Gaussian noise σ": (np.linspace(0.0, 0.3, 6), add_noise),
    "Gaussian blur σ": (np.linspace(0.0, 4.0, 6), blur),
    "JPEG quality": (np.array([5, 10, 20, 40, 70, 95]), jpeg),
}
fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
for ax, (label, (levels, distort)) in zip(axes, sweeps.items()):
    batch = torch.cat([distort(astronaut, float(v)) for v in levels])
    ref = astronaut.expand_as(batch)
    s = torchsim.ssim(batch, ref, data_range=1.0, reduction="none")
    ms = torchsim.ms_ssim(batch, ref, data_range=1.0, reduction="none")
    p = torchsim.psnr(batch, ref, data_range=1.0, reduction="none").clamp(max=60)
    ax.plot(levels, s, "o-", label="SSIM")
    ax.plot(levels, ms, "s-", label="MS-SSIM")
    ax.set_xlabel(label); ax.set_ylim(0, 1.05); ax.grid(alpha=0.3)
    ax2 = ax.twinx()
    ax2.plot(levels, p, "^--", color="gray", label="PSNR (dB, right)")
    ax2.set_ylim(10, 60)
    if ax is axes[0]:
        ax.legend(loc="lower left"); ax2.legend(loc="upper right")
plt.tight_layout()
plt.show()
""")

STREAMING_MD = md("""
## Streaming over a data set

Every metric module has `update(x, y)` / `compute()` / `reset()`. The state is a float64
sum and a count, so `compute()` equals one call on the whole data set, whatever the batch
sizes — the mean of per-image PSNRs, as super-resolution papers report it. Under
`torch.distributed`, `compute()` all-reduces the state and every rank gets the data-set
value. (`torchsim score REF_DIR TEST_DIR` does this for folders of images.)
""")

STREAMING = code("""
dataset = torch.cat([add_noise(astronaut, s, seed=i) for i, s in enumerate(np.linspace(0.02, 0.2, 10))])
refs = astronaut.expand_as(dataset)
metric = torchsim.PSNR(data_range=1.0)
for xb, yb in zip(dataset.split([3, 1, 4, 2]), refs.split([3, 1, 4, 2])):
    metric.update(xb, yb)
print(f"streamed: {metric.compute().item():.6f} dB")
print(f"one call: {metric(dataset, refs).item():.6f} dB")
""")

TRAIN_MD = md("""
## Training a tiny denoiser with `SSIMLoss`

`torchsim.SSIMLoss(data_range=1.0)` is `1 - SSIM`, differentiable (SSIM has a hand-written
backward). A three-layer residual CNN learns to remove Gaussian noise (σ = 0.1) from
random 40×40 crops of two photos, and is shown on the third.
""")

TRAIN = code("""
from torch import nn

torch.manual_seed(0)
train_images = torch.cat([astronaut, coffee])
net = nn.Sequential(
    nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
    nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
    nn.Conv2d(16, 3, 3, padding=1),
)
loss_fn = torchsim.SSIMLoss(data_range=1.0)
opt = torch.optim.Adam(net.parameters(), lr=2e-3)


def crops(images, n=8, size=40):
    i = torch.randint(0, images.shape[0], (n,))
    y0 = torch.randint(0, images.shape[2] - size, (n,))
    x0 = torch.randint(0, images.shape[3] - size, (n,))
    return torch.stack([images[a, :, b:b + size, c:c + size] for a, b, c in zip(i, y0, x0)])


losses = []
for step in range(40):
    clean = crops(train_images)
    noisy = (clean + 0.1 * torch.randn_like(clean)).clamp(0, 1)
    loss = loss_fn(noisy + net(noisy), clean)
    opt.zero_grad()
    loss.backward()
    opt.step()
    losses.append(loss.item())

noisy_cat = add_noise(chelsea, 0.1, seed=1)
with torch.no_grad():
    denoised = (noisy_cat + net(noisy_cat)).clamp(0, 1)
fig, axes = plt.subplots(1, 4, figsize=(15, 3.8))
axes[0].plot(losses); axes[0].set_xlabel("step"); axes[0].set_ylabel("1 - SSIM"); axes[0].set_title("training loss")
for ax, (title, im) in zip(axes[1:], [("clean", chelsea), ("noisy", noisy_cat), ("denoised", denoised)]):
    s = torchsim.ssim(im, chelsea, data_range=1.0)
    ax.imshow(show(im)); ax.set_title(f"{title}: SSIM {s:.3f}"); ax.axis("off")
plt.tight_layout()
plt.show()
print(f"loss: first 5 steps {np.mean(losses[:5]):.4f} -> last 5 steps {np.mean(losses[-5:]):.4f}")
assert np.mean(losses[-5:]) < np.mean(losses[:5]), "the SSIM loss should decrease"
""")

EDITED_MD_CODE = code("""
# An edited copy of the astronaut, for the next sections: three patches changed.
original_u8 = (astronaut * 255).round().to(torch.uint8)
edited_u8 = original_u8.clone()
edited_u8[..., 30:60, 170:215] = torch.tensor([250, 40, 40], dtype=torch.uint8).view(1, 3, 1, 1)  # a red label
edited_u8[..., 150:190, 40:70] = original_u8[..., 150:190, 40:70].flip(-1)                          # a mirrored patch
edited_u8[..., 200:230, 150:240] = (original_u8[..., 200:230, 150:240].int() * 6 // 10).to(torch.uint8)  # darkened
""")

REGIONS_MD = md("""
## Where do two images differ? `diff_regions`

The scikit-image + OpenCV recipe on tensors: the full-size SSIM map of the gray images,
Otsu's threshold, 8-connected regions, one box `(x0, y0, x1, y1)` per region.
""")

REGIONS = code("""
import matplotlib.patches as patches

boxes, smap = torchsim.diff_regions(original_u8, edited_u8, return_map=True)
fig, axes = plt.subplots(1, 3, figsize=(13, 4.5))
axes[0].imshow(show(original_u8)); axes[0].set_title("original")
axes[1].imshow(smap[0, 0], cmap="magma", vmin=0, vmax=1); axes[1].set_title("full-size SSIM map (gray)")
axes[2].imshow(show(edited_u8)); axes[2].set_title(f"edited: {len(boxes[0])} regions")
for x0, y0, x1, y1 in boxes[0].tolist():
    axes[2].add_patch(patches.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="lime", linewidth=2))
for ax in axes:
    ax.axis("off")
plt.show()
print(boxes[0])
""")

HIST_MD = md("""
## Histograms, histogram comparison, mutual information

`torchsim.histogram` counts per image and channel (exactly as `cv2.calcHist`, or soft and
differentiable with `bandwidth > 0`); `histogram_similarity` compares the normalised
histograms with OpenCV's `compareHist` formulas; `mutual_information` / 
`normalized_mutual_information` use the joint histogram.
""")

HIST = code("""
variants = {
    "JPEG q=10": (jpeg(astronaut, 10) * 255).round().to(torch.uint8),
    "darker ×0.7": (astronaut * 0.7 * 255).round().to(torch.uint8),
    "noise σ=0.1": (add_noise(astronaut, 0.1) * 255).round().to(torch.uint8),
    "another photo": (coffee * 255).round().to(torch.uint8),
}
h0 = torchsim.histogram(original_u8, bins=64)
fig, axes = plt.subplots(1, len(variants), figsize=(16, 3.2), sharey=True)
centers = np.linspace(0, 255, 64)
for ax, (name, v) in zip(axes, variants.items()):
    h = torchsim.histogram(v, bins=64)
    for c, color in enumerate("rgb"):
        ax.plot(centers, h0[0, c], color=color, alpha=0.35)
        ax.plot(centers, h[0, c], color=color, linestyle="--")
    ax.set_title(name)
axes[0].set_ylabel("count (solid: original, dashed: variant)")
plt.tight_layout()
plt.show()

methods = ["correlation", "intersection", "bhattacharyya", "chi_square", "overlap"]
print("histogram_similarity(variant, original) per method; MI and NMI over 64 bins")
print(f"{'variant':<15}" + "".join(f"{m:>15}" for m in methods) + f"{'MI (nats)':>12}{'NMI':>8}")
for name, v in variants.items():
    sims = [torchsim.histogram_similarity(v, original_u8, method=m).item() for m in methods]
    mi = torchsim.mutual_information(v, original_u8, bins=64).item()
    nmi = torchsim.normalized_mutual_information(v, original_u8, bins=64).item()
    print(f"{name:<15}" + "".join(f"{s:15.4f}" for s in sims) + f"{mi:12.3f}{nmi:8.3f}")
""")

PIXELMATCH_MD = md("""
## pixelmatch: perceptual pixel differences

`torchsim.pixelmatch` is mapbox's pixelmatch (equal to pixelmatch-py, byte for byte): a YIQ
colour distance with an anti-aliasing detector. With `return_diff=True` it also draws the
diff image: mismatches in red over a faded gray copy of the first image.
""")

PIXELMATCH = code("""
count, diff = torchsim.pixelmatch(original_u8, edited_u8, threshold=0.1, return_diff=True)
fig, axes = plt.subplots(1, 3, figsize=(13, 4.5))
axes[0].imshow(show(original_u8)); axes[0].set_title("original")
axes[1].imshow(show(edited_u8)); axes[1].set_title("edited")
axes[2].imshow(diff[0].permute(1, 2, 0).numpy()); axes[2].set_title(f"pixelmatch diff: {count.item()} pixels")
for ax in axes:
    ax.axis("off")
plt.show()
""")

OUTRO = md("""
## More

* `torchsim compare A.png B.png` — every metric for two files; `torchsim score REF_DIR TEST_DIR`
  — a folder of pairs, with a per-image table, means, CSV/JSON and `torchrun` support.
* The API and its conventions: `docs/` and the docstrings (each names the reference it equals).
""")


def build() -> nbformat.NotebookNode:
    cells = [INTRO, SETUP, SSIM_MAPS_MD, SSIM_MAPS, CURVES_MD, CURVES, STREAMING_MD, STREAMING, TRAIN_MD, TRAIN]
    has = {name: hasattr(torchsim, name) for name in ("diff_regions", "histogram", "histogram_similarity",
                                                        "mutual_information", "normalized_mutual_information",
                                                        "pixelmatch")}
    cells.append(EDITED_MD_CODE)
    cells += [REGIONS_MD, REGIONS] if has["diff_regions"] else [stub("Where do two images differ? `diff_regions`", "diff_regions")]
    if all(has[k] for k in ("histogram", "histogram_similarity", "mutual_information", "normalized_mutual_information")):
        cells += [HIST_MD, HIST]
    else:
        cells.append(stub("Histograms, histogram comparison, mutual information", "histogram_similarity"))
    cells += [PIXELMATCH_MD, PIXELMATCH] if has["pixelmatch"] else [stub("pixelmatch: perceptual pixel differences", "pixelmatch")]
    cells.append(OUTRO)
    for i, cell in enumerate(cells):  # stable ids: regenerating gives the same file
        cell["id"] = f"{i:02d}-{cell.cell_type}"
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def execute(nb: nbformat.NotebookNode, cwd: str, timeout: int = 600) -> nbformat.NotebookNode:
    """Run ``nb`` in place with nbclient on a ``python3`` kernel of this interpreter that imports
    this checkout's torchsim; cell outputs replace the old ones. No timings are stored."""
    import nbclient

    root = os.path.dirname(HERE)
    saved = {k: os.environ.get(k) for k in ("PATH", "PYTHONPATH")}
    # "python" in the python3 kernelspec is this interpreter; the checkout comes first on sys.path.
    os.environ["PATH"] = os.pathsep.join(filter(None, [os.path.dirname(sys.executable), saved["PATH"]]))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [root, saved["PYTHONPATH"]]))
    try:
        nbclient.NotebookClient(
            nb, timeout=timeout, kernel_name="python3", record_timing=False, resources={"metadata": {"path": cwd}}
        ).execute()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return nb


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Build notebooks/tour.ipynb and store its outputs.")
    parser.add_argument("--no-execute", action="store_true", help="write the cells without running them")
    parser.add_argument("-o", "--output", default=os.path.join(HERE, "tour.ipynb"))
    args = parser.parse_args(argv)
    nb = build()
    if not args.no_execute:
        execute(nb, cwd=HERE)
    nbformat.write(nb, args.output)
    print(f"wrote {args.output} ({os.path.getsize(args.output) / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
