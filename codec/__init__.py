"""ALMTokenizer and EnCodec codecs behind one interface (`codec.base.Codec`), and their training."""

from codec.base import SAMPLE_RATE, Codec, Encoded

__all__ = ["SAMPLE_RATE", "Codec", "Encoded"]
