"""ALMTokenizer and EnCodec behind one interface (`codec.models.base.Codec`), and their training.

    models/     the interface, SEANet, EnCodec, ALMTokenizer, the registry of backends
    training/   the loop (`python -m codec.training`), its config, losses, discriminators
    data/       dataset readers (FSD50K, Good-sounds, folders, the corpus) and crops
    tokenizer/  dataset tokenization (`python -m codec.tokenizer`)
    audio.py, checkpoint.py, schema.py, metrics.py: shared; they import nothing above them

This package file imports nothing, so `import codec.audio` does not import the models.
"""
