"""The registry says the truth about every metric: each record is checked against its function.

Every test here is parametrised over ``torchsim.registry.records()``, so a record added
to the registry is checked without touching this file.
"""

from __future__ import annotations

import inspect
import pickle
import sys
import types

import pytest
import torch

import torchsim
from torchsim import registry
from torchsim._base import export_classes
from torchsim.losses import Loss
from torchsim.modules import Metric

RECORDS = registry.records()
WITH_MODULE = registry.records(has_module=True)
WITH_LOSS = registry.records(has_loss=True)

# Options other than the defaults under which min_size is checked too (the defaults always are).
MIN_SIZE_OPTIONS = {
    "ssim": [dict(kernel_size=7), dict(kernel_size=3, gaussian=False), dict(kernel_size=5, downsample=True)],
    "ms_ssim": [dict(kernel_size=3, weights=(0.5, 0.5)), dict(kernel_size=5, weights=(0.2, 0.3, 0.5))],
    "ms_ssim_l1": [dict(kernel_size=3, weights=(0.3, 0.3, 0.4))],
    "diff_regions": [dict(kernel_size=3)],
    "phash": [dict(hash_size=4, highfreq_factor=2)],
}


def _ids(records):
    return [r.name for r in records]


def _images(shape, seed=0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(*shape, generator=g, dtype=torch.float64)
    y = (x + 0.3 * (torch.rand(*shape, generator=g, dtype=torch.float64) - 0.5)).clamp(0, 1)
    return x.requires_grad_(requires_grad), y


def _call(record, x, y, **options):
    """The record's function on ``x`` (and ``y`` for pairs), ``data_range=1.0`` where it needs one."""
    if record.needs_data_range:
        options.setdefault("data_range", 1.0)
    if record.kind == "hash":
        return record.function(x, **options)
    return record.function(x, y, **options)


def _tensors(out):
    if isinstance(out, torch.Tensor):
        return [out]
    return [t for item in out for t in _tensors(item)]


def _signature(cls):
    params = list(inspect.signature(cls).parameters.values())
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params), cls
    return {p.name: p.default for p in params}


# --------------------------------------------------------------------------- the API


def test_get_names_and_iteration():
    assert registry.get("ssim").function is torchsim.ssim
    assert list(registry.REGISTRY) == registry.names() == [r.name for r in RECORDS]
    # each filter selects exactly the records whose field says so, in registration order ...
    for kind in (*registry.KINDS, ("count", "regions")):
        kinds = {kind} if isinstance(kind, str) else set(kind)
        assert registry.names(kind=kind) == [r.name for r in RECORDS if r.kind in kinds]
    assert registry.names(has_module=True) == [r.name for r in RECORDS if r.module_name]
    assert registry.names(needs_data_range=True) == [r.name for r in RECORDS if r.needs_data_range]
    # ... and says the SPEC's facts; the lists stay open, so a new metric is its record alone
    assert registry.names(kind="hash")[:3] == ["ahash", "dhash", "phash"]
    assert registry.names(kind=("count", "regions"))[:2] == ["pixelmatch", "diff_regions"]
    assert {"mse", "psnr", "ssim", "ms_ssim", "cosine_similarity", "histogram_similarity", "mutual_information",
            "normalized_mutual_information"} <= set(registry.names(has_module=True))
    assert {"psnr", "ssim", "ms_ssim", "ms_ssim_l1", "diff_regions"} <= set(registry.names(needs_data_range=True))
    assert not {"mse", "cosine_similarity", "histogram_similarity", "mutual_information", "normalized_mutual_information",
                "pixelmatch", "ahash", "dhash", "phash"} & set(registry.names(needs_data_range=True))
    assert "psnr_pooled" in registry.names(has_module=True) and "psnr_pooled" in registry.names(needs_data_range=True)
    assert [r.name for r in RECORDS if r.pooling is not None] == registry.names(kind="pooled")
    assert all(r.differentiable for r in registry.records(has_loss=True))
    with pytest.raises(TypeError):
        registry.REGISTRY["x"] = None  # read-only


