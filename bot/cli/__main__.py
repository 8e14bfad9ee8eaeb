"""`python -m bot.cli`: the same as `archivist`."""

from bot.cli.main import main

main()
