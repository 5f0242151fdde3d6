"""`python -m dipsearch` == `dipsearch`."""

from dipsearch.cli import run

run()
