"""Search benchmarks: Strata against RediSearch 2.10.5 (on valkey-server 8.1)
and SQLite FTS5, side by side in one run. Driven by bench/search.sh, which
builds Strata and strata-bench, installs the peers in a venv and passes
--strata, --bench, --valkey, --redisearch; `bench/search.sh --help` lists
the options.

Parts (each with fresh servers; every server is stopped when the part ends,
and all of them on any exit, by pid):
  fulltext  BM25 top-10 queries on a generated corpus: Strata, RediSearch, FTS5
  knn       FLAT COSINE top-10 on clustered 384-d vectors: Strata, RediSearch,
            with recall against exact numpy
  write     SET throughput: no index / keys outside an index / keys under a
            TEXT index (Strata only: the cost of indexing)
  restart   start-to-first-FT.SEARCH with ~N GiB of indexed documents: Strata
            against valkey+RediSearch reloading its RDB

One load generator for both servers (strata-bench, `--workload commands`
replays pre-encoded RESP commands; `--threads 1` by default, so one core is
left to the server): same concurrency, same queries in the same order, HDR
percentiles. FTS5 runs in-process in Python threads (sqlite3 releases the GIL
while a statement runs), one connection per thread, the same concurrency.
"""

import argparse
import json
import os
import resource
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corpus  # noqa: E402

# ---------------------------------------------------------------- processes

CHILDREN = []  # Popen of every server / load generator still to be stopped
PIDS_FILE = None  # the wrapper's trap kills what is listed here, if we die


def log(msg):
    print(f"[{time.strftime('%H:%M:%S', time.gmtime())}] {msg}", file=sys.stderr, flush=True)


def note_pids():
    if PIDS_FILE:
        with open(PIDS_FILE, "w") as f:
            f.write("".join(f"{p.pid}\n" for p in CHILDREN if p.poll() is None))


def spawn(argv, out_path, err_path=None, cwd=None, env=None):
    out = open(out_path, "ab")
    err = open(err_path or out_path, "ab")
    # A session of its own: a Ctrl-C to the terminal reaches us, and we stop
    # the servers in order (and the wrapper's trap kills what is left).
    p = subprocess.Popen(argv, stdout=out, stderr=err, cwd=cwd, env=env, start_new_session=True)
    out.close()
    err.close()
    CHILDREN.append(p)
    note_pids()
    return p


def stop(p, sig=signal.SIGTERM, timeout_s=30.0):
    """Signals `p` (once) and waits for it, bounded; then SIGKILL."""
    if p.poll() is None:
        try:
            p.send_signal(sig)
            p.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            log(f"pid {p.pid} did not exit within {timeout_s}s of signal {sig}; killing it")
            p.kill()
            p.wait(timeout=10)
    if p in CHILDREN:
        CHILDREN.remove(p)
    note_pids()


