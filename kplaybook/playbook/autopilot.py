"""`kp.Playbook`: the playbook's incremental tuning loop, automated, resumable and written down.

The playbook's "A scientific approach to improving model performance"
(https://github.com/google-research/tuning_playbook#a-scientific-approach-to-improving-model-performance):
pick a goal, design the round, learn from it, decide whether to adopt the
change, repeat; then exploit. `Playbook.run` does each step and records
each decision, with the finding and the numbers it rests on, in
``playbook.json`` beside the stages' studies.

Resuming: a decision is a deterministic function of the studies on disk and
of the decisions before it, and every number a later step depends on (a
round's trials, a stage's budget) is recorded when it is first chosen. A
run killed at any point and started again walks the same path: it replays
the recorded decisions, resumes the interrupted study (KerasTuner's own
resume) or replicate series, and continues; nothing is trained twice and
each decision is recorded once. A finished run started again trains nothing.
"""

import contextlib
import io
import math
import os
import re
import shutil
import tempfile
import warnings

import keras_tuner as kt
from keras_tuner.engine import hyperparameters as hp_module
from keras_tuner.src.engine import hypermodel as hm_module
from keras_tuner.src.engine import objective as obj_module

from kplaybook import validation
from kplaybook.analysis import importance
from kplaybook.callbacks import GradientClipping
from kplaybook.callbacks import Warmup
from kplaybook.callbacks._instrumentation import float_learning_rate
from kplaybook.citations import url
from kplaybook.distribute import probe_batch_sizes
from kplaybook.errors import PlaybookWarning
from kplaybook.errors import StudyError
from kplaybook.errors import TooFewTrials
from kplaybook.oracles.warm_start import WarmRecord
from kplaybook.playbook import decide
from kplaybook.playbook import report as report_module
from kplaybook.playbook.records import Decision
from kplaybook.playbook.records import Goal
from kplaybook.playbook.records import PlaybookResult
from kplaybook.records import files
from kplaybook.records import sign
from kplaybook.records.reader import StudyReader
from kplaybook.study import Study
from kplaybook.sweeps import warmup_sweep
from kplaybook.training import runner
from kplaybook.training.replicates import train_replicate
from kplaybook.tuners import PlaybookTuner

PLAYBOOK_FILE = "playbook.json"
#: Rounds of one goal at most: its first, then one per set of actions. The
#: last round only records its findings as caveats.
MAX_ROUNDS = 4
#: How often each action may be taken for one goal (widening: per hyperparameter).
MAX_REPEATS = {"widen": 2, "longer_training": 2, "shorter_training": 1, "more_trials": 2}
#: A round needs at least this many trials per scientific value to be worth running.
MIN_TRIALS_PER_ROUND = 4
#: Exploitation runs only with at least this many trainings left for it.
MIN_EXPLOIT_TRIALS = 6
#: Warmup lengths the warmup sweep tries (those within 10% of the training run).
WARMUP_CANDIDATES = (10, 30, 100, 300, 1000, 3000, 10000)
#: The batch-size probe stops at the largest power of two giving at least
#: this many steps per epoch (a batch of the whole dataset measures nothing).
MIN_STEPS_PER_EPOCH = 8
#: Seeds of the judging and the final replicates (apart from the search's).
JUDGE_SEED = 1000
FINAL_SEED = 2000
#: How a learning-rate hyperparameter is recognised by name.
LEARNING_RATE_NAME = re.compile(r"(^|[/_])(lr|learning_rate)$")
EXPLOIT_STUDY = "exploit"
#: Exploitation's share of the budget, in scientific values: each goal gets
#: what is left times its number of values over the values still to study
#: plus this (exploration comes first; exploitation also gets what the goals
#: leave unspent).
EXPLOIT_WEIGHT = 1


