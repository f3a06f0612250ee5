"""Write envs/clonetrack.yaml from requirements.txt: the conda environment pins what the venv pins.

Usage (from the repository root)::

    .venv/bin/python scripts/sync_envs.py          # rewrite envs/clonetrack.yaml
    .venv/bin/python scripts/sync_envs.py --check  # exit 1 and show the difference if it drifted

Every requirement must be an exact pin (``name==version``). Python's minor version comes from
``requires-python`` in pyproject.toml; pip is pinned at the conda level, everything else is
installed by pip inside the environment, in the order of requirements.txt.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REQUIREMENTS = REPO / "requirements.txt"
PYPROJECT = REPO / "pyproject.toml"
ENV_FILE = REPO / "envs" / "clonetrack.yaml"

PIN = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[A-Za-z0-9][A-Za-z0-9.+!_-]*)$"
)

HEADER = """\
# Generated from requirements.txt by scripts/sync_envs.py: do not edit by hand, edit
# requirements.txt and run `.venv/bin/python scripts/sync_envs.py` (a test fails on drift).
# torch comes from PyPI through pip; on Linux that wheel carries CUDA, which the GPU job
# (integration.method scvi) uses and CPU-only nodes simply ignore.
"""


def read_pins(path: Path = REQUIREMENTS) -> list[tuple[str, str]]:
    """``(name, version)`` of every requirement, in file order.

    Raises
    ------
    ValueError
        A line that is not an exact ``name==version`` pin (comments and blank lines are skipped).
    """
    pins = []
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = PIN.match(line)
        if match is None:
            raise ValueError(
                f"{path.name} line {number}: {raw.strip()!r} is not an exact pin (name==version)"
            )
        pins.append((match["name"], match["version"]))
    return pins


def python_version(path: Path = PYPROJECT) -> str:
    """Minor Python version from ``requires-python`` (e.g. ``>=3.11,<3.12`` gives ``3.11``)."""
    match = re.search(r'requires-python\s*=\s*"[^"]*>=\s*(\d+\.\d+)', path.read_text())
    if match is None:
        raise ValueError(f"{path.name}: no requires-python lower bound")
    return match.group(1)


def render(pins: list[tuple[str, str]], python: str) -> str:
    """The environment file's text for ``pins``."""
    versions = dict(pins)
    lines = [
        HEADER.rstrip("\n"),
        "name: clonetrack",
        "channels:",
        "  - conda-forge",
        "  - nodefaults",
    ]
    lines += ["dependencies:", f"  - python={python}"]
    if "pip" in versions:
        lines.append(f"  - pip={versions['pip']}")
    else:
        lines.append("  - pip")
    lines.append("  - pip:")
    lines += [f"      - {name}=={version}" for name, version in pins if name != "pip"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 on drift")
    args = parser.parse_args(argv)
    text = render(read_pins(), python_version())
    current = ENV_FILE.read_text() if ENV_FILE.exists() else ""
    if args.check:
        if current == text:
            return 0
        sys.stdout.writelines(
            difflib.unified_diff(
                current.splitlines(keepends=True),
                text.splitlines(keepends=True),
                fromfile=str(ENV_FILE.relative_to(REPO)),
                tofile="from requirements.txt",
            )
        )
        return 1
    ENV_FILE.parent.mkdir(parents=True, exist_ok=True)
    ENV_FILE.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
