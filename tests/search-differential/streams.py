"""The command streams of the search differential test, one function per
section. Each builds its corpus from a seeded RNG (same data every run), so
a difference is reproducible.

Document model translation (docs/design/search.md): Strata `ON STRING`
(`SET k text`) is compared with RediSearch `ON HASH` over one field `value`
(`HSET k value text`); Strata `ON JSON` (`SET k json`) with RediSearch `ON
JSON` (`JSON.SET k $ json`). Corpora are plain ASCII words (RediSearch splits
on punctuation, Strata on UAX #29 word boundaries: a documented difference
kept out of the comparison).
"""

import json
import random
import struct
import time

from compare import parse_search
from resp import Conn, Err, Simple

# ------------------------------------------------------------------ corpora

WORDS = (
    "python database search engine index query ranking document vector "
    "storage replica leader follower snapshot journal memory disk network "
    "cluster server client protocol commit batch value key field number "
    "running runs runner jumped jumping jumps quick brown fox lazy dog "
    "apple banana cherry orange grape lemon melon river mountain forest "
    "ocean desert island valley city village"
).split()
STOP = ["the", "a", "of", "and", "is", "in", "to", "it"]
TAGS = ["red", "green", "blue", "Yellow", "black", "white", "dark red"]


def words(rng, lo, hi):
    out = []
    for _ in range(rng.randint(lo, hi)):
        if rng.random() < 0.15:
            out.append(rng.choice(STOP))
        elif rng.random() < 0.5:
            # Zipf-like: a few words are common, most are rare.
            out.append(WORDS[min(int(rng.paretovariate(0.9)) - 1, len(WORDS) - 1)])
        else:
            out.append(rng.choice(WORDS))
    return out


def vec(rng, dim):
    return [round(rng.uniform(-1, 1), 4) for _ in range(dim)]


def blob(v):
    return struct.pack(f"<{len(v)}f", *v)


def compact(obj):
    return json.dumps(obj, separators=(",", ":"))


# ------------------------------------------------------------------ helpers


def flush(r):
    r.setup(["FLUSHALL"])


def create(r, name, on, *rest):
    """FT.CREATE on both: Strata `ON STRING` is RediSearch `ON HASH`."""
    rs_on = "HASH" if on == "STRING" else on
    r.setup(["FT.CREATE", name, "ON", on, *rest], ["FT.CREATE", name, "ON", rs_on, *rest])
    # Over existing keys both build in the background.
    wait_built(r, name)


def put_string(r, key, value):
    r.setup(["SET", key, value], ["HSET", key, "value", value])


def put_json(r, key, obj):
    s = compact(obj)
    r.setup(["SET", key, s], ["JSON.SET", key, "$", s])


def with_params(args, params):
    if params:
        args = args + ["PARAMS", str(2 * len(params))]
        for k, v in params.items():
            args += [k, v]
    return args + ["DIALECT", "2"]


def rs_scores(r, idx, query, params):
    """RediSearch's BM25STD score of every hit (for tie-tolerant ranks)."""
    args = with_params(["FT.SEARCH", idx, query, "SCORER", "BM25STD", "WITHSCORES", "NOCONTENT",
                        "LIMIT", "0", "10000"], params)
    reply = r.rs.call(*args)
    parsed = parse_search(reply, True)
    if parsed is None:
        return None
    return {h.key: float(h.score) for h in parsed[1]}


def search(r, case, idx, query, opts=(), params=None, order="ranked", score_field=None):
    opts = list(opts)
    args = with_params(["FT.SEARCH", idx, query] + opts, params)
    scores = rs_scores(r, idx, query, params) if order == "ranked" and r.st else None
    return r.check(case, args, how="search", withscores="WITHSCORES" in opts, order=order,
                   rs_scores=scores, score_field=score_field)


RANKED = ["SCORER", "BM25STD", "WITHSCORES", "NOCONTENT", "LIMIT", "0", "1000"]
ALL_SET = ["NOCONTENT", "LIMIT", "0", "1000"]


def run_all(r, ctx):
    sections = [
        ("create-errors", create_errors),
        ("query-errors", query_errors),
        ("text", text_string),
        ("tag", tag_string),
        ("numeric", numeric_string),
        ("json", json_fields),
        ("knn", knn_string),
        ("writes", writes),
        ("info", info_list_drop),
        ("flushall", flushall),
        ("resp3", resp3),
        ("redis-py", redis_py),
        ("bad-input", bad_input),
    ]
    for name, fn in sections:
        if ctx["only"] and ctx["only"] not in name:
            continue
        if time.monotonic() > ctx["deadline"]:
            r.diffs.append((f"budget:{name}", ["<section not run>"], None, [], None,
                            "the run's time budget was spent before this section"))
            continue
        if name == "json" and not ctx["json"]:
            print("skipped: ON JSON (no rejson.so next to redisearch.so)")
            continue
        r.section = name
        started = time.monotonic()
        fn(r, ctx, random.Random(f"{ctx['seed']}-{name}"))
        print(f"section {name}: {time.monotonic() - started:.1f} s, {r.compared} compared so far")


# ------------------------------------------------- (a) FT.CREATE error texts

