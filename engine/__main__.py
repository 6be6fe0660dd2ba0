"""`python -m reelrestore.engine` = `restore-stream`."""

from .cli import main

main()
