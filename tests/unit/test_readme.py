"""The README's promises that can drift: the configuration table, the two commands, scripts/run's tables."""

import re
from pathlib import Path

from config import Settings
from runner.supervisor import _parser as run_parser

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


def test_the_run_commands_tables_name_every_process_and_option_with_its_default() -> None:
    section = README.split("### `scripts/run`", 1)[1].split("\n### ", 1)[0]
    processes = re.findall(r"^\| ([a-z][^|]*?) \|", section, re.MULTILINE)
    assert "the console" in processes and "an admin worker" in processes
    parser = run_parser()
    rows = {
        option: default.strip().strip("`")
        for option, default in re.findall(r"^\| `(--[a-z-]+)[^`]*` \|([^|]*)\|", section, re.MULTILINE)
    }
    options = set(re.findall(r"(--[a-z][a-z-]+)", parser.format_help())) - {"--help"}
    assert set(rows) == options
    defaults = vars(parser.parse_args([]))
    for option, default in rows.items():
        value = defaults[option.removeprefix("--").replace("-", "_")]
        assert default == ("" if isinstance(value, bool) else str(value)), option
