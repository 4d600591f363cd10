"""The `kplaybook` command line.

Quiet by default: TensorFlow's native log lines are filtered from stderr
(`kplaybook.native_logs`); ``--verbose`` shows them. A user error (a bad
argument, a missing or damaged study, an unwritable folder) is one line on
stderr and exit code 2.

The commands import kplaybook's modules inside their functions, on purpose:
TensorFlow is then first loaded after `main` has installed the log filter.
"""

import argparse
import contextlib
import importlib
import os
import sys
import time

from kplaybook import validation
from kplaybook.errors import StudyError
from kplaybook.native_logs import NativeLogFilter

#: What `kp.distribute.probe_batch_sizes` doubles up to by default (2 ** 16);
#: tests/test_cli.py checks that the two agree.
PROBE_MAX_BATCH_SIZE = 65536


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
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--verbose",
        action="store_true",
        help="show TensorFlow's own log messages and full tracebacks",
    )
    parser = argparse.ArgumentParser(
        prog="kplaybook",
        description="Tune Keras models the way the Deep Learning Tuning Playbook says.",
        parents=[common],
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        parents=[common],
        help="run a small kp.Playbook on scikit-learn's digits (offline), printing each decision",
        description=(
            "The playbook's incremental loop on an MLP: Adam's learning rate declared two "
            "decades too low, a depth goal (1, 2, 3 hidden layers), a dropout goal, "
            "Bayesian exploitation and 5 final seed replicates, within --max-trials "
            "trainings. Prints each decision as one line, then the final configuration; "
            "writes DIRECTORY/demo_playbook (replacing an earlier one) with playbook.html. "
            "With --study: one nested depth study (DIRECTORY/demo) instead."
        ),
    )
    demo.add_argument(
        "--study",
        action="store_true",
        help="run the single nested depth study instead of the playbook",
    )
    demo.add_argument(
        "--max-trials",
        type=_positive_int,
        default=90,
        help="the playbook's budget of trainings (default %(default)s)",
    )
    demo.add_argument(
        "--trials-per-study",
        type=_positive_int,
        default=None,
        help="trials per scientific value (default 4 per round; 12 with --study)",
    )
    demo.add_argument(
        "--epochs",
        type=_positive_int,
        default=None,
        help="epochs per training (default 3 for the playbook; 10 with --study)",
    )
    demo.add_argument("--directory", default="saved_studies")
    demo.add_argument("--seed", type=int, default=0)
    report = commands.add_parser(
        "report",
        parents=[common],
        help="check a study and write its summary (report.html, summary.md, CSV, JSON)",
        description=(
            "Runs the playbook's checks on the study in STUDY_DIR, prints the "
            "findings and writes report.html, summary.md, trials.csv, "
            "best_per_scientific.csv, findings.json, study.json and plots/*.png "
            "into --out (default: STUDY_DIR)."
        ),
    )
    report.add_argument("study_dir", metavar="STUDY_DIR")
    report.add_argument("--out", metavar="DIR", default=None)
    compare = commands.add_parser(
        "compare",
        parents=[common],
        help="compare two studies per scientific value, against seed noise",
        description=(
            "Mean ± std of each scientific value's best trial (its seed replicates "
            "when study.replicate() was run) in both studies, and whether the gap "
            "beats the noise."
        ),
    )
    compare.add_argument("dir_a", metavar="DIR_A")
    compare.add_argument("dir_b", metavar="DIR_B")
    probe = commands.add_parser(
        "probe",
        parents=[common],
        help="probe batch sizes up to the first out-of-memory error and recommend one",
        description=(
            "Builds a fresh model with BUILD_FN() (a compiled keras.Model) at each global "
            "batch size (powers of two from 8) under the default strategy (all GPUs when "
            "there are several), measures the median step time after warm-up, stops at "
            "the first out-of-memory error and prints the table and the recommended size."
        ),
    )
    probe.add_argument(
        "target", metavar="MODULE:BUILD_FN", help="e.g. my_models:build or path/to/file.py:build"
    )
    probe.add_argument("--dataset", default="digits", help='"digits" (offline) or a TFDS name')
    probe.add_argument("--max-examples", type=_positive_int, default=None)
    probe.add_argument(
        "--max-batch-size",
        type=_positive_int,
        default=PROBE_MAX_BATCH_SIZE,
        help="the largest size tried (default %(default)s; the probe stops earlier at the first OOM)",
    )
    probe.add_argument("--steps", type=_positive_int, default=20)
    probe.add_argument("--warmup-steps", type=int, default=3)
    probe.add_argument("--save", metavar="PATH", default=None, help="write the result as JSON")
    probe.add_argument("--plot", metavar="PATH", default=None, help="write the plot as PNG")
    probe.add_argument("--cache-dir", metavar="DIR", default=None)
    return parser


