"""One module per incident type, each exposing `INCIDENT = IncidentType(...)` (see `gridwatch.pipelines.registry`).

Every module here is discovered and registered, in name order; a module's name is its type's name. Keep the
modules light at import (pydantic only): factories import the rule machinery when they are called.
"""
