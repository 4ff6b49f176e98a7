"""The target sample: image discovery, labels, a seeded stratified sample, decoded once.

Each image is decoded **once** (EXIF-transposed, longest side capped at ``max_side``) and kept in
its native dtype and channels (``uint8``, ``uint16`` or ``float32``; ``(H, W)`` or ``(H, W, C)``).
Every backbone reuses the same arrays; they become float32 in ``[0, 1]`` batch by batch through
the *intensity rule*:

* ``"auto"`` (default): 8-bit images are divided by 255; 16-bit, 32-bit integer and float images
  are windowed per image between their 0.5th and 99.5th percentiles and clipped to ``[0, 1]``
  (a blind ``convert('RGB')`` would clip 16-bit data to its low byte range);
* ``"percentile"``: the percentile window for every image, 8-bit included;
* ``"full-range"``: integers divided by their dtype's maximum, floats clipped to ``[0, 1]``.

Channel adaptation (grey to RGB, dropping alpha) and resizing happen later, in each backbone's
own preprocessing (:mod:`proximity.preprocess`).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable, Iterator, Literal, Sequence

import numpy as np

from .errors import EmptySampleError, InvalidParameterError, LabelsError
from .imageio import IMAGE_EXTENSIONS, SkippedFile, decode_image, discover_images, find_images, read_image
from .labels import labels_for

__all__ = ["IMAGE_EXTENSIONS", "Intensity", "LabelsArg", "Sample", "SkippedFile", "decode_image", "find_images",
           "load_sample", "sample_from_arrays", "to_float"]

logger = logging.getLogger(__name__)

Intensity = Literal["auto", "percentile", "full-range"]
LabelsArg = Literal["auto", "folders", "none"]
PERCENTILE_WINDOW = (0.5, 99.5)
#: Files decoded with warnings are named one line each, up to this many per sample; then one summary line.
MAX_FILE_WARNINGS = 20


@dataclass
class Sample:
    """A decoded, labelled (or not) sample of target images.

    Attributes
    ----------
    root : Path
        The folder the images were found under.
    paths : list of str, length n
        Paths relative to ``root`` (POSIX separators), sorted.
    images : list of ndarray, length n
        Native dtype, shape ``(H, W)`` or ``(H, W, C)``.
    labels : ndarray of shape (n,) of int, or None
        Integer class codes indexing ``class_names``; None when unlabelled.
    class_names : list of str
    labels_source : str
        ``"folders"``, ``"manifest:<file>"`` or ``"none"``, with the reason in ``labels_note``.
    skipped : list of SkippedFile
        Files found but not used (undecodable, missing from disk, ...).
    n_found : int
        Image files discovered before sampling.
    """

    root: Path
    paths: list[str]
    images: list[np.ndarray]
    labels: np.ndarray | None
    class_names: list[str]
    labels_source: str = "none"
    labels_note: str = ""
    skipped: list[SkippedFile] = field(default_factory=list)
    n_found: int = 0
    intensity: Intensity = "auto"

    @property
    def n(self) -> int:
        return len(self.images)

    @property
    def n_classes(self) -> int:
        return len(self.class_names) if self.labels is not None else 0

    @cached_property
    def fingerprint(self) -> str:
        """SHA-256 over what the evidence depends on: pixels, their order (paths) and the intensity
        rule. Labels are left out on purpose, so a label-free re-run reuses the cached passes."""
        h = hashlib.sha256(f"intensity={self.intensity}".encode())
        for p, img in zip(self.paths, self.images, strict=True):
            h.update(f"{p}\0{img.dtype.str}\0{img.shape}\0".encode())
            h.update(np.ascontiguousarray(img).data)
        return h.hexdigest()

    def as_float(self, index: int) -> np.ndarray:
        """Image ``index`` as float32 in [0, 1] through the sample's intensity rule."""
        return to_float(self.images[index], self.intensity)

    def batches(self, batch_size: int) -> Iterator[list[np.ndarray]]:
        """Yield lists of float32 images (intensity rule applied), ``batch_size`` at a time."""
        for start in range(0, self.n, batch_size):
            yield [self.as_float(i) for i in range(start, min(start + batch_size, self.n))]


