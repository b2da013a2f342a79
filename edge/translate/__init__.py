"""Offline translation for the edge: Argos packages, an offline splitter, a pivot, a cache."""

from edge.translate.argos import ArgosTranslator, Translated
from edge.translate.errors import MissingPairError, PackageError, TranslationError
from edge.translate.phrasebook import Phrasebook, PhrasebookError
from edge.translate.service import TranslationService

__all__ = [
           "ArgosTranslator",
           "MissingPairError",
           "PackageError",
           "Phrasebook",
           "PhrasebookError",
           "Translated",
           "TranslationError",
           "TranslationService",
]
