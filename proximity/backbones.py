"""One build path for every backbone source: ``timm:``, ``hf-hub:`` and ``local-dir:``.

Two steps, so that a cached run never loads weights:

* :func:`resolve_spec` (cheap, no weights) reads the model's own configuration — timm's
  ``pretrained_cfg``, or the repo's ``config.json`` — overlays the catalog entry's ``[input]``
  overrides, and pins a revision (Hub commit; timm version + tag; content hash of a local dir);
* :func:`open_backbone` builds the network with timm, pretrained or with random weights under a
  fixed seed, in eval mode, and finds its *early layers*.

**Early layers** are the batch-norm layers (``nn.BatchNorm2d`` and subclasses such as timm's
``BatchNormAct2d``), in module order, from the stem up to and including the end of the *first
stage*: the module named by the second entry of timm's ``feature_info`` (the first block after
the stem, at reduction 4 for a ResNet: ``conv1``/``bn1`` plus ``layer1``). A model with a single
``feature_info`` entry uses that one; a model without ``feature_info`` uses the first quarter of
its BN layers. Their *inputs* are what the early-shift signal compares with their running stats.

Hub ``config.json`` with ``architecture`` is a timm repo; one with ``model_type`` is a
transformers repo (an entry's ``format`` overrides). **transformers** backbones go through the
same two steps: the preprocessing comes from ``AutoImageProcessor`` (size, crop, mean/std,
resample → the timm-style data config), the network from ``AutoModel`` (``AutoConfig`` +
``from_config`` for the random-weights control). Their pooled feature is the first (CLS) token of
the last hidden state for token models — the pooler's dense layer is skipped, since
self-supervised checkpoints (DINO, iBOT) do not train it — and the model's own pooled output for
convolutional ones, for token models without a class token (SigLIP's attention pooling, Swin),
for CLIP (the class token after its post-LayerNorm) and for BEiT/DiT with mean pooling. Of an
image-text model (CLIP, SigLIP) only the image tower (``vision_model``) is used. Weights are
used in float32 whatever dtype the checkpoint was saved in. Early layers: the first two blocks of the first block list (``layers``/``encoder.layer``) of
a token model, or the embedder and first stage (``encoder.stages``) of a convolutional one, as
for timm. Never ``trust_remote_code``:
a model type transformers does not know is reported, not run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import torch
from torch import nn

from .catalog import CatalogEntry, parse_source
from .errors import InvalidParameterError, ModelNotFoundError, UnsupportedModelError
from .preprocess import Preprocess

#: Images (shuffled, seeded) and batch size used to re-estimate the batch-norm statistics of the
#: random-weights control — fixed, so that the control does not depend on ``--batch-size``.
BN_REESTIMATE_IMAGES = 256
BN_REESTIMATE_BATCH = 64


@dataclass(frozen=True)
class BackboneSpec:
    """What is known of a backbone before its weights are loaded."""

    entry: CatalogEntry
    create_name: str                 # the name handed to timm.create_model
    architecture: str                # timm architecture
    revision: str                    # commit / version / content hash: part of the cache key
    data_config: dict[str, Any]      # resolved timm data config (input_size, mean, std, ...)
    preprocess: Preprocess
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    truncated_at: str = ""           # "features.39": the network is cut after this module
    format: str = "timm"             # "timm" | "transformers"


@dataclass
class Backbone:
    """A built network in eval mode with what the evidence pass needs."""

    spec: BackboneSpec
    model: nn.Module
    early_layers: list[tuple[str, nn.BatchNorm2d]]    # early BN layers (inputs watched)
    feature_dim: int
    device: torch.device
    pretrained: bool = True
    early_modules: list[tuple[str, nn.Module]] = field(default_factory=list)  # no BN: outputs watched
    early_channels: dict[str, int] = field(default_factory=dict)              # their channel counts

    @torch.inference_mode()
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features of shape (N, feature_dim) for a preprocessed batch (N, C, H, W)."""
        out = self.model(x.to(self.device))
        if out.ndim != 2:
            raise UnsupportedModelError(self.spec.entry.id, f"pooled output has shape {tuple(out.shape)}, expected (N, d)")
        return out


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then MPS, then CPU. Raises UnsupportedModelError for an absent device."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device not in ("cpu", "cuda", "mps"):
        raise InvalidParameterError("device", "rank", "one of 'auto', 'cpu', 'cuda', 'mps'", device)
    if device == "cuda" and not torch.cuda.is_available():
        raise InvalidParameterError("device", "rank", "'cpu' or 'auto' here: no CUDA device is available", device)
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InvalidParameterError("device", "rank", "'cpu' or 'auto' here: MPS is not available", device)
    return torch.device(device)


