"""The ``proximity`` command line: a thin layer over the Python API.

Known errors print as one line (``error: …``) with exit code 2 (bad input) or 1 (nothing could
be ranked); set ``PROXIMITY_DEBUG=1`` for the traceback.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from enum import Enum
from pathlib import Path
from typing import List, NoReturn, Optional

import typer
from rich.console import Console
from rich.markup import escape

from .errors import ProximityError

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode="markdown",
                  help="Which pretrained backbone should I start from? Ranks backbones by measured domain proximity.")
catalog_app = typer.Typer(no_args_is_help=True,
                          help="List, show, validate and refresh catalogs of candidate backbones.")
app.add_typer(catalog_app, name="catalog")
zoo_app = typer.Typer(no_args_is_help=True,
                      help="The offline zoo: real pretrained backbones from PyPI packages, no Hub needed.")
app.add_typer(zoo_app, name="zoo")
err = Console(stderr=True, emoji=False)


class Fmt(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


class RankFmt(str, Enum):
    """``rank`` and ``report`` also write the HTML page."""
    table = "table"
    json = "json"
    csv = "csv"
    html = "html"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


class Precision(str, Enum):
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


class ExecutorOpt(str, Enum):
    serial = "serial"
    ray = "ray"


class IntensityOpt(str, Enum):
    auto = "auto"
    percentile = "percentile"
    full_range = "full-range"


def _fail(exc: BaseException, code: int = 2) -> NoReturn:
    if os.environ.get("PROXIMITY_DEBUG"):
        raise exc
    err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
    err.print("[dim](set PROXIMITY_DEBUG=1 for the traceback)[/]")
    raise typer.Exit(code)


def _setup_logging(quiet: bool) -> None:
    from rich.logging import RichHandler

    handler = RichHandler(console=err, show_time=False, show_path=False, markup=False)
    logging.basicConfig(level=logging.ERROR if quiet else logging.WARNING, handlers=[handler], format="%(message)s",
                        force=True)
    level = logging.DEBUG if os.environ.get("PROXIMITY_DEBUG") else logging.ERROR if quiet else logging.WARNING
    logging.getLogger("proximity").setLevel(level)


@app.command("rank", epilog=(
    "**Examples**\n\n"
    "    proximity rank ./xrays                                  # default catalog, labels from sub-folders\n\n"
    "    proximity rank ./tiles --model timm:resnet18.a1_in1k --model local-dir:./my_backbone --format json\n\n"
    "    proximity rank ./slides --labels none --sample 200 --output ranking.csv --format csv\n\n"
    "    proximity rank ./scans --catalog zoo --catalog default      # offline zoo + Hub backbones\n\n"
    "    proximity rank ./scans --catalog zoo --format html --output report.html   # one self-contained page\n\n"
    "    proximity rank ./scans --catalog big_catalog/ --shortlist 5              # screen all, evaluate the best 5\n\n"
    "    proximity rank ./scans --executor ray --address ray://head:10001      # one Ray task per backbone"))
def rank_cmd(
    path: Path = typer.Argument(..., help="Folder of images (searched recursively)."),
    model: Optional[List[str]] = typer.Option(None, "--model", "-m",
                                              help="A candidate (repeatable): timm:NAME, hf-hub:ORG/NAME[@REV] or "
                                                   "local-dir:PATH. When given, only these are ranked."),
    catalog: Optional[List[str]] = typer.Option(None, "--catalog", "-c",
                                                help="Catalog name (default, zoo) or a folder of TOML entries; "
                                                     "repeatable (entries ranked together). [default: default]"),
    labels: str = typer.Option("auto", "--labels",
                               help="auto (first-level sub-folders), folders, none, or a CSV manifest path with "
                                    "columns path,label."),
    sample: int = typer.Option(500, "--sample", "-n", min=1, help="Images to sample (stratified by label, seeded)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampling, the probe folds and the random-weights control."),
    intensity: IntensityOpt = typer.Option(IntensityOpt.auto, "--intensity",
                                           help="How pixel values become [0, 1]: auto (8-bit /255, 16-bit/float "
                                                "percentile window), percentile, full-range."),
    device: Device = typer.Option(Device.auto, "--device", help="auto, cpu, cuda or mps."),
    batch_size: int = typer.Option(32, "--batch-size", "-b", min=1, help="Images per forward batch."),
    precision: Precision = typer.Option(
        Precision.float32, "--precision",
        help="The networks' arithmetic: float32, or autocast to bfloat16 (CPU, CUDA) or float16 (CUDA, MPS) — faster "
             "on GPUs with tensor cores; statistics stay float32, signals may move within their sd."),
    no_control: bool = typer.Option(False, "--no-control",
                                    help="Skip the random-weights control pass (no 'gain', risk from proximity only)."),
    control_images: str = typer.Option(
        "64", "--control-images", metavar="N|all",
        help="Images the random-weights control sees (stratified by label, ≥ 5 per class); 'all': every image "
             "(a whole second pass; 'gain' then paired over the whole sample)."),
    signals: str = typer.Option(
        "core", "--signals", metavar="core|all|NAME,…",
        help="core: what the fit, the risk and the baselines use; all: also the literature's other estimators "
             "and label-free statistics (slower); or names (added to core)."),
    scratch: bool = typer.Option(
        False, "--scratch",
        help="Also train each architecture from random weights on the sample (a short, early-stopped run on 70 %, "
             "scored on 30 %): the risk then compares the probe with it. Needs labels; seconds for small networks, "
             "tens of minutes for a ResNet-50 at 224 px on a CPU (use a GPU)."),
    finetune: bool = typer.Option(
        False, "--finetune",
        help="Also fine-tune each candidate briefly from its pretrained weights on the same 70 %/30 % split "
             "(the --scratch loop): the 'finetune' signal, reported, not used by the fit or the risk (on the benchmark "
             "it ranked below the frozen probe). Needs labels; trains every candidate (use a GPU, or --shortlist "
             "to fine-tune only the best few)."),
    repeats: int = typer.Option(
        1, "--repeats", min=1, metavar="K",
        help="Run each --scratch and --finetune training K times, each on its own seeded 70 %/30 % split: the "
             "signal is their mean ± the sd of that mean (K times the trainings; each cached). One 30 % hold-out is "
             "noisy: on the benchmark, 5 made fine-tuned − from-scratch a sharper negative-transfer predictor "
             "(AUROC 0.75 → 0.81). The shipped risk model was calibrated on single trainings."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Neither read nor write the evidence cache."),
    folds: int = typer.Option(5, "--folds", min=2, help="k of the stratified k-fold probe."),
    fmt: RankFmt = typer.Option(RankFmt.table, "--format", "-f",
                                help="Output format: table, json, csv, or html (one self-contained page with plots)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o",
                                          help="Write the result to this file instead of stdout (checked before the "
                                               "run, replaced atomically)."),
    quiet: bool = typer.Option(False, "--quiet", "-q",
                               help="No banner, no progress (bars on a terminal, lines on stderr elsewhere) and no "
                                    "warnings."),
    domain: Optional[List[str]] = typer.Option(None, "--domain", "-d",
                                               help="Only catalog entries with this domain tag (repeatable; `proximity "
                                                    "catalog domains` lists them)."),
    max_params: Optional[float] = typer.Option(None, "--max-params",
                                               help="Only catalog entries with at most this many parameters "
                                                    "(millions)."),
    license: Optional[List[str]] = typer.Option(None, "--license",
                                                help="Only catalog entries under this license (repeatable, e.g. "
                                                     "apache-2.0, mit)."),
    include_gated: bool = typer.Option(False, "--include-gated",
                                       help="Also rank gated Hub models (needs HF_TOKEN with access)."),
    shortlist: Optional[int] = typer.Option(
        None, "--shortlist", min=0,
        help="Screen every candidate cheaply (a quarter of the images, no control), then evaluate only the best N "
             "in full; the others are listed as screened. Default: 6 for catalog runs of more than 20 candidates, "
             "none for --model lists; 0 = evaluate all."),
    executor: ExecutorOpt = typer.Option(
        ExecutorOpt.serial, "--executor",
        help="serial (this process) or ray (one Ray task per backbone; pip install 'proximity[ray]')."),
    address: Optional[str] = typer.Option(
        None, "--address",
        help="With --executor ray: the Ray cluster (ray://HEAD:10001, HEAD:6379 or auto); default: a local one, "
             "or RAY_ADDRESS."),
) -> None:
    """Rank candidate backbones for the images under PATH."""
    from . import api
    from .config import RankConfig

    _setup_logging(quiet)
    if model and catalog:
        _fail(typer.BadParameter("give either --model (ad-hoc candidates) or --catalog, not both"))
    if model and (domain or max_params is not None or license or include_gated):
        _fail(typer.BadParameter("--domain, --max-params, --license and --include-gated select catalog entries; "
                                 "they do not apply to --model candidates"))
    if address is not None and executor is not ExecutorOpt.ray:
        _fail(typer.BadParameter("--address names a Ray cluster: give it with --executor ray"))
    n_control: Optional[int] = None
    if control_images.strip().lower() != "all":
        try:
            n_control = int(control_images)
        except ValueError:
            n_control = 0
        if n_control < 8:
            _fail(typer.BadParameter(f"--control-images takes a number of images ≥ 8 or 'all', not '{control_images}'"))
    try:
        config = RankConfig.build(models=model or None, catalog=catalog or ["default"], labels=labels, sample=sample,
                                  seed=seed, intensity=intensity.value, device=device.value, batch_size=batch_size,
                                  precision=precision.value, control=not no_control, control_images=n_control,
                                  signals=signals.strip(),
                                  use_cache=not no_cache, folds=folds, scratch=scratch, finetune=finetune,
                                  repeats=repeats,
                                  domain=domain or None,
                                  max_params=max_params, license=license or None, include_gated=include_gated,
                                  shortlist="auto" if shortlist is None else (shortlist or None),
                                  executor=executor.value, address=address)
    except ProximityError as exc:
        _fail(exc)
    if output is not None:
        from .fileio import check_output_path

        try:
            check_output_path(output)       # before any work: a result is never computed to be lost
        except ProximityError as exc:
            _fail(exc)
    from .cli_progress import progress_for

    progress = progress_for(err, quiet)
    what = None if model else "from catalog " + ", ".join(catalog or ["default"])
    try:
        with progress if progress else contextlib.nullcontext():
            result = api.rank(path, config=config, progress=progress,
                              on_start=None if quiet else lambda plan: _banner(plan, what))
    except ProximityError as exc:
        _fail(exc)
    _emit(result, fmt, output)
    if not result.ranking:
        err.print("[red]error:[/] no backbone could be ranked (see 'failed' above).")
        raise typer.Exit(1)


def _banner(plan, what: Optional[str]) -> None:
    """What the run is about to do, said once its inputs are checked and its sample decoded."""
    n = plan.n_candidates
    who = (f"{n} backbone{'' if n == 1 else 's'} {what}" if what
           else "the --model candidate" if n == 1 else f"the {n} --model candidates")
    aside = f" ({plan.n_excluded} set aside)" if plan.n_excluded else ""
    if plan.labelled:
        images = f"{plan.n_images} images in {plan.n_classes} classes"
    else:
        images = f"{plan.n_images} images, label-free" + (" (one class)" if plan.n_classes == 1 else "")
    subset = plan.control == "subset" and plan.control_images < plan.n_images
    control = ("" if plan.control == "off"
               else f" plus a random-weights control pass on {plan.control_images} of the images"
               if subset else " plus one random-weights control pass")
    faster = "-n makes it faster" if plan.control == "off" else "-n and --no-control make it faster"
    screen = (f"a screen of each on a quarter of the images, then, for the best {plan.shortlist}, "
              if getattr(plan, "shortlist", None) else "")
    times = getattr(plan, "repeats", 1)
    times = f", {times} times, each on its own split" if times > 1 else ""
    scratch = (f", then each architecture trained from scratch on 70 % of the images (up to 30 epochs{times})"
               if getattr(plan, "scratch", False) else "")
    if getattr(plan, "finetune", False):
        scratch += f", then each candidate fine-tuned on 70 % of the images (up to 30 epochs{times})"
    err.print(f"[dim]Ranking {escape(who)}{aside} on {images}: {screen}one forward pass per "
              f"backbone{control}{scratch} (Hub weights are downloaded on a first run; {faster}).[/]", highlight=False,
              soft_wrap=True)


def _emit(result, fmt, output: Optional[Path]) -> None:
    """Print the result, or write it to ``output`` atomically; when that write fails the previous
    file stays as it was and the result goes to stdout instead (exit 1), so nothing is lost."""
    import io

    from .fileio import write_output
    from .report import render_html, render_table

    if fmt.value == "table" and not output:
        render_table(result, Console(emoji=False))
        return
    if fmt.value == "table":
        buf = io.StringIO()
        render_table(result, Console(file=buf, width=160, emoji=False))
        text = buf.getvalue()
    else:
        text = {"json": result.to_json, "csv": result.to_csv, "html": lambda: render_html(result)}[fmt.value]()
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
        raise typer.Exit(1) from None
    err.print(f"wrote {escape(str(output))}", highlight=False, soft_wrap=True)


@app.command("report", epilog=(
    "**Examples**\n\n"
    "    proximity rank ./scans --catalog zoo --format json --output result.json\n\n"
    "    proximity report result.json --format html --output report.html\n\n"
    "    proximity report result.json                  # the terminal table again"))
def report_cmd(
    result_file: Path = typer.Argument(..., help="A result saved by `proximity rank --format json --output FILE`."),
    fmt: RankFmt = typer.Option(RankFmt.table, "--format", "-f",
                                help="table, json, csv or html (one self-contained page with plots)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o",
                                          help="Write to this file instead of stdout (replaced atomically)."),
) -> None:
    """Show a saved result again, in any format — e.g. as an HTML page."""
    from .report import Ranking

    try:
        if output is not None:
            from .fileio import check_output_path

            check_output_path(output)
        result = Ranking.from_json(result_file)
    except ProximityError as exc:
        _fail(exc)
    _emit(result, fmt, output)


@app.callback(invoke_without_command=True)
def _root(version: bool = typer.Option(False, "--version", help="Print the version and exit.")) -> None:
    if version:
        from ._version import __version__

        print(f"proximity {__version__}")
        raise typer.Exit(0)


def main() -> None:
    """The console entry point (see :mod:`proximity.__main__`: Ctrl-C exits 130 with one line)."""
    from .__main__ import main as _main

    _main()


from . import cli_catalog  # noqa: E402,F401  (registers the catalog and zoo commands)

if __name__ == "__main__":
    main()
