"""`python -m dipsearch.cli` == `dipsearch`."""

from dipsearch.launch import run

run()
