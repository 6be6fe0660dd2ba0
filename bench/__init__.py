"""reelrestore.bench."""
