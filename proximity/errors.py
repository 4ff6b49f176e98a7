"""Exceptions raised by proximity.

Every exception is a :class:`ProximityError` *and* a built-in exception, so callers can catch
either, and carries attributes so that nobody has to parse a message. Each message names the
fix. The CLI shows them as one line (``PROXIMITY_DEBUG=1`` for the traceback).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Mapping, Sequence


class ProximityError(Exception):
    """Base class of every error proximity raises on purpose."""

    #: The stage of a backbone's scoring this error always belongs to (``fetch``, ``load``,
    #: ``forward``), whatever the run was doing when it was raised; None: the run's phase decides
    #: (:meth:`proximity.types.Failure.from_exception`).
    stage: ClassVar[str | None] = None


def one_line(exc: BaseException) -> str:
    """An exception as one line: a ProximityError's own first line (it names the fix), any other's
    class name and first line, at most 500 characters."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else exc.__class__.__name__
    return first if isinstance(exc, ProximityError) else f"{exc.__class__.__name__}: {first}"[:500]


class InvalidParameterError(ProximityError, ValueError):
    """A parameter has a value outside its documented domain.

    Message format (scikit-learn's): ``The 'k' parameter of knn must be an int in the range
    [1, inf). Got 0 instead.``
    """

    def __init__(self, param: str, func: str, expected: str, got: object) -> None:
        self.param, self.func, self.expected, self.got = param, func, expected, got
        super().__init__(
            f"The '{param}' parameter of {func} must be {expected}. Got {got!r} instead."
        )


class EmptySampleError(ProximityError, ValueError):
    """No usable image was found where the user pointed."""

    def __init__(self, path: Path | str, n_skipped: int = 0, detail: str = "") -> None:
        self.path, self.n_skipped = Path(path), n_skipped
        what = f"No readable images found under '{path}'"
        if n_skipped:
            what += f" ({n_skipped} file(s) could not be decoded)"
        hint = detail or (
            "Point proximity at a folder that contains .jpg/.png/.tif/.bmp/.webp files "
            "(sub-folders are searched)."
        )
        super().__init__(f"{what}. {hint}")


class LabelsError(ProximityError, ValueError):
    """Labels could not be read as asked (bad manifest, mixed layout with labels='folders')."""

    def __init__(self, message: str, *, source: str | None = None) -> None:
        self.source = source
        super().__init__(message)


class CatalogError(ProximityError, ValueError):
    """A catalog entry or catalog folder is invalid; ``path`` and ``field`` say where."""

    def __init__(self, message: str, *, path: Path | str | None = None, field: str | None = None):
        self.path = Path(path) if path is not None else None
        self.field = field
        where = f"{path}: " if path is not None else ""
        where += f"field '{field}': " if field else ""
        super().__init__(f"{where}{message}")


class CatalogNotFoundError(ProximityError, FileNotFoundError):
    """A named catalog or catalog path does not exist."""

    def __init__(self, name: str, known: Sequence[str], message: str | None = None) -> None:
        self.name, self.known = name, tuple(known)
        super().__init__(message or (
            f"Unknown catalog '{name}': it is neither a named catalog ({', '.join(known)}) "
            "nor a folder of TOML entries. Pass --catalog default, or a path to a folder."
        ))


class EntryNotFoundError(ProximityError, KeyError):
    """A catalog id that the catalog does not hold."""

    def __init__(self, entry_id: str, known: Sequence[str], *, catalog: str | None = None,
                 elsewhere: Sequence[str] = ()) -> None:
        self.entry_id, self.known, self.catalog, self.elsewhere = entry_id, tuple(known), catalog, tuple(elsewhere)
        where = f" in catalog '{catalog}'" if catalog else ""
        if elsewhere:
            cats = " and ".join(f"'{c}'" for c in elsewhere)
            super().__init__(f"No entry '{entry_id}'{where}; catalog {cats} has it: add --catalog {elsewhere[0]}.")
            return
        close = [k for k in known if entry_id.lower() in k.lower()][:5]
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        listing = ("`proximity catalog list`" if not catalog or catalog == "default"
                   else f"`proximity catalog list --catalog {catalog}`")
        super().__init__(
            f"No catalog entry '{entry_id}'{where}.{hint} {listing} shows all entries."
        )

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class UnknownSourceError(ProximityError, ValueError):
    """A model string whose source prefix is not one proximity knows; ``known`` are the prefixes
    it does know (:data:`proximity.catalog.LOADABLE_SOURCES`)."""

    def __init__(self, model: str, known: Sequence[str]) -> None:
        self.model, self.known = model, tuple(known)
        hint = ""
        if ":" not in model and "/" in model:
            hint = f" It looks like a Hub repo id: use 'hf-hub:{model}'."
        elif ":" not in model and Path(model).exists():
            hint = f" It looks like a local folder: use 'local-dir:{model}'."
        elif ":" not in model:
            hint = f" For a timm model use 'timm:{model}'."
        super().__init__(
            f"Unknown model source in '{model}': expected one of {', '.join(k + ':' for k in self.known)}.{hint}"
        )


