"""The packages import one way: the rules, the call flow, the prompts and storage know nothing of the web.

None of them imports Flask or ivr/; the rules, the prompts and storage not Twilio either (the
call flow writes TwiML with Twilio's helper library).

Every .py file under a checked folder is parsed with `ast`, so an import inside a function
or behind `if TYPE_CHECKING:` counts too. storage/ imports no helpdesk/ (helpdesk/ builds
on storage/), and helpdesk/ no callflows/ (the call flow builds on helpdesk/): no cycles.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTSIDE = frozenset({"flask", "twilio", "ivr"})

# folder: the top-level packages its code may not import
FORBIDDEN: dict[str, frozenset[str]] = {
    "storage": OUTSIDE | {"helpdesk", "callflows"},
    "helpdesk": OUTSIDE | {"callflows"},
    "callflows": frozenset({"flask", "ivr"}),  # it writes TwiML with Twilio's helper library
    "prompts": OUTSIDE,
}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every absolute import in the file; a relative one stays inside its own package."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def forbidden_imports(root: Path, forbidden: Mapping[str, frozenset[str]]) -> list[str]:
    """ "path:line imports module" for every import a folder of `root` may not make."""
    found = []
    for folder, packages in forbidden.items():
        for path in sorted((root / folder).rglob("*.py")):
            for line, module in imported_modules(path):
                if module.split(".")[0] in packages:
                    found.append(f"{path.relative_to(root)}:{line} imports {module}")
    return found


def test_the_packages_import_only_what_they_may():
    assert forbidden_imports(ROOT, FORBIDDEN) == []


def test_every_checked_folder_is_there():
    for folder in FORBIDDEN:
        assert list((ROOT / folder).glob("*.py")), f"{folder}/ holds no Python files: the check would pass vacuously"


def test_a_planted_violation_is_caught(tmp_path):
    rules = tmp_path / "helpdesk" / "rules"
    rules.mkdir(parents=True)
    (rules / "bad.py").write_text(
        "import flask\n"
        "import flasky\n"  # another package whose name merely starts alike
        "from twilio.twiml.voice_response import VoiceResponse\n"
        "from storage.models import Ticket\n"
        "\n"
        "def later():\n"
        "    import ivr.voice.calls\n"
        "    from callflows.engine import Turn\n"
        "    from . import good\n"
    )
    (rules / "good.py").write_text("from storage.tickets import URGENCIES\nfrom helpdesk import hours\n")
    (tmp_path / "storage").mkdir()
    (tmp_path / "storage" / "tickets.py").write_text("from helpdesk.phases import OPEN_PHASES\n")
    assert forbidden_imports(tmp_path, FORBIDDEN) == [
        "storage/tickets.py:1 imports helpdesk.phases",
        "helpdesk/rules/bad.py:1 imports flask",
        "helpdesk/rules/bad.py:3 imports twilio.twiml.voice_response",
        "helpdesk/rules/bad.py:7 imports ivr.voice.calls",
        "helpdesk/rules/bad.py:8 imports callflows.engine",
    ]
