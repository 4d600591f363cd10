"""`Study`: a study directory read back, with the playbook's checks, plots, replicates and export.

`kp.Study` is a `kplaybook.records.StudyReader` (tables, curves, per-step
values, notes) with the analysis on top: `check`, the `plot_*` methods,
`replicate`, `export`. The analysis reads the study only through the
reader's public methods.
"""

import keras_tuner
from keras_tuner.engine import hyperparameters as hp_module

from kplaybook import validation
from kplaybook.analysis import checks
from kplaybook.analysis import importance
from kplaybook.analysis import plot_data
from kplaybook.analysis import plots
from kplaybook.analysis import report
from kplaybook.records import StudyReader
from kplaybook.records import hp_column
from kplaybook.training import replicates as replicates_runner

__all__ = ["Study", "hp_column"]


class Study(StudyReader):
    """A study on disk: every trial, its status, its hyperparameters, its curves, and the playbook's analysis.

    A study is the directory a `kp.PlaybookTuner` or `kp.QuasiRandomSearch`
    writes (`directory/project_name`). `Study.load` reads it without the code
    that built the models, so a study can be read, compared and shared on any
    machine; `tuner.study()` returns the same object for a running tuner.

    Example:

    ```python
    study = kp.Study.load("saved_studies/depth")
    study.to_dataframe()            # one row per trial
    study.curves("03")              # per-epoch metrics of trial 03
    study.best_per_scientific()     # one row per scientific value
    study.check()                   # the playbook's findings
    study.export()                  # report.html, summary.md, CSV and JSON
    ```
    """

    def __init__(self, directory, state, trials, problems=()):
        super().__init__(directory, state, trials, problems)
        self._training = None

    @property
    def space(self):
        """The search space as a `keras_tuner.HyperParameters` (fixed ones as `hp.Fixed`)."""
        return hp_module.HyperParameters.from_config(self.space_config)

    # -- analysis ------------------------------------------------------------

    def check(self):
        """The playbook's checks on this study: a list of `kp.Finding`, warnings first.

        Codes: see `kplaybook.analysis.checks.CODES`. A problem that is not
        there gives no finding. The thresholds are the named constants of
        `kplaybook.analysis.checks`, each with where it comes from.

        Example:

        ```python
        for f in kp.Study.load("saved_studies/depth").check():
            print(f"{f.severity:8} {f.code:22} {f.message}")
            print(" " * 32, "->", f.recommendation)
        ```
        """
        return checks.run_checks(self)

    def plot_axis(self, hp_name=None):
        """Basic hyperparameter axis plots: each trial's objective against each hyperparameter.

        One panel per varied hyperparameter (or only `hp_name`): each trial's
        best objective against the hyperparameter (log axis for log
        dimensions), coloured by scientific value, infeasible trials as red X
        at the top, the top 3 trials starred, the search-space bounds dashed.
        The objective axis is zoomed onto the completed trials' useful range
        (what lies above it is drawn at the top edge and counted). See
        "Identifying bad search space boundaries",
        https://github.com/google-research/tuning_playbook#identifying-bad-search-space-boundaries.

        Returns:
            A matplotlib Figure.

        Example: ``study.plot_axis("learning_rate").savefig("lr.png")``
        """
        return plots.render_axis(plot_data.axis_plot_data(self, hp_name))

    def plot_isolation(self):
        """The isolation plot: the best objective per scientific value; a matplotlib Figure.

        With seed replicates (`replicate()`), their mean ± std is drawn
        beside each best trial. See "Detecting whether a change is useful
        with isolation plots",
        https://github.com/google-research/tuning_playbook#detecting-whether-a-change-is-useful-with-isolation-plots.

        Example: ``study.plot_isolation()``
        """
        return plots.render_isolation(plot_data.isolation_plot_data(self))

    def plot_curves(self, which="best"):
        """Training (``loss``) and validation curves; a matplotlib Figure.

        Args:
            which: "best" (each scientific value's best trial bold, its next
                10 faint), "all" (every completed trial), or a non-empty list
                of trial ids.

        Example: ``study.plot_curves(["03", "07"])``
        """
        return plots.render_curves(plot_data.curves_plot_data(self, which))

    def plot_grad_norms(self, trial_id=None):
        """Gradient norm against step and its histogram, with clip thresholds; a matplotlib Figure.

        Needs per-step norms (the search ran with
        `kp.callbacks.GradientNormLogger` or `GradientClipping`). Draws the
        logged clip threshold and the 90th percentile of the norms, the
        playbook's suggested threshold ("Gradient clipping",
        https://github.com/google-research/tuning_playbook#gradient-clipping).

        Args:
            trial_id: the trial; default: the best trial that logged norms.

        Example: ``study.plot_grad_norms("03")``
        """
        if trial_id is None:
            trial_id = plot_data.best_trial_with_grad_norms(self)
        return plots.render_grad_norms(plot_data.grad_norm_plot_data(self, trial_id))

    def plot_sampling(self):
        """Best of k trials against k, per scientific value; a matplotlib Figure.

        Box plots of the best of k trials drawn with replacement from the
        completed ones (the playbook's bootstrap, computed exactly): when the
        boxes stop moving down as k grows, the space was sampled densely
        enough. See "Not sampling enough points in the search space",
        https://github.com/google-research/tuning_playbook#not-sampling-enough-points-in-the-search-space.

        Example: ``study.plot_sampling()``
        """
        return plots.render_sampling(plot_data.sampling_plot_data(self))

    # -- which hyperparameters matter ------------------------------------------

    def importance(self, by_scientific=False, infeasible="worst", surrogate="gp", seed=0):
        """How much of the objective's variance each hyperparameter explains: a DataFrame.

        The playbook's exploration question: which hyperparameters the
        objective is most sensitive to, which interact, which are
        insensitive ("Exploration vs exploitation",
        https://github.com/google-research/tuning_playbook#exploration-vs-exploitation).
        A Gaussian process fitted to the trials is decomposed into Sobol
        indices (see `kplaybook.analysis.importance`).

        Args:
            by_scientific: one decomposition per scientific value (of its
                nuisance hyperparameters; a ``scientific`` column), or one
                of all trials (the default; scientific hyperparameters count
                as dimensions).
            infeasible: "worst" (infeasible trials count as the worst
                completed value) or "drop".
            surrogate: "gp" (default) or "forest".
            seed: int, the seed of the fit and of the Sobol points.

        Returns:
            DataFrame, one row per tuned hyperparameter, largest `total`
            first: `hyperparameter`, `importance` (its share of the
            variance, alone; the shares sum to at most 1), `total` (with its
            interactions), `low` and `high` (a 90% interval over bootstrap
            refits), `trials` (used).

        Raises:
            kp.errors.TooFewTrials: fewer than 2 completed trials per tuned
                hyperparameter (at least 8): it cannot tell.

        Example:

        ```python
        imp = kp.Study.load("saved_studies/depth").importance()
        print(imp[["hyperparameter", "importance", "low", "high"]])
        ```
        """
        return importance.importance_frame(
            importance.importance_data(self, by_scientific, infeasible, surrogate, seed)
        )

    def interactions(self, by_scientific=False, infeasible="worst", surrogate="gp", seed=0):
        """Which pairs of hyperparameters interact: a DataFrame, largest share first.

        Columns `hp_a`, `hp_b`, `importance` (the share of the objective's
        variance the pair explains together beyond each one's own share),
        `low`, `high`. Only pairs whose members both have interaction
        variance are estimated; other pairs are 0. Arguments as `importance`.

        Example: ``study.interactions().head(3)``
        """
        return importance.interactions_frame(
            importance.importance_data(self, by_scientific, infeasible, surrogate, seed)
        )

    def plot_importance(self, by_scientific=False, **kwargs):
        """Importance bars with intervals and the pairs as a small heat map; a matplotlib Figure.

        Example: ``study.plot_importance().savefig("importance.png")``
        """
        return plots.render_importance(
            plot_data.importance_plot_data(self, by_scientific=by_scientific, **kwargs)
        )

    def plot_contour(self, hp_x, hp_y):
        """The objective over two hyperparameters, the trials on top; a matplotlib Figure.

        The surface is a Gaussian process fitted to the completed trials in
        the two hyperparameters' sampled coordinates (log axes for log
        dimensions), the other hyperparameters averaged out.

        Example: ``study.plot_contour("learning_rate", "one_minus_beta_1")``
        """
        return plots.render_contour(plot_data.contour_plot_data(self, hp_x, hp_y))

    # -- seed replicates -----------------------------------------------------

    def use_training(self, hypermodel, fit_args=(), fit_kwargs=None, distribution_strategy=None):
        """Remembers how this study's trials were trained, for `replicate()` without arguments.

        `tuner.study()` calls it with the tuner's hypermodel and search
        arguments; call it yourself on a loaded study to replicate repeatedly.
        """
        self._training = (
            hypermodel,
            tuple(fit_args),
            dict(fit_kwargs or {}),
            distribution_strategy,
        )

    def replicate(
        self, top_k=1, seeds=5, *, hypermodel=None, distribution_strategy=None, **fit_kwargs
    ):
        """Re-train the best trial(s) of each scientific value with new seeds; returns `replicates()`.

        Each run builds the trial's hyperparameters with
        `keras.utils.set_random_seed(seed)` (initialisation, dropout and
        shuffling change) and trains as the search did; its best objective
        is stored in ``replicates.json`` in the study directory. The
        isolation plot, the report and `kp.compare` then use mean ± std of
        the replicates: the study's own best value is the maximum of many
        noisy trials, so it is left out of them. Runs already recorded are
        not repeated, so an interrupted call resumes. See "Determining
        whether to adopt a training pipeline change or hyperparameter
        configuration",
        https://github.com/google-research/tuning_playbook#determining-whether-to-adopt-a-training-pipeline-change-or-hyperparameter-configuration.

        On `tuner.study()` after `tuner.search(...)` nothing else is needed:
        the tuner's hypermodel and search arguments are reused. On a study
        from `Study.load`, pass `hypermodel=` and the fit arguments.

        Args:
            top_k: positive int, best trials per scientific value to replicate.
            seeds: positive int n (seeds 1..n) or a list of distinct int
                seeds from 0 to 2**32 - 1.
            hypermodel: `keras_tuner.HyperModel` or `build(hp)` function.
            distribution_strategy: optional `tf.distribute.Strategy`.
            **fit_kwargs: passed to `HyperModel.fit` / `model.fit` (x, y,
                validation_data, epochs, batch_size, callbacks, ...); `x` is
                needed unless the hypermodel's own `fit` loads the data.

        Returns:
            DataFrame of all recorded replicate runs (`replicates()`).

        Example:

        ```python
        study = tuner.study()
        study.replicate(top_k=1, seeds=5)
        study.plot_isolation()

        study = kp.Study.load("saved_studies/depth")
        study.replicate(seeds=3, hypermodel=build, x=x, y=y,
                        validation_data=(xv, yv), epochs=10)
        ```
        """
        top_k = validation.positive_int(top_k, "top_k")
        seeds = _seed_list(seeds)
        fit_args = ()
        if hypermodel is None and self._training is not None:
            hypermodel, searched_args, searched_kwargs, strategy = self._training
            if distribution_strategy is None:
                distribution_strategy = strategy
            if not fit_kwargs:
                fit_args, fit_kwargs = searched_args, dict(searched_kwargs)
        fit_kwargs = _checked_fit_kwargs(hypermodel, fit_args, fit_kwargs)
        replicates_runner.run_replicates(
            self,
            top_k=top_k,
            seeds=seeds,
            hypermodel=hypermodel,
            fit_args=fit_args,
            fit_kwargs=fit_kwargs,
            distribution_strategy=distribution_strategy,
        )
        return self.replicates()

    # -- export --------------------------------------------------------------

    def export(self, directory=None, formats=("html", "md", "csv", "json")):
        """Write the study's summary into the study directory (or `directory`).

        - ``"csv"``: `trials.csv` (one row per trial), `best_per_scientific.csv`,
          `spreadsheet_row.csv` (study, goal, trials run, best result, command
          to reproduce) and `replicates.csv` when replicates exist;
        - ``"json"``: `study.json` (self-contained: settings, roles, counts,
          every trial with its hyperparameters, curves and per-step values,
          the findings and the spreadsheet row) and `findings.json`;
        - ``"md"``: `summary.md`, linking `plots/*.png`;
        - ``"html"``: `report.html`, one self-contained file (plots embedded)
          that opens offline, and `plots/*.png`.

        Args:
            directory: where to write (created if missing); default: the
                study directory.
            formats: some of "html", "md", "csv", "json" (a list, or one str).

        Returns:
            dict file name -> path written.

        Example:

        ```python
        paths = kp.Study.load("saved_studies/depth").export()
        print(paths["report.html"])
        ```
        """
        if isinstance(formats, str):
            formats = (formats,)
        what = 'a list of export formats such as ["html", "csv"]'
        formats = report.check_formats(validation.sequence(formats, "formats", what))
        if directory is None:
            directory = self.directory
        else:
            directory = validation.writable_directory(directory, "directory")
        return report.write(self, directory, formats)


