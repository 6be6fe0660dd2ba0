"""reelrestore.training."""
