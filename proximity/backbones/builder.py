"""The one build path, in two steps so that a cached run never loads weights:

* :func:`resolve_spec` (cheap, no weights): the entry's source finds the model's configuration and
  pins a revision; the format that configuration names makes the spec (preprocessing from the
  model's own config with the entry's ``[input]`` overrides on top);
* :func:`open_backbone`: the format builds the network, pretrained or with random weights under a
  fixed seed, in eval mode, and the early layers are found (:mod:`proximity.backbones.layers`).
"""

from __future__ import annotations

import torch

from ..catalog import CatalogEntry
from ..errors import UnsupportedModelError
from .layers import early_channels, find_early_layers, find_early_modules
from .registry import get_format, get_source
from .spec import Backbone, BackboneSpec

#: Words of a RuntimeError that mean the weights do not fit the architecture (a load failure).
_MISMATCH = ("size mismatch", "Missing key", "Unexpected key", "ignore_mismatched_sizes")


def resolve_spec(entry: CatalogEntry) -> BackboneSpec:
    """Resolve an entry's configuration without loading weights (see module docstring).

    Raises ModelNotFoundError, GatedModelError, HubUnavailableError or UnsupportedModelError.
    """
    if not entry.loadable:
        raise UnsupportedModelError(entry.id, entry.load_reason or "marked not loadable in the catalog")
    source = get_source(entry)
    where = source.locate(entry)
    return get_format(where.format, entry).spec(entry, where, source)


def open_backbone(spec: BackboneSpec, *, pretrained: bool = True, device: str | torch.device = "cpu",
                  seed: int = 0) -> Backbone:
    """Build the network (pooled output, no classifier), in eval mode on ``device``.

    With ``pretrained=False`` the weights are the format's initialisation under
    ``torch.manual_seed(seed)`` (the random-weights control); call
    :func:`~proximity.backbones.layers.reestimate_batchnorm` before using it.
    """
    from ..hub import hub_errors, offline_unless_reachable

    source, fmt = get_source(spec.entry), get_format(spec.format, spec.entry)
    with hub_errors(spec.entry.id), offline_unless_reachable(source.remote), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the caller's global RNG is left as it was (fork_rng)
        try:
            model = fmt.build(spec, source, pretrained)
        except RuntimeError as exc:
            if any(k in str(exc) for k in _MISMATCH):
                raise UnsupportedModelError(spec.entry.id,
                                            f"weights do not match the architecture: {str(exc)[:300]}") from None
            raise
    model.eval()
    dev = torch.device(device)
    early = find_early_layers(model)
    model.to(dev)
    return Backbone(spec=spec, model=model, early_layers=early,
                    early_modules=[] if early else find_early_modules(model),
                    early_channels=early_channels(model),
                    feature_dim=int(getattr(model, "num_features", 0)), device=dev, pretrained=pretrained)


def has_early_batchnorm(entry: CatalogEntry) -> bool | None:
    """Whether the entry's architecture has early BN layers, built on the meta device (no weights,
    no memory) from the configuration its source knows offline; None when that is not known."""
    try:
        source = get_source(entry)
        config = source.offline_config(entry)
        if config is None:
            return None
        model = get_format(source.format_of(entry, config), entry).meta_model(entry, config)
        return None if model is None else bool(find_early_layers(model))
    except Exception:  # unknown architecture, unreadable config: say "not known", never guess
        return None
