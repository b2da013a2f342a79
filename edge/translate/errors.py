"""Translation errors: each message says what to install or fix."""

from __future__ import annotations

from common.errors import BatonError


class TranslationError(BatonError):
    reason = "translation_error"


class MissingPairError(TranslationError):
    """No installed package (nor pivot through English) translates src -> dst."""

    reason = "translation_pair_missing"

    def __init__(self, src: str, dst: str, pivot: str | None = None):
        self.src, self.dst, self.pivot = src, dst, pivot
        need = f"translate-{src}_{dst}"
        alt = (f" (or both translate-{src}_{pivot} and translate-{pivot}_{dst} to pivot "
               f"through {pivot})" if pivot and pivot not in (src, dst) else "")
        super().__init__(f"no translation from {src} to {dst}: install the Argos package "
                         f"{need}{alt} with `baton models install FILE.argosmodel` or, "
                         f"online, `baton models fetch {need}`")
        self.package = need


class PackageError(TranslationError):
    reason = "translation_package_invalid"
