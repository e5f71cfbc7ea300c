"""``python -m copilot``: the same process as the console script."""

from copilot._entry import main

main()
