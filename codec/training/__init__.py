"""Helpers of the training loop (`codec.train`): data order, checkpoints, DDP, logging, eval."""
