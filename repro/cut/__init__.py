"""Contrastive Unlikelihood Training: loss (pure functions on logits), batching, and the training loop."""
