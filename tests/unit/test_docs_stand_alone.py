"""The repository's documents stand alone: every file they point at is in the repository."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# A path written in backquotes or as a Markdown link target, ending in a file suffix.
MENTIONED_FILE = re.compile(r"(?:`|\]\()((?:\.\./)*[\w./-]+\.(?:md|py|json|yml|yaml|png|txt|acl|sh))[`)]")


def test_no_document_points_at_files_outside_the_repository() -> None:
    for document in DOCUMENTS:
        text = document.read_text(encoding="utf-8")
        assert "shared/" not in text, f"{document.name} points at shared/, which users do not have"
        assert "enrolment-v1" not in text and "license-service-v1.md" not in text, document.name


def _ignored_by_git(path: str) -> bool:
    checked = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT, check=False)
    return checked.returncode == 0


def test_every_repository_file_a_document_names_exists() -> None:
    missing = []
    for document in DOCUMENTS:
        for path in MENTIONED_FILE.findall(document.read_text(encoding="utf-8")):
            if "/" not in path or path.startswith(("..", "/", "data/")):
                continue  # a bare name, a file scripts/run writes while it runs, or outside the repository
            if _ignored_by_git(path):
                continue  # a file an operator writes (passwords, host users), never committed
            candidates = [ROOT / path, document.parent / path]
            if not any(candidate.exists() for candidate in candidates):
                missing.append(f"{document.name}: {path}")
    assert not missing, missing
