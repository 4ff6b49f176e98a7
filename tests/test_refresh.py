"""`proximity catalog refresh` end to end against the loopback fake Hub: listing with pagination,
card data, gated and missing repos, a changed revision, curated facts kept, references fetched,
and nothing written when the Hub fails."""


import pytest
from typer.testing import CliRunner

import proximity
from proximity.catalog import load_entry
from proximity.cli import app

OLD = "0" * 40


def _run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture
def world(hub, tmp_path, backbones):
    """A catalog of three entries and a Hub that moved on: alpha has a new commit and card data,
    gone was deleted, gated needs a token; four repos match the discovery search."""
    files = {p.name: p.read_bytes() for p in backbones["A"].iterdir()}
    card = {"license": "apache-2.0", "datasets": ["tcga"]}
    sha = hub.add_repo("refresh/alpha", files, card_data=card, downloads=10, likes=2, library_name="timm",
                       tags=["image-feature-extraction"])
    hub.add_repo("refresh/gated", files, gated=True, library_name="timm")
    hub.repos.pop("refresh/gone", None)
    new = {"refresh/new-timm": ("timm", ["imagenet-1k"], 300), "refresh/new-tf": ("transformers", ["rvl-cdip"], 200),
           "refresh/new-clip": ("open_clip", [], 100), "refresh/new-unmapped": ("timm", ["somewhere/private-set"], 50),
           "refresh/new-text": ("transformers", [], 40), "timm/resnet10t.c3_in1k": ("timm", ["imagenet-1k"], 999)}
    for repo, (lib, ds, dl) in new.items():
        hub.add_repo(repo, files, card_data={"license": "mit", "datasets": ds}, downloads=dl, library_name=lib,
                     tags=["refresh-demo"], pipeline_tag="text-generation" if "text" in repo
                     else "image-feature-extraction")
    cat = tmp_path / "cat"
    cat.mkdir()
    (cat / "alpha.toml").write_text(f'source = "hf-hub:refresh/alpha"\nrevision = "{OLD}"\n\n[facts]\nlicense = "mit"\n'
                                    '\n[provenance]\n"facts.license" = "hand-checked on the paper"\n')
    (cat / "gone.toml").write_text('source = "hf-hub:refresh/gone"\n')
    (cat / "gated.toml").write_text('source = "hf-hub:refresh/gated"\n\n[facts]\ngated = true\n')
    (cat / "resnet.toml").write_text('source = "timm:resnet10t.c3_in1k"\n')
    yield {"cat": cat, "sha": sha, "files": files}
    for repo in [r for r in hub.repos if r.startswith(("refresh/", "datasets/refresh/"))] + ["timm/resnet10t.c3_in1k"]:
        hub.repos.pop(repo, None)      # the fake Hub is shared by the session: leave it as found


def _snapshot(folder):
    return {p.name: p.read_text() for p in sorted(folder.glob("*.toml"))}


def test_dry_run_shows_the_diff_and_writes_nothing(world):
    before = _snapshot(world["cat"])
    res = _run("catalog", "refresh", "--catalog", world["cat"], "--dry-run")
    assert res.exit_code == 0, res.output
    out = res.output
    assert f"~ changed alpha  revision: {OLD[:12]} → {world['sha'][:12]}" in out
    assert "facts.downloads: — → 10" in out and "pretraining.datasets: — → ['tcga']" in out
    assert "- gone    gone" in out and "no longer on the Hub" in out
    assert "facts.license: the Hub says 'apache-2.0', the catalog keeps 'mit'" in out
    assert "gated: the Hub shows no metadata without access" in out
    assert "resnet" not in out                                   # timm: entries are not touched
    assert "1 changed, 1 gone" in out and "nothing written" in out
    assert _snapshot(world["cat"]) == before


def test_refresh_writes_pins_and_keeps_curated_facts_then_overwrite(world):
    res = _run("catalog", "refresh", "--catalog", world["cat"], "--yes")
    assert res.exit_code == 0, res.output
    e = load_entry(world["cat"] / "alpha.toml")
    assert e.revision == world["sha"] and e.downloads == 10 and e.likes == 2
    assert e.license == "mit" and e.datasets == ("tcga",) and e.domains == ("medical-pathology",)
    assert e.provenance["facts.license"] == "hand-checked on the paper" and "refreshed" in e.provenance["revision"]
    assert (world["cat"] / "gone.toml").is_file()                # kept without --remove-gone
    res = _run("catalog", "refresh", "--catalog", world["cat"], "--yes")
    assert "0 changed" in res.output and "nothing to write" in res.output      # idempotent
    res = _run("catalog", "refresh", "--catalog", world["cat"], "--yes", "--overwrite", "--remove-gone")
    assert load_entry(world["cat"] / "alpha.toml").license == "apache-2.0"
    assert not (world["cat"] / "gone.toml").exists()


