"""``qualitywatch replay EVENTS.jsonl [--patrols FILE] --out WARNINGS.jsonl``: detection over files.

Runs the detection engine the stream runs over JSONL files, in event-time order, and writes one
``RiskWarning`` JSON object per line. Bad lines are reported on stderr (file, line number, field,
reason) and optionally written to ``--errors``; they never stop the replay and do not change the exit
code (it is non-zero only when an input cannot be read, an output cannot be written or the catalogue is
invalid). The warnings and errors are written to temporary files beside ``--out`` and ``--errors``
and moved into place only when the replay completes: a replay that fails or is interrupted leaves the
files that were there before as they were. The progress bar (bytes read) shows on a terminal only,
and never with ``--quiet``.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import sys
import tempfile
import time
from contextlib import ExitStack, suppress
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import click

from .options import catalogue_option, catalogue_path, load_configured_catalogue

__all__ = ["command", "parse_clock"]


def parse_clock(value: str) -> datetime:
    """An ISO 8601 date or date-time; without an offset it is taken as UTC."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 date or date-time") from exc
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _same_file(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def _refuse_overwriting_an_input(outputs: dict[str, Path | None], inputs: dict[str, Path | None]) -> None:
    """An output that is an input (or the other output) would be truncated before it is read."""
    given = [(name, path) for name, path in inputs.items() if path is not None]
    for name, path in outputs.items():
        if path is None or str(path) == "-":
            continue
        for other, earlier in given:
            if _same_file(path, earlier):
                raise click.UsageError(f"{name} {path} is the {other} file: it would be overwritten")
        given.append((name, path))


def _clock(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    return None if value is None else parse_clock(value)


def _new_file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _open_replacing(stack: ExitStack, path: Path, buffering: int = -1) -> IO[str]:
    """Open a temporary file beside ``path`` that is moved over it when ``stack`` closes without error.

    On an error or an interruption the temporary file is removed and ``path`` is left as it was. The
    file keeps the permissions of the one it replaces. A path that exists and is not a regular file
    (``/dev/null``, a named pipe) is written in place. Raises ``OSError`` naming ``path``."""
    target = Path(os.path.realpath(path))  # through a symbolic link: the link stays a link
    if target.exists() and not target.is_file():
        return stack.enter_context(open(path, "w", encoding="utf-8", buffering=buffering))
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        mode = _new_file_mode()
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    try:
        os.fchmod(fd, mode)
        fh = stack.enter_context(os.fdopen(fd, "w", encoding="utf-8", buffering=buffering))
    except BaseException:
        with suppress(OSError):
            os.close(fd)
        os.unlink(tmp)
        raise

    def finish(
        exc_type: type[BaseException] | None, _exc: BaseException | None, _tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            with suppress(OSError):
                fh.close()
            with suppress(FileNotFoundError):
                os.unlink(tmp)
            return
        try:
            fh.close()
            os.replace(tmp, target)
        except OSError as exc:
            with suppress(FileNotFoundError):
                os.unlink(tmp)
            raise click.ClickException(f"cannot write {path}: {exc.strerror or exc}") from exc

    stack.push(finish)
    return fh


class _Output:
    """An output file whose write failures (a full disk, say) end the command with its name and why.

    A closed pipe (``--out - | head``) is left to click, which exits quietly."""

    def __init__(self, fh: IO[str], name: str, close: bool = True) -> None:
        self.fh = fh
        self.name = name
        self.failed = False
        self._close = close

    def _check(self, exc: OSError) -> click.ClickException:
        if exc.errno == errno.EPIPE:
            raise exc
        self.failed = True
        return click.ClickException(f"cannot write {self.name}: {exc.strerror or exc}")

    def write_line(self, text: str) -> None:
        try:
            self.fh.write(text + "\n")
        except OSError as exc:
            raise self._check(exc) from exc

    def flush(self) -> None:
        try:
            self.fh.flush()
        except OSError as exc:
            raise self._check(exc) from exc

    def close(self) -> None:
        """Close the file; a failure already reported is not reported again."""
        if not self._close:
            return
        try:
            self.fh.close()
        except OSError as exc:
            if not self.failed:
                raise self._check(exc) from exc


class _Reporter:
    """Reports bad lines: the first ``show`` on stderr, all of them to the ``--errors`` file."""

    def __init__(self, show: int, errors: _Output | None) -> None:
        self.show = show
        self.shown = 0
        self.hidden = 0
        self.errors = errors

    def __call__(self, bad: Any) -> None:
        if self.shown < self.show:
            self.shown += 1
            click.echo(f"rejected {bad.describe()}", err=True)
        else:
            self.hidden += 1
        if self.errors is not None:
            self.errors.write_line(json.dumps(bad.as_dict(), ensure_ascii=False))


@click.command("replay")
@click.argument("events", type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path))
@click.option(
    "--patrols",
    type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path),
    help="Patrol reports (JSONL), merged with EVENTS by event time.",
)
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, writable=True, allow_dash=True, path_type=Path),
    help="Where to write the warnings (one RiskWarning JSON per line; '-' for stdout). "
    "An existing file is replaced only when the replay completes.",
)
@catalogue_option
@click.option(
    "--flush/--no-flush",
    default=True,
    show_default=True,
    help="At the end of the input, close the weeks still open (a file replay usually wants this).",
)
@click.option(
    "--now",
    callback=_clock,
    metavar="ISO8601",
    help="Validation clock: records after it, or more than ten years before it, are refused. "
    "Default: the wall clock (UTC). A value without an offset is UTC.",
)
@click.option(
    "--errors",
    "errors_path",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Also write every rejected line as JSONL (source, line, field, reason, errors, text).",
)
@click.option(
    "--show-errors",
    default=100,
    show_default=True,
    type=click.IntRange(min=0),
    help="How many rejected lines to print on stderr (all go to --errors).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def command(
    events: Path,
    patrols: Path | None,
    out: Path,
    catalogue: Path | None,
    flush: bool,
    now: datetime | None,
    errors_path: Path | None,
    show_errors: int,
    quiet: bool,
) -> None:
    """Replay EVENTS.jsonl (sampling results) through the detectors and write the warnings.

    Lines are validated against the wire contract (bad ones are reported and skipped), merged with
    --patrols by event time, de-duplicated by id and fed to the detection engine the stream runs.
    With --flush (the default) the weeks still open at the end are closed, so the last week's
    warnings are written too; --no-flush stops where a live stream would wait for more data.
    """
    from tqdm import tqdm

    from .replay import ReplayError, replay

    catalogue = catalogue_path(catalogue)
    _refuse_overwriting_an_input(
        {"--out": out, "--errors": errors_path},
        {"EVENTS": events, "--patrols": patrols, "--catalogue": catalogue},
    )
    cat = load_configured_catalogue(catalogue)
    total = events.stat().st_size + (patrols.stat().st_size if patrols else 0)
    with ExitStack() as stack:
        try:
            if str(out) == "-":
                sink = _Output(sys.stdout, "standard output", close=False)
            else:
                sink = _Output(_open_replacing(stack, out, buffering=1 << 20), str(out))
                stack.callback(sink.close)  # first: the file is closed before it is moved into place
            errors = None
            if errors_path is not None:
                errors = _Output(_open_replacing(stack, errors_path), str(errors_path))
                stack.callback(errors.close)
        except OSError as exc:
            raise click.ClickException(f"cannot write {exc.filename}: {exc.strerror}") from exc
        bar = stack.enter_context(
            tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc="replay",
                file=sys.stderr,
                disable=quiet or not sys.stderr.isatty(),
                leave=False,
            )
        )
        reporter = _Reporter(show_errors, errors)
        started = time.perf_counter()
        try:
            stats = replay(
                events,
                patrols=patrols,
                write=lambda w: sink.write_line(w.model_dump_json()),
                catalogue=cat,
                now=now,
                flush=flush,
                on_bad_line=reporter,
                on_progress=bar.update,
            )
        except ReplayError as exc:
            raise click.ClickException(str(exc)) from exc
        sink.flush()
        if errors is not None:
            errors.flush()
    elapsed = time.perf_counter() - started
    if reporter.hidden:
        click.echo(
            f"... {reporter.hidden:,} more rejected lines not shown"
            + (f" (all in {errors_path})" if errors_path else " (use --errors FILE)"),
            err=True,
        )
    lines = stats.total("lines")
    for line in stats.summary_lines():
        click.echo(f"replay: {line}", err=True)
    click.echo(
        f"replay: {lines:,} lines in {elapsed:.1f} s ({lines / elapsed if elapsed else 0:,.0f} lines/s)",
        err=True,
    )