# The table of crates/search/tests/schema.rs (Strata's syntax; `ON STRING`
# becomes `ON HASH` for RediSearch), and a few more.
CREATE_CASES = [
    "i", "i ON STRING", "i FOO SCHEMA value TEXT", "i ON HASH SCHEMA value TEXT",
    "i LANGUAGE klingon SCHEMA value TEXT", "i PREFIX x SCHEMA value TEXT", "i SCHEMA",
    "i SCHEMA value", "i SCHEMA value AS", "i SCHEMA value BLOB",
    "i SCHEMA value TEXT value TAG", "i SCHEMA value TEXT WEIGHT", "i SCHEMA value TEXT WEIGHT x",
    "i SCHEMA value TAG SEPARATOR", "i SCHEMA value TAG SEPARATOR ab",
    "i SCHEMA value VECTOR HNSW 6 TYPE FLOAT32 DIM 2 DISTANCE_METRIC L2",
    "i SCHEMA value VECTOR FOO 6", "i SCHEMA value VECTOR FLAT x",
    "i SCHEMA value VECTOR FLAT 5 TYPE FLOAT32", "i SCHEMA value VECTOR FLAT 6 TYPE FLOAT32 DIM 2",
    "i SCHEMA value VECTOR FLAT 4 TYPE FLOAT32 DIM 2",
    "i SCHEMA value VECTOR FLAT 4 DIM 2 DISTANCE_METRIC L2", "i SCHEMA value VECTOR FLAT 2 FOO 1",
    "i SCHEMA value VECTOR FLAT 2 TYPE INT9", "i SCHEMA value VECTOR FLAT 2 DIM 0",
    "i SCHEMA value VECTOR FLAT 2 DISTANCE_METRIC HAMMING",
    "i SCHEMA value VECTOR FLAT 6 TYPE FLOAT32 DIM 5000 DISTANCE_METRIC L2",
    "i SCHEMA value VECTOR FLAT 6 TYPE FLOAT32 DIM 4 DISTANCE_METRIC L2 EMBED nope",
    "i ON JSON SCHEMA $.a..b AS x TEXT", "i STOPWORDS 0 SCHEMA value TEXT", "i SCHEMA value GEO",
    "i SCHEMA title TEXT",
    # More than the table: valid definitions (+OK on both), and other errors.
    "i SCHEMA value TEXT", "i ON STRING PREFIX 2 a: b: SCHEMA value TEXT NOSTEM WEIGHT 3",
    "i SCHEMA value TAG SEPARATOR ; CASESENSITIVE", "i SCHEMA value NUMERIC SORTABLE",
    "i SCHEMA value TEXT SORTABLE UNF", "i SCHEMA value AS v VECTOR FLAT 6 TYPE FLOAT32 DIM 3 DISTANCE_METRIC IP",
    "i ON JSON SCHEMA $.t AS t TEXT $.n AS n NUMERIC $.g AS g TAG",
    "i ON JSON SCHEMA $.t AS t TEXT $.t AS t TAG", "i ON", "i ON JSON PREFIX", "i PREFIX 2 a SCHEMA value TEXT",
    "i PREFIX 0 SCHEMA value TEXT", "i PREFIX -1 SCHEMA value TEXT", "i LANGUAGE SCHEMA value TEXT",
    "i LANGUAGE german SCHEMA value TEXT", "i SCHEMA value TEXT WEIGHT -1",
    "i SCHEMA value NUMERIC NOSTEM", "i SCHEMA value TAG WEIGHT 2", "i SCHEMA value TEXT FOO",
    "i SCHEMA value VECTOR", "i SCHEMA value VECTOR FLAT",
    "i SCHEMA value VECTOR FLAT 6 TYPE FLOAT32 DIM -3 DISTANCE_METRIC L2",
    "i SCHEMA value VECTOR FLAT 6 TYPE FLOAT32 DIM x DISTANCE_METRIC L2",
    "i SCHEMA value VECTOR FLAT 6 TYPE FLOAT64 DIM 2 DISTANCE_METRIC L2",
    "i SCHEMA value VECTOR FLAT 8 TYPE FLOAT32 DIM 2 DISTANCE_METRIC L2 INITIAL_CAP 10",
    "i SCHEMA value VECTOR FLAT 6 type float32 dim 2 distance_metric cosine",
    "i SCHEMA value TEXT NOINDEX", "i SCHEMA value TEXT PHONETIC dm:en", "i SCHEMA value GEOSHAPE",
    "i FILTER x SCHEMA value TEXT", "i MAXTEXTFIELDS SCHEMA value TEXT", "i TEMPORARY 10 SCHEMA value TEXT",
]


def swap_on(args):
    out = list(args)
    for i in range(len(out) - 1):
        if out[i] == "ON" and out[i + 1] in ("STRING", "HASH"):
            out[i + 1] = "HASH" if out[i + 1] == "STRING" else "STRING"
    return out


def create_errors(r, ctx, rng):
    flush(r)
    for text in CREATE_CASES:
        args = text.split()
        if text == "i SCHEMA value TEXT WEIGHT":
            # RediSearch reads past the end of its arguments here: its answer
            # changes from run to run (+OK, or "Bad arguments for weight:
            # Could not convert argument to expected type"). Strata must
            # refuse, with any text.
            st, rs = r.both(["FT.CREATE"] + args)
            record_result(r, f"create:{text}", ["FT.CREATE"] + args, st, rs,
                          None if isinstance(st, Err) or r.self_test else "Strata accepts WEIGHT without a value")
            r.both(["FT.DROPINDEX", "i"])
            continue
        # Strata's `ON HASH` error names HASH where RediSearch's names STRING.
        norm = (lambda t: t.replace("HASH", "STRING")) if "ON HASH" in text else None
        r.check(f"create:{text}", ["FT.CREATE"] + args, ["FT.CREATE"] + swap_on(args),
                how="error", normalize=norm)
        r.both(["FT.DROPINDEX", args[0]])
    r.setup(["FT.CREATE", "dup", "SCHEMA", "value", "TEXT"])
    r.check("create:exists", ["FT.CREATE", "dup", "SCHEMA", "value", "TAG"], how="error")
    long = ["x" * 257, "SCHEMA", "value", "TEXT"]
    r.check("create:name-257-bytes", ["FT.CREATE"] + long, how="error")
    r.both(["FT.DROPINDEX", long[0]])
    fields = []
    for i in range(129):
        fields += ["value", "AS", f"f{i}", "TEXT"]
    r.check("create:129-text-fields", ["FT.CREATE", "i", "SCHEMA"] + fields, how="error")
    r.both(["FT.DROPINDEX", "i"])
    prefixes = [f"p{i}" for i in range(33)]
    r.check("create:33-prefixes", ["FT.CREATE", "i", "PREFIX", "33"] + prefixes +
            ["SCHEMA", "value", "TEXT"], how="error")
    r.both(["FT.DROPINDEX", "i"])
    # Found by the fuzz target: client text with CR/LF in an error.
    r.check("create:newline-in-field-type", ["FT.CREATE", "i", "SCHEMA", "value", "\r\nTEXT"],
            how="error")
    r.check("create:newline-in-option", ["FT.CREATE", "i", "IIII\n", "SCHEMA", "value", "TEXT"],
            how="error")
    r.both(["FT.DROPINDEX", "i"])


# ------------------------------------------------- (b) query syntax errors

QUERY_CASES = [
    "", "a |", "(a b", "@:x", "@f:[1 x]", "@f:{a", "\"open", "a ~b", "*=>[KNN x @v $b]", "$nope",
    "a)", "()", "|", "| a", "a ||| b", "-", "--a", "@", "@f", "@f:", "@f:(", "@f:[", "@f:[1",
    "@f:[1 2", "@f:[1 2 3]", "@f:[a b]", "@f:[(1 (2]", "@f:{}", "@f:{ }", "@f:{a|}", "@t:{a} =>",
    "\"\"", "\"a b", "a*b", "*a", "**", "a**", "@f:a*", "hello world", "@value:hello",
    "*=>[KNN]", "*=>[KNN 1]", "*=>[KNN 1 @v]", "*=>[KNN 1 @v $b", "*=>[KNN 1 v $b]",
    "*=>[KNN -1 @v $b]", "*=>[KNN 1.5 @v $b]", "*=>[KNN 1 @v $b AS]", "=>[KNN 1 @v $b]",
    "[1 2]", "{a}", "@f:[1 2] @f:[3 4]", "$", "$1", "@f:[$lo $hi]", "@$f:a", "a $nope b",
]

SEARCH_OPTION_CASES = [
    ["SCORER", "NOPE"], ["SCORER"], ["LIMIT", "0"], ["LIMIT", "x", "1"], ["LIMIT", "-1", "1"],
    ["LIMIT", "0", "-1"], ["LIMIT", "0", "1000001"], ["LIMIT", "0", "0"], ["LIMIT", "0", "1", "LIMIT", "0", "2"],
    ["SORTBY", "nofield"], ["SORTBY"], ["SORTBY", "value", "SIDEWAYS"], ["RETURN", "2", "value"],
    ["RETURN", "x"], ["RETURN"], ["RETURN", "-1"], ["NOPE"], ["PARAMS", "1", "a"], ["PARAMS", "x"],
    ["PARAMS"], ["PARAMS", "2", "a"], ["PARAMS", "4", "a", "1", "a", "2"], ["WITHSCORES", "WITHSCORES"],
    ["NOCONTENT", "NOCONTENT"], ["DIALECT"], ["DIALECT", "0"], ["DIALECT", "5"], ["DIALECT", "x"],
    ["INKEYS", "1", "q:1"], ["TIMEOUT", "100"], ["VERBATIM"], ["INFIELDS", "1", "value"],
    ["SORTBY", "value", "ASC", "SORTBY", "value", "DESC"], ["RETURN", "1", "value", "AS", "v"],
]


