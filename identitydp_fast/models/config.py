"""AEI-Net configurations: one dataclass, one registry of named configs.

An AEI-Net (FaceShifter, Li et al. 2019) of depth L (= len(encoder_channels)) on S x S
crops has L + 1 generator levels at sides S / 2^L, ..., S / 2, S:

* attribute encoder (U-Net): L stride-2 down-convs with ``encoder_channels`` c_1..c_L
  (S -> S / 2^L), then L - 1 resize-convs (bilinear x2 + conv3x3) whose outputs are
  concatenated with the matching skip; level 0's attribute map is the bottleneck (c_L
  channels), level j (1 <= j < L) has 2 c_{L-j} channels, level L (full resolution) is
  level L-1's map upsampled (same channels);
* generator: a learned (C_0, S/2^L, S/2^L) start, then one AAD ResBlock per level,
  ``generator_channels[i]`` -> ``generator_channels[i+1]`` (3 after the last level), with
  bilinear x2 between levels and tanh at the end; level i's AAD layers compute their
  attribute modulations with a ``modulation_kernels[i]`` x k conv (3 or 1);
* identity: ``identity_dim`` (128, dlib) -> one Linear -> every AAD layer's gamma/beta.

``fast-128`` is the default (CPU training); ``paper-256`` is FaceShifter's scale (GPU).
Use ``get_config(name)``, ``config_names()``, ``AEINetConfig.to_json`` / ``from_json``.
"""
from __future__ import annotations

import dataclasses
import json

ENCODER_NORMS = ("batch", "instance")


@dataclasses.dataclass(frozen=True)
class AEINetConfig:
    """Every size of an AEI-Net (see the module docstring for how they fit together).

    name: registry name (free text for custom configs).
    crop_size: S, the side of the square RGB crops in [-1, 1]; S / 2^L must be >= 2.
    encoder_channels: c_1..c_L, output channels of the L stride-2 down-convs.
    generator_channels: C_0..C_L, input channels of the L + 1 AAD ResBlocks (block i
        maps C_i -> C_{i+1}, the last one -> 3).
    modulation_kernels: L + 1 kernel sizes (1 or 3) of the attribute-modulation convs,
        one per generator level (3x3 where the maps are small, 1x1 where they are large).
    identity_dim: length of the identity vector (128: dlib's descriptor).
    encoder_norm: 'batch' (FaceShifter; folds into the convs at inference) or 'instance'.
    down_kernel: kernel of the encoder's stride-2 convs (4: FaceShifter; 3 also halves).
    leaky_slope: negative slope of the encoder's LeakyReLUs.
    """

    name: str
    crop_size: int
    encoder_channels: tuple[int, ...]
    generator_channels: tuple[int, ...]
    modulation_kernels: tuple[int, ...]
    identity_dim: int = 128
    encoder_norm: str = "batch"
    down_kernel: int = 4
    leaky_slope: float = 0.1

    def __post_init__(self):
        for f in ("encoder_channels", "generator_channels", "modulation_kernels"):
            object.__setattr__(self, f, tuple(int(v) for v in getattr(self, f)))
        self.validate()

    # ---- derived sizes -------------------------------------------------------------
    @property
    def depth(self) -> int:
        """L: number of down-convs; the generator has L + 1 levels."""
        return len(self.encoder_channels)

    @property
    def num_levels(self) -> int:
        """Number of generator levels = number of AAD ResBlocks = L + 1."""
        return self.depth + 1

    @property
    def start_size(self) -> int:
        """Side of the bottleneck and of the generator's start: S / 2^L."""
        return self.crop_size >> self.depth

    def level_sizes(self) -> tuple[int, ...]:
        """Spatial side of every generator level, coarse to fine: (S/2^L, ..., S)."""
        return tuple(self.start_size << i for i in range(self.num_levels))

    def attribute_channels(self) -> tuple[int, ...]:
        """Channels of the attribute map of every generator level, coarse to fine."""
        c = self.encoder_channels
        L = self.depth
        chans = [c[L - 1]] + [2 * c[L - 1 - j] for j in range(1, L)]
        return tuple(chans + [chans[-1]])

    # ---- checks and JSON -----------------------------------------------------------
    def validate(self) -> None:
        """Raise ValueError naming the field, the value and the requirement."""
        def positive_ints(name, seq):
            if len(seq) == 0 or any(v < 1 for v in seq):
                raise ValueError(f"{name} must be a non-empty sequence of positive ints, got {seq!r}")

        if not isinstance(self.crop_size, int) or self.crop_size < 8:
            raise ValueError(f"crop_size must be an int >= 8, got {self.crop_size!r}")
        positive_ints("encoder_channels", self.encoder_channels)
        positive_ints("generator_channels", self.generator_channels)
        L = self.depth
        if self.crop_size % (1 << L) or self.crop_size >> L < 2:
            raise ValueError(f"crop_size={self.crop_size} must be divisible by 2^L = {1 << L} "
                             f"(L = len(encoder_channels)) with S / 2^L >= 2")
        if len(self.generator_channels) != L + 1:
            raise ValueError(f"generator_channels needs L + 1 = {L + 1} entries (one per level), "
                             f"got {len(self.generator_channels)}: {self.generator_channels!r}")
        if len(self.modulation_kernels) != L + 1 or any(k not in (1, 3) for k in self.modulation_kernels):
            raise ValueError(f"modulation_kernels needs L + 1 = {L + 1} entries, each 1 or 3, "
                             f"got {self.modulation_kernels!r}")
        if not isinstance(self.identity_dim, int) or self.identity_dim < 1:
            raise ValueError(f"identity_dim must be a positive int, got {self.identity_dim!r}")
        if self.encoder_norm not in ENCODER_NORMS:
            raise ValueError(f"encoder_norm must be one of {ENCODER_NORMS}, got {self.encoder_norm!r}")
        if self.down_kernel not in (3, 4):
            raise ValueError(f"down_kernel must be 3 or 4 (both halve the side with padding 1), "
                             f"got {self.down_kernel!r}")
        if not 0.0 <= float(self.leaky_slope) < 1.0:
            raise ValueError(f"leaky_slope must be in [0, 1), got {self.leaky_slope!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """Compact, key-sorted JSON (what the weights file stores in its metadata)."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: dict) -> "AEINetConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown AEINetConfig fields {unknown}; known: {sorted(known)}")
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> "AEINetConfig":
        return cls.from_dict(json.loads(text))

    def replace(self, **changes) -> "AEINetConfig":
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)


