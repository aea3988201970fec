"""Differential test: Strata's FT.* against RediSearch 2.10.5 (issue 21).

Started by scripts/search-differential.sh, which starts both servers. Every
case sends the same command stream to both (translated where the document
model differs: a Strata `ON STRING` document `SET k text` is a RediSearch
`ON HASH` document `HSET k value text`; a Strata `ON JSON` document `SET k
json` is `JSON.SET k $ json`) and compares the replies: error texts exactly,
reply shapes exactly (RESP types kept apart, see resp.py), result sets,
ranks and scores under `SCORER BM25STD` (relative 1e-6), KNN keys exactly and
distances within float32 precision (RediSearch computes in float32).

A difference fails the run unless its case is in ALLOWED (tests/
search-differential/allowed.py) with the reason it is intended. Without a
Strata port (`--strata-port 0`), every stream runs against RediSearch alone
and its replies are printed: how the facts in the notes were read.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from allowed import ALLOWED  # noqa: E402
from compare import COMPARE, short  # noqa: E402
from resp import Closed, Conn, Err, Map, Simple  # noqa: E402
from streams import run_all  # noqa: E402

# One command may take this long on either server (the largest bad-input
# cases take well under a second on both).
COMMAND_TIMEOUT_S = 10.0
# The whole run; the script's own timeout (300 s) is the backstop.
RUN_BUDGET_S = 240.0

# ---------------------------------------------------------------- the runner


class Runner:
    def __init__(self, rs, st, record):
        self.rs, self.st = rs, st
        self.record = record
        self.compared = 0
        self.identical = 0
        self.allowed = []  # (case, reason, st, rs)
        self.diffs = []  # (case, st_cmd, st, rs_cmd, rs, why)
        self.unused_allow = set(ALLOWED)
        self.section = ""
        self.strata_dead = False
        # --self-test: the "Strata" side is a second RediSearch that gets
        # RediSearch's commands (checks the comparison itself).
        self.self_test = False
        self.reconnect_st = None

    # One command to one server; a closed connection is a reply too (and
    # for Strata a failure: no input may take the connection down).
    def _call(self, target, args):
        if target is None:
            return None
        try:
            return target.call(*args)
        except Closed as e:
            if target is self.st and self.reconnect_st:
                # A reply that never came would desynchronize every later
                # one: a new connection for the next command.
                self.st.close()
                try:
                    self.st = self.reconnect_st()
                except OSError:
                    pass
            return Err(f"<connection lost: {e}>")

    def both(self, st_args, rs_args=None):
        rs_args = st_args if rs_args is None else rs_args
        if self.self_test:
            st_args = rs_args
        rs = self._call(self.rs, rs_args)
        st = self._call(self.st, st_args) if self.st else None
        if self.record:
            self.record.write(
                json.dumps({"section": self.section, "st_cmd": enc(st_args), "st": enc(st),
                            "rs_cmd": enc(rs_args), "rs": enc(rs)}) + "\n")
        return st, rs

    def setup(self, st_args, rs_args=None):
        """A command both must accept (data and index set-up); a failure
        there is a difference too, reported once."""
        st, rs = self.both(st_args, rs_args)
        if isinstance(rs, Err):
            raise SystemExit(f"set-up failed on RediSearch: {short(rs_args)} -> {rs!r}")
        if self.st and isinstance(st, Err):
            self.diff("setup:" + " ".join(map(str, st_args[:3])), st_args, st, rs_args, rs,
                      "Strata refused a set-up command")
        return st, rs

    def explore(self, case, st_args, rs_args, rs):
        print(f"[{case}] {short(rs_args, 200)}\n    -> {short(rs, 1500)}")

    def diff(self, case, st_args, st, rs_args, rs, why):
        # A lost connection is never an intended difference.
        if case in ALLOWED and not (isinstance(st, Err) and st.text.startswith("<connection lost")):
            self.unused_allow.discard(case)
            self.allowed.append((case, ALLOWED[case], st, rs))
        else:
            self.diffs.append((case, st_args, st, rs_args, rs, why))

    def check(self, case, st_args, rs_args=None, how="exact", **kw):
        """Sends one command to both and compares the replies `how`."""
        rs_args = st_args if rs_args is None else rs_args
        st, rs = self.both(st_args, rs_args)
        if self.st is None:
            self.explore(case, st_args, rs_args, rs)
            return st, rs
        self.compared += 1
        why = COMPARE[how](st, rs, **kw)
        if isinstance(st, Err) and st.text.startswith("<connection lost"):
            why = "Strata closed the connection"
        if why is None:
            self.identical += 1
            if case in ALLOWED:
                self.unused_allow.discard(case)
                print(f"note: allow-listed case {case} is now identical")
        else:
            self.diff(case, st_args, st, rs_args, rs, why)
        return st, rs

    def alive(self, case):
        """Strata still answers PING (after bad input)."""
        if self.st is None:
            return
        self.compared += 1
        try:
            ok = self.st.call("PING") == Simple("PONG")
        except Closed:
            ok = False
        if ok:
            self.identical += 1
        else:
            self.strata_dead = True
            self.diffs.append((case, ["PING"], "no answer", ["PING"], Simple("PONG"),
                               "Strata is not alive after bad input"))
            raise SystemExit(1)


def enc(x):
    """JSON-able form of a command or reply, for --record."""
    if isinstance(x, Err):
        return {"err": x.text}
    if isinstance(x, Simple):
        return {"simple": str(x)}
    if isinstance(x, bytes):
        return x.decode("utf-8", "backslashreplace")
    if isinstance(x, Map):
        return {"map": [[enc(k), enc(v)] for k, v in x]}
    if isinstance(x, (list, tuple)):
        return [enc(i) for i in x]
    return x


# --------------------------------------------------------------- the streams



def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--valkey-socket", required=True)
    ap.add_argument("--strata-port", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="RedisJSON is loaded: run ON JSON")
    ap.add_argument("--record")
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--only", help="run only the sections whose name contains this")
    ap.add_argument("--explore", metavar="FILE",
                    help="development aid: run FILE (Python) with `c` connected to RediSearch")
    ap.add_argument("--self-test", metavar="SOCKET",
                    help="compare RediSearch with a second RediSearch at SOCKET instead of Strata")
    a = ap.parse_args()
    started = time.monotonic()
    rs = Conn(a.valkey_socket, timeout_s=COMMAND_TIMEOUT_S)
    if a.explore:
        exec(compile(open(a.explore).read(), a.explore, "exec"), {"c": rs, "Conn": Conn})
        return 0
    st_where = a.self_test or a.strata_port
    st = Conn(st_where, timeout_s=COMMAND_TIMEOUT_S) if st_where else None
    record = open(a.record, "w") if a.record else None
    runner = Runner(rs, st, record)
    runner.self_test = bool(a.self_test)
    if st_where:
        runner.reconnect_st = lambda: Conn(st_where, timeout_s=COMMAND_TIMEOUT_S)
    ctx = {"rs_socket": a.valkey_socket, "st_port": a.self_test or a.strata_port, "json": a.json,
           "seed": a.seed, "only": a.only, "deadline": started + RUN_BUDGET_S}
    try:
        run_all(runner, ctx)
    finally:
        if record:
            record.close()
    if st is None:
        print(f"RediSearch alone: streams run in {time.monotonic() - started:.1f} s")
        return 0
    return summary(runner, time.monotonic() - started)


def summary(r, secs):
    print()
    print(f"== search differential: {r.compared} commands compared, {r.identical} identical, "
          f"{len(r.allowed)} allowed differences, {len(r.diffs)} unexpected differences "
          f"({secs:.1f} s)")
    by_reason = {}
    for case, reason, _, _ in r.allowed:
        by_reason.setdefault(reason, []).append(case)
    for reason, cases in by_reason.items():
        print(f"  allowed ({len(cases)}): {reason}\n      cases: {', '.join(cases)}")
    for case, sa, st, ra, rs, why in r.diffs:
        print(f"DIFFERENCE [{case}] {why}")
        print(f"    strata     {short(sa, 300)}\n      -> {short(st)}")
        if ra != sa:
            print(f"    redisearch {short(ra, 300)}")
        print(f"      -> {short(rs)}")
    unused = sorted(r.unused_allow - {c for c, _, _, _ in r.allowed})
    if unused:
        print(f"note: allow-list entries not exercised or now identical: {', '.join(unused)}")
    print(f"{r.identical} passed, {len(r.diffs)} failed, {len(r.allowed)} skipped")
    return 1 if r.diffs else 0


if __name__ == "__main__":
    sys.exit(main())