class Playbook:
    """Runs the playbook's incremental tuning loop on a Keras model, deciding each step from a finding.

    Each goal is a round of experiments: a nested study (`kp.PlaybookTuner`)
    of the goal's scientific values, the values adopted by earlier goals
    fixed, every other hyperparameter nuisance. Before judging the goal it
    acts on the round's findings (`study.check()`), each action a recorded
    `kp.Decision`, each bounded in repeats:

    - ``boundary``: widen the range past the edge (a decade on log scales,
      half the width on linear ones, within the valid domain), through the
      oracle (`hyperparameters=`), not by editing `build(hp)`;
    - instability (``infeasible_fraction`` with every trial above some
      learning rate diverged): the playbook's remedies in order, a warmup
      found with `kp.warmup_sweep`, then gradient clipping at the 90th
      percentile, then capping the range below the edge; a remedy is part of
      every later trial;
    - ``sampling_density``: more trials per scientific value;
    - ``best_step_late``/``still_improving``: twice the epochs (up to
      `max_epochs`); ``best_step_early``/``saturated``: half;
    - ``overfitting``, ``late_variance`` and a few more: caveats.

    Then it replicates each value's best trial with new seeds and adopts a
    value only when it beats the baseline by more than the seed noise
    (`kp.compare`'s rule), else keeps the baseline; the kept value is fixed
    for later goals. When the goals are done it exploits: fixes the nuisance
    hyperparameters that barely matter, narrows the rest around the good
    region, and runs the feasibility-aware Bayesian search warm-started from
    the trials of the final configuration already paid for. Finally it
    replicates the best configuration (`final_seeds` seeds) and reports mean
    ± std. Every model training (study trials, replicates, sweep and probe
    runs) counts towards `max_trials`; when the next stage cannot be paid for
    it stops, and the last decision says so.

    See "A scientific approach to improving model performance",
    https://github.com/google-research/tuning_playbook#a-scientific-approach-to-improving-model-performance.

    Args:
        hypermodel: `keras_tuner.HyperModel` or `build(hp)`, declaring the whole space.
        objective: str or `keras_tuner.Objective`.
        goals: list of `kp.Goal`, the experiments in order.
        max_trials: int, every model training of every stage.
        trials_per_study: int, nuisance trials per scientific value in a round.
        seed: int, the seed of every study.
        directory, project_name: where the run is written
            (``directory/project_name/playbook.json`` and one folder per study).
        overwrite: bool, start over instead of resuming.
        replicate_seeds: int >= 2, seeds per value when judging a goal.
        final_seeds: int, seeds of the final configuration's replicates.
        learning_rate: name of the learning-rate hyperparameter, which the
            instability remedies act on (default: the one hyperparameter
            named ``learning_rate``, ``lr`` or ending in ``_learning_rate``).

    Example:

    ```python
    playbook = kp.Playbook(
        build, objective="val_loss",
        goals=[kp.Goal("depth", scientific={"num_layers": [1, 2, 3]}),
               kp.Goal("dropout", scientific={"use_dropout": [False, True]}, baseline=False)],
        max_trials=200, trials_per_study=12, seed=0,
        directory="saved_studies", project_name="digits_playbook")
    result = playbook.run(x, y, validation_data=(xv, yv), epochs=10, batch_size=64)
    print(result.summary())
    playbook.report()          # saved_studies/digits_playbook/playbook.html
    ```
    """

    def __init__(
        self,
        hypermodel,
        objective="val_loss",
        goals=(),
        max_trials=200,
        trials_per_study=12,
        seed=0,
        directory="saved_studies",
        project_name="playbook",
        overwrite=False,
        replicate_seeds=3,
        final_seeds=5,
        learning_rate=None,
    ):
        if hypermodel is None:
            raise ValueError(
                "hypermodel is None; pass a keras_tuner.HyperModel or a build(hp) function."
            )
        self.hypermodel = hm_module.get_hypermodel(hypermodel)
        objective = obj_module.create_objective(objective)
        if not isinstance(objective, obj_module.Objective) or isinstance(
            objective, obj_module.MultiObjective
        ):
            raise ValueError(
                "objective must be one metric name or a keras_tuner.Objective: the playbook "
                "compares configurations on one number."
            )
        self.objective, self.direction = objective.name, objective.direction
        if goals is None or isinstance(goals, (str, bytes, Goal)):
            raise TypeError(f"goals must be a list of kp.Goal, got {goals!r}.")
        goals = list(goals)
        if not goals:
            raise ValueError("goals is empty; pass at least one kp.Goal(name, scientific=...).")
        for goal in goals:
            if not isinstance(goal, Goal):
                raise TypeError(f"goals must be kp.Goal objects, got {goal!r}.")
        names = [g.name for g in goals]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"Two goals are named {repeated[0]!r}; give each goal its own name.")
        self.goals = goals
        self.max_trials = validation.positive_int(max_trials, "max_trials")
        self.trials_per_study = validation.integer(
            trials_per_study, "trials_per_study", minimum=MIN_TRIALS_PER_ROUND
        )
        self.seed = validation.seed(seed, "seed")
        self.replicate_seeds = validation.integer(replicate_seeds, "replicate_seeds", minimum=2)
        self.final_seeds = validation.positive_int(final_seeds, "final_seeds")
        if learning_rate is not None and not isinstance(learning_rate, str):
            raise TypeError(
                f"learning_rate must be a hyperparameter's name, got {learning_rate!r}."
            )
        self.learning_rate = learning_rate
        needed = minimum_budget(goals, self.replicate_seeds, self.final_seeds)
        if self.max_trials < needed:
            raise ValueError(
                f"max_trials={self.max_trials} cannot pay for one round of each goal "
                f"({MIN_TRIALS_PER_ROUND} trials per value), its replicates and the "
                f"{self.final_seeds} final replicates; pass max_trials >= {needed}."
            )
        self.directory = os.path.join(
            validation.path(directory, "directory"), validation.path(project_name, "project_name")
        )
        overwrite = validation.boolean(overwrite, "overwrite")
        if overwrite and os.path.exists(self.directory):
            shutil.rmtree(self.directory)
        self.result = None
        self.verbose = False
        self._state = None
        if os.path.exists(self.path):
            self._state = files.read_json(
                self.path, "restore it, or start over with overwrite=True"
            )
            if self._state.get("result"):
                self.result = PlaybookResult.from_json(self._state["result"])

    # -- files -----------------------------------------------------------------

    @property
    def path(self):
        """The run's record, ``directory/project_name/playbook.json``."""
        return os.path.join(self.directory, PLAYBOOK_FILE)

    @property
    def decisions(self):
        """The decisions recorded so far (list of `kp.Decision`)."""
        return [Decision.from_json(d) for d in (self._state or {}).get("decisions", [])]

    def _config(self, fit_signature):
        return files.json_safe(
            {
                "objective": [self.objective, self.direction],
                "goals": [g.to_json() for g in self.goals],
                "max_trials": self.max_trials,
                "trials_per_study": self.trials_per_study,
                "seed": self.seed,
                "replicate_seeds": self.replicate_seeds,
                "final_seeds": self.final_seeds,
                "learning_rate": self.learning_rate,
                "fit": fit_signature,
            }
        )

    def _open(self, config):
        os.makedirs(self.directory, exist_ok=True)
        if self._state is None:
            self._state = {
                "format": 1,
                "config": config,
                "decisions": [],
                "plans": {},
                "spent": {},
                "settings": {},
                "final_runs": [],
                "result": None,
            }
            self._save()
            return
        saved = self._state.get("config", {})
        if saved != config:
            differing = sorted(k for k in set(saved) | set(config) if saved.get(k) != config.get(k))
            raise StudyError(
                f"The playbook in {self.directory} was run with other settings "
                f"({', '.join(differing)}); pass the same arguments to resume it, or use another "
                "project_name, or overwrite=True to start over."
            )

    def _save(self):
        files.write_json(self.path, files.json_safe(self._state), indent=1)

    def _plan(self, key, value):
        """A number the run depends on: `value` the first time, the recorded one on resume."""
        plans = self._state["plans"]
        if key not in plans:
            plans[key] = value
            self._save()
        return plans[key]

    # -- decisions, replayed on resume ------------------------------------------

    def _recorded(self, key):
        for data in self._state["decisions"]:
            if data["key"] == key:
                return Decision.from_json(data)
        return None

    def _decide(self, decision):
        """Records `decision` (once: on resume the recorded one is returned instead)."""
        recorded = self._recorded(decision.key)
        if recorded is not None:
            return recorded
        self._state["decisions"].append(decision.to_json())
        self._save()
        if self.verbose:
            print(decision.line(), flush=True)
        return decision

    # -- budget ---------------------------------------------------------------

    def trials_used(self):
        """Model trainings recorded so far: every study's trials and replicates, sweeps, probe, final runs."""
        if self._state is None:
            return 0
        used = 0
        for name in self._state["settings"]:
            path = os.path.join(self.directory, name)
            if os.path.exists(os.path.join(path, "oracle.json")):
                reader = StudyReader.load(path)
                used += len(reader.trial_ids) + len(reader.replicate_runs())
        used += sum(self._state["spent"].values())
        used += len(self._state["final_runs"])
        return used

    def _left(self):
        """Trainings left before the final replicates' share."""
        return self.max_trials - self.trials_used() - self.final_seeds

    # -- the run ------------------------------------------------------------------

    @runner.collections_of_new_objects_only()
    def run(
        self,
        x=None,
        y=None,
        *,
        validation_data=None,
        epochs=10,
        batch_size=None,
        callbacks=None,
        max_epochs=None,
        verbose=True,
        **fit_kwargs,
    ):
        """Runs (or resumes) the playbook; returns a `kp.PlaybookResult`.

        Args:
            x, y, validation_data, **fit_kwargs: passed to every training, as
                to `model.fit`.
            epochs: int, the first round's training length.
            batch_size: int; None probes the baseline configuration with
                `kp.distribute.probe_batch_sizes` and fixes the recommended size.
            callbacks: list of Keras callbacks added to every training.
            max_epochs: the longest training `longer_training` may reach
                (default 4 x `epochs`).
            verbose: print each decision as one line when it is taken.

        Returns:
            `kp.PlaybookResult` (also `playbook.result`); ``playbook.html`` is
            written beside ``playbook.json``.

        Raises:
            StudyError: the run in `directory/project_name` used other settings.
            ValueError: a goal names a hyperparameter no code declares
                (before any training), or an instability remedy needs the
                learning rate and none can be found.
        """
        if self.hypermodel is None:
            raise ValueError(
                "This playbook was read back with kp.Playbook.load, without its model; construct "
                "kp.Playbook(hypermodel, ...) with the same arguments to resume or rerun it."
            )
        epochs = validation.positive_int(epochs, "epochs")
        max_epochs = validation.positive_int(
            max_epochs if max_epochs is not None else 4 * epochs, "max_epochs"
        )
        if max_epochs < epochs:
            raise ValueError(
                f"max_epochs={max_epochs} is below epochs={epochs}; pass max_epochs >= epochs."
            )
        if batch_size is not None:
            batch_size = validation.positive_int(batch_size, "batch_size")
        elif not hasattr(x, "__len__") or y is None:
            raise ValueError(
                "batch_size=None asks the probe to choose it, which needs x and y as arrays; pass "
                "batch_size= (the playbook fixes the batch size, it never tunes it)."
            )
        if callbacks is not None and not isinstance(callbacks, (list, tuple)):
            raise TypeError(f"callbacks must be a list of Keras callbacks, got {callbacks!r}.")
        self.verbose = validation.boolean(verbose, "verbose")
        self._fit = dict(fit_kwargs, x=x, y=y, validation_data=validation_data)
        self._callbacks = list(callbacks or [])
        declared = self._check_goals()
        self._open(
            self._config({"epochs": epochs, "batch_size": batch_size, "max_epochs": max_epochs})
        )
        self._declared = declared
        run = _RunState(epochs=epochs, max_epochs=max_epochs, batch_size=batch_size)
        if run.batch_size is None:
            self._probe(run, x)
        stopped = None
        for index, goal in enumerate(self.goals):
            stopped = self._goal(index, goal, run)
            if stopped is not None:
                break
        if stopped is None:
            self._exploit(run)
        self.result = self._final(run)
        self._state["result"] = self.result.to_json()
        self._save()
        self.report()
        return self.result

    def _check_goals(self):
        """Every goal's names are declared by build(hp) or HyperModel.fit: checked before any training."""
        with tempfile.TemporaryDirectory() as scratch:
            tuner = PlaybookTuner(
                self.hypermodel,
                objective=kt.Objective(self.objective, self.direction),
                scientific={},
                trials_per_study=1,
                directory=scratch,
                project_name="space",
            )
            kwargs = {k: v for k, v in self._fit.items() if v is not None}
            tuner.discover_space(**kwargs)
            space = {hp.name: hp for hp in tuner.oracle.get_space().space}
        for goal in self.goals:
            for name in list(goal.scientific) + list(goal.fixed or {}):
                if name not in space:
                    raise ValueError(
                        f"Goal {goal.name!r} names {name!r}, which build(hp) and HyperModel.fit do "
                        f"not declare (declared: {sorted(space)}); fix the name or declare it."
                    )
        if self.learning_rate is not None and self.learning_rate not in space:
            raise ValueError(
                f"learning_rate={self.learning_rate!r} is not a declared hyperparameter (declared: "
                f"{sorted(space)}); pass the name build(hp) gives the learning rate."
            )
        return space

    # -- stage 0: the batch size ---------------------------------------------------

    def _probe(self, run, x):
        key = "setup/batch_size"
        decision = self._recorded(key)
        if decision is None:
            hp = kt.HyperParameters()
            for goal in self.goals:
                for name, value in goal.baseline_values().items():
                    hp.Fixed(name, value)

            def build():
                return self.hypermodel.build(hp.copy())

            n = len(x) if hasattr(x, "__len__") else None
            cap = 8
            while n is not None and cap * 2 * MIN_STEPS_PER_EPOCH <= n:
                cap *= 2
            result = probe_batch_sizes(build, (x, self._fit.get("y")), max_batch_size=max(cap, 8))
            self._state["spent"][key] = len(result.rows)
            decision = Decision(
                "setup",
                "batch_size",
                f"The probe recommends batch size {result.recommended}, the largest that still "
                "raised throughput; it is fixed for every stage (the playbook never tunes it).",
                {
                    "recommended": result.recommended,
                    "max_feasible": result.max_feasible,
                    "table": result.to_dataframe().to_dict("records"),
                    "trainings": len(result.rows),
                    "reference": url("batch_size"),
                },
                None,
                key,
                {"batch_size": result.recommended},
            )
        decision = self._decide(decision)
        run.apply(decision.changes)

    # -- stages 1-3: a goal ---------------------------------------------------------

    def _goal(self, index, goal, run):
        """Runs a goal's rounds, acts on their findings and judges it; a stop decision if the budget ran out."""
        stage = f"goal:{goal.name}"
        cells = _cell_count(goal)
        counts = {}
        caveats = []
        study_round, trials_per_value, study, settings = 0, self.trials_per_study, None, None
        for round_ in range(MAX_ROUNDS):
            key = f"{stage}/round:{round_}"
            name = f"{index + 1:02d}_{goal.name}_r{study_round}"
            already = (
                len(StudyReader.load(os.path.join(self.directory, name)).trial_ids)
                if (study is not None and study.name == name)
                else 0
            )
            tps = self._plan(
                f"{key}/trials_per_value",
                min(trials_per_value, (self._goal_budget(index) + already) // cells),
            )
            if tps < MIN_TRIALS_PER_ROUND or (
                study is not None and study.name == name and tps <= study.config["trials_per_study"]
            ):
                if study is None:
                    return self._decide(
                        Decision(
                            stage,
                            "stop_budget",
                            f"{max(self._left(), 0)} trainings are left: too few for a round of goal "
                            f"{goal.name!r} ({cells} values x {MIN_TRIALS_PER_ROUND} trials) and its "
                            "replicates.",
                            {"trials_used": self.trials_used(), "max_trials": self.max_trials},
                            None,
                            key,
                        )
                    )
                caveats.append(
                    f"The budget left no room to act on the findings of round {round_ - 1}."
                )
                break
            settings = run.settings()
            study = self._search(self._tuner(goal, name, run, tps), settings)
            findings = study.check()
            if round_ == MAX_ROUNDS - 1:
                caveats.extend(decide.caveats(findings, all_codes=True))
                break
            actions = self._round_actions(stage, key, study, findings, run, counts, goal)
            if not actions:
                caveats.extend(decide.caveats(findings))
                break
            for decision in actions:
                run.apply(decision.changes)
            if [d.action for d in actions] == ["more_trials"]:
                # More trials in the same study (its quasi-random sequence continues).
                trials_per_value = actions[0].changes["trials_per_study"]
            else:
                study_round += 1
                trials_per_value = self.trials_per_study
        return self._judge(stage, goal, study, settings, run, caveats)

    def _goal_budget(self, index):
        """Trainings goal `index`'s next round may spend, replicates excluded.

        Each goal gets a share of what is left when it starts, in proportion
        to its number of values, beside one more goal-sized share kept for
        exploitation; it is never less than the smallest round and its
        replicates, and never leaves the later goals less than theirs.
        """
        goal = self.goals[index]
        stage = f"goal:{goal.name}"
        later = self.goals[index + 1 :]
        later_minimum = minimum_budget(later, self.replicate_seeds, 0)
        key = f"{stage}/budget"
        if key not in self._state["plans"]:
            left = self._left()
            weights = [_cell_count(g) for g in self.goals[index:]]
            share = left * weights[0] // (sum(weights) + EXPLOIT_WEIGHT)
            minimum = minimum_budget([goal], self.replicate_seeds, 0)
            share = max(share, min(minimum, left - later_minimum), 0)
            self._plan(key, {"share": share, "used_before": self.trials_used()})
        start = self._state["plans"][key]
        spent = self.trials_used() - start["used_before"]
        remaining = min(start["share"] - spent, self._left() - later_minimum)
        return remaining - _cell_count(goal) * self.replicate_seeds

    def _exploit_tuner(self, run, trials, warm):
        """The exploitation study: the Bayesian search over what is left nuisance."""
        return _quietly(
            PlaybookTuner,
            self.hypermodel,
            objective=kt.Objective(self.objective, self.direction),
            scientific={},
            fixed={**run.adopted, **run.fixed},
            trials_per_study=trials,
            search="bayesian",
            num_initial_points=max(2, min(6, trials // 3)),
            warm_start=warm or None,
            seed=self.seed,
            directory=self.directory,
            project_name=EXPLOIT_STUDY,
            hyperparameters=self._overrides(run),
            goal="kp.Playbook exploitation: feasibility-aware Bayesian search",
        )

    def _tuner(self, goal, name, run, trials_per_study, **extra):
        fixed = {**run.adopted, **(goal.fixed or {})}
        for scientific in goal.scientific:
            fixed.pop(scientific, None)
        return _quietly(
            PlaybookTuner,
            self.hypermodel,
            objective=kt.Objective(self.objective, self.direction),
            scientific={k: list(v) for k, v in goal.scientific.items()},
            fixed=fixed,
            trials_per_study=trials_per_study,
            seed=self.seed,
            directory=self.directory,
            project_name=name,
            hyperparameters=self._overrides(run),
            goal=f"kp.Playbook goal {goal.name!r}",
            **extra,
        )

    def _overrides(self, run):
        """The ranges the run changed, as KerasTuner's pre-registered `hyperparameters=`."""
        if not run.ranges:
            return None
        hp = kt.HyperParameters()
        for name, (low, high) in sorted(run.ranges.items()):
            declared = self._declared.get(name)
            sampling = getattr(declared, "sampling", None) or "linear"
            if isinstance(declared, hp_module.Int):
                hp.Int(name, int(low), int(high), step=declared.step, sampling=sampling)
            else:
                hp.Float(name, float(low), float(high), sampling=sampling)
        return hp

    def _fit_kwargs(self, settings):
        """What every training of a stage gets: the user's fit arguments, its length and remedies."""
        kwargs = {k: v for k, v in self._fit.items() if v is not None}
        remedies = []
        if settings["warmup_steps"]:
            remedies.append(Warmup(settings["warmup_steps"]))
        if settings["clipping"]:
            remedies.append(GradientClipping(percentile=90))
        kwargs.update(
            epochs=settings["epochs"],
            batch_size=settings["batch_size"],
            verbose=0,
            callbacks=[*self._callbacks, *remedies],
        )
        return kwargs

    def _search(self, tuner, settings):
        """Runs (or resumes) a study with the stage's settings; returns its `kp.Study`."""
        name = os.path.basename(tuner.project_dir)
        if self._state["settings"].get(name) != settings:
            self._state["settings"][name] = settings
            self._save()
        tuner.search(**self._fit_kwargs(settings))
        return tuner.study()

    def _round_actions(self, stage, key, study, findings, run, counts, goal):
        """The decisions that act on a round's findings, before the goal is judged."""
        decisions = []
        best = study.best_trial_id()
        best_objective = study.trial(best).score if best is not None else None
        instability = decide.instability_edge(findings)
        if instability is not None:
            decisions.extend(self._remedy(stage, key, study, instability, run, counts))
        for hp, edge, evidence in decide.boundary_edges(findings, study.hyperparameters, best):
            if hp.name in goal.scientific or (edge == "high" and hp.name in run.capped):
                continue
            if counts.get(("widen", hp.name), 0) >= MAX_REPEATS["widen"]:
                continue
            new = decide.widened(hp, edge)
            if new is None:
                continue
            counts[("widen", hp.name)] = counts.get(("widen", hp.name), 0) + 1
            decisions.append(
                Decision(
                    stage,
                    "widen",
                    f"The best trials sit at the {edge} edge of {hp.name}'s range "
                    f"[{_fmt(hp.min_value)}, {_fmt(hp.max_value)}]: widen it to "
                    f"[{_fmt(new[0])}, {_fmt(new[1])}] and run the round again.",
                    {
                        "finding": "boundary",
                        "best_objective": best_objective,
                        **evidence,
                        "range": [hp.min_value, hp.max_value],
                        "new_range": new,
                        "reference": url("search_space_boundaries"),
                    },
                    study.directory,
                    f"{key}/widen:{hp.name}",
                    {"ranges": {hp.name: new}},
                )
            )
        length = decide.training_length(findings)
        codes = (
            [f.code for f in findings if f.code in decide.LENGTH_CODES[length]] if length else []
        )
        if length == "longer" and counts.get("longer_training", 0) < MAX_REPEATS["longer_training"]:
            epochs = min(run.epochs * 2, run.max_epochs)
            if epochs > run.epochs:
                counts["longer_training"] = counts.get("longer_training", 0) + 1
                decisions.append(
                    Decision(
                        stage,
                        "longer_training",
                        f"The best trials were still improving at the end of {run.epochs} epochs "
                        f"({', '.join(codes)}): train {epochs} epochs.",
                        {
                            "findings": codes,
                            "epochs": run.epochs,
                            "new_epochs": epochs,
                            "best_objective": best_objective,
                            "reference": url("how_long_to_train"),
                        },
                        study.directory,
                        f"{key}/epochs",
                        {"epochs": epochs},
                    )
                )
        elif (
            length == "shorter"
            and counts.get("shorter_training", 0) < MAX_REPEATS["shorter_training"]
        ):
            epochs = max(1, run.epochs // 2)
            if epochs < run.epochs:
                counts["shorter_training"] = counts.get("shorter_training", 0) + 1
                decisions.append(
                    Decision(
                        stage,
                        "shorter_training",
                        f"The best trials stopped improving early in {run.epochs} epochs "
                        f"({', '.join(codes)}): train {epochs} epochs.",
                        {
                            "findings": codes,
                            "epochs": run.epochs,
                            "new_epochs": epochs,
                            "best_objective": best_objective,
                            "reference": url("how_long_to_train"),
                        },
                        study.directory,
                        f"{key}/epochs",
                        {"epochs": epochs},
                    )
                )
        sparse = [f for f in findings if f.code == "sampling_density"]
        if sparse and not decisions and counts.get("more_trials", 0) < MAX_REPEATS["more_trials"]:
            counts["more_trials"] = counts.get("more_trials", 0) + 1
            current = study.config["trials_per_study"]
            tps = current + max(2, self.trials_per_study // 2)
            decisions.append(
                Decision(
                    stage,
                    "more_trials",
                    f"{sparse[0].message.rstrip('.')}: run {tps} trials per value instead of {current}.",
                    {
                        "finding": "sampling_density",
                        "trials_per_study": current,
                        "new_trials_per_study": tps,
                        "best_objective": best_objective,
                        **sparse[0].evidence,
                        "reference": url("sampling_enough"),
                    },
                    study.directory,
                    f"{key}/more_trials",
                    {"trials_per_study": tps},
                )
            )
        return [self._decide(d) for d in decisions]

    # -- instability ------------------------------------------------------------

    def _learning_rate_name(self, name, threshold):
        """The learning-rate hyperparameter, which the warmup remedy acts on."""
        if self.learning_rate is not None:
            return self.learning_rate
        found = sorted(n for n in self._declared if LEARNING_RATE_NAME.search(n))
        if len(found) == 1:
            return found[0]
        raise ValueError(
            f"Trials diverge above {name}={threshold:.4g} and the playbook's remedies act on the "
            f"learning rate, but {'no' if not found else 'more than one'} declared hyperparameter "
            f"is named like one ({found or sorted(self._declared)}); pass "
            "kp.Playbook(..., learning_rate='<its name>')."
        )

    def _remedy(self, stage, key, study, instability, run, counts):
        """The playbook's instability remedies in order: warmup, clipping, then capping the range."""
        name, threshold, evidence = instability
        learning_rate = self._learning_rate_name(name, threshold)
        hp = next((h for h in study.hyperparameters if h.name == name), None)
        best = study.best_trial_id()
        base = {
            "finding": "infeasible_fraction",
            "hyperparameter": name,
            "threshold": threshold,
            "best_objective": study.trial(best).score if best is not None else None,
            "infeasible": evidence.get("infeasible"),
            "fraction": evidence.get("fraction"),
        }
        above = f"every trial with {name} >= {threshold:.4g} diverged"
        if not counts.get("warmup") and not run.warmup_steps and not run.clipping:
            counts["warmup"] = 1
            recorded = self._recorded(f"{key}/remedy")
            if recorded is not None:
                return [recorded]
            if name == learning_rate:
                found = self._warmup_sweep(study, threshold, run, f"{key}/remedy")
            else:
                found = {
                    "warmup": None,
                    "trainings": 0,
                    "why": f"the edge is on {name}, not on the learning rate {learning_rate}",
                }
            if found["warmup"]:
                return [
                    Decision(
                        stage,
                        "warmup",
                        f"In round {key.rsplit(':', 1)[1]} {above}; a warmup of {found['warmup']} steps "
                        f"makes {learning_rate}={threshold:.4g} train stably (kp.warmup_sweep), so every "
                        "later trial warms up.",
                        {**base, **found, "reference": url("warmup")},
                        study.directory,
                        f"{key}/remedy",
                        {"warmup_steps": found["warmup"]},
                    )
                ]
            counts["clipping"] = 1
            return [
                Decision(
                    stage,
                    "clipping",
                    f"{above.capitalize()} and no warmup made it stable ({found['why']}): clip "
                    "gradients at the 90th percentile of their norms in every later trial.",
                    {**base, **found, "reference": url("gradient_clipping")},
                    study.directory,
                    f"{key}/remedy",
                    {"clipping": True},
                )
            ]
        if not counts.get("clipping") and not run.clipping:
            counts["clipping"] = 1
            return [
                self._decide(
                    Decision(
                        stage,
                        "clipping",
                        f"With a warmup {above} still: clip gradients at the 90th percentile of their "
                        "norms in every later trial.",
                        {**base, "reference": url("gradient_clipping")},
                        study.directory,
                        f"{key}/clipping",
                        {"clipping": True},
                    )
                )
            ]
        if not counts.get("narrow") and hp is not None:
            counts["narrow"] = 1
            new = decide.capped(hp, threshold)
            if new is not None:
                return [
                    Decision(
                        stage,
                        "narrow",
                        f"With the remedies {above} still: cap {name}'s range at {_fmt(new[1])}, "
                        "below the edge (the playbook's last resort).",
                        {
                            **base,
                            "range": [hp.min_value, hp.max_value],
                            "new_range": new,
                            "reference": url("instability_fixes"),
                        },
                        study.directory,
                        f"{key}/narrow",
                        {"ranges": {name: new}, "capped": [name]},
                    )
                ]
        return []

    def _warmup_sweep(self, study, threshold, run, key):
        """The shortest warmup that makes `threshold` stable for the round's best configuration."""
        best = study.best_trial_id()
        hp = hp_module.HyperParameters.from_config(study.space_config)
        if best is not None:
            hp.values = dict(study.trial(best).values)
        probe = self.hypermodel.build(hp.copy())
        runner.fresh_session()
        if float_learning_rate(getattr(probe, "optimizer", None)) is None:
            return {
                "warmup": None,
                "trainings": 0,
                "why": "the optimizer has a learning-rate schedule, which a warmup callback "
                "cannot ramp",
            }
        x = self._fit.get("x")
        if not hasattr(x, "__len__"):
            return {
                "warmup": None,
                "trainings": 0,
                "why": "the sweep needs x as arrays to count the training steps",
            }
        max_steps = run.epochs * max(1, math.ceil(len(x) / run.batch_size))
        warmups = [w for w in WARMUP_CANDIDATES if w <= 0.1 * max_steps]
        if not warmups:
            return {
                "warmup": None,
                "trainings": 0,
                "why": f"training is only {max_steps} steps long",
            }
        cost = len(warmups) + 1
        if cost > self._left():
            return {
                "warmup": None,
                "trainings": 0,
                "why": f"the budget cannot pay for its {cost} runs",
            }
        self._state["spent"][key] = cost
        self._save()

        def build():
            runner.fresh_session()
            return self.hypermodel.build(hp.copy())

        result = warmup_sweep(
            build,
            (x, self._fit.get("y")),
            threshold,
            warmups,
            max_steps,
            batch_size=run.batch_size,
            seed=self.seed,
        )
        return {
            "warmup": result.shortest_stable_warmup,
            "trainings": cost,
            "warmups_tried": [0, *warmups],
            "why": " ".join(result.notes) or "no warmup tried was stable",
        }

    # -- judging a goal ------------------------------------------------------------

    def _judge(self, stage, goal, study, settings, run, caveats):
        """Replicates each value's best trial and adopts a value only when it beats the seed noise."""
        key = f"{stage}/judge"
        decision = self._recorded(key)
        cells = study.cells
        baseline = goal.baseline_values()
        if decision is None:
            seeds = [JUDGE_SEED + k for k in range(self.replicate_seeds)]
            missing = sum(bool(study.ranked(i)) for i in range(len(cells))) * len(seeds) - len(
                study.replicate_runs()
            )
            affordable = missing <= self.max_trials - self.trials_used() - self.final_seeds
            if affordable:
                kwargs = self._fit_kwargs(settings)
                study.use_training(self.hypermodel, (), kwargs)
                study.replicate(top_k=1, seeds=seeds)
            runs = study.replicates()
            replicates = {}
            for i in range(len(cells)):
                ranked = study.ranked(i)
                rows = (
                    runs[(runs["cell"] == i) & (runs["trial_id"] == ranked[0])]
                    if ranked
                    else runs[:0]
                )
                replicates[i] = [v if math.isfinite(v) else None for v in rows["objective"]]
            base = cells.index(baseline)
            pairs = {
                i: decide.paired_objectives(study, base, i) for i in range(len(cells)) if i != base
            }
            chosen, evidence = decide.adoption(cells, replicates, baseline, study.direction, pairs)
            if not affordable:
                evidence["why"] = (
                    "the budget could not pay for the replicates that measure the seed noise"
                )
            best = study.best_trial_id()
            evidence.update(
                best_objective=study.trial(best).score if best is not None else None,
                caveats=[f"Goal {goal.name!r}: {c}" for c in caveats],
                reference=url("adopting_change"),
                trainings=len(seeds) * len(cells),
            )
            value = cells[chosen]
            label, base_label = _label(value), _label(baseline)
            if value != baseline:
                gap = evidence["gaps"][str(chosen)]
                paired = (
                    f", and it did better on {gap['paired']['pairs']} paired nuisance points "
                    f"by {gap['paired']['mean_gain']:.3g} on average"
                    if "paired" in gap
                    else ""
                )
                decision = Decision(
                    stage,
                    "adopt",
                    f"Adopt {label}: its {self.replicate_seeds} replicates beat the baseline "
                    f"{base_label} by {gap['gain']:.4g} {self.objective}, more than "
                    f"{decide.NOISE_SIGMAS:g}x the seed noise ({gap['noise']:.3g}){paired}.",
                    evidence,
                    study.directory,
                    key,
                    {"adopted": value},
                )
            else:
                why = evidence.get("why") or (
                    "no value beats it by more than the noise (the seed noise of the replicates "
                    "and, across paired nuisance points, the noise of the search)"
                )
                decision = Decision(
                    stage,
                    "keep_baseline",
                    f"Keep the baseline {base_label}: {why}.",
                    evidence,
                    study.directory,
                    key,
                    {"adopted": value},
                )
        decision = self._decide(decision)
        run.apply(decision.changes)
        run.last_study, run.last_cell = study.name, cells.index(decision.changes["adopted"])
        return None

    # -- stage 4: exploit ------------------------------------------------------------

    def _exploit(self, run):
        stage = "exploit"
        study = Study.load(os.path.join(self.directory, run.last_study))
        exploit_dir = os.path.join(self.directory, EXPLOIT_STUDY)
        already = (
            len(StudyReader.load(exploit_dir).trial_ids)
            if os.path.exists(os.path.join(exploit_dir, "oracle.json"))
            else 0
        )
        trials = self._plan(f"{stage}/trials", self._left() + already)
        if trials < MIN_EXPLOIT_TRIALS:
            self._decide(
                Decision(
                    stage,
                    "stop_budget",
                    f"{max(trials, 0)} trainings are left after the goals and the {self.final_seeds} "
                    f"final replicates: too few to exploit (at least {MIN_EXPLOIT_TRIALS}).",
                    {"trials_used": self.trials_used(), "max_trials": self.max_trials},
                    None,
                    f"{stage}/budget",
                )
            )
            return
        cell = study.cells[run.last_cell]
        try:
            results = importance.importance_data(study, by_scientific=bool(study.scientific))
            results = (
                [r for r in results if r.label == _label(cell)] if study.scientific else results
            )
        except TooFewTrials:
            results = None
        fixed, ranges, evidence = decide.exploit_plan(
            study, run.last_cell, results or None, study.hyperparameters, run.ranges
        )
        if fixed:
            decision = self._decide(
                Decision(
                    stage,
                    "fix_nuisance",
                    "Fix "
                    + ", ".join(f"{k}={_fmt(v)}" for k, v in fixed.items())
                    + f" at the best trial's value: each explains under {decide.INSENSITIVE_SHARE:.0%} "
                    "of the objective's variance (upper end of its importance interval), so the "
                    "search spends its trials on the rest.",
                    {**evidence, "fixed": fixed, "reference": url("exploration_vs_exploitation")},
                    study.directory,
                    f"{stage}/fix",
                    {"fixed": fixed},
                )
            )
            run.apply(decision.changes)
        ranges = {k: v for k, v in ranges.items() if k not in run.fixed}
        if ranges:
            decision = self._decide(
                Decision(
                    stage,
                    "narrow",
                    "Narrow "
                    + ", ".join(f"{k} to [{_fmt(a)}, {_fmt(b)}]" for k, (a, b) in ranges.items())
                    + f", the span of the best {len(evidence['top_trials'])} trials with a margin, "
                    "for the Bayesian search.",
                    {**evidence, "ranges": ranges, "reference": url("bayesian_optimization")},
                    study.directory,
                    f"{stage}/narrow",
                    {"ranges": ranges},
                )
            )
            run.apply(decision.changes)
        settings = run.settings()
        warm = self._warm_records(run, settings)
        with warnings.catch_warnings():
            # Fixing optimizer hyperparameters here is the playbook's own
            # exploitation decision (`fix_nuisance`, recorded with its
            # evidence), not the user's role mistake the warning is for.
            warnings.filterwarnings(
                "ignore", message=".* is an optimizer hyperparameter made", category=PlaybookWarning
            )
            tuner = self._exploit_tuner(run, trials, warm)
        exploit = self._search(tuner, settings)
        best = exploit.best_trial_id()
        previous = study.ranked(run.last_cell)
        self._decide(
            Decision(
                stage,
                "exploit",
                f"Ran the feasibility-aware Bayesian search for {len(exploit.trial_ids)} trials, "
                f"starting from {len(warm)} trials of the final configuration already paid for.",
                {
                    "trials": len(exploit.trial_ids),
                    "warm_start": len(warm),
                    "best_objective": exploit.trial(best).score if best is not None else None,
                    "previous_best": study.trial(previous[0]).score if previous else None,
                    "reference": url("bayesian_optimization"),
                },
                exploit.directory,
                f"{stage}/search",
            )
        )
        run.exploited = True

    def _warm_records(self, run, settings):
        """Every earlier trial of the final configuration trained the same way, as warm-start records."""
        s = sign(self.direction)
        records = []
        for name, trained in sorted(self._state["settings"].items()):
            if name == EXPLOIT_STUDY or trained != settings:
                continue
            reader = StudyReader.load(os.path.join(self.directory, name))
            for record in reader.trials():
                if any(record.values.get(k, v) != v for k, v in run.adopted.items()):
                    continue
                if record.status == "completed":
                    records.append(
                        WarmRecord(dict(record.values), "completed", s * record.objective)
                    )
                elif record.status == "infeasible":
                    records.append(WarmRecord(dict(record.values), "infeasible", None))
        return records

    # -- stage 5: final --------------------------------------------------------------

    def _final(self, run):
        """Replicates the best configuration found `final_seeds` times; returns the result."""
        candidates = []
        if run.last_study is not None:
            goal_study = Study.load(os.path.join(self.directory, run.last_study))
            ranked = goal_study.ranked(run.last_cell)
            if ranked:
                candidates.append((goal_study, ranked[0]))
        if run.exploited:
            exploit = Study.load(os.path.join(self.directory, EXPLOIT_STUDY))
            if exploit.best_trial_id() is not None:
                candidates.append((exploit, exploit.best_trial_id()))
        if not candidates:
            raise StudyError(
                f"No stage of the playbook in {self.directory} completed a trial; read the "
                "studies' findings (kp.Study(...).check()) for failed or infeasible trials."
            )
        s = sign(self.direction)
        study, trial_id = min(candidates, key=lambda c: s * c[0].trial(c[1]).score)
        settings = self._state["settings"][study.name]
        kwargs = self._fit_kwargs(settings)
        callbacks = kwargs.pop("callbacks")
        runs = self._state["final_runs"]
        for k in range(len(runs), self.final_seeds):
            record = train_replicate(
                study, trial_id, FINAL_SEED + k, self.hypermodel, (), kwargs, callbacks
            )
            runs.append({key: record[key] for key in ("seed", "status", "objective", "best_step")})
            self._save()
        values = [r["objective"] for r in runs]
        finite = [v for v in values if v is not None and math.isfinite(v)]
        mean = sum(finite) / len(finite) if finite else math.nan
        std = (
            (sum((v - mean) ** 2 for v in finite) / (len(finite) - 1)) ** 0.5
            if len(finite) > 1
            else math.nan
        )
        stopped = any(d["action"] == "stop_budget" for d in self._state["decisions"])
        caveats = []
        for d in self._state["decisions"]:
            for c in d.get("evidence", {}).get("caveats", []) or []:
                if c not in caveats:
                    caveats.append(c)
        if len(finite) < len(values):
            caveats.append(
                f"{len(values) - len(finite)} of the {len(values)} final replicates diverged."
            )
        used = self.trials_used()
        self._decide(
            Decision(
                "final",
                "stop_budget" if stopped else "finish",
                (
                    f"Stopped early for the budget ({used} of {self.max_trials} trainings)"
                    if stopped
                    else f"Every stage is done in {used} of {self.max_trials} trainings"
                )
                + f": the final configuration (trial {trial_id} of {study.name}) gives {self.objective} "
                f"{mean:.4g} ± {std:.2g} over {len(finite)} seeds.",
                {
                    "trial": trial_id,
                    "replicates": values,
                    "mean": mean,
                    "std": std,
                    "trials_used": used,
                    "max_trials": self.max_trials,
                    "best_objective": mean,
                    "reference": url("adopting_change"),
                },
                study.directory,
                "final",
            )
        )
        hyperparameters = {k: v for k, v in study.trial(trial_id).values.items()}
        return PlaybookResult(
            hyperparameters,
            mean,
            std,
            values,
            self.decisions,
            self.trials_used(),
            self.objective,
            self.direction,
            caveats,
            directory=self.directory,
            settings=settings,
        )

    # -- reading a run back ------------------------------------------------------

    @classmethod
    def load(cls, directory):
        """Reads a playbook run back (no training): its decisions and, when finished, its result.

        Args:
            directory: the folder a `kp.Playbook` wrote (``directory/project_name``).

        Returns:
            A `Playbook` without a model: `decisions`, `result` (a
            `kp.PlaybookResult`, None when the run has not finished),
            `trials_used()` and `report()` work; `run` needs the model, so
            construct `kp.Playbook(...)` with the same arguments to resume.

        Raises:
            StudyError: `directory` holds no playbook run.

        Example:

        ```python
        playbook = kp.Playbook.load("saved_studies/digits_playbook")
        print(playbook.result.summary())
        ```
        """
        directory = validation.path(directory, "directory")
        path = os.path.join(directory, PLAYBOOK_FILE)
        if not os.path.exists(path):
            raise StudyError(
                f"{directory} holds no playbook run (no {PLAYBOOK_FILE}); pass the folder a "
                "kp.Playbook wrote (directory/project_name)."
            )
        state = files.read_json(path, "restore it, or run the playbook again with overwrite=True")
        config = state["config"]
        playbook = cls.__new__(cls)
        playbook.hypermodel = None
        playbook.objective, playbook.direction = config["objective"]
        playbook.goals = [
            Goal(g["name"], g["scientific"], g["baseline"], g["fixed"] or None)
            for g in config["goals"]
        ]
        playbook.max_trials = config["max_trials"]
        playbook.trials_per_study = config["trials_per_study"]
        playbook.seed = config["seed"]
        playbook.replicate_seeds = config["replicate_seeds"]
        playbook.final_seeds = config["final_seeds"]
        playbook.learning_rate = config.get("learning_rate")
        playbook.directory = directory
        playbook.verbose = False
        playbook._state = state
        playbook.result = PlaybookResult.from_json(state["result"]) if state.get("result") else None
        return playbook

    def run_settings(self):
        """Each study of the run -> how it trained (epochs, batch_size, warmup_steps, clipping)."""
        return dict((self._state or {}).get("settings", {}))

    def report(self):
        """Writes ``playbook.html`` (one self-contained page) beside ``playbook.json``; returns its path.

        The page: a timeline of the stages, each decision with its reason,
        evidence and a link to the round's own study report; the final
        configuration with mean ± std; the caveats.
        """
        if self._state is None:
            raise StudyError(
                f"Nothing to report: the playbook in {self.directory} has not run yet."
            )
        return report_module.write_report(self)

    def __repr__(self):
        return (
            f"<kp.Playbook {self.directory!r}: {len(self.goals)} goals, "
            f"{len(self.decisions)} decisions, {self.trials_used()}/{self.max_trials} trainings>"
        )


class _RunState:
    """The run's current configuration: what the decisions so far changed."""

    def __init__(self, epochs, max_epochs, batch_size):
        self.epochs = epochs
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.ranges = {}
        self.capped = []
        self.warmup_steps = None
        self.clipping = False
        self.adopted = {}
        self.fixed = {}
        self.last_study = None
        self.last_cell = 0
        self.exploited = False

    def apply(self, changes):
        """Applies one decision's changes."""
        for key, value in changes.items():
            if key == "ranges":
                self.ranges.update({k: list(v) for k, v in value.items()})
            elif key == "capped":
                self.capped.extend(v for v in value if v not in self.capped)
            elif key == "adopted":
                self.adopted.update(value)
            elif key == "fixed":
                self.fixed.update(value)
            elif key in ("epochs", "batch_size", "clipping", "warmup_steps"):
                setattr(self, key, value)
            # "trials_per_study" only changes the study that asked for it.

    def settings(self):
        """How a study started now trains."""
        return {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "warmup_steps": self.warmup_steps,
            "clipping": self.clipping,
        }


def minimum_budget(goals, replicate_seeds, final_seeds):
    """The fewest trainings a playbook of `goals` needs: one smallest round and its replicates per goal, and the final replicates."""
    return (
        sum(_cell_count(g) * (MIN_TRIALS_PER_ROUND + replicate_seeds) for g in goals) + final_seeds
    )


def _quietly(function, *args, **kwargs):
    """Calls `function` without KerasTuner's "Reloading Tuner from ..." line on stdout."""
    with contextlib.redirect_stdout(io.StringIO()):
        return function(*args, **kwargs)


def _cell_count(goal):
    count = 1
    for values in goal.scientific.values():
        count *= len(list(values))
    return count


def _label(cell):
    return ", ".join(f"{name}={value}" for name, value in cell.items()) or "all trials"


def _fmt(value):
    return f"{value:.4g}" if isinstance(value, float) else str(value)
