"""Near-duplicate search: MinHash signatures (rensa) over character 5-grams, LSH banding, connected components.

Shingling is vectorised over Arrow's flat string buffer (no Python loop per row), rensa computes the digests in Rust,
and the banding and candidate verification run in numpy, so a million short rows take well under a minute.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import rensa
from scipy.integrate import quad
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

NGRAM = 5
_SEED = 1234
_CHUNK = 50_000
_MULT = np.uint64(0x100000001B3)


def _prepare(texts: Sequence[str] | pa.Array) -> pa.Array:
    """Lowercase and squeeze whitespace so shingles see the words, not the layout."""
    array = texts.cast(pa.large_string()) if isinstance(texts, pa.Array) else pa.array(texts, type=pa.large_string())
    array = pc.utf8_lower(array.fill_null(""))
    return pc.utf8_trim_whitespace(pc.replace_substring_regex(array, r"\s+", " "))


def _shingle_hashes(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of every NGRAM-byte window of each string, flat, with row offsets; short strings hash whole."""
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int64)[array.offset: array.offset + len(array) + 1]
    data = np.frombuffer(array.buffers()[2], dtype=np.uint8) if array.buffers()[2] else np.zeros(0, np.uint8)
    data = data.astype(np.uint64)
    starts, ends = offsets[:-1], offsets[1:]
    lengths = ends - starts
    windows = np.maximum(lengths - NGRAM + 1, 1)
    row_of = np.repeat(np.arange(len(array)), windows)
    first = np.repeat(starts, windows)
    position = first + (np.arange(row_of.size) - np.repeat(np.cumsum(windows) - windows, windows))
    with np.errstate(over="ignore"):
        hashes = np.full(row_of.size, 0xCBF29CE484222325, dtype=np.uint64)
        row_end = np.repeat(ends, windows)
        for k in range(NGRAM):
            index = position + k
            inside = index < row_end
            byte = np.where(inside, data[np.minimum(index, max(data.size - 1, 0))] if data.size else 0, 0)
            hashes = (hashes ^ byte.astype(np.uint64)) * _MULT
    token_offsets = np.concatenate([[0], np.cumsum(windows)]).astype(np.uint64)
    return hashes, token_offsets


def signatures(texts: Sequence[str] | pa.Array, num_perm: int = 128) -> np.ndarray:
    """One MinHash signature (uint32 row of `num_perm`) per text."""
    array = _prepare(texts)
    out = np.empty((len(array), num_perm), dtype=np.uint32)
    for start in range(0, len(array), _CHUNK):
        hashes, offsets = _shingle_hashes(array.slice(start, _CHUNK))
        matrix = rensa.RMinHash.digest_matrix_from_flat_token_hashes(hashes, offsets, num_perm, _SEED)
        out[start: start + _CHUNK] = np.asarray(matrix.to_rows(), dtype=np.uint64).astype(np.uint32)
    return out


@lru_cache(maxsize=32)
def lsh_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """Bands b and rows r (b*r <= num_perm) weighing missed pairs 9:1 against false candidates at `threshold`.

    Every candidate is verified by its estimated similarity afterwards, so a false candidate costs a comparison,
    while a missed pair is a duplicate left in the data: recall is worth more.
    """

    def false_positive(b: int, r: int) -> float:
        return quad(lambda s: 1 - (1 - s**r) ** b, 0.0, threshold)[0]

    def false_negative(b: int, r: int) -> float:
        return quad(lambda s: 1 - (1 - (1 - s**r) ** b), threshold, 1.0)[0]

    options = [(b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1)]
    return min(options, key=lambda br: 0.1 * false_positive(*br) + 0.9 * false_negative(*br))


def _candidate_pairs(sigs: np.ndarray, threshold: float) -> np.ndarray:
    """Pairs (i, j) sharing a band and whose estimated Jaccard similarity reaches the threshold."""
    bands, rows = lsh_bands(threshold, sigs.shape[1])
    rng = np.random.default_rng(_SEED)
    pairs = []
    for band in range(bands):
        block = sigs[:, band * rows: (band + 1) * rows].astype(np.uint64)
        mult = rng.integers(1, 2**63, size=rows, dtype=np.uint64) | np.uint64(1)
        with np.errstate(over="ignore"):
            keys = (block * mult).sum(axis=1)
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        same = sorted_keys[1:] == sorted_keys[:-1]
        if not same.any():
            continue
        # link each member of a run of equal keys to the run's first member (a star per bucket)
        run_start = np.maximum.accumulate(np.where(np.concatenate([[True], ~same]), np.arange(len(keys)), 0))
        member = np.nonzero(np.concatenate([[False], same]))[0]
        pairs.append(np.stack([order[run_start[member]], order[member]], axis=1))
    if not pairs:
        return np.zeros((0, 2), dtype=np.int64)
    candidates = np.unique(np.concatenate(pairs), axis=0)
    similarity = (sigs[candidates[:, 0]] == sigs[candidates[:, 1]]).mean(axis=1)
    return candidates[similarity >= threshold]


def clusters(sigs: np.ndarray, threshold: float) -> list[np.ndarray]:
    """Groups of row indices (size >= 2, each sorted) that are near duplicates of one another."""
    pairs = _candidate_pairs(sigs, threshold)
    if not len(pairs):
        return []
    n = len(sigs)
    graph = coo_matrix((np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    order = np.argsort(labels, kind="stable")
    groups = np.split(order, np.nonzero(np.diff(labels[order]))[0] + 1)
    return [g for g in groups if len(g) > 1]


def matches(query: np.ndarray, reference: np.ndarray, threshold: float) -> np.ndarray:
    """Boolean mask over `query` rows that are near duplicates of some `reference` row."""
    if not len(query) or not len(reference):
        return np.zeros(len(query), dtype=bool)
    pairs = _candidate_pairs(np.concatenate([query, reference]), threshold)
    n = len(query)
    crossing = (pairs[:, 0] < n) != (pairs[:, 1] < n)
    found = np.zeros(len(query), dtype=bool)
    found[np.minimum(pairs[crossing, 0], pairs[crossing, 1])] = True
    return found
