"""Decoded-image cache (`data.cache: ram`): every image of a split decoded once, into one buffer.

Layout: one contiguous uint8 numpy buffer holding the RGB pixels of all images back
to back, with per-image `offsets [N + 1]` (bytes) and `shapes [N, 3]` (H, W, 3).
The buffer is filled in the main process before the DataLoader forks its workers:
forked workers read the parent's pages (copy-on-write, never written, so never
copied), and a numpy buffer holds no per-image Python objects whose reference
counts would dirty the pages. Under the `spawn` start method each worker would
get its own copy (pickled), so the cache is meant for Linux's default `fork`.

Size check: before decoding, the size (sum of width x height x 3 from the COCO
file, or read from the image header where the file does not say) is compared
with the memory the kernel reports as available (`MemAvailable` in /proc/meminfo,
else `os.sysconf` free pages); more than `MAX_SHARE` of it is an error naming
both sizes. Caches are kept per process, keyed by (file, folder): a study worker
running several runs on the same data decodes it once.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from kpdet.data import coco as coco_io

MAX_SHARE = 0.5  # largest share of the available memory a cache may take
_CACHES: dict[tuple, ImageCache] = {}  # this process's caches, by (ann_file, its mtime, img_dir, image ids)


class CacheError(MemoryError):
    """The decoded images would not fit in memory; the message names the sizes."""


class ImageCache:
    """uint8 RGB images by COCO image id, decoded once into one shared buffer.

    infos: COCO image entries (id, file_name, optional width/height), decoded in order.
    An image that fails to decode is remembered (its error is raised again by `get`),
    so `data.skip_invalid` behaves as without the cache.
    """

    def __init__(self, infos: list[dict], img_dir, what: str = "", available: int | None = None):
        self.img_dir = Path(img_dir)
        sizes = [_image_bytes(info, self.img_dir) for info in infos]
        needed = int(sum(sizes))
        check_fits(needed, len(infos), what, available)
        self.index = {info["id"]: i for i, info in enumerate(infos)}
        self.offsets = np.zeros(len(infos) + 1, dtype=np.int64)
        self.offsets[1:] = np.cumsum(sizes)
        self.shapes = np.zeros((len(infos), 3), dtype=np.int64)
        self.buffer = np.empty(needed, dtype=np.uint8)
        self.errors: dict[int, coco_io.DatasetError] = {}
        for i, info in enumerate(infos):
            self._fill(i, info)

    def _fill(self, i: int, info: dict) -> None:
        try:
            image = coco_io.read_image(self.img_dir / info["file_name"], info["id"],
                                       (info.get("width"), info.get("height")))
        except coco_io.DatasetError as error:
            self.errors[i] = error
            return
        start, room = self.offsets[i], self.offsets[i + 1] - self.offsets[i]
        if image.size > room:  # the JSON's width/height were wrong: read_image would have raised
            raise coco_io.DatasetError(f"image {info['id']} ({info['file_name']}): decoded size "
                                       f"{image.shape} does not match its width/height")
        self.buffer[start:start + image.size] = image.reshape(-1)
        self.shapes[i] = image.shape

    @property
    def nbytes(self) -> int:
        return int(self.buffer.nbytes)

    def get(self, image_id) -> np.ndarray:
        """The image as decoded by coco.read_image: [H, W, 3] uint8, a read-only view (no copy)."""
        i = self.index[image_id]
        if i in self.errors:
            raise self.errors[i]
        h, w, c = self.shapes[i]
        view = self.buffer[self.offsets[i]:self.offsets[i] + h * w * c].reshape(h, w, c)
        view.flags.writeable = False  # a write would copy the page in a forked worker
        return view


def cached_images(infos: list[dict], img_dir, ann_file: str) -> ImageCache:
    """This process's cache of `infos` (decoded on first use)."""
    path = Path(ann_file).resolve()
    key = (str(path), path.stat().st_mtime_ns, str(Path(img_dir).resolve()), tuple(i["id"] for i in infos))
    if key not in _CACHES:
        _CACHES[key] = ImageCache(infos, img_dir, what=str(ann_file))
    return _CACHES[key]


def check_fits(needed: int, count: int, what: str, available: int | None = None) -> None:
    """Raise CacheError when `needed` bytes exceed MAX_SHARE of the available memory."""
    available = available_memory() if available is None else available
    if needed > MAX_SHARE * available:
        raise CacheError(
            f"data.cache=ram: the {count} decoded images of {what or 'the split'} need "
            f"{needed / 2**30:.2f} GiB, more than {MAX_SHARE:.0%} of the {available / 2**30:.2f} GiB "
            "of memory available now (MemAvailable, /proc/meminfo); set data.cache=none")


def available_memory() -> int:
    """Bytes of memory available for new allocations: MemAvailable of /proc/meminfo (Linux),
    else the free physical pages that os.sysconf reports."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # the file counts kB
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _image_bytes(info: dict, img_dir: Path) -> int:
    """H x W x 3 of an image entry: from the JSON, else from the file's header (Pillow, lazy)."""
    width, height = info.get("width"), info.get("height")
    if not (width and height):
        try:
            from PIL import Image

            with Image.open(img_dir / info["file_name"]) as image:
                width, height = image.size
        except (OSError, ValueError):
            return 0  # unreadable: read_image raises the named error when the cache is filled
    return int(width) * int(height) * 3
