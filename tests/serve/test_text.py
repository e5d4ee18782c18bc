"""Streaming text: pieces never split a UTF-8 character, and a stop string is never shown, even split over tokens."""

from __future__ import annotations

from tunelab.serve.text import IncrementalText


def _stream(tokenizer, text: str, stop: list[str]) -> tuple[list[str], bool]:
    pieces, stopped = [], False
    stream = IncrementalText(tokenizer, stop)
    for token in tokenizer(text, add_special_tokens=False)["input_ids"]:
        piece, stopped = stream.push(token)
        pieces.append(piece)
        if stopped:
            break
    return [*pieces, stream.flush()], stopped


def test_multibyte_characters_arrive_whole(tiny_tokenizer):
    text = "héllo 😀 wörld, ça va? 日本"
    assert len(tiny_tokenizer(text, add_special_tokens=False)["input_ids"]) > len(text)  # bytes, not characters
    pieces, stopped = _stream(tiny_tokenizer, text, [])
    assert "".join(pieces) == text and not stopped
    assert not any("\ufffd" in p for p in pieces)


def test_a_stop_string_split_over_tokens_is_cut_and_never_shown(tiny_tokenizer):
    pieces, stopped = _stream(tiny_tokenizer, "thanks for your order END OF ANSWER and more", ["END OF", "zzz"])
    assert stopped and "".join(pieces) == "thanks for your order "
    assert not any("END" in p for p in pieces)


def test_text_that_only_starts_like_a_stop_string_is_released_at_the_end(tiny_tokenizer):
    pieces, stopped = _stream(tiny_tokenizer, "order EN", ["END"])
    assert not stopped and "".join(pieces) == "order EN" and pieces[-1].endswith("EN")


def test_a_character_cut_by_max_tokens_shows_as_decode_shows_it(tiny_tokenizer):
    ids = tiny_tokenizer("ok 😀", add_special_tokens=False)["input_ids"][:-1]  # the emoji's last byte missing
    stream = IncrementalText(tiny_tokenizer, [])
    text = "".join(stream.push(i)[0] for i in ids) + stream.flush()
    assert text == tiny_tokenizer.decode(ids) and text.endswith("\ufffd")
