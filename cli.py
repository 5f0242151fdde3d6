"""`python cli.py ...` does the same as `dipsearch ...`."""

from dipsearch.cli import run

if __name__ == "__main__":
    run()
