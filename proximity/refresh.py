"""``proximity catalog refresh``: new backbones and up-to-date metadata from the Hugging Face Hub.

Two sources of change, both read with :mod:`huggingface_hub` before anything is written:

* **existing ``hf-hub:`` entries** — ``model_info`` of each repo pins ``revision`` to the current
  commit and records gated, downloads and likes; the license and the pretraining datasets (with
  their domain tags from ``catalog/domains.toml``) are filled from the model card where the entry
  has none. Hand-curated facts are kept: where the card says otherwise the difference is shown
  and left alone, unless ``overwrite``. A repo the Hub no longer has is reported *gone* (its file
  is kept unless ``remove_gone``). ``timm:`` entries are pinned by the installed timm and are
  not touched.
* **discovery** — ``list_models`` with the given search / author / library / pipeline-tag /
  tag filters (paginated by the client) proposes *new* entries: format from the repo's library
  (``timm`` or ``transformers``; another library makes the entry ``loadable = false`` with the
  reason), datasets and license from the card, the revision pinned.

:func:`plan_refresh` returns the whole diff (``new``, ``changed``, ``gone``, ``unchanged``) with the
new file texts; :func:`apply_refresh` writes them — every file first to a temporary name in the
catalog folder, then renamed, so a failure leaves the catalog as it was. A Hub that cannot be
reached, or an error listing models, raises before anything is written.

Reference statistics (``references``): a Hub *dataset* repo holding ``<entry id>.npz`` files made
by ``proximity catalog reference``; refresh downloads those of the catalog's entries (pinned to
the dataset revision) into ``$PROXIMITY_DATA_DIR/reference/hub/``, where runs find them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Callable, Iterable

from .catalog import domain_tags, dump_entry, load_entry, parse_source, read_entry_data
from .errors import CatalogError, HubUnavailableError

#: Hub libraries whose repos proximity loads (the repo's library is its format).
LIBRARIES = frozenset({"timm", "transformers"})
#: pipeline tags of repos that are image backbones (a discovered repo with another tag is catalogued
#: as not loadable: text models, image-to-text generators, ...)
VISION_TAGS = frozenset({"image-feature-extraction", "image-classification", "zero-shot-image-classification"})


@dataclass
class Change:
    """One entry's fate in a refresh."""

    status: str                          # new | changed | gone | unchanged | kept (curated fact differs only)
    id: str
    fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)   # field -> (old, new)
    notes: list[str] = field(default_factory=list)
    text: str | None = None              # the file's new content (None: nothing to write)


@dataclass
class RefreshPlan:
    catalog: Path
    changes: list[Change]
    references: list[tuple[str, str]] = field(default_factory=list)   # (entry id, path in the dataset repo)
    reference_repo: str = ""
    reference_revision: str = ""

    def by(self, status: str) -> list[Change]:
        return [c for c in self.changes if c.status == status]

    @property
    def writes(self) -> list[Change]:
        return [c for c in self.changes if c.text is not None]


def _card(info: Any) -> dict[str, Any]:
    data = getattr(info, "card_data", None) or getattr(info, "cardData", None) or {}
    return data.to_dict() if hasattr(data, "to_dict") else dict(data)


def _license(info: Any, card: dict[str, Any]) -> str:
    lic = card.get("license")
    if not lic:
        lic = next((t.split(":", 1)[1] for t in (getattr(info, "tags", None) or []) if t.startswith("license:")), "")
    return str(lic[0] if isinstance(lic, list) and lic else lic or "")


def _datasets(info: Any, card: dict[str, Any]) -> list[str]:
    ds = card.get("datasets") or [t.split(":", 1)[1] for t in (getattr(info, "tags", None) or [])
                                  if t.startswith("dataset:")]
    return [str(d).lower() for d in ([ds] if isinstance(ds, str) else ds)]


def map_domains(datasets: Iterable[str]) -> list[str]:
    """Domain tags of pretraining datasets through ``catalog/domains.toml`` (a Hub dataset id
    ``org/name`` is also looked up by its ``name``)."""
    table = domain_tags().get("datasets", {})
    out: list[str] = []
    for d in datasets:
        for key in (d, d.rsplit("/", 1)[-1]):
            for tag in table.get(key, []):
                if tag not in out:
                    out.append(tag)
    return out


def _hub_facts(info: Any) -> dict[str, Any]:
    card = _card(info)
    gated = getattr(info, "gated", False)
    return {"revision": info.sha or "", "gated": bool(gated), "downloads": int(getattr(info, "downloads", 0) or 0),
            "likes": int(getattr(info, "likes", 0) or 0), "license": _license(info, card),
            "datasets": _datasets(info, card),
            "library": getattr(info, "library_name", None) or "",
            "pipeline_tag": getattr(info, "pipeline_tag", None) or ""}


def entry_id(repo_id: str) -> str:
    return repo_id.replace("/", "--")


