"""The one base of every error cellang raises on purpose.

``except cl.CellangError`` catches what the project refuses with a message (a malformed GMT, cells that cannot
be read, an unknown model, a budget out of range); anything else is a bug. Each error also derives from the
builtin it always was (ValueError, RuntimeError), so code that caught those keeps working.
"""


class CellangError(Exception):
    """Something cellang was asked cannot be done; the message names the problem and what to do."""