def test_unknown_names_are_value_errors_listing_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown metric 'SSIM'; known metrics: mse, psnr, ssim, ms_ssim"):
        registry.get("SSIM")
    with pytest.raises(ValueError, match=r"unknown kind \['float'\]; kinds: score, count, hash, regions, pooled"):
        registry.names(kind="float")
    with pytest.raises(TypeError, match=r"ssim: min_size\(\) got unknown options \['kernel'\]"):
        registry.get("ssim").min_size(kernel=3)


def test_records_are_frozen():
    record = registry.get("mse")
    with pytest.raises(AttributeError):
        record.differentiable = False
    with pytest.raises(TypeError):
        registry.get("mutual_information").grad_options["bandwidth"] = 0.0


def test_min_size_reads_one_rule():
    ms = registry.get("ms_ssim")
    assert ms.min_size() == 161  # the number the docs quote
    assert ms.min_size(kernel_size=7) == 97
    assert ms.min_size(kernel_size=3, weights=(0.5, 0.5)) == 5
    assert registry.get("ms_ssim_l1").min_size() == 161
    assert registry.get("ssim").min_size(kernel_size=7) == 7


# --------------------------------------------------------------------------- records vs functions


@pytest.mark.parametrize("record", RECORDS, ids=_ids(RECORDS))
def test_function_is_the_public_function(record):
    assert getattr(torchsim, record.name) is record.function
    assert getattr(torchsim.functional, record.name) is record.function
    assert record.name in torchsim.__all__ and record.name in torchsim.functional.__all__
    assert record.function.__name__ == record.name
    assert record.kind in registry.KINDS and record.label and record.reference
    if record.needs_data_range:
        assert "data_range" in record.options


@pytest.mark.parametrize("record", RECORDS, ids=_ids(RECORDS))
def test_min_size_agrees_with_the_function(record):
    for options in [{}, *MIN_SIZE_OPTIONS.get(record.name, [])]:
        side = record.min_size(**options)
        assert isinstance(side, int) and side >= 1
        x, y = _images((1, 3, side, side + 2))
        _call(record, x, y, **options)  # accepted
        for shape in [(1, 3, side - 1, side + 2), (1, 3, side + 2, side - 1)]:
            x, y = _images(shape)
            with pytest.raises(ValueError):
                _call(record, x, y, **options)


@pytest.mark.parametrize("record", RECORDS, ids=_ids(RECORDS))
def test_needs_data_range_agrees_with_the_function(record):
    x, y = _images((2, 3, record.min_size(), record.min_size()))
    x, y = x.float(), y.float()
    if record.needs_data_range:
        with pytest.raises(TypeError, match=r"data_range is required .*data_range=1\.0"):
            _call(record, x, y, data_range=None)
        # uint8 input defaults to 255
        _call(record, (x * 255).to(torch.uint8), (y * 255).to(torch.uint8), data_range=None)
    else:
        _call(record, x, y)  # no TypeError: float input scores without a data_range


@pytest.mark.parametrize("record", RECORDS, ids=_ids(RECORDS))
def test_differentiable_agrees_with_a_backward_pass(record):
    side = max(record.min_size(**record.grad_options), 8)
    x, y = _images((2, 3, side, side), requires_grad=True)
    out = _tensors(_call(record, x, y, **record.grad_options))
    graded = [t for t in out if t.requires_grad]
    if not record.differentiable:
        assert not graded, f"{record.name} is marked not differentiable but its result has a gradient"
        return
    assert graded and all(t.is_floating_point() for t in graded)
    sum(t.sum() for t in graded).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


# --------------------------------------------------------------------------- classes from the records


@pytest.mark.parametrize("record", WITH_MODULE, ids=_ids(WITH_MODULE))
def test_module_takes_exactly_the_functions_options(record):
    cls = record.module
    assert issubclass(cls, Metric) and cls.record is record
    assert _signature(cls) == dict(record.options)
    assert cls.__module__ == "torchsim.modules" and cls.__qualname__ == record.module_name
    assert getattr(torchsim, record.module_name) is cls and record.module_name in torchsim.__all__
    assert record.module_name in torchsim.modules.__all__
    assert cls().options == {k: tuple(v) if isinstance(v, list) else v for k, v in record.options.items()}


