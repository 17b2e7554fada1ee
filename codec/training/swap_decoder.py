"""Put a fine-tuned autoencoder decoder under a trained codec:
`python -m codec.training.swap_decoder`.

Both codecs of this project stand on one frozen acoustic autoencoder. Its decoder can be
fine-tuned alone (`training.freeze: [encoder]`, configs/decoder_finetune.yaml): the encoder,
hence every latent, stays bit-identical, so EnCodec's RVQ and ALMTokenizer's tokens, fitted to
those latents, remain valid and only the waveform they decode to changes. This tool copies the
decoder of such a run into a codec checkpoint folder:

    python -m codec.training.swap_decoder --codec checkpoints/almtokenizer_demo \
        --decoder work_dirs/decoder_finetune/best --out work_dirs/almtokenizer_newdec

`--codec` is one of our EnCodec checkpoints (its `decoder`) or an ALMTokenizer checkpoint (its
front end's decoder); `--decoder` is an EnCodec checkpoint folder. The tool refuses when the two
encoders differ in any tensor (other latents: the codec would need retraining) and writes the
result atomically with the old meta plus a `decoder_from` record.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from codec.checkpoint import CheckpointError, save_codec
from codec.models.base import Codec
from codec.models.registry import load_codec

log = logging.getLogger("codec.training.swap_decoder")


def autoencoder_parts(codec: Codec) -> tuple[nn.Module, nn.Module]:
    """(encoder, decoder) of the autoencoder a codec stands on.

    Raises:
        ValueError: the codec has none (neither an EnCodec nor a front end of one).
    """
    owner: Any = codec.frame_frontend() or codec
    encoder, decoder = getattr(owner, "encoder", None), getattr(owner, "decoder", None)
    if not isinstance(encoder, nn.Module) or not isinstance(decoder, nn.Module):
        raise ValueError(f"{codec.name} has no autoencoder encoder/decoder to swap")
    return encoder, decoder


def _same_state(a: nn.Module, b: nn.Module) -> list[str]:
    """Names of the tensors where two modules differ (shape or value), or that one lacks."""
    sa, sb = a.state_dict(), b.state_dict()
    diff = sorted(set(sa) ^ set(sb))
    diff += [
        k for k in sa if k in sb and (sa[k].shape != sb[k].shape or not torch.equal(sa[k], sb[k]))
    ]
    return diff


@torch.no_grad()
def swap_decoder(codec: Codec, source: Codec, where: str = "the decoder checkpoint") -> int:
    """Copy `source`'s autoencoder decoder into `codec` in place; returns the tensor count.

    Raises:
        ValueError: the encoders differ (names the first tensors), or the decoders' shapes do.
    """
    own_enc, own_dec = autoencoder_parts(codec)
    src_enc, src_dec = autoencoder_parts(source)
    diff = _same_state(own_enc, src_enc)
    if diff:
        raise ValueError(
            f"{where}: its encoder differs from the codec's ({len(diff)} tensors, e.g. "
            f"{diff[:3]}); a decoder only fits the latents of the encoder it was trained with"
        )
    state = src_dec.state_dict()
    shapes = _same_state(own_dec, src_dec)
    bad = [k for k in shapes if k not in state or state[k].shape != own_dec.state_dict()[k].shape]
    if bad:
        raise ValueError(f"{where}: its decoder has another architecture (e.g. {bad[:3]})")
    own_dec.load_state_dict(state, strict=True)
    return len(state)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m codec.training.swap_decoder", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--codec", type=Path, required=True, help="codec checkpoint folder to update")
    p.add_argument(
        "--decoder", type=Path, required=True, help="EnCodec checkpoint with the new decoder"
    )
    p.add_argument("--out", type=Path, required=True, help="output checkpoint folder")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        codec, source = load_codec(args.codec), load_codec(args.decoder)
        n = swap_decoder(codec, source, str(args.decoder))
    except (CheckpointError, ValueError) as e:
        print(f"python -m codec.training.swap_decoder: error: {e}", file=sys.stderr)
        return 1
    meta = dict(getattr(codec, "checkpoint_meta", {}) or {})
    meta["decoder_from"] = {
        "checkpoint": str(args.decoder),
        "meta": getattr(source, "checkpoint_meta", {}),
    }
    save_codec(codec, args.out, meta=meta)
    log.info("%s: %d decoder tensors from %s -> %s", args.codec, n, args.decoder, args.out)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
