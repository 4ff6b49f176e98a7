"""Reference statistics of a backbone's pretraining domain (``proximity catalog reference``).

For a backbone and a folder of images from its pretraining domain, one evidence pass gives:

* the Gaussian of the pooled features, stored compactly: ``mu`` (float32, d), the top-k
  eigenpairs of the covariance (``eigvecs`` float32 (d, k), ``eigvals``) and the isotropic
  ``residual`` variance of the other d − k directions, so Σ_ref = V diag(λ) Vᵀ + ρ (I − V Vᵀ);
* the per-channel mean and variance at the early layers (the same layers the evidence pass
  watches: early BN inputs, or for networks without BN the outputs of the first two
  ``feature_info`` modules);
* provenance: backbone source and revision, preprocessing, image folder, n, date, version.

Files live in ``<data dir>/reference/`` (never in the installed package), named by the backbone
source and a key over (source, revision, preprocessing, truncation), so a later run finds them
without being told; a catalog entry may also point at a file with ``reference = "PATH"``.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .cache import data_dir
from .catalog import CatalogEntry
from .errors import InvalidParameterError, NotWritableError, ProximityError
from .fileio import atomic_write

if TYPE_CHECKING:  # pragma: no cover - backbones imports torch; finding a reference reads files only
    import torch

    from .backbones import BackboneSpec


class ReferenceError(ProximityError, ValueError):
    """A reference file that cannot be used (unreadable, or made for another backbone)."""


@dataclass(frozen=True)
class ReferenceStats:
    """A loaded reference (shapes as in the module docstring)."""

    mu: np.ndarray
    eigvecs: np.ndarray
    eigvals: np.ndarray
    residual: float
    n: int
    layer_names: tuple[str, ...]
    layer_means: tuple[np.ndarray, ...]
    layer_vars: tuple[np.ndarray, ...]
    provenance: dict[str, Any]
    path: Path

    @property
    def dim(self) -> int:
        return int(self.mu.shape[0])

    def covariance(self) -> np.ndarray:
        """Σ_ref (d, d), float64."""
        v = self.eigvecs.astype(np.float64)
        return (v * self.eigvals) @ v.T + self.residual * (np.eye(self.dim) - v @ v.T)

    def trace(self) -> float:
        return float(self.eigvals.sum() + self.residual * (self.dim - self.eigvals.size))

    def moments(self, layer: str) -> tuple[np.ndarray, np.ndarray] | None:
        if layer not in self.layer_names:
            return None
        i = self.layer_names.index(layer)
        return self.layer_means[i], self.layer_vars[i]


def _safe(source: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_"
                   for c in source.split(":", 1)[-1].rstrip("/").split("/")[-1])[:60]


def reference_path(spec: BackboneSpec) -> Path:
    """Where the reference of ``spec`` is stored by default."""
    key = hashlib.sha256(json.dumps([spec.entry.source, spec.revision, spec.preprocess.describe(),
                                     spec.truncated_at, spec.model_kwargs], sort_keys=True).encode()).hexdigest()[:16]
    return data_dir() / "reference" / f"{_safe(spec.entry.source)}--{key}.npz"


def has_reference(entry: CatalogEntry) -> bool:
    """Cheap check for ``catalog list`` (no model is resolved): an explicit file, or a stored one
    whose provenance names this exact source (its revision is checked when a run loads it)."""
    if entry.reference:
        return _explicit(entry).is_file()
    for path in (data_dir() / "reference").glob(f"{_safe(entry.source)}--*.npz"):
        try:
            with np.load(path, allow_pickle=False) as z:
                if json.loads(str(z["provenance"])).get("source") == entry.source:
                    return True
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
            continue
    return False


def _explicit(entry: CatalogEntry) -> Path:
    p = Path(entry.reference).expanduser()
    return p if p.is_absolute() or entry.path is None else (entry.path.parent / p).resolve()


def hub_reference_path(entry_id: str) -> Path:
    """Where ``catalog refresh --references`` puts the distributed statistics of an entry."""
    from .cache import data_dir

    return data_dir() / "reference" / "hub" / f"{entry_id.replace('/', '--').replace(':', '_')}.npz"


def find_reference(spec: BackboneSpec) -> ReferenceStats | None:
    """The reference for ``spec`` (explicit ``reference`` of its entry first), or None.

    Raises ReferenceError when the file was made for another backbone, revision or preprocessing.
    """
    path = _explicit(spec.entry) if spec.entry.reference else reference_path(spec)
    if not path.is_file() and not spec.entry.reference:
        path = hub_reference_path(spec.entry.id)      # distributed ones, fetched by `catalog refresh --references`
    if not path.is_file():
        return None
    ref = load_reference(path)
    want = {"revision": spec.revision, "preprocess": spec.preprocess.describe(), "truncated_at": spec.truncated_at}
    if not spec.entry.reference:
        want["source"] = spec.entry.source
    wrong = [k for k, v in want.items() if ref.provenance.get(k) != v]
    if wrong:
        raise ReferenceError(f"reference statistics '{path}' were made for another backbone ({', '.join(wrong)} "
                             f"differ): rebuild them with `proximity catalog reference`")
    return ref


def load_reference(path: Path) -> ReferenceStats:
    try:
        with np.load(path, allow_pickle=False) as z:
            names = tuple(str(x) for x in z["layer_names"])
            return ReferenceStats(
                mu=z["mu"], eigvecs=z["eigvecs"], eigvals=z["eigvals"].astype(np.float64),
                residual=float(z["residual"]), n=int(z["n"]), layer_names=names,
                layer_means=tuple(z[f"lm_{i}"] for i in range(len(names))),
                layer_vars=tuple(z[f"lv_{i}"] for i in range(len(names))),
                provenance=json.loads(str(z["provenance"])), path=Path(path))
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ReferenceError(f"cannot read reference statistics '{path}': {exc}. Rebuild them with "
                             "`proximity catalog reference`.") from None


def build_reference(spec: BackboneSpec, images: str | Path, *, sample: int = 2000, top_k: int = 256, seed: int = 0,
                    device: str | torch.device = "cpu", batch_size: int = 32, output: Path | None = None,
                    progress=None) -> Path:
    """Compute and store the reference statistics of ``spec`` on the images under ``images``."""
    from ._version import __version__
    from .data import load_sample
    from .evidence import collect_evidence
    from .signals.kernels import gaussian_fit

    if not isinstance(top_k, int) or top_k < 1:
        raise InvalidParameterError("top_k", "build_reference", "an int in the range [1, inf)", top_k)
    smp = load_sample(images, labels="none", sample=sample, seed=seed)
    ev = collect_evidence(spec, smp, pretrained=True, device=device, batch_size=batch_size, seed=seed,
                          progress=progress)
    mu, cov = gaussian_fit(ev.features)
    w, v = np.linalg.eigh(cov)
    k = min(top_k, w.size)
    order = np.argsort(w)[::-1][:k]
    d = w.size
    residual = float(max(w.sum() - w[order].sum(), 0.0) / (d - k)) if d > k else 0.0
    out = Path(output) if output else reference_path(spec)
    if not out.name.endswith(".npz"):          # as np.savez names it
        out = out.with_name(out.name + ".npz")
    prov = {"source": spec.entry.source, "revision": spec.revision, "preprocess": spec.preprocess.describe(),
            "truncated_at": spec.truncated_at, "images": str(Path(images).resolve()), "n_images": smp.n,
            "n_skipped": len(smp.skipped), "sample_fingerprint": smp.fingerprint, "top_k": k,
            "shrinkage": "ledoit-wolf" if smp.n < 2 * d else "none", "date": date.today().isoformat(),
            "proximity_version": __version__}
    arrays: dict[str, Any] = {
        "mu": mu.astype(np.float32), "eigvecs": v[:, order].astype(np.float32), "eigvals": w[order],
        "residual": np.array(residual), "n": np.array(smp.n), "layer_names": np.array(ev.layer_names, dtype=str),
        "provenance": np.array(json.dumps(prov))}
    for i in range(len(ev.layer_names)):
        m, var = ev.layer_moments(i)
        arrays[f"lm_{i}"], arrays[f"lv_{i}"] = m, var
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(out, buf.getvalue())
    except OSError as exc:
        raise NotWritableError(out, exc.strerror or str(exc), "Free some space, or give --output a writable "
                               "place (or set PROXIMITY_DATA_DIR)") from exc
    return out
