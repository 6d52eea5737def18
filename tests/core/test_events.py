"""The tiny event emitter of the Qt-free models."""

from __future__ import annotations

from leukview.core.events import Event


def test_callbacks_run_in_order_and_can_be_blocked_or_disconnected():
    event = Event("changed")
    seen: list[tuple[str, int]] = []
    first = event.connect(lambda value: seen.append(("first", value)))
    event.connect(lambda value: seen.append(("second", value)))
    event.connect(first)  # connecting twice calls once
    event.emit(1)
    assert seen == [("first", 1), ("second", 1)] and len(event) == 2
    with event.blocked():
        event.emit(2)
    assert len(seen) == 2
    event.disconnect(first)
    event.disconnect(first)  # not connected any more: no error
    event.emit(3)
    assert seen[-1] == ("second", 3) and len(seen) == 3
    event.disconnect()
    event.emit(4)
    assert len(seen) == 3


def test_a_callback_may_disconnect_itself_while_the_event_runs():
    event = Event("once")
    seen: list[int] = []

    def once(value: int) -> None:
        seen.append(value)
        event.disconnect(once)

    event.connect(once)
    event.connect(seen.append)
    event.emit(5)
    event.emit(6)
    assert seen == [5, 5, 6]
