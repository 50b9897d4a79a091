"""`python -m cli …` runs the `berth` command."""
from cli import main

main()
