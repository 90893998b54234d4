"""central: turns incident messages from the edge gateways into cases for grid cleaners.

Modules, in the order a message flows through them:

- `service`: `CentralService`, the composition root: it wires the session, the handler and the dispatch
  publisher, and owns start/stop, the counters and `wait_for`.
- `transport`: the MQTT session behind `Session` (connect / subscribe / ack / publish / stop): `MqttSession`
  (plain persistent subscription by default, `$share` group opt-in, QoS 1, manual acknowledgement) and `FakeSession`.
- `handler`: `MessageHandler.handle(Inbound)`: validate, commit with retry, dead-letter, count. No MQTT.
- `ingest`: `ingest_incident` / `ingest_evidence`, pure functions over bytes and a SQLAlchemy session.
- `store`: the typed ORM tables (`events`, `cases`, `case_timeline`, `evidence`, `dead_letters`,
  `dispatch_outbox`), `open_store(db_url)`, `resolve_db_url(path_or_url)`; SQLite by default, PostgreSQL via
  `postgresql+psycopg://`.
- `workflow`: case statuses as data and the one transition function.
- `categories` / `roster`: YAML data (incident type -> GB/T 47678.5-2026 category; grid cell -> cleaner).
- `dispatch`: the `CaseAssignment` sent to `{prefix}/dispatch/{cleaner}`, through the `dispatch_outbox` table
  (written with the case, deleted on PUBACK by the wire `Publisher`).
- `views`: `cases_as_rows(session) -> list[CaseRow]`, the table and JSON every case listing prints.
- `cli`: `register(subparsers)` for `gridwatch central run | cases | dead-letters | api`.
- `api`: the read-only FastAPI app and SVG dashboard (optional extra).
- `errors`: `CentralError`, `StoreError`.

Nothing here imports the edge: the contract, the outbox and the publisher live in `gridwatch.wire`.
"""
