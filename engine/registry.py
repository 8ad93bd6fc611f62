"""Find components by name through entry points (``importlib.metadata``).

Groups (declared in setup.cfg; a plugin package declares its own):

- ``tradebot.exit_strategies``: exit strategy plugins
- ``tradebot.entry_rules``: entry-signal rules and built-in strategies
- ``tradebot.feature_handlers``: indicator / volume-profile / model handlers
- ``tradebot.feeds``, ``tradebot.brokers``: adapters picked by mode in the composition root
- ``tradebot.commands``: CLI sub-commands contributed by upper layers
- ``tradebot.sinks``: event sinks the composition root attaches when configured (``zmq``: the
  ZeroMQ bridge, ``publish:``)

Entry points are read from installed metadata: after editing setup.cfg, re-run ``pip install -e .``
(``make venv`` does it when setup.cfg changes).
"""

from __future__ import annotations

from collections.abc import Mapping
from difflib import get_close_matches
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from engine.errors import PluginLoadError

EXIT_STRATEGIES = "tradebot.exit_strategies"
ENTRY_RULES = "tradebot.entry_rules"
FEATURE_HANDLERS = "tradebot.feature_handlers"
FEEDS = "tradebot.feeds"
BROKERS = "tradebot.brokers"
COMMANDS = "tradebot.commands"
SINKS = "tradebot.sinks"  # event sinks switched on by config (publish: -> zmq)

_KIND_WORDS = {
    EXIT_STRATEGIES: "exit strategy",
    ENTRY_RULES: "entry rule",
    FEATURE_HANDLERS: "feature handler",
    FEEDS: "bar feed",
    BROKERS: "broker",
    COMMANDS: "command",
    SINKS: "event sink",
}


def _is_entry_point(item: Any) -> bool:
    # ``importlib_metadata`` (the backport, imported by dask/distributed and others) adds a
    # finder whose distributions yield its own EntryPoint class through the stdlib's
    # ``entry_points()`` too: accept both
    return isinstance(item, EntryPoint) or (
        type(item).__name__ == "EntryPoint" and callable(getattr(item, "load", None))
        and isinstance(getattr(item, "value", None), str))


def _dist_name(ep: Any) -> str:
    dist = getattr(ep, "dist", None)
    return str(getattr(dist, "name", "?")) if dist is not None else "?"


def _origin(ep: Any) -> str:
    return f"{ep.value} (distribution {_dist_name(ep)})"


class Registry:
    """Named components of one entry-point group, loaded on demand.

    ``Registry.from_mapping({...})`` builds one from objects directly, so unit tests never depend
    on installed metadata (stevedore's ``make_test_instance`` idea).
    """

    def __init__(self, group: str, found: Mapping[str, EntryPoint | Any]) -> None:
        self.group = group
        self._found = dict(found)
        self._loaded: dict[str, Any] = {}
        # names that several distributions declare: {name: ["module:attr (distribution X)", ...]}
        self.conflicts: dict[str, list[str]] = {}

    @classmethod
    def installed(cls, group: str) -> Registry:
        """The entry points of ``group`` in the installed distributions.

        Two distributions declaring one name are not a silent pick: loading that name raises
        ``PluginLoadError`` naming both (``conflicts``).
        """
        found: dict[str, Any] = {}
        conflicts: dict[str, list[str]] = {}
        for ep in entry_points(group=group):
            if ep.name in found:
                first = found[ep.name]
                if (_dist_name(first), first.value) != (_dist_name(ep), ep.value):
                    conflicts.setdefault(ep.name, [_origin(first)]).append(_origin(ep))
                continue
            found[ep.name] = ep
        reg = cls(group, found)
        reg.conflicts = conflicts
        return reg

    @classmethod
    def from_mapping(cls, group: str, mapping: Mapping[str, Any]) -> Registry:
        return cls(group, mapping)

    def names(self) -> list[str]:
        return sorted(self._found)

    def origin(self, name: str) -> str:
        """``module:attr (distribution NAME)`` of an entry point, for messages."""
        item = self._found[name]
        return _origin(item) if _is_entry_point(item) else self.target(name)

    def target(self, name: str) -> str:
        """``module:attr`` of an entry point (or the object's qualified name)."""
        item = self._found[name]
        if _is_entry_point(item):
            return item.value
        return f"{getattr(item, '__module__', '?')}:{getattr(item, '__qualname__', repr(item))}"

    def load(self, name: str) -> Any:
        """Return the component called ``name``.

        Raises:
            PluginLoadError: not installed (with "did you mean" and the installed list), or its
                module failed to import (with the real cause chained).
        """
        if name in self._loaded:
            return self._loaded[name]
        word = _KIND_WORDS.get(self.group, self.group)
        if name not in self._found:
            hint = get_close_matches(name, list(self._found), n=3)
            raise PluginLoadError(
                f"{word} {name!r} is not installed; installed: {self.names()}"
                + (f"; did you mean {' or '.join(repr(h) for h in hint)}?" if hint else "")
                + " (a plugin added to setup.cfg needs `pip install -e .` again)"
            )
        if name in self.conflicts:
            raise PluginLoadError(
                f"{word} {name!r} is installed by more than one distribution: "
                + " and ".join(self.conflicts[name])
                + f"; uninstall all but one (pip uninstall DISTRIBUTION), or rename the {word} "
                "in one of them"
            )
        item = self._found[name]
        if _is_entry_point(item):
            try:
                obj = item.load()
            except Exception as exc:  # the plugin boundary: re-raise with the real cause
                raise PluginLoadError(
                    f"{word} {name!r} ({item.value}) failed to import: {type(exc).__name__}: {exc}"
                ) from exc
        else:
            obj = item
        self._loaded[name] = obj
        return obj