@pytest.mark.parametrize("record", WITH_LOSS, ids=_ids(WITH_LOSS))
def test_loss_takes_the_functions_options_with_grad_defaults(record):
    cls = record.loss
    assert issubclass(cls, Loss) and cls.record is record
    assert _signature(cls) == {**record.options, **record.grad_options}
    assert cls.__module__ == "torchsim.losses" and cls.__qualname__ == record.loss_name
    assert getattr(torchsim, record.loss_name) is cls and record.loss_name in torchsim.losses.__all__
    assert record.differentiable


def test_spec_defaults_of_the_losses():
    assert inspect.signature(torchsim.NMILoss).parameters["bandwidth"].default == 1.0
    assert inspect.signature(torchsim.MILoss).parameters["bandwidth"].default == 1.0
    params = inspect.signature(torchsim.MSSSIML1Loss).parameters
    assert (params["alpha"].default, params["l1_sigma"].default, params["reduction"].default) == (0.84, 8.0, "mean")


def test_every_module_and_loss_class_has_a_record():
    for base, attr, where in ((Metric, "module_name", torchsim.modules), (Loss, "loss_name", torchsim.losses)):
        classes = {name for name in where.__all__ if isinstance(getattr(where, name), type)} - {base.__name__}
        assert classes == {getattr(r, attr) for r in RECORDS if getattr(r, attr)}


@pytest.fixture
def generated():
    """Every module and loss class built afresh from the records, in a throwaway module: what
    a metric added with nothing but its record gets."""
    mod = types.ModuleType("torchsim_generated_for_test")
    sys.modules[mod.__name__] = mod
    mod.modules = export_classes(Metric, "module_name", mod.__dict__)
    mod.losses = export_classes(Loss, "loss_name", mod.__dict__)
    yield mod
    del sys.modules[mod.__name__]


def test_generated_classes_behave_as_written_ones(generated):
    assert generated.modules == [r.module_name for r in WITH_MODULE]
    assert generated.losses == [r.loss_name for r in WITH_LOSS]
    x, y = _images((2, 3, 16, 17))
    for record in WITH_MODULE + WITH_LOSS:
        for name, written in ((record.module_name, record.module), (record.loss_name, record.loss)):
            if name is None:
                continue
            cls = getattr(generated, name)
            assert cls is not written and cls.__module__ == generated.__name__ and cls.__qualname__ == name
            assert _signature(cls) == _signature(written)
            assert list(inspect.signature(cls.__init__).parameters) == list(inspect.signature(written.__init__).parameters)
            # documentation built from the function's: a summary naming it, and its options
            doc = inspect.getdoc(cls)
            assert f"torchsim.{record.name}" in doc and "Args:" in doc
            for option in ("reduction", "data_range"):
                assert f"{option}:" in doc or option not in record.options, (name, option)
            assert "x, y:" not in doc
    # forward, streaming, repr and pickling of a generated module
    metric = generated.SSIM(data_range=1.0, kernel_size=7)
    torch.testing.assert_close(metric(x, y), torchsim.ssim(x, y, data_range=1.0, kernel_size=7), rtol=0, atol=0)
    metric.update(x, y)
    torch.testing.assert_close(metric.compute(), torchsim.ssim(x, y, data_range=1.0, kernel_size=7).double())
    assert repr(metric).startswith("SSIM(data_range=1.0, kernel_size=7,")
    again = pickle.loads(pickle.dumps(metric))
    assert type(again) is generated.SSIM and again.options == metric.options
    loss = generated.MILoss(bins=16)
    torch.testing.assert_close(loss(x, y), -torchsim.mutual_information(x, y, bins=16, bandwidth=1.0))
    with pytest.raises(TypeError, match=r"SSIMLoss: unexpected keyword argument 'sigm'"):
        generated.SSIMLoss(data_range=1.0, sigm=1.0)
    with pytest.raises(TypeError):
        generated.SSIM(1.0)  # keyword-only
    with pytest.raises(ValueError, match=r"MILoss: bandwidth"):
        generated.MILoss(bandwidth=0.0)
    # a pooled record's generated module streams the pooled statistic, as the written one
    pooled, written = generated.PSNRPooled(data_range=1.0), torchsim.PSNRPooled(data_range=1.0)
    for m in (pooled, written):
        m(x[:1], y[:1])
        m.update(x[1:], y[1:])
    torch.testing.assert_close(pooled.compute(), written.compute(), rtol=0, atol=0)
    torch.testing.assert_close(pooled.compute(), torchsim.psnr_pooled(x, y, data_range=1.0).double())