def query_errors(r, ctx, rng):
    flush(r)
    # No NUMERIC alias over the text: RediSearch would fail the document.
    create(r, "q", "STRING", "PREFIX", "1", "q:", "SCHEMA", "value", "TEXT", "value", "AS", "t",
           "TAG")
    create(r, "qv", "STRING", "PREFIX", "1", "qv:", "SCHEMA", "value", "AS", "v", "VECTOR",
           "FLAT", "6", "TYPE", "FLOAT32", "DIM", "2", "DISTANCE_METRIC", "L2")
    put_string(r, "q:1", "hello world")
    put_string(r, "qv:1", blob([1.0, 0.0]))
    for q in QUERY_CASES:
        search(r, f"query:{q}", "q", q, order="exact",
               params={"lo": "1", "hi": "2", "b": blob([1.0, 0.0])} if "$lo" in q or "$b" in q else None)
    p = {"k": "ten", "b": ""}
    for q in ["NN $b /", "*=>[KNN 1 @v $b EF 3]", "*=>[KNN $k @v $b]"]:
        search(r, f"query-params:{q}", "qv", q, params=p, order="exact")
    one = blob([1.0, 0.0])
    for case, q, params in [
        ("knn-blob-12", "*=>[KNN 1 @v $b]", {"b": blob([1.0, 0.0, 0.0])}),
        ("knn-blob-0", "*=>[KNN 1 @v $b]", {"b": ""}),
        ("knn-blob-7", "*=>[KNN 1 @v $b]", {"b": one[:7]}),
        ("knn-unknown-field", "*=>[KNN 1 @nov $b]", {"b": one}),
        ("knn-on-text-field", "*=>[KNN 1 @value $b]", {"b": one}),
        ("knn-missing-param", "*=>[KNN 1 @v $c]", {"b": one}),
        ("knn-ef-runtime", "*=>[KNN 1 @v $b EF_RUNTIME 10]", {"b": one}),
        ("knn-k-0", "*=>[KNN 0 @v $b]", {"b": one}),
    ]:
        search(r, f"query:{case}", "qv", q, params=params, order="exact", score_field=b"__v_score")
    r.check("query:params-odd", ["FT.SEARCH", "q", "hello", "PARAMS", "1", "a", "DIALECT", "2"],
            how="error")
    r.check("query:params-dup", ["FT.SEARCH", "q", "hello", "PARAMS", "4", "a", "1", "a", "2",
                                 "DIALECT", "2"], how="error")
    for opts in SEARCH_OPTION_CASES:
        # DIALECT first: after the options it would change how a trailing
        # option without its argument parses.
        args = ["FT.SEARCH", "q", "hello"] + ([] if "DIALECT" in opts else ["DIALECT", "2"]) + opts
        r.check(f"search-option:{' '.join(opts)}", args, how="search", order="exact",
                withscores="WITHSCORES" in opts)
    r.check("search:no-query", ["FT.SEARCH", "q"], how="error")
    r.check("search:unknown-index", ["FT.SEARCH", "nope", "x"], how="error")
    r.check("search:no-dialect", ["FT.SEARCH", "q", "hello"], how="search", order="exact")


# ------------------------------------------------- (c, d) TEXT on STRING

def text_queries(rng, docs):
    common = ["python", "database", "search", "engine", "index", "query"]
    qs = common + ["fox", "village", "running", "runs", "jumped", "jumps", "runner", "zebra",
                   "the", "the fox", "a python", "python database", "python database search",
                   "python | fox", "python | zebra", "fox | dog | apple", "python -database",
                   "-python", "-python -database", "(python | fox) database",
                   "@value:python", "@value:(python database)", "@value:(python | fox) -engine",
                   "\"quick brown\"", "\"brown fox\"", "\"python database\"", "\"the fox\"",
                   "pyt*", "da*", "run*", "jump*", "zz*", "q*", "*", "python $w", "$w"]
    # Phrases taken from documents: two and three adjacent kept words.
    for d in rng.sample(docs, 6):
        ws = [w for w in d.split() if w not in STOP]
        if len(ws) >= 3:
            i = rng.randrange(len(ws) - 2)
            qs.append(f"\"{ws[i]} {ws[i + 1]}\"")
            qs.append(" ".join(ws[i:i + 3]))
    return qs


def text_string(r, ctx, rng):
    flush(r)
    create(r, "t", "STRING", "PREFIX", "1", "t:", "SCHEMA", "value", "TEXT")
    docs = [" ".join(words(rng, 3, 24)) for _ in range(200)]
    # Keys in insertion order are ascending: RediSearch breaks score ties
    # by insertion order, Strata by key.
    for i, d in enumerate(docs):
        put_string(r, f"t:{i:04}", d)
    params = {"w": "database"}
    for q in text_queries(rng, docs):
        p = params if "$w" in q else None
        search(r, f"text-ranked:{q}", "t", q, RANKED, params=p)
        search(r, f"text-page:{q}", "t", q, ["SCORER", "BM25STD", "LIMIT", "0", "5"], params=p)
        search(r, f"text-default-scorer:{q}", "t", q, ALL_SET, params=p, order="set")
    text_options(r, rng)
    for case, q, opts in [
        ("with-scores-and-content", "python", ["SCORER", "BM25STD", "WITHSCORES", "LIMIT", "0", "3"]),
        ("return-value", "fox", ["SCORER", "BM25STD", "RETURN", "1", "value", "LIMIT", "0", "4"]),
        ("return-value-as", "fox", ["SCORER", "BM25STD", "RETURN", "3", "value", "AS", "v", "LIMIT", "0", "4"]),
        ("return-0", "fox", ["SCORER", "BM25STD", "RETURN", "0", "LIMIT", "0", "4"]),
        ("return-missing", "fox", ["SCORER", "BM25STD", "RETURN", "1", "nofield", "LIMIT", "0", "4"]),
        ("limit-3-4", "python | fox", ["SCORER", "BM25STD", "LIMIT", "3", "4"]),
        ("limit-past-end", "python", ["SCORER", "BM25STD", "LIMIT", "5000", "10"]),
        ("limit-0-0", "python", ["LIMIT", "0", "0"]),
        ("nocontent-withscores-page", "database", ["SCORER", "BM25STD", "NOCONTENT", "WITHSCORES", "LIMIT", "2", "3"]),
        ("default-limit", "python | database | fox", ["SCORER", "BM25STD", "NOCONTENT"]),
    ]:
        search(r, f"text:{case}", "t", q, opts)


GERMAN = ("haus hauser hauses garten gartens laufen lauft laufend schnell schneller buch buecher "
          "stadt stadte fahren fahrt gefahren kind kinder kindes").split()