def to_float(img: np.ndarray, intensity: Intensity = "auto") -> np.ndarray:
    """Convert one native image to float32 in [0, 1] (see the module docstring for the rule)."""
    if intensity not in ("auto", "percentile", "full-range"):
        raise InvalidParameterError(
            "intensity", "to_float", "one of 'auto', 'percentile', 'full-range'", intensity
        )
    if img.dtype == np.uint8 and intensity != "percentile":
        return img.astype(np.float32) / 255.0
    if intensity == "full-range":
        if np.issubdtype(img.dtype, np.integer):
            return img.astype(np.float32) / float(np.iinfo(img.dtype).max)
        return np.clip(img.astype(np.float32), 0.0, 1.0)
    x = img.astype(np.float32)
    lo, hi = np.percentile(x, PERCENTILE_WINDOW)
    if not np.isfinite(lo) or not np.isfinite(hi):
        x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
        lo, hi = np.percentile(x, PERCENTILE_WINDOW)
    if hi <= lo:  # constant image: mid-grey is the honest answer
        return np.full_like(x, 0.5 if hi > 0 else 0.0, dtype=np.float32)
    return np.clip((x - np.float32(lo)) / np.float32(hi - lo), 0.0, 1.0).astype(np.float32, copy=False)


def _quotas(counts: dict[str, int], n: int) -> dict[str, int]:
    """Largest-remainder allocation of ``n`` over classes, proportional, ≥ 1 each when possible."""
    total = sum(counts.values())
    if n >= total:
        return dict(counts)
    raw = {k: n * c / total for k, c in counts.items()}
    q = {k: min(counts[k], max(1 if n >= len(counts) else 0, int(v))) for k, v in raw.items()}
    order = sorted(counts, key=lambda k: (-(raw[k] - int(raw[k])), k))
    while sum(q.values()) < n:
        grew = False
        for k in order:
            if sum(q.values()) >= n:
                break
            if q[k] < counts[k]:
                q[k] += 1
                grew = True
        if not grew:
            break
    while sum(q.values()) > n:  # the ≥ 1 floor overshot: trim the largest classes
        k = max(q, key=lambda k: (q[k], k))
        q[k] -= 1
    return q


