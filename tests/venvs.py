"""Fresh virtual environments for the install tests (`make test-dist`, `make test-verl`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Installed first in every venv that gets torch, as `make` does: the build matters (README, "Install").
TORCH_SPEC = os.environ.get("TORCH_SPEC", "torch==2.13.0")


def wheel(distribution: str) -> Path:
    """The wheel `make dist` built for `distribution` (`treecredit`, `treecredit_server`)."""
    found = sorted((ROOT / "dist").glob(f"{distribution}-*.whl"))
    if len(found) != 1:
        raise FileNotFoundError(f"dist/: expected one {distribution} wheel, found {found}: run `make dist`")
    return found[0]


@dataclass
class Venv:
    path: Path

    @classmethod
    def create(cls, path: Path) -> Venv:
        subprocess.run([sys.executable, "-m", "venv", path], check=True)
        return cls(path)

    def bin(self, name: str) -> str:
        return str(self.path / "bin" / name)

    def pip(self, *args: object) -> None:
        """`pip install ...` and the like; pip's own output only when it fails."""
        done = subprocess.run([self.bin("python"), "-m", "pip", "--quiet", *map(str, args)],
                              capture_output=True, text=True)
        if done.returncode:
            raise AssertionError(f"pip {' '.join(map(str, args))} failed:\n{done.stdout}\n{done.stderr}")

    def packages(self) -> dict[str, str]:
        """Installed distributions, normalised name -> version."""
        listed = subprocess.run([self.bin("python"), "-m", "pip", "list", "--format=json"],
                                capture_output=True, text=True, check=True).stdout
        return {p["name"].lower().replace("_", "-"): p["version"] for p in json.loads(listed)}

    def python(self, code: str, *args: str) -> str:
        """Run `code` with the venv's Python; its stdout (stderr too in the failure)."""
        done = subprocess.run([self.bin("python"), "-c", code, *args], capture_output=True, text=True, cwd=ROOT)
        if done.returncode:
            raise AssertionError(f"{self.path} python failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done.stdout


def install_beside(venv: Venv, *requirements: object) -> dict[str, str]:
    """Install `requirements` into a venv that already holds a trainer's packages and check that pip
    changed none of them; returns the packages from before."""
    before = venv.packages()
    venv.pip("install", *requirements)
    after = venv.packages()
    changed = {name: (version, after.get(name)) for name, version in before.items() if after.get(name) != version}
    assert not changed, f"installing {requirements} changed the trainer's packages (before, after): {changed}"
    return before