def text_options(r, rng):
    """NOSTEM, WEIGHT, LANGUAGE, TEXT SORTABLE, several prefixes, and two
    indexes over the same keys."""
    create(r, "tn", "STRING", "PREFIX", "1", "t:", "SCHEMA", "value", "TEXT", "NOSTEM", "WEIGHT", "3")
    for q in ["running", "runs", "run", "database", "databas*", "python database"]:
        search(r, f"nostem-ranked:{q}", "tn", q, RANKED)
    create(r, "de", "STRING", "PREFIX", "2", "de:", "ger:", "LANGUAGE", "german", "SCHEMA", "value", "TEXT")
    for i in range(40):
        put_string(r, f"{'de' if i % 2 else 'ger'}:{i:02}", " ".join(rng.choice(GERMAN) for _ in range(rng.randint(2, 8))))
    for q in ["haus", "hauser", "garten", "laufen", "kinder", "schnell buch", "stadt | fahren", "gefahren"]:
        search(r, f"german-ranked:{q}", "de", q, RANKED)
    create(r, "ts", "STRING", "PREFIX", "1", "ts:", "SCHEMA", "value", "TEXT", "SORTABLE")
    for i, w in enumerate(rng.sample(WORDS, 30)):
        put_string(r, f"ts:{i:02}", f"{w} python")
    search(r, "text-sortby:asc", "ts", "python", ["SORTBY", "value", "ASC", "NOCONTENT", "LIMIT", "0", "100"],
           order="exact")
    search(r, "text-sortby:desc-page", "ts", "python", ["SORTBY", "value", "DESC", "LIMIT", "3", "4"],
           order="exact")


# ------------------------------------------------- TAG on STRING

def tag_string(r, ctx, rng):
    flush(r)
    create(r, "g", "STRING", "PREFIX", "1", "g:", "SCHEMA", "value", "TAG")
    create(r, "gc", "STRING", "PREFIX", "1", "gc:", "SCHEMA", "value", "TAG", "SEPARATOR", ";",
           "CASESENSITIVE")
    for i in range(80):
        tags = rng.sample(TAGS, rng.randint(1, 3))
        put_string(r, f"g:{i:03}", ",".join(tags) if i % 7 else " , ".join(tags))
        put_string(r, f"gc:{i:03}", ";".join(tags))
    for q in ["@value:{red}", "@value:{red|blue}", "@value:{dark red}", "@value:{Yellow}",
              "@value:{yellow}", "@value:{YELLOW}", "@value:{yel*}", "@value:{d*}", "-@value:{red}",
              "@value:{red} @value:{green}", "@value:{red} | @value:{white}", "@value:{nope}",
              "@value:{dark\\ red}", "@value:{ red }", "@value:{red} -@value:{blue}"]:
        search(r, f"tag:{q}", "g", q, ALL_SET, order="set")
        search(r, f"tag-cs:{q}", "gc", q, ALL_SET, order="set")
    search(r, "tag-content:@value:{blue}", "g", "@value:{blue}", ["LIMIT", "0", "100"], order="set")
    search(r, "tag-ranked:@value:{blue}", "g", "@value:{blue}", RANKED)


# ------------------------------------------------- NUMERIC on STRING

def numeric_string(r, ctx, rng):
    flush(r)
    create(r, "n", "STRING", "PREFIX", "1", "n:", "SCHEMA", "value", "NUMERIC", "SORTABLE")
    values = rng.sample(range(-500, 500), 100)
    for i, v in enumerate(values):
        text = str(v) if i % 3 else f"{v / 8}"  # integers and exact binary fractions
        put_string(r, f"n:{i:03}", text)
    for q in ["@value:[-inf +inf]", "@value:[0 100]", "@value:[(0 (100]", "@value:[-100 -10]",
              "@value:[(-100 -10]", "@value:[-inf 0]", "@value:[(0 +inf]", "@value:[10 10]",
              "@value:[1000 2000]", "@value:[0 100] | @value:[-50 -40]", "-@value:[0 100]",
              "@value:[-10.5 10.5]", "@value:[0, 100]", "@value:[$lo $hi]"]:
        p = {"lo": "-20", "hi": "30"} if "$" in q else None
        search(r, f"numeric-asc:{q}", "n", q, ["SORTBY", "value", "ASC", "NOCONTENT", "LIMIT", "0", "1000"],
               params=p, order="exact")
        search(r, f"numeric-desc-page:{q}", "n", q, ["SORTBY", "value", "DESC", "LIMIT", "2", "5"],
               params=p, order="exact")
        search(r, f"numeric-set:{q}", "n", q, ALL_SET, params=p, order="set")
    search(r, "numeric:sortby-default-asc", "n", "@value:[0 50]", ["SORTBY", "value", "LIMIT", "0", "3"],
           order="exact")
    search(r, "numeric:sortby-withscores", "n", "@value:[0 50]",
           ["SORTBY", "value", "WITHSCORES", "NOCONTENT", "LIMIT", "0", "3"], order="exact")
    # One value under several aliases (Strata's ON STRING idiom).
    create(r, "m", "STRING", "PREFIX", "1", "m:", "SCHEMA", "value", "AS", "num", "NUMERIC",
           "value", "AS", "tag", "TAG")
    for i in range(30):
        put_string(r, f"m:{i:02}", str(i * 3))
    for q in ["@num:[10 20]", "@tag:{12}", "@tag:{12} | @num:[80 +inf]", "@num:[10 20] -@tag:{15}"]:
        search(r, f"alias:{q}", "m", q, ALL_SET, order="set")


# ------------------------------------------------- ON JSON, several fields

def json_fields(r, ctx, rng):
    flush(r)
    create(r, "j", "JSON", "PREFIX", "1", "j:", "SCHEMA", "$.title", "AS", "title", "TEXT",
           "WEIGHT", "2", "$.body", "AS", "body", "TEXT", "$.tags", "AS", "tags", "TAG", "$.n",
           "AS", "n", "NUMERIC", "SORTABLE", "$.v", "AS", "v", "VECTOR", "FLAT", "6", "TYPE",
           "FLOAT32", "DIM", "4", "DISTANCE_METRIC", "L2")
    ns = rng.sample(range(10000), 120)
    for i in range(120):
        doc = {"title": " ".join(words(rng, 2, 6)), "body": " ".join(words(rng, 5, 30)),
               "tags": rng.sample(["red", "green", "blue", "black"], rng.randint(1, 2)),
               "n": ns[i], "v": vec(rng, 4)}
        put_json(r, f"j:{i:03}", doc)
    for q in ["python", "python database", "@title:python", "@body:python", "@title:python @body:fox",
              "@title:(python | fox)", "@title:python | @body:database", "python -@title:database",
              "\"python database\"", "@title:\"quick brown\"", "pyth*", "@tags:{red}",
              "@tags:{red|blue} python", "@n:[100 2000]", "@n:[100 2000] @tags:{green}",
              "@title:runs", "*"]:
        search(r, f"json-ranked:{q}", "j", q, RANKED)
        search(r, f"json-set:{q}", "j", q, ALL_SET, order="set")
    search(r, "json:content", "j", "python", ["SCORER", "BM25STD", "LIMIT", "0", "3"])
    search(r, "json:return-fields", "j", "python", ["SCORER", "BM25STD", "RETURN", "2", "title", "n",
                                                    "LIMIT", "0", "3"])
    search(r, "json:return-tags", "j", "@tags:{red}", ["SORTBY", "n", "RETURN", "1", "tags",
                                                       "LIMIT", "0", "3"], order="exact")
    search(r, "json:return-path-as", "j", "python", ["SCORER", "BM25STD", "RETURN", "3", "$.title",
                                                     "AS", "t", "LIMIT", "0", "3"])
    search(r, "json:sortby-n", "j", "*", ["SORTBY", "n", "DESC", "RETURN", "1", "n", "LIMIT", "0", "10"],
           order="exact")
    for k in (1, 5):
        qv = blob(vec(rng, 4))
        search(r, f"json-knn:k={k}", "j", f"*=>[KNN {k} @v $b AS d]", ["RETURN", "1", "d"],
               params={"b": qv}, order="set", score_field=b"d")
        search(r, f"json-knn-sorted:k={k}", "j", f"*=>[KNN {k} @v $b AS d]",
               ["SORTBY", "d", "RETURN", "2", "d", "title"], params={"b": qv}, order="exact",
               score_field=b"d")
        search(r, f"json-hybrid:k={k}", "j", f"@tags:{{red}}=>[KNN {k} @v $b AS d]",
               ["RETURN", "2", "d", "tags"], params={"b": qv}, order="set", score_field=b"d")
        search(r, f"json-hybrid-text:k={k}", "j", f"(python | fox)=>[KNN {k} @v $b AS d]",
               ["SORTBY", "d", "RETURN", "1", "d"], params={"b": qv}, order="exact", score_field=b"d")


