"""The program of Kibernetika's form example: prints the value the form passed to it."""

import argparse
import os


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--parameter_name", required=True)
    args = parser.parse_args()
    print(f"parameter_name={args.parameter_name}")
    build, replica = os.environ.get("BUILD_ID", "?"), os.environ.get("REPLICA_INDEX", "?")
    print(f"build {build}, replica {replica}")


if __name__ == "__main__":
    main()