def test_a_pooled_kind_needs_its_pooling():
    with pytest.raises(ValueError, match="pooling is required for kind 'pooled' and only for it"):
        registry.MetricRecord(name="x", function=torchsim.psnr_pooled, kind="pooled", label="x", reference="x")
    pooling = registry.get("psnr_pooled").pooling
    with pytest.raises(ValueError, match="pooling is required for kind 'pooled' and only for it"):
        registry.MetricRecord(name="x", function=torchsim.psnr, kind="score", label="x", reference="x", pooling=pooling)


def test_a_class_statement_must_match_its_record():
    class PSNR(Metric, metric="mse"):  # a written class whose record names another class
        pass

    with pytest.raises(TypeError, match=r"must be declared as class PSNR\(Metric, metric='psnr'\)"):
        export_classes(Metric, "module_name", {"__name__": "fake", "PSNR": PSNR})


# --------------------------------------------------------------------------- ms_ssim_l1


def test_ms_ssim_l1_is_the_loss_and_checks_its_options():
    x, y = _images((2, 3, 16, 17))
    small = dict(kernel_size=3, weights=(0.3, 0.3, 0.4))
    per_image = torchsim.ms_ssim_l1(x, y, data_range=1.0, reduction="none", **small)
    assert per_image.shape == (2,) and per_image.dtype == torch.float64
    torch.testing.assert_close(torchsim.MSSSIML1Loss(data_range=1.0, **small)(x, y), per_image.mean(), rtol=0, atol=0)
    ms = torchsim.ms_ssim(x, y, data_range=1.0, reduction="none", **small)
    l1 = per_image.new_tensor([_blurred_l1(x[i], y[i]) for i in range(2)])
    torch.testing.assert_close(per_image, 0.84 * (1 - ms) + 0.16 * l1)
    with pytest.raises(ValueError, match=r"ms_ssim_l1: alpha must be a number in \[0, 1\], got 2"):
        torchsim.ms_ssim_l1(x, y, data_range=1.0, alpha=2, **small)
    with pytest.raises(ValueError, match=r"ms_ssim_l1: l1_sigma must be a positive finite number"):
        torchsim.ms_ssim_l1(x, y, data_range=1.0, l1_sigma=-1.0, **small)
    with pytest.raises(TypeError, match=r"ms_ssim_l1: data_range is required"):
        torchsim.ms_ssim_l1(x.float(), y.float(), **small)


def _blurred_l1(a, b, sigma=8.0):
    """mean(G_sigma * |a - b|) with scipy (symmetric boundary, radius round(3 sigma))."""
    from scipy.ndimage import gaussian_filter

    err = (a - b).abs().detach().numpy()
    radius = int(round(3 * sigma))
    return float(gaussian_filter(err, sigma=(0, sigma, sigma), mode="reflect", truncate=radius / sigma).mean())


@pytest.mark.parametrize("record", registry.records(), ids=lambda r: r.name)
def test_grad_options_are_options_of_the_function(record):
    assert set(record.grad_options) <= set(record.options)


def test_importing_the_registry_imports_no_torch():
    """The command line reads names and kinds from the registry for --help and argument errors."""
    import subprocess
    import sys

    code = "import sys, torchsim.registry as r; r.get('gmsd').kind; r.names(kind='score'); assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
