"""Print the server's requirements, one per line, read from the pyproject.toml files so they are never listed twice.

    python3 deploy/container/requirements.py [--leave-out triton] [--build-system]

The requirements of both distributions (the server's ./pyproject.toml and the SDK's client/pyproject.toml)
less the distributions themselves, which the image installs from the source. `--leave-out` drops packages
by name (the CPU image has no use for triton: Triton kernels need a CUDA device outside its test
interpreter); `--build-system` adds what building the two needs.
"""

from __future__ import annotations

import argparse
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYPROJECTS = (ROOT / "pyproject.toml", ROOT / "client" / "pyproject.toml")


def name(requirement: str) -> str:
    """The normalised distribution name a requirement string starts with."""
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9._-]+", requirement).group()).lower()


def requirements(leave_out: set[str], build_system: bool) -> list[str]:
    projects = [tomllib.loads(path.read_text()) for path in PYPROJECTS]
    ours = {name(project["project"]["name"]) for project in projects}
    wanted = [r for project in projects for r in project["project"]["dependencies"]]
    if build_system:
        wanted += [r for project in projects for r in project["build-system"]["requires"]]
    return list(dict.fromkeys(r for r in wanted if name(r) not in ours | leave_out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leave-out", default="", help="space- or comma-separated package names to drop")
    parser.add_argument("--build-system", action="store_true", help="add the build-system requirements")
    args = parser.parse_args()
    leave_out = {name(n) for n in re.split(r"[\s,]+", args.leave_out) if n}
    print("\n".join(requirements(leave_out, args.build_system)))


if __name__ == "__main__":
    main()
