"""The distributed-map comparison of benches/cluster.rs, in Python's RQ on the same Redis.

10,000 tiny items (`x * 2`) run by 2 RQ workers (`SimpleWorker`: no fork per job, RQ's
fastest), enqueued in one pipelined batch first; the time is from the first enqueue to
the last result read, as `cluster_tiny_10k` measures a whole map. Needs `pip install rq`
and a Redis: `REDIS_URL` (default redis://127.0.0.1:6379/0). Prints items/s.

    python3 benches/compare/rq_map.py [items]
"""

import os
import subprocess
import sys
import time

from redis import Redis
from rq import Queue
from rq.job import Job


def double(x):
    return x * 2


def main():
    items = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    name = f"skprocess-compare-{os.getpid()}"
    connection = Redis.from_url(url)
    queue = Queue(name, connection=connection)
    started = time.perf_counter()
    jobs = queue.enqueue_many(
        [Queue.prepare_data("rq_map.double", (x,), result_ttl=600) for x in range(items)]
    )
    here = os.path.dirname(os.path.abspath(__file__))
    environment = dict(os.environ, PYTHONPATH=here)
    command = [sys.executable, "-m", "rq.cli", "worker", "--burst", "--quiet",
               "--worker-class", "rq.worker.SimpleWorker", "--url", url, name]
    workers = [subprocess.Popen(command, env=environment) for _ in range(2)]
    for worker in workers:
        worker.wait(timeout=600)
    results = [job.return_value() for job in Job.fetch_many([j.id for j in jobs], connection)]
    elapsed = time.perf_counter() - started
    assert results == [x * 2 for x in range(items)], "a result is missing or wrong"
    queue.delete(delete_jobs=True)
    print(f"rq: {items} items over 2 SimpleWorkers in {elapsed:.3f} s: {items / elapsed:,.0f} items/s")


if __name__ == "__main__":
    main()
