"""Reply comparison for the search differential test: RESP types kept
apart, scores within tolerance, FT.SEARCH hits with ties, FT.INFO views."""

from resp import Double, Err, Map, Simple

SCORE_REL_TOL = 1e-6
# RediSearch computes distances in float32, Strata in f64.
DIST_ABS_TOL = 2e-5
DIST_REL_TOL = 2e-5


# ---------------------------------------------------------------- comparing


def same(a, b, tol=None):
    """Exact equality with RESP types kept apart (a simple string is not a
    bulk string, a map is not an array); `tol(a, b)` may accept two bulk
    strings that are close numbers."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y, tol) for x, y in zip(a, b))
    if isinstance(a, Double):
        return close(float(a), float(b), SCORE_REL_TOL, 0.0)
    if a == b:
        return True
    return tol is not None and isinstance(a, bytes) and tol(a, b)


def close(x, y, rel, abs_):
    if x == y or (x != x and y != y):  # equal (infinities too), or both NaN
        return True
    return abs(x - y) <= max(abs_, rel * max(abs(x), abs(y)))


def as_float(b):
    try:
        return float(b)
    except (TypeError, ValueError):
        return None


def short(r, n=600):
    s = repr(r)
    return s if len(s) <= n else s[:n] + f"... ({len(s)} chars)"


class Hit:
    def __init__(self, key, score, fields):
        self.key, self.score, self.fields = key, score, fields

    def __repr__(self):
        return f"Hit({self.key!r}, {self.score!r}, {self.fields!r})"


def parse_search(r, withscores):
    """A RESP2 FT.SEARCH reply as (total, [Hit]), or None if not that shape."""
    if not isinstance(r, list) or not r or not isinstance(r[0], int):
        return None
    hits, i = [], 1
    while i < len(r):
        key = r[i]
        if not isinstance(key, bytes):
            return None
        i += 1
        score = None
        if withscores:
            if i >= len(r) or not isinstance(r[i], bytes):
                return None
            score = r[i]
            i += 1
        fields = None
        if i < len(r) and isinstance(r[i], list):
            fields = r[i]
            i += 1
        hits.append(Hit(key, score, fields))
    return r[0], hits


def fields_same(a, b, score_field):
    """Two field lists; the KNN distance field is compared within float32
    precision, everything else exactly."""
    if a is None or b is None:
        return a is b
    if len(a) != len(b):
        return False
    for i in range(0, len(a) - 1, 2):
        if not same(a[i], b[i]):
            return False
        if a[i] == score_field:
            x, y = as_float(a[i + 1]), as_float(b[i + 1])
            if x is None or y is None or not close(x, y, DIST_REL_TOL, DIST_ABS_TOL):
                return False
        elif not same(a[i + 1], b[i + 1]):
            return False
    return True


# -------------------------------------------------------------- comparators


def cmp_exact(st, rs, tol=None):
    return None if same(st, rs, tol) else "replies differ"


def cmp_error_text(st, rs, normalize=None):
    """Both errors with the same text (after `normalize`, for names that
    differ by design, such as ON STRING / ON HASH)."""
    if not isinstance(rs, Err):
        return cmp_exact(st, rs)
    if not isinstance(st, Err):
        return "RediSearch answers an error, Strata does not"
    s = normalize(st.text) if normalize else st.text
    return None if s == rs.text else "error texts differ"


def cmp_search(st, rs, withscores=False, order="ranked", rs_scores=None, score_field=None):
    """FT.SEARCH replies.

    order: "ranked" (hits in the same order, scores within 1e-6 relative; two
    keys may swap only where RediSearch scores them equal, `rs_scores` being
    RediSearch's key -> score over all hits), "exact" (same keys in the same
    order: SORTBY on unique values, KNN), "set" (same hits in any order: the
    default scorers differ, TFIDF against BM25 b = 0.75).
    """
    if isinstance(rs, Err) or isinstance(st, Err):
        return cmp_error_text(st, rs)
    ps, pr = parse_search(st, withscores), parse_search(rs, withscores)
    if pr is None:
        return cmp_exact(st, rs)
    if ps is None:
        return "Strata's reply is not an FT.SEARCH reply"
    (ts, hs), (tr, hr) = ps, pr
    if ts != tr:
        return f"totals differ: {ts} vs {tr}"
    if len(hs) != len(hr):
        return f"page sizes differ: {len(hs)} vs {len(hr)}"
    if order == "set":
        hs, hr = sorted(hs, key=lambda h: h.key), sorted(hr, key=lambda h: h.key)
    by_key = {h.key: h for h in hr}
    for i, (a, b) in enumerate(zip(hs, hr)):
        if a.key != b.key:
            if order != "ranked" or rs_scores is None:
                return f"hit {i}: key {a.key!r} vs {b.key!r}"
            sa, sb = rs_scores.get(a.key), rs_scores.get(b.key)
            if sa is None or sb is None or not close(sa, sb, 1e-9, 0.0):
                return f"hit {i}: key {a.key!r} vs {b.key!r} (not a tie)"
        if withscores:
            x, y = as_float(a.score), as_float(b.score)
            if x is None or y is None:
                return f"hit {i}: score {a.score!r} vs {b.score!r}"
            tol_rel = SCORE_REL_TOL if score_field is None else DIST_REL_TOL
            tol_abs = 0.0 if score_field is None else DIST_ABS_TOL
            if not close(x, y, tol_rel, tol_abs):
                return f"hit {i}: score {a.score!r} vs {b.score!r}"
        other = by_key.get(a.key)
        if other is not None and not fields_same(a.fields, other.fields, score_field):
            return f"hit {i} ({a.key!r}): fields differ"
        if other is None and (a.fields is None) != (b.fields is None):
            return f"hit {i}: content present on one side only"
    return None


def cmp_set_reply(st, rs):
    """FT._LIST: the same names in any order, same RESP types."""
    if isinstance(rs, list) and isinstance(st, list) and type(st) is type(rs):
        key = lambda x: (type(x).__name__, x)  # noqa: E731
        return None if same(sorted(st, key=key), sorted(rs, key=key)) else "replies differ"
    return cmp_exact(st, rs)


INFO_KEYS = ["index_name", "index_definition", "attributes", "num_docs",
             "hash_indexing_failures", "indexing", "percent_indexed"]


def info_view(r, resp3=False):
    """The FT.INFO fields both servers have, as (name, value) with RESP types."""
    if resp3:
        if not isinstance(r, Map):
            return None
        pairs = list(r)
    else:
        if not isinstance(r, list) or len(r) % 2:
            return None
        pairs = list(zip(r[0::2], r[1::2]))
    d = {}
    for k, v in pairs:
        if isinstance(k, Simple) and str(k) in INFO_KEYS:
            d[str(k)] = v
    return [(k, d.get(k, "<absent>")) for k in INFO_KEYS]


def strata_key_type(view):
    """Strata's `ON STRING` is compared with RediSearch's `ON HASH`: its
    FT.INFO key_type STRING is read as HASH (the one documented naming
    difference); everything else in index_definition must be the same."""
    out = []
    for k, v in view:
        if k == "index_definition" and isinstance(v, list):
            items = list(v) if not isinstance(v, Map) else [x for kv in v for x in kv]
            items = [Simple("HASH") if x == Simple("STRING") else x for x in items]
            v = Map(zip(items[0::2], items[1::2])) if isinstance(v, Map) else items
        out.append((k, v))
    return out


def cmp_info(st, rs, resp3=False, ignore=()):
    if isinstance(rs, Err) or isinstance(st, Err):
        return cmp_error_text(st, rs)
    vs, vr = info_view(st, resp3), info_view(rs, resp3)
    if vs is not None:
        vs = strata_key_type(vs)
    if vs is None:
        return "Strata's FT.INFO is not a key/value reply"
    for (k, a), (_, b) in zip(vs, vr):
        if k in ignore:
            continue
        if not same(a, b):
            return f"FT.INFO {k}: {short(a, 300)} vs {short(b, 300)}"
    return None


def cmp_either_error(st, rs):
    """Bad input: where RediSearch refuses, Strata must refuse with the same
    text; where RediSearch accepts, Strata may refuse (its limits are
    documented) but must answer."""
    if isinstance(st, Err) and st.text.startswith("<connection lost"):
        return "Strata closed the connection"
    if isinstance(rs, Err):
        return cmp_error_text(st, rs)
    if isinstance(st, Err):
        return "Strata refuses what RediSearch accepts"
    return None


def cmp_resp3_search(st, rs):
    """RESP3 FT.SEARCH maps: shape exactly, scores within tolerance."""
    return None if same(st, rs) else "replies differ"


COMPARE = {
    "exact": cmp_exact,
    "error": cmp_error_text,
    "search": cmp_search,
    "set": cmp_set_reply,
    "info": cmp_info,
    "bad": cmp_either_error,
    "resp3": cmp_resp3_search,
}


