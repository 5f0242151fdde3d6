"""`python -m dipsearch.cli` == `dipsearch`."""

from dipsearch.cli import run

run()
