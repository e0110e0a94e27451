"""Errors the CLI prints as one line with no traceback: bad input (exit code 2) and a run
that could not go on for a reason outside the input (exit code 1)."""


class UserError(Exception):
    """Bad input: the message names the problem and the fix, on one line."""


class RunFailure(Exception):
    """The machine got in the way (the database or the disk could not be written): the message
    names the problem and the fix, on one line; stored results are kept."""


def database_failure(exc: BaseException) -> str:
    """One line for a database error met mid-run (disk full, locked, read-only, gone)."""
    orig = getattr(exc, "orig", None) or exc
    what = " ".join(str(orig).split())[:200]
    return (f"the results database failed ({type(orig).__name__}: {what}); check free disk "
            "space, the file's permissions and other programs holding it, then re-run the same "
            "command (completed results are kept)")