# ------------------------------------------------- (e) KNN FLAT on STRING

def knn_string(r, ctx, rng):
    flush(r)
    dim = 8
    for name, metric in [("kc", "COSINE"), ("kl", "L2"), ("ki", "IP")]:
        create(r, name, "STRING", "PREFIX", "1", "kv:", "SCHEMA", "value", "VECTOR", "FLAT", "6",
               "TYPE", "FLOAT32", "DIM", str(dim), "DISTANCE_METRIC", metric)
    for i in range(100):
        put_string(r, f"kv:{i:03}", blob(vec(rng, dim)))
    # RediSearch returns KNN hits in no particular order unless SORTBY names
    # the distance: without SORTBY the top k are compared as a set (keys
    # and distances), with it in order.
    for qi in range(6):
        qv = blob(vec(rng, dim))
        for name in ("kc", "kl", "ki"):
            for k in (1, 5, 10):
                search(r, f"knn:{name}:q{qi}:k={k}", name, f"*=>[KNN {k} @value $b AS dist]",
                       ["RETURN", "1", "dist"], params={"b": qv}, order="set", score_field=b"dist")
            search(r, f"knn:{name}:q{qi}:sorted", name, "*=>[KNN 10 @value $b AS dist]",
                   ["SORTBY", "dist", "RETURN", "1", "dist"], params={"b": qv}, order="exact",
                   score_field=b"dist")
            search(r, f"knn:{name}:q{qi}:default-name", name, "*=>[KNN 3 @value $b]",
                   ["RETURN", "1", "__value_score"], params={"b": qv}, order="set",
                   score_field=b"__value_score")
    qv = blob(vec(rng, dim))
    search(r, "knn:k-param", "kl", "*=>[KNN $k @value $b AS dist]", ["RETURN", "1", "dist"],
           params={"k": "4", "b": qv}, order="set", score_field=b"dist")
    search(r, "knn:nocontent", "kl", "*=>[KNN 4 @value $b AS dist]", ["NOCONTENT"],
           params={"b": qv}, order="set")
    search(r, "knn:content", "kl", "*=>[KNN 2 @value $b AS dist]", [],
           params={"b": qv}, order="set", score_field=b"dist")
    search(r, "knn:sortby-dist-desc", "kl", "*=>[KNN 5 @value $b AS dist]",
           ["SORTBY", "dist", "DESC", "RETURN", "1", "dist"], params={"b": qv}, order="exact",
           score_field=b"dist")
    search(r, "knn:sortby-dist-limit", "kl", "*=>[KNN 10 @value $b AS dist]",
           ["SORTBY", "dist", "RETURN", "1", "dist", "LIMIT", "2", "3"],
           params={"b": qv}, order="exact", score_field=b"dist")
    search(r, "knn:k-past-docs", "kl", "*=>[KNN 500 @value $b AS dist]", ["NOCONTENT", "LIMIT", "0", "1000"],
           params={"b": qv}, order="set")
    # A zero vector under COSINE (Strata: distance 1), alone in its index.
    create(r, "kz", "STRING", "PREFIX", "1", "kz:", "SCHEMA", "value", "VECTOR", "FLAT", "6",
           "TYPE", "FLOAT32", "DIM", "2", "DISTANCE_METRIC", "COSINE")
    put_string(r, "kz:zero", blob([0.0, 0.0]))
    put_string(r, "kz:one", blob([1.0, 0.0]))
    search(r, "knn:cosine-zero-doc", "kz", "*=>[KNN 2 @value $b AS dist]", ["RETURN", "1", "dist"],
           params={"b": blob([0.0, 1.0])}, order="set", score_field=b"dist")
    search(r, "knn:cosine-zero-query", "kz", "*=>[KNN 2 @value $b AS dist]", ["RETURN", "1", "dist"],
           params={"b": blob([0.0, 0.0])}, order="set", score_field=b"dist")
    # A value of the wrong size is no document (RediSearch: a failure).
    put_string(r, "kz:short", blob([1.0]))
    search(r, "knn:wrong-size-doc", "kz", "*", ALL_SET, order="set")


# ------------------------------------------------- writes keep the index exact

def writes(r, ctx, rng):
    """Overwrites, DEL, RENAME (within and out of the prefix), expiry and
    MULTI/EXEC: after each step the index answers as RediSearch's does."""
    flush(r)
    create(r, "w", "STRING", "PREFIX", "1", "w:", "SCHEMA", "value", "TEXT", "value", "AS", "tg", "TAG")
    keys = [f"w:{i:03}" for i in range(60)]
    for k in keys:
        put_string(r, k, " ".join(words(rng, 3, 12)))

    # Result sets, not ranks: after an overwrite RediSearch's BM25STD is
    # garbage until its GC runs (a term's stale postings make its doc count
    # exceed the index's, and N - n underflows: IDF 40 where it was 0.02).
    def probe(step):
        for q in ["python", "database | fox", "@tg:{python}", "*"]:
            search(r, f"writes:{step}:{q}", "w", q, ALL_SET, order="set")

    probe("initial")
    for k in rng.sample(keys, 15):
        put_string(r, k, " ".join(words(rng, 3, 12)))
    put_string(r, keys[0], keys[0].replace(":", " ") + " python")
    probe("overwritten")
    r.setup(["DEL", keys[1], keys[2], "w:absent"])
    probe("deleted")
    r.setup(["RENAME", keys[3], "w:renamed"])
    r.setup(["RENAME", keys[4], "outside:4"])
    r.setup(["RENAME", keys[5], keys[6]])
    probe("renamed")
    r.setup(["PEXPIRE", keys[7], "20"])
    r.setup(["PEXPIRE", keys[8], "600000"])
    time.sleep(0.2)
    probe("expired")
    for target in (r.rs, r.st):
        if target is None:
            continue
        target.call("MULTI")
        for k in keys[10:20]:
            if target is r.rs or r.self_test:
                target.call("HSET", k, "value", "python transaction " + k)
            else:
                target.call("SET", k, "python transaction " + k)
        target.call("DEL", keys[20])
        reply = target.call("EXEC")
        if isinstance(reply, Err):
            raise SystemExit(f"EXEC failed: {reply!r}")
    probe("transaction")
    search(r, "writes:phrase-after-tx", "w", "\"python transaction\"", ALL_SET, order="set")
    r.setup(["FLUSHALL"])


