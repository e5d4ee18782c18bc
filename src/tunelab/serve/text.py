"""Token ids -> text pieces as they are generated, for streaming.

Two things make this more than `decode(new_id)`: a character may take several byte-level tokens (an emoji, an
accented letter), so a piece is only released once it no longer ends in a half character (U+FFFD); and a stop
string may arrive split over several tokens, so text that could be the start of one is held back until it is clear
either way. The stop string itself is never shown, as OpenAI does. At the end, whatever is left is released as
`decode` gives it (a character cut by max_tokens shows as U+FFFD), so the whole text equals decoding every token.
"""

from __future__ import annotations

from typing import Any

_INCOMPLETE = "\ufffd"


class IncrementalText:
    """Feed token ids with `push`; it returns the text that may be shown now and whether a stop string ended it."""

    def __init__(self, tokenizer: Any, stop: list[str]) -> None:
        self._tokenizer = tokenizer
        self._stop = [s for s in stop if s]
        self._ids: list[int] = []
        self._prefix = 0  # ids[_prefix:_read] decode to text already taken: the context for the next piece
        self._read = 0
        self.text = ""  # everything decoded so far (up to a stop string)
        self._shown = 0  # how much of `text` was returned
        self._stopped = False

    def push(self, token_id: int) -> tuple[str, bool]:
        self._ids.append(token_id)
        before, after = self._pending()
        if after.endswith(_INCOMPLETE) or len(after) <= len(before):
            return "", False  # half a character (or a special token): wait for more
        self.text += after[len(before):]
        self._prefix, self._read = self._read, len(self._ids)
        cut = self._stop_at()
        if cut is not None:
            self.text, self._stopped = self.text[:cut], True
            return self._release(len(self.text)), True
        return self._release(len(self.text) - self._held_back()), False

    def flush(self) -> str:
        """The rest: text held back for a stop string that did not come, and tokens of an unfinished character."""
        if not self._stopped:
            before, after = self._pending()
            self.text += after[len(before):]
            self._prefix = self._read = len(self._ids)
        return self._release(len(self.text))

    def _pending(self) -> tuple[str, str]:
        """The decoded context, and the context with the tokens not yet turned into text."""
        decode = self._tokenizer.decode
        return (decode(self._ids[self._prefix:self._read], skip_special_tokens=True),
                decode(self._ids[self._prefix:], skip_special_tokens=True))

    def _stop_at(self) -> int | None:
        """Where the first stop string starts, looking only where a new one can be."""
        longest = max((len(s) for s in self._stop), default=0)
        start = max(0, self._shown - longest)
        found = [i for i in (self.text.find(s, start) for s in self._stop) if i >= 0]
        return min(found) if found else None

    def _held_back(self) -> int:
        """Length of the longest end of `text` that begins some stop string."""
        for size in range(min(len(self.text), max((len(s) for s in self._stop), default=0)), 0, -1):
            tail = self.text[-size:]
            if any(s.startswith(tail) for s in self._stop):
                return size
        return 0

    def _release(self, upto: int) -> str:
        piece = self.text[self._shown:max(upto, self._shown)]
        self._shown += len(piece)
        return piece
