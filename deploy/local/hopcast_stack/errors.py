"""The one exception the stack raises for an expected failure, worded for the person at the terminal."""

from __future__ import annotations


class StackError(RuntimeError):
    """A part of the local stack could not be set up or started; the message says what and how to fix it
    (and carries the tail of the failing log when there is one)."""
