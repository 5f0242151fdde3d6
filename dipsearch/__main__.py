"""`python -m dipsearch` == `dipsearch`."""

from dipsearch.launch import run

run()
