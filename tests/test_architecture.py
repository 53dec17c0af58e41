"""What the import contracts (pyproject.toml, run by `lint-imports`) cannot see: no module
outside the world and the judges names the truth's tables, in SQL or through the world's
schema (the tables' names come from ``gateway.world.schema``); and no module the contracts
keep from the truth imports it by name at run time (``importlib``, a factory string)."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest
from sqlalchemy import MetaData, Table

from gateway.world import schema as world_schema

GATEWAY = Path(__file__).resolve().parents[1] / "gateway"
ALLOWED = (GATEWAY / "world", GATEWAY / "judging")  # the truth's own code, and judging only
TRUTH_TABLES = tuple(table.name for table in world_schema.WORLD_TABLES)


def _stands_for_truth(value) -> bool:
    if isinstance(value, str):
        return value in TRUTH_TABLES
    if isinstance(value, Table):
        return value.name in TRUTH_TABLES
    if isinstance(value, MetaData):
        return any(name in TRUTH_TABLES for name in value.tables)
    if isinstance(value, tuple):
        return bool(value) and all(_stands_for_truth(v) for v in value)
    return False


# The schema's names for the truth: its constants, Table objects, their tuple and metadata.
TRUTH_NAMES = frozenset(name for name, value in vars(world_schema).items() if _stands_for_truth(value))
_TABLE = re.compile(r"\b(" + "|".join(map(re.escape, TRUTH_TABLES)) + r")\b")


def truth_references(source: str) -> list[tuple[int, str]]:
    """(line, what) for every string naming a truth table and every use of the schema's names."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found += [(node.lineno, f"names the table {m.group(1)}") for m in _TABLE.finditer(node.value)]
        elif isinstance(node, ast.Attribute) and node.attr in TRUTH_NAMES:
            found.append((node.lineno, f"uses {node.attr}"))
        elif isinstance(node, ast.Name) and node.id in TRUTH_NAMES:
            found.append((node.lineno, f"uses {node.id}"))
        elif isinstance(node, ast.ImportFrom):
            found += [(node.lineno, f"imports {a.name}") for a in node.names if a.name in TRUTH_NAMES]
    return sorted(found)


def test_the_truth_tables_come_from_the_world_schema():
    assert len(TRUTH_TABLES) == 3 and all(name.startswith("world_") for name in TRUTH_TABLES)
    assert {"WORLD_USERS", "world_users", "WORLD_TABLES", "world_metadata"} <= TRUTH_NAMES


@pytest.mark.parametrize(
    ("snippet", "what"),
    [
        ('read_frame(engine, "SELECT key, value FROM world_params")', "names the table world_params"),
        ('sql = f"SELECT * FROM {prefix}world_users WHERE user_id = {u}"', "names the table world_users"),
        ("text('DELETE FROM \"world_posts\"')", "names the table world_posts"),
        ("from gateway.world import schema\nframe = read_frame(engine, schema.WORLD_USERS)", "uses WORLD_USERS"),
        ("from gateway.world.schema import world_posts", "imports world_posts"),
        ("metadata.create_all(engine, tables=list(WORLD_TABLES))", "uses WORLD_TABLES"),
        ("world_metadata.drop_all(engine)", "uses world_metadata"),
    ],
)
def test_the_scanner_finds_each_way_of_naming_the_truth(snippet, what):
    assert what in [found for _, found in truth_references(snippet)]


def test_the_scanner_leaves_other_names_alone():
    harmless = 'read_frame(engine, "SELECT * FROM user_data")\nworld = "world_*"\nworld_usersx = 1\n'
    assert truth_references(harmless) == []


def test_nothing_outside_the_world_and_the_judges_names_the_truth():
    offences = []
    for file in sorted(GATEWAY.rglob("*.py")):
        if any(file.is_relative_to(place) for place in ALLOWED):
            continue
        for line, what in truth_references(file.read_text()):
            offences.append(f"{file.relative_to(GATEWAY.parent)}:{line}: {what}")
    assert not offences, "the truth is for judging only:\n" + "\n".join(offences)


def _truth_contract() -> dict:
    config = tomllib.loads((GATEWAY.parent / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    return next(c for c in contracts if c["type"] == "forbidden" and "gateway.world" in c["forbidden_modules"])


def dynamic_imports(source: str, forbidden: list[str]) -> list[tuple[int, str]]:
    """(line, string) for every string naming a forbidden module, as importlib would take it."""
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, forbidden)) + r")\b")
    return [
        (node.lineno, node.value)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and pattern.search(node.value)
    ]


def test_the_dynamic_import_scanner_finds_module_names():
    snippet = 'importlib.import_module("gateway.world.truth")\nuvicorn.run("gateway.judging.oracle:app")\n'
    assert [line for line, _ in dynamic_imports(snippet, ["gateway.world", "gateway.judging"])] == [1, 2]
    assert dynamic_imports('"gateway.worldly"', ["gateway.world"]) == []


def test_modules_kept_from_the_truth_do_not_import_it_by_name():
    contract = _truth_contract()
    offences = []
    for module in contract["source_modules"]:
        path = GATEWAY.parent / module.replace(".", "/")
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path.with_suffix(".py")]:
            for line, value in dynamic_imports(file.read_text(), contract["forbidden_modules"]):
                offences.append(f"{file.relative_to(GATEWAY.parent)}:{line}: {value!r}")
    assert not offences, "imports of the truth by name:\n" + "\n".join(offences)


def test_the_readme_architecture_names_every_package_and_module():
    readme = (GATEWAY.parent / "README.md").read_text()
    section = readme[readme.index("## Architecture") : readme.index("### Embedded database")]
    tree = section[section.index("gateway/\n") :]
    missing = []
    for file in sorted(GATEWAY.rglob("*.py")):
        if file.name == "__init__.py" and file.parent != GATEWAY / "cli":
            name = f"{file.parent.name}/"
        else:
            name = file.name
        if not re.search(rf"(?<![\w.]){re.escape(name)}", tree):
            missing.append(str(file.relative_to(GATEWAY.parent)))
    assert not missing, f"README's architecture tree lacks {missing}"
