"""The most candidate fits one search may ask for, checked before a run folder exists.

A search draws its whole first generation (or, for the random search, every trial) up front, so a population
of a billion allocates until the machine gives out before the first fit starts. Each candidate is a fit of
seconds to minutes, so 100,000 is already a search of days: anything above is a typo, refused in words.
"""

from __future__ import annotations

from ..errors import ArgumentError

MOST_FITS = 100_000


def check_fits(fits: int, what: str, **values: int) -> None:
    """Refuse a search of more than MOST_FITS candidate fits; `what` names the arguments that set the count, as
    an ArgumentError template ("{trials} {trials_value}")."""
    if fits > MOST_FITS:
        raise ArgumentError(
            what + " would take {fits:,} candidate fits; one search takes at most {most:,} (each is a fit of seconds "
            "or more): ask for fewer",
            fits=fits,
            most=MOST_FITS,
            **values,
        )
