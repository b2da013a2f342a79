"""Installing and listing Argos ``.argosmodel`` packages in the models directory.

A package is a zip of one directory holding ``metadata.json``, a CTranslate2 model in
``model/`` and a tokenizer (``sentencepiece.model`` or ``bpe.model``). Installing checks all
of that and extracts safely (no path may leave the target directory).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from edge.translate.errors import PackageError, TranslationError


@dataclass(frozen=True, slots=True)
class PackageInfo:
    name: str
    path: Path
    from_code: str
    to_code: str
    version: str


def read_package(path: Path) -> PackageInfo:
    meta_path = path / "metadata.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PackageError(f"{path} is not an Argos package ({meta_path}: {exc}): remove it "
                           "and install the .argosmodel again") from None
    if meta.get("type", "translate") != "translate":
        raise PackageError(f"{path}: package type {meta.get('type')!r} is not a translation")
    src, dst = meta.get("from_code"), meta.get("to_code")
    if not src or not dst:
        raise PackageError(f"{meta_path} lacks from_code/to_code: not a translation package")
    if not (path / "model" / "model.bin").is_file():
        raise PackageError(f"{path} has no model/model.bin: the package is incomplete; "
                           "install it again")
    if not ((path / "sentencepiece.model").is_file() or (path / "bpe.model").is_file()):
        raise PackageError(f"{path} has no sentencepiece.model or bpe.model: the package is "
                           "incomplete; install it again")
    return PackageInfo(path.name, path, src, dst, str(meta.get("package_version", "")))


def installed_packages(root: Path) -> list[PackageInfo]:
    if not root.is_dir():
        return []
    return [read_package(p) for p in sorted(root.iterdir())
            if p.is_dir() and not p.name.startswith(".")]


def install_package(archive: Path, root: Path) -> PackageInfo:
    """Install one .argosmodel file into ``root`` (replacing the same package)."""
    if not archive.is_file():
        raise PackageError(f"{archive} does not exist: give the path of an .argosmodel file")
    if not zipfile.is_zipfile(archive):
        raise PackageError(f"{archive} is not an .argosmodel (a zip archive): download it "
                           "again")
    with zipfile.ZipFile(archive) as zf:
        names = [n for n in zf.namelist() if n and not n.endswith("/")]
        tops = {PurePosixPath(n).parts[0] for n in names}
        for n in names:
            p = PurePosixPath(n)
            if p.is_absolute() or ".." in p.parts:
                raise PackageError(f"{archive} holds an unsafe path {n!r}: refusing to install")
        if len(tops) != 1:
            raise PackageError(f"{archive} must hold exactly one package directory, found "
                               f"{sorted(tops)}")
        top = tops.pop()
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=root, prefix=".install-") as tmp:
            zf.extractall(tmp)
            read_package(Path(tmp) / top)  # refuse an incomplete package before replacing
            target = root / top
            if target.exists():
                shutil.rmtree(target)
            os.replace(Path(tmp) / top, target)
    return read_package(target)


def fetch_package(name: str, root: Path) -> PackageInfo:
    """Online deployments: download ``translate-xx_yy`` from the Argos index and install it."""
    from argostranslate import package as argos_package

    if not name.startswith("translate-") or "_" not in name:
        raise PackageError(f"unknown model name {name!r}: use base, tiny.en or "
                           "translate-xx_yy (e.g. translate-es_en)")
    src, dst = name.removeprefix("translate-").split("_", 1)
    argos_package.update_package_index()
    try:
        available = argos_package.get_available_packages()
    except (OSError, ValueError) as exc:
        raise TranslationError(f"cannot read the Argos package index ({exc}): this needs the "
                               "network; offline, copy the .argosmodel file and use "
                               "`baton models install FILE`") from None
    match = [p for p in available if p.from_code == src and p.to_code == dst]
    if not match:
        raise PackageError(f"the Argos index has no package {name}")
    try:
        path = match[0].download()
    except Exception as exc:  # noqa: BLE001 - argostranslate raises bare Exception
        raise TranslationError(f"download of {name} failed ({exc}): check the network") \
            from None
    return install_package(Path(path), root)
