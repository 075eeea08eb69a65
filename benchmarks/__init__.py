"""Benchmarks of bulk log export: sendcloud_async against the alternatives a user has.

Run with ``nox -s bench`` or ``python -m benchmarks.run``; see ``benchmarks/README.md``.
This package imports nothing heavy: each contender imports only its own libraries.
"""