def run_demo(args):
    """`kplaybook demo` (the playbook) or `kplaybook demo --study` (one study)."""
    from kplaybook import demo

    validation.writable_directory(
        args.directory, "--directory", "a directory to write the study into"
    )
    if not args.study:
        return _run_playbook_demo(demo, args)
    trials_per_study = args.trials_per_study or 12
    epochs = args.epochs or 10
    print(
        f"kplaybook demo --study: depth study on digits, {trials_per_study} trials per "
        f"depth x 3 depths, {epochs} epochs each"
    )
    start = time.perf_counter()
    study = demo.run_depth_study(
        trials_per_study=trials_per_study,
        epochs=epochs,
        directory=args.directory,
        seed=args.seed,
    )
    paths = study.export()
    counts = study.status_counts()
    print(
        f"{sum(counts.values())} trials ({counts['completed']} completed, "
        f"{counts['infeasible']} infeasible, {counts['failed']} failed) "
        f"in {time.perf_counter() - start:.0f} s"
    )
    print("Best trial per scientific value:")
    print(demo.format_best(study))
    # The table alone invites a conclusion the findings may warn against.
    print("What the playbook's checks say before concluding anything:")
    print(format_findings(study.check()))
    print(f"Study written to {os.path.join(args.directory, demo.DEMO_PROJECT)}")
    print(f"Report: {paths['report.html']}")
    return 0


def _run_playbook_demo(demo, args):
    """`kplaybook demo`: a small playbook that prints each decision as one line."""
    trials_per_study = args.trials_per_study or 4
    epochs = args.epochs or 3
    if trials_per_study < 4:
        raise ValueError(
            f"--trials-per-study {trials_per_study} is too few for a playbook round; pass 4 or more."
        )
    print(
        f"kplaybook demo: the playbook's loop on digits within {args.max_trials} trainings "
        f"({epochs} epochs each to start); Adam's learning rate is declared in [1e-5, 1e-3], "
        "two decades too low; goals: depth (1, 2, 3 hidden layers), then dropout."
    )
    start = time.perf_counter()
    demo.TrainingClock.seconds = 0.0
    playbook = demo.run_playbook_demo(
        max_trials=args.max_trials,
        trials_per_study=trials_per_study,
        epochs=epochs,
        directory=args.directory,
        seed=args.seed,
    )
    result = playbook.result
    elapsed = time.perf_counter() - start
    print(
        f"{result.trials_used} trainings in {elapsed:.0f} s "
        f"({demo.TrainingClock.seconds / elapsed:.0%} of it inside model.fit)"
    )
    print(
        "Final configuration: "
        + ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in result.best_hyperparameters.items()
        )
    )
    print(
        f"Final {result.objective}: {result.best_value:.4g} ± {result.best_std:.2g} "
        f"(mean ± std over {len(result.replicates)} seeds), trained {result.settings['epochs']} "
        f"epochs at batch size {result.settings['batch_size']}"
    )
    for caveat in result.caveats:
        print(f"Caveat: {caveat}")
    print(f"Report: {os.path.join(playbook.directory, 'playbook.html')}")
    return 0


def format_findings(findings):
    """Findings as printable lines: severity, code, message, then what to do."""
    if not findings:
        return "No problem found by the playbook's checks."
    lines = []
    for finding in findings:
        lines.append(f"[{finding.severity}] {finding.code}: {finding.message}")
        lines.append(f"    -> {finding.recommendation}")
    return "\n".join(lines)


def run_report(args):
    """`kplaybook report STUDY_DIR [--out DIR]`."""
    from kplaybook.study import Study

    study = Study.load(args.study_dir)
    if args.out is not None:
        validation.writable_directory(args.out, "--out", "a directory to write the report into")
    paths = study.export(args.out)
    print(repr(study))
    for problem in study.problems:
        print(f"[problem] {problem}")
    print(format_findings(study.check()))
    print(f"Report: {paths['report.html']}")
    print(f"Summary: {paths['summary.md']}")
    return 0


def run_compare(args):
    """`kplaybook compare DIR_A DIR_B`."""
    from kplaybook.analysis.compare import compare

    print(compare(args.dir_a, args.dir_b))
    return 0


