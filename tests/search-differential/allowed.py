"""Intended differences between Strata and RediSearch 2.10.5: case -> reason.

Every entry names one case of streams.py and says why the difference is
intended (issue 21, docs/design/search.md, crates/search/src/limits.rs). A
difference not listed here fails the differential test; a listed case that
becomes identical is only noted. A lost connection is never allowed.
"""

UNSUPPORTED = ("Strata refuses by name an option it does not implement (docs/design/search.md: "
               "HNSW, GEO, STOPWORDS, NOINDEX, PHONETIC, FLOAT64, ...); RediSearch accepts it")
LIMIT = ("a Strata limit (crates/search/src/limits.rs: 16 KiB queries, 32 levels, 512 nodes, "
         "k <= 10,000, 128 fields, 32 prefixes, names <= 256 bytes, DIM <= 4096); RediSearch "
         "accepts more")
ON_STRING = "ON STRING has one field, `value` (Strata's document model; RediSearch's HASH has any)"
JSONPATH = "Strata's JSONPath subset ($.a.b, $[\"a b\"], $.a[0]); RediSearch has full JSONPath"
EMBED = "EMBED is Strata's extension; RediSearch does not know it"
FIELD_ABSENT = ("a field of the wrong type is absent and the document still indexed (document.rs: "
                "one ON STRING value is often TEXT and NUMERIC); RediSearch fails the whole "
                "document and counts it in hash_indexing_failures")
NOT_JSON = ("ON JSON: a value that is not JSON is skipped and counted in FT.INFO (issue 21); "
            "RediSearch cannot see a string key as a JSON document at all")
COSINE_ZERO = "COSINE distance to a zero vector is 1 in Strata (design); RediSearch answers -nan"
UNION_IN_AND = ("RediSearch drops children of a union (OR, or a word's stem expansion) inside an "
                "AND when its SkipTo overshot (index.c: the intersection reuses the union's "
                "NOTFOUND record, which holds one child): scores depend on iteration order and "
                "cannot be reproduced; Strata sums every child. Result sets are compared in the "
                "text-default-scorer case")
PHRASE_FIELDS = ("RediSearch matches a phrase across a field boundary (its positions run on "
                 "through the document's fields); Strata's positions are per field")
PHRASE_STOP = ("a phrase containing a stop word never matches in RediSearch 2.10 (\"quick the fox\" "
               "does not find \"quick the fox\"); Strata's phrases skip stop words, as its "
               "positions do")
NAN_VECTOR = "a NaN or infinite query vector is refused by Strata (design); RediSearch answers nan"

ALLOWED = {
    **{f"create:{c}": UNSUPPORTED for c in [
        "i SCHEMA value VECTOR HNSW 6 TYPE FLOAT32 DIM 2 DISTANCE_METRIC L2",
        "i STOPWORDS 0 SCHEMA value TEXT",
        "i SCHEMA value GEO",
        "i SCHEMA value TEXT NOINDEX",
        "i SCHEMA value TEXT PHONETIC dm:en",
        "i SCHEMA value GEOSHAPE",
        "i SCHEMA value VECTOR FLAT 6 TYPE FLOAT64 DIM 2 DISTANCE_METRIC L2",
        "i SCHEMA value VECTOR FLAT 8 TYPE FLOAT32 DIM 2 DISTANCE_METRIC L2 INITIAL_CAP 10",
        "i FILTER x SCHEMA value TEXT",
        "i MAXTEXTFIELDS SCHEMA value TEXT",
        "i TEMPORARY 10 SCHEMA value TEXT",
    ]},
    "create:i SCHEMA value VECTOR FLAT 6 TYPE FLOAT32 DIM 5000 DISTANCE_METRIC L2": LIMIT,
    "create:name-257-bytes": LIMIT,
    "create:33-prefixes": LIMIT,
    "create:i SCHEMA title TEXT": ON_STRING,
    "create:i ON JSON SCHEMA $.a..b AS x TEXT": JSONPATH,
    "create:i SCHEMA value VECTOR FLAT 6 TYPE FLOAT32 DIM 4 DISTANCE_METRIC L2 EMBED nope": EMBED,
    **{f"bad:{c}": LIMIT for c in [
        "query-20k-chars", "query-1000-terms", "query-1000-or", "nesting-33", "nesting-100",
        "negations-100", "knn-k-huge", "knn-k-param-huge",
    ]},
    "info:string-index-failure": FIELD_ABSENT,
    "info:text-of-failed-doc": FIELD_ABSENT,
    "info:json-index-failure": FIELD_ABSENT,
    "info:json-index-non-json": NOT_JSON,
    "knn:cosine-zero-doc": COSINE_ZERO,
    "knn:cosine-zero-query": COSINE_ZERO,
    "bad:knn-nan-vector": NAN_VECTOR,
    "bad:knn-inf-vector": NAN_VECTOR,
    **{f"text-{v}:{q}": UNION_IN_AND for v in ("ranked", "page") for q in [
        "python database", "python database search", "(python | fox) database",
        "@value:(python database)", "@value:(python | fox) -engine", "python $w",
        "leader running engine", "cherry python ocean",
    ]},
    **{f"json-{v}:\"python database\"": PHRASE_FIELDS for v in ("ranked", "set")},
    "json-ranked:python database": UNION_IN_AND,
    **{f"text-{v}:\"the fox\"": PHRASE_STOP for v in ("ranked", "page", "default-scorer")},
}
