"""`kp.Playbook`: the playbook's incremental tuning loop, automated, resumable and written down.

- `Playbook`: runs the goals' rounds, acts on their findings, adopts or
  keeps each goal's baseline, exploits with the Bayesian search, replicates
  the final configuration; `Playbook.load` reads a run back.
- `Goal`: one experiment (its scientific values and baseline).
- `Decision`: one recorded decision (stage, action, reason, evidence, study).
- `PlaybookResult`: what a run found.
- `ACTIONS`: the vocabulary of `Decision.action`.
"""

from kplaybook.playbook.autopilot import Playbook
from kplaybook.playbook.records import ACTIONS
from kplaybook.playbook.records import Decision
from kplaybook.playbook.records import Goal
from kplaybook.playbook.records import PlaybookResult

__all__ = ["ACTIONS", "Decision", "Goal", "Playbook", "PlaybookResult"]
