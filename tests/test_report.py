"""What a person sees: the terminal table at any width, progress and status text that tell the
truth, the HTML page and `proximity report` for a saved result (the browser test is test_browser.py)."""

import html
import json
import re

import numpy as np
import pytest
from typer.testing import CliRunner

import proximity
from conftest import S
from proximity.api import _plain_gain
from proximity.cli import app
from proximity.errors import NothingRankedError

runner = CliRunner()


def _run(*args, columns=None):
    return runner.invoke(app, [str(a) for a in args], env=None if columns is None else {"COLUMNS": str(columns)})


def _flat(text: str) -> str:
    """The text with Rich's line wrapping undone (it depends on the width and on path lengths)."""
    return " ".join(text.split())


@pytest.fixture
def models(backbones):
    return ["--model", f"local-dir:{backbones['A']}", "--model", f"local-dir:{backbones['B']}"]


@pytest.fixture
def saved(target_dir, models, tmp_path, fresh_cache):
    """A labelled result saved as JSON, with a skipped file, a failed candidate and settings."""
    out = tmp_path / "r.json"
    res = _run("rank", target_dir, *models, "--model", f"local-dir:{tmp_path / 'gone'}", "-n", 40, "-f", "json", "-o",
               out)
    assert res.exit_code == 0, res.output
    return out


def test_the_table_shows_every_fit_and_risk_at_any_width(saved):
    d = json.loads(saved.read_text())
    risks = [f"{c['risk_band']} {c['risk']:.2f}" for c in d["ranking"]]
    fits = [f"{c['fit']:.3f}" for c in d["ranking"]]
    layouts = {}
    for width in (160, 100, 80, 60, 40):
        res = _run("report", saved, columns=width)
        assert res.exit_code == 0, res.output
        lines = res.stdout.splitlines()
        assert max(len(x) for x in lines) <= width                        # nothing runs past the edge
        assert all(r in res.stdout for r in risks + fits) and "…" not in res.stdout, (width, res.stdout)
        header = " ".join(x for x in lines if "┃" in x)                  # the table's column names
        # the probe: a signal of the full table that the compact layout leaves out (it shows the shipped
        # rule's first two terms, LogME and kNN, and the gain)
        layouts[width] = "probe" in (header if header else res.stdout.split("#1 risk")[0]), "┃" in res.stdout
    assert [t[0] for t in d["fit_rule"]["terms"][:2]] == ["logme", "knn"]
    assert layouts[160] == (True, True)                                   # the full table
    assert layouts[80] == (False, True)                                   # compact: fit, logme, knn, gain, risk
    assert layouts[40] == (False, False)                                  # one block per candidate
    assert "Narrow terminal (80 columns)" in _flat(_run("report", saved, columns=80).stdout)
    # the widest band on every row (found in CI: with one thread the values came out "medium", and
    # an 80-column terminal lost the table): the compact table still fits
    widest = saved.parent / "widest.json"
    widest.write_text(json.dumps({**d, "ranking": [{**c, "risk_band": "medium", "risk": 0.49} for c in d["ranking"]]}))
    res = _run("report", widest, columns=80)
    assert "┃" in res.stdout and max(len(x) for x in res.stdout.splitlines()) <= 80, res.stdout
    failed = d["failed"][0]                                               # a reason given once is kept whole
    assert f"failed {failed['model']} at fetch: {failed['error']}" in _flat(_run("report", saved, columns=200).stdout)


def test_plain_progress_lines_on_stderr_and_nothing_but_json_on_stdout(target_dir, models, fresh_cache):
    res = _run("rank", target_dir, *models, "-n", 20, "-f", "json")
    assert res.exit_code == 0, res.output
    json.loads(res.stdout)                                                # stdout is the JSON, nothing else
    assert "decoding sample: 20/20 images done" in res.stderr
    assert re.search(r"local-dir:\S+: 20/20 images done", res.stderr)
    assert "(control): 20/20 images done" in res.stderr
    quiet = _run("rank", target_dir, *models, "-n", 20, "-f", "json", "--quiet")
    assert quiet.stderr == ""