def _timm_name_spec(entry: CatalogEntry, name: str) -> tuple[str, str, dict[str, Any], str]:
    import timm
    from timm.models import get_pretrained_cfg, split_model_name_tag

    arch, tag = split_model_name_tag(name)
    if not timm.is_model(arch):
        close = timm.list_models(f"*{arch.split('_')[0]}*")[:6]
        hint = f"; similar timm models: {', '.join(close)}" if close else ""
        raise ModelNotFoundError(entry.id, f"timm has no architecture '{arch}'{hint}")
    try:
        cfg = get_pretrained_cfg(name) if tag else get_pretrained_cfg(arch)
    except RuntimeError:  # timm: invalid tag for a known architecture
        cfg = None
    if cfg is None:
        tags = timm.list_pretrained(f"{arch}.*")[:6]
        raise ModelNotFoundError(entry.id, f"timm has no pretrained weights '{name}'; available: {', '.join(tags) or 'none'}")
    return name, arch, cfg.to_dict(), f"timm=={timm.__version__}:{name}"


def repo_format(entry: CatalogEntry, cfg: dict[str, Any]) -> str:
    """``timm`` / ``transformers`` / ``""`` (unknown) from the entry's ``format`` or config.json."""
    return entry.format or ("timm" if "architecture" in cfg else "transformers" if "model_type" in cfg else "")


_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic"}


def _transformers_spec(entry: CatalogEntry, cfg: dict[str, Any], ref: str, revision: str | None) -> dict[str, Any]:
    """A timm-style pretrained_cfg from the repo's ``AutoImageProcessor`` (no weights loaded)."""
    from transformers import AutoImageProcessor

    model_type = cfg.get("model_type", "")
    _check_model_type(entry, model_type)
    try:
        proc = AutoImageProcessor.from_pretrained(ref, revision=revision or None, trust_remote_code=False)
    except OSError as exc:
        if "preprocessor_config" in str(exc) or "does not appear to have" in str(exc):
            if entry.input_size and entry.mean and entry.std:      # the entry says how, with provenance
                c = int(cfg.get("num_channels", 3))
                return {"input_size": (c, entry.input_size, entry.input_size), "mean": entry.mean, "std": entry.std,
                        "crop_pct": 1.0, "crop_mode": "center", "interpolation": "bicubic"}
            raise UnsupportedModelError(entry.id, "the repo has no preprocessor_config.json (AutoImageProcessor); "
                                        "set [input] size, mean and std in its catalog entry") from None
        raise
    except ValueError as exc:
        raise UnsupportedModelError(entry.id, f"AutoImageProcessor cannot read this repo without remote code: {str(exc)[:200]}") from None
    size = dict(getattr(proc, "size", None) or {})
    crop = dict(getattr(proc, "crop_size", None) or {}) if getattr(proc, "do_center_crop", False) else {}
    short = size.get("shortest_edge")
    h, w = (crop.get("height"), crop.get("width")) if crop else (size.get("height", short), size.get("width", short))
    crop_pct = (int(h) / short) if crop and short and h else 1.0
    if not crop and short and getattr(proc, "crop_pct", None) and short < 384:   # ConvNeXt-style: resize, crop
        crop_pct = float(proc.crop_pct)
    if not h or not w:
        raise UnsupportedModelError(entry.id, f"cannot read an input size from its image processor (size={size})")
    normalise = getattr(proc, "do_normalize", True)
    c = int(cfg.get("num_channels", 3))
    return {"input_size": (c, int(h), int(w)),
            "mean": tuple(proc.image_mean) if normalise else (0.0,) * c,
            "std": tuple(proc.image_std) if normalise else (1.0,) * c,
            "crop_pct": crop_pct, "crop_mode": "center",
            "interpolation": _RESAMPLE.get(int(resample), "bilinear") if (resample := getattr(proc, "resample", None)) is not None
            else "bilinear"}


def _check_model_type(entry: CatalogEntry, model_type: str) -> None:
    from transformers import CONFIG_MAPPING

    if not model_type:
        raise UnsupportedModelError(entry.id, "config.json has no model_type (remote-code models are not run)")
    if model_type not in CONFIG_MAPPING:
        import transformers

        raise UnsupportedModelError(entry.id, f"transformers {transformers.__version__} has no model type "
                                    f"'{model_type}' (it may need remote code, which proximity never runs)")


