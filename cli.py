"""`python cli.py ...` does the same as `dipsearch ...`."""

from dipsearch.launch import run

if __name__ == "__main__":
    run()
