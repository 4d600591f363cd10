"""The `kplaybook` command line."""

import argparse
import os
import sys
import time


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def build_parser():
    """The argument parser of the `kplaybook` command."""
    parser = argparse.ArgumentParser(
        prog="kplaybook",
        description="Tune Keras models the way the Deep Learning Tuning Playbook says.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="run a nested depth study on scikit-learn's digits (offline)",
        description=(
            "Scientific: number of hidden layers (1, 2, 3). Nuisance: Adam's "
            "learning rate and 1-beta_1, quasi-random. Writes DIRECTORY/demo "
            "(replacing an earlier demo) and prints the best trial per depth."
        ),
    )
    demo.add_argument("--trials-per-study", type=_positive_int, default=12)
    demo.add_argument("--epochs", type=_positive_int, default=10)
    demo.add_argument("--directory", default="saved_studies")
    demo.add_argument("--seed", type=int, default=0)
    return parser


def _quiet_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def run_demo(args):
    """`kplaybook demo`."""
    from kplaybook.demo import DEMO_PROJECT
    from kplaybook.demo import format_best
    from kplaybook.demo import run_depth_study

    print(
        f"kplaybook demo: depth study on digits, {args.trials_per_study} trials per "
        f"depth x 3 depths, {args.epochs} epochs each"
    )
    start = time.perf_counter()
    study = run_depth_study(
        trials_per_study=args.trials_per_study,
        epochs=args.epochs,
        directory=args.directory,
        seed=args.seed,
    )
    study.export()
    counts = study.status_counts()
    print(
        f"{sum(counts.values())} trials ({counts['completed']} completed, "
        f"{counts['infeasible']} infeasible, {counts['failed']} failed) "
        f"in {time.perf_counter() - start:.0f} s"
    )
    print("Best trial per scientific value:")
    print(format_best(study))
    print(f"Study written to {os.path.join(args.directory, DEMO_PROJECT)}")
    return 0


def main(argv=None):
    """Entry point of the `kplaybook` console script."""
    args = build_parser().parse_args(argv)
    _quiet_tensorflow()
    from kplaybook.errors import StudyError

    try:
        if args.command == "demo":
            return run_demo(args)
    except StudyError as e:
        print(f"kplaybook: {e}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
