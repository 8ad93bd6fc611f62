"""Find components by name through entry points (``importlib.metadata``).

Groups (declared in setup.cfg; a plugin package declares its own):

- ``tradebot.exit_strategies``: exit strategy plugins
- ``tradebot.entry_rules``: entry-signal rules and built-in strategies
- ``tradebot.feature_handlers``: indicator / volume-profile / model handlers
- ``tradebot.feeds``, ``tradebot.brokers``: adapters picked by mode in the composition root
- ``tradebot.commands``: CLI sub-commands contributed by upper layers

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

_KIND_WORDS = {
    EXIT_STRATEGIES: "exit strategy",
    ENTRY_RULES: "entry rule",
    FEATURE_HANDLERS: "feature handler",
    FEEDS: "bar feed",
    BROKERS: "broker",
    COMMANDS: "command",
}


class Registry:
    """Named components of one entry-point group, loaded on demand.

    ``Registry.from_mapping({...})`` builds one from objects directly, so unit tests never depend
    on installed metadata (stevedore's ``make_test_instance`` idea).
    """

    def __init__(self, group: str, found: Mapping[str, EntryPoint | Any]) -> None:
        self.group = group
        self._found = dict(found)
        self._loaded: dict[str, Any] = {}

    @classmethod
    def installed(cls, group: str) -> Registry:
        return cls(group, {ep.name: ep for ep in entry_points(group=group)})

    @classmethod
    def from_mapping(cls, group: str, mapping: Mapping[str, Any]) -> Registry:
        return cls(group, mapping)

    def names(self) -> list[str]:
        return sorted(self._found)

    def target(self, name: str) -> str:
        """``module:attr`` of an entry point (or the object's qualified name)."""
        item = self._found[name]
        if isinstance(item, EntryPoint):
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
        item = self._found[name]
        if isinstance(item, EntryPoint):
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
