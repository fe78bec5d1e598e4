"""The colour R^2 of an ideal stable block on coloured digits: an h_S that is the digit and nothing
else (one-hot), probed as metrics.digit_colour_metrics probes h_S (metrics.color_r2_from_digit). Under the dynamic SCM the colour
depends on the digit, so an h_S that keeps the digit keeps some colour: this is the reference for
color_r2_from_hinv (not a bound: a linear probe of an h_S that holds the digit less linearly can score
below it). New runs record it as oracle_color_r2_from_digit; this reads it off the held-out splits
of stage-1 runs made before that metric existed.

    python scripts/mnist_colour_reference.py multirun/mnist-cpu/stage1/*
"""

import argparse

from mdcrl.data.encoded import load_encoded
from mdcrl.metrics import color_r2_from_digit


def colour_reference(run_path) -> float:
    data, _ = load_encoded(run_path, expected_kind="mnist")
    return color_r2_from_digit(data.splits["train"].z, data.splits["test"].z)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="stage-1 run directories of coloured digits")
    args = parser.parse_args(argv)
    print("| stage-1 run | colour R^2 from the digit alone |\n|---|---|")
    for run_path in args.runs:
        print(f"| {run_path} | {colour_reference(run_path):.4f} |")


if __name__ == "__main__":
    main()
