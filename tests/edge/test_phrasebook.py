"""The phrasebook: reviewed set sentences, looked up before the translation model."""

from __future__ import annotations

import pytest

from edge.translate import Phrasebook, PhrasebookError, TranslationService
from edge.translate.errors import MissingPairError

BOOK = Phrasebook([{"en": "One moment, please.", "ja": "少々お待ちください。"}])


def test_lookup_ignores_case_space_and_final_punctuation():
    assert BOOK.lookup("  one moment, please ", "en", "ja") == "少々お待ちください。"
    assert BOOK.lookup("少々お待ちください", "ja-JP", "en") == "One moment, please."
    assert BOOK.lookup("One moment", "en", "ja") is None
    assert BOOK.lookup("One moment, please.", "en", "es") is None


def test_the_shipped_phrasebook_loads():
    book = Phrasebook.load("config/edge/phrasebook.yaml")
    assert len(book) >= 10
    assert book.lookup("Connecting you to a person", "en", "ja")


@pytest.mark.parametrize("text", ["phrases: {en: x}", "phrases: [{en: ''}]", ": bad: yaml: ["])
def test_a_bad_phrasebook_is_a_clear_error(tmp_path, text):
    p = tmp_path / "pb.yaml"
    p.write_text(text)
    with pytest.raises(PhrasebookError, match="pb.yaml"):
        Phrasebook.load(p)


class NoPairs:
    """A translator without packages (as on these machines): every model route fails."""

    def route(self, src, dst):
        raise MissingPairError(src, dst)


async def test_the_service_answers_from_the_phrasebook_before_the_model():
    svc = TranslationService(NoPairs(), phrasebook=BOOK)  # type: ignore[arg-type]
    try:
        got = await svc.translate("One moment, please.", "en", "ja")
        assert (got.text, got.via) == ("少々お待ちください。", "phrasebook")
        with pytest.raises(MissingPairError):
            await svc.translate("Something else.", "en", "ja")
    finally:
        await svc.aclose()
