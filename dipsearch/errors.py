"""The one exception family for mistakes a user can make (bad file, bad flag, bad space)."""


class DipsearchError(Exception):
    """A user-caused error: the message says what was wrong and how to fix it.

    The CLI prints it without a traceback and exits with status 2.
    """
