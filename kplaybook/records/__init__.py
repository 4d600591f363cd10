"""The study records: a study directory's files, written atomically and read back without TensorFlow.

    layout       file names and paths of a study directory
    files        atomic JSON writes, reads with one-sentence errors, JSON-safe values
    markers      the marker metrics: infeasibility reason, score
    trials       TrialRecord (one trial.json), best_position (the one "best")
    steps        per-step values (StepRecord, steps.json)
    notes        kplaybook_notes.json
    replicates   replicates.json
    reader       StudyReader: everything above, as tables and curves

Nothing here imports TensorFlow, Keras or KerasTuner.
"""

from kplaybook.records.reader import StudyReader
from kplaybook.records.reader import hp_column
from kplaybook.records.trials import STATUSES
from kplaybook.records.trials import TrialRecord
from kplaybook.records.trials import best_position
from kplaybook.records.trials import sign

__all__ = ["STATUSES", "StudyReader", "TrialRecord", "best_position", "hp_column", "sign"]
