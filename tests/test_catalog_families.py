"""Every architecture family of the shipped catalog has a tiny same-family copy on the fake Hub
that loads and ranks through the real hf-hub path (timm module, or transformers model_type)."""

import pytest

import proximity
from conftest import S
from fakehub import timm_repo_files
from proximity import load_catalog

TIMM_TINY = {   # timm module -> (architecture, small model_args)
    "resnet": ("test_resnet", {}), "convnext": ("test_convnext", {}), "efficientnet": ("test_efficientnet", {}),
    "vision_transformer": ("test_vit", {}), "mobilenetv3": ("mobilenetv3_small_050", {}),
    "densenet": ("densenet121", {"growth_rate": 4, "block_config": [1, 1, 1, 1]}), "regnet": ("regnetx_002", {}),
    "eva": ("vit_large_patch16_dinov3", {"embed_dim": 32, "depth": 2, "num_heads": 2, "img_size": 32}),
}
TRANSFORMERS_TINY = ("vit", "dinov2", "beit", "clip", "siglip", "dinov3_vit")


def _timm_module(arch: str) -> str:
    """The timm module that defines ``arch``, through timm's public listing API."""
    import timm

    found = [m for m in timm.list_modules() if arch in timm.list_models(module=m)]
    assert len(found) == 1, f"{arch}: defined in {found}"
    return found[0]


def catalog_families() -> set[str]:
    out = set()
    for e in load_catalog("default"):
        if not e.loadable:
            continue
        if e.kind == "timm":
            out.add(_timm_module(e.locator.split(".")[0]))
        else:
            assert e.family, f"{e.id}: a loadable hf-hub entry must name its family ([load] family)"
            out.add(e.family)
    return out


def test_every_catalog_family_has_a_tiny_copy():
    assert catalog_families() <= set(TIMM_TINY) | set(TRANSFORMERS_TINY)


@pytest.mark.slow
def test_tiny_copies_of_every_family_rank_through_the_hub(hub, tmp_path, target_dir, fresh_cache):
    import json
    import timm
    import torch
    models = []
    for fam in sorted(catalog_families()):
        repo = f"families/{fam}"
        if fam in TIMM_TINY:
            arch, args = TIMM_TINY[fam]
            torch.manual_seed(0)
            files = timm_repo_files(timm.create_model(arch, num_classes=0, **args))
            cfg = json.loads(files["config.json"])
            cfg["model_args"] = {**cfg.get("model_args", {}), **args}
            cfg["pretrained_cfg"]["input_size"] = [3, 32, 32]
            files["config.json"] = json.dumps(cfg).encode()
            hub.add_repo(repo, files, library_name="timm")
        else:
            hub.add_dir(repo, S.save_transformers_repo(fam, tmp_path / fam), library_name="transformers")
        models.append(f"hf-hub:{repo}")
    r = proximity.rank(target_dir, models=models, sample=16, control=False)
    assert not r.failed, [(f.model, f.error) for f in r.failed]
    assert len(r.ranking) == len(models)
    for c in r.ranking:
        assert c.signals["probe"].value is not None