_REGISTRY: dict[str, AEINetConfig] = {}


def register(config: AEINetConfig) -> AEINetConfig:
    """Add a named config to the registry (names are unique)."""
    if config.name in _REGISTRY:
        raise ValueError(f"config {config.name!r} is already registered")
    _REGISTRY[config.name] = config
    return config


#: CPU-trainable default (DESIGN.md 7b): 128x128 crops, U-Net 16/32/64/128/128 down to
#: 4x4, AAD generator 256..16 channels, 3x3 modulation convs at 4..32 px, 1x1 at 64/128.
FAST_128 = register(AEINetConfig(
    name="fast-128", crop_size=128,
    encoder_channels=(16, 32, 64, 128, 128),
    generator_channels=(256, 256, 128, 64, 32, 16),
    modulation_kernels=(3, 3, 3, 3, 1, 1)))

#: FaceShifter's AEI-Net: 256x256 crops, seven down-convs 32..1024 to 2x2, eight AAD
#: ResBlocks 1024 -> ... -> 64 -> 3. The paper does not give the modulation kernels; 1x1
#: everywhere follows the widely used public re-implementation (taotaonice/FaceShifter).
PAPER_256 = register(AEINetConfig(
    name="paper-256", crop_size=256,
    encoder_channels=(32, 64, 128, 256, 512, 1024, 1024),
    generator_channels=(1024, 1024, 1024, 1024, 512, 256, 128, 64),
    modulation_kernels=(1, 1, 1, 1, 1, 1, 1, 1)))

DEFAULT_CONFIG = "fast-128"


def config_names() -> tuple[str, ...]:
    """Names of the registered configs, the default first."""
    return (DEFAULT_CONFIG,) + tuple(n for n in _REGISTRY if n != DEFAULT_CONFIG)


def get_config(name: str = DEFAULT_CONFIG) -> AEINetConfig:
    """The registered config called ``name`` (ValueError listing the names otherwise)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown AEI-Net config {name!r}; choose one of {list(config_names())}") from None
