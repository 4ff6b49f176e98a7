"""Which catalog entries a run considers: ``rank --domain/--max-params/--license/--include-gated``."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .catalog import CatalogEntry, domain_tags
from .errors import InvalidParameterError
from .types import Exclusion


@dataclass(frozen=True)
class Filters:
    """Which catalog entries a run considers (``rank --domain/--max-params/--license/--include-gated``).

    ``domains``: keep entries tagged with any of these; ``max_params``: millions (an entry without a
    parameter count is set aside, since it cannot be checked); ``licenses``: keep entries whose license
    is one of these (case-insensitive); gated entries only with ``include_gated``. Entries marked
    ``loadable = false`` are always set aside, with their reason.
    """

    domains: tuple[str, ...] = ()
    max_params: float | None = None
    licenses: tuple[str, ...] = ()
    include_gated: bool = False

    def validate(self) -> None:
        known = set(domain_tags().get("domains", {}))
        bad = [d for d in self.domains if d not in known]
        if bad:
            raise InvalidParameterError("domain", "rank", f"one of {', '.join(sorted(known))}", bad[0])
        if self.max_params is not None and not self.max_params > 0:
            raise InvalidParameterError("max_params", "rank", "a positive number of millions", self.max_params)

    def exclusion(self, e: CatalogEntry) -> Exclusion | None:
        """None when ``e`` is kept, else why it is set aside (the reasons open as
        :data:`proximity.types.EXCLUSION_KINDS` says, so that a saved result reads back its kind)."""
        if not e.loadable:
            return Exclusion(e.id, "not-loadable", f"not loadable: {e.load_reason}")
        if self.domains and not set(self.domains) & set(e.domains):
            return Exclusion(e.id, "domain",
                             f"domain {', '.join(e.domains) or 'unknown'} (asked: {', '.join(self.domains)})")
        if self.max_params is not None and not _valid_count(e.params_m):   # None, NaN or negative: never passes
            return Exclusion(e.id, "params-unknown", "parameter count unknown: cannot be checked against --max-params")
        if self.max_params is not None and e.params_m is not None and e.params_m > self.max_params:
            return Exclusion(e.id, "max-params", f"{e.params_m:g} M parameters > --max-params {self.max_params:g}")
        if self.licenses and e.license.lower() not in {x.lower() for x in self.licenses}:
            return Exclusion(e.id, "license", f"license '{e.license or 'unknown'}' (asked: {', '.join(self.licenses)})")
        if e.gated and not self.include_gated:
            return Exclusion(e.id, "gated", "gated on the Hub (--include-gated, with an HF_TOKEN that has access)")
        return None

    def why_excluded(self, e: CatalogEntry) -> str | None:
        """None when ``e`` is kept, else the reason it is set aside (:meth:`exclusion`'s)."""
        x = self.exclusion(e)
        return None if x is None else x.reason


def _valid_count(x: float | None) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x >= 0
