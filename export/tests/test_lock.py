"""export/requirements.lock is what CI installs: it must be made from the pyproject.toml beside it
and pin every dependency it names."""

import hashlib
import re
from pathlib import Path

import tomllib

EXPORT = Path(__file__).resolve().parents[1]
LOCK = EXPORT / "requirements.lock"
PYPROJECT = EXPORT / "pyproject.toml"
RELOCK = "run scripts/lock-python.sh and commit export/requirements.lock"


def locked_versions() -> dict[str, str]:
    pins = re.findall(r"^([A-Za-z0-9._-]+)==(\S+)", LOCK.read_text(), flags=re.M)
    return {normalise(name): version for name, version in pins}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def required_names() -> list[str]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    specs = project["dependencies"] + [
        s for extra in project.get("optional-dependencies", {}).values() for s in extra
    ]
    return [normalise(re.match(r"[A-Za-z0-9._-]+", s).group(0)) for s in specs]


def test_the_lock_was_made_from_this_pyproject():
    digest = hashlib.sha256(PYPROJECT.read_bytes()).hexdigest()
    recorded = re.search(r"^# pyproject.toml sha256: ([0-9a-f]{64})$", LOCK.read_text(), re.M)
    assert recorded is not None, f"the lock does not say which pyproject.toml it is for: {RELOCK}"
    assert recorded.group(1) == digest, f"pyproject.toml changed after the lock was made: {RELOCK}"


def test_every_dependency_is_pinned_with_hashes():
    pins = locked_versions()
    missing = [n for n in required_names() if n not in pins]
    assert not missing, f"not in the lock: {missing}: {RELOCK}"
    unhashed = [
        block.split("==")[0]
        for block in re.split(r"\n(?=\S)", LOCK.read_text())
        if "==" in block.split("\n")[0] and not re.search(r"--hash=sha256:[0-9a-f]{64}", block)
    ]
    assert not unhashed, f"pinned without a sha256 hash: {unhashed}: {RELOCK}"


def test_the_installed_packages_are_the_locked_versions():
    from importlib.metadata import PackageNotFoundError, version

    pins = locked_versions()
    wrong = {}
    for name in ("torch", "timm", "onnx", "onnxruntime", "numpy"):
        try:
            have = version(name)
        except PackageNotFoundError:
            have = None
        if have != pins[name]:
            wrong[name] = (have, pins[name])
    assert not wrong, f"installed vs locked: {wrong}: make the venv with scripts/python-venv.sh"


def test_the_venv_script_refuses_a_lock_made_for_another_pyproject(tmp_path):
    import shutil
    import subprocess

    (tmp_path / "scripts").mkdir()
    (tmp_path / "export").mkdir()
    shutil.copy(EXPORT.parent / "scripts" / "python-venv.sh", tmp_path / "scripts")
    shutil.copy(LOCK, tmp_path / "export")
    (tmp_path / "export" / "pyproject.toml").write_text(
        PYPROJECT.read_text() + "\n# edited after locking\n"
    )
    r = subprocess.run(
        ["bash", str(tmp_path / "scripts" / "python-venv.sh"), str(tmp_path / "venv")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1
    assert "scripts/lock-python.sh" in r.stderr
    assert not (tmp_path / "venv").exists(), "nothing is installed from a stale lock"