class ModelNotFoundError(ProximityError, FileNotFoundError):
    """The model (local folder, Hub repo or timm name) does not exist."""

    stage = "fetch"

    def __init__(self, model: str, detail: str) -> None:
        self.model = model
        super().__init__(f"Model '{model}' not found: {detail}")


class GatedModelError(ProximityError, PermissionError):
    """A gated Hub repo the current credentials cannot read."""

    stage = "fetch"

    def __init__(self, model: str) -> None:
        self.model = model
        super().__init__(
            f"Model '{model}' is gated on the Hugging Face Hub: accept its terms on the Hub, then "
            "set HF_TOKEN (or run `hf auth login`)."
        )


class HubUnavailableError(ProximityError, ConnectionError):
    """The Hugging Face Hub could not be reached and nothing usable is cached."""

    stage = "fetch"

    def __init__(self, model: str, detail: str, advice: str = "") -> None:
        self.model = model
        if advice:                                  # an action, not a model (e.g. catalog refresh)
            super().__init__(f"The Hugging Face Hub could not be reached for {model} ({detail}). {advice}.")
        else:
            super().__init__(f"Could not fetch '{model}' from the Hugging Face Hub ({detail}). Check the network, "
                             "or run air-gapped with local backbones (`--model local-dir:PATH`).")


class UnsupportedModelError(ProximityError, ValueError):
    """A model that exists but that no supported path can load (format, remote code, ...)."""

    stage = "load"

    def __init__(self, model: str, reason: str) -> None:
        self.model, self.reason = model, reason
        super().__init__(f"Cannot load '{model}': {reason}")


class ForwardError(ProximityError, RuntimeError):
    """The forward pass of a built backbone failed; ``cause`` is the error it raised (also the
    ``__cause__``), and the message is that error in one line (:func:`one_line`)."""

    stage = "forward"

    def __init__(self, model: str, cause: BaseException) -> None:
        self.model, self.cause = model, cause
        super().__init__(one_line(cause))


class ChannelMismatchError(ProximityError, ValueError):
    """Images whose channels no documented rule adapts to the backbone's input."""

    def __init__(self, expected: int, got: int) -> None:
        self.expected, self.got = expected, got
        super().__init__(
            f"the backbone expects {expected}-channel input but the images have {got} channels; "
            "proximity adapts only grey↔RGB and drops alpha. Choose a backbone with matching channels."
        )


class SignalUnavailable(ProximityError, LookupError):
    """Raised inside a signal when its inputs do not allow an honest value; ``reason`` says why.

    Never escapes :func:`proximity.rank`: the signal is reported absent with this reason.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class NumericalError(ProximityError, FloatingPointError):
    """A computation produced a value that cannot be trusted (NaN, negative variance, ...)."""

    def __init__(self, what: str, value: object) -> None:
        self.what, self.value = what, value
        super().__init__(f"{what} (got {value!r}). Please report this with PROXIMITY_DEBUG=1 output.")


class NoCandidatesError(ProximityError, ValueError):
    """The catalog filters of a run left no backbone to rank."""

    def __init__(self, excluded: Sequence[Mapping[str, str]]) -> None:
        self.excluded = list(excluded)
        eg = f" (e.g. '{excluded[0]['model']}': {excluded[0]['reason']})" if excluded else ""
        super().__init__(f"No catalog entry is left to rank: {len(excluded)} set aside{eg}. Loosen --domain, "
                         "--max-params or --license, or add --include-gated; `proximity catalog list` shows the "
                         "entries.")


class NotWritableError(ProximityError, OSError):
    """A file or folder proximity has to write cannot be written (a missing folder, a folder where a
    file should be, a read-only or full file system); ``path`` and ``problem`` say which and why."""

    def __init__(self, path: Path | str, problem: str, fix: str) -> None:
        self.path, self.problem = Path(path), problem
        super().__init__(f"cannot write '{path}': {problem}. {fix}.")

    def __str__(self) -> str:  # OSError would format (errno, strerror)
        return str(self.args[0])


class NothingRankedError(ProximityError, LookupError):
    """``Ranking.best`` of a run in which no backbone could be ranked; ``failed`` holds why."""

    def __init__(self, failed: list[dict[str, str]], n_excluded: int = 0) -> None:
        self.failed, self.n_excluded = failed, n_excluded
        if failed:
            f = failed[0]
            why = f"{len(failed)} failed (e.g. '{f['model']}' at {f['stage']}: {f['error']})"
        else:
            why = f"no candidate was tried ({n_excluded} catalog entries set aside)"
        super().__init__(f"No backbone could be ranked: {why}. `result.failed` lists each with its stage and error; "
                         "without the Hub, rank the offline zoo (catalog='zoo') or local backbones "
                         "(models=['local-dir:PATH']).")


class ResultFileError(ProximityError, ValueError):
    """A saved result (``proximity report FILE``) that cannot be read as one; ``path`` says which."""

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path, self.problem = Path(path), problem
        super().__init__(f"'{path}' is not a readable proximity result ({problem}). Give a file written by "
                         "`proximity rank --format json --output FILE`.")
