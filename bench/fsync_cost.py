#!/usr/bin/env python3
"""Measure the cost of the durable writes faxgate makes per accepted message.

Times, in the given folder, N rounds of what the spool does for one document: write a
file, fsync it, rename it and fsync the folder. Then times N rounds of a 4 KiB append
and fdatasync, which is close to one SQLite WAL commit. Prints one `key=value` line with
the median and 99th percentile of each, in milliseconds.
"""

import argparse
import os
import statistics
import time


def percentile(values, fraction):
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(fraction * len(values)) - 1))]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dir", help="folder on the filesystem to measure")
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--size", type=int, default=60_000, help="bytes per spool file")
    args = parser.parse_args()

    os.makedirs(args.dir, exist_ok=True)
    payload = os.urandom(args.size)
    spool = []
    for i in range(args.rounds):
        temp = os.path.join(args.dir, f".doc{i}.tmp")
        target = os.path.join(args.dir, f"doc{i}.pdf")
        start = time.perf_counter()
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, payload)
        os.fsync(fd)
        os.close(fd)
        os.rename(temp, target)
        dir_fd = os.open(args.dir, os.O_RDONLY)
        os.fsync(dir_fd)
        os.close(dir_fd)
        spool.append(time.perf_counter() - start)

    wal = []
    log_path = os.path.join(args.dir, "wal")
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    block = os.urandom(4096)
    for _ in range(args.rounds):
        start = time.perf_counter()
        os.write(fd, block)
        os.fdatasync(fd)
        wal.append(time.perf_counter() - start)
    os.close(fd)

    for name in os.listdir(args.dir):
        os.remove(os.path.join(args.dir, name))

    print(
        f"spool_write_p50_ms={statistics.median(spool) * 1000:.2f} "
        f"spool_write_p99_ms={percentile(spool, 0.99) * 1000:.2f} "
        f"wal_append_p50_ms={statistics.median(wal) * 1000:.2f} "
        f"wal_append_p99_ms={percentile(wal, 0.99) * 1000:.2f} rounds={args.rounds}"
    )


if __name__ == "__main__":
    main()
