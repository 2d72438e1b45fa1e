"""Print the server's requirements, one per line, read from pyproject.toml so they are never listed twice.

    python3 deploy/container/requirements.py [--extra server] [--leave-out triton] [--build-system]

`--leave-out` drops packages by name (the CPU image has no use for triton: Triton kernels need a CUDA
device outside its test interpreter); `--build-system` adds what building the project needs.
"""

from __future__ import annotations

import argparse
import re
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def name(requirement: str) -> str:
    """The normalised distribution name a requirement string starts with."""
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9._-]+", requirement).group()).lower()


def requirements(extra: str, leave_out: set[str], build_system: bool) -> list[str]:
    project = tomllib.loads(PYPROJECT.read_text())
    wanted = [*project["project"]["dependencies"], *project["project"]["optional-dependencies"][extra]]
    if build_system:
        wanted += project["build-system"]["requires"]
    return [r for r in wanted if name(r) not in leave_out]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extra", default="server", help="optional-dependencies group to add (default server)")
    parser.add_argument("--leave-out", default="", help="space- or comma-separated package names to drop")
    parser.add_argument("--build-system", action="store_true", help="add the build-system requirements")
    args = parser.parse_args()
    leave_out = {name(n) for n in re.split(r"[\s,]+", args.leave_out) if n}
    print("\n".join(requirements(args.extra, leave_out, args.build_system)))


if __name__ == "__main__":
    main()
