"""Training: the loop (`loop`, run as `python -m codec.training`), its config, losses and
discriminators, RVQ fitting, decoder swaps, and the loop's helpers (data order, state, DDP,
logging, evaluation, the latent cache)."""
