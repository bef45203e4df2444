"""User-facing errors: the CLI prints these as one line, never a traceback."""


class PerfmodelError(Exception):
    """Bad input or an impossible request; the message names the problem."""
