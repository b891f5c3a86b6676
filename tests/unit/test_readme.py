"""The README's promises that can drift: the configuration table and the two commands."""

import re
from pathlib import Path

from config import Settings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_configuration_table_lists_every_setting_and_nothing_else() -> None:
    rows = set(re.findall(r"^\| `(AVTOR_[A-Z0-9_]+)` \|", README, re.MULTILINE))
    assert rows == {f"AVTOR_{name.upper()}" for name in Settings.model_fields}


def test_the_two_set_up_commands_exist_and_the_linked_docs_too() -> None:
    table = README.split("## Set-up on a fresh machine", 1)[1].split("###", 1)[0]
    assert re.findall(r"`(scripts/[a-z-]+)`", table) == ["scripts/run", "scripts/test"]
    for script in ("scripts/run", "scripts/test", "scripts/demo"):
        assert (ROOT / script).stat().st_mode & 0o111, f"{script} is not executable"
    for document in set(re.findall(r"`(docs/[a-z-]+\.md)`", README)) - {"docs/benchmarks.md"}:
        assert (ROOT / document).exists(), f"README links {document}, which does not exist"
