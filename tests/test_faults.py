"""Fault injection (issue 17): outputs, the evidence cache, the zoo and Ctrl-C.

Each test reproduces one case of the fault run and checks that nothing is lost and that one clear
line is printed. Real faults are used where this machine can make them: a path under a regular
file (ENOTDIR), ``/dev/full``, a small tmpfs (full or read-only) when the tests may mount one; the
same faults are also injected by monkeypatching (ENOSPC, EROFS) so that they are tested everywhere.
Loader, manifest and catalog faults: tests/test_faults_input.py.
"""

import errno
import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from proximity import cache, fileio
from proximity.cli import app

ROOT = Path(__file__).resolve().parents[1]


def _run(*args, env=None):
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


def _lines(text: str) -> list[str]:
    return [x for x in text.splitlines() if x.strip()]


@pytest.fixture
def models(backbones):
    return ["--model", f"local-dir:{backbones['A']}", "--model", f"local-dir:{backbones['B']}"]


def _fits(stdout: str) -> list[tuple[str, float]]:
    return [(c["model"], c["fit"]) for c in json.loads(stdout)["ranking"]]


@contextmanager
def _umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


@contextmanager
def tmpfs(path: Path, size_kb: int, readonly: bool = False):
    """A real small tmpfs at ``path``; the test is skipped where mounting is impossible."""
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size_kb}k" + (",ro" if readonly else "")
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount a tmpfs here ({exc}): the monkeypatched variant covers this case")
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN): "
                    f"{r.stderr.decode().strip()}; the monkeypatched variant covers this case")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=20)


def _fill(folder: Path) -> None:
    """Fill a file system until it has no room left."""
    try:
        with open(folder / "filler", "wb") as fh:
            while True:
                fh.write(b"\0" * 4096)
                fh.flush()
    except OSError as exc:
        assert exc.errno == errno.ENOSPC


