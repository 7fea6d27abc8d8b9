"""What a platform's text rule is: a way to measure a text, a limit, and the problems a text has
under it (an empty list when the platform takes it as it is)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Measure:
    """A text measured by a rule: its length in the rule's unit, and every way it breaks it."""

    length: int
    limit: int
    unit: str
    problems: tuple[str, ...] = ()

    @property
    def fits(self) -> bool:
        return not self.problems


class TextRule:
    """One platform's rule. Subclasses say how a text is measured (`measure`)."""

    platform: str = ""

    def measure(self, text: str) -> Measure:
        raise NotImplementedError

    def fits(self, text: str) -> bool:
        return self.measure(text).fits

    def problems(self, text: str) -> tuple[str, ...]:
        return self.measure(text).problems


def over(length: int, limit: int, unit: str, *extra: str) -> tuple[str, ...]:
    """The problems of a text `length` long under `limit` (plus `extra` ones)."""
    problems = [f"{length} {unit} over the limit of {limit}"] if length > limit else []
    return (*problems, *extra)
