"""The phases of a ticket: a declared table of allowed moves, refused when it loads if it is inconsistent."""

from __future__ import annotations

import pytest

import prompts
from helpdesk.phases import OPEN_PHASES, PHASES, Phase, PhaseError, PhaseTable, allowed_moves, can_move
from storage.models import Ticket


def test_a_ticket_moves_forward_and_may_be_reopened_but_never_leaves_closed():
    assert can_move("received", "triage") and can_move("intervention", "resolved")
    assert can_move("resolved", "triage")  # the customer says it is not fixed
    assert not can_move("received", "resolved") and not can_move("triage", "triage")
    assert allowed_moves("closed") == () and not any(can_move("closed", phase) for phase in PHASES.names)


def test_an_unknown_phase_moves_nowhere():
    assert allowed_moves("lost") == () and not can_move("lost", "closed") and not can_move("received", "lost")


def test_the_open_phases_are_those_before_resolved():
    assert OPEN_PHASES == ("received", "triage", "diagnostics", "intervention")


def test_a_new_ticket_starts_in_the_first_phase():
    assert Ticket.__table__.c.status.default.arg == PHASES.start == "received"


@pytest.mark.parametrize("language", prompts.LANGUAGES)
def test_every_phase_can_be_said(language):
    texts = prompts.catalogue(language).texts
    assert [name for name in PHASES.names if f"phase_{name}" not in texts] == []


def table(*phases: Phase) -> PhaseTable:
    return PhaseTable(list(phases), start="new", final="done")


def test_a_move_to_an_unknown_phase_is_refused():
    with pytest.raises(PhaseError, match="new moves to unknown phase 'limbo'"):
        table(Phase("new", True, ("done", "limbo")), Phase("done", False, ()))


def test_a_phase_no_ticket_can_reach_is_refused():
    with pytest.raises(PhaseError, match="island is unreachable from new"):
        table(Phase("new", True, ("done",)), Phase("island", True, ("done",)), Phase("done", False, ()))


def test_a_final_phase_that_moves_on_is_refused():
    with pytest.raises(PhaseError, match="done is final but moves to 'new'"):
        table(Phase("new", True, ("done",)), Phase("done", False, ("new",)))


def test_a_dead_end_before_the_final_phase_is_refused():
    with pytest.raises(PhaseError, match="stuck leads nowhere"):
        table(Phase("new", True, ("done", "stuck")), Phase("stuck", True, ()), Phase("done", False, ()))


def test_an_undeclared_start_or_a_phase_declared_twice_is_refused():
    with pytest.raises(PhaseError, match="new is declared twice"):
        table(Phase("new", True, ("done",)), Phase("new", True, ("done",)), Phase("done", False, ()))
    with pytest.raises(PhaseError, match="done is not a declared phase"):
        table(Phase("new", True, ()))
