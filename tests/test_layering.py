"""The package's layering: imports flow one way, at the top of each module.

From the bottom: errors, findings and citations; the study records (no
TensorFlow); roles, oracles, callbacks, distribution; analysis (reads
studies through `StudyReader`'s public methods); training, the `Study`
facade; tuners, sweeps, the probe; the command line on top. A module may
import only from its own layer or below.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "kplaybook"

# Module prefix -> layer (the longest matching prefix wins).
LAYERS = {
    "kplaybook.errors": 0,
    "kplaybook.findings": 0,
    "kplaybook.citations": 0,
    "kplaybook.native_logs": 0,
    "kplaybook.records": 1,
    "kplaybook.results": 2,
    "kplaybook.fatal_errors": 2,
    "kplaybook.roles": 2,
    "kplaybook.spaces": 2,
    "kplaybook.datasets": 2,
    "kplaybook.schedules": 2,
    "kplaybook.callbacks": 2,
    "kplaybook.layers": 2,
    "kplaybook.oracles": 3,
    "kplaybook.distribute.strategy": 3,
    "kplaybook.distribute.batch_norm": 3,
    "kplaybook.analysis": 4,
    "kplaybook.training": 5,
    "kplaybook.distribute": 6,  # the probe (it trains); its package re-exports the strategy
    "kplaybook.study": 6,
    "kplaybook.sweeps": 6,
    "kplaybook.tuners": 7,
    "kplaybook.playbook": 8,
    "kplaybook.testing": 8,
    "kplaybook.demo": 8,
    "kplaybook.cli": 9,
    "kplaybook.__main__": 9,
    "kplaybook": 9,  # the package's lazy __init__
}

#: Modules that import inside functions on purpose (not to dodge a cycle), and why.
LOCAL_IMPORTS_ALLOWED = {
    "kplaybook.cli": "TensorFlow must load after the log filter is installed",
    "kplaybook.datasets": "scikit-learn and tensorflow_datasets are slow to import",
    "kplaybook.tuners": "a deprecated name, imported only when used",
}


def layer(module):
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return LAYERS[best]


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), ast.parse(path.read_text(), str(path))


def imported(node):
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.module:
        return [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return []


def test_imports_flow_down_the_layers():
    violations = []
    for module, tree in modules():
        for node in ast.walk(tree):
            for name in imported(node):
                if not name.startswith("kplaybook.") or name == module:
                    continue
                # "from kplaybook.x import y" may name a function y: judge the module part.
                target = (
                    name
                    if any(
                        name == p or name.startswith(p + ".") for p in LAYERS if p != "kplaybook"
                    )
                    else None
                )
                if target and layer(target) > layer(module) and not _type_checking(tree, node):
                    violations.append(f"{module} (layer {layer(module)}) imports {target}")
    assert not violations, "\n".join(violations)


def _type_checking(tree, node):
    for parent in ast.walk(tree):
        if isinstance(parent, ast.If) and "TYPE_CHECKING" in ast.unparse(parent.test):
            if any(child is node for child in ast.walk(parent)):
                return True
    return False


def test_no_function_level_imports_outside_the_named_exceptions():
    found = []
    for module, tree in modules():
        for function in ast.walk(tree):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    if module not in LOCAL_IMPORTS_ALLOWED:
                        found.append(f"{module}.{function.name} imports {imported(node)[0]}")
    assert not found, "\n".join(found)


def test_shipped_text_cites_the_public_playbook_not_our_digest():
    offenders = [
        str(path.relative_to(PACKAGE.parent))
        for path in PACKAGE.rglob("*.py")
        if "PLAYBOOK.md" in path.read_text()
    ]
    assert not offenders


def test_every_cited_section_exists_in_the_citation_table():
    from kplaybook import citations

    used = set()
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        for call in ("cite", "url", "mention", "see"):
            for part in text.split(f"{call}(")[1:]:
                quote = part[0]
                if quote in "'\"":
                    used.add(part[1:].split(quote)[0])
    assert used, "no citation found"
    assert used <= set(citations.SECTIONS), used - set(citations.SECTIONS)
