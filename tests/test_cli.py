import csv
import io
import json

import numpy as np
import pytest
from typer.testing import CliRunner

import proximity
from proximity.cli import app
from proximity.errors import InvalidParameterError

runner = CliRunner()


def _run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def models(backbones):
    return ["--model", f"local-dir:{backbones['A']}", "--model", f"local-dir:{backbones['B']}"]


def test_rank_json_contract(target_dir, models, fresh_cache):
    res = _run("rank", target_dir, *models, "--format", "json", "--sample", 40)
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["schema_version"] == 2 and d["proximity_version"] == proximity.__version__
    assert d["fit_rule"]["mode"] == "labels" and d["fit_rule"]["name"] and d["fit_rule"]["terms"]
    assert set(d["sample"]) >= {"n_images", "n_skipped", "skipped", "labels", "n_classes"}
    assert d["sample"]["n_images"] == 40 and d["sample"]["n_classes"] == 4
    assert [c["rank"] for c in d["ranking"]] == [1, 2]
    for c in d["ranking"]:
        assert set(c) >= {"rank", "model", "domain", "fit", "risk", "risk_interval", "risk_band", "risk_reason",
                          "signals",
                          "fit_basis"}
        assert c["fit_basis"] and set(c["fit_basis"]) <= set(c["signals"])
        assert c["risk_band"] in ("low", "medium", "high", "unknown") and 0 <= c["risk"] <= 1
        lo, hi = c["risk_interval"]                       # the calibrated model's 90 % interval
        assert 0 <= lo <= c["risk"] <= hi <= 1 and "90 % interval" in c["risk_reason"]
        for s in c["signals"].values():
            assert set(s) == {"value", "sd", "higher_is_better", "reason"}
    assert d["ranking"][0]["model"] == models[1]        # exactly as given
    assert d["failed"] == []


def test_rank_csv_and_table_and_output_file(target_dir, models, tmp_path, fresh_cache):
    res = _run("rank", target_dir, *models, "--format", "csv", "--sample", 20, "--no-control")
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert len(rows) == 2 and "signal.probe" in rows[0] and "signal.probe.sd" in rows[0]
    assert rows[0]["signal.gain"] == ""                  # --no-control
    out = tmp_path / "r.txt"
    res = _run("rank", target_dir, *models, "--sample", 20, "--no-control", "--output", out)
    assert res.exit_code == 0 and "early_shift" in out.read_text() and "local-dir:" in out.read_text()


def test_cached_rerun_is_reported(target_dir, models, fresh_cache):
    first = json.loads(_run("rank", target_dir, *models, "-f", "json", "-n", 16).stdout)
    second = json.loads(_run("rank", target_dir, *models, "-f", "json", "-n", 16).stdout)
    assert not first["ranking"][0]["cached"] and second["ranking"][0]["cached"]
    assert [c["fit"] for c in first["ranking"]] == [c["fit"] for c in second["ranking"]]
    third = json.loads(_run("rank", target_dir, *models, "-f", "json", "-n", 16, "--no-cache").stdout)
    assert not third["ranking"][0]["cached"]
    _run("rank", target_dir, *models, "-f", "json", "-n", 200, "--no-control")   # every image, labelled
    free = json.loads(_run("rank", target_dir, *models, "-f", "json", "-n", 200, "--labels", "none",
                           "--no-control").stdout)
    assert all(c["cached"] for c in free["ranking"])       # same images: evidence does not depend on labels


def test_bad_models_are_reported_and_the_rest_still_runs(target_dir, backbones, tmp_path, fresh_cache):
    res = _run("rank", target_dir, "-f", "json", "-n", 16, "--model", f"local-dir:{tmp_path / 'gone'}",
               "--model", "hf-hub:org/does-not-exist", "--model", "timm:resnet18.a1_in1k", "--model",
               f"local-dir:{backbones['A']}")
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert [c["model"] for c in d["ranking"]] == [f"local-dir:{backbones['A']}"]
    failed = {f["model"]: f for f in d["failed"]}
    assert failed[f"local-dir:{tmp_path / 'gone'}"]["stage"] == "fetch"
    assert "does not exist" in failed[f"local-dir:{tmp_path / 'gone'}"]["error"]
    assert failed["hf-hub:org/does-not-exist"]["stage"] == "fetch"
    assert failed["timm:resnet18.a1_in1k"]["stage"] == "fetch"   # weights not on the (fake) Hub


def test_all_failed_exits_1(target_dir, tmp_path):
    res = _run("rank", target_dir, "--model", f"local-dir:{tmp_path}", "-f", "json")
    assert res.exit_code == 1 and "no backbone could be ranked" in res.stderr


