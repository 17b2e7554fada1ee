"""Which tokenizer made the codes an LM reads: a record taken from the shards' manifest.

A token LM only means something for the codec that wrote its tokens: code 17 of one
checkpoint is not code 17 of another. Every LM checkpoint therefore stores a
`TokenizerRecord` (codec, checkpoint hash, window or bandwidth, n_q, codebook size, frame
rate), and the helpers here refuse shards or a codec that do not match it, naming both hashes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from codec.models.base import Codec

# manifest keys that must agree for codes to be interchangeable
IDENTITY_KEYS = ("codec", "checkpoint_hash", "window", "n_q", "codebook_size", "frame_rate")


class TokenizerMismatchError(ValueError):
    """Shards or a codec other than the tokenizer an LM was trained on."""


@dataclass(frozen=True)
class TokenizerRecord:
    """The tokenizer behind a set of code shards (fields of `manifest.json`).

    Attributes:
        codec: the codec's registry name ("almtokenizer", "encodec", ...).
        checkpoint_hash: content hash of the codec checkpoint that encoded the clips.
        window: ALMTokenizer's window w (None for codecs without one).
        bandwidth: EnCodec's kbps (None for codecs without one).
        n_q: codebooks per frame; codebook_size: K entries each.
        frame_rate: frames per second.
        weights_source: where the codec's weights came from (informative only).
        codes_hash: `Codec.codes_hash()` of that codec (None in folders written before it
            existed). When both records have one, it decides instead of `checkpoint_hash`:
            a checkpoint with another decoder but the same encoder and codebooks writes the
            same codes, so an LM trained on one serves the other.
    """

    codec: str
    checkpoint_hash: str
    window: int | None
    bandwidth: float | None
    n_q: int
    codebook_size: int
    frame_rate: float
    weights_source: str | None = None
    codes_hash: str | None = None

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> TokenizerRecord:
        """The record of a shard folder's manifest (`codec.tokenizer.read_manifest`)."""
        try:
            return cls(
                codec=str(manifest["codec"]),
                checkpoint_hash=str(manifest["checkpoint_hash"]),
                window=None if manifest.get("window") is None else int(manifest["window"]),
                bandwidth=None
                if manifest.get("bandwidth") is None
                else float(manifest["bandwidth"]),
                n_q=int(manifest["n_q"]),
                codebook_size=int(manifest["codebook_size"]),
                frame_rate=float(manifest["frame_rate"]),
                weights_source=manifest.get("weights_source"),
                codes_hash=None if not manifest.get("codes_hash") else str(manifest["codes_hash"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise TokenizerMismatchError(f"the manifest lacks a usable tokenizer field: {e}") from e

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TokenizerRecord:
        """Inverse of `to_dict` (a checkpoint's config.json)."""
        return cls.from_manifest(raw)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def raw_bitrate(self) -> float:
        """The codec's bits per second: n_q * log2(K) * frame rate."""
        return self.n_q * math.log2(self.codebook_size) * self.frame_rate

    def describe(self) -> str:
        """e.g. `almtokenizer checkpoint 1a2b3c (window 3, 3 x 2048 codes at 25 Hz)`."""
        setting = f"window {self.window}, " if self.window is not None else ""
        if self.bandwidth is not None and self.window is None:
            setting = f"{self.bandwidth:g} kbps, "
        return (
            f"{self.codec} checkpoint {self.checkpoint_hash} ({setting}{self.n_q} x "
            f"{self.codebook_size} codes at {self.frame_rate:g} Hz)"
        )

    def differing_key(self, other: TokenizerRecord) -> str | None:
        """The first identity key on which two records differ, or None."""
        for key in IDENTITY_KEYS:
            if key == "checkpoint_hash" and self.codes_hash and other.codes_hash:
                key = "codes_hash"  # noqa: PLW2901 - the codes decide, not the folder
            a, b = getattr(self, key), getattr(other, key)
            if (a != b) if not isinstance(a, float) else not math.isclose(a, b, rel_tol=1e-9):
                return key
        return None

    def check_same(self, other: TokenizerRecord, what: str) -> None:
        """Refuse `other` (e.g. "shards in DIR") unless it is the same tokenizer.

        Raises:
            TokenizerMismatchError: names the differing key and both checkpoint hashes.
        """
        key = self.differing_key(other)
        if key is not None:
            raise TokenizerMismatchError(
                f"{what} come from {other.describe()}, but the LM was trained on "
                f"{self.describe()} ({key}: {getattr(other, key)!r} vs "
                f"{getattr(self, key)!r}; checkpoint hash {other.checkpoint_hash} vs "
                f"{self.checkpoint_hash})"
            )

    def check_codec(self, codec: Codec, window: int | None = None) -> None:
        """Refuse a codec whose codes are not the ones the LM was trained on.

        Args:
            codec: a loaded codec (its `checkpoint_hash` set by the loader); EnCodec's codebook
                count is read at its current bandwidth.
            window: the window it will be used at (default: the record's window).

        Raises:
            TokenizerMismatchError: another codec, checkpoint hash, window, n_q, K or frame
                rate; names both hashes.
        """
        from codec.models.base import codes_hash_of

        window = self.window if window is None else window
        other = TokenizerRecord(
            codec=codec.name,
            checkpoint_hash=str(getattr(codec, "checkpoint_hash", "unsaved")),
            window=window,
            bandwidth=getattr(codec, "bandwidth", None),
            codes_hash=codes_hash_of(codec),
            n_q=codec.num_codebooks,
            codebook_size=codec.codebook_size,
            frame_rate=float(codec.frame_rate(window)),
        )
        self.check_same(other, "the codec's codes")
