"""central: turns incident messages from the edge gateways into cases for grid cleaners.

Modules, in the order a message flows through them:

- `service`: `CentralService` subscribes (MQTT 5 shared subscription, persistent session, QoS 1, manual
  acknowledgement after the commit) and runs the worker.
- `ingest`: `ingest_incident` / `ingest_evidence`, pure functions over bytes and a SQLAlchemy session.
- `store`: the typed ORM tables (`events`, `cases`, `case_timeline`, `evidence`, `dead_letters`),
  `open_store(db_url)`, `create_schema(engine)`; SQLite by default, PostgreSQL via `postgresql+psycopg://`.
- `workflow`: case statuses as data and the one transition function.
- `categories` / `roster`: YAML data (incident type -> GB/T 47678.5-2026 category; grid cell -> cleaner).
- `dispatch`: the `CaseAssignment` message sent to `{prefix}/dispatch/{cleaner}`.
- `views`: `cases_as_rows(session) -> list[CaseRow]`, the table and JSON every case listing prints.
- `cli`: `register(subparsers)` for `gridwatch central run | cases | dead-letters | api`.
- `api`: the read-only FastAPI app and SVG dashboard (optional extra).

Nothing here imports edge internals other than the wire contract `edge.events`.
"""
