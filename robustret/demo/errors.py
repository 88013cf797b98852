"""The one error the page answers bad input with."""

from __future__ import annotations


class DemoError(Exception):
    """Bad input: ``message`` is what the client is told, ``status`` the HTTP code (4xx)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
