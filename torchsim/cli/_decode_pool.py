"""Decoding for ``torchsim score``: a pool of threads feeding batches; JPEGs on the GPU under CUDA.

:func:`decoded_batches` yields the batches of :func:`._files.batches` — ``(groups, errors)`` of
:func:`._files.collate_by_size`, in the order of the entries — but decodes with ``workers``
threads instead of ``DataLoader`` processes:

* Pillow and libjpeg / zlib release the GIL while they decode and convert, so threads decode in
  parallel; unlike worker processes they start at once (no fork of a process holding torch) and
  hand their tensors over without pickling or shared-memory copies.
* The pool reads ahead ``2 × batch_size + workers`` entries, so the next batch decodes while the
  metrics score this one; memory stays bounded by that window.
* With ``jpeg_device="cuda"`` a JPEG pair is only *read* by its thread; the main thread decodes
  every JPEG of a batch in one ``torchvision.io.decode_jpeg(list, device="cuda")`` call (nvJPEG),
  and the images arrive on the GPU. Other formats, and JPEGs nvJPEG refuses (CMYK, corrupt: the
  batch falls back), are decoded on the CPU as usual. nvJPEG's IDCT and chroma upsampling are
  not libjpeg-turbo's: pixels may differ by a level or two, so scores differ in the last digits
  from a CPU decode (``--decode cpu`` keeps the CPU's exact pixels).

Each entry is cropped to multiples of ``modcrop`` before its sizes are compared
(:func:`._files.checked`); an entry that fails is one error line and the others go on.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
from typing import Any, Iterator, List, Optional, Sequence, Tuple, Union

from ._files import Decoded, Entry, FileDataset, checked, collate_by_size

_JPEG_MAGIC = b"\xff\xd8\xff"


@dataclasses.dataclass
class _Raw:
    """An entry whose files are all JPEGs, read but not decoded (decoded per batch on the GPU)."""

    index: int
    name: str
    files: Tuple[str, ...]
    data: Tuple[bytes, ...]


def decoded_batches(
    entries: Sequence[Entry],
    batch_size: int,
    workers: int = 0,
    mode: str = "RGB",
    modcrop: int = 0,
    jpeg_device: Optional[str] = None,
    options: Optional[dict] = None,
) -> Iterator[Tuple[list, list]]:
    """Batches ``(groups, errors)`` of ``batch_size`` entries, in order, decoded by ``workers`` threads.

    Args:
        entries: ``(index, name, files)`` as :func:`._files.pair_files` makes them.
        batch_size: entries per batch.
        workers: decoding threads; 0 decodes in the calling thread.
        mode: ``"RGB"``, ``"GRAY"`` or ``"RGBA"`` (:func:`._files.decode`).
        modcrop: crop every image to multiples of this (0 or 1: no crop).
        jpeg_device: a CUDA device to decode RGB JPEGs on in batches (``None``: every file on the CPU).
        options: :func:`._files.decode`'s keyword arguments (``max_pixels``, ``exif``, ``keep16``).
    """
    dataset = FileDataset(entries, mode, modcrop, options)
    gpu = jpeg_device is not None and mode == "RGB"

    def load(i: int) -> Union[Decoded, _Raw]:
        if gpu:
            raw = _read_jpegs(dataset.entries[i])
            if raw is not None:
                return raw
        return dataset[i]

    def finish(items: List[Union[Decoded, _Raw]]):
        if gpu:
            items = _decode_on_gpu(items, dataset, jpeg_device)
        return collate_by_size(items)

    if workers <= 0:
        for start in range(0, len(dataset), batch_size):
            yield finish([load(i) for i in range(start, min(start + batch_size, len(dataset)))])
        return
    pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="torchsim-decode")
    window: collections.deque = collections.deque()
    ahead = 2 * batch_size + workers
    todo = iter(range(len(dataset)))
    try:
        for i in todo:
            window.append(pool.submit(load, i))
            if len(window) >= ahead:
                break
        batch: List[Any] = []
        while window:
            batch.append(window.popleft().result())
            for i in todo:  # keep the window full
                window.append(pool.submit(load, i))
                break
            if len(batch) == batch_size or not window:
                yield finish(batch)
                batch = []
    finally:  # a consumer that stops (an error, SIGINT) leaves no decoding behind
        pool.shutdown(wait=False, cancel_futures=True)


def _read_jpegs(entry: Entry) -> Optional[_Raw]:
    """The bytes of every file of ``entry`` when all are JPEGs, else None (decoded on the CPU)."""
    index, name, files = entry
    data = []
    for path in files:
        try:
            with open(path, "rb") as fh:
                raw = fh.read()
        except OSError:
            return None  # the CPU path says why, in its words
        if not raw.startswith(_JPEG_MAGIC):
            return None
        data.append(raw)
    return _Raw(index, name, tuple(files), tuple(data))


def _decode_on_gpu(items: List[Union[Decoded, _Raw]], dataset: FileDataset, device: str) -> List[Decoded]:
    """Every ``_Raw`` of a batch decoded in one nvJPEG call (the CPU path where that fails)."""
    raws = [it for it in items if isinstance(it, _Raw)]
    if not raws:
        return items  # type: ignore[return-value]
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg

    data = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for it in raws for b in it.data]
    try:
        images = decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
    except Exception:  # one image nvJPEG cannot decode fails the call: decode this batch on the CPU
        images = None
    done = {}
    k = 0
    for it in raws:
        n = len(it.files)
        if images is None:
            done[id(it)] = FileDataset([(it.index, it.name, it.files)], dataset.mode, dataset.modcrop, dataset.options)[0]
        else:
            done[id(it)] = checked(it.index, it.name, it.files, images[k : k + n], dataset.modcrop)
        k += n
    return [done.get(id(it), it) for it in items]  # type: ignore[misc]
