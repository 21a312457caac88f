"""The phases of a ticket and the moves allowed between them: a declared table, checked when it loads.

A ticket starts `received` and ends `closed`; the table says which phase may follow which.
A table with a move to an unknown phase, a phase no ticket can reach, a phase a ticket
cannot leave before `closed`, or a `closed` that leads anywhere is refused when it loads.
"""

from __future__ import annotations

from dataclasses import dataclass


class PhaseError(Exception):
    """The table of phases is inconsistent."""


@dataclass(frozen=True)
class Phase:
    """A phase: its name, whether a ticket in it is still open, and the phases it may move to."""

    name: str
    open: bool
    moves: tuple[str, ...]


class PhaseTable:
    """The phases in their usual order, where every ticket starts (`start`) and where it ends (`final`)."""

    def __init__(self, phases: list[Phase], *, start: str, final: str):
        self.declared = [phase.name for phase in phases]
        self.phases = {phase.name: phase for phase in phases}
        self.names = tuple(self.phases)
        self.open = tuple(phase.name for phase in phases if phase.open)
        self.start, self.final = start, final
        problems = self.problems()
        if problems:
            raise PhaseError("; ".join(problems))

    def can_move(self, current: str, target: str) -> bool:
        """True when a ticket in phase `current` may move to phase `target`."""
        return target in self.allowed_moves(current)

    def allowed_moves(self, current: str) -> tuple[str, ...]:
        """The phases a ticket in phase `current` may move to; none for an unknown phase."""
        phase = self.phases.get(current)
        return phase.moves if phase is not None else ()

    def problems(self) -> list[str]:
        """What is wrong with the table: unknown names, unreachable phases, dead ends, a final phase that moves."""
        found = [f"{name} is declared twice" for name in self.names if self.declared.count(name) > 1]
        found.extend(f"{name} is not a declared phase" for name in (self.start, self.final) if name not in self.phases)
        for phase in self.phases.values():
            found.extend(f"{phase.name} moves to unknown phase {t!r}" for t in phase.moves if t not in self.phases)
            if phase.name in phase.moves:
                found.append(f"{phase.name} moves to itself")
            if phase.name == self.final:
                found.extend(f"{phase.name} is final but moves to {t!r}" for t in phase.moves)
                if phase.open:
                    found.append(f"{phase.name} is final but open")
            elif not phase.moves:
                found.append(f"{phase.name} leads nowhere: only {self.final} may be final")
        reachable = {self.start}
        frontier = [self.start]
        while frontier:
            for target in self.allowed_moves(frontier.pop()):
                if target in self.phases and target not in reachable:
                    reachable.add(target)
                    frontier.append(target)
        found.extend(f"{name} is unreachable from {self.start}" for name in self.names if name not in reachable)
        return found


PHASES = PhaseTable(
    [
        Phase("received", open=True, moves=("triage", "closed")),  # closed: a duplicate, or nothing to do
        Phase("triage", open=True, moves=("diagnostics", "intervention", "resolved", "closed")),
        Phase("diagnostics", open=True, moves=("intervention", "resolved")),
        Phase("intervention", open=True, moves=("diagnostics", "resolved")),  # diagnostics: the fix did not hold
        Phase("resolved", open=False, moves=("closed", "triage")),  # triage: the customer says it is not fixed
        Phase("closed", open=False, moves=()),
    ],
    start="received",
    final="closed",
)
OPEN_PHASES = PHASES.open  # a ticket in one of these is still being worked on


def can_move(current: str, target: str) -> bool:
    """True when a ticket in phase `current` may move to phase `target`."""
    return PHASES.can_move(current, target)


def allowed_moves(current: str) -> tuple[str, ...]:
    """The phases a ticket in phase `current` may move to."""
    return PHASES.allowed_moves(current)