def stop_all():
    for p in list(CHILDREN):
        if p.poll() is None:
            p.kill()
    for p in list(CHILDREN):
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    CHILDREN.clear()
    note_pids()


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def cpu_s(pid):
    """User + system CPU seconds of a live process, from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def du_mb(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total / 1e6


# ------------------------------------------------------------------ servers


class Server:
    """One running server: `name` is strata or redisearch."""

    def __init__(self, name, proc, port, data_dir):
        self.name, self.proc, self.port, self.data_dir = name, proc, port, data_dir

    @property
    def addr(self):
        return f"127.0.0.1:{self.port}"

    def client(self, timeout_s=120):
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        # No retries: redis-py's default retries with a backoff of seconds,
        # which would hide (and inflate) every wait we time.
        return redis.Redis(port=self.port, socket_timeout=timeout_s, socket_connect_timeout=5,
                           retry=Retry(NoBackoff(), 0))


def wait_until(what, fn, timeout_s, proc=None, interval_s=0.05):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with status {proc.returncode}")
        try:
            if fn():
                return
        except Exception:  # noqa: BLE001 - anything means "not yet"
            pass
        time.sleep(interval_s)
    raise RuntimeError(f"{what}: not within {timeout_s}s")


def start_strata(cfg, tag, data_dir=None, port=None, ready_timeout_s=120):
    port = port or free_ports(1)[0]
    data_dir = data_dir or os.path.join(cfg.work, f"strata-{tag}")
    out = os.path.join(cfg.logs, f"strata-{tag}.out")
    # Settings come from these flags only.
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_")}
    argv = [cfg.strata, "server", "--listen", f"127.0.0.1:{port}", "--text-listen", "off",
            "--http-listen", "off", "--data-dir", data_dir, "--fsync", cfg.fsync]
    start_size = os.path.getsize(out) if os.path.exists(out) else 0
    proc = spawn(argv, out, os.path.join(cfg.logs, f"strata-{tag}.log"), env=env)

    def ready():
        with open(out, "rb") as f:
            f.seek(start_size)
            return any(line.startswith(b"ready ") for line in f)

    wait_until(f"strata ({tag}) ready", ready, ready_timeout_s, proc)
    return Server("strata", proc, port, data_dir)


def start_valkey(cfg, tag, data_dir=None, port=None, wait=True):
    port = port or free_ports(1)[0]
    data_dir = data_dir or os.path.join(cfg.work, f"valkey-{tag}")
    os.makedirs(data_dir, exist_ok=True)
    # No persistence while benchmarking (SAVE is explicit in the restart
    # part); TIMEOUT 0: RediSearch computes every query in full, as Strata
    # does, instead of returning partial results after 500 ms.
    argv = [cfg.valkey, "--port", str(port), "--bind", "127.0.0.1", "--dir", data_dir,
            "--save", "", "--appendonly", "no", "--dbfilename", "dump.rdb",
            "--protected-mode", "no", "--loadmodule", cfg.redisearch, "TIMEOUT", "0"]
    proc = spawn(argv, os.path.join(cfg.logs, f"valkey-{tag}.log"))
    server = Server("redisearch", proc, port, data_dir)
    if wait:
        wait_until(f"valkey ({tag}) ready", lambda: server.client(2).ping(), 60, proc)
    return server


def start_system(cfg, system, tag):
    return start_strata(cfg, tag) if system == "strata" else start_valkey(cfg, tag)


def check_ft(server):
    """Fails clearly if the server has no FT.* (a Strata build before issue 21)."""
    try:
        server.client(10).execute_command("FT._LIST")
    except Exception as e:  # noqa: BLE001
        raise RuntimeError(
            f"{server.name} at {server.addr} does not answer FT._LIST ({e}); "
            "this build has no search commands (leave it out with --systems)"
        ) from e


# -------------------------------------------------------------- load generator


def run_bench(cfg, server, label, args, timeout_s, warmup_s=0.0):
    """Runs strata-bench against `server`; returns its JSON report, plus the
    client's and the server's CPU seconds over the measured part of the run
    (sampled from /proc when the warm-up ends, so neither the warm-up nor
    the client's start-up count)."""
    out = os.path.join(cfg.work, "bench.json")
    argv = [cfg.bench, "--addr", server.addr, "--format", "json", "--output", out,
            "--label", label, "--threads", str(cfg.bench_threads)] + args
    before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    err_path = os.path.join(cfg.logs, "strata-bench.err")
    with open(err_path, "ab") as err:
        err.write(f"--- {label}: {' '.join(argv)}\n".encode())
        err.flush()
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        started = time.monotonic()
        CHILDREN.append(p)
        note_pids()
        client_cpu0, server_cpu0 = sample_at(started + warmup_s, p, server.proc)
        try:
            rc = p.wait(timeout=max(1.0, timeout_s - (time.monotonic() - started)))
        except subprocess.TimeoutExpired:
            stop(p, signal.SIGKILL)
            raise RuntimeError(f"strata-bench ({label}) did not finish within {timeout_s}s")
        CHILDREN.remove(p)
        note_pids()
    after_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_cpu = cpu_s(server.proc.pid) - server_cpu0
    if rc != 0 or not os.path.exists(out):
        raise RuntimeError(f"strata-bench ({label}) failed with status {rc}; see {err_path}")
    with open(out) as f:
        report = json.load(f)
    os.remove(out)
    report["client_cpu_s"] = (after_children.ru_utime - before_children.ru_utime) + (
        after_children.ru_stime - before_children.ru_stime) - client_cpu0
    report["server_cpu_s"] = server_cpu
    with open(cfg.jsonl, "a") as f:
        f.write(json.dumps(report) + "\n")
    if report.get("errors"):
        raise RuntimeError(f"strata-bench ({label}): {report['errors']} error replies; "
                           f"see {err_path}")
    return report


def sample_at(when, client, server_proc):
    """CPU seconds of the client and the server at `when` (or when the client
    exits, if sooner)."""
    while time.monotonic() < when and client.poll() is None:
        time.sleep(min(0.01, max(0.0, when - time.monotonic())))
    c = cpu_s(client.pid) if client.poll() is None else 0.0
    return (0.0 if np.isnan(c) else c), cpu_s(server_proc.pid)


def replay(cfg, server, label, path, count, connections, pipeline):
    """Sends every command of `path` exactly once (a load); returns commands/s."""
    report = run_bench(cfg, server, label, [
        "--workload", "commands", "--commands-file", path, "--requests", str(count),
        "--warmup-s", "0", "-c", str(connections), "-P", str(pipeline),
        "--reply-timeout-s", "120"], timeout_s=cfg.load_timeout_s)
    return report["ops_per_s"]


def measure(cfg, server, label, path, connections):
    """Replays `path` for the measured duration; returns a result row."""
    report = run_bench(cfg, server, label, [
        "--workload", "commands", "--commands-file", path,
        "--warmup-s", str(cfg.warmup_s), "--duration-s", str(cfg.duration_s),
        "-c", str(connections), "--reply-timeout-s", "60"],
        timeout_s=cfg.warmup_s + cfg.duration_s + 120, warmup_s=cfg.warmup_s)
    return row_of(report)


def row_of(report):
    ops = max(report["ops"], 1)
    return {
        "qps": report["ops_per_s"],
        "p50_ms": report["latency_us"]["p50"] / 1000,
        "p99_ms": report["latency_us"]["p99"] / 1000,
        "ops": report["ops"],
        "client_cpu_us_per_op": 1e6 * report["client_cpu_s"] / ops,
        "server_cpu_us_per_op": 1e6 * report["server_cpu_s"] / ops,
    }


# ------------------------------------------------------------------- corpus


def cached(cfg, name, make):
    """A generated file, kept between runs under target/ (deterministic)."""
    path = os.path.join(cfg.cache, name)
    if not os.path.exists(path):
        tmp = path + ".tmp"
        make(tmp)
        os.replace(tmp, path)
    return path


def write_commands(path, commands):
    with open(path, "wb", buffering=1 << 20) as f:
        for c in commands:
            f.write(c)


def fulltext_files(cfg):
    tag = f"s{cfg.seed}-d{cfg.docs}-q{cfg.queries}"
    vocab = corpus.vocabulary(cfg.seed)
    qs = corpus.queries(cfg.seed, cfg.queries, vocab)

    def docs_txt(p):
        with open(p, "wb", buffering=1 << 20) as f:
            for _, d in corpus.documents(cfg.seed, cfg.docs, vocab):
                f.write(d + b"\n")

    docs = cached(cfg, f"docs-{tag}.txt", docs_txt)

    def lines():
        with open(docs, "rb") as f:
            for i, line in enumerate(f):
                yield i, line.rstrip(b"\n")

    return {
        "docs": docs,
        "queries": qs,
        "strata_load": cached(cfg, f"strata-load-{tag}.resp", lambda p: write_commands(
            p, (corpus.resp("SET", b"doc:%d" % i, d) for i, d in lines()))),
        "redis_load": cached(cfg, f"redis-load-{tag}.resp", lambda p: write_commands(
            p, (corpus.resp("HSET", b"doc:%d" % i, "value", d) for i, d in lines()))),
        "strata_q": cached(cfg, f"strata-q-{tag}.resp", lambda p: write_commands(
            p, (corpus.resp("FT.SEARCH", "ft", q, "LIMIT", "0", "10") for q in qs))),
        "redis_q": cached(cfg, f"redis-q-{tag}.resp", lambda p: write_commands(
            p, (corpus.resp("FT.SEARCH", "ft", q, "SCORER", "BM25STD", "LIMIT", "0", "10")
                for q in qs))),
    }


FT_CREATE = {
    "strata": ["FT.CREATE", "ft", "ON", "STRING", "PREFIX", "1", "doc:", "SCHEMA", "value", "TEXT"],
    "redisearch": ["FT.CREATE", "ft", "ON", "HASH", "PREFIX", "1", "doc:", "SCHEMA", "value",
                   "TEXT"],
}
LOAD_CONNECTIONS, LOAD_PIPELINE = 4, 64


def ft_info(server, index):
    info = server.client().execute_command("FT.INFO", index)
    fields = dict(zip(info[::2], info[1::2]))
    # RediSearch and Strata send numbers as doubles (RESP2: bulk strings).
    return {"num_docs": int(float(fields[b"num_docs"])),
            "indexing": int(float(fields.get(b"indexing", 0)))}


def create_index(server, args, timeout_s=120):
    """FT.CREATE, then wait (bounded) until the index says it is built: an
    index created over a store scans it first (Strata: a backfill in pages)."""
    server.client().execute_command(*args)
    wait_until(f"{server.name}: index {args[1]} built",
               lambda: ft_info(server, args[1])["indexing"] == 0, timeout_s, server.proc)


def wait_indexed(server, index, expected, timeout_s=600):
    """Waits (bounded) until the index holds `expected` documents and is not
    building; returns the count seen last if it never does."""
    try:
        wait_until(f"{server.name}: {expected} documents in {index}",
                   lambda: ft_info(server, index) == {"num_docs": expected, "indexing": 0},
                   timeout_s, server.proc, interval_s=0.2)
    except RuntimeError:
        pass
    return ft_info(server, index)["num_docs"]


def ft_total(server, index, *args):
    return int(server.client().execute_command("FT.SEARCH", index, *args)[0])


# ----------------------------------------------------------------- FTS5


FTS5_QUERY = "SELECT rowid, body FROM t WHERE t MATCH ? ORDER BY bm25(t) LIMIT 10"


def fts5_build(path, docs_path):
    if os.path.exists(path):
        os.remove(path)
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    # Porter stemming: as close as FTS5 gets to the others' Snowball English.
    db.execute("CREATE VIRTUAL TABLE t USING fts5(body, tokenize='porter unicode61')")
    start = time.monotonic()
    with open(docs_path, "rb") as f:
        db.executemany("INSERT INTO t(rowid, body) VALUES (?, ?)",
                       ((i, line.rstrip(b"\n").decode()) for i, line in enumerate(f)))
    db.commit()
    elapsed = time.monotonic() - start
    db.close()
    return elapsed


def fts5_worker(args):
    """`searchbench.py fts5-worker`: the FTS5 query loop, in its own process so
    that its CPU is measured like strata-bench's. Prints one JSON line."""
    with open(args.queries_file) as f:
        qs = [line.rstrip("\n") for line in f]
    start = time.monotonic()
    measure_start = start + args.warmup_s
    end = measure_start + args.duration_s
    lock = threading.Lock()
    cursor = [0]
    samples = []
    errors = [0]

    def loop():
        db = sqlite3.connect(args.db, check_same_thread=False)
        db.execute("PRAGMA query_only=1")
        mine = []
        while True:
            with lock:
                i = cursor[0]
                cursor[0] += 1
            t0 = time.monotonic()
            if t0 >= end:
                break
            try:
                db.execute(FTS5_QUERY, (qs[i % len(qs)],)).fetchall()
            except sqlite3.Error:
                errors[0] += 1
            t1 = time.monotonic()
            if t0 >= measure_start:
                mine.append((t1 - t0, t1))
        with lock:
            samples.extend(mine)

    threads = [threading.Thread(target=loop) for _ in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lat = sorted(s[0] for s in samples)
    last = max((s[1] for s in samples), default=measure_start)
    duration = max(last - measure_start, 1e-9)
    print(json.dumps({
        "ops": len(lat), "errors": errors[0], "ops_per_s": len(lat) / duration,
        "latency_us": {"p50": 1e6 * pct(lat, 0.50), "p99": 1e6 * pct(lat, 0.99)},
    }))


def pct(sorted_values, q):
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def fts5_measure(cfg, db_path, queries):
    qfile = os.path.join(cfg.work, "fts5-queries.txt")
    with open(qfile, "w") as f:
        f.write("".join(q + "\n" for q in queries))
    argv = [sys.executable, os.path.abspath(__file__), "fts5-worker", "--db", db_path,
            "--queries-file", qfile, "--threads", str(cfg.connections),
            "--warmup-s", str(cfg.warmup_s), "--duration-s", str(cfg.duration_s)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, start_new_session=True)
    started = time.monotonic()
    CHILDREN.append(p)
    note_pids()
    # The worker reads its queries and opens its connections first (well
    # under the warm-up); its CPU counts from the end of the warm-up.
    client_cpu0, _ = sample_at(started + cfg.warmup_s, p, p)
    try:
        out, _ = p.communicate(timeout=cfg.warmup_s + cfg.duration_s + 120)
    except subprocess.TimeoutExpired:
        stop(p, signal.SIGKILL)
        raise RuntimeError("the FTS5 worker did not finish in time")
    CHILDREN.remove(p)
    note_pids()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise RuntimeError(f"the FTS5 worker failed with status {p.returncode}")
    report = json.loads(out)
    report["client_cpu_s"] = (after.ru_utime - before.ru_utime) + (
        after.ru_stime - before.ru_stime) - client_cpu0
    report["server_cpu_s"] = 0.0  # in-process: all of it is in client_cpu_s
    if report["errors"]:
        raise RuntimeError(f"FTS5: {report['errors']} queries failed")
    return row_of(report)


# ------------------------------------------------------------------ parts


def rotated(items, r):
    r %= len(items)
    return items[r:] + items[:r]


def summarize(rows_by_system, ratios):
    """Medians over rounds of each system's row, and of each per-round ratio."""
    med = {}
    for system, rows in rows_by_system.items():
        med[system] = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    rat = {}
    for (a, b), values in ratios.items():
        rat[f"{a}/{b}"] = {"median": statistics.median(values), "rounds": values}
    return {"median": med, "ratios": rat}


def per_round_ratios(rows_by_system, rounds):
    ratios = {}
    if "strata" in rows_by_system:
        for peer in rows_by_system:
            if peer != "strata":
                ratios[("strata", peer)] = [
                    rows_by_system["strata"][r]["qps"] / rows_by_system[peer][r]["qps"]
                    for r in range(rounds)]
    return ratios


def part_fulltext(cfg):
    log(f"fulltext: {cfg.docs} documents, {cfg.queries} queries")
    files = fulltext_files(cfg)
    out = {"docs": cfg.docs, "queries": cfg.queries, "load_docs_per_s": {}}
    servers = {}
    try:
        for system in [s for s in cfg.systems if s != "fts5"]:
            server = start_system(cfg, system, "fulltext")
            servers[system] = server
            check_ft(server)
            create_index(server, FT_CREATE[system])
            path = files["strata_load" if system == "strata" else "redis_load"]
            rate = replay(cfg, server, f"{system}-fulltext-load", path, cfg.docs,
                          LOAD_CONNECTIONS, LOAD_PIPELINE)
            indexed = wait_indexed(server, "ft", cfg.docs)
            if indexed != cfg.docs:
                raise RuntimeError(f"{system}: FT.INFO num_docs {indexed}, expected {cfg.docs}")
            out["load_docs_per_s"][system] = rate
            log(f"  {system}: loaded and indexed {cfg.docs} documents, {rate:,.0f}/s")
        fts5_db = os.path.join(cfg.work, "fts5.db")
        if "fts5" in cfg.systems:
            elapsed = fts5_build(fts5_db, files["docs"])
            out["load_docs_per_s"]["fts5"] = cfg.docs / elapsed
            log(f"  fts5: {cfg.docs} documents in {elapsed:.1f}s (one transaction)")
        out["agreement"] = fulltext_agreement(cfg, servers, fts5_db, files["queries"])
        rows = {s: [] for s in cfg.systems}
        for r in range(cfg.rounds):
            for system in rotated(list(cfg.systems), r):
                if system == "fts5":
                    row = fts5_measure(cfg, fts5_db, files["queries"])
                else:
                    path = files["strata_q" if system == "strata" else "redis_q"]
                    row = measure(cfg, servers[system], f"{system}-fulltext-r{r}", path,
                                  cfg.connections)
                rows[system].append(row)
                log(f"  round {r + 1}: {system} {row['qps']:,.0f} q/s, p50 {row['p50_ms']:.2f} ms,"
                    f" p99 {row['p99_ms']:.2f} ms")
        out["rows"] = rows
        out.update(summarize(rows, per_round_ratios(rows, cfg.rounds)))
        out["server_rss_mb"] = {s: rss_mb(v.proc.pid) for s, v in servers.items()}
    finally:
        for server in servers.values():
            stop(server.proc)
    return out


def fulltext_agreement(cfg, servers, fts5_db, queries):
    """How often the systems agree on the number of matches (same AND of the
    same stemmed words), over the first queries: a check that the
    comparison is like for like, not a differential test."""
    sample = queries[: min(len(queries), 100)]
    totals = {}
    for system, server in servers.items():
        c = server.client()
        totals[system] = [int(c.execute_command("FT.SEARCH", "ft", q, "LIMIT", "0", "0")[0])
                          for q in sample]
    if "fts5" in cfg.systems:
        db = sqlite3.connect(fts5_db)
        totals["fts5"] = [db.execute("SELECT count(*) FROM t WHERE t MATCH ?", (q,)).fetchone()[0]
                          for q in sample]
        db.close()
    names = sorted(totals)
    agreement = {"queries": len(sample),
                 "mean_matches": {s: statistics.mean(totals[s]) for s in names}}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            same = sum(x == y for x, y in zip(totals[a], totals[b]))
            agreement[f"{a}={b}"] = same / len(sample)
    log(f"  match counts agree: {agreement}")
    return agreement


def knn_files(cfg):
    tag = f"s{cfg.seed}-n{cfg.vectors}-d{cfg.dim}-q{cfg.knn_queries}"
    data = corpus.vectors(cfg.seed, cfg.vectors, cfg.dim)
    qv = corpus.query_vectors(cfg.seed, cfg.knn_queries, cfg.dim)
    query = "*=>[KNN 10 @vec $q AS score]"
    return {
        "data": data,
        "queries": qv,
        "query": query,
        "strata_load": cached(cfg, f"strata-vload-{tag}.resp", lambda p: write_commands(
            p, (corpus.resp("SET", b"vec:%d" % i, v.tobytes()) for i, v in enumerate(data)))),
        "redis_load": cached(cfg, f"redis-vload-{tag}.resp", lambda p: write_commands(
            p, (corpus.resp("HSET", b"vec:%d" % i, "vec", v.tobytes())
                for i, v in enumerate(data)))),
        # The same command text for both.
        "q": cached(cfg, f"knn-q-{tag}.resp", lambda p: write_commands(
            p, (corpus.resp("FT.SEARCH", "vec", query, "PARAMS", "2", "q", v.tobytes(),
                            "NOCONTENT", "LIMIT", "0", "10", "DIALECT", "2") for v in qv))),
    }


def knn_create(system, dim):
    common = ["VECTOR", "FLAT", "6", "TYPE", "FLOAT32", "DIM", str(dim),
              "DISTANCE_METRIC", "COSINE"]
    if system == "strata":
        return ["FT.CREATE", "vec", "ON", "STRING", "PREFIX", "1", "vec:", "SCHEMA", "value",
                "AS", "vec"] + common
    return ["FT.CREATE", "vec", "ON", "HASH", "PREFIX", "1", "vec:", "SCHEMA", "vec"] + common


def part_knn(cfg):
    systems = [s for s in cfg.systems if s != "fts5"]
    log(f"knn: {cfg.vectors} vectors of {cfg.dim} dimensions, {cfg.knn_queries} queries")
    files = knn_files(cfg)
    out = {"vectors": cfg.vectors, "dim": cfg.dim, "queries": cfg.knn_queries,
           "load_vectors_per_s": {}, "recall": {}}
    n_recall = min(cfg.recall_queries, cfg.knn_queries)
    exact_ids, exact_d = corpus.exact_knn_cosine(files["data"], files["queries"][:n_recall], 10)
    servers = {}
    try:
        for system in systems:
            server = start_system(cfg, system, "knn")
            servers[system] = server
            check_ft(server)
            create_index(server, knn_create(system, cfg.dim))
            path = files["strata_load"] if system == "strata" else files["redis_load"]
            rate = replay(cfg, server, f"{system}-knn-load", path, cfg.vectors, LOAD_CONNECTIONS,
                          LOAD_PIPELINE)
            indexed = wait_indexed(server, "vec", cfg.vectors)
            if indexed != cfg.vectors:
                raise RuntimeError(f"{system}: FT.INFO num_docs {indexed}, expected {cfg.vectors}")
            out["load_vectors_per_s"][system] = rate
            out["recall"][system] = knn_recall(server, files, exact_ids, exact_d, n_recall)
            log(f"  {system}: {cfg.vectors} vectors at {rate:,.0f}/s; recall@10 "
                f"{out['recall'][system]:.4f} over {n_recall} queries")
        rows = {s: [] for s in systems}
        for r in range(cfg.rounds):
            for system in rotated(systems, r):
                row = measure(cfg, servers[system], f"{system}-knn-r{r}", files["q"],
                              cfg.connections)
                rows[system].append(row)
                log(f"  round {r + 1}: {system} {row['qps']:,.1f} q/s, p50 {row['p50_ms']:.2f} ms,"
                    f" p99 {row['p99_ms']:.2f} ms")
        out["rows"] = rows
        out.update(summarize(rows, per_round_ratios(rows, cfg.rounds)))
        out["server_rss_mb"] = {s: rss_mb(v.proc.pid) for s, v in servers.items()}
    finally:
        for server in servers.values():
            stop(server.proc)
    return out


def knn_recall(server, files, exact_ids, exact_d, n):
    """Mean recall@10 against the exact answer. A returned key counts if it
    is in the exact top 10, or ties the exact 10th distance within 1e-6
    (float32 sums may order exact ties either way)."""
    c = server.client()
    data = files["data"].astype(np.float64)
    hits = 0
    for i in range(n):
        reply = c.execute_command("FT.SEARCH", "vec", files["query"], "PARAMS", "2", "q",
                                  files["queries"][i].tobytes(), "NOCONTENT", "LIMIT", "0", "10",
                                  "DIALECT", "2")
        keys = [int(k.split(b":")[1]) for k in reply[1:]]
        q = files["queries"][i].astype(np.float64)
        exact = set(exact_ids[i].tolist())
        for k in keys[:10]:
            if k in exact:
                hits += 1
            else:
                v = data[k]
                d = 1 - v @ q / (np.linalg.norm(v) * np.linalg.norm(q))
                hits += d <= exact_d[i][-1] + 1e-6
    return hits / (10 * n)


def part_write(cfg):
    """Strata alone: what indexing costs a SET. Fresh server per run."""
    log("write: SET throughput with and without indexes (Strata)")
    outside = ["FT.CREATE", "ft", "ON", "STRING", "PREFIX", "1", "doc:", "SCHEMA", "value", "TEXT"]
    inside = ["FT.CREATE", "ft", "ON", "STRING", "PREFIX", "1", "key:", "SCHEMA", "value", "TEXT"]
    # (test, config, index command, strata-bench value args)
    tests = {
        "set-100B": [("no index", None), ("keys outside the index", outside)],
        "set-words": [("no index", None), ("keys under a TEXT index", inside)],
    }
    value_args = {"set-100B": ["--values", "random", "--value-size", "100"],
                  "set-words": ["--values", "words"]}
    out = {"tests": {}}
    for test, configs in tests.items():
        rows = {name: [] for name, _ in configs}
        for r in range(cfg.write_rounds):
            for name, create in rotated(configs, r):
                tag = f"write-{test}-{r}-{'none' if create is None else 'idx'}"
                server = start_strata(cfg, tag)
                try:
                    if create is not None:
                        check_ft(server)
                        create_index(server, create)
                    report = run_bench(cfg, server, f"strata-{tag}", [
                        "--workload", "set", "--keyspace", str(cfg.write_keyspace),
                        "-c", str(cfg.write_connections), "--warmup-s", str(cfg.warmup_s),
                        "--duration-s", str(cfg.write_duration_s), "--seed", str(cfg.seed + r),
                    ] + value_args[test], timeout_s=cfg.warmup_s + cfg.write_duration_s + 120,
                        warmup_s=cfg.warmup_s)
                finally:
                    stop(server.proc)
                    shutil.rmtree(server.data_dir, ignore_errors=True)
                row = row_of(report)
                rows[name].append(row)
                log(f"  {test} round {r + 1}: {name}: {row['qps']:,.0f} SET/s, "
                    f"p99 {row['p99_ms']:.2f} ms")
        base, other = [name for name, _ in configs]
        ratio = [rows[other][r]["qps"] / rows[base][r]["qps"] for r in range(cfg.write_rounds)]
        med = {name: {k: statistics.median(x[k] for x in v) for k in v[0]}
               for name, v in rows.items()}
        out["tests"][test] = {"rows": rows, "median": med, "ratio_name": f"{other} / {base}",
                              "ratio": {"median": statistics.median(ratio), "rounds": ratio}}
    return out


def restart_files(cfg):
    """Documents until their bytes reach --restart-gb GiB."""
    target_bytes = int(cfg.restart_gb * (1 << 30))
    tag = f"s{cfg.seed}-gb{cfg.restart_gb}"
    vocab = corpus.vocabulary(cfg.seed)
    state = {}

    def make(strata_path, redis_path):
        total = count = 0
        with open(strata_path, "wb", buffering=1 << 20) as fs, \
                open(redis_path, "wb", buffering=1 << 20) as fr:
            # A different seed from the fulltext corpus' (seed + 1): any
            # prefix of the stream is deterministic, and we stop at the size.
            for i, d in corpus.documents(cfg.seed + 1, 1 << 40, vocab):
                fs.write(corpus.resp("SET", b"doc:%d" % i, d))
                fr.write(corpus.resp("HSET", b"doc:%d" % i, "value", d))
                total += len(d)
                count = i + 1
                if total >= target_bytes:
                    break
        return count, total

    meta = os.path.join(cfg.cache, f"restart-{tag}.json")
    s_path = os.path.join(cfg.cache, f"strata-restart-{tag}.resp")
    r_path = os.path.join(cfg.cache, f"redis-restart-{tag}.resp")
    if not (os.path.exists(meta) and os.path.exists(s_path) and os.path.exists(r_path)):
        log(f"  generating {cfg.restart_gb} GiB of documents")
        count, total = make(s_path + ".tmp", r_path + ".tmp")
        os.replace(s_path + ".tmp", s_path)
        os.replace(r_path + ".tmp", r_path)
        with open(meta, "w") as f:
            json.dump({"docs": count, "bytes": total}, f)
    with open(meta) as f:
        state.update(json.load(f))
    # A word of Zipf rank 2,001: in about 0.5% of the documents, a typical
    # query. The commonest word would time a scan of nearly every posting
    # (a count has no top-k shortcut), not the restart.
    state.update(strata=s_path, redisearch=r_path, query=corpus.vocabulary(cfg.seed)[2000])
    return state


def ft_search_total(port, query, timeout_s):
    """One FT.SEARCH ft <query> LIMIT 0 0 on a fresh connection: the total, or
    None for an error reply (LOADING, unknown index) or a refused connection.
    A raw socket: no client library retries or backs off behind our back."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
            sock.sendall(corpus.resp("FT.SEARCH", "ft", query, "LIMIT", "0", "0"))
            buf = b""
            while buf.count(b"\r\n") < 2 and not buf.startswith(b"-"):
                chunk = sock.recv(65536)
                if not chunk:
                    return None
                buf += chunk
            if not buf.startswith(b"*"):
                return None
            second = buf.split(b"\r\n")[1]
            return int(second[1:]) if second.startswith(b":") else None
    except (OSError, ValueError):
        return None


def time_to_search(start, port, query, expected, timeout_s, proc):
    """From `start` (just before the spawn): seconds to the first FT.SEARCH
    answered without an error, and to the first whose total is `expected`
    (the whole index). Polls every 2 ms."""
    first = full = None
    while time.monotonic() - start < timeout_s:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with status {proc.returncode}")
        total = ft_search_total(port, query, timeout_s)
        now = time.monotonic() - start
        if total is not None:
            first = now if first is None else first
            if total == expected:
                full = now
                break
        time.sleep(0.002)
    if full is None:
        raise RuntimeError(f"no complete FT.SEARCH answer within {timeout_s}s")
    return first, full


def part_restart(cfg):
    systems = [s for s in cfg.systems if s != "fts5"]
    log(f"restart: ~{cfg.restart_gb} GiB of indexed documents")
    files = restart_files(cfg)
    out = {"docs": files["docs"], "bytes": files["bytes"], "load_docs_per_s": {},
           "on_disk_mb": {}, "rss_mb": {}, "rows": {s: [] for s in systems}}
    dirs, ports, expected = {}, {}, {}
    for system in systems:
        server = start_system(cfg, system, "restart")
        dirs[system], ports[system] = server.data_dir, server.port
        try:
            check_ft(server)
            create_index(server, FT_CREATE[system])
            rate = replay(cfg, server, f"{system}-restart-load", files[system], files["docs"],
                          LOAD_CONNECTIONS, LOAD_PIPELINE)
            indexed = wait_indexed(server, "ft", files["docs"], timeout_s=cfg.restart_timeout_s)
            if indexed != files["docs"]:
                raise RuntimeError(f"{system}: FT.INFO num_docs {indexed}, "
                                   f"expected {files['docs']}")
            out["load_docs_per_s"][system] = rate
            expected[system] = ft_total(server, "ft", files["query"], "LIMIT", "0", "0")
            out["rss_mb"][system] = rss_mb(server.proc.pid)
            if system == "redisearch":
                server.client(600).execute_command("SAVE")
        finally:
            stop(server.proc, timeout_s=600)
        out["on_disk_mb"][system] = du_mb(dirs[system])
        log(f"  {system}: {files['docs']} documents at {rate:,.0f}/s; {expected[system]} match "
            f"'{files['query']}'; {out['on_disk_mb'][system]:,.0f} MB on disk")
    for r in range(cfg.restart_rounds):
        for system in rotated(systems, r):
            if cfg.drop_caches:
                os.sync()
                with open("/proc/sys/vm/drop_caches", "w") as f:
                    f.write("3\n")
            t0 = time.monotonic()
            if system == "strata":
                proc = spawn_strata_raw(cfg, dirs[system], ports[system])
            else:
                proc = start_valkey(cfg, "restart", data_dir=dirs[system], port=ports[system],
                                    wait=False).proc
            try:
                first, full = time_to_search(t0, ports[system], files["query"], expected[system],
                                             cfg.restart_timeout_s, proc)
            finally:
                stop(proc, timeout_s=600)
            out["rows"][system].append({"first_answer_s": first, "complete_answer_s": full})
            log(f"  round {r + 1}: {system}: first FT.SEARCH answer after {first:.3f}s, "
                f"complete after {full:.3f}s")
    out["median"] = {s: {k: statistics.median(x[k] for x in rows) for k in rows[0]}
                     for s, rows in out["rows"].items()}
    return out


def spawn_strata_raw(cfg, data_dir, port):
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_")}
    argv = [cfg.strata, "server", "--listen", f"127.0.0.1:{port}", "--text-listen", "off",
            "--http-listen", "off", "--data-dir", data_dir, "--fsync", cfg.fsync]
    return spawn(argv, os.path.join(cfg.logs, "strata-restart.out"),
                 os.path.join(cfg.logs, "strata-restart.log"), env=env)


# ------------------------------------------------------------------ report


NAMES = {"strata": "Strata", "redisearch": "RediSearch 2.10.5 (valkey 8.1)",
         "fts5": "SQLite FTS5 (in-process)"}


def fmt(x, digits=0):
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "–"
    return f"{x:,.{digits}f}"


def ratio_line(res):
    parts = []
    for name, r in res.get("ratios", {}).items():
        a, b = name.split("/")
        rounds = ", ".join(f"{x:.2f}" for x in r["rounds"])
        parts.append(f"{NAMES[a].split(' ')[0]} ÷ {NAMES[b].split(' ')[0]}: **{r['median']:.2f}** "
                     f"(rounds: {rounds})")
    return "; ".join(parts) + "." if parts else "(no ratio: Strata was not measured)"


def query_table(res, extra_col=None):
    head = "| system | q/s | p50 ms | p99 ms | client CPU µs/query | server CPU µs/query |"
    if extra_col:
        head += f" {extra_col[0]} |"
    lines = [head, "|" + "---|" + "--:|" * (head.count("|") - 2)]
    for system, m in res["median"].items():
        line = (f"| {NAMES[system]} | {fmt(m['qps'], 1)} | {fmt(m['p50_ms'], 2)} | "
                f"{fmt(m['p99_ms'], 2)} | {fmt(m['client_cpu_us_per_op'])} | "
                f"{fmt(m['server_cpu_us_per_op']) if system != 'fts5' else 'in client'} |")
        if extra_col:
            line += f" {extra_col[1](system)} |"
        lines.append(line)
    return "\n".join(lines)


def render(cfg, results, failure=None):
    out = [f"# Search benchmarks, {cfg.stamp} UTC", ""]
    if failure:
        out += [f"**This run did not finish** ({failure}): only the parts below completed.", ""]
    out.append(f"`{cfg.command}`; build `{cfg.build}`; {os.cpu_count()} cores; "
               f"{'**QUICK (smoke) run: sizes too small to quote**; ' if cfg.quick else ''}"
               f"Strata `--fsync {cfg.fsync}`, valkey without persistence while measuring "
               f"queries; strata-bench `--threads {cfg.bench_threads}`; medians of "
               f"{cfg.rounds} alternating rounds of {cfg.duration_s} s (warm-up "
               f"{cfg.warmup_s} s), {cfg.connections} connections, seed {cfg.seed}.")
    ft = results.get("fulltext")
    if ft:
        out += ["", f"## Full-text: BM25 top 10, {ft['docs']:,} documents of 20–200 words, "
                    f"{ft['queries']:,} queries of 1–3 words", "",
                query_table(ft, ("load docs/s (indexed)",
                                 lambda s: fmt(ft["load_docs_per_s"].get(s)))), "",
                ratio_line(ft), "",
                "Queries whose match count agrees (first "
                f"{ft['agreement']['queries']}): " + ", ".join(
                    f"{k} {100 * v:.0f}%" for k, v in ft["agreement"].items() if "=" in k)
                + "; mean matches per query: " + ", ".join(
                    f"{k} {v:,.0f}" for k, v in ft["agreement"]["mean_matches"].items()) + "."]
    knn = results.get("knn")
    if knn:
        out += ["", f"## KNN: FLAT COSINE top 10, {knn['vectors']:,} vectors of {knn['dim']} "
                    f"dimensions, {knn['queries']:,} queries", "",
                query_table(knn, ("recall@10", lambda s: f"{knn['recall'][s]:.4f}")), "",
                ratio_line(knn)]
    wr = results.get("write")
    if wr:
        out += ["", f"## Write cost (Strata only): SET, {cfg.write_connections} connections, "
                    f"{cfg.write_keyspace:,} uniform random keys, fresh server per run, "
                    f"{cfg.write_rounds} alternating rounds of {cfg.write_duration_s} s", "",
                "| values | configuration | SET/s | p50 ms | p99 ms | server CPU µs/SET | ratio |",
                "|---|---|--:|--:|--:|--:|--:|"]
        for test, t in wr["tests"].items():
            for i, (name, m) in enumerate(t["median"].items()):
                ratio = "" if i == 0 else (
                    f"**{t['ratio']['median']:.3f}** (" +
                    ", ".join(f"{x:.3f}" for x in t["ratio"]["rounds"]) + ")")
                values = "100 random bytes" if test == "set-100B" else "20–200 words"
                out.append(f"| {values} | {name} | {fmt(m['qps'])} | {fmt(m['p50_ms'], 2)} | "
                           f"{fmt(m['p99_ms'], 2)} | {fmt(m['server_cpu_us_per_op'], 1)} | "
                           f"{ratio} |")
    rs = results.get("restart")
    if rs:
        out += ["", f"## Restart: {rs['docs']:,} indexed documents, "
                    f"{rs['bytes'] / (1 << 30):.2f} GiB of text", "",
                "| system | load docs/s (indexed) | RSS after load MB | on disk MB | "
                "first FT.SEARCH answer s | complete answer s |",
                "|---|--:|--:|--:|--:|--:|"]
        for s, m in rs["median"].items():
            out.append(f"| {NAMES[s]} | {fmt(rs['load_docs_per_s'][s])} | "
                       f"{fmt(rs['rss_mb'][s])} | {fmt(rs['on_disk_mb'][s])} | "
                       f"{m['first_answer_s']:.3f} | {m['complete_answer_s']:.3f} |")
        out.append("")
        out.append(f"Medians of {cfg.restart_rounds} restarts each (clean shutdown; valkey "
                   f"SAVEd its RDB first), alternating; page cache "
                   f"{'dropped before each start' if cfg.drop_caches else 'warm'}. "
                   "Complete = the answer counts every document (RediSearch re-indexes "
                   "while or after it loads the RDB).")
    out += ["", "Caveats: one machine runs the servers and the load generator; FTS5 runs "
                "in-process (no network, no server, a different durability: one SQLite "
                "file); RediSearch keeps its index in memory and is measured without "
                "persistence; Strata's BM25 uses b = 0.75, RediSearch's BM25STD b = 0.5, "
                "FTS5 its own bm25(), so the top 10s differ in order.", ""]
    return "\n".join(out)


# -------------------------------------------------------------------- main


def parse_args(argv):
    p = argparse.ArgumentParser(prog="bench/search.sh", description=__doc__.split("\n")[0])
    p.add_argument("--strata", required=True)
    p.add_argument("--bench", required=True)
    p.add_argument("--valkey", required=True)
    p.add_argument("--redisearch", required=True)
    p.add_argument("--pids-file")
    p.add_argument("--command", default="bench/search.sh")
    p.add_argument("--build", default="unknown")
    p.add_argument("--quick", action="store_true",
                   help="small sizes and short runs: a smoke test of a minute or two")
    p.add_argument("--parts", default="fulltext,knn,write,restart")
    p.add_argument("--systems", default="strata,redisearch,fts5",
                   help="which systems the query parts run (the write part is Strata's)")
    p.add_argument("--docs", type=int)
    p.add_argument("--queries", type=int)
    p.add_argument("--vectors", type=int)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--knn-queries", type=int)
    p.add_argument("--recall-queries", type=int)
    p.add_argument("--rounds", type=int)
    p.add_argument("--duration-s", type=float)
    p.add_argument("--warmup-s", type=float)
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--bench-threads", type=int, default=1)
    p.add_argument("--write-rounds", type=int)
    p.add_argument("--write-duration-s", type=float)
    p.add_argument("--write-connections", type=int, default=50)
    p.add_argument("--write-keyspace", type=int, default=100_000)
    p.add_argument("--restart-gb", type=float)
    p.add_argument("--restart-rounds", type=int)
    p.add_argument("--restart-timeout-s", type=float, default=1800)
    p.add_argument("--drop-caches", action="store_true",
                   help="drop the page cache before each restart (root)")
    p.add_argument("--fsync", default="always")
    p.add_argument("--seed", type=int, default=21)
    p.add_argument("--results", default="bench/results")
    p.add_argument("--cache", default="target/search-bench-data")
    p.add_argument("--keep-logs", action="store_true")
    cfg = p.parse_args(argv)
    full = dict(docs=100_000, queries=1_000, vectors=100_000, knn_queries=500,
                recall_queries=100, rounds=3, duration_s=10.0, warmup_s=2.0, write_rounds=3,
                write_duration_s=10.0, restart_gb=1.0, restart_rounds=2)
    quick = dict(docs=5_000, queries=200, vectors=5_000, knn_queries=100, recall_queries=50,
                 rounds=1, duration_s=2.0, warmup_s=0.5, write_rounds=1, write_duration_s=2.0,
                 restart_gb=0.01, restart_rounds=1)
    for k, v in (quick if cfg.quick else full).items():
        if getattr(cfg, k) is None:
            setattr(cfg, k, v)
    cfg.parts = [x for x in cfg.parts.split(",") if x]
    cfg.systems = [x for x in cfg.systems.split(",") if x]
    for x in cfg.parts:
        if x not in ("fulltext", "knn", "write", "restart"):
            p.error(f"unknown part {x}")
    for x in cfg.systems:
        if x not in NAMES:
            p.error(f"unknown system {x}")
    if "write" in cfg.parts and "strata" not in cfg.systems:
        cfg.parts.remove("write")
    for k in ("docs", "queries", "vectors", "knn_queries", "rounds", "connections",
              "write_rounds", "restart_rounds"):
        if getattr(cfg, k) < 1:
            p.error(f"--{k.replace('_', '-')} must be at least 1")
    cfg.load_timeout_s = 3600
    return cfg


def main(argv):
    global PIDS_FILE
    if argv and argv[0] == "fts5-worker":
        p = argparse.ArgumentParser()
        p.add_argument("--db")
        p.add_argument("--queries-file")
        p.add_argument("--threads", type=int)
        p.add_argument("--warmup-s", type=float)
        p.add_argument("--duration-s", type=float)
        fts5_worker(p.parse_args(argv[1:]))
        return 0
    cfg = parse_args(argv)
    PIDS_FILE = cfg.pids_file
    cfg.stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    os.makedirs(cfg.results, exist_ok=True)
    os.makedirs(cfg.cache, exist_ok=True)
    base = os.path.join(cfg.results, f"search-{cfg.stamp}")
    cfg.jsonl = base + ".jsonl"
    cfg.work = tempfile.mkdtemp(prefix="strata-search-bench.")
    cfg.logs = os.path.join(cfg.work, "logs")
    os.makedirs(cfg.logs)
    results, failed = {}, None

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    try:
        for part in cfg.parts:
            started = time.monotonic()
            results[part] = globals()[f"part_{part}"](cfg)
            log(f"{part}: done in {time.monotonic() - started:.0f}s")
    except BaseException as e:  # noqa: BLE001 - report, clean up, exit non-zero
        failed = f"{type(e).__name__}: {e}"
        log(f"FAILED: {e!r}")
    finally:
        stop_all()
        if results:
            text = render(cfg, results, failed)
            with open(base + ".md", "w") as f:
                f.write(text)
            with open(base + ".json", "w") as f:
                json.dump({"settings": {k: v for k, v in vars(cfg).items()
                                        if isinstance(v, (int, float, str, list, bool))},
                           "results": results}, f, indent=1, default=float)
            print(text)
            log(f"report: {base}.md, raw: {base}.json, strata-bench runs: {cfg.jsonl}")
        if failed or cfg.keep_logs:
            dest = base + "-logs"
            shutil.copytree(cfg.logs, dest, dirs_exist_ok=True)
            log(f"logs copied to {dest}")
        shutil.rmtree(cfg.work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