# ------------------------------------------------- (f) FT.INFO, _LIST, DROPINDEX

def info(r, case, name, **kw):
    r.check(case, ["FT.INFO", name], how="info", **kw)


def wait_built(r, name, timeout_s=20.0):
    """Polls FT.INFO `indexing` until 0 on both (bounded). A server still
    building after the bound is a difference, and the run goes on."""
    deadline = time.monotonic() + timeout_s
    for side, target in (("redisearch", r.rs), ("strata", r.st)):
        if target is None:
            continue
        while True:
            reply = target.call("FT.INFO", name)
            if not isinstance(reply, list) or Simple("indexing") not in reply[0::2]:
                break  # an error, or no such field: compared elsewhere
            i = reply.index(Simple("indexing"))
            if reply[i + 1] in (0, b"0", "0", False):
                break
            if time.monotonic() > deadline:
                r.diffs.append((f"building:{name}", ["FT.INFO", name], reply if side == "strata" else None,
                                ["FT.INFO", name], reply if side == "redisearch" else None,
                                f"{side} still indexing after {timeout_s} s"))
                break
            time.sleep(0.05)


def info_list_drop(r, ctx, rng):
    flush(r)
    r.check("list:empty", ["FT._LIST"], how="set")
    create(r, "a", "STRING", "PREFIX", "1", "a:", "SCHEMA", "value", "TEXT", "value", "AS", "tg",
           "TAG", "value", "AS", "n", "NUMERIC", "SORTABLE")
    create(r, "b", "STRING", "SCHEMA", "value", "AS", "v", "VECTOR", "FLAT", "6", "TYPE", "FLOAT32",
           "DIM", "2", "DISTANCE_METRIC", "COSINE")
    r.check("list:two", ["FT._LIST"], how="set")
    for i in range(10):
        put_string(r, f"a:{i}", str(i * 7))
    st, rs = r.both(["FT.INFO", "a"])
    record_result(r, "info:string-index", ["FT.INFO", "a"], st, rs,
                  COMPARE_INFO(st, rs))
    put_string(r, "a:text", "not a number")
    st, rs = r.both(["FT.INFO", "a"])
    record_result(r, "info:string-index-failure", ["FT.INFO", "a"], st, rs,
                  COMPARE_INFO(st, rs))
    search(r, "info:search-after-failure", "a", "@n:[0 100]", ALL_SET, order="set")
    search(r, "info:text-of-failed-doc", "a", "number", ALL_SET, order="set")
    r.setup(["DEL", "a:1"])
    r.setup(["PEXPIRE", "a:2", "30"])
    time.sleep(0.3)
    search(r, "info:after-del-expire", "a", "@n:[0 100]", ALL_SET, order="set")
    st, rs = r.both(["FT.INFO", "a"])
    record_result(r, "info:num-docs-after-del-expire", ["FT.INFO", "a"], st, rs,
                  COMPARE_INFO(st, rs))
    if ctx["json"]:
        create(r, "jj", "JSON", "PREFIX", "1", "jj:", "SCHEMA", "$.t", "AS", "t", "TEXT", "$.n", "AS",
               "n", "NUMERIC")
        put_json(r, "jj:1", {"t": "hello", "n": 1})
        put_json(r, "jj:2", {"t": 5, "n": "x"})
        info(r, "info:json-index-failure", "jj")
        r.setup(["SET", "jj:3", "not json"])
        info(r, "info:json-index-non-json", "jj")
    # Unknown names, arity.
    for case, args in [
        ("unknown:info", ["FT.INFO", "nope"]), ("unknown:search", ["FT.SEARCH", "nope", "x"]),
        ("unknown:dropindex", ["FT.DROPINDEX", "nope"]), ("unknown:dropindex-dd", ["FT.DROPINDEX", "nope", "DD"]),
        ("arity:create", ["FT.CREATE"]), ("arity:create-1", ["FT.CREATE", "i"]),
        ("arity:create-3", ["FT.CREATE", "i", "SCHEMA", "value"]), ("arity:search", ["FT.SEARCH"]),
        ("arity:info", ["FT.INFO"]), ("arity:list", ["FT._LIST", "x"]), ("arity:dropindex", ["FT.DROPINDEX"]),
        ("arity:dropindex-4", ["FT.DROPINDEX", "a", "DD", "x"]),
    ]:
        r.check(case, args, how="error")
    r.check("info:extra-arg", ["FT.INFO", "b", "x"], how="info")
    # Backfill: an index created over existing keys.
    for i in range(50):
        put_string(r, f"bf:{i:02}", " ".join(words(rng, 3, 10)))
    create(r, "bf", "STRING", "PREFIX", "1", "bf:", "SCHEMA", "value", "TEXT")
    wait_built(r, "bf")
    info(r, "info:after-backfill", "bf", ignore=())
    search(r, "backfill:python", "bf", "python", RANKED)
    search(r, "backfill:all", "bf", "*", ALL_SET, order="set")
    # Drop: keeps the documents; DD deletes them.
    r.check("drop:keep-docs", ["FT.DROPINDEX", "bf"], how="exact")
    r.check("drop:docs-kept", ["EXISTS", "bf:00", "bf:49"], how="exact")
    r.check("drop:search-dropped", ["FT.SEARCH", "bf", "python"], how="error")
    r.check("list:after-drop", ["FT._LIST"], how="set")
    r.check("drop:dd", ["FT.DROPINDEX", "a", "DD"], how="exact")
    r.check("drop:dd-docs-gone", ["EXISTS", "a:0", "a:3", "a:text"], how="exact")
    r.check("drop:unknown-third-arg", ["FT.DROPINDEX", "b", "XX"], how="exact")
    r.check("list:after-dd", ["FT._LIST"], how="set")
    r.check("create:again-after-drop", ["FT.CREATE", "bf", "ON", "STRING", "PREFIX", "1", "bf:",
                                        "SCHEMA", "value", "TEXT"],
            ["FT.CREATE", "bf", "ON", "HASH", "PREFIX", "1", "bf:", "SCHEMA", "value", "TEXT"])
    wait_built(r, "bf")
    search(r, "backfill:again", "bf", "*", ALL_SET, order="set")
    # FT.ALTER ... SCHEMA ADD (issue 21: "if cheap"): existing docs are
    # indexed for the new field too.
    for i in range(10):
        put_string(r, f"al:{i}", f"{i * 11}")
    create(r, "al", "STRING", "PREFIX", "1", "al:", "SCHEMA", "value", "TEXT")
    r.check("alter:add", ["FT.ALTER", "al", "SCHEMA", "ADD", "value", "AS", "n", "NUMERIC"])
    wait_built(r, "al")
    search(r, "alter:search-new-field", "al", "@n:[20 60]", ALL_SET, order="set")
    info(r, "alter:info", "al")
    r.check("alter:unknown-index", ["FT.ALTER", "nope", "SCHEMA", "ADD", "x", "TEXT"], how="error")
    r.check("alter:duplicate-field", ["FT.ALTER", "al", "SCHEMA", "ADD", "value", "AS", "n", "TAG"],
            how="error")
    r.check("alter:no-add", ["FT.ALTER", "al", "SCHEMA", "value", "TEXT"], how="error")
    r.check("arity:alter", ["FT.ALTER", "al"], how="error")