def load_sample(
    path: str | Path,
    *,
    labels: LabelsArg | str | Path = "auto",
    sample: int | None = 500,
    seed: int = 0,
    intensity: Intensity = "auto",
    max_side: int = 1024,
    progress: Callable[[int, int], None] | None = None,
) -> Sample:
    """Discover, label, sample and decode the images under ``path``.

    Parameters
    ----------
    path : folder of images (searched recursively).
    labels : ``"auto"`` (first-level sub-folders when every image sits in one, else none),
        ``"folders"``, ``"none"``, or a CSV manifest with columns ``path,label`` (paths relative
        to ``path`` or to the manifest).
    sample : how many images to keep (stratified by label, seeded); None keeps all. A file that
        fails to decode is skipped, named in ``Sample.skipped``, and replaced by another image of
        its class when one is left.
    seed : seed of the sampling.
    intensity : the intensity rule (module docstring).
    max_side : longest side kept after decoding.

    Raises
    ------
    EmptySampleError : no readable image.
    LabelsError : labels cannot be read as asked.
    """
    root = Path(path)
    if sample is not None and (not isinstance(sample, int) or sample < 1):
        raise InvalidParameterError("sample", "load_sample", "an int in the range [1, inf) or None", sample)
    if intensity not in ("auto", "percentile", "full-range"):
        raise InvalidParameterError("intensity", "load_sample", "one of 'auto', 'percentile', 'full-range'", intensity)
    if not root.is_dir():
        raise EmptySampleError(root, detail=f"'{root}' is not a folder." if not root.exists()
                               else f"'{root}' is a file; give the folder that contains the images.")
    files, unusable = discover_images(root)
    for u in unusable:
        logger.warning("Skipping %s: %s", root / u.path, u.reason)
    if not files:
        raise EmptySampleError(root, n_skipped=len(unusable))
    names, source, note, skipped, files = labels_for(root, files, labels)
    skipped = unusable + skipped
    groups: dict[str, list[int]] = {}
    for i in range(len(files)):
        groups.setdefault(names[i] if names is not None else "", []).append(i)
    quotas = _quotas({k: len(v) for k, v in groups.items()}, sample or len(files))
    rng = np.random.default_rng(seed)
    chosen: list[tuple[int, np.ndarray]] = []
    target, done, noted = sum(quotas.values()), 0, []
    for key in sorted(groups):
        order = rng.permutation(groups[key])
        got = 0
        for i in order:
            if got >= quotas[key]:
                break
            image, reason, notes = read_image(files[i], max_side)   # never raises for a bad file
            if image is not None:
                chosen.append((int(i), image))
                got += 1
            else:
                skipped.append(SkippedFile(files[i].relative_to(root).as_posix(), reason))
                logger.warning("Skipping %s: %s", files[i], reason)
            if notes and image is not None:
                noted.append((files[i], notes))
            done += 1
            if progress is not None:
                progress(min(done, target), target)
    _warn_notes(noted)
    if not chosen:
        raise EmptySampleError(root, n_skipped=len(skipped))
    chosen.sort(key=lambda t: files[t[0]].relative_to(root).as_posix())
    class_names = sorted({names[i] for i, _ in chosen}) if names is not None else []
    codes = np.array([class_names.index(names[i]) for i, _ in chosen]) if names is not None else None
    return Sample(
        root=root,
        paths=[files[i].relative_to(root).as_posix() for i, _ in chosen],
        images=[img for _, img in chosen],
        labels=codes,
        class_names=class_names,
        labels_source=source,
        labels_note=note,
        skipped=skipped,
        n_found=len(files),
        intensity=intensity,
    )


def _warn_notes(noted: list[tuple[Path, list[str]]]) -> None:
    """One line per file decoded with warnings (Pillow's, libtiff's), at most MAX_FILE_WARNINGS."""
    for path, notes in noted[:MAX_FILE_WARNINGS]:
        distinct = list(dict.fromkeys(notes))
        more = f" (and {len(distinct) - 2} more)" if len(distinct) > 2 else ""
        logger.warning("%s was decoded with warnings: %s%s", path, "; ".join(n[:160] for n in distinct[:2]), more)
    if len(noted) > MAX_FILE_WARNINGS:
        logger.warning("%d more files were decoded with warnings (not listed).", len(noted) - MAX_FILE_WARNINGS)


def sample_from_arrays(
    images: Sequence[np.ndarray],
    labels: Sequence[str] | None = None,
    *,
    intensity: Intensity = "auto",
    name: str = "<arrays>",
) -> Sample:
    """Build a :class:`Sample` from in-memory images (native dtype, ``(H, W[, C])``)."""
    if len(images) == 0:
        raise EmptySampleError(name, detail="The list of images is empty.")
    if labels is not None and len(labels) != len(images):
        raise LabelsError(f"Got {len(images)} images but {len(labels)} labels.")
    class_names = sorted(set(labels)) if labels is not None else []
    codes = np.array([class_names.index(x) for x in labels]) if labels is not None else None
    return Sample(
        root=Path(name), paths=[f"{i:06d}" for i in range(len(images))],
        images=[np.ascontiguousarray(x) for x in images], labels=codes, class_names=class_names,
        labels_source="arrays" if labels is not None else "none", labels_note="in-memory arrays",
        n_found=len(images), intensity=intensity,
    )
