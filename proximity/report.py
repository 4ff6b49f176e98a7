"""Results: documented dataclasses and their JSON (schema_version 2) and CSV; the terminal table
is :mod:`proximity.report_table`, the HTML page :mod:`proximity.report_html`.

JSON contract (``schema_version: 2``; schema 2 only adds fields to schema 1)::

    {"schema_version": 2, "proximity_version": "0.1.0", "mode": "labels" | "label-free",
     "fit_rule": {"mode", "rule_mode"?, "name", "kind", "terms": [[signal, weight]], ...},   # the rule that ran
     "risk_model": {"name": "calibrated" | "v0", "calibrated", "coverage", ...},   # and its scope
     "sample": {"path", "n_images", "n_found", "n_skipped", "skipped": [{"path", "reason"}],
                "labels", "labels_note", "n_classes", "classes": {name: count}},
     "ranking": [{"rank", "model", "domain", "fit", "risk", "risk_interval": [low, high] | null,
                  "risk_band", "risk_reason", "fit_basis": [signal, ...],
                  "signals": {name: {"value", "sd", "higher_is_better", "reason"}},
                  "timings": {"evidence_s", "control_s", "signals_s", "scratch_s"?, "finetune_s"?},
                  "cached": bool,
                  "screened": bool, "screen": {"score", "rank", "reason"} | null}],   # after a cascade's screen
     "failed": [{"model", "stage": "fetch" | "load" | "forward" | "signal", "error"}],
     "excluded": [{"model", "reason"}],       # catalog entries set aside (filters, not loadable)
     "settings": {..., "control": bool (a control pass ran), "control_requested": bool,
                  "shortlist": int | null, "executor": "serial" | "ray",
                  "repeats": int (trainings of each kind per --scratch / --finetune result)}}

With a shortlist (``--shortlist N``, :mod:`proximity.cascade`), the candidates the screen left
out follow the evaluated ones in ``ranking``, with ``"screened": true``, their screen score, rank
and reason in ``screen``, no signals, ``fit`` and ``risk`` null and ``risk_band`` ``unknown``.

``model`` is the catalog id, or the ``--model`` string exactly as given. CSV has one row per
ranked model with ``signal.<name>`` and ``signal.<name>.sd`` columns; failed models follow with
their ``error``. :meth:`Ranking.from_dict` reads a saved result back (schema 1 or 2).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

from .errors import NothingRankedError, ResultFileError
from .types import Exclusion, Failure, SignalValue

SCHEMA_VERSION = 2


@dataclass(frozen=True)
class SampleSummary:
    path: str
    n_images: int
    n_found: int
    skipped: list[dict[str, str]]
    labels: str
    labels_note: str
    classes: dict[str, int]

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SampleSummary":
        return cls(path=str(d.get("path", "")), n_images=int(d["n_images"]),
                   n_found=int(d.get("n_found", d["n_images"])),
                   skipped=[dict(x) for x in d.get("skipped", [])], labels=str(d.get("labels", "")),
                   labels_note=str(d.get("labels_note", "")), classes=dict(d.get("classes", {})))

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "n_images": self.n_images, "n_found": self.n_found,
                "n_skipped": len(self.skipped), "skipped": self.skipped, "labels": self.labels,
                "labels_note": self.labels_note, "n_classes": self.n_classes, "classes": self.classes}


@dataclass
class Candidate:
    """One ranked backbone with its evidence."""

    rank: int
    model: str
    domain: str
    fit: float | None
    risk: float | None
    risk_band: str
    risk_reason: str
    signals: dict[str, SignalValue]
    timings: dict[str, float] = field(default_factory=dict)
    cached: bool = False
    risk_interval: tuple[float, float] | None = None     # 90 % interval of the calibrated risk
    fit_basis: list[str] = field(default_factory=list)   # the signals this candidate's fit used
    screened: bool = False                               # left out by the cascade's screen (not evaluated)
    screen: dict[str, Any] | None = None                 # its screen {score, rank, reason}
    risk_variant: str = ""                               # the risk model variant that ran (labels+scratch, …)

    def to_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "model": self.model, "domain": self.domain, "fit": self.fit,
                "risk": self.risk, "risk_interval": None if self.risk_interval is None else list(self.risk_interval),
                "risk_band": self.risk_band, "risk_reason": self.risk_reason, "fit_basis": list(self.fit_basis),
                "signals": {k: v.to_dict() for k, v in self.signals.items()},
                "timings": {k: round(v, 4) for k, v in self.timings.items()}, "cached": self.cached,
                "screened": self.screened, "screen": None if self.screen is None else dict(self.screen),
                "risk_variant": self.risk_variant}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Candidate":
        iv = d.get("risk_interval")
        return cls(rank=int(d["rank"]), model=str(d["model"]), domain=str(d.get("domain", "")), fit=d.get("fit"),
                   risk=d.get("risk"), risk_band=str(d.get("risk_band", "unknown")),
                   risk_reason=str(d.get("risk_reason", "")),
                   signals={k: SignalValue.from_dict(v) for k, v in d.get("signals", {}).items()},
                   timings=dict(d.get("timings", {})), cached=bool(d.get("cached", False)),
                   risk_interval=None if iv is None else (float(iv[0]), float(iv[1])),
                   fit_basis=list(d.get("fit_basis", [])), screened=bool(d.get("screened", False)),
                   screen=None if d.get("screen") is None else dict(d["screen"]),
                   risk_variant=str(d.get("risk_variant", "")))


@dataclass(frozen=True)
class RunPlan:
    """What a run is about to do, once its inputs are checked and its sample decoded (the CLI's
    banner is made of it, so that it never promises what cannot run)."""

    n_candidates: int            # backbones about to be tried
    n_excluded: int              # catalog entries set aside by the filters or as not loadable
    n_images: int
    n_classes: int               # 0 without labels
    labelled: bool               # labels with ≥ 2 classes: the probes (and the control probe) can run
    control: Literal["all", "subset", "off"]   # the random-weights pass: every image, a fixed subset, none
    control_images: int
    shortlist: int | None = None  # candidates fully evaluated after a screen of all (None: no screen)
    scratch: bool = False         # each architecture also trained from scratch on the sample (--scratch, labels)
    finetune: bool = False        # each candidate also fine-tuned briefly on the sample (--finetune, labels)
    repeats: int = 1              # each such training this many times, each on its own split (--repeats)


@dataclass
class Ranking:
    """The outcome of :func:`proximity.rank`: candidates best first, failures, the sample."""

    sample: SampleSummary
    ranking: list[Candidate]
    failed: list[Failure]
    mode: str
    settings: dict[str, Any] = field(default_factory=dict)
    excluded: list[Exclusion] = field(default_factory=list)   # entries set aside (each reads as {model, reason})
    fit_rule: dict[str, Any] = field(default_factory=dict)   # the rule that produced the fits
    risk_model: dict[str, Any] = field(default_factory=dict)  # the risk model that ran, and its calibration scope

    @property
    def best(self) -> Candidate:
        """The first-ranked candidate.

        Raises
        ------
        NothingRankedError : no backbone could be ranked (``failed`` says why for each).
        """
        if not self.ranking:
            raise NothingRankedError([f.to_dict() for f in self.failed], len(self.excluded))
        return self.ranking[0]

    def __getitem__(self, i: int) -> Candidate:
        return self.ranking[i]

    def __len__(self) -> int:
        return len(self.ranking)

    def to_dict(self) -> dict[str, Any]:
        from ._version import __version__

        return {"schema_version": SCHEMA_VERSION, "proximity_version": __version__, "mode": self.mode,
                "sample": self.sample.to_dict(), "ranking": [c.to_dict() for c in self.ranking],
                "failed": [f.to_dict() for f in self.failed], "excluded": [dict(x) for x in self.excluded],
                "settings": self.settings,
                "fit_rule": self.fit_rule, "risk_model": self.risk_model}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, source: str = "<dict>") -> "Ranking":
        """A result read back from its JSON (schema 1 or 2); raises ResultFileError naming ``source``."""
        if not isinstance(d, Mapping) or d.get("schema_version") not in (1, 2):
            got = d.get("schema_version") if isinstance(d, Mapping) else type(d).__name__
            raise ResultFileError(source, f"schema_version {got!r} is not 1 or 2")
        try:
            return cls(sample=SampleSummary.from_dict(d["sample"]),
                       ranking=[Candidate.from_dict(c) for c in d["ranking"]],
                       failed=[Failure(str(f["model"]), f["stage"], str(f["error"])) for f in d.get("failed", [])],
                       mode=str(d.get("mode", "")), settings=dict(d.get("settings", {})),
                       excluded=[Exclusion.from_dict(x) for x in d.get("excluded", [])],
                       fit_rule=dict(d.get("fit_rule", {})),
                       risk_model=dict(d.get("risk_model", {})))
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise ResultFileError(source, f"{exc.__class__.__name__}: {exc}") from None

    @classmethod
    def from_json(cls, path: str | Path) -> "Ranking":
        """Read a result written by ``proximity rank --format json`` (or :meth:`to_json`)."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ResultFileError(path, getattr(exc, "strerror", None) or str(exc)) from None
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ResultFileError(path, f"not JSON ({exc})") from None
        return cls.from_dict(d, source=str(path))

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def rows(self) -> list[dict[str, Any]]:
        """Flat rows (one per candidate, then one per failure) as used by CSV and ``to_frame``."""
        names = sorted({n for c in self.ranking for n in c.signals})
        rows = []
        for c in self.ranking:
            lo, hi = c.risk_interval or (None, None)
            row = {"rank": c.rank, "model": c.model, "domain": c.domain, "fit": c.fit, "risk": c.risk,
                   "risk_low": lo, "risk_high": hi, "risk_band": c.risk_band, "risk_reason": c.risk_reason, "error": ""}
            for n in names:
                s = c.signals.get(n)
                row[f"signal.{n}"] = s.value if s else None
                row[f"signal.{n}.sd"] = s.sd if s else None
            rows.append(row)
        for f in self.failed:
            rows.append({"rank": None, "model": f.model, "domain": "", "fit": None, "risk": None,
                         "risk_low": None, "risk_high": None, "risk_band": "unknown", "risk_reason": "",
                         "error": f"{f.stage}: {f.error}",
                         **{k: None for n in names for k in (f"signal.{n}", f"signal.{n}.sd")}})
        return rows

    def to_csv(self) -> str:
        rows = self.rows()
        buf = io.StringIO()
        fields = list(rows[0]) if rows else ["rank", "model", "domain", "fit", "risk", "risk_low", "risk_high",
                                             "risk_band", "risk_reason", "error"]
        writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: "" if v is None else v for k, v in r.items()})
        return buf.getvalue()

    def to_html(self) -> str:
        """The result as one self-contained HTML page with plots (:mod:`proximity.report_html`)."""
        return render_html(self)

    def to_frame(self):
        """The rows as a pandas DataFrame (needs pandas: ``pip install 'proximity[pandas]'``)."""
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover
            raise ImportError("Ranking.to_frame() needs pandas: pip install 'proximity[pandas]' "
                              "(or pip install pandas)") from None
        return pd.DataFrame(self.rows())




def render_table(r: Ranking, console=None) -> str:
    """Print the terminal table (see :func:`proximity.report_table.render_table`); the layout used."""
    from .report_table import render_table as _render

    return _render(r, console)


def render_html(r: Ranking) -> str:
    """The self-contained HTML page (see :func:`proximity.report_html.render_html`)."""
    from .report_html import render_html as _render

    return _render(r)
