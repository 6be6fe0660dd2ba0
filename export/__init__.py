"""reelrestore.export."""
