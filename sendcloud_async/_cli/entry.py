"""``main()``: parse, run the command, turn every outcome into one line and an exit status
(the statuses and the rule for Ctrl-C and SIGTERM: ``exits``).

What a run needs (the context, the progress line, the command's handlers) is imported
once the arguments are parsed: ``--help`` loads only the parser and the command it shows.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, Sequence
from contextlib import suppress
from typing import TYPE_CHECKING, Final, TextIO

from .common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, LOG_FORMATS, LogFormat, UsageError
from .exits import stop_status
from .parser import build_parser, command_of

if TYPE_CHECKING:
    from .logline import Level

__all__ = ["main"]

_sdk_logger: Final = logging.getLogger("sendcloud_async")


def main(
    argv: Sequence[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the command line; returns the exit status."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    parser = build_parser(lazy=True)
    try:
        args = parser.parse_args(argv)
        if args.quiet and args.verbose:
            raise UsageError("--quiet and --verbose cannot be used together")
    except UsageError as exc:
        from .logline import usage_line

        err.write(usage_line(str(exc), _requested_format(argv)) + "\n")
        err.flush()
        return EXIT_USAGE
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    command = command_of(args)
    if command is None:
        parser.print_help(err)
        return EXIT_USAGE
    from .context import Context
    from .output import failure
    from .progress import ProgressLogHandler
    from .signals import sigterm_as_interrupt

    handlers = command.load()
    ctx = Context(
        os.environ if env is None else env,
        out,
        err,
        bool(args.quiet),
        log_format=args.log_format,
        status_interval=args.status_interval,
    )
    ctx.metrics = getattr(args, "metrics", None)  # --metrics of a long-running command
    level = logging.DEBUG if args.verbose else logging.ERROR if ctx.quiet else logging.WARNING
    handler = ProgressLogHandler(ctx.progress, level)
    _sdk_logger.addHandler(handler)
    saved = _sdk_logger.propagate, _sdk_logger.level
    _sdk_logger.propagate = False
    if args.verbose:
        _sdk_logger.setLevel(logging.DEBUG)
    with sigterm_as_interrupt() as stop:
        try:
            if handlers.check is not None:
                handlers.check(args)
            return handlers.run(args, ctx)
        except UsageError as exc:
            ctx.usage_error(str(exc))
            return EXIT_USAGE
        except KeyboardInterrupt:
            ctx.progress.finish()  # nothing is drawn after the hint
            status = stop_status(command.until_stopped, args, terminated=stop.terminated)
            # A stop is how a service ends (info); a job stopped before it finished is not.
            said: Level = "info" if status == EXIT_OK else "warning"
            ctx.progress.message(command.interrupt_hint, level=said, event="stopped")
            return status
        except BrokenPipeError:
            # The reader went away (`| head`): not an error of ours.
            with suppress(OSError, ValueError, AttributeError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
            return EXIT_OK
        except Exception as exc:  # one line, never a traceback (it could show a credential)
            ctx.error(failure(exc))
            return EXIT_FAILURE
        finally:
            _sdk_logger.removeHandler(handler)
            _sdk_logger.propagate, level = saved
            _sdk_logger.setLevel(level)


def _requested_format(argv: Sequence[str] | None) -> LogFormat:
    """The ``--log-format`` asked for, read from the raw arguments (they did not parse)."""
    words = list(sys.argv[1:] if argv is None else argv)
    chosen: LogFormat = LOG_FORMATS[0]
    for n, word in enumerate(words):
        value = None
        if word == "--log-format" and n + 1 < len(words):
            value = words[n + 1]
        elif word.startswith("--log-format="):
            value = word.partition("=")[2]
        for fmt in LOG_FORMATS:
            if value == fmt:
                chosen = fmt
    return chosen