def _update(data: dict[str, Any], hub: dict[str, Any], overwrite: bool, today: str) -> tuple[dict, dict, list[str]]:
    """(new data, changed fields, notes) for an existing entry."""
    new = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    facts, pre, prov = new.setdefault("facts", {}), new.setdefault("pretraining", {}), new.setdefault("provenance", {})
    changed: dict[str, tuple[Any, Any]] = {}
    notes: list[str] = []

    def put(table: dict, key: str, value: Any, label: str, curated: bool) -> None:
        old = table.get(key)
        if old == value or value in ("", [], None):
            return
        if curated and old not in (None, "", []) and not overwrite:
            notes.append(f"{label}: the Hub says {value!r}, the catalog keeps {old!r} (--overwrite to take the Hub's)")
            return
        table[key] = value
        changed[label] = (old, value)
        prov[label if label != "revision" else "revision"] = f"Hub model_info, refreshed {today}"

    old_rev = new.get("revision", "")
    put(new, "revision", hub["revision"], "revision", curated=False)
    if "revision" in changed and old_rev:
        notes.append(f"reference statistics made for {old_rev[:12]} will not match {hub['revision'][:12]}: "
                     "rebuild them (catalog reference) or fetch new ones (--references)")
    put(facts, "gated", hub["gated"], "facts.gated", curated=False)
    put(facts, "downloads", hub["downloads"], "facts.downloads", curated=False)
    put(facts, "likes", hub["likes"], "facts.likes", curated=False)
    put(facts, "license", hub["license"], "facts.license", curated=True)
    put(pre, "datasets", hub["datasets"], "pretraining.datasets", curated=True)
    if "pretraining.datasets" in changed and not pre.get("domains"):
        put(pre, "domains", map_domains(hub["datasets"]), "pretraining.domains", curated=True)
    if changed:
        prov["checked"] = today
    for t in ("facts", "pretraining", "provenance"):
        if not new[t]:
            del new[t]
    return new, changed, notes


def _new_entry(repo_id: str, hub: dict[str, Any], today: str) -> dict[str, Any]:
    fmt = hub["library"] if hub["library"] in LIBRARIES else ""
    why_not = "" if fmt else (f"library '{hub['library'] or 'unknown'}': proximity loads timm and transformers "
                              "repos only")
    if fmt and hub["pipeline_tag"] not in VISION_TAGS:
        why_not = (f"pipeline tag '{hub['pipeline_tag'] or 'none'}' is not an image backbone's; check the repo and set "
                   "loadable = true by hand if it is one")
    data: dict[str, Any] = {"source": f"hf-hub:{repo_id}", "name": repo_id, "format": fmt, "revision": hub["revision"],
                            "pretraining": {"datasets": hub["datasets"], "domains": map_domains(hub["datasets"]),
                                            "method": "unknown"},
                            "facts": {"license": hub["license"], "gated": hub["gated"], "downloads": hub["downloads"],
                                      "likes": hub["likes"]}}
    if why_not:
        data["load"] = {"loadable": False, "reason": why_not}
    data["provenance"] = {k: f"Hub model_info / model card, {today}" for k in
                          ("revision", "facts.license", "facts.gated", "facts.downloads", "facts.likes", "pretraining")}
    data["provenance"]["checked"] = today
    if not data["facts"]["license"]:
        del data["facts"]["license"]
    return data


def plan_refresh(catalog: Path, *, search: str | None = None, author: str | None = None, library: str | None = None,
                 pipeline_tag: str | None = None, tags: Iterable[str] = (), limit: int | None = 50,
                 discover: bool = False, overwrite: bool = False, remove_gone: bool = False,
                 references: str | None = None, token: str | None = None,
                 progress: Callable[[str], None] | None = None) -> RefreshPlan:
    """Read everything from the Hub and return the diff (module docstring); writes nothing."""
    from huggingface_hub import HfApi

    from .hub import hub_errors, offline_unless_reachable, split_repo

    catalog = Path(catalog)
    if not catalog.is_dir():
        raise CatalogError("is not a folder of catalog entries", path=catalog)
    files = sorted(p for p in catalog.glob("*.toml") if p.name != "domains.toml")
    api = HfApi(token=token)
    today = date.today().isoformat()
    changes: list[Change] = []
    known: set[str] = set()
    with hub_errors("catalog refresh"), offline_unless_reachable() as reachable:
        if not reachable:
            raise HubUnavailableError("catalog refresh", "the Hub cannot be reached; nothing was read or written",
                                      advice="Check the network, HF_ENDPOINT and proxy settings, then run it again; "
                                             "`proximity catalog validate` checks the catalog as it is")
        for path in files:
            change = _refresh_entry(api, path, known, overwrite=overwrite, today=today, progress=progress)
            if change is not None:
                changes.append(change)
        if discover:
            kw = dict(search=search, author=author, library=library, pipeline_tag=pipeline_tag,
                      filter=list(tags) or None, limit=limit, cardData=True, sort="downloads")
            changes += _discover(api, {k: v for k, v in kw.items() if v is not None}, known,
                                 {c.id for c in changes} | {p.stem for p in files}, today)
        plan = RefreshPlan(catalog, changes)
        if references:
            repo, rev = split_repo(references)
            ref_info = api.dataset_info(repo, revision=rev or None)
            plan.reference_repo, plan.reference_revision = repo, ref_info.sha or rev or ""
            names = {s.rfilename for s in (ref_info.siblings or [])}
            ids = {p.stem for p in files} | {c.id for c in changes if c.status == "new"}
            plan.references = sorted((i, f"{i}.npz") for i in ids if f"{i}.npz" in names)
    if remove_gone:
        for c in plan.by("gone"):
            c.text = ""          # "" = delete the file
    return plan


