"""`python -m platform_update apply-staged`: the start-up step of platform_update.apply."""
import sys

from platform_update.apply import apply_staged


def main(argv: list[str]) -> int:
    if argv != ["apply-staged"]:
        sys.stderr.write("usage: python -m platform_update apply-staged\n")
        return 2
    outcome = apply_staged()
    if outcome is None:
        return 0
    if outcome["installed"]:
        sys.stdout.write(f"berth: installed the staged release {outcome['version']}\n")
    else:   # the server still starts, on the version it had (see platform_update.apply)
        sys.stderr.write(f"berth: the staged release {outcome['version']} was not installed: {outcome['error']}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
