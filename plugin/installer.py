"""``colorize-gan-gimp install | uninstall | status [--gimp-dir D]``: put the GIMP 3 plug-in where GIMP looks.

GIMP 3 registers a Python plug-in only if it sits at ``<config>/plug-ins/NAME/NAME.py``, the folder name
equal to the file stem, and the file is executable -- otherwise it is skipped *silently* (GIMP-ML's "the
menu never appears"). The installer writes exactly that, plus ``bridge.py`` and ``colorize_gan.json``,
which records the Python that runs the worker: the one running this command (the project's environment).
Before installing it runs that worker once (``--check``), so a broken environment fails here, loudly,
instead of inside GIMP.

The command is ``colorize-gan-gimp`` rather than a ``colorize-gan`` sub-command because nothing in the
runtime imports the plugin package (one-way arrows, docs/CONTRACTS.md).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shutil
import stat
import sys
from pathlib import Path

from plugin import bridge

NAME = "colorize_gan"  # folder name == file stem, as GIMP 3 requires
PROC_NAME = bridge.PROC_NAME
_SRC = Path(__file__).resolve().parent
FILES = {  # installed name -> source
    f"{NAME}.py": _SRC / NAME / f"{NAME}.py",
    "bridge.py": _SRC / "bridge.py",
}


def candidate_dirs(environ: dict | None = None, platform: str | None = None, home: Path | None = None) -> list[Path]:
    """GIMP 3 config folders, most specific first: $GIMP3_DIRECTORY, then the per-platform defaults
    (native, Flatpak and Snap on Linux)."""
    environ = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    home = Path.home() if home is None else home
    dirs = []
    if environ.get("GIMP3_DIRECTORY"):
        dirs.append(Path(environ["GIMP3_DIRECTORY"]))
    if platform.startswith("win"):
        dirs.append(Path(environ.get("APPDATA", home / "AppData" / "Roaming")) / "GIMP" / "3.0")
    elif platform == "darwin":
        dirs.append(home / "Library" / "Application Support" / "GIMP" / "3.0")
    else:
        dirs.append(Path(environ.get("XDG_CONFIG_HOME") or home / ".config") / "GIMP" / "3.0")
        dirs.append(home / ".var" / "app" / "org.gimp.GIMP" / "config" / "GIMP" / "3.0")  # Flatpak
        dirs.append(home / "snap" / "gimp" / "current" / ".config" / "GIMP" / "3.0")  # Snap
    return dirs


def target_dirs(gimp_dir: str | None, environ: dict | None = None) -> list[Path]:
    """Where to install: the explicit folder; else every existing candidate; else the first (created)."""
    if gimp_dir:
        return [Path(gimp_dir).expanduser()]
    dirs = candidate_dirs(environ)
    existing = [d for d in dirs if d.is_dir()]
    return existing or dirs[:1]


def plugin_folder(gimp_dir: Path) -> Path:
    return gimp_dir / "plug-ins" / NAME


def install(gimp_dir: Path, python: str, force: bool = False, out=None) -> Path:
    """Copy the plug-in into ``gimp_dir`` and record ``python``; returns the plug-in folder."""
    out = out or sys.stdout  # resolved per call: a default bound at import time would miss redirection
    try:
        info = bridge.check_worker(python)
    except bridge.WorkerEnvError as exc:
        if not force:
            raise
        print(f"warning: {exc} (installing anyway: --force)", file=out)
        info = {}
    folder = plugin_folder(gimp_dir)
    folder.mkdir(parents=True, exist_ok=True)
    for name, src in FILES.items():
        if not src.is_file():
            raise FileNotFoundError(f"plug-in source {src} is missing from this installation of colorize-gan")
        shutil.copyfile(src, folder / name)
    main = folder / f"{NAME}.py"
    # Executable for everyone who can read it: GIMP skips a non-executable plug-in without a word.
    main.chmod(main.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    config = {
        "python": python,
        "protocol": bridge.PROTOCOL,
        "installed": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "runtime": info.get("runtime"),
    }
    (folder / bridge.CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    print(f"installed the GIMP plug-in into {folder}", file=out)
    for name in sorted(list(FILES) + [bridge.CONFIG_NAME]):
        print(f"  {folder / name}", file=out)
    print(f"worker Python: {python}", file=out)
    for backend, state in (info.get("backends") or {}).items():
        print(f"  backend {backend}: {state}", file=out)
    print("Restart GIMP; then Filters > Colorize (GAN)... should appear.", file=out)
    print(f"Check with: colorize-gan-gimp status --gimp-dir {gimp_dir}", file=out)
    return folder


def uninstall(gimp_dir: Path, out=None) -> bool:
    """Remove the plug-in folder; False if it was not there. Refuses a folder that is not ours."""
    out = out or sys.stdout
    folder = plugin_folder(gimp_dir)
    if not folder.exists():
        print(f"not installed in {gimp_dir}", file=out)
        return False
    if not (folder / bridge.CONFIG_NAME).is_file():
        raise RuntimeError(f"{folder} has no {bridge.CONFIG_NAME}: not installed by colorize-gan-gimp, not removing it")
    shutil.rmtree(folder)
    print(f"removed {folder}", file=out)
    return True


def status(gimp_dir: Path, out=None) -> bool:
    """Check each cause of "the plug-in does not show up"; True when all pass."""
    out = out or sys.stdout
    folder = plugin_folder(gimp_dir)
    main = folder / f"{NAME}.py"
    problems = []
    print(f"GIMP config folder: {gimp_dir}" + ("" if gimp_dir.is_dir() else "  (does not exist)"), file=out)
    if not main.is_file():
        problems.append(f"{main} is missing: run `colorize-gan-gimp install`")
    else:
        if not os.access(main, os.X_OK):
            problems.append(f"{main} is not executable (GIMP skips it silently): chmod +x it or re-install")
        for name in FILES:
            if not (folder / name).is_file():
                problems.append(f"{folder / name} is missing: re-install")
        try:
            python = bridge.worker_python(bridge.load_config(str(folder)), environ={})
            info = bridge.check_worker(python)
            print(f"worker Python: {python} (runtime {info.get('runtime')})", file=out)
            for backend, state in (info.get("backends") or {}).items():
                print(f"  backend {backend}: {state}", file=out)
        except bridge.WorkerEnvError as exc:
            problems.append(str(exc))
    pluginrc = gimp_dir / "pluginrc"
    if pluginrc.is_file():
        # GIMP writes every plug-in it queried into pluginrc: absent after a GIMP restart = GIMP never ran it.
        seen = PROC_NAME in pluginrc.read_text(encoding="utf-8", errors="replace")
        print(f"GIMP's {pluginrc}: {'lists' if seen else 'does NOT list'} {PROC_NAME}", file=out)
        if not seen and main.is_file():
            problems.append("GIMP has not registered the plug-in yet: restart GIMP (or see docs/gimp.md)")
    else:
        print(f"no {pluginrc} yet (GIMP has not run with this config folder)", file=out)
    for problem in problems:
        print(f"PROBLEM: {problem}", file=out)
    if not problems:
        print("OK", file=out)
    return not problems


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(prog="colorize-gan-gimp", description="Install the colorize-gan GIMP 3 plug-in.")
    parser.add_argument("command", choices=("install", "uninstall", "status"))
    parser.add_argument("--gimp-dir", help="GIMP 3 config folder (default: $GIMP3_DIRECTORY, else the usual "
                        "locations: ~/.config/GIMP/3.0, Flatpak, Snap, %%APPDATA%%\\GIMP\\3.0, ~/Library/...)")
    parser.add_argument("--python", default=sys.executable,
                        help="Python that runs the worker (default: this one, i.e. the project's environment)")
    parser.add_argument("--force", action="store_true", help="install even if the worker check fails")
    args = parser.parse_args(argv)
    try:
        dirs = target_dirs(args.gimp_dir)
        if args.command == "install":
            for d in dirs:
                install(d, args.python, force=args.force)
            return 0
        if args.command == "uninstall":
            for d in dirs:
                uninstall(d)
            return 0
        return 0 if all([status(d) for d in dirs]) else 1
    except (bridge.BridgeError, OSError, RuntimeError) as exc:
        print(f"colorize-gan-gimp: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
