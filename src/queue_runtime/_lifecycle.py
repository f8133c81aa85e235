"""The new -> open -> closed life of a client, the same for every adapter."""

from __future__ import annotations

from typing import Literal

from ._errors import ClientClosed

__all__ = ["ClientLifecycle"]


class ClientLifecycle:
    """Mixin for adapter clients: ``_state`` and the checks that refuse use outside ``open``."""

    _state: Literal["new", "open", "closed"] = "new"

    def _check_open(self) -> None:
        """Raise `ClientClosed` unless the client is open."""
        if self._state != "open":
            raise ClientClosed(
                "the client is closed"
                if self._state == "closed"
                else "the client is not open: use 'async with client:' or 'await client.open()'"
            )

    def _needs_open(self) -> bool:
        """Whether ``open()`` has work to do: not when open already; `ClientClosed` once closed
        (a closed client is not reopened: make a new one)."""
        if self._state == "closed":
            raise ClientClosed("this client was closed; create a new one")
        return self._state != "open"
