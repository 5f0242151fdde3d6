"""Files on disk: run folders (runs.py), images (imageio.py) and TOML (tomlio.py). Every layer writes
through these; they import no other part of dipsearch but errors."""