def test_banner_comes_after_the_inputs_are_checked_and_promises_only_what_runs(target_dir, models, tmp_path,
                                                                               fresh_cache):
    res = _run("rank", tmp_path / "nowhere", *models)
    assert res.exit_code == 2 and "Ranking" not in res.stderr              # the path is checked first
    res = _run("rank", target_dir, *models, "-n", 20, "-f", "json")
    assert "Ranking the 2 --model candidates on 20 images in 4 classes: one forward pass per backbone plus one " \
           "random-weights control pass" in res.stderr
    assert res.stderr.index("decoding sample") < res.stderr.index("Ranking the 2")
    d = json.loads(res.stdout)
    assert d["settings"]["control"] is True and d["settings"]["control_requested"] is True
    res = _run("rank", target_dir, *models, "-n", 20, "-f", "json", "--no-control")
    assert "control" not in res.stderr.split("Ranking")[1].split("\n")[0].replace("--no-control", "")
    assert json.loads(res.stdout)["settings"]["control"] is False


def test_labels_none_is_said_as_such(target_dir, models, fresh_cache):
    res = _run("rank", target_dir, *models, "-n", 80, "-f", "json", "--labels", "none")
    assert res.exit_code == 0, res.output
    assert "on 80 images, label-free: one forward pass per backbone plus a random-weights control pass on 64 of the " \
           "images" in res.stderr
    d = json.loads(res.stdout)
    assert d["mode"] == "label-free" and d["settings"]["control"] is True      # the label-free control ran
    reasons = [s["reason"] for c in d["ranking"] for s in c["signals"].values()]
    reasons += [c["risk_reason"] for c in d["ranking"]]
    assert not [r for r in reasons if "no labels" in r or "sub-folders" in r]
    assert d["ranking"][0]["signals"]["probe"]["reason"] == "not run: labels switched off (--labels none)"
    assert d["ranking"][0]["signals"]["gain"]["reason"].startswith("not run: labels switched off (--labels none)")


def test_a_fit_rule_that_reads_no_image_is_said_so_and_params_shows_as_millions(target_dir, models, tmp_path,
                                                                                  fresh_cache, saved):
    """The shipped label-free rule is the parameter count: the table, its legend and the HTML page
    say that it reads no image and show the count in millions; a labelled result says nothing of it."""
    out = tmp_path / "free.json"
    res = _run("rank", target_dir, *models, "-n", 40, "-f", "json", "-o", out, "--labels", "none")
    assert res.exit_code == 0, res.output
    d = json.loads(out.read_text())
    assert [t[0] for t in d["fit_rule"]["terms"]] == ["params"]
    shown = _flat(_run("report", out, columns=200).stdout)
    assert "The label-free fit rule 'params' reads no image: it orders the candidates by parameter count" in shown
    assert "params: millions of parameters" in shown
    millions = {f"{10 ** c['signals']['params']['value']:.3g}" for c in d["ranking"]}
    header, *rows = [x for x in _run("report", out, columns=200).stdout.splitlines() if "│" in x or "┃" in x]
    col = [h.strip() for h in header.split("┃")].index("params M")
    assert {r.split("│")[col].strip() for r in rows if r.split("│")[1].strip()} == millions
    page = _run("report", out, "--format", "html").stdout
    assert "reads no image" in page and 'class="warn"' in page
    labelled = _run("report", saved, columns=200).stdout + _run("report", saved, "--format", "html").stdout
    assert "reads no image" not in labelled
    # the note follows the rule's terms, not its name: the prior alone reads no image either; a rule
    # that mixes a static term with an image signal does; nothing ranked, nothing said
    from proximity.report import Ranking
    from proximity.report_table import static_rule_note

    for terms, says in (([["prior", 1.0]], "ImageNet top-1"),
                        ([["params", 1.0], ["prior", 0.5]], "parameter count and"),
                        ([["params", 1.0], ["rankme_rel", 1.0]], None)):
        r = Ranking.from_dict({**d, "fit_rule": {**d["fit_rule"], "name": "x", "terms": terms}})
        note = static_rule_note(r)
        assert (note is None) if says is None else (says in note and "nothing of your images' domain" in note)
    assert static_rule_note(Ranking.from_dict({**d, "ranking": []})) is None


