"""One script per contender; each runs in its own process (see ``_common``)."""
