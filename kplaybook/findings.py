"""`Finding`: one answer of the playbook's checks, with the numbers behind it.

At the bottom of the layering (beside `kplaybook.errors`): the study checks,
the batch-size probe and the playbook autopilot all speak in findings.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Finding:
    """One answer of `study.check()`: a problem the playbook asks about, and what to do.

    Attributes:
        code: str, which check found it (e.g. one of `kplaybook.analysis.checks.CODES`).
        severity: "warning" (conclusions may be wrong until it is fixed) or
            "info" (worth knowing, nothing is wrong).
        message: str, one sentence: what was found, with the numbers.
        recommendation: str, what to do about it.
        evidence: dict of the numbers and trial ids behind the message
            (JSON-serialisable).
        reference: the address of the public playbook's section the check
            rests on (https://github.com/google-research/tuning_playbook#...),
            or "" when it rests on none.

    Example:

    ```python
    for finding in kp.Study.load("saved_studies/depth").check():
        print(finding.severity, finding.code, finding.message)
    ```
    """

    code: str
    severity: str
    message: str
    recommendation: str
    evidence: dict = dataclasses.field(default_factory=dict)
    reference: str = ""

    def to_dict(self):
        """The finding as a plain dict (as written to findings.json)."""
        return dataclasses.asdict(self)
