"""Where a study keeps its files: one directory, the names inside it.

A study directory is what a kplaybook tuner writes at
``directory/project_name``. KerasTuner owns the first three names below
(kplaybook keeps its formats so that KerasTuner can resume any study), and
kplaybook adds the rest beside them::

    oracle.json                  the oracle's state (KerasTuner), kplaybook's under "kplaybook"
    tuner0.json                  the tuner's state (KerasTuner; one per tuner id)
    trial_<id>/trial.json        one trial: hyperparameters, metrics per step, status (KerasTuner)
    trial_<id>/steps.json        per-step gradient norms, learning rate, clipping (kplaybook)
    kplaybook_notes.json         the goal and command line of the search (kplaybook)
    replicates.json              seed replicates of the best trials (kplaybook)
    kplaybook_index.npz          every trial.json decoded, for fast loading (kplaybook; a cache)

Everything that names one of these files goes through this module.
"""

import os

ORACLE_FILE = "oracle.json"
TRIAL_FILE = "trial.json"
TRIAL_DIR_PREFIX = "trial_"
STEPS_FILE = "steps.json"
NOTES_FILE = "kplaybook_notes.json"
REPLICATES_FILE = "replicates.json"
INDEX_FILE = "kplaybook_index.npz"
#: The key of kplaybook's own state inside KerasTuner's oracle.json.
STATE_KEY = "kplaybook"


def tuner_file(tuner_id):
    """The name of a tuner's state file (KerasTuner's ``tuner0.json``, ``tuner-chief.json``...)."""
    return f"{tuner_id}.json"


def trial_order(trial_id):
    """A sort key putting trial ids in creation order (numeric ids by value, then the rest)."""
    trial_id = str(trial_id)
    return (0, int(trial_id), "") if trial_id.isdigit() else (1, 0, trial_id)


class StudyLayout:
    """The paths of one study directory.

    Args:
        directory: the study's folder (``directory/project_name`` of the tuner).

    Example:

    ```python
    layout = StudyLayout("saved_studies/depth")
    layout.trial_file("03")        # saved_studies/depth/trial_03/trial.json
    ```
    """

    def __init__(self, directory):
        self.directory = os.fspath(directory)

    def path(self, name):
        """The path of file `name` in the study directory."""
        return os.path.join(self.directory, name)

    @property
    def oracle_file(self):
        """``oracle.json``: the oracle's state."""
        return self.path(ORACLE_FILE)

    @property
    def notes_file(self):
        """``kplaybook_notes.json``: the search's goal and command line."""
        return self.path(NOTES_FILE)

    @property
    def replicates_file(self):
        """``replicates.json``: the seed replicates."""
        return self.path(REPLICATES_FILE)

    @property
    def index_file(self):
        """``kplaybook_index.npz``: the trial index (see `kplaybook.records.index`)."""
        return self.path(INDEX_FILE)

    def trial_dir(self, trial_id):
        """The folder of one trial."""
        return self.path(TRIAL_DIR_PREFIX + str(trial_id))

    def trial_file(self, trial_id):
        """A trial's ``trial.json``."""
        return os.path.join(self.trial_dir(trial_id), TRIAL_FILE)

    def steps_file(self, trial_id):
        """A trial's ``steps.json``."""
        return os.path.join(self.trial_dir(trial_id), STEPS_FILE)

    def trial_dirs(self):
        """dict trial id -> folder of every ``trial_<id>`` folder present, in creation order."""
        found = {}
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return {}
        for entry in entries:
            if entry.name.startswith(TRIAL_DIR_PREFIX) and entry.is_dir():
                found[entry.name[len(TRIAL_DIR_PREFIX) :]] = entry.path
        return dict(sorted(found.items(), key=lambda item: trial_order(item[0])))
