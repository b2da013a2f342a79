"""Translation through argostranslate's real load-and-translate path, offline, on tiny
deterministic packages built in the test session."""

from __future__ import annotations

import asyncio
import zipfile

import pytest

from edge.translate import (
    ArgosTranslator,
    MissingPairError,
    PackageError,
    TranslationService,
)
from edge.translate.packages import install_package, installed_packages
from edge.translate.splitter import Splitter, split_sentences


@pytest.fixture(scope="module")
def installed(argos_packages, tmp_path_factory):
    root = tmp_path_factory.mktemp("argos")
    for f in sorted(argos_packages.glob("*.argosmodel")):
        install_package(f, root)
    return root


@pytest.fixture(scope="module")
def translator(installed):
    return ArgosTranslator(installed, pivot="en")


def test_packages_install_and_list(installed):
    pkgs = {(p.from_code, p.to_code) for p in installed_packages(installed)}
    assert pkgs == {("en", "es"), ("es", "en"), ("en", "ja")}


def test_direct_translation_uses_argos_package_translation(translator):
    from argostranslate.translate import PackageTranslation

    assert isinstance(translator._pairs[("en", "es")], PackageTranslation)
    out = translator.translate("I need help with my tax bill.", "en", "es")
    assert (out.text, out.route) == ("hola", ("en", "es"))


def test_offline_splitter_is_used_sentence_by_sentence(translator):
    assert all(isinstance(t.sentencizer, Splitter) for t in translator._pairs.values())
    # two sentences -> two translated sentences (the tiny model says one word each)
    assert translator.translate("Good morning. Where is the tax office?", "en", "es").text \
        == "holahola"
    assert split_sentences("おはようございます。税務課はどこですか？", "ja") == [
        "おはようございます。", "税務課はどこですか？"]
    assert split_sentences("Olá. Tudo bem?", "pt") == ["Olá.", "Tudo bem?"]  # no pysbd model


def test_pivot_through_english(translator):
    out = translator.translate("¿Dónde está la oficina?", "es", "ja")
    assert out.route == ("es", "en", "ja") and out.text == "こんにちは"


def test_missing_pair_names_the_package(translator):
    with pytest.raises(MissingPairError) as err:
        translator.translate("こんにちは", "ja", "es")
    msg = str(err.value)
    assert "translate-ja_es" in msg and "baton models install" in msg
    assert err.value.package == "translate-ja_es"


def test_service_caches_and_runs_in_a_thread(translator):
    async def go():
        async with TranslationService(translator, cache_size=2) as svc:
            a = await svc.translate("Hello.", "en", "es")
            b = await svc.translate("Hello.", "en", "es")
            with pytest.raises(MissingPairError):
                await svc.translate("x", "pt", "en")
            return a, b, svc.hits

    a, b, hits = asyncio.run(go())
    assert a.text == b.text == "hola" and not a.cached and b.cached and hits == 1


def test_bad_archives_are_refused(tmp_path):
    bad = tmp_path / "bad.argosmodel"
    bad.write_bytes(b"not a zip")
    with pytest.raises(PackageError, match="not an .argosmodel"):
        install_package(bad, tmp_path / "argos")
    evil = tmp_path / "evil.argosmodel"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../escape/metadata.json", "{}")
    with pytest.raises(PackageError, match="unsafe path"):
        install_package(evil, tmp_path / "argos")
    empty = tmp_path / "empty.argosmodel"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("translate-en_xx/metadata.json", '{"from_code": "en", "to_code": "xx"}')
    with pytest.raises(PackageError, match="no model/model.bin"):
        install_package(empty, tmp_path / "argos")


def test_corrupt_package_model_fails_at_load(argos_packages, tmp_path):
    root = tmp_path / "argos"
    pkg = install_package(argos_packages / "translate-en_es.argosmodel", root)
    (pkg.path / "model" / "model.bin").write_bytes(b"garbage")
    with pytest.raises(PackageError, match="corrupt model.*reinstall translate-en_es"):
        ArgosTranslator(root)
