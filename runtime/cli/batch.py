"""Batch planning for the CLI: expand inputs (files, folders, globs) into (input, output) jobs.

Pure path logic, no image decoding, so it is cheap to test: recursive folder walks keep the
relative layout under the output folder; outputs never land on an input; name collisions and
missing inputs become per-file errors; ``--shard I/N`` keeps a stable subset for split jobs (``--shard auto``
reads I and N from a Slurm job array or a Kubernetes Indexed Job).
"""
from __future__ import annotations

import glob
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp", ".gif", ".pgm", ".ppm", ".pbm", ".pnm",
              ".jp2", ".j2k", ".jfif", ".tga", ".psd", ".ico"}
VIDEO_EXTS = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts", ".m2ts", ".3gp"}
WRITABLE = {".jpg": ".jpg", ".jpeg": ".jpg", ".jfif": ".jpg", ".png": ".png", ".tif": ".tif", ".tiff": ".tif", ".webp": ".webp"}
OUTPUT_FORMATS = ("same", "jpg", "png", "webp", "tif")
HINT_SUFFIX = ".hints.png"  # NAME.hints.png beside NAME.jpg: that photo's colour hints (runtime/image/hints.py)
# NAME.ref.jpg (or .jpeg/.png/.webp/.tif/.tiff) beside NAME.jpg: that photo's colour reference (runtime/image/reference.py)
REFERENCE_SUFFIXES = tuple(".ref" + e for e in (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff"))


@dataclass
class Job:
    input: Path
    output: Path | None
    error: str | None = None  # set when the job is known to fail before decoding
    hints: Path | None = None  # colour-hint image: --hints, or the NAME.hints.png sidecar beside the input
    reference: Path | None = None  # the NAME.ref.jpg sidecar beside the input (a shared --reference is not here)


def sidecar(src: Path) -> Path | None:
    """The hint sidecar of an input (``NAME.hints.png`` beside ``NAME.EXT``), if there is one."""
    side = src.with_name(src.stem + HINT_SUFFIX)
    return side if side.is_file() else None


def reference_sidecar(src: Path) -> Path | None:
    """The colour reference beside an input (``NAME.ref.jpg`` etc. beside ``NAME.EXT``, any letter case), if any."""
    for suffix in REFERENCE_SUFFIXES:
        for variant in (suffix, suffix.upper(), ".ref" + suffix[4:].upper()):
            p = src.with_name(src.stem + variant)
            if p.is_file():
                return p
    return None


def is_sidecar(p: Path) -> bool:
    """A hint image (``NAME.hints.png``), or a reference (``NAME.ref.jpg``) with its picture ``NAME.*`` beside it:
    not an input of its own. A ``holiday.ref.jpg`` with no ``holiday.*`` beside it is a picture like any other."""
    name = p.name.lower()
    if name.endswith(HINT_SUFFIX):
        return True
    if not name.endswith(REFERENCE_SUFFIXES):
        return False
    stem = p.name[: p.name.lower().rindex(".ref.")]
    return any(q.is_file() and q.suffix.lower() in IMAGE_EXTS and not q.name.lower().endswith(REFERENCE_SUFFIXES)
               for q in p.parent.glob(glob.escape(stem) + ".*"))


def parse_shard(text: str, what: str = "--shard") -> tuple[int, int]:
    """'I/N' with 1 <= I <= N -> (I, N); ValueError with a readable message otherwise."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ValueError(f"{what} wants I/N (e.g. 2/8) or auto, got {text!r}") from None
    if not 1 <= i <= n:
        raise ValueError(f"{what} I/N needs 1 <= I <= N, got {text!r}")
    return i, n


# Scheduler variables that --shard auto reads (docs/cluster.md has a Slurm array script and a Kubernetes Indexed Job).
SHARD_ENV = "COLORIZE_GAN_SHARD"  # I/N set by hand or by any other scheduler's job script
SHARD_COUNT_ENV = "COLORIZE_GAN_SHARD_COUNT"  # N for a Kubernetes Indexed Job (Kubernetes gives the index, not the count)


def shard_from_environment(env: dict[str, str]) -> tuple[tuple[int, int], str]:
    """``--shard auto``: (I, N) and where it came from, read from a Slurm job array, a Kubernetes Indexed Job or
    COLORIZE_GAN_SHARD; ValueError saying what is missing otherwise. Slurm: task IDs MIN, MIN+STEP, ... map to shards
    1..SLURM_ARRAY_TASK_COUNT (``--array=0-7`` and ``--array=1-8`` both give 8 shards; a task list with gaps does
    not map and is refused). Kubernetes: JOB_COMPLETION_INDEX (0-based) and the count in COLORIZE_GAN_SHARD_COUNT,
    set to the Job's ``completions``."""
    if env.get(SHARD_ENV):
        if "/" not in env[SHARD_ENV]:
            raise ValueError(f"--shard auto: {SHARD_ENV} wants I/N (e.g. 2/8), got {env[SHARD_ENV]!r}")
        return parse_shard(env[SHARD_ENV], SHARD_ENV), f"{SHARD_ENV}={env[SHARD_ENV]}"
    if env.get("SLURM_ARRAY_TASK_ID"):
        try:
            task, count = int(env["SLURM_ARRAY_TASK_ID"]), int(env.get("SLURM_ARRAY_TASK_COUNT", ""))
            first, step = int(env.get("SLURM_ARRAY_TASK_MIN", "")), int(env.get("SLURM_ARRAY_TASK_STEP") or 1)
        except ValueError:
            raise ValueError("--shard auto: SLURM_ARRAY_TASK_ID, _COUNT and _MIN must be set, and with _STEP be "
                             "integers") from None
        if step <= 0 or count <= 0:
            raise ValueError(f"--shard auto: SLURM_ARRAY_TASK_STEP ({step}) and _COUNT ({count}) must be positive")
        i, off = divmod(task - first, step)
        if off or not 0 <= i < count:
            raise ValueError(f"--shard auto: Slurm array task {task} is not one of {count} evenly spaced tasks from "
                             f"{first}; use a range such as --array=0-{count - 1}")
        return (i + 1, count), f"Slurm array task {task} of {count}"
    if env.get("JOB_COMPLETION_INDEX"):
        if not env.get(SHARD_COUNT_ENV):
            raise ValueError(f"--shard auto: Kubernetes gives the index (JOB_COMPLETION_INDEX) but not the count; set "
                             f"{SHARD_COUNT_ENV} to the Job's completions")
        try:
            index, count = int(env["JOB_COMPLETION_INDEX"]), int(env[SHARD_COUNT_ENV])
        except ValueError:
            raise ValueError(f"--shard auto: JOB_COMPLETION_INDEX and {SHARD_COUNT_ENV} must be integers") from None
        if not 0 <= index < count:
            raise ValueError(f"--shard auto: JOB_COMPLETION_INDEX {index} is outside 0..{count - 1} ({SHARD_COUNT_ENV})")
        return (index + 1, count), f"Kubernetes completion index {index} of {count}"
    raise ValueError("--shard auto: no scheduler variables found (Slurm job array: SLURM_ARRAY_TASK_ID; Kubernetes "
                     f"Indexed Job: JOB_COMPLETION_INDEX with {SHARD_COUNT_ENV}; or set {SHARD_ENV}=I/N)")


def in_shard(key: str, shard: tuple[int, int] | None) -> bool:
    """Hash-based (crc32 of the relative path): stable when files are added between jobs, and
    every file is in exactly one shard."""
    if shard is None:
        return True
    i, n = shard
    return zlib.crc32(key.encode("utf-8", "surrogateescape")) % n == i - 1


def _has_magic(s: str) -> bool:
    return any(c in s for c in "*?[")


def expand(inputs: list[str]) -> list[tuple[Path, Path | None, str | None]]:
    """-> (file, root folder it was found under or None, error) for every input argument."""
    found: list[tuple[Path, Path | None, str | None]] = []
    for arg in inputs:
        p = Path(arg).expanduser()
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTS and not is_sidecar(f)
                           and not any(part.startswith(".") for part in f.relative_to(p).parts))
            found.extend((f, p, None) for f in files)
        elif p.exists():
            found.append((p, None, None))
        elif _has_magic(arg):
            matches = sorted(Path(m) for m in glob.glob(os.path.expanduser(arg), recursive=True))
            files = [m for m in matches if m.is_file() and not is_sidecar(m)]
            if not files:
                found.append((p, None, "no files match this pattern"))
            found.extend((m, None, None) for m in files)
        else:
            found.append((p, None, "no such file or directory"))
    return found


def output_suffix(src: Path, fmt: str) -> str:
    if fmt != "same":
        return "." + fmt
    return WRITABLE.get(src.suffix.lower(), ".png")


def plan(inputs: list[str], output: str, fmt: str = "same", shard: tuple[int, int] | None = None,
         hints: str | None = None) -> list[Job]:
    """Jobs for ``inputs``. ``output`` is a file when there is exactly one input file and it has an
    image suffix; otherwise a folder (created by the caller). ``hints``: a hint image for the one input
    (the caller checks there is one); otherwise each input's sidecar, if any."""
    found = expand(inputs)
    out = Path(output).expanduser()
    single_file = len(found) == 1 and found[0][1] is None and found[0][2] is None and out.suffix.lower() in WRITABLE \
        and not out.is_dir()
    input_keys = {_key(f) for f, _, err in found if err is None}
    jobs: list[Job] = []
    claimed: dict[Path, Path] = {}
    for src, root, err in found:
        rel = src.relative_to(root) if root is not None else Path(src.name)
        key = (root.name + "/" if root is not None else "") + rel.as_posix()
        if not in_shard(key, shard):
            continue
        if err is not None:
            jobs.append(Job(src, None, err))
            continue
        if src.suffix.lower() in VIDEO_EXTS:
            jobs.append(Job(src, None, "is a video; use `colorize-gan video INPUT -o OUTPUT`"))
            continue
        dst = out if single_file else out / rel.with_suffix(output_suffix(src, fmt))
        if _key(dst) in input_keys:
            jobs.append(Job(src, dst, "output would overwrite an input file; choose another -o folder or --format"))
        elif _key(dst) in claimed:
            jobs.append(Job(src, dst, f"output name collides with {claimed[_key(dst)]}"))
        else:
            claimed[_key(dst)] = src
            jobs.append(Job(src, dst, hints=Path(hints).expanduser() if hints else sidecar(src),
                            reference=reference_sidecar(src)))
    return jobs


def _key(p: Path) -> Path:
    """Comparable identity of a path that may not exist yet."""
    try:
        return p.resolve()
    except OSError:  # e.g. a symlink loop; compare the absolute path instead
        return p.absolute()
