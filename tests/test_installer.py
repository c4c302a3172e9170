"""colorize-gan-gimp install | uninstall | status: files, names, executable bit, recorded Python, and
the checks ``status`` runs for "the plug-in does not show up"."""
from __future__ import annotations

import io
import json
import os
import sys
import tomllib
from pathlib import Path

import pytest

from plugin import bridge, installer

PY = sys.executable
ROOT = Path(__file__).resolve().parents[1]


def test_install_layout_and_record(tmp_path):
    out = io.StringIO()
    folder = installer.install(tmp_path, PY, out=out)
    assert folder == tmp_path / "plug-ins" / "colorize_gan"
    main = folder / "colorize_gan.py"
    # GIMP 3 skips a plug-in silently unless folder name == file stem and the file is executable.
    assert main.is_file() and main.stem == folder.name and os.access(main, os.X_OK)
    assert main.read_bytes() == (ROOT / "plugin" / "colorize_gan" / "colorize_gan.py").read_bytes()
    assert (folder / "bridge.py").read_bytes() == (ROOT / "plugin" / "bridge.py").read_bytes()
    config = json.loads((folder / bridge.CONFIG_NAME).read_text())
    assert config["python"] == PY and config["protocol"] == bridge.PROTOCOL
    assert bridge.worker_python(bridge.load_config(str(folder)), environ={}) == os.path.abspath(PY)
    text = out.getvalue()
    assert str(folder) in text and "colorize-gan-gimp status" in text and "onnxruntime: available" in text


def test_install_refuses_a_broken_worker_unless_forced(tmp_path):
    with pytest.raises(bridge.WorkerEnvError):
        installer.install(tmp_path, str(tmp_path / "no-python"), out=io.StringIO())
    assert not (tmp_path / "plug-ins").exists(), "nothing installed for a broken environment"
    out = io.StringIO()
    installer.install(tmp_path, str(tmp_path / "no-python"), force=True, out=out)
    assert "warning" in out.getvalue() and (tmp_path / "plug-ins" / "colorize_gan" / "colorize_gan.py").is_file()


def test_status_checks_each_cause(tmp_path):
    out = io.StringIO()
    assert not installer.status(tmp_path, out=out)
    assert "is missing" in out.getvalue()

    installer.install(tmp_path, PY, out=io.StringIO())
    out = io.StringIO()
    assert installer.status(tmp_path, out=out), out.getvalue()
    assert "no " in out.getvalue() and "pluginrc" in out.getvalue()  # GIMP never ran with this folder yet

    pluginrc = tmp_path / "pluginrc"
    pluginrc.write_text('(plug-in-def "/x/other.py" 0)\n')
    out = io.StringIO()
    assert not installer.status(tmp_path, out=out) and "does NOT list" in out.getvalue()
    pluginrc.write_text(f'(plug-in-def "/x/colorize_gan.py" 0 (proc-def "{installer.PROC_NAME}" 2))\n')
    assert installer.status(tmp_path, out=io.StringIO())

    main = tmp_path / "plug-ins" / "colorize_gan" / "colorize_gan.py"
    main.chmod(0o644)
    out = io.StringIO()
    assert not installer.status(tmp_path, out=out) and "not executable" in out.getvalue()
    main.chmod(0o755)

    config = tmp_path / "plug-ins" / "colorize_gan" / bridge.CONFIG_NAME
    config.write_text(json.dumps({"python": str(tmp_path / "moved-venv" / "python")}))
    out = io.StringIO()
    assert not installer.status(tmp_path, out=out) and "does not exist" in out.getvalue()


def test_uninstall(tmp_path):
    assert not installer.uninstall(tmp_path, out=io.StringIO())
    installer.install(tmp_path, PY, out=io.StringIO())
    assert installer.uninstall(tmp_path, out=io.StringIO())
    assert not (tmp_path / "plug-ins" / "colorize_gan").exists()
    foreign = tmp_path / "plug-ins" / "colorize_gan"
    foreign.mkdir(parents=True)
    (foreign / "colorize_gan.py").write_text("# someone else's")
    with pytest.raises(RuntimeError, match="not installed by colorize-gan-gimp"):
        installer.uninstall(tmp_path, out=io.StringIO())
    assert foreign.exists()


def test_config_locations(tmp_path):
    home = tmp_path
    linux = installer.candidate_dirs({}, "linux", home)
    assert linux == [home / ".config/GIMP/3.0", home / ".var/app/org.gimp.GIMP/config/GIMP/3.0",
                     home / "snap/gimp/current/.config/GIMP/3.0"]
    assert installer.candidate_dirs({"XDG_CONFIG_HOME": "/xdg"}, "linux", home)[0] == Path("/xdg/GIMP/3.0")
    assert installer.candidate_dirs({"GIMP3_DIRECTORY": "/g3"}, "linux", home)[0] == Path("/g3")
    assert installer.candidate_dirs({"APPDATA": "C:/Users/u/AppData/Roaming"}, "win32", home) == [
        Path("C:/Users/u/AppData/Roaming/GIMP/3.0")]
    assert installer.candidate_dirs({}, "darwin", home) == [home / "Library/Application Support/GIMP/3.0"]


def test_target_dirs_prefers_existing_configs(tmp_path, monkeypatch):
    monkeypatch.setattr(Path, "home", lambda: tmp_path)
    env = {"XDG_CONFIG_HOME": str(tmp_path / ".config")}
    assert installer.target_dirs(None, env) == [tmp_path / ".config/GIMP/3.0"]  # none yet: the native default
    flatpak = tmp_path / ".var/app/org.gimp.GIMP/config/GIMP/3.0"
    flatpak.mkdir(parents=True)
    assert installer.target_dirs(None, env) == [flatpak]
    assert installer.target_dirs(str(tmp_path / "explicit"), env) == [tmp_path / "explicit"]


def test_cli(tmp_path, capsys):
    d = str(tmp_path / "gimp")
    assert installer.main(["install", "--gimp-dir", d]) == 0
    assert installer.main(["status", "--gimp-dir", d]) == 0
    assert "OK" in capsys.readouterr().out
    assert installer.main(["uninstall", "--gimp-dir", d]) == 0
    assert installer.main(["status", "--gimp-dir", d]) == 1
    assert installer.main(["install", "--gimp-dir", d, "--python", str(tmp_path / "none")]) == 1
    assert "error" in capsys.readouterr().err


def test_console_script_is_declared():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["colorize-gan-gimp"] == "plugin.installer:main"
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "colorize_gan/*.py" in package_data["plugin"]