def test_one_class_is_singular_and_the_header_mode_holds_when_nothing_ranks(backbones, target_dir, tmp_path,
                                                                            fresh_cache):
    imgs, _ = S.gratings(6, [0], np.random.default_rng(0))
    one = S.write_folder(tmp_path / "one", imgs, np.array(["only"] * 6))
    res = _run("rank", one, "--model", f"local-dir:{backbones['A']}")
    assert res.exit_code == 0, res.output
    assert "1 class;" in _flat(res.stdout) and "1 classes" not in _flat(res.stdout)
    assert "label-free (one class)" in res.stderr
    res = _run("rank", target_dir, "--model", f"local-dir:{tmp_path / 'gone'}", "-n", 8)
    assert res.exit_code == 1 and "Ranking mode: labels" in _flat(res.stdout)  # nothing ranked; the folder has classes
    r = proximity.rank(target_dir, models=[f"local-dir:{tmp_path / 'gone'}"], sample=8)
    assert r.mode == "labels" and r.settings["control"] is False             # no control ran
    with pytest.raises(NothingRankedError, match="No backbone could be ranked: 1 failed .*result.failed"):
        _ = r.best


@pytest.mark.parametrize("reason, said", [
    ("probe beats random weights by 0.0 ± 0.0 points (90 % interval 0.1–0.2)",
     "probe and random weights score the same on every fold (gain 0.0 points) (90 % interval 0.1–0.2)"),
    ("probe beats random weights by 0.0 ± 2.5 points", "probe ties random weights (gain 0.0 ± 2.5 points over folds)"),
    ("probe trails random weights by 4.0 ± 0.0 points", "probe trails random weights by 4.0 points on every fold"),
    ("probe beats random weights by 12.5 ± 3.1 points", "probe beats random weights by 12.5 ± 3.1 points"),
])
def test_a_gain_of_nothing_is_said_in_words(reason, said):
    assert _plain_gain(reason) == said


def _no_outside_reference(page: str) -> None:
    """Nothing on the page can make a browser fetch anything."""
    assert not re.search(r"<(script|link|iframe|object|embed|img|video|audio|source|base|form)\b", page, re.I)
    assert not re.search(r"\b(src|href|srcset|action|poster|data)\s*=", page, re.I)
    assert not re.search(r"url\s*\(|@import", page, re.I)
    assert "Content-Security-Policy" in page and "default-src 'none'" in page


def test_html_page_from_rank_and_from_a_saved_result(saved, target_dir, models, tmp_path, fresh_cache):
    page_file = tmp_path / "r.html"
    res = _run("report", saved, "--format", "html", "--output", page_file)
    assert res.exit_code == 0, res.output
    page = page_file.read_text()
    _no_outside_reference(page)
    d = json.loads(saved.read_text())
    for c in d["ranking"]:
        assert c["model"] in page and f"{c['risk_band']} {c['risk']:.2f}" in page
        lo, hi = c["risk_interval"]
        assert f"{lo:.2f}–{hi:.2f}" in page
    assert page.count("<svg") >= 2 + 10                                  # a risk strip per candidate, signal panels
    assert html.escape(d["fit_rule"]["name"]) in page and "Calibration scope:" in page and "benchmark v2" in page
    assert "Failed candidates (1)" in page and "gone" in page and "angle10" in page        # failed; the classes
    direct = _run("rank", target_dir, *models, "--model", f"local-dir:{tmp_path / 'gone'}", "-n", 40, "-f", "html")
    assert direct.exit_code == 0 and direct.stdout.startswith("<!DOCTYPE html>") and "Set aside (0)" in direct.stdout


def test_html_names_skipped_files_and_a_schema_1_result_still_renders(saved, tmp_path):
    d = json.loads(saved.read_text())
    d["sample"]["skipped"] = [{"path": "a/<b>.png", "reason": "cannot decode: truncated"}]
    d["schema_version"] = 1
    for key in ("fit_rule", "risk_model"):
        d.pop(key)
    for c in d["ranking"]:
        c.pop("fit_basis")
    old = tmp_path / "old.json"
    old.write_text(json.dumps(d))
    res = _run("report", old, "-f", "html")
    assert res.exit_code == 0, res.output
    assert "a/&lt;b&gt;.png" in res.stdout and "cannot decode: truncated" in res.stdout and "<b>.png" not in res.stdout
    assert "Not recorded in this result" in res.stdout
    assert _run("report", old, "-f", "csv").stdout.startswith("rank,model")


def test_report_refuses_what_is_not_a_result(tmp_path):
    bad = tmp_path / "x.json"
    for text in ("not json", json.dumps({"schema_version": 9}), json.dumps({"schema_version": 2, "ranking": []})):
        bad.write_text(text)
        res = _run("report", bad, "-f", "html")
        assert res.exit_code == 2 and "is not a readable proximity result" in res.stderr
        assert "Traceback" not in res.output
    res = _run("report", tmp_path / "missing.json")
    assert res.exit_code == 2 and "missing.json" in res.stderr
