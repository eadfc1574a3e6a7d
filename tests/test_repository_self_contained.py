"""The repository explains itself: no tracked line points at a document outside it (design notes,
style guides, API specs kept elsewhere). What a maintainer needs is in docs/, and the code's
comments point there."""

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Built from pieces so that this file does not match itself.
OUTSIDE = re.compile(
    "|".join(
        [
            r"\b" + "DESIGN" + r"\.md\b",
            r"\b" + "STYLE" + r"\.md\b",
            r"\.\./" + "shared",
            "/work" + r"/\w",
            "shared" + r"/(?:specs|hooks|reference)\b",
            r"(?<![\w/-])" + "specs" + r"/[\w.-]+\.md\b",
        ]
    )
)


def tracked_files() -> list[Path]:
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the tracked files are unknown")
    return [ROOT / name for name in listed.decode().split("\0") if name]


def pointers_outside(text: str) -> list[tuple[int, str]]:
    return [(number, line.strip()) for number, line in enumerate(text.splitlines(), 1) if OUTSIDE.search(line)]


SHARED, SPECS = "shared", "specs"  # the examples below are assembled, for the same reason


@pytest.mark.parametrize(
    "line",
    [
        f"# see {'DESIGN'}.md, Engines",
        f"Contract: /work/{SHARED}/{SPECS}/dashscope.md.",
        f"follows {SPECS}/removebg.md.",
        f"as in ../{SHARED}/{'STYLE'}.md",
    ],
)
def test_the_check_recognises_a_pointer_outside(line):
    assert pointers_outside(line)


@pytest.mark.parametrize(
    "line",
    ["contract: docs/providers/dashscope.md", "docs/architecture.md, URLs", '"../../../etc/passwd.jpg"'],
)
def test_the_check_leaves_pointers_inside_alone(line):
    assert not pointers_outside(line)


def test_no_tracked_line_points_outside_the_repository():
    found = []
    for path in tracked_files():
        if not path.is_file():
            continue  # deleted in the working tree, not yet committed
        text = path.read_bytes().decode("utf-8", errors="ignore")
        found += [f"{path.relative_to(ROOT)}:{number}: {line}" for number, line in pointers_outside(text)]
    assert not found, "point these at docs/ instead:\n" + "\n".join(found)
