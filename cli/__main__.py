"""`python -m cli …` runs the `berth` command."""
from cli import main

main(prog_name="berth")
