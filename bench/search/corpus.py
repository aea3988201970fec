"""Deterministic data for bench/search.sh: documents, queries, vectors.

Everything follows from a seed, chunk by chunk (chunk i of anything uses
numpy's generator seeded with (seed, kind, i)), so the first N documents are
the same whatever N is asked, and every system gets the same bytes.

Documents: 20 to 200 words (uniform), words drawn from a Zipf (s = 1.0)
distribution over a vocabulary of pseudo-English words: lower-case ASCII
consonant-vowel syllables, so Strata's UAX #29 tokenizer, RediSearch's and
SQLite's unicode61 agree on every word boundary. No word is a stop word of
RediSearch's list or an FTS5 operator.

Queries: 1 to 3 words, each from one of three frequency bands (common: ranks
1-100, middle: 101-3,000, rare: 3,001-30,000), so the set mixes queries that
match most documents with queries that match a handful.

Vectors: clustered, like embeddings: 256 random centroids, each vector a
centroid plus Gaussian noise (FLOAT32, little-endian). Query vectors are
drawn the same way from the same centroids (with another seed), so their
nearest neighbours are meaningful rather than a random draw.
"""

import numpy as np

CHUNK_DOCS = 10_000
WORDS_MIN, WORDS_MAX = 20, 200
ZIPF_S = 1.0
VOCABULARY_SIZE = 30_000
# RediSearch's default stop words (the same list for every language), and
# the FTS5 query keywords (upper case only in FTS5, excluded anyway).
STOP_WORDS = set(
    "a is the an and are as at be but by for if in into it no not of on or such "
    "that their then there these they this to was will with near".split()
)
BANDS = ((0, 100), (100, 3_000), (3_000, VOCABULARY_SIZE))

_ONSETS = ("b c d f g h j k l m n p r s t v w z br ch cl dr fl gr pl pr sh st th tr").split()
_VOWELS = "a e i o u ai ea ou io".split()
_CODAS = ["", "", "", "n", "r", "s", "l", "t", "m", "nd", "st", "ng"]

KIND_VOCAB, KIND_DOCS, KIND_QUERIES, KIND_CENTROIDS, KIND_VECTORS, KIND_QVECTORS = range(6)


def rng(seed, kind, index=0):
    return np.random.default_rng([seed, kind, index])


def vocabulary(seed):
    """VOCABULARY_SIZE distinct words; index = Zipf rank - 1 (0 is the commonest)."""
    r = rng(seed, KIND_VOCAB)
    seen, words = set(), []
    while len(words) < VOCABULARY_SIZE:
        # Common words short (1-2 syllables), rare ones longer, as in English.
        syllables = int(r.integers(1, 3)) + (1 if len(words) > 1000 else 0) + (
            1 if len(words) > 10_000 else 0
        )
        w = "".join(
            _ONSETS[r.integers(len(_ONSETS))]
            + _VOWELS[r.integers(len(_VOWELS))]
            + _CODAS[r.integers(len(_CODAS))]
            for _ in range(syllables)
        )
        if len(w) >= 2 and w not in STOP_WORDS and w not in seen:
            seen.add(w)
            words.append(w)
    return words


def _zipf_cdf():
    weights = 1.0 / np.arange(1, VOCABULARY_SIZE + 1) ** ZIPF_S
    cdf = np.cumsum(weights)
    return cdf / cdf[-1]


def doc_chunk(seed, chunk, vocab_array, cdf):
    """The CHUNK_DOCS documents of chunk `chunk`, as bytes."""
    r = rng(seed, KIND_DOCS, chunk)
    lengths = r.integers(WORDS_MIN, WORDS_MAX + 1, size=CHUNK_DOCS)
    ranks = np.searchsorted(cdf, r.random(int(lengths.sum())), side="right")
    ranks = np.minimum(ranks, VOCABULARY_SIZE - 1)
    words = vocab_array[ranks].tolist()
    out, at = [], 0
    for n in lengths.tolist():
        out.append(b" ".join(words[at : at + n]))
        at += n
    return out


def documents(seed, count, vocab):
    """Yields (index, bytes) for documents 0..count-1."""
    vocab_array = np.array([w.encode() for w in vocab], dtype=object)
    cdf = _zipf_cdf()
    for chunk in range((count + CHUNK_DOCS - 1) // CHUNK_DOCS):
        docs = doc_chunk(seed, chunk, vocab_array, cdf)
        base = chunk * CHUNK_DOCS
        for i, d in enumerate(docs[: count - base]):
            yield base + i, d


def queries(seed, count, vocab):
    """`count` queries of 1-3 distinct words, each word from a random band."""
    r = rng(seed, KIND_QUERIES)
    out = []
    while len(out) < count:
        n = int(r.integers(1, 4))
        words = []
        for _ in range(n):
            lo, hi = BANDS[int(r.integers(len(BANDS)))]
            words.append(vocab[int(r.integers(lo, hi))])
        if len(set(words)) == n:
            out.append(" ".join(words))
    return out


CENTROIDS = 256
NOISE = 0.35


def _centroids(seed, dim):
    return rng(seed, KIND_CENTROIDS).standard_normal((CENTROIDS, dim)).astype(np.float32)


def vectors(seed, count, dim, kind=KIND_VECTORS):
    """A (count, dim) float32 matrix of clustered vectors."""
    cents = _centroids(seed, dim)
    parts = []
    for chunk in range((count + CHUNK_DOCS - 1) // CHUNK_DOCS):
        r = rng(seed, kind, chunk)
        n = min(CHUNK_DOCS, count - chunk * CHUNK_DOCS)
        which = r.integers(CENTROIDS, size=n)
        noise = r.standard_normal((n, dim)).astype(np.float32) * NOISE
        parts.append(cents[which] + noise)
    return np.concatenate(parts).astype("<f4")


def query_vectors(seed, count, dim):
    return vectors(seed, count, dim, kind=KIND_QVECTORS)


def exact_knn_cosine(data, queries_, k):
    """Exact top-k by cosine distance (1 - cos), float64; returns (ids, distances)."""
    d = data.astype(np.float64)
    d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-300)
    ids, dists = [], []
    for q in queries_.astype(np.float64):
        q = q / max(np.linalg.norm(q), 1e-300)
        dist = 1.0 - d @ q
        top = np.argpartition(dist, k)[:k]
        top = top[np.lexsort((top, dist[top]))]
        ids.append(top)
        dists.append(dist[top])
    return np.array(ids), np.array(dists)


def resp(*args):
    """One RESP command (array of bulk strings)."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        out.append(b"$%d\r\n" % len(a))
        out.append(a)
        out.append(b"\r\n")
    return b"".join(out)
