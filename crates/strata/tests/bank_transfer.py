"""Bank transfers with redis-py's WATCH/MULTI/EXEC retry loop, for
tests/bank.rs.

    python3 bank_transfer.py PORT ACCOUNTS THREADS DURATION_S

Each of THREADS workers moves random amounts between ACCOUNTS accounts
(keys bank:0 .. bank:N-1) with `pipeline(transaction=True)`: WATCH both
accounts, read them, MULTI, DECRBY/INCRBY and INCR bank:transfers (the
log of acknowledged transfers), EXEC; a WatchError retries. One more
thread takes MGET snapshots of every account and checks the sum. Runs for
DURATION_S seconds, or until the server goes away (the test kills it).

Prints one JSON line: acknowledged transfers (EXEC answered), retries,
snapshots, and the snapshot sums that were wrong (must be none); "pending"
counts transfers whose EXEC was sent but not answered (at most one per
worker), which may or may not have been applied.
"""

import json
import random
import sys
import threading
import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

TOTAL_PER_ACCOUNT = 1000


def connect(port):
    # No client-side retries: a killed server must end the run, and a
    # resent EXEC would blur which transfers were acknowledged.
    return redis.Redis(
        port=port,
        socket_timeout=10,
        socket_connect_timeout=10,
        retry=Retry(NoBackoff(), 0),
    )


def account(i):
    return f"bank:{i}"


def worker(port, accounts, stop, stats, lock):
    r = connect(port)
    rng = random.Random()
    while not stop.is_set():
        a, b = rng.sample(range(accounts), 2)
        amount = rng.randint(1, 50)
        sent = False
        try:
            with r.pipeline(transaction=True) as pipe:
                while not stop.is_set():
                    try:
                        pipe.watch(account(a), account(b))
                        balance = int(pipe.get(account(a)))
                        if balance < amount:
                            pipe.unwatch()
                            break
                        pipe.multi()
                        pipe.decrby(account(a), amount)
                        pipe.incrby(account(b), amount)
                        pipe.incr("bank:transfers")
                        sent = True
                        pipe.execute()
                        sent = False
                        with lock:
                            stats["acked"] += 1
                        break
                    except redis.WatchError as e:
                        # redis-py also raises WatchError when the
                        # connection drops while watching: that is the end.
                        if "ConnectionError" in str(e):
                            raise redis.ConnectionError(str(e))
                        sent = False
                        with lock:
                            stats["retries"] += 1
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            # The server went away (killed by the test).
            with lock:
                if sent:
                    stats["pending"] += 1
            return
        except redis.ResponseError as e:
            with lock:
                stats["errors"].append(str(e))
            return


def snapshots(port, accounts, stop, stats, lock):
    r = connect(port)
    keys = [account(i) for i in range(accounts)]
    expected = accounts * TOTAL_PER_ACCOUNT
    while not stop.is_set():
        try:
            values = r.mget(keys)
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            return
        total = sum(int(v) for v in values)
        with lock:
            stats["snapshots"] += 1
            if total != expected:
                stats["bad_sums"].append(total)


def main():
    port, accounts, threads, duration_s = (int(x) for x in sys.argv[1:5])
    stop = threading.Event()
    lock = threading.Lock()
    stats = {
        "acked": 0,
        "retries": 0,
        "pending": 0,
        "snapshots": 0,
        "bad_sums": [],
        "errors": [],
    }
    workers = [
        threading.Thread(target=worker, args=(port, accounts, stop, stats, lock))
        for _ in range(threads)
    ]
    workers.append(
        threading.Thread(target=snapshots, args=(port, accounts, stop, stats, lock))
    )
    for t in workers:
        t.start()
    deadline = time.monotonic() + duration_s
    while time.monotonic() < deadline and any(t.is_alive() for t in workers):
        time.sleep(0.05)
    stop.set()
    for t in workers:
        t.join(timeout=30)
    print(json.dumps(stats), flush=True)


if __name__ == "__main__":
    main()