def load_target(target):
    """The function named by ``module:function`` or ``path/to/file.py:function``."""
    module_name, _, function_name = target.rpartition(":")
    given = module_name
    if not module_name or not function_name:
        raise ValueError(
            f"{target!r} is not MODULE:BUILD_FN; pass e.g. my_models:build or "
            "path/to/models.py:build."
        )
    if module_name.endswith(".py"):
        if not os.path.exists(module_name):
            raise ValueError(f"{module_name} does not exist; pass the path of a Python file.")
        # Imported by name from its folder, so a probe subprocess can import it too.
        folder, file_name = os.path.split(os.path.abspath(module_name))
        sys.path.insert(0, folder)
        module_name = file_name[: -len(".py")]
    else:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name != module_name.split(".")[0]:
            raise ValueError(f"importing {module_name!r} failed: {e}.") from None
        raise ValueError(f"cannot import {module_name!r} ({e}); run from its folder.") from None
    except Exception as e:  # noqa: BLE001 - the user's module failed while importing
        raise ValueError(f"importing {module_name!r} failed ({type(e).__name__}: {e}).") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ValueError(f"{given} has no function {function_name!r}.")
    return function


def run_probe(args):
    """`kplaybook probe MODULE:BUILD_FN`."""
    import tensorflow as tf

    from kplaybook import datasets
    from kplaybook.distribute import probe_batch_sizes

    # Every option is checked before the probe trains (minutes): a bad --save or
    # --plot found after it would throw the measurements away.
    for option, path in (("--save", args.save), ("--plot", args.plot)):
        if path is not None:
            validation.writable_file(path, option)
    if args.cache_dir is not None:
        validation.writable_directory(args.cache_dir, "--cache-dir", "a directory for the cache")
    offline = args.dataset == datasets.OFFLINE_DATASET
    if offline and args.max_examples is not None:
        raise ValueError(
            f"--max-examples applies to TFDS datasets, not to {datasets.OFFLINE_DATASET!r}; "
            "drop it or pass --dataset with a TFDS name."
        )
    build = load_target(args.target)
    try:
        (x, y), _ = datasets.load(
            args.dataset, **({} if offline else {"max_examples": args.max_examples})
        )
    except ValueError as e:
        raise ValueError(f"--dataset {args.dataset}: {e}") from None
    gpus = len(tf.config.list_physical_devices("GPU"))
    print(f"kplaybook probe: {args.target} on {args.dataset} ({gpus} GPU(s))")
    # strategy=None: all GPUs when several; on a GPU each size runs in a subprocess.
    result = probe_batch_sizes(
        build,
        (x, y),
        steps=args.steps,
        warmup_steps=args.warmup_steps,
        max_batch_size=args.max_batch_size,
        cache_dir=args.cache_dir,
    )
    print(result.summary())
    if args.save:
        print(f"Result written to {result.save(args.save)}")
    if args.plot:
        result.plot().savefig(args.plot)
        print(f"Plot written to {args.plot}")
    return 0


_COMMANDS = {"demo": run_demo, "report": run_report, "compare": run_compare, "probe": run_probe}


def main(argv=None):
    """Entry point of the `kplaybook` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    if args.verbose:
        quiet = contextlib.nullcontext()
    else:
        # Before TensorFlow is first imported (the commands import it lazily).
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        quiet = NativeLogFilter()
    with quiet:
        try:
            return _COMMANDS[args.command](args)
        except (StudyError, ValueError, TypeError) as e:
            if args.verbose:
                raise
            _error(str(e))
            return 2
        except OSError as e:
            if args.verbose:
                raise
            where = f" {e.filename}" if e.filename else ""
            _error(f"cannot write{where} ({e.strerror or e}); pass a writable directory.")
            return 2
        except KeyboardInterrupt:
            _error("interrupted; run the same command again to resume.")
            return 130
        except Exception as e:  # noqa: BLE001 - one line, not a traceback; --verbose shows it
            if args.verbose:
                raise
            first_line = (str(e).strip().splitlines() or [""])[0]
            _error(
                f"{args.command} failed ({type(e).__name__}: {first_line}); run it again "
                "with --verbose for the full traceback."
            )
            return 1


def _error(message):
    """One line on stderr: ``kplaybook: <message>``."""
    lines = message.strip().splitlines() or [""]
    print(f"kplaybook: {lines[0]}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
