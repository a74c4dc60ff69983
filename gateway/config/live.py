"""The configuration in force, and reloading it while the service runs."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from gateway.config.loader import ConfigError, Problem, load_config
from gateway.config.models import Config, KindSchema


def restart_needed(running: Config, loaded: Config) -> list[Problem]:
    """What a reload cannot change in a running service: the teams (they own queues) and
    the service settings (topology sizes, limits)."""
    problems = []
    if running.team_codes != loaded.team_codes:
        problems.append(Problem("regions.yaml", "regions", "the set of regions changed; restart to apply"))
    if running.service != loaded.service:
        problems.append(Problem("gateway.yaml", "", "service settings changed; restart to apply"))
    return problems


class LiveConfig:
    """The configuration in force; `reload()` swaps it only for a valid one, and tells
    the subscribers (router, outbound) so they rebuild what they derived from it."""

    def __init__(self, config: Config, kinds: Mapping[str, KindSchema]) -> None:
        self.current = config
        self._kinds = kinds
        self._subscribers: list[Callable[[Config], None]] = []

    def subscribe(self, callback: Callable[[Config], None]) -> None:
        self._subscribers.append(callback)

    def reload(self) -> tuple[Config | None, list[Problem]]:
        """(the new configuration, []) when applied, or (None, problems) with the running one kept."""
        try:
            loaded = load_config(self.current.directory, self._kinds)
        except ConfigError as exc:
            return None, exc.problems
        problems = restart_needed(self.current, loaded)
        if problems:
            return None, problems
        self.current = loaded
        for callback in self._subscribers:
            callback(loaded)
        return loaded, []
