from pathlib import Path

import pytest

from proximity import load_catalog, validate_catalog
from proximity.catalog import adhoc_entry, load_entry, parse_source
from proximity.errors import CatalogError, CatalogNotFoundError, EntryNotFoundError, UnknownSourceError

DEFAULT = load_catalog("default")


@pytest.mark.parametrize("entry", DEFAULT.entries, ids=DEFAULT.ids())
def test_every_default_entry_is_complete_or_says_what_is_unconfirmed(entry):
    assert entry.source.startswith(("timm:", "hf-hub:", "external:"))
    assert entry.domains and entry.provenance.get("checked")
    unconfirmed = entry.provenance.get("unconfirmed", "")
    for fact, present in (("pretraining.datasets", entry.datasets), ("pretraining.method", entry.method != "unknown"),
                          ("facts.params_m", entry.params_m), ("facts.license", entry.license)):
        assert present or fact in unconfirmed, f"{entry.id}: {fact} neither given nor listed as unconfirmed"
    for fact in ("facts.imagenet_top1", "facts.params_m", "facts.license"):
        if getattr(entry, fact.split(".")[1]) not in (None, ""):
            assert fact in entry.provenance
    if entry.kind == "hf-hub":
        assert entry.format in ("timm", "transformers") or not entry.loadable
    assert entry.loadable or entry.load_reason


def test_default_catalog_meets_the_coverage_bar():
    """≥ 30 loadable entries across ≥ 6 domains (issue 7), gated and not-loadable ones on record."""
    loadable = [e for e in DEFAULT if e.loadable]
    assert len(loadable) >= 30
    assert len({d for e in loadable for d in e.domains}) >= 6
    assert any(e.gated for e in DEFAULT) and any(not e.loadable for e in DEFAULT)
    assert {e.format for e in loadable if e.kind == "hf-hub"} == {"timm", "transformers"}


def test_default_catalog_validates_without_warnings():
    assert validate_catalog("default") == []


def _write(tmp_path, text, name="m.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize("text,match", [
    ('name = "x"', "field 'source': is required"),
    ('source = "resnet18"', "For a timm model use 'timm:resnet18'"),
    ('source = "org/model"', "use 'hf-hub:org/model'"),
    ('source = "timm:x"\nfoo = 1', "field 'foo': unknown key"),
    ('source = "timm:x"\n[facts]\nparams_m = "big"', "field 'params_m': must be of type int/float"),
    ('source = "timm:x"\n[facts]\ngated = 1', "field 'gated': must be of type bool"),
    ('source = "timm:x"\n[pretraining]\nmethod = "magic"', "must be one of supervised"),
    ('source = "timm:x"\n[load]\nloadable = false', "must say why"),
    ('source = "timm:x"\nformat = "onnx"', "must be 'timm' or 'transformers'"),
    ('source = "timm:x', "is not valid TOML"),
])
def test_schema_errors_name_the_field_and_the_fix(tmp_path, text, match):
    with pytest.raises(CatalogError, match=match):
        load_entry(_write(tmp_path, text))


def test_unknown_domain_is_rejected_by_validate(tmp_path):
    _write(tmp_path, 'source = "timm:x"\n[pretraining]\ndomains = ["moon"]')
    with pytest.raises(CatalogError, match="unknown domain tag"):
        validate_catalog(tmp_path)


def test_relative_local_dir_resolves_against_the_entry(tmp_path):
    e = load_entry(_write(tmp_path, 'source = "local-dir:repos/a"'))
    assert e.source == f"local-dir:{(tmp_path / 'repos' / 'a').resolve()}"
    assert e.id == "m" and e.kind == "local-dir"


def test_catalog_lookups_and_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("PROXIMITY_DATA_DIR", str(tmp_path / "empty-data"))
    assert DEFAULT.get("resnet18.a1_in1k").imagenet_top1 == pytest.approx(73.158)
    with pytest.raises(EntryNotFoundError, match="Did you mean: resnet18.a1_in1k"):
        DEFAULT.get("resnet18")
    with pytest.raises(CatalogNotFoundError, match="Unknown catalog '.*nope': it is neither"):
        load_catalog(tmp_path / "nope")
    with pytest.raises(CatalogNotFoundError, match=r"The catalog 'zoo' is not built yet .* Run `proximity zoo build`"):
        load_catalog("zoo")
    with pytest.raises(CatalogError, match="holds no"):
        load_catalog(tmp_path)


def test_parse_source_and_adhoc():
    assert parse_source("hf-hub:org/name@abc") == ("hf-hub", "org/name@abc")
    with pytest.raises(UnknownSourceError, match="expected one of timm:, hf-hub:, local-dir:"):
        parse_source("s3:bucket/x")
    e = adhoc_entry("local-dir:.")
    assert e.id == "local-dir:." and Path(e.locator).is_absolute()
