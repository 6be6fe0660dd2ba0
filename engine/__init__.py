"""reelrestore.engine."""
