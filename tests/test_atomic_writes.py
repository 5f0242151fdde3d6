"""Run-folder images go through the one atomic writer (runs.write_atomic), like every other run file."""

import os

import pytest
import torch
from conftest import synthetic_image

from dipsearch.store.imageio import encode_image, load_image
from dipsearch.store.runs import save_image_atomic, write_atomic


def test_an_image_is_written_whole_with_the_permissions_of_a_plain_file(tmp_path):
    image = synthetic_image(16, 24)
    path = save_image_atomic(tmp_path / "out.png", image)
    assert path.read_bytes() == encode_image(image)
    assert (load_image(path) - image).abs().max() <= 0.5 / 255 + 1e-6
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "out.png"
    write_atomic(path, b"old")
    with pytest.raises(ValueError, match="batch of one image"):
        save_image_atomic(path, torch.zeros(2, 3, 8, 8))

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)  # fails after the temporary file is written
    with pytest.raises(OSError, match="No space left"):
        save_image_atomic(path, synthetic_image(8, 8))
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]
