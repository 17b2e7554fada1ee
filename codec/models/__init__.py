"""The codecs: the `Codec` interface (`base`), the SEANet building block, EnCodec, ALMTokenizer,
and the one registry of backends (`registry`) that builds them from checkpoints and names."""
