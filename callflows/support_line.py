"""The support line's voice menu, step by step in call order.

Read each step as: what the caller hears, then where each key, silence, wrong key and
running out of attempts leads. `python -m callflows.support_line` prints it as a table.
"""

from __future__ import annotations

from collections.abc import Mapping

from callflows import actions
from callflows.engine import Branch, CallFlow, Entry, Hangup, Menu, Record, Step, Transfer, Turn, again, go

TOO_MANY = "too_many_attempts"
NO_MESSAGE = again("describe_problem_silence")  # silence after the beep: once more, with this notice


def technician(name: str, dial: str, message: str) -> list[Step]:
    """Reach the on-call technician in business hours (`name`, then `dial`); otherwise, or when
    nobody answers, the caller leaves a message at step `message`."""
    return [
        Branch(
            name,
            decide="business_hours",
            events={
                "open": go(dial),
                "closed": go(message, notice="operator_closed"),
                "nobody": go(message, notice="operator_no_answer"),
            },
        ),
        Transfer(
            dial,
            prompt=("operator_connecting",),
            answered=go("goodbye"),
            no_answer=go(message, notice="operator_no_answer"),
        ),
    ]


STEPS: list[Step] = [
    Menu(
        "welcome",
        prompt=("welcome", "@language_offer"),
        options={"9": go("identify", do="set_language", arg="en")},
        silence=go("identify"),
        other_key=go("identify"),  # a caller keying ahead is not a mistake
        exhausted=go("identify"),
        timeout=2,
    ),
    Branch(
        "identify",
        decide="identify_caller",
        events={
            "known": go("main_menu", do="greet"),
            "unknown": go("customer_code"),
            "withheld": go("callback_number"),
        },
    ),
    Entry(
        "callback_number",
        prompt=("callback_number",),
        check="check_callback_number",
        # A typed number is where to call back, never who calls: on to the customer code.
        events={"unknown": go("customer_code"), "invalid": again("callback_number_invalid")},
        silence=again("no_input"),
        exhausted=go("customer_code", notice="callback_number_skipped"),
    ),
    Entry(
        "customer_code",
        prompt=("customer_code",),
        check="check_customer_code",
        events={"linked": go("main_menu"), "unknown_code": again("customer_code_unknown")},
        silence=go("main_menu", notice="unregistered"),
        exhausted=go("main_menu", notice="unregistered"),
        max_attempts=2,
    ),
    Menu(
        "main_menu",
        prompt=("main_menu",),
        options={
            "1": go("triage"),
            "2": go("status"),
            "0": go("operator"),
            "9": go("main_menu", do="set_language", arg="en"),
        },
        exhausted=go("leave_message", notice=TOO_MANY),
    ),
    Menu(
        "triage",
        prompt=("triage",),
        options={
            "1": go("describe_problem", do="set_severity", arg=1),
            "2": go("describe_problem", do="set_severity", arg=2),
            "3": go("describe_problem", do="set_severity", arg=3),
        },
        exhausted=go("leave_message", notice=TOO_MANY),
    ),
    Record(
        "describe_problem",
        prompt=("describe_problem",),
        silence=NO_MESSAGE,
        recorded=go("confirm_recording", do="keep_recording"),
        hung_up=go("goodbye", do=("keep_recording", "open_ticket"), arg="voicemail"),
        exhausted=go("ticket_opened", do="open_ticket"),  # twice silent: a ticket without audio
    ),
    Menu(
        "confirm_recording",
        prompt=("confirm_recording",),
        options={"1": go("ticket_opened", do="open_ticket"), "2": go("describe_problem", do="forget_recording")},
        exhausted=go("ticket_opened", do="open_ticket"),
    ),
    Menu(
        "ticket_opened",
        prompt=("ticket_opened", "@ticket_number", "@next_steps", "ticket_repeat_menu"),
        options={"1": go("ticket_number_again")},
        silence=go("goodbye"),
        exhausted=go("goodbye"),
    ),
    Menu(
        "ticket_number_again",
        prompt=("ticket_number_again", "@ticket_number", "ticket_repeat_menu"),
        options={"1": go("ticket_number_again")},
        silence=go("goodbye"),
        exhausted=go("goodbye"),
    ),
    Branch(
        "status",
        decide="status_entry",
        events={
            "own_tickets": go("my_tickets"),
            "ask_number": go("ticket_number"),
            "locked": go("main_menu", notice="status_locked"),
            "unavailable": go("main_menu", notice="status_unavailable"),
        },
    ),
    Menu(
        "my_tickets",
        prompt=("@my_tickets", "my_tickets_menu"),
        options={
            "1": go("my_tickets", do="next_own_ticket"),
            "2": go("ticket_status", do="choose_own_ticket"),
            "3": go("ticket_number"),
            "*": go("main_menu"),
        },
        exhausted=go("main_menu"),
    ),
    Entry(
        "ticket_number",
        prompt=("ticket_number",),
        check="check_ticket_number",
        events={
            "authorized": go("ticket_status"),
            "needs_pin": go("status_pin"),
            "invalid": again("ticket_number_invalid"),
            "not_digits": again("ticket_number_digits_only"),
            "too_long": again("ticket_number_too_long"),
            "locked": go("main_menu", notice="status_locked"),
            "unavailable": go("main_menu", notice="status_unavailable"),
        },
        silence=again("ticket_number_empty"),
        exhausted=go("main_menu"),
    ),
    Entry(
        "status_pin",
        prompt=("status_pin",),
        check="check_status_pin",
        events={
            "authorized": go("ticket_status"),
            "refused": again("status_refused"),
            "locked": go("main_menu", notice="status_locked"),
            "unavailable": go("main_menu", notice="status_unavailable"),
        },
        silence=again("ticket_number_empty"),
        exhausted=go("main_menu", notice="status_refused"),
    ),
    Menu(
        "ticket_status",
        prompt=("@ticket_status", "status_menu"),
        options={"1": go("add_message"), "2": go("status_operator"), "9": go("ticket_status"), "*": go("main_menu")},
        exhausted=go("main_menu"),
    ),
    # A technician about this ticket: when nobody answers, the message goes on this ticket.
    *technician("status_operator", "status_dial_technician", message="add_message"),
    Record(
        "add_message",
        prompt=("add_message",),
        silence=NO_MESSAGE,
        recorded=go("main_menu", do="keep_voice_message", notice="message_added"),
        hung_up=go("goodbye", do="keep_voice_message"),
        exhausted=go("ticket_status"),
        purpose="message",
    ),
    # Option 0: when nobody answers, or out of hours, the message opens a ticket.
    *technician("operator", "dial_technician", message="leave_message"),
    Record(
        "leave_message",
        prompt=("leave_message",),
        silence=NO_MESSAGE,
        recorded=go("ticket_opened", do=("keep_recording", "open_ticket"), arg="voicemail"),
        hung_up=go("goodbye", do=("keep_recording", "open_ticket"), arg="voicemail"),
        exhausted=go("ticket_opened", do="open_ticket", arg="voicemail"),
    ),
    Hangup("goodbye", prompt=("goodbye",)),
]


def recording_limit(turn: Turn) -> Mapping[str, object]:
    """The placeholder of the prompts before a recording: the longest message, in whole minutes."""
    return {"minutes": max(1, turn.max_recording_seconds // 60)}


FLOW = CallFlow(
    STEPS,
    side_effects=actions.SIDE_EFFECTS,
    deciders=actions.DECIDERS,
    checkers=actions.CHECKERS,
    speakers=actions.SPEAKERS,
    prompt_values=recording_limit,
    pure=actions.PURE,
)


if __name__ == "__main__":
    print("| step | input | next |\n| --- | --- | --- |")
    for step, event, target in FLOW.table():
        print(f"| `{step}` | {event} | {target} |")
