"""Secrets in the site config by reference: `${NAME}` in a camera URL or `mqtt.password`, never the value.

    cameras:
      - id: kerb-1
        source: {type: rtsp, url: "rtsp://viewer:${KERB1_PASSWORD}@10.0.4.21/stream1"}

A `${NAME}` is looked up in the environment first, then in the credentials file named by
`GRIDWATCH_CREDENTIALS_FILE` (`NAME=value` lines, `#` comments; the systemd unit's `EnvironmentFile` format). The
file must not be readable by group or others (`chmod 600`), like an SSH key: a readable one is refused.

The config keeps the reference; the value is substituted only where it is used (`expand`, when the stream is
opened), so a config dump, an error message or a log line never holds it. `check_references` runs at start-up
so a missing variable stops the gateway with the field's path and the fix instead of a camera that never connects.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path

from gridwatch.errors import GridwatchError

REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
CREDENTIALS_ENV = "GRIDWATCH_CREDENTIALS_FILE"


class SecretError(GridwatchError, ValueError):
    """A `${NAME}` that cannot be resolved, or a credentials file that cannot be trusted."""


def references(text: str) -> list[str]:
    """The variable names `text` refers to, in order."""
    return REFERENCE.findall(text)


def read_credentials(path: Path) -> dict[str, str]:
    """`NAME=value` lines of a credentials file that only its owner may read."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise SecretError(f"{CREDENTIALS_ENV}={path}: cannot read it ({exc.strerror})") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretError(f"{CREDENTIALS_ENV}={path} is readable by group or others (mode {stat.S_IMODE(mode):o}); "
                          f"run: chmod 600 {path}")
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, eq, value = line.partition("=")
        if not eq or not REFERENCE.fullmatch(f"${{{name.strip()}}}"):
            raise SecretError(f"{path}:{number}: expected NAME=value")  # never echo the line: it may be a secret
        values[name.strip()] = value.strip().strip('"').strip("'")
    return values


def lookup(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The values `${NAME}` may take: the credentials file's, overridden by the environment's."""
    env = os.environ if env is None else env
    path = env.get(CREDENTIALS_ENV)
    values = read_credentials(Path(path)) if path else {}
    return {**values, **env}


def expand(text: str, where: str, values: Mapping[str, str] | None = None) -> str:
    """`text` with every `${NAME}` replaced; a `SecretError` naming `where` and the variable if one is unset."""
    if "${" not in text:
        return text
    values = lookup() if values is None else values

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise SecretError(f"{where}: ${{{name}}} is not set; export {name}=... in the gateway's environment "
                              f"(systemd EnvironmentFile) or add it to the file named by {CREDENTIALS_ENV}")
        return values[name]

    return REFERENCE.sub(value, text)


def check_references(fields: Mapping[str, str], values: Mapping[str, str] | None = None) -> None:
    """Start-up check: every `${NAME}` in these config fields (path -> text) resolves; the values are dropped."""
    values = lookup() if values is None else values
    for where, text in fields.items():
        expand(text, where, values)
