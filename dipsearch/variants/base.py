"""The variant interface and its registry.

A variant is a way of running the DIP fit that the engine's seams allow without changing the engine: another
optimizer, something done to the weights after each update, hooks that collect what the fit passes through.
It is chosen by name (`--variant NAME`, the `variant` gene of a space, `VariantSettings(variant=NAME)`); the
registry maps names to classes, and nothing outside the variant's own module asks which variant runs.

The TV term and warm starts are not variants: they combine with any of them (VariantSettings.tv, .init).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from ..errors import ArgumentError

if TYPE_CHECKING:
    from ..fitting.fit import FitConfig, FitHook
    from ..fitting.parts import FitParts
    from . import VariantSettings


class Variant:
    """Base class of the variants: override what the variant changes; the plain fit overrides nothing."""

    name: ClassVar[str] = "variant"
    summary: ClassVar[str] = ""  # one line for the guide and error messages
    # The fields of VariantSettings that belong to this variant: setting one of them for another variant is refused.
    settings: ClassVar[tuple[str, ...]] = ()
    # The run length when neither --iters nor the architecture file gives one (None: the fit's default).
    default_iters: ClassVar[int | None] = None
    # The key in result.extras["images"] of the image this variant restores with, when it is not the fit's output.
    output_image: ClassVar[str | None] = None

    def check(self, settings: VariantSettings, config: FitConfig) -> None:
        """Raise an ArgumentError for settings that cannot work with this budget, before any work."""

    def for_run(self, settings: VariantSettings, iters: int) -> VariantSettings:
        """The settings a search candidate of `iters` steps runs with (short runs may need other proportions)."""
        return settings

    def apply(self, parts: FitParts, settings: VariantSettings, config: FitConfig) -> list[FitHook]:
        """Fill the engine parts this variant changes; return the hooks it adds (run after the caller's own)."""
        return []


class Plain(Variant):
    name = "plain"
    summary = "the seed's fit: Adam on the data loss"


# The registry (`--variant NAME`): a new variant is a Variant subclass in its own module and one
# register_variant(cls) call (docs/extending/variant.md).
VARIANTS: dict[str, type[Variant]] = {"plain": Plain}


def register_variant(cls: type[Variant]) -> type[Variant]:
    """Add a variant under its `name` (usable as a class decorator)."""
    VARIANTS[cls.name] = cls
    return cls


def get_variant(name: str) -> Variant:
    """The variant of that name; an unknown name is an ArgumentError listing the registered ones."""
    if name not in VARIANTS:
        raise ArgumentError(
            "unknown variant {value!r}; choose one of {choices}", value=name, choices=", ".join(VARIANTS)
        )
    return VARIANTS[name]()


def owner_of(setting: str) -> str | None:
    """The variant a VariantSettings field belongs to (None: a setting of every variant, like tv and init)."""
    return next((name for name, cls in VARIANTS.items() if setting in cls.settings), None)
