"""Async translation with a cache, all model work in one worker thread."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from edge.translate.argos import ArgosTranslator, Translated, base_code
from edge.translate.phrasebook import Phrasebook


class TranslationService:
    """Owns the translator's thread. Use ``async with`` or call ``aclose()``."""

    def __init__(self, translator: ArgosTranslator, *, cache_size: int = 1024,
                 phrasebook: Phrasebook | None = None):
        self.translator = translator
        self.phrasebook = phrasebook
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[str, str, str], Translated] = OrderedDict()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="translate")
        self.hits = self.misses = 0

    async def translate(self, text: str, src: str, dst: str) -> Translated:
        if self.phrasebook is not None:
            known = self.phrasebook.lookup(text, src, dst)
            if known is not None:
                return Translated(known, src, dst, (base_code(src), base_code(dst)), 0.0,
                                  via="phrasebook")
        key = (base_code(src), base_code(dst), text)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            self.hits += 1
            return replace(hit, cached=True, ms=0.0)
        self.translator.route(src, dst)  # a missing pair fails here, without a thread hop
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self._executor, self.translator.translate,
                                            text, src, dst)
        self.misses += 1
        self._cache[key] = result
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return result

    async def aclose(self) -> None:
        await asyncio.to_thread(self._executor.shutdown, True, cancel_futures=True)

    async def __aenter__(self) -> TranslationService:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()
