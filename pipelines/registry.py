"""The incident registry: every incident type is one module in `gridwatch.pipelines.incidents`.

A type module exposes `INCIDENT = IncidentType(...)`, which owns everything about the type:

- `name`: the key users write under `cameras[].incidents` and the event's `type` on the wire;
- `config`: its pydantic config model (a `RuleConfig` subclass; the one place its defaults live);
- `factory`: config + the zones it names + an id prefix + a token factory for new incident ids (None = the
  rule's deterministic counter; the edge passes a random one) -> a `Rule`;
- `categories`: its default case category code(s) (GB/T 47678.5-2026), the first being the default;
- `description`: one line for docs and error messages.

The config tree (`gridwatch.edge.config.IncidentsConfig`), the rules a camera runs (`edge.camera.build_rules`),
the event's `type` enum (`gridwatch.wire.events`) and the demo all derive from `default_registry()`. The case
category *table* stays data on the central side (`central/data/categories.yaml`); a test checks that it has a
row for every registered type whose code matches the type's default.

Discovery is explicit and simple: `default_registry()` imports every module of the `incidents` package (pkgutil)
and registers its `INCIDENT`, in name order. It runs once, when `gridwatch.wire.events` or
`gridwatch.edge.config` is first imported; register types before that. Type modules stay light (pydantic only
at import) so the wire contract and the central service never load numpy or OpenCV: a factory imports the rule
machinery (`dwell`, `littering`, ...) when it is called.

How to add an incident type (one new module plus its tests, nothing else edited): create
`pipelines/incidents/<name>.py` with a config model, a factory and `INCIDENT = IncidentType(...)` as below; add
its row to `central/data/categories.yaml` (data: a deployment may ship its own table); give it a synthetic scene
in `tests/pipelines/test_registry.py`; regenerate `wire/incident_event.schema.json` (`gridwatch schema event`).
Discovery calls `Registry.register`; by hand it works the same way (this example runs as a doctest):

>>> from pydantic import Field
>>> from gridwatch.pipelines.rule_config import DwellRuleConfig
>>> class OutsideShopConfig(DwellRuleConfig):
...     dwell_s: float = Field(300.0, gt=0, le=86400, description="Seconds goods may stand outside.")
...     classes: list[str] = Field(default_factory=lambda: ["goods"], min_length=1, description="Classes.")
>>> def build(cfg, zones, id_prefix, new_token):
...     from gridwatch.pipelines.dwell import DwellParams, StationaryDwellRule
...     return StationaryDwellRule(DwellParams.from_config(cfg, zones), id_prefix, "outside_shop", new_token)
>>> registry = Registry()
>>> registry.register(IncidentType("outside_shop", OutsideShopConfig, build, ("09005",), "Goods outside a shop."))
IncidentType('outside_shop')
>>> registry.get("outside_shop").build(OutsideShopConfig(dwell_s=60), zones=(), id_prefix="cam1").incident_type
'outside_shop'
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import ValidationError

from gridwatch.errors import GridwatchError
from gridwatch.pipelines.rule_config import RuleConfig

if TYPE_CHECKING:
    from gridwatch.pipelines.base import Rule
    from gridwatch.pipelines.lifecycle import TokenFactory
    from gridwatch.pipelines.zones import Zone

C = TypeVar("C", bound=RuleConfig)
NAME = re.compile(r"^[a-z][a-z0-9_]{1,47}$")
CATEGORY_CODE = re.compile(r"^[0-9]{5}$")
INCIDENTS_PACKAGE = "gridwatch.pipelines.incidents"


class RegistryError(GridwatchError, ValueError):
    """An incident type cannot be registered (bad name, duplicate, config without defaults...)."""


class UnknownIncidentType(GridwatchError, LookupError):
    """A name that no registered incident type has; the message lists the known ones."""


@dataclass(frozen=True)
class IncidentType(Generic[C]):
    """Everything about one incident type. See the module docstring."""

    name: str
    config: type[C]
    factory: Callable[[C, tuple[Zone, ...], str, TokenFactory | None], Rule]
    categories: tuple[str, ...]
    description: str

    def __post_init__(self) -> None:
        _check(self)

    def __repr__(self) -> str:
        return f"IncidentType({self.name!r})"

    @property
    def default_category(self) -> str:
        """The category code a case of this type gets unless the central table says otherwise."""
        return self.categories[0]

    def build(
        self, cfg: RuleConfig, zones: tuple[Zone, ...], id_prefix: str, new_token: TokenFactory | None = None
    ) -> Rule:
        """The rule for `cfg`, watching the zones `cfg.zones` names (all of `zones` are the camera's).

        Its incident ids are `{id_prefix}-{type}-{token}`, the token from `new_token` (None = a counter).
        """
        if not isinstance(cfg, self.config):
            raise TypeError(f"{self.name} needs a {self.config.__name__}, got {type(cfg).__name__}")
        picked = tuple(z for z in zones if z.name in cfg.zones)
        return self.factory(cfg, picked, id_prefix, new_token)


def _check(t: IncidentType[Any]) -> None:
    where = f"incident type {t.name!r}"
    if not NAME.match(t.name):
        raise RegistryError(f"{where}: the name must be lower_snake_case ({NAME.pattern}); it is a YAML key and "
                            "the event's type on the wire")
    if not (isinstance(t.config, type) and issubclass(t.config, RuleConfig)):
        raise RegistryError(f"{where}: config must be a subclass of gridwatch.pipelines.rule_config.RuleConfig")
    try:
        t.config.model_validate({})
    except ValidationError as exc:
        missing = ", ".join(str(e["loc"][0]) for e in exc.errors())
        raise RegistryError(f"{where}: {t.config.__name__} must validate with no arguments; give these fields a "
                            f"default: {missing}") from None
    if not t.categories or not all(CATEGORY_CODE.match(c) for c in t.categories):
        raise RegistryError(f"{where}: categories must be one or more five-digit codes, got {t.categories!r}")
    if not t.description.strip() or "\n" in t.description:
        raise RegistryError(f"{where}: give a one-line description")


class Registry:
    """Incident types by name, in registration order. `register` is what discovery calls for each module."""

    def __init__(self, types: Iterable[IncidentType[Any]] = ()) -> None:
        self._types: dict[str, IncidentType[Any]] = {}
        for t in types:
            self.register(t)

    def register(self, incident: IncidentType[Any]) -> IncidentType[Any]:
        if not isinstance(incident, IncidentType):
            raise RegistryError(f"expected an IncidentType, got {type(incident).__name__}")
        if incident.name in self._types:
            raise RegistryError(f"incident type {incident.name!r} is registered twice")
        self._types[incident.name] = incident
        return incident

    def get(self, name: str) -> IncidentType[Any]:
        try:
            return self._types[name]
        except KeyError:
            raise UnknownIncidentType(unknown_message(name, self.names())) from None

    def names(self) -> tuple[str, ...]:
        return tuple(self._types)

    def __iter__(self) -> Iterator[IncidentType[Any]]:
        return iter(tuple(self._types.values()))

    def __len__(self) -> int:
        return len(self._types)

    def __contains__(self, name: object) -> bool:
        return name in self._types


def unknown_message(name: str, known: Iterable[str]) -> str:
    """`unknown incident type 'x'` plus a close match, if any, and the known names."""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown incident type {name!r}; {hint}known types: {', '.join(known)}"


def incident_modules(package: ModuleType) -> list[ModuleType]:
    """Every module of `package` (not sub-packages, not `_private` ones), imported, in name order."""
    found = sorted(
        (info.name for info in pkgutil.iter_modules(package.__path__) if not info.ispkg),
    )
    return [importlib.import_module(f"{package.__name__}.{name}") for name in found if not name.startswith("_")]


def discover(package: ModuleType, registry: Registry | None = None) -> Registry:
    """Register the `INCIDENT` of every module in `package`; a module's name must be its type's name."""
    registry = registry if registry is not None else Registry()
    for module in incident_modules(package):
        incident = getattr(module, "INCIDENT", None)
        short = module.__name__.rsplit(".", 1)[-1]
        if not isinstance(incident, IncidentType):
            raise RegistryError(f"{module.__name__} defines no INCIDENT = IncidentType(...); every module in "
                                f"{package.__name__} is an incident type (prefix helpers with '_')")
        if incident.name != short:
            raise RegistryError(f"{module.__name__} registers {incident.name!r}; name the module after its type "
                                f"({incident.name}.py) so each type has one obvious home")
        registry.register(incident)
    return registry


@cache
def default_registry() -> Registry:
    """The incident types shipped in `gridwatch.pipelines.incidents` (discovered once)."""
    package = importlib.import_module(INCIDENTS_PACKAGE)
    registry = discover(package)
    if not registry.names():
        raise RegistryError(f"no incident types found in {INCIDENTS_PACKAGE} ({package.__path__}); broken install?")
    return registry
