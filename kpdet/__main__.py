"""python -m kpdet ...: the `kpdet` command (kpdet/cli/)."""
from kpdet.cli import main

main()
