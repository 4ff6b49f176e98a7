"""Catalog filters on `rank` (--domain, --max-params, --license, --include-gated), `catalog list`
filters, and `catalog validate` on the shipped catalog (what CI checks)."""

import json

import pytest
from typer.testing import CliRunner

import proximity
from proximity.cli import app
from proximity.errors import InvalidParameterError, NoCandidatesError


def _run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture
def catalog(tmp_path, backbones):
    cat = tmp_path / "cat"
    cat.mkdir()
    rows = {"grat": ("A", "medical-pathology", 2.0, "mit", False), "blob": ("B", "natural", 50.0, "apache-2.0", False),
            "locked": ("B", "natural", 1.0, "mit", True)}
    for name, (bb, dom, params, lic, gated) in rows.items():
        (cat / f"{name}.toml").write_text(
            f'source = "local-dir:{backbones[bb]}"\n\n[pretraining]\ndomains = ["{dom}"]\n\n'
            f'[facts]\nparams_m = {params}\nlicense = "{lic}"\ngated = {str(gated).lower()}\n')
    (cat / "foreign.toml").write_text('source = "external:https://example.org/x"\n\n[load]\nloadable = false\n'
                                      'reason = "needs a foreign library"\n')
    return cat


def test_filters_select_entries_and_say_what_was_set_aside(catalog, target_dir, fresh_cache):
    r = proximity.rank(target_dir, catalog=catalog, sample=16, control=False)
    assert {c.model for c in r.ranking} == {"grat", "blob"}
    why = {x["model"]: x["reason"] for x in r.excluded}
    assert why["locked"].startswith("gated") and why["foreign"] == "not loadable: needs a foreign library"
    r = proximity.rank(target_dir, catalog=catalog, sample=16, control=False, domain="natural", include_gated=True)
    assert {c.model for c in r.ranking} == {"blob", "locked"}
    r = proximity.rank(target_dir, catalog=catalog, sample=16, control=False, max_params=10, license=["MIT"])
    assert [c.model for c in r.ranking] == ["grat"]
    assert "50 M parameters > --max-params 10" in {x["model"]: x["reason"] for x in r.excluded}["blob"]
    with pytest.raises(NoCandidatesError, match="No catalog entry is left"):
        proximity.rank(target_dir, catalog=catalog, sample=16, domain="remote-sensing")
    with pytest.raises(InvalidParameterError, match="'domain' parameter"):
        proximity.rank(target_dir, catalog=catalog, sample=16, domain="xrays")


def test_filter_flags_on_the_cli(catalog, target_dir, backbones, fresh_cache):
    res = _run("rank", target_dir, "--catalog", catalog, "--domain", "natural", "-n", 16, "--no-control", "-f", "json")
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert [c["model"] for c in d["ranking"]] == ["blob"]
    assert {x["model"] for x in d["excluded"]} == {"grat", "locked", "foreign"}
    res = _run("rank", target_dir, "--catalog", catalog, "-n", 16, "--no-control")
    assert "2 catalog entries set aside: 1 not loadable, 1 gated (--include-gated)" in " ".join(res.output.split())
    res = _run("rank", target_dir, "--model", f"local-dir:{backbones['A']}", "--max-params", 5)
    assert res.exit_code == 2 and "do not apply to --model" in res.output
    res = _run("catalog", "list", "--catalog", catalog, "--domain", "natural", "-f", "json")
    assert {r["id"] for r in json.loads(res.stdout)} == {"blob", "locked"}
    res = _run("catalog", "list", "--catalog", catalog, "--loadable", "-f", "json")
    assert "foreign" not in {r["id"] for r in json.loads(res.stdout)}


def test_shipped_catalog_validates_and_lists():
    res = _run("catalog", "validate", "--strict")
    assert res.exit_code == 0 and "entries valid in 'default'" in res.output, res.output
    res = _run("catalog", "list", "--loadable", "-f", "json")
    rows = json.loads(res.stdout)
    assert len(rows) >= 30 and len({d for r in rows for d in r["domain"].split(",")}) >= 6
    assert _run("catalog", "list").exit_code == 0
    res = _run("catalog", "domains")
    assert res.exit_code == 0 and "medical-pathology" in res.output
