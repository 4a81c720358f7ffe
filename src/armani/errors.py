"""The errors that mean bad input: a missing or malformed file, a wrong argument, a config
value out of range. The command line reports them as one line and exit status 2; any other
exception is a bug in armani and keeps its traceback.

`UserError` derives from `ValueError`, so code written against the older behaviour (catching
`ValueError`) still catches it.
"""
from __future__ import annotations


class UserError(ValueError):
    """Bad input from the user, reported as one line."""


class MissingInput(UserError, FileNotFoundError):
    """A file or folder the user named does not exist or is not what was asked for."""
