import json

import pytest
import timm
import torch

from fakehub import timm_repo_files
from proximity.backbones import find_early_layers, open_backbone, reestimate_batchnorm, resolve_spec
from proximity.catalog import CatalogEntry, adhoc_entry
from proximity.errors import GatedModelError, ModelNotFoundError, UnsupportedModelError


def test_early_layers_are_the_bns_up_to_the_end_of_the_first_stage():
    names = [n for n, _ in find_early_layers(timm.create_model("test_resnet"))]
    assert names == ["conv1.1", "conv1.4", "bn1", "layer1.0.bn1", "layer1.0.bn2"]


@pytest.mark.parametrize("arch", ["test_efficientnet", "test_byobnet", "test_vit", "test_convnext", "test_resnet"])
def test_early_layers_other_families(arch):
    """The early BN layers are exactly those that *run* before the second feature_info module's
    output exists — found here independently, by forward hooks in execution order."""
    model = timm.create_model(arch, img_size=32) if "vit" in arch else timm.create_model(arch)
    names = [f["module"] for f in model.feature_info]
    boundary = model.get_submodule(names[1] if len(names) > 1 else names[0])
    ran, done = [], []
    hooks = [m.register_forward_hook(lambda mod, i, o, n=n: ran.append(n) if not done else None)
             for n, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
    hooks.append(boundary.register_forward_hook(lambda *a: done.append(True)))
    with torch.no_grad():
        model.eval()(torch.randn(1, 3, 32, 32))
    for h in hooks:
        h.remove()
    found = [n for n, _ in find_early_layers(model)]
    assert sorted(found) == sorted(ran) and len(set(found)) == len(found)     # (registration vs execution order)
    assert (ran == []) == (arch in ("test_vit", "test_convnext"))


def test_local_dir_spec_and_build(backbones):
    spec = resolve_spec(adhoc_entry(f"local-dir:{backbones['A']}"))
    assert spec.architecture == "test_resnet" and spec.preprocess.size == (48, 48)
    assert spec.revision.startswith("sha256:")
    bb = open_backbone(spec)
    assert not bb.model.training and bb.feature_dim > 0
    out = bb.features(torch.zeros(2, 3, 48, 48))
    assert out.shape == (2, bb.feature_dim)


def test_local_dir_errors(tmp_path):
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        resolve_spec(adhoc_entry(f"local-dir:{tmp_path / 'nope'}"))
    with pytest.raises(ModelNotFoundError, match="has no config.json"):
        resolve_spec(adhoc_entry(f"local-dir:{tmp_path}"))


def test_timm_name_errors():
    with pytest.raises(ModelNotFoundError, match="timm has no architecture 'resnet9000'"):
        resolve_spec(adhoc_entry("timm:resnet9000"))
    with pytest.raises(ModelNotFoundError, match="no pretrained weights 'resnet18.bogus'"):
        resolve_spec(adhoc_entry("timm:resnet18.bogus"))


def test_catalog_overrides_input(backbones):
    e = CatalogEntry(id="a", source=f"local-dir:{backbones['A']}", input_size=32, mean=(0.1, 0.2, 0.3))
    spec = resolve_spec(e)
    assert spec.preprocess.size == (32, 32) and spec.preprocess.mean == (0.1, 0.2, 0.3)


def test_not_loadable_entry_is_refused_with_its_reason():
    e = CatalogEntry(id="x", source="hf-hub:org/x", loadable=False, load_reason="needs remote code")
    with pytest.raises(UnsupportedModelError, match="needs remote code"):
        resolve_spec(e)


def test_hf_hub_timm_repo_through_the_real_client(hub):
    model = timm.create_model("test_resnet", num_classes=0)
    sha = hub.add_repo("org/tiny-resnet", timm_repo_files(model))
    spec = resolve_spec(adhoc_entry("hf-hub:org/tiny-resnet"))
    assert spec.revision == sha and spec.create_name == f"hf-hub:org/tiny-resnet@{sha}"
    bb = open_backbone(spec)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(bb.model.state_dict()[k], v)


def test_hf_hub_errors(hub):
    model = timm.create_model("test_resnet", num_classes=0)
    hub.add_repo("org/gated-resnet", timm_repo_files(model), gated=True)
    with pytest.raises(GatedModelError, match="set HF_TOKEN"):
        resolve_spec(adhoc_entry("hf-hub:org/gated-resnet"))
    with pytest.raises(ModelNotFoundError, match="no such repository"):
        resolve_spec(adhoc_entry("hf-hub:org/does-not-exist"))
    hub.add_repo("org/tiny-vit", {"config.json": json.dumps({"model_type": "vit"}).encode()})
    with pytest.raises(UnsupportedModelError, match="no preprocessor_config.json"):
        resolve_spec(adhoc_entry("hf-hub:org/tiny-vit"))
    hub.add_repo("org/neither", {"config.json": json.dumps({"hidden_size": 8}).encode()})
    with pytest.raises(UnsupportedModelError, match="neither a timm 'architecture' nor a transformers 'model_type'"):
        resolve_spec(adhoc_entry("hf-hub:org/neither"))


def test_random_control_is_seeded_and_bn_reestimated(backbones):
    spec = resolve_spec(adhoc_entry(f"local-dir:{backbones['A']}"))
    a = open_backbone(spec, pretrained=False, seed=1)
    b = open_backbone(spec, pretrained=False, seed=1)
    c = open_backbone(spec, pretrained=True)
    wa, wc = a.model.state_dict(), c.model.state_dict()
    key = "conv1.0.weight"
    torch.testing.assert_close(wa[key], b.model.state_dict()[key])
    assert not torch.equal(wa[key], wc[key])
    x = torch.randn(16, 3, 48, 48) * 3 + 1
    assert reestimate_batchnorm(a, [x[:8], x[8:]]) == 16
    bn = a.model.conv1[1]
    # first BN sees conv1.0's output: its running mean is now that output's exact mean
    with torch.no_grad():
        h = a.model.conv1[0](x)
    torch.testing.assert_close(bn.running_mean, h.mean((0, 2, 3)), rtol=1e-4, atol=1e-5)
    assert not bn.training and bn.momentum == 0.1


def test_unreachable_hub_fails_fast_with_a_clear_reason(monkeypatch, target_dir, fresh_cache):
    """With the Hub unreachable, no model fetch opens a connection (the client's ~45 s of retries
    per model never start): every socket connect is recorded and refused."""
    import socket

    import proximity
    import proximity.hub as hubmod
    monkeypatch.setattr(hubmod, "hub_reachable", lambda timeout=3.0: False)
    attempts = []

    def refuse(self, address):
        attempts.append(address)
        raise ConnectionRefusedError("test: no network")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    r = proximity.rank(target_dir, models=["timm:resnet18.a1_in1k", "hf-hub:org/tiny-resnet-offline"], sample=8)
    assert attempts == []
    assert [f.stage for f in r.failed] == ["fetch", "fetch"]
    assert all("unreachable" in f.error for f in r.failed)


def test_offline_switch_is_restored_and_local_sources_never_probe(monkeypatch):
    from huggingface_hub import constants

    import proximity.hub as hubmod
    calls = []
    monkeypatch.setattr(hubmod, "hub_reachable", lambda timeout=3.0: calls.append(1) or False)
    before = constants.HF_HUB_OFFLINE
    with hubmod.offline_unless_reachable() as ok:
        assert ok is False and constants.HF_HUB_OFFLINE is True
    assert constants.HF_HUB_OFFLINE == before and calls == [1]
    with hubmod.offline_unless_reachable(remote=False):
        pass
    assert calls == [1]


def test_has_early_batchnorm_per_architecture(backbones):
    from proximity.backbones import has_early_batchnorm
    assert has_early_batchnorm(CatalogEntry(id="r", source="timm:resnet18.a1_in1k")) is True
    assert has_early_batchnorm(CatalogEntry(id="v", source="timm:vit_small_patch16_224.augreg_in21k_ft_in1k")) is False
    assert has_early_batchnorm(adhoc_entry(f"local-dir:{backbones['A']}")) is True
    assert has_early_batchnorm(CatalogEntry(id="h", source="hf-hub:org/never-fetched")) is None


def test_random_control_leaves_the_global_rng_alone(backbones):
    spec = resolve_spec(adhoc_entry(f"local-dir:{backbones['A']}"))
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    open_backbone(spec, pretrained=False, seed=7)
    torch.testing.assert_close(torch.rand(3), expected)


def test_device_errors_are_parameter_errors():
    from proximity.backbones import resolve_device
    from proximity.errors import InvalidParameterError
    with pytest.raises(InvalidParameterError, match="'device' parameter of rank"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(InvalidParameterError, match="no CUDA device"):
            resolve_device("cuda")


# --- the registries of sources and formats -------------------------------------------------------

def test_every_loadable_catalog_source_has_a_registered_source():
    from proximity.backbones import SOURCES
    from proximity.catalog import LOADABLE_SOURCES

    assert set(SOURCES) == set(LOADABLE_SOURCES)


@pytest.mark.parametrize("kind", ["timm", "hf-hub", "local-dir"])
def test_each_source_declares_itself(kind):
    from proximity.backbones import SOURCES, Source

    src = SOURCES[kind]
    assert isinstance(src, Source) and src.kind == kind and isinstance(src.remote, bool)
    assert isinstance(src.holds_files, bool)


def test_an_unknown_source_or_format_is_refused_with_the_known_ones():
    from proximity.backbones import get_format, get_source

    ext = CatalogEntry(id="x", source="external:https://example.org/w")
    with pytest.raises(UnsupportedModelError, match="cannot load 'external:' sources; it loads .*timm:"):
        get_source(ext)
    with pytest.raises(UnsupportedModelError, match="no format 'onnx'; proximity reads timm, transformers"):
        get_format("onnx", ext)
    with pytest.raises(UnsupportedModelError, match="neither a timm 'architecture' nor a transformers 'model_type'"):
        get_format("", ext)


def test_a_new_source_is_one_registered_class(backbones):
    """A source that keeps repos in a dict: registered by its decorator, it needs nothing else to
    resolve, build and report early layers (and a second registration under its kind is an error)."""
    from proximity.backbones import SOURCES, Location, Source, register_source
    from proximity.backbones.source_local_dir import LocalDir

    repos = {"tiny": backbones["A"]}

    @register_source
    class MemorySource(Source):
        kind, remote, holds_files = "memory", False, True

        def locate(self, entry):
            folder = repos[entry.locator]
            cfg = json.loads((folder / "config.json").read_text())
            return Location(format=self.format_of(entry, cfg), config=cfg, revision=LocalDir(folder).revision(),
                            timm_name=f"local-dir:{folder}", repo=str(folder))

        def offline_config(self, entry):
            return json.loads((repos[entry.locator] / "config.json").read_text())

    try:
        entry = CatalogEntry(id="m", source="memory:tiny")
        spec = resolve_spec(entry)
        assert spec.format == "timm" and spec.architecture == "test_resnet" and spec.revision.startswith("sha256:")
        assert open_backbone(spec).features(torch.zeros(1, 3, 48, 48)).shape[0] == 1
        from proximity.backbones import has_early_batchnorm
        assert has_early_batchnorm(entry) is True
        with pytest.raises(ValueError, match="already registered"):
            register_source(MemorySource)
    finally:
        SOURCES.pop("memory", None)


def test_truncation_is_refused_where_it_cannot_hold(hub):
    """timm: names hold no truncated weights; transformers networks are never truncated (the
    entry's truncated_at used to be dropped silently there)."""
    with pytest.raises(UnsupportedModelError, match="truncated_at needs a hf-hub: or local-dir: repo"):
        resolve_spec(CatalogEntry(id="t", source="timm:resnet18.a1_in1k", truncated_at="features.3"))
    hub.add_repo("org/tiny-vit-tr", {"config.json": json.dumps({"model_type": "vit"}).encode()})
    with pytest.raises(UnsupportedModelError, match="truncated_at is supported for timm networks only"):
        resolve_spec(CatalogEntry(id="v", source="hf-hub:org/tiny-vit-tr", truncated_at="features.3"))