def _seed_list(seeds):
    """`seeds` with numpy integers as ints, each in numpy's seed range, else an error naming `seeds`."""
    if validation.is_integer(seeds):
        return validation.positive_int(seeds, "seeds")
    values = validation.sequence(
        seeds, "seeds", "a positive int n (seeds 1..n) or a list of int seeds"
    )
    return [validation.seed(value, f"seeds[{i}]") for i, value in enumerate(values)]


def _checked_fit_kwargs(hypermodel, fit_args, fit_kwargs):
    """`fit_kwargs` with `epochs` and `batch_size` checked, and the data required when `model.fit` trains."""
    fit_kwargs = dict(fit_kwargs)
    for name in ("epochs", "batch_size"):
        if fit_kwargs.get(name) is not None:
            fit_kwargs[name] = validation.positive_int(fit_kwargs[name], name)
    # A HyperModel that overrides fit() may load its own data; model.fit needs x.
    trains_with_model_fit = hypermodel is not None and (
        not isinstance(hypermodel, keras_tuner.HyperModel)
        or type(hypermodel).fit is keras_tuner.HyperModel.fit
    )
    if trains_with_model_fit and not fit_args and fit_kwargs.get("x") is None:
        raise ValueError(
            "replicate() got no training data; pass x=..., y=..., validation_data=... and "
            "epochs=... as the search got them."
        )
    return fit_kwargs
