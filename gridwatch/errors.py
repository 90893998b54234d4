"""The one exception root of gridwatch: every error a user can act on is a `GridwatchError`.

The CLI catches `GridwatchError` and prints its message as one line (exit 2); anything else is a bug and keeps
its traceback. Each part of the package derives its own errors from the root here, so this module imports
nothing of gridwatch and sits below every layer. Errors caused by bad input also derive from `ValueError`,
so generic validation code keeps working.

Tree::

    GridwatchError
    ├── ConfigError                 gridwatch.edge.config: the site config is invalid (names the field path + fix)
    ├── SourceError                 gridwatch.edge.sources: a video source cannot be opened or failed
    ├── BrokerURLError              gridwatch.wire.mqtt: an MQTT broker URL cannot be used
    ├── ModelError                  gridwatch.models.base: a model cannot be loaded / verified / configured
    │   ├── ModelLoadError
    │   │   └── ModelIntegrityError
    │   └── ModelConfigError
    ├── CalibrationError            gridwatch.calibration.errors (its own tree)
    ├── CentralError                gridwatch.central: the central service cannot start (store, broker, roster)
    │   └── StoreError              a case database that cannot be opened (bad URL, missing file)
    ├── EvidenceError               gridwatch.central.ingest: an evidence message that cannot be used
    ├── ScenarioError               gridwatch.synth.scenario: a bad scenario YAML
    └── BrokerError                 gridwatch.app.broker: the embedded Mosquitto cannot start
"""

from __future__ import annotations


class GridwatchError(Exception):
    """Base class of every error gridwatch raises on purpose; its message is meant for the user."""
