"""``integrations list`` and ``integrations get ID``."""

from __future__ import annotations

import argparse

from .._errors import InvalidInputError, SendcloudError
from .clients import single_client
from .command import Handlers
from .common import EXIT_FAILURE, EXIT_OK, UsageError
from .context import Context
from .credentials import Credentials, command_credentials
from .options import positive
from .output import integration_detail, integrations_table, to_json
from .signals import run as run_stoppable

__all__ = ["INTEGRATIONS_GET", "INTEGRATIONS_LIST"]


def _configure_list(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="JSON instead of a table")


def _configure_get(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "id", type=positive, metavar="ID", help="the integration's id (see integrations list)"
    )
    parser.add_argument("--json", action="store_true", help="JSON instead of a table")


def _run(args: argparse.Namespace, ctx: Context) -> int:
    credentials, base_url = command_credentials(ctx.env, fake=args.fake)
    return run_stoppable(_integrations(args, ctx, credentials, base_url))


async def _integrations(
    args: argparse.Namespace, ctx: Context, credentials: Credentials | None, base_url: str
) -> int:
    async with single_client(args, credentials, base_url) as client:
        try:
            if args.integrations_command == "list":
                items = await client.integrations.list()
                text = to_json(items) if args.json else integrations_table(items)
            else:
                item = await client.integrations.get(args.id)
                text = to_json(item) if args.json else integration_detail(item)
        except InvalidInputError as exc:
            raise UsageError(str(exc)) from None
        except SendcloudError as exc:
            ctx.error(str(exc))
            return EXIT_FAILURE
    ctx.stdout.write(text + "\n")
    ctx.stdout.flush()
    return EXIT_OK


INTEGRATIONS_LIST = Handlers(
    configure=_configure_list,
    run=_run,
)
INTEGRATIONS_GET = Handlers(
    configure=_configure_get,
    run=_run,
)
