"""Image files <-> 1xCxHxW float tensors in [0, 1], and the centre crops the networks need."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import DipsearchError

# Pillow's integer modes that hold 16-bit samples (a 16-bit grey PNG opens as 'I' or 'I;16').
_SIXTEEN_BIT = {"I", "I;16", "I;16L", "I;16B", "I;16N"}


def _to_array(img: Image.Image, path: Path) -> np.ndarray:
    """Return HxWxC float32 in [0, 1]; C is 1 or 3."""
    mode = img.mode
    if mode in _SIXTEEN_BIT:
        arr = np.asarray(img, dtype=np.float64) / 65535.0
        return np.clip(arr, 0.0, 1.0).astype(np.float32)[..., None]
    if mode == "F":
        # Float TIFFs carry no agreed range; assume [0, 1] as the rest of the toolkit does.
        return np.clip(np.asarray(img, dtype=np.float32), 0.0, 1.0)[..., None]
    if mode in ("1", "L", "LA", "La"):
        img = img.convert("L")
    else:
        if mode in ("RGBA", "RGBa", "PA") or (mode == "P" and "transparency" in img.info):
            warnings.warn(f"{path}: alpha channel dropped (only the RGB channels are used)", stacklevel=3)
        img = img.convert("RGB")
    arr = np.asarray(img, dtype=np.float32) / 255.0
    return arr[..., None] if arr.ndim == 2 else arr


def load_image(path: str | Path) -> torch.Tensor:
    """Read a PNG/JPEG/TIFF as a 1xCxHxW float32 tensor in [0, 1] (C = 1 for grey, 3 for colour)."""
    path = Path(path)
    if not path.exists():
        raise DipsearchError(f"image file not found: {path} (check the path and spelling)")
    if path.is_dir():
        raise DipsearchError(f"{path} is a directory; give the path of an image file (PNG, JPEG or TIFF)")
    try:
        with warnings.catch_warnings():
            # Pillow's decompression-bomb guard is for images from strangers; this is the user's own file, and
            # what a fit of it needs is checked before fitting (dipsearch.fitting.memory), with the crop that fits.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()  # decode now so truncated files fail here, inside the error handling
                arr = _to_array(img, path)
    except Image.DecompressionBombError:
        raise DipsearchError(
            f"{path} has more than the {2 * Image.MAX_IMAGE_PIXELS:,} pixels Pillow decodes; cut out the part to "
            "restore with an image editor first"
        ) from None
    except UnidentifiedImageError:
        with open(path, "rb") as head:
            tiff = head.read(4) in (b"II*\x00", b"MM\x00*")
        if tiff:  # Pillow opens TIFFs of most kinds, not all: e.g. colour with 32-bit float samples
            raise DipsearchError(
                f"{path} is a TIFF whose kind of pixels Pillow cannot decode (e.g. colour with 32-bit float samples); "
                "save it as an 8- or 16-bit PNG or TIFF"
            ) from None
        raise DipsearchError(f"{path} is not an image Pillow can read; give a PNG, JPEG or TIFF file") from None
    except OSError as err:
        raise DipsearchError(f"cannot read image {path}: {err}") from None
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).unsqueeze(0).contiguous()


def save_image(tensor: torch.Tensor, path: str | Path, format: str | None = None) -> None:
    """Write a 1xCxHxW or CxHxW tensor (clamped to [0, 1]) as an 8-bit image, grey when C = 1.

    Writes exactly `path`; the format comes from `format`, else the suffix, else PNG. (Run folders write
    images atomically instead: dipsearch.store.runs.save_image_atomic, with encode_image.)
    """
    path = Path(path)
    img = _to_pil(tensor)
    if format is None:
        known = Image.registered_extensions()
        format = known.get(path.suffix.lower(), "PNG")
    try:
        img.save(path, format=format)
    except (OSError, KeyError, ValueError) as err:
        raise DipsearchError(f"cannot write image {path} as {format}: {err}") from None


def encode_image(tensor: torch.Tensor, format: str = "PNG") -> bytes:
    """The bytes save_image would write, for writers that put them in place themselves."""
    buffer = io.BytesIO()
    _to_pil(tensor).save(buffer, format=format)
    return buffer.getvalue()


def _to_pil(tensor: torch.Tensor) -> Image.Image:
    t = tensor.detach().to("cpu", torch.float32)
    if t.dim() == 4:
        if t.shape[0] != 1:
            raise ValueError(f"save_image expects a batch of one image, got shape {tuple(t.shape)}")
        t = t[0]
    if t.dim() != 3 or t.shape[0] not in (1, 3):
        raise ValueError(f"save_image expects 1xCxHxW or CxHxW with C in (1, 3), got {tuple(tensor.shape)}")
    arr = (t.clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)


def center_crop(img: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Central hxw window of a ...xHxW tensor."""
    H, W = img.shape[-2:]
    if not (0 < h <= H and 0 < w <= W):
        raise DipsearchError(
            f"cannot crop a {W}x{H} image to {w}x{h} (width x height); the crop must fit inside the image"
        )
    top, left = (H - h) // 2, (W - w) // 2
    return img[..., top : top + h, left : left + w]


def crop_to_multiple(img: torch.Tensor, m: int) -> torch.Tensor:
    """Centre-crop so both sides are multiples of m (the hourglass halves the size at each level)."""
    H, W = img.shape[-2:]
    h, w = H - H % m, W - W % m
    if h == 0 or w == 0:
        raise DipsearchError(
            f"image is {W}x{H} (width x height), smaller than the required multiple {m}; use a larger image"
        )
    return center_crop(img, h, w)
