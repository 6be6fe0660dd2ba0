"""reelrestore.models."""
