"""Labels of the target images: first-level sub-folders, or a CSV manifest (``path,label``).

A manifest is user input and is read as such:

* it must be UTF-8 text (a byte-order mark is fine); anything else is a :class:`LabelsError`
  naming the byte and the line;
* a path listed more than once with the **same** label is used once (one warning);
* a path listed with **different** labels is ambiguous: it is left out of the sample and named
  under ``skipped`` with its labels (one warning) — proximity never guesses which label is right;
* paths that match no image under the folder, and rows with an empty label, are named under
  ``skipped``; images that the manifest does not list are left out (said in the labels note).

Paths are relative to the image folder or to the manifest's folder, or absolute; two spellings of
one file (``a.png``, ``./a.png``) are the same path.
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path

from .errors import InvalidParameterError, LabelsError
from .imageio import SkippedFile

logger = logging.getLogger("proximity.data")

LabelsResult = tuple[list[str] | None, str, str, list[SkippedFile], list[Path]]


def labels_for(root: Path, files: list[Path], labels: str | Path) -> LabelsResult:
    """Return (label per file or None, source, note, skipped, files kept)."""
    rel = [f.relative_to(root) for f in files]
    if isinstance(labels, Path) or str(labels).lower().endswith(".csv"):
        return labels_from_manifest(root, files, Path(labels))
    if labels == "none":
        return None, "none", "labels disabled (--labels none)", [], files
    at_root = [r for r in rel if len(r.parts) == 1]
    if labels == "folders" and at_root:
        raise LabelsError(
            f"--labels folders needs every image inside a first-level sub-folder of '{root}', "
            f"but {len(at_root)} lie directly in it (e.g. '{at_root[0]}'). Move them into class "
            "folders, give a CSV manifest (--labels FILE.csv), or use --labels none.",
            source="folders",
        )
    if labels not in ("auto", "folders"):
        raise InvalidParameterError("labels", "rank", "'auto', 'folders', 'none' or a path to a .csv file", labels)
    if at_root:
        note = f"{len(at_root)} image(s) lie directly in the folder, so no labels were inferred"
        if len(at_root) < len(rel):
            logger.warning("Running label-free: %s (e.g. '%s') next to sub-folders. Move them into class folders, "
                           "or pass --labels none to silence this.", note, at_root[0])
        return None, "none", note, [], files
    return [r.parts[0] for r in rel], "folders", "labels from first-level sub-folders", [], files


def read_manifest(manifest: Path) -> list[tuple[int, str, str]]:
    """The rows of a manifest as (line number, path, label); raises LabelsError naming the fix."""
    if not manifest.is_file():
        raise LabelsError(f"Label manifest '{manifest}' does not exist. Give a CSV file with columns path,label.",
                          source=str(manifest))
    try:
        raw = manifest.read_bytes()
    except OSError as exc:
        raise LabelsError(f"Label manifest '{manifest}' cannot be read ({exc.strerror or exc}).",
                          source=str(manifest)) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise LabelsError(
            f"Label manifest '{manifest}' is not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line}). Save it "
            "as UTF-8 (e.g. 'CSV UTF-8' in a spreadsheet, or `iconv -f latin1 -t utf-8`).",
            source=str(manifest)) from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        cols = [c.strip().lower() for c in (reader.fieldnames or []) if c]
        if "path" not in cols or "label" not in cols:
            raise LabelsError(
                f"Label manifest '{manifest}' must have a header with columns 'path' and 'label'; "
                f"found {reader.fieldnames}.", source=str(manifest))
        rows = []
        for r in reader:
            clean = {k.strip().lower(): (v if isinstance(v, str) else "").strip() for k, v in r.items() if k}
            rows.append((reader.line_num, clean.get("path", ""), clean.get("label", "")))
    except csv.Error as exc:
        raise LabelsError(f"Label manifest '{manifest}' is not valid CSV (line {reader.line_num}: {exc}).",
                          source=str(manifest)) from None
    return rows


def labels_from_manifest(root: Path, files: list[Path], manifest: Path) -> LabelsResult:
    """Labels from a CSV manifest, with the module docstring's rule for duplicates and conflicts."""
    rows = read_manifest(manifest)
    found = {f.resolve(): f for f in files}
    listed: dict[Path, list[tuple[int, str, str]]] = {}     # file -> its rows, in manifest order
    skipped: list[SkippedFile] = []
    missing_seen: set[str] = set()
    for line, path, label in rows:
        p = Path(path)
        cand = [p] if p.is_absolute() else [root / p, manifest.parent / p]
        hit = next((c.resolve() for c in cand if path and c.resolve() in found), None)
        if hit is None:
            if path not in missing_seen:
                missing_seen.add(path)
                skipped.append(SkippedFile(path, "listed in the manifest but not found under the image folder"))
        else:
            listed.setdefault(hit, []).append((line, path, label))
    kept, labels, repeated, conflicts = [], [], [], []
    for hit, entries in listed.items():
        names = list(dict.fromkeys(lab for _, _, lab in entries if lab))
        shown = found[hit].relative_to(root).as_posix()
        if not names:
            skipped.append(SkippedFile(entries[0][1], "empty label in the manifest"))
        elif len(names) > 1:
            conflicts.append((shown, entries))
            skipped.append(SkippedFile(shown, f"listed in the manifest with {len(names)} different labels "
                                              f"({', '.join(names)}): ambiguous, left out"))
        else:
            kept.append(found[hit])
            labels.append(names[0])
            if len(entries) > 1:
                repeated.append((shown, entries))
    _warn_duplicates(manifest, repeated, conflicts)
    note = f"labels from manifest {manifest.name}"
    if len(found) > len(listed):
        note += f"; {len(found) - len(listed)} image(s) not in the manifest were left out"
    if conflicts:
        note += f"; {len(conflicts)} image(s) with conflicting labels were left out"
    return labels, f"manifest:{manifest}", note, skipped, kept


def _warn_duplicates(manifest: Path, repeated: list, conflicts: list) -> None:
    if repeated:
        shown, entries = repeated[0]
        logger.warning("Manifest %s lists %d image(s) more than once with the same label (e.g. '%s' on lines %s): "
                       "each is used once.", manifest.name, len(repeated), shown,
                       ", ".join(str(line) for line, _, _ in entries[:5]))
    if conflicts:
        shown, entries = conflicts[0]
        logger.warning("Manifest %s gives %d image(s) different labels (e.g. '%s': %s): they are left out as "
                       "ambiguous and listed under skipped. Keep one row per image.", manifest.name, len(conflicts),
                       shown, ", ".join(f"'{lab}' on line {line}" for line, _, lab in entries[:4]))
