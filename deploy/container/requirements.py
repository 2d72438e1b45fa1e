"""Print the server's requirements, one per line, read from the pyproject.toml files so they are never listed twice.

    python3 deploy/container/requirements.py [--build-system]

The requirements of both distributions (the server's ./pyproject.toml and the SDK's client/pyproject.toml)
less the distributions themselves, which the image installs from the source; `--build-system` adds what
building the two needs. Triton is none of them: torch's CUDA builds bring their own.
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


def requirements(build_system: bool) -> list[str]:
    projects = [tomllib.loads(path.read_text()) for path in PYPROJECTS]
    ours = {name(project["project"]["name"]) for project in projects}
    wanted = [r for project in projects for r in project["project"]["dependencies"]]
    if build_system:
        wanted += [r for project in projects for r in project["build-system"]["requires"]]
    return list(dict.fromkeys(r for r in wanted if name(r) not in ours))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-system", action="store_true", help="add the build-system requirements")
    args = parser.parse_args()
    print("\n".join(requirements(args.build_system)))


if __name__ == "__main__":
    main()
