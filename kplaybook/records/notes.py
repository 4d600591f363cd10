"""``kplaybook_notes.json``: what a search recorded about itself (its goal, its command line)."""

import os

from kplaybook.records import files


def read_notes(path):
    """The notes in `path` as a dict ({} when the file is absent).

    Raises:
        StudyError: the file is damaged (it names the file and what to do).
    """
    if not os.path.exists(path):
        return {}
    notes = files.read_json(path, "delete it to drop the study's goal and command line")
    return notes if isinstance(notes, dict) else {}


def update_notes(path, **values):
    """Merges `values` into the notes in `path` (written atomically); returns the notes.

    A damaged notes file is replaced rather than failing the search that
    writes it: notes are descriptive, never state.
    """
    try:
        notes = read_notes(path)
    except ValueError:
        notes = {}
    notes.update(values)
    files.write_json(path, files.json_safe(notes), indent=1)
    return notes
