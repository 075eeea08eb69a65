"""``main()``: parse, run the command, turn every outcome into one line and an exit status."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, Sequence
from contextlib import suppress
from typing import Final, TextIO

from .common import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    EXIT_USAGE,
    PROG,
    UsageError,
)
from .context import Context
from .parser import build_parser, command_of
from .progress import ProgressLogHandler
from .signals import sigterm_as_interrupt

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
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.quiet and args.verbose:
            raise UsageError("--quiet and --verbose cannot be used together")
    except UsageError as exc:
        err.write(f"{PROG}: error: {exc}\n")
        err.flush()
        return EXIT_USAGE
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    command = command_of(args)
    if command is None:
        parser.print_help(err)
        return EXIT_USAGE
    ctx = Context(os.environ if env is None else env, out, err, bool(args.quiet))
    level = logging.DEBUG if args.verbose else logging.ERROR if ctx.quiet else logging.WARNING
    handler = ProgressLogHandler(ctx.progress, level)
    _sdk_logger.addHandler(handler)
    saved = _sdk_logger.propagate, _sdk_logger.level
    _sdk_logger.propagate = False
    if args.verbose:
        _sdk_logger.setLevel(logging.DEBUG)
    with sigterm_as_interrupt() as stop:
        try:
            if command.check is not None:
                command.check(args)
            return command.run(args, ctx)
        except UsageError as exc:
            ctx.error(str(exc))
            return EXIT_USAGE
        except KeyboardInterrupt:
            ctx.progress.close()
            ctx.progress.message(command.interrupt_hint)
            return EXIT_TERMINATED if stop.terminated else EXIT_INTERRUPTED
        except BrokenPipeError:
            # The reader went away (`| head`): not an error of ours.
            with suppress(OSError, ValueError, AttributeError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
            return EXIT_OK
        except Exception as exc:  # one line, never a traceback (it could show a credential)
            ctx.error(f"unexpected {type(exc).__name__}: {exc}")
            return EXIT_FAILURE
        finally:
            _sdk_logger.removeHandler(handler)
            _sdk_logger.propagate, level = saved
            _sdk_logger.setLevel(level)