def COMPARE_INFO(st, rs):
    from compare import cmp_info
    return cmp_info(st, rs)


def record_result(r, case, args, st, rs, why):
    """Counts one comparison made outside Runner.check."""
    if r.st is None:
        r.explore(case, args, args, rs)
        return
    r.compared += 1
    if why is None:
        r.identical += 1
    else:
        r.diff(case, args, st, args, rs, why)


# ------------------------------------------------- FLUSHALL and index definitions

def flushall(r, ctx, rng):
    flush(r)
    create(r, "f", "STRING", "PREFIX", "1", "f:", "SCHEMA", "value", "TEXT")
    put_string(r, "f:1", "hello world")
    r.check("flushall:reply", ["FLUSHALL"])
    r.check("flushall:list", ["FT._LIST"], how="set")
    r.check("flushall:search", ["FT.SEARCH", "f", "hello"], how="error")
    r.check("flushall:info", ["FT.INFO", "f"], how="error")
    put_string(r, "f:2", "hello again")
    r.check("flushall:create-again", ["FT.CREATE", "f", "ON", "STRING", "PREFIX", "1", "f:", "SCHEMA",
                                      "value", "TEXT"],
            ["FT.CREATE", "f", "ON", "HASH", "PREFIX", "1", "f:", "SCHEMA", "value", "TEXT"])
    wait_built(r, "f")
    search(r, "flushall:search-after-recreate", "f", "hello", ALL_SET, order="set")


# ------------------------------------------------- RESP3 shapes

def resp3(r, ctx, rng):
    flush(r)
    create(r, "r3", "STRING", "PREFIX", "1", "r3:", "SCHEMA", "value", "TEXT")
    for i in range(8):
        put_string(r, f"r3:{i}", " ".join(words(rng, 3, 8)) + " python")
    rs3 = Conn(ctx["rs_socket"], timeout_s=30.0)
    st3 = Conn(ctx["st_port"], timeout_s=30.0) if ctx["st_port"] else None
    saved = r.rs, r.st, r.reconnect_st
    r.reconnect_st = None  # a RESP2 connection would not do here
    try:
        rs3.call("HELLO", "3")
        if st3:
            st3.call("HELLO", "3")
        r.rs, r.st = rs3, st3
        for case, args in [
            ("withscores", ["FT.SEARCH", "r3", "python", "SCORER", "BM25STD", "WITHSCORES", "LIMIT", "0", "3"]),
            ("nocontent", ["FT.SEARCH", "r3", "python", "SCORER", "BM25STD", "NOCONTENT", "LIMIT", "0", "3"]),
            ("return", ["FT.SEARCH", "r3", "python", "SCORER", "BM25STD", "RETURN", "1", "value", "LIMIT", "0", "2"]),
            ("empty", ["FT.SEARCH", "r3", "zebra"]),
            ("limit-0-0", ["FT.SEARCH", "r3", "python", "LIMIT", "0", "0"]),
        ]:
            r.check(f"resp3:{case}", args + ["DIALECT", "2"], how="resp3")
        r.check("resp3:list", ["FT._LIST"], how="exact")
        r.check("resp3:info", ["FT.INFO", "r3"], how="info", resp3=True)
        r.check("resp3:unknown-index", ["FT.SEARCH", "nope", "x"], how="error")
    finally:
        r.rs, r.st, r.reconnect_st = saved
        rs3.close()
        if st3:
            st3.close()


# ------------------------------------------------- redis-py's search API

def redis_py(r, ctx, rng):
    """redis-py's r.ft() must parse Strata's replies as it parses
    RediSearch's (what RedisVL and LangChain build on)."""
    import redis
    from redis.commands.search.query import Query

    flush(r)
    create(r, "py", "STRING", "PREFIX", "1", "py:", "SCHEMA", "value", "TEXT")
    for i in range(20):
        put_string(r, f"py:{i:02}", " ".join(words(rng, 3, 10)))
    clients = {"rs": redis.Redis(unix_socket_path=ctx["rs_socket"], socket_timeout=30)}
    if isinstance(ctx["st_port"], str):  # --self-test: a second RediSearch
        clients["st"] = redis.Redis(unix_socket_path=ctx["st_port"], socket_timeout=30)
    elif ctx["st_port"]:
        clients["st"] = redis.Redis(port=ctx["st_port"], socket_timeout=30)

    def view(c, what):
        try:
            if what == "search":
                q = Query("python | database").scorer("BM25STD").with_scores().paging(0, 5).dialect(2)
                res = c.ft("py").search(q)
                return (res.total, [(d.id, round(d.score, 6), getattr(d, "value", None)) for d in res.docs])
            if what == "nocontent":
                res = c.ft("py").search(Query("python").no_content().dialect(2).paging(0, 100))
                return (res.total, sorted(d.id for d in res.docs))
            if what == "info":
                i = c.ft("py").info()
                return (i["index_name"], int(i["num_docs"]), int(i["hash_indexing_failures"]))
            if what == "list":
                return sorted(c.execute_command("FT._LIST"))
            if what == "knn":
                # RedisVL's shape: KNN with params, sorted by the distance, fields returned.
                q = (Query("*=>[KNN 3 @v $vec AS vector_distance]").sort_by("vector_distance")
                     .return_fields("vector_distance").paging(0, 3).dialect(2))
                res = c.ft("pv").search(q, query_params={"vec": blob([0.5, -0.5, 0.25, 1.0])})
                return (res.total, [(d.id, round(float(d.vector_distance), 5)) for d in res.docs])
        except Exception as e:  # noqa: BLE001 - the exception is the answer
            return f"{type(e).__name__}: {e}"

    create(r, "pv", "STRING", "PREFIX", "1", "pv:", "SCHEMA", "value", "AS", "v", "VECTOR", "FLAT",
           "6", "TYPE", "FLOAT32", "DIM", "4", "DISTANCE_METRIC", "COSINE")
    for i in range(20):
        put_string(r, f"pv:{i:02}", blob(vec(rng, 4)))
    for what in ("search", "nocontent", "info", "list", "knn"):
        rs = view(clients["rs"], what)
        if "st" not in clients:
            print(f"[redis-py:{what}] -> {rs!r}")
            continue
        st = view(clients["st"], what)
        record_result(r, f"redis-py:{what}", ["redis-py", what], st, rs,
                      None if st == rs else "redis-py parses different results")
    for c in clients.values():
        c.close()


# ------------------------------------------------- (g) bad input