def _refresh_entry(api: Any, path: Path, known: set[str], *, overwrite: bool, today: str,
                   progress: Callable[[str], None] | None) -> Change | None:
    """The change of one existing entry (None for a source the Hub does not hold); adds the repo it
    names to ``known``."""
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    from .hub import split_repo

    entry = load_entry(path)
    kind, rest = parse_source(entry.source)
    if kind == "timm":
        known.add(f"timm/{rest}")           # timm's weights live in timm/<name> on the Hub
    if kind != "hf-hub":
        return None
    repo, _ = split_repo(rest)
    known.add(repo)
    if progress:
        progress(repo)
    try:
        info = api.model_info(repo)
    except GatedRepoError:              # a subclass of RepositoryNotFoundError: first
        return Change("unchanged", entry.id, notes=["gated: the Hub shows no metadata without access (HF_TOKEN)"])
    except RepositoryNotFoundError:
        return Change("gone", entry.id, notes=[f"hf-hub:{repo} is no longer on the Hub (or is private)"])
    new, changed, notes = _update(read_entry_data(path), _hub_facts(info), overwrite, today)
    status = "changed" if changed else ("kept" if notes else "unchanged")
    return Change(status, entry.id, changed, notes, dump_entry(new) if changed else None)


def _discover(api: Any, query: dict[str, Any], known: set[str], ids: set[str], today: str) -> list[Change]:
    """New entries for the repos ``list_models(**query)`` finds that the catalog does not hold."""
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    out = []
    for info in api.list_models(**query):
        if info.id in known or entry_id(info.id) in ids:
            continue
        hub = _hub_facts(info)
        if not hub["revision"]:      # listings may omit the sha: ask for the repo itself
            try:
                hub = _hub_facts(api.model_info(info.id))
            except (RepositoryNotFoundError, GatedRepoError):
                continue
        data = _new_entry(info.id, hub, today)
        out.append(Change("new", entry_id(info.id), {"source": (None, data["source"])}, [], dump_entry(data)))
        ids.add(entry_id(info.id))
    return out


def apply_refresh(plan: RefreshPlan, *, token: str | None = None) -> list[Path]:
    """Write the plan: reference files downloaded and every entry file written to temporary names
    first (nothing is touched if one fails), then put in place by rename; if a rename fails, the
    files already replaced are restored. Returns the paths written."""
    from .reference import hub_reference_path

    tmpdir = Path(tempfile.mkdtemp(prefix=".refresh-", dir=plan.catalog))
    staged: list[tuple[Path | None, Path]] = []          # (new file or None = delete, target)
    try:
        if plan.references:
            from huggingface_hub import hf_hub_download

            from .hub import hub_errors, offline_unless_reachable

            with hub_errors("catalog refresh (references)"), offline_unless_reachable():
                for eid, name in plan.references:
                    got = hf_hub_download(plan.reference_repo, name, repo_type="dataset",
                                          revision=plan.reference_revision or None, token=token)
                    target = hub_reference_path(eid)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    tmp = target.parent / f".{target.name}.refresh"     # same folder: the rename is atomic
                    shutil.copyfile(got, tmp)
                    staged.append((tmp, target))
        for c in plan.writes:
            target = plan.catalog / f"{c.id}.toml"
            if not c.text:                     # "" = delete the file (plan.writes holds no None)
                staged.append((None, target))
                continue
            tmp = tmpdir / f"{c.id}.toml"
            tmp.write_text(c.text, encoding="utf-8")
            load_entry(tmp)                    # never write an entry that does not load back
            staged.append((tmp, target))
        done: list[tuple[Path, Path | None]] = []        # (target, backup of what it replaced)
        try:
            for i, (new, target) in enumerate(staged):
                backup = None
                if target.exists():
                    backup = tmpdir / f"backup-{i}-{target.name}"
                    shutil.copy2(target, backup)
                if new is None:
                    target.unlink()
                else:
                    os.replace(new, target)
                done.append((target, backup))
        except OSError:
            for target, backup in reversed(done):          # put back what was already replaced
                if backup is not None:
                    os.replace(backup, target) if backup.parent == target.parent else shutil.copy2(backup, target)
                else:
                    target.unlink(missing_ok=True)
            raise
        return [t for t, _ in done]
    finally:
        for new, _ in staged:
            if new is not None and new.exists() and new.parent != tmpdir:
                new.unlink(missing_ok=True)
        shutil.rmtree(tmpdir, ignore_errors=True)