def test_changed_revision_is_detected(hub, world):
    _run("catalog", "refresh", "--catalog", world["cat"], "--yes")
    new_sha = hub.add_repo("refresh/alpha", {**world["files"], "README.md": b"v2"}, card_data={"license": "apache-2.0",
                           "datasets": ["tcga"]}, downloads=11, likes=2, library_name="timm")
    res = _run("catalog", "refresh", "--catalog", world["cat"], "--dry-run")
    assert f"revision: {world['sha'][:12]} → {new_sha[:12]}" in res.output and "facts.downloads: 10 → 11" in res.output
    assert f"reference statistics made for {world['sha'][:12]} will not match" in res.output


def test_discovery_lists_across_pages_and_makes_entries(hub, world):
    assert hub.page_size == 2                                    # 4 matches: the client follows the Link header
    res = _run("catalog", "refresh", "--catalog", world["cat"], "--discover", "--tag", "refresh-demo", "--yes")
    assert res.exit_code == 0, res.output
    assert res.output.count("+ new") == 5                        # not timm/resnet10t.c3_in1k: a timm: entry has it
    tm = load_entry(world["cat"] / "refresh--new-timm.toml")
    assert tm.format == "timm" and tm.domains == ("natural",) and tm.license == "mit" and tm.downloads == 300
    assert len(tm.revision) == 40 and tm.loadable
    assert load_entry(world["cat"] / "refresh--new-tf.toml").domains == ("documents",)
    clip = load_entry(world["cat"] / "refresh--new-clip.toml")
    assert not clip.loadable and "open_clip" in clip.load_reason
    assert load_entry(world["cat"] / "refresh--new-unmapped.toml").domains == ()
    text = load_entry(world["cat"] / "refresh--new-text.toml")
    assert not text.loadable and "text-generation" in text.load_reason
    assert not (world["cat"] / "timm--resnet10t.c3_in1k.toml").exists()
    proximity.validate_catalog(world["cat"])                     # the written catalog validates (raises if not)


def test_filters_without_discover_and_failing_hub_write_nothing(world, monkeypatch):
    res = _run("catalog", "refresh", "--catalog", world["cat"], "--library", "timm")
    assert res.exit_code != 0 and "add --discover" in res.output
    before = _snapshot(world["cat"])
    import proximity.hub as H
    monkeypatch.setattr(H, "hub_reachable", lambda *a, **k: False)
    res = _run("catalog", "refresh", "--catalog", world["cat"], "--yes")
    assert res.exit_code == 2 and "nothing written" in res.output and "could not be reached" in res.output
    res = _run("catalog", "refresh", "--catalog", world["cat"], "--dry-run")   # offline: a known problem, exit 2
    assert res.exit_code == 2 and "could not be reached" in res.stderr and "Traceback" not in res.output
    assert _snapshot(world["cat"]) == before


def test_references_are_fetched_from_a_dataset_repo_and_used(hub, world, target_dir, tmp_path, fresh_cache):
    (world["cat"] / "gone.toml").unlink()
    (world["cat"] / "gated.toml").unlink()
    ref = tmp_path / "alpha-ref.npz"
    _run("catalog", "refresh", "--catalog", world["cat"], "--yes")          # pin alpha first
    res = _run("catalog", "reference", "alpha", target_dir, "--catalog", world["cat"], "--sample", 24, "--top-k", 8,
               "--output", ref)
    assert res.exit_code == 0, res.output
    hub.add_repo("refresh/references", {"alpha.npz": ref.read_bytes(), "README.md": b"refs"}, repo_type="dataset")
    before = proximity.rank(target_dir, catalog=world["cat"], sample=24, control=False)
    assert next(c for c in before.ranking if c.model == "alpha").signals["frechet"].value is None
    res = _run("catalog", "refresh", "--catalog", world["cat"], "--references", "refresh/references", "--yes")
    assert res.exit_code == 0, res.output
    assert "↓ reference alpha" in res.output
    after = proximity.rank(target_dir, catalog=world["cat"], sample=24, control=False)
    assert next(c for c in after.ranking if c.model == "alpha").signals["frechet"].value is not None


def test_a_token_opens_gated_repos(world, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")            # the fake Hub accepts any bearer token
    res = _run("catalog", "refresh", "--catalog", world["cat"], "--dry-run")
    assert res.exit_code == 0, res.output
    assert "~ changed gated  revision: — →" in res.output and "no metadata without access" not in res.output


def test_a_failed_rename_restores_what_was_replaced(world, monkeypatch):
    import os
    from proximity import refresh as R
    plan = R.plan_refresh(world["cat"], discover=True, tags=["refresh-demo"], remove_gone=True)
    before = _snapshot(world["cat"])
    real, calls = os.replace, []

    def flaky(src, dst):
        calls.append(dst)
        if len(calls) == 3:
            raise OSError("disk full")
        return real(src, dst)
    monkeypatch.setattr(R.os, "replace", flaky)
    with pytest.raises(OSError, match="disk full"):
        R.apply_refresh(plan)
    assert _snapshot(world["cat"]) == before and not list(world["cat"].glob(".refresh-*"))