def test_corrupt_file_single_class_and_empty_folder(backbones, tmp_path, fresh_cache):
    from conftest import S
    imgs, _ = S.gratings(6, [0], np.random.default_rng(0))
    d = S.write_folder(tmp_path / "one", imgs, np.array(["only"] * 6))
    (d / "only" / "bad.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    res = _run("rank", d, "--model", f"local-dir:{backbones['A']}", "-f", "json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["sample"]["n_skipped"] == 1 and out["sample"]["skipped"][0]["path"] == "only/bad.jpg"
    assert out["mode"] == "label-free"
    sig = out["ranking"][0]["signals"]
    assert sig["probe"]["value"] is None and "only one class" in sig["probe"]["reason"]
    assert sig["early_shift"]["value"] is not None
    empty = tmp_path / "empty"
    empty.mkdir()
    res = _run("rank", empty, "--model", f"local-dir:{backbones['A']}")
    assert res.exit_code == 2 and "No readable images" in res.stderr and "Traceback" not in res.output


def test_conflicting_and_wrong_flags(target_dir, backbones):
    res = _run("rank", target_dir, "--model", f"local-dir:{backbones['A']}", "--catalog", "default")
    assert res.exit_code == 2 and "either --model" in res.stderr
    res = _run("rank", target_dir, "--format", "xml")
    assert res.exit_code == 2 and "xml" in res.output
    res = _run("rank", target_dir, "--labels", "folders", "--catalog", "nope")
    assert res.exit_code == 2 and "Unknown catalog 'nope'" in res.stderr


def test_catalog_commands():
    res = _run("catalog", "list", "--format", "json")
    assert res.exit_code == 0
    rows = json.loads(res.stdout)
    assert {r["id"] for r in rows} >= {"resnet18.a1_in1k"} and all("signals" in r for r in rows)
    res = _run("catalog", "show", "resnet18.a1_in1k")
    assert res.exit_code == 0 and json.loads(res.stdout)["provenance"]["facts.imagenet_top1"].startswith("timm")
    assert _run("catalog", "validate").exit_code == 0
    res = _run("catalog", "show", "nope")
    assert res.exit_code == 2 and "catalog list" in res.stderr


def test_an_unknown_model_source_is_a_usage_error_before_any_decoding(target_dir, backbones):
    for bad, hint in (("resnet18", "For a timm model use 'timm:resnet18'."),
                      ("s3:bucket/m", "expected one of timm:, hf-hub:, local-dir:"),
                      ("org/net", "It looks like a Hub repo id: use 'hf-hub:org/net'.")):
        res = _run("rank", target_dir, "--model", f"local-dir:{backbones['A']}", "--model", bad)
        assert res.exit_code == 2 and hint in res.stderr, res.output      # the whole hint, nothing elided
        assert "decoding sample" not in res.stderr and "Ranking" not in res.stderr   # nothing decoded, no banner
    with pytest.raises(proximity.errors.UnknownSourceError, match="timm:resnet18"):
        proximity.rank(target_dir, models=["resnet18"])


def test_catalog_show_names_the_catalog_that_holds_an_entry(backbones, tmp_path, monkeypatch):
    monkeypatch.setenv("PROXIMITY_DATA_DIR", str(tmp_path / "data"))
    zoo = tmp_path / "data" / "zoo" / "catalog"
    zoo.mkdir(parents=True)
    (zoo / "gratings_net.toml").write_text(f'source = "local-dir:{backbones["A"]}"\n')
    res = _run("catalog", "show", "gratings_net")               # not in default: found in the zoo, and said so
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["catalog"] == "zoo" and "entry of catalog 'zoo'" in res.stderr
    res = _run("catalog", "show", "gratings_net", "--catalog", "default")
    assert res.exit_code == 2 and "catalog 'zoo' has it: add --catalog zoo" in res.stderr
    assert json.loads(_run("catalog", "show", "gratings_net", "--catalog", "zoo").stdout)["id"] == "gratings_net"
    res = _run("catalog", "show", "resnet18.a1_in1k", "--catalog", "zoo")
    assert res.exit_code == 2 and "catalog 'default' has it" in res.stderr


def test_api_returns_dataclasses_and_frames(target_dir, backbones, fresh_cache):
    r = proximity.rank(target_dir, models=[f"local-dir:{backbones['A']}"], sample=12, control=False)
    assert isinstance(r, proximity.Ranking) and len(r) == 1 and r[0].rank == 1, r.failed
    assert json.loads(r.to_json())["ranking"][0]["signals"]["gain"]["value"] is None
    pd = pytest.importorskip("pandas")
    frame = r.to_frame()
    assert isinstance(frame, pd.DataFrame) and frame.loc[0, "model"] == f"local-dir:{backbones['A']}"


def test_hf_hub_model_ranks_through_the_real_path(hub, target_dir, backbones, fresh_cache):
    files = {p.name: p.read_bytes() for p in backbones["A"].iterdir()}
    hub.add_repo("org/gratings-net", files)
    r = proximity.rank(target_dir, models=["hf-hub:org/gratings-net", f"local-dir:{backbones['B']}"], sample=40)
    assert r.best.model == "hf-hub:org/gratings-net" and not r.failed


def test_channel_mismatch_fails_at_forward_with_the_numbers(backbones, fresh_cache):
    imgs = [np.random.default_rng(i).integers(0, 255, (32, 32, 6), dtype=np.uint8) for i in range(6)]
    r = proximity.rank(proximity.sample_from_arrays(imgs), models=[f"local-dir:{backbones['A']}"])
    assert r.ranking == [] and r.failed[0].stage == "forward"
    assert "expects 3-channel input but the images have 6 channels" in r.failed[0].error


def test_transformers_repo_without_image_processor_is_reported_at_load_stage(hub, target_dir, backbones, fresh_cache):
    import json as _json
    hub.add_repo("org/tiny-vit-tf", {"config.json": _json.dumps({"model_type": "vit"}).encode()})
    r = proximity.rank(target_dir, models=["hf-hub:org/tiny-vit-tf", f"local-dir:{backbones['A']}"], sample=8,
                       control=False)
    assert [c.model for c in r.ranking] == [f"local-dir:{backbones['A']}"]
    assert r.failed[0].stage == "load" and "no preprocessor_config.json" in r.failed[0].error


def test_quiet_silences_warnings_and_brackets_in_paths_are_printed(backbones, tmp_path, fresh_cache):
    from conftest import S
    imgs, labels = S.gratings(4, [0, 90], np.random.default_rng(0))
    d = S.write_folder(tmp_path / "scans[/old]", imgs, labels)
    S.write_folder(d, imgs[:1], None)                         # one loose image: auto → label-free + warning
    args = ["rank", d, "--model", f"local-dir:{backbones['A']}", "-n", "8"]
    loud = _run(*args)
    assert loud.exit_code == 0, loud.output
    assert "Running label-free" in loud.stderr and "scans[/old]" in loud.stdout
    quiet = _run(*args, "--quiet")
    assert quiet.exit_code == 0 and "Running label-free" not in quiet.stderr


def test_catalog_list_shows_per_entry_signals():
    rows = {r["id"]: r["signals"] for r in json.loads(_run("catalog", "list", "-f", "json").stdout)}
    assert "early_shift" in rows["resnet18.a1_in1k"]
    assert "early_shift" not in rows["vit_small_patch16_224.augreg_in21k_ft_in1k"]
    assert "prior" in rows["resnet18.a1_in1k"]


def test_label_free_run_normalises_by_random_weights_on_a_small_subset(target_dir, models, fresh_cache):
    """Label-free, the random-weights control runs on at most 64 images and feeds the relative signals."""
    d = json.loads(_run("rank", target_dir, *models, "-f", "json", "-n", 80, "--labels", "none").stdout)
    assert d["mode"] == "label-free" and d["fit_rule"]["mode"] == "label-free"
    for c in d["ranking"]:
        assert c["signals"]["rankme_rel"]["value"] > 0 and c["signals"]["rankme_rel"]["reason"] == "on 64 images"
        assert c["signals"]["probe"]["value"] is None
    off = json.loads(_run("rank", target_dir, *models, "-f", "json", "-n", 80, "--labels", "none",
                          "--no-control").stdout)
    assert all(c["signals"]["rankme_rel"]["value"] is None for c in off["ranking"])


def test_precision_bfloat16_through_the_cli_and_the_api(target_dir, models, backbones, fresh_cache):
    """--precision autocasts the networks; the evidence is cached apart from float32's and the
    signals stay near the float32 run's; a dtype the device cannot run is a usage error."""
    res = _run("rank", target_dir, *models, "--format", "json", "--sample", 40, "--precision", "bfloat16")
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["settings"]["precision"] == "bfloat16"
    assert not any(c["cached"] for c in d["ranking"])
    full = proximity.rank(target_dir, models=[models[1]], sample=40)
    assert full.settings["precision"] == "float32" and not full.ranking[0].cached    # not served bfloat16's
    low = next(c for c in d["ranking"] if c["model"] == models[1])
    for name in ("probe", "knn"):
        assert abs(low["signals"][name]["value"] - full.ranking[0].signals[name].value) <= 0.15, name
    assert low["signals"]["logme"]["value"] == pytest.approx(full.ranking[0].signals["logme"].value, abs=0.05)
    bad = _run("rank", target_dir, *models, "--precision", "float16", "--device", "cpu")
    assert bad.exit_code == 2 and "bfloat16" in bad.output and "float16" in bad.output
    with pytest.raises(InvalidParameterError, match="precision"):
        proximity.rank(target_dir, models=[models[1]], sample=40, precision="float16", device="cpu")
    with pytest.raises(InvalidParameterError, match="precision"):
        proximity.rank(target_dir, models=[models[1]], sample=40, precision="half")
