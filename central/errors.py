"""Errors of the central service (see the tree in `gridwatch.errors`)."""

from __future__ import annotations

from gridwatch.errors import GridwatchError


class CentralError(GridwatchError, RuntimeError):
    """The service could not start (broker unreachable within the wait, subscription refused, bad store)."""


class StoreError(CentralError):
    """The case database cannot be used: a URL that does not parse, a file or database that does not exist,
    a database without the central tables, or a server that refuses the connection."""
