"""Capabilities answer both `in` and attribute access."""

from __future__ import annotations

import queue_runtime as qr


def test_in_and_attribute_agree() -> None:
    caps = qr.Capabilities(session_state=False)
    assert "sessions" in caps and caps.sessions
    assert "session_state" not in caps and not caps.session_state
    assert "max_message_size" not in caps  # a number, not a flag
    assert "no_such_thing" not in caps and 3 not in caps


def test_iteration_lists_supported_features() -> None:
    names = set(qr.Capabilities(scheduled_messages=False))
    assert "sessions" in names and "scheduled_messages" not in names
