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
NO_ALTER = "FT.ALTER is not implemented (issue 21: \"FT.ALTER ... SCHEMA ADD if cheap\")"
QUERY_SUBSET = ("outside Strata's query subset (issue 21): the optional term `~` and suffix "
                "queries `*a` are not supported")
RS_LEXER = ("RediSearch's lexer cuts these malformed inputs differently (a third number or a "
            "word in a range, `$` after `@`, a tag set opened inside a tag set): the offset or "
            "the token named differs, both refuse")
EMPTY_QUERY = ("an empty or blank query, or `@` or `$` alone, is a syntax error in Strata (it "
               "names nothing to search for, and an error says so); RediSearch matches nothing")
EMPTY_PARAM = ("a parameter whose value is empty where a word goes is a syntax error in Strata "
               "(a word is never empty); RediSearch matches nothing")
DEFAULT_SCORER = ("the default scorer: RediSearch's is TFIDF, Strata's BM25 with b = 0.75 (issue "
                  "21); with SCORER BM25STD both agree")
STRICTER = ("Strata refuses a value RediSearch takes without complaint (a negative or NaN "
            "weight, a bound that is not a number or +-inf)")
NOT_UTF8 = "Strata's queries are UTF-8 (QueryError::NotUtf8); RediSearch takes any bytes"
BOUNDED_ECHO = ("Strata cuts client text repeated in an error to 128 bytes, so that an error "
                "stays one bounded line; RediSearch repeats all of it")
RS_OVERFLOW = "RediSearch reads 99999999999 into 32 bits (prints 1215752191); Strata prints it"
RS_NAN = ("RediSearch scores NaN under BM25STD in an index without TEXT fields (average length "
          "0 divides 0); Strata counts such a length as average")
RS_TOTAL = ("RediSearch's total still counts the document that RENAME replaced (RENAME w:005 "
            "w:006 onto an indexed key) while it lists one key fewer; the keys listed are the "
            "same on both")
RESP3_INFO = ("FT.INFO under RESP3 keeps index_definition and attributes as lists, not "
              "RediSearch's maps (README, Search: Limits and differences)")
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
        "i FILTER x SCHEMA value TEXT",
        "i MAXTEXTFIELDS SCHEMA value TEXT",
        "i TEMPORARY 10 SCHEMA value TEXT",
    ]},
    "create:i SCHEMA value VECTOR FLAT 6 TYPE FLOAT32 DIM 5000 DISTANCE_METRIC L2": LIMIT,
    "create:name-257-bytes": LIMIT,
    "create:33-prefixes": LIMIT,
    "create:129-text-fields": ("Strata's schema limit counts every field (128), RediSearch's "
                               "TEXT fields (128 of 1024): the texts name different limits"),
    "create:i SCHEMA title TEXT": ON_STRING,
    "create:i ON JSON SCHEMA $.a..b AS x TEXT": JSONPATH,
    "create:i SCHEMA value VECTOR FLAT 6 TYPE FLOAT32 DIM 4 DISTANCE_METRIC L2 EMBED nope": EMBED,
    **{f"bad:{c}": LIMIT for c in [
        "query-20k-chars", "query-1000-terms", "query-1000-or", "nesting-33", "nesting-100",
        "negations-100", "knn-k-huge",
    ]},
    "info:string-index-failure": FIELD_ABSENT,
    "info:text-of-failed-doc": FIELD_ABSENT,
    "info:json-index-failure": FIELD_ABSENT,
    "info:json-index-non-json": NOT_JSON,
    "knn:cosine-zero-doc": COSINE_ZERO,
    "knn:cosine-zero-query": COSINE_ZERO,
    "bad:knn-nan-vector": NAN_VECTOR,
    "bad:knn-inf-vector": NAN_VECTOR,
    **{f"search-option:{c}": UNSUPPORTED for c in ["INKEYS 1 q:1", "VERBATIM", "INFIELDS 1 value"]},
    "query-params:*=>[KNN 1 @v $b EF 3]": UNSUPPORTED,
    "query:knn-ef-runtime": UNSUPPORTED,
    **{c: NO_ALTER for c in ["alter:add", "alter:search-new-field", "alter:info", "alter:unknown-index",
                             "alter:duplicate-field", "alter:no-add", "arity:alter"]},
    "query:a ~b": QUERY_SUBSET,
    **{c: EMPTY_QUERY for c in ["query:", "query:@", "query:$",
                                "bad:only-spaces"]},
    "query:*a": QUERY_SUBSET,
    **{c: RS_LEXER for c in ["query:@f:[1 2 3]", "query:@f:[a b]", "query:@$f:a", "bad:range-nan",
                             "bad:tag-braces-deep"]},
    "query-params:NN $b /": EMPTY_PARAM,
    "search-option:WITHSCORES WITHSCORES": DEFAULT_SCORER,
    **{f"bad:{c}": LIMIT for c in [
        "query-1m-chars", "nesting-2000", "nesting-unbalanced", "tag-1m", "prefix-1m", "phrase-1m",
        "field-name-1m", "only-star-star", "many-params", "knn-1mb-vector", "params-1000",
        "param-1mb", "search-limit-huge-count", "search-return-huge-count", "create-1mb-name",
        "create-1mb-prefix", "create-1mb-field", "create-prefix-count-huge", "create-10000-fields",
    ]},
    "search-option:LIMIT 0 1000001": LIMIT,
    "create:i SCHEMA value TEXT WEIGHT -1": STRICTER,
    "bad:create-weight-nan": STRICTER,
    "bad:range-huge-numbers": STRICTER,
    **{f"create:i SCHEMA value {c}": ON_STRING for c in ["NUMERIC NOSTEM", "TAG WEIGHT 2", "TEXT FOO"]},
    "bad:invalid-utf8": NOT_UTF8,
    "bad:search-sortby-1mb": BOUNDED_ECHO,
    "bad:create-vector-params-huge": RS_OVERFLOW,
    "tag-ranked:@value:{blue}": RS_NAN,
    "json-ranked:@tags:{red|blue} python": UNION_IN_AND,
    "drop:dd-docs-gone": FIELD_ABSENT,
    # a:text ("not a number") and the vector index's non-vector keys are
    # documents in Strata: they count in num_docs and `*` finds them.
    "info:num-docs-after-del-expire": FIELD_ABSENT,
    "info:extra-arg": FIELD_ABSENT,
    "knn:wrong-size-doc": FIELD_ABSENT,
    "bad:search-scorer-1mb": BOUNDED_ECHO,
    "resp3:info": RESP3_INFO,
    **{f"writes:{step}:{q}": RS_TOTAL for step in ("renamed", "expired", "transaction")
       for q in ("python", "database | fox", "*")},
    # (text-page:python database search and :cherry python ocean agree: the
    # swapped hits fall outside their page of 5.)
    **{f"text-{v}:{q}": UNION_IN_AND for v in ("ranked", "page") for q in [
        "python database", "(python | fox) database",
        "@value:(python database)", "@value:(python | fox) -engine", "python $w",
        "leader running engine",
    ]},
    "text-ranked:python database search": UNION_IN_AND,
    "text-ranked:cherry python ocean": UNION_IN_AND,
    **{f"json-{v}:\"python database\"": PHRASE_FIELDS for v in ("ranked", "set")},
    "json-ranked:python database": UNION_IN_AND,
    **{f"text-{v}:\"the fox\"": PHRASE_STOP for v in ("ranked", "page", "default-scorer")},
}
