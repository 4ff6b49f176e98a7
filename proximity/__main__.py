"""The ``proximity`` command's entry point (also ``python -m proximity``).

Only the standard library is imported here, so that Ctrl-C at any moment — during the first
seconds, while typer, rich and torch are imported, or during the work — ends the run with exit
status 130 and one line instead of a traceback (``PROXIMITY_DEBUG=1`` shows it). Files are
written atomically everywhere, so an interrupted run leaves the previous results in place.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False       # not typing's: see proximity/__init__.py
if TYPE_CHECKING:  # pragma: no cover
    from typing import NoReturn

INTERRUPTED = 130           # 128 + SIGINT, what shells report for a Ctrl-C


def _interrupted() -> NoReturn:
    import signal

    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)    # a second Ctrl-C while leaving changes nothing
    except (ValueError, OSError):                       # not the main thread
        pass
    try:
        sys.stderr.write("interrupted (Ctrl-C)\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    sys.exit(INTERRUPTED)


def _caused_by_interrupt(exc: BaseException | None) -> bool:
    """Did a KeyboardInterrupt start this chain (typer turns one into ``Exit(130)``)?"""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def main() -> None:
    """Run the command line; Ctrl-C anywhere exits 130 with one line."""
    try:
        if sys.argv[1:] == ["--version"]:   # answered without importing the CLI (typer, rich, pydantic: ~0.3 s)
            from ._version import __version__

            print(f"proximity {__version__}")
            return
        from .cli import app

        app(prog_name="proximity")
    except KeyboardInterrupt:
        if os.environ.get("PROXIMITY_DEBUG"):
            raise
        _interrupted()
    except SystemExit as exc:
        if exc.code == INTERRUPTED and _caused_by_interrupt(exc.__context__) and not os.environ.get("PROXIMITY_DEBUG"):
            _interrupted()
        raise


if __name__ == "__main__":
    main()