def _no_space_after(n_bytes: int):
    """A stand-in for fileio._write_all that writes ``n_bytes`` and then finds the disk full."""
    def write(fd, data):
        os.write(fd, bytes(data[:n_bytes]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return write


# --- outputs -----------------------------------------------------------------------------------

@pytest.mark.parametrize("where,says", [
    ("missing/r.json", "does not exist"),
    ("a_file/r.json", "is a file, not a folder"),
    ("a_file/sub/r.json", "lies under a file"),
    ("", "it is a folder"),
])
def test_output_target_is_checked_before_any_work(tmp_path, backbones, monkeypatch, where, says):
    (tmp_path / "a_file").write_text("x")
    import proximity.api
    monkeypatch.setattr(proximity.api, "rank", lambda *a, **k: pytest.fail("work started before --output was checked"))
    res = _run("rank", tmp_path, "--model", f"local-dir:{backbones['A']}", "--output", tmp_path / where)
    assert res.exit_code == 2 and says in res.stderr and "Traceback" not in res.output
    assert "--output" in res.stderr or "mkdir" in res.stderr                 # the fix is named


def test_output_on_a_read_only_file_system_is_refused_first(tmp_path, backbones, monkeypatch):
    def erofs(target):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(target))
    monkeypatch.setattr(fileio, "create_tmp", erofs)
    res = _run("rank", tmp_path, "--model", f"local-dir:{backbones['A']}", "--output", tmp_path / "r.json")
    assert res.exit_code == 2 and "Read-only file system" in res.stderr and "Traceback" not in res.output


def test_output_on_a_real_read_only_mount_is_refused_first(tmp_path, backbones):
    with tmpfs(tmp_path / "ro", 64, readonly=True) as ro:
        res = _run("rank", tmp_path, "--model", f"local-dir:{backbones['A']}", "--output", ro / "r.json")
    assert res.exit_code == 2 and "Read-only file system" in res.stderr


def test_failed_write_keeps_the_previous_file_and_prints_the_result(target_dir, models, tmp_path, fresh_cache,
                                                                    monkeypatch):
    out = tmp_path / "results" / "ranking.json"
    out.parent.mkdir()
    out.write_text("previous result\n")
    monkeypatch.setattr(fileio, "_write_all", _no_space_after(4096))
    res = _run("rank", target_dir, *models, "-n", 16, "--no-control", "-f", "json", "--output", out)
    assert res.exit_code == 1, res.output
    assert out.read_text() == "previous result\n" and [p.name for p in out.parent.iterdir()] == ["ranking.json"]
    assert len(_fits(res.stdout)) == 2                                         # nothing computed is lost
    said = " ".join(res.stderr.split())
    assert "No space left on device" in said and "printed on stdout instead" in said


def test_output_to_dev_full_prints_the_result_instead(target_dir, models, fresh_cache):
    if not Path("/dev/full").exists():
        pytest.skip("this system has no /dev/full")
    res = _run("rank", target_dir, *models, "-n", 16, "--no-control", "-f", "csv", "--output", "/dev/full")
    assert res.exit_code == 1 and res.stdout.startswith("rank,") and "No space left on device" in res.stderr
    assert "Traceback" not in res.output


def test_output_on_a_real_full_disk_keeps_the_previous_file(target_dir, models, tmp_path, fresh_cache):
    with tmpfs(tmp_path / "full", 256) as disk:
        (disk / "r.json").write_text("previous result\n")
        _fill(disk)
        res = _run("rank", target_dir, *models, "-n", 16, "--no-control", "-f", "json", "--output", disk / "r.json")
        assert res.exit_code == 1 and (disk / "r.json").read_text() == "previous result\n"
        assert sorted(p.name for p in disk.iterdir()) == ["filler", "r.json"] and len(_fits(res.stdout)) == 2


def test_output_is_replaced_atomically_with_the_umask(target_dir, models, tmp_path, fresh_cache):
    out = tmp_path / "r.csv"
    out.write_text("old")
    with _umask(0o027):
        res = _run("rank", target_dir, *models, "-n", 16, "--no-control", "-f", "csv", "--output", out)
        assert res.exit_code == 0 and out.read_text().startswith("rank,")
        assert oct(out.stat().st_mode & 0o777) == oct(0o644)                  # the replaced file's mode is kept
        fresh = tmp_path / "new.csv"
        fileio.atomic_write(fresh, "x")
        assert oct(fresh.stat().st_mode & 0o777) == oct(0o640)                # 0o666 minus the umask


# --- the evidence cache -------------------------------------------------------------------------

def test_unwritable_cache_is_one_warning_and_the_same_ranking(target_dir, models, tmp_path, monkeypatch):
    (tmp_path / "a_file").write_text("x")
    monkeypatch.setenv("PROXIMITY_CACHE_DIR", str(tmp_path / "a_file" / "cache"))       # ENOTDIR
    res = _run("rank", target_dir, *models, "-n", 16, "-f", "json")
    assert res.exit_code == 0, res.output
    said = " ".join(res.stderr.split())                                             # rich wraps long lines
    assert said.count("cannot be written") == 1 and "goes on without caching" in said
    d = json.loads(res.stdout)
    assert d["failed"] == [] and all(c["signals"]["gain"]["value"] is not None for c in d["ranking"])
    plain = _run("rank", target_dir, *models, "-n", 16, "-f", "json", "--no-cache")
    assert _fits(res.stdout) == _fits(plain.stdout)


def test_full_cache_is_one_warning_and_the_same_ranking(target_dir, models, fresh_cache, monkeypatch):
    plain = _fits(_run("rank", target_dir, *models, "-n", 16, "-f", "json", "--no-cache").stdout)
    monkeypatch.setattr(fileio, "_write_all", _no_space_after(1000))
    res = _run("rank", target_dir, *models, "-n", 16, "-f", "json")
    assert res.exit_code == 0 and json.loads(res.stdout)["failed"] == [] and _fits(res.stdout) == plain
    said = " ".join(res.stderr.split())
    assert said.count("cannot be written") == 1 and "No space left on device" in said
    assert not [p for p in fresh_cache.rglob("*") if p.is_file()]                    # no half files, no .tmp


@pytest.mark.parametrize("readonly", [False, True], ids=["full", "read-only"])
def test_real_full_or_read_only_cache(target_dir, models, tmp_path, monkeypatch, readonly):
    with tmpfs(tmp_path / "cache", 256, readonly=readonly) as disk:
        if not readonly:
            _fill(disk)
        monkeypatch.setenv("PROXIMITY_CACHE_DIR", str(disk))
        res = _run("rank", target_dir, *models, "-n", 16, "-f", "json")
        assert res.exit_code == 0 and json.loads(res.stdout)["failed"] == []
        assert " ".join(res.stderr.split()).count("cannot be written") == 1
        assert not list(disk.rglob("*.tmp"))


def test_files_copied_under_another_key_are_rejected(target_dir, models, fresh_cache):
    first = _run("rank", target_dir, *models, "-n", 16, "-f", "json")
    files = sorted(fresh_cache.rglob("*.npz"))
    blobs = [f.read_bytes() for f in files]
    for f, blob in zip(files, blobs[1:] + blobs[:1], strict=True):           # every file under another's key
        f.write_bytes(blob)
    again = _run("rank", target_dir, *models, "-n", 16, "-f", "json")
    assert again.exit_code == 0 and _fits(again.stdout) == _fits(first.stdout)
    # two evidence passes, one random-weights control (A and B are one architecture: shared), two signal records
    assert " ".join(again.stderr.split()).count("written for another key") == len(files) == 5
    assert not any(c["cached"] for c in json.loads(again.stdout)["ranking"])


def test_cache_files_record_key_and_checksum(fresh_cache, caplog):
    arrays = {"features": np.arange(6, dtype=np.float32).reshape(2, 3), "seconds": np.array(1.0)}
    path = cache.save_arrays("a" * 64, arrays)
    np.testing.assert_array_equal(cache.load_arrays("a" * 64)["features"], arrays["features"])
    with np.load(path) as z:
        meta = json.loads(str(z["__meta__"]))
        tampered = {k: z[k] for k in z.files}
    assert meta["key"] == "a" * 64 and meta["sha256"] == cache.checksum(arrays)
    tampered["features"] = tampered["features"] + 1
    np.savez(path, **tampered)
    cache.save_arrays("b" * 64, {"features": np.array([[np.nan, 1.0]], np.float32)})
    for k in "cd":
        cache._path(k * 64).parent.mkdir(parents=True, exist_ok=True)
    cache._path("c" * 64).write_bytes(b"garbage, not an archive")
    np.savez(cache._path("d" * 64), x=np.array([{"pickled": 1}], dtype=object))
    with caplog.at_level("WARNING", logger="proximity"):
        assert [cache.load_arrays(k * 64) for k in "bcd"] == [None] * 3 and cache.load_arrays("a" * 64) is None
    assert "does not match its checksum" in caplog.text and "non-finite values (in features)" in caplog.text
    assert "not a proximity cache file" in caplog.text and "allow_pickle" not in caplog.text


def test_stale_tmp_files_are_removed_and_cache_files_follow_the_umask(fresh_cache):
    shard = fresh_cache / "evidence" / "ee"
    shard.mkdir(parents=True)
    stale, young = shard / ".old.npz.0000.tmp", shard / "tmpk1ll3d.tmp"
    for p in (stale, young):
        p.write_bytes(b"half a save")
    os.utime(stale, (time.time() - 3600,) * 2)
    cache.new_run()
    with _umask(0o002):
        path = cache.save_arrays("e" * 64, {"x": np.zeros(3)})
    assert not stale.exists() and young.exists()                # a young one may be a save in progress
    assert oct(path.stat().st_mode & 0o777) == oct(0o664)


def test_a_damaged_reference_file_is_a_reference_error(tmp_path):
    from proximity.reference import ReferenceError, load_reference
    (tmp_path / "r.npz").write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(ReferenceError, match="cannot read reference statistics .* Rebuild them"):
        load_reference(tmp_path / "r.npz")


# --- zoo build ----------------------------------------------------------------------------------

@pytest.fixture
def fake_zoo(monkeypatch, tmp_path):
    """A one-member zoo whose 'package' is a tiny timm model saved on disk (no zoo extra needed)."""
    import timm
    import torch

    from proximity import convert as C
    from proximity import zoo

    weights = tmp_path / "pkg" / "w.pth"
    weights.parent.mkdir()
    torch.save(timm.create_model("test_resnet", num_classes=0).state_dict(), weights)
    member = zoo.ZooMember(
        id="tiny.fake", package="numpy", module="numpy", weights="w.pth", architecture="test_resnet", size=32,
        mean=(0.5,) * 3, std=(0.5,) * 3, crop_pct=1.0, interpolation="bilinear",
        entry={"name": "tiny",
               "pretraining": {"datasets": ["imagenet-1k"], "domains": ["natural"], "method": "supervised"},
               "facts": {"license": "mit"}, "provenance": {"pretraining": "test"}},
        build=lambda p: timm.create_model("test_resnet", num_classes=0),
        check=lambda m, p, ph: C.CheckResult(True, "ok"))
    monkeypatch.setattr(zoo, "MEMBERS", (member,))
    monkeypatch.setattr(zoo, "_locate", lambda m: weights)
    monkeypatch.setattr(zoo, "_photos", lambda: [])
    return zoo


def test_zoo_build_on_an_unwritable_data_folder_is_one_line(tmp_path, monkeypatch, fake_zoo):
    (tmp_path / "a_file").write_text("x")
    monkeypatch.setenv("PROXIMITY_DATA_DIR", str(tmp_path / "a_file" / "data"))
    res = _run("zoo", "build")
    assert res.exit_code == 2 and "cannot write" in res.stderr and "PROXIMITY_DATA_DIR" in res.stderr
    assert "Traceback" not in res.output and len(_lines(res.stderr)) <= 3


def test_zoo_build_on_a_full_disk_leaves_no_tmp_folder(tmp_path, monkeypatch, fake_zoo):
    monkeypatch.setenv("PROXIMITY_DATA_DIR", str(tmp_path / "data"))
    real = fake_zoo._save_repo

    def full_disk(model, m, folder, prov):
        real(model, m, folder, prov)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(fake_zoo, "_save_repo", full_disk)
    res = _run("zoo", "build")
    assert res.exit_code != 0 and "No space left on device" in res.stderr and "Traceback" not in res.output
    assert sorted(p.name for p in (tmp_path / "data" / "zoo" / "repos").iterdir()) == []


def test_zoo_build_on_a_real_full_disk(tmp_path, monkeypatch, fake_zoo):
    with tmpfs(tmp_path / "data", 256) as disk:
        monkeypatch.setenv("PROXIMITY_DATA_DIR", str(disk))
        (disk / "zoo" / "repos").mkdir(parents=True)
        _fill(disk)
        res = _run("zoo", "build")
        assert res.exit_code != 0 and "Traceback" not in res.output
        assert not list((disk / "zoo" / "repos").iterdir())


def test_zoo_files_follow_the_umask(tmp_path, monkeypatch, fake_zoo):
    monkeypatch.setenv("PROXIMITY_DATA_DIR", str(tmp_path / "data"))
    with _umask(0o022):
        res = _run("zoo", "build")
    assert res.exit_code == 0, res.output
    files = [p for p in (tmp_path / "data" / "zoo").rglob("*") if p.is_file()]
    assert files and {oct(p.stat().st_mode & 0o777) for p in files} == {oct(0o644)}
    assert [p.name for p in (tmp_path / "data" / "zoo" / "repos").iterdir()] == ["tiny.fake"]


# --- Ctrl-C -------------------------------------------------------------------------------------

_CHILD = """
import sys, time, types
if sys.argv[1] == "work":                      # a rank that is busy until interrupted
    fake = types.ModuleType("proximity.api")
    def rank(*a, **k):
        sys.stderr.write("working\\n"); sys.stderr.flush(); time.sleep(120)
    fake.rank = rank
    sys.modules["proximity.api"] = fake
else:                                          # "ready" once main() has started importing the CLI
    class Announce:                            # (inside its try: no race with a loaded machine)
        def find_spec(self, name, path=None, target=None):
            if name == "proximity.cli":
                sys.stderr.write("ready\\n"); sys.stderr.flush(); time.sleep(0.5)
            return None
    sys.meta_path.insert(0, Announce())
from proximity.__main__ import main
sys.argv = ["proximity", "rank", sys.argv[2], "--model", "timm:x", "--quiet"]
main()
"""


def _interrupt(tmp_path, mode: str, delay: float) -> subprocess.CompletedProcess:
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, mode, str(tmp_path)], cwd=ROOT, stderr=subprocess.PIPE,
                            stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    wait_for = "working" if mode == "work" else "ready"
    lines = []
    while True:
        line = proc.stderr.readline().decode()
        lines.append(line)
        if not line or line.strip() == wait_for:
            break
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out.decode(), "".join(lines) + err.decode())


@pytest.mark.parametrize("mode,delay", [("imports", 0.0), ("imports", 0.05), ("work", 0.2)],
                         ids=["first-instant", "during-imports", "during-the-work"])
def test_ctrl_c_at_any_moment_exits_130_with_one_line(tmp_path, mode, delay):
    res = _interrupt(tmp_path, mode, delay)
    assert res.returncode == 130, res.stderr
    assert "Traceback" not in res.stderr and "KeyboardInterrupt" not in res.stderr
    assert _lines(res.stderr)[-1] == "interrupted (Ctrl-C)"
    assert len([x for x in _lines(res.stderr) if x not in ("ready", "working")]) == 1
