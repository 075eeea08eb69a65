"""``python -m sendcloud_async``: the same as the ``sendcloud-async`` command."""

from ._cli import main

raise SystemExit(main())