def _repo_spec(entry: CatalogEntry, cfg: dict[str, Any], revision: str, create_name: str) -> tuple[str, str, dict[str, Any], str]:
    """(create name, architecture, pretrained_cfg, revision) of a repo's timm config.json."""
    fmt = repo_format(entry, cfg)
    if fmt != "timm" or "architecture" not in cfg:
        raise UnsupportedModelError(entry.id, "config.json names neither a timm 'architecture' nor a transformers 'model_type'")
    pretrained_cfg = dict(cfg.get("pretrained_cfg") or {k: v for k, v in cfg.items() if k not in ("architecture", "model_args")})
    return create_name, cfg["architecture"], pretrained_cfg, revision


def _local_dir_revision(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.iterdir()):
        if p.is_file() and (p.name == "config.json" or p.suffix in (".safetensors", ".bin", ".pth")):
            h.update(p.name.encode())
            with open(p, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 22), b""):
                    h.update(chunk)
    return "sha256:" + h.hexdigest()[:16]


def resolve_spec(entry: CatalogEntry) -> BackboneSpec:
    """Resolve an entry's configuration without loading weights (see module docstring).

    Raises ModelNotFoundError, GatedModelError, HubUnavailableError or UnsupportedModelError.
    """
    if not entry.loadable:
        raise UnsupportedModelError(entry.id, entry.load_reason or "marked not loadable in the catalog")
    kind, rest = parse_source(entry.source)
    if kind == "timm":
        create, arch, pcfg, rev = _timm_name_spec(entry, rest)
    elif kind == "hf-hub":
        from .hub import download_config, split_repo

        repo, pinned = split_repo(rest)
        cfg, commit = download_config(repo, entry.revision or pinned)
        if repo_format(entry, cfg) == "transformers":
            from .hub import hub_errors, offline_unless_reachable

            with hub_errors(entry.id), offline_unless_reachable():
                pcfg = _transformers_spec(entry, cfg, repo, commit or entry.revision or pinned)
            return _finish(entry, repo, f"transformers:{cfg['model_type']}", pcfg, commit, "", "transformers")
        create, arch, pcfg, rev = _repo_spec(entry, cfg, commit, f"hf-hub:{repo}@{commit}" if commit else f"hf-hub:{repo}")
    else:
        folder = Path(rest)
        if not folder.is_dir():
            raise ModelNotFoundError(entry.id, f"local folder '{folder}' does not exist")
        if not (folder / "config.json").is_file():
            raise ModelNotFoundError(entry.id, f"'{folder}' has no config.json (a timm-format repo has config.json and model.safetensors)")
        if not any((folder / f).is_file() for f in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")):
            raise ModelNotFoundError(entry.id, f"'{folder}' has no model.safetensors")
        with open(folder / "config.json", encoding="utf-8") as fh:
            cfg = json.load(fh)
        if repo_format(entry, cfg) == "transformers":
            pcfg = _transformers_spec(entry, cfg, str(folder), None)
            return _finish(entry, str(folder), f"transformers:{cfg['model_type']}", pcfg, _local_dir_revision(folder), "",
                           "transformers")
        create, arch, pcfg, rev = _repo_spec(entry, cfg, _local_dir_revision(folder), f"local-dir:{folder}")
    truncated = entry.truncated_at or (cfg.get("proximity", {}).get("truncated_at", "") if kind != "timm" else "")
    if truncated and kind == "timm":
        raise UnsupportedModelError(entry.id, "truncated_at needs a hf-hub: or local-dir: repo holding the truncated weights")
    return _finish(entry, create, arch, pcfg, rev, truncated, "timm")


def _finish(entry: CatalogEntry, create: str, arch: str, pcfg: dict[str, Any], rev: str, truncated: str, fmt: str) -> BackboneSpec:
    from timm.data import resolve_data_config

    if truncated and fmt == "transformers":
        raise UnsupportedModelError(entry.id, "truncated_at is supported for timm networks only")
    pcfg = _overlay(pcfg, entry)
    data_config = resolve_data_config(pretrained_cfg=pcfg)
    kwargs = {"in_chans": int(data_config["input_size"][0])} if entry.channels and fmt == "timm" else {}
    return BackboneSpec(entry=entry, create_name=create, architecture=arch, revision=rev,
                        data_config=data_config, preprocess=Preprocess.from_data_config(data_config),
                        model_kwargs=kwargs, truncated_at=truncated, format=fmt)


def _overlay(pcfg: dict[str, Any], entry: CatalogEntry) -> dict[str, Any]:
    pcfg = dict(pcfg)
    c, h, w = pcfg.get("input_size") or (3, 224, 224)
    if entry.channels:
        c = entry.channels
    if entry.input_size:
        h = w = entry.input_size
    pcfg["input_size"] = (c, h, w)
    if entry.mean:
        pcfg["mean"] = entry.mean
    if entry.std:
        pcfg["std"] = entry.std
    return pcfg


def open_backbone(spec: BackboneSpec, *, pretrained: bool = True, device: str | torch.device = "cpu", seed: int = 0) -> Backbone:
    """Build the network (pooled output, no classifier), in eval mode on ``device``.

    With ``pretrained=False`` the weights are timm's initialisation under ``torch.manual_seed(seed)``
    (the random-weights control); call :func:`reestimate_batchnorm` before using it.
    """
    import timm

    from .hub import hub_errors, offline_unless_reachable

    remote = spec.entry.kind != "local-dir"
    with hub_errors(spec.entry.id), offline_unless_reachable(remote), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the caller's global RNG is left as it was (fork_rng)
        try:
            if spec.format == "transformers":
                model = _open_transformers(spec, pretrained)
            elif spec.truncated_at:
                model = truncate(timm.create_model(spec.create_name, pretrained=False, num_classes=0, **spec.model_kwargs),
                                 spec.truncated_at)
                if pretrained:
                    _load_truncated_weights(model, spec)
            else:
                model = timm.create_model(spec.create_name, pretrained=pretrained, num_classes=0, **spec.model_kwargs)
        except RuntimeError as exc:
            if any(k in str(exc) for k in ("size mismatch", "Missing key", "Unexpected key", "ignore_mismatched_sizes")):
                raise UnsupportedModelError(spec.entry.id, f"weights do not match the architecture: {str(exc)[:300]}") from None
            raise
    model.eval()
    dev = torch.device(device)
    early = find_early_layers(model)
    model.to(dev)
    return Backbone(spec=spec, model=model, early_layers=early, early_modules=[] if early else find_early_modules(model),
                    early_channels=early_channels(model),
                    feature_dim=int(getattr(model, "num_features", 0)), device=dev, pretrained=pretrained)


#: transformers model types whose own pooled output is the feature even though they have a class
#: token: CLIP's pooler is the class token *after* post_layernorm; BEiT/DiT/data2vec-vision with
#: ``use_mean_pooling`` pool the patch tokens through their pooler LayerNorm (what their heads use).
POOLED_TYPES = frozenset({"clip", "clip_vision_model", "beit", "data2vec-vision"})


def _uses_cls_token(model: nn.Module, model_type: str) -> bool:
    """CLS token for token models that have one (ViT, DINOv2, DINOv3, ...); the pooled output for
    the types above, for models without a class token (SigLIP, Swin, ...) and for conv nets."""
    if model_type.startswith("clip"):
        return False
    if model_type in POOLED_TYPES:                 # BEiT family: the class token only without mean pooling
        return not getattr(model.config, "use_mean_pooling", True)
    emb = getattr(model, "embeddings", None)
    return emb is not None and getattr(emb, "cls_token", None) is not None


def _open_transformers(spec: BackboneSpec, pretrained: bool) -> nn.Module:
    from transformers import AutoConfig, AutoModel

    rev = {"revision": spec.revision} if spec.entry.kind == "hf-hub" and spec.revision else {}
    config = AutoConfig.from_pretrained(spec.create_name, trust_remote_code=False, **rev)
    if getattr(config, "model_type", "") == "vit_mae":
        config.mask_ratio = 0.0                   # MAE masks 75 % of the patches even in eval mode
    if pretrained:
        model, info = AutoModel.from_pretrained(spec.create_name, config=config, trust_remote_code=False,
                                                output_loading_info=True, **rev)
        # a pooler the checkpoint lacks: its dense layer is never used (CLS token), its LayerNorm
        # (BEiT mean pooling) starts as the identity affine map, deterministically
        missing = [k for k in info.get("missing_keys", ())
                   if not (k.startswith("pooler.") and (".layernorm." in k or "dense" in k))]
        if missing or info.get("mismatched_keys"):
            raise UnsupportedModelError(spec.entry.id, f"weights do not match {type(model).__name__}: missing {sorted(missing)[:4]}, "
                                        f"mismatched {list(info.get('mismatched_keys', ()))[:2]}")
    else:
        model = AutoModel.from_config(config)
    model = model.float()                         # transformers 5 loads a checkpoint's own dtype (bf16...)
    model_type = getattr(model.config, "model_type", "")
    if hasattr(model, "vision_model"):            # image-text models (CLIP, SigLIP): the image tower only
        model = model.vision_model
    return TransformersBackbone(model, cls_token=_uses_cls_token(model, model_type))


class TransformersBackbone(nn.Module):
    """A transformers vision model as proximity uses it: pixel values in, pooled (N, d) out, with
    a timm-style ``feature_info`` naming its early blocks (module docstring)."""

    def __init__(self, model: nn.Module, cls_token: bool = True) -> None:
        super().__init__()
        self.model = model
        self.cls_token = cls_token
        cfg = model.config
        sizes = getattr(cfg, "hidden_sizes", None)
        self.num_features = int(getattr(cfg, "hidden_size", 0) or (sizes[-1] if sizes else 0))
        blocks = next(((n, m) for n, m in model.named_modules() if isinstance(m, nn.ModuleList) and len(m) >= 1
                       and n.rsplit(".", 1)[-1] in ("layer", "layers", "stages", "blocks", "model")), None)
        self.feature_info: list[dict[str, Any]] = []
        if blocks is not None and blocks[0].rsplit(".", 1)[-1] == "stages":      # convolutional: stem + first stage
            first = int(sizes[0]) if sizes else 0
            stem = next((n for n in ("embedder", "embeddings", "stem") if hasattr(model, n)), None)
            if stem:
                self.feature_info.append({"module": f"model.{stem}", "num_chs": int(getattr(cfg, "embedding_size", 0) or first)})
            self.feature_info.append({"module": f"model.{blocks[0]}.0", "num_chs": first})
        elif blocks is not None and len(blocks[1]) >= 2:                          # token model: first two blocks
            self.feature_info = [{"module": f"model.{blocks[0]}.{i}", "num_chs": self.num_features} for i in (0, 1)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(pixel_values=x)
        h = out.last_hidden_state
        if h.ndim == 3 and self.cls_token:
            return h[:, 0]                         # the class token of the last hidden state
        pooled = getattr(out, "pooler_output", None)
        if pooled is not None:
            return pooled.flatten(1)
        return h.mean(dim=(2, 3)) if h.ndim == 4 else h.mean(dim=1)


class TruncatedBackbone(nn.Module):
    """``features[: k + 1]`` of a timm network, globally average-pooled to (N, C).

    Module names (``features.0`` …) are those of the original network, so checkpoint keys and
    ``feature_info`` entries keep their meaning.
    """

    def __init__(self, features: nn.Sequential, feature_info: list[dict[str, Any]], truncated_at: str) -> None:
        super().__init__()
        self.features = features
        self.feature_info = feature_info
        self.truncated_at = truncated_at
        convs = [m for m in features.modules() if isinstance(m, nn.Conv2d)]
        self.num_features = convs[-1].out_channels if convs else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).mean(dim=(2, 3))


def truncate(model: nn.Module, truncated_at: str) -> TruncatedBackbone:
    """Cut a timm network after module ``truncated_at`` (``'<sequential>.<index>'``)."""
    parent, _, index = truncated_at.rpartition(".")
    seq = model.get_submodule(parent) if parent else None
    if not isinstance(seq, nn.Sequential) or not index.isdigit() or int(index) >= len(seq):
        raise UnsupportedModelError(truncated_at, f"truncated_at must name an index of a Sequential (e.g. 'features.39'); got '{truncated_at}'")
    k = int(index)
    if parent != "features":
        raise UnsupportedModelError(truncated_at, "only truncation inside the top-level 'features' Sequential is supported")
    info = [f for f in (getattr(model, "feature_info", None) or [])
            if f.get("module", "").startswith("features.") and int(f["module"].split(".")[1]) <= k]
    return TruncatedBackbone(nn.Sequential(*list(seq)[: k + 1]), info, truncated_at)


def _load_truncated_weights(model: nn.Module, spec: BackboneSpec) -> None:
    from safetensors.torch import load_file

    kind, rest = parse_source(spec.entry.source)
    if kind == "local-dir":
        path = Path(rest) / "model.safetensors"
    else:
        from huggingface_hub import hf_hub_download

        from .hub import split_repo
        repo, _ = split_repo(rest)
        path = Path(hf_hub_download(repo, "model.safetensors", revision=spec.revision or None))
    state = load_file(str(path))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise UnsupportedModelError(spec.entry.id, f"truncated weights do not match {spec.architecture} cut at "
                                    f"{spec.truncated_at}: missing {missing[:5]}, unexpected {unexpected[:5]}")


def has_early_batchnorm(entry: CatalogEntry) -> bool | None:
    """Whether the entry's architecture has early BN layers (see module docstring), built on the
    meta device (no weights, no memory); None when the architecture is not known offline."""
    import timm

    try:
        kind, rest = parse_source(entry.source)
        args: dict[str, Any] = {}
        if kind == "timm":
            arch = rest.split(".")[0]
        else:
            if kind == "local-dir":
                cfg_path = Path(rest) / "config.json"
            else:
                from huggingface_hub import try_to_load_from_cache

                from .hub import split_repo
                hit = try_to_load_from_cache(split_repo(rest)[0], "config.json", revision=entry.revision or None)
                cfg_path = Path(hit) if isinstance(hit, str) else None
            if cfg_path is None or not cfg_path.is_file():
                return None
            cfg = json.loads(cfg_path.read_text())
            arch, args = cfg["architecture"], dict(cfg.get("model_args") or {})
        args["num_classes"] = 0
        with torch.device("meta"):
            model = timm.create_model(arch, pretrained=False, **args)
        if entry.truncated_at:
            model = truncate(model, entry.truncated_at)
        return bool(find_early_layers(model))
    except Exception:  # unknown architecture, unreadable config: say "not known", never guess
        return None


def find_early_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """For networks without early BN layers: the modules named by the first two ``feature_info``
    entries (ViT ``blocks.0``/``blocks.1``, ConvNeXt ``stages.0``/``stages.1``, VGG
    ``features.3``/``features.8``), whose *outputs* are watched. Their reference moments come
    from ``proximity catalog reference``, not from the network."""
    info = getattr(model, "feature_info", None)
    names = [f.get("module") for f in info] if isinstance(info, list) else []
    if hasattr(info, "module_name"):
        names = list(info.module_name())
    out = []
    for name in names[:2]:
        try:
            out.append((name, model.get_submodule(name)))
        except AttributeError:
            try:
                out.append((name, model.get_submodule(name.replace("_", "."))))
            except AttributeError:
                continue
    return out


def early_channels(model: nn.Module) -> dict[str, int]:
    """``feature_info`` channel counts by module name (tells where the channel axis of an output is)."""
    info = getattr(model, "feature_info", None)
    if isinstance(info, list):
        return {f.get("module"): int(f.get("num_chs", 0)) for f in info}
    if hasattr(info, "module_name") and hasattr(info, "channels"):
        return dict(zip(info.module_name(), info.channels()))
    return {}


def find_early_layers(model: nn.Module) -> list[tuple[str, nn.BatchNorm2d]]:
    """The early batch-norm layers, as defined in the module docstring."""
    bns = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]
    info = getattr(model, "feature_info", None)
    names = [f.get("module") for f in info] if isinstance(info, list) else []
    if hasattr(info, "module_name"):
        names = list(info.module_name())
    if not names:
        return bns[: max(1, len(bns) // 4)] if bns else []
    boundary = names[1] if len(names) > 1 else names[0]
    boundary = boundary.replace("_", ".") if not any(n == boundary for n, _ in model.named_modules()) else boundary
    out, inside = [], False
    for n, m in model.named_modules():
        under = n == boundary or n.startswith(boundary + ".")
        if inside and not under:
            break
        inside = inside or under
        if isinstance(m, nn.BatchNorm2d):
            out.append((n, m))
    return out


@torch.inference_mode()
def reestimate_batchnorm(backbone: Backbone, batches: Iterable[torch.Tensor]) -> int:
    """Replace every BN layer's running statistics by the plain average over ``batches``.

    Returns the number of images used. Only BN layers switch to train mode (dropout stays off).
    """
    bns = [m for m in backbone.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return 0
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average = exact mean over batches
        m.train()
    n = 0
    try:
        for x in batches:
            backbone.model(x.to(backbone.device))
            n += x.shape[0]
    finally:
        for m, mom in zip(bns, saved):
            m.momentum = mom
            m.eval()
    return n