def bad_input(r, ctx, rng):
    flush(r)
    # No NUMERIC alias over the text: RediSearch would fail every document.
    create(r, "b", "STRING", "PREFIX", "1", "b:", "SCHEMA", "value", "TEXT", "value", "AS", "tg",
           "TAG")
    create(r, "bn", "STRING", "PREFIX", "1", "bn:", "SCHEMA", "value", "AS", "n", "NUMERIC")
    put_string(r, "bn:1", "5")
    create(r, "bv", "STRING", "PREFIX", "1", "bv:", "SCHEMA", "value", "VECTOR", "FLAT", "6", "TYPE",
           "FLOAT32", "DIM", "4", "DISTANCE_METRIC", "L2")
    put_string(r, "b:1", "hello world")
    put_string(r, "bv:1", blob([1, 2, 3, 4]))
    big = "x" * (1 << 20)
    queries = {
        "query-20k-chars": "a" * 20000,
        "query-1m-chars": big,
        "query-1000-terms": "hello " * 1000,
        "query-1000-or": "|".join(["hello"] * 1000),
        "nesting-33": "(" * 33 + "hello" + ")" * 33,
        "nesting-100": "(" * 100 + "hello" + ")" * 100,
        "nesting-2000": "(" * 2000 + "hello" + ")" * 2000,
        "nesting-unbalanced": "(" * 5000,
        "negations-100": "-" * 100 + "hello",
        "tag-braces-deep": "@tg:{" * 100,
        "range-huge-numbers": "@n:[1e400 -1e400]",
        "range-nan": "@n:[nan nan]",
        "range-inverted": "@n:[10 1]",
        "tag-1m": "@tg:{" + big + "}",
        "prefix-1m": big + "*",
        "phrase-1m": "\"" + big + "\"",
        "field-name-1m": "@" + big + ":hello",
        "nul-bytes": "hel\x00lo",
        "invalid-utf8": b"hel\xff\xfelo",
        "only-spaces": "   ",
        "only-star-star": "*" * 1000,
        "many-params": " ".join(f"$p{i}" for i in range(300)),
    }
    for case, q in queries.items():
        idx = "bn" if case.startswith("range") else "b"
        r.check(f"bad:{case}", ["FT.SEARCH", idx, q, "DIALECT", "2"], how="bad")
    r.alive("bad:alive-after-queries")
    one = blob([1, 2, 3, 4])
    for case, q, params in [
        ("knn-wrong-size-3", "*=>[KNN 1 @value $b]", {"b": blob([1, 2, 3])}),
        ("knn-wrong-size-5", "*=>[KNN 1 @value $b]", {"b": blob([1, 2, 3, 4, 5])}),
        ("knn-empty-vector", "*=>[KNN 1 @value $b]", {"b": ""}),
        ("knn-1mb-vector", "*=>[KNN 1 @value $b]", {"b": big}),
        ("knn-k-huge", "*=>[KNN 1000000000000 @value $b]", {"b": one}),
        ("knn-k-negative", "*=>[KNN -5 @value $b]", {"b": one}),
        ("knn-k-param-huge", "*=>[KNN $k @value $b]", {"k": "99999999999999999999", "b": one}),
        ("knn-nan-vector", "*=>[KNN 1 @value $b]", {"b": blob([float("nan")] * 4)}),
        ("knn-inf-vector", "*=>[KNN 1 @value $b]", {"b": blob([float("inf")] * 4)}),
        ("knn-text-field", "*=>[KNN 1 @value $b]", {"b": "hello"}),
        ("params-1000", "hello", {f"p{i}": "x" for i in range(1000)}),
        ("param-1mb", "$w", {"w": big}),
    ]:
        idx = "bv" if "knn" in case else "b"
        args = with_params(["FT.SEARCH", idx, q], params)
        r.check(f"bad:{case}", args, how="bad")
    r.alive("bad:alive-after-knn")
    for case, args in [
        ("search-limit-huge-offset", ["FT.SEARCH", "b", "hello", "LIMIT", "999999999999", "10"]),
        ("search-limit-huge-count", ["FT.SEARCH", "b", "hello", "LIMIT", "0", "999999999999"]),
        ("search-return-huge-count", ["FT.SEARCH", "b", "hello", "RETURN", "1000000", "value"]),
        ("search-params-huge-count", ["FT.SEARCH", "b", "hello", "PARAMS", "1000000", "a", "b"]),
        ("search-empty-index-name", ["FT.SEARCH", "", "hello"]),
        ("search-1mb-index-name", ["FT.SEARCH", big, "hello"]),
        ("search-10000-args", ["FT.SEARCH", "b", "hello"] + ["NOCONTENT"] * 10000),
        ("search-sortby-1mb", ["FT.SEARCH", "b", "hello", "SORTBY", big]),
        ("search-scorer-1mb", ["FT.SEARCH", "b", "hello", "SCORER", big]),
        ("search-empty-args", ["FT.SEARCH", "b", "", "", ""]),
        ("create-empty-name", ["FT.CREATE", "", "SCHEMA", "value", "TEXT"]),
        ("create-1mb-name", ["FT.CREATE", big, "SCHEMA", "value", "TEXT"]),
        ("create-1mb-prefix", ["FT.CREATE", "i1", "PREFIX", "1", big, "SCHEMA", "value", "TEXT"]),
        ("create-1mb-field", ["FT.CREATE", "i2", "ON", "JSON", "SCHEMA", "$." + big, "AS", "x", "TEXT"]),
        ("create-prefix-count-huge", ["FT.CREATE", "i3", "PREFIX", "99999999999", "a", "SCHEMA", "value", "TEXT"]),
        ("create-10000-fields", ["FT.CREATE", "i4", "SCHEMA"] + sum(
            (["value", "AS", f"f{i}", "TAG"] for i in range(10000)), [])),
        ("create-empty-args", ["FT.CREATE", "", "", "", ""]),
        ("create-vector-params-huge", ["FT.CREATE", "i5", "SCHEMA", "value", "VECTOR", "FLAT",
                                       "99999999999", "TYPE", "FLOAT32"]),
        ("create-weight-nan", ["FT.CREATE", "i6", "SCHEMA", "value", "TEXT", "WEIGHT", "nan"]),
        ("create-weight-huge", ["FT.CREATE", "i7", "SCHEMA", "value", "TEXT", "WEIGHT", "1e400"]),
        ("info-empty-name", ["FT.INFO", ""]),
        ("info-1mb-name", ["FT.INFO", big]),
        ("dropindex-empty-name", ["FT.DROPINDEX", ""]),
        ("dropindex-1mb-name", ["FT.DROPINDEX", big]),
        ("dropindex-1mb-option", ["FT.DROPINDEX", "nope", big]),
        ("list-1mb-arg", ["FT._LIST", big]),
    ]:
        st, rs = r.check(f"bad:{case}", args, how="bad")
        if args[0] == "FT.CREATE":
            r.both(["FT.DROPINDEX", args[1]])
    r.alive("bad:alive-after-commands")
    # A document that is too large or odd never fails the write.
    for case, key, value in [("doc-1mb-text", "b:big", " ".join(["word"] * 200000)),
                             ("doc-binary", "b:bin", bytes(range(256)) * 4),
                             ("doc-vector-nan", "bv:nan", blob([float("nan")] * 4))]:
        r.check(f"bad:{case}", ["SET", key, value], ["HSET", key, "value", value], how="bad")
    r.check("bad:search-after-docs", ["FT.SEARCH", "b", "word", "NOCONTENT", "DIALECT", "2"], how="bad")
    r.alive("bad:alive-at-end")
