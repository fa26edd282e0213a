#!/usr/bin/env python3
"""Post INCOMING_FAX webhook events to faxgate over parallel connections and time them.

Each event is multipart/form-data as Sinch sends it: `event`, `eventTime`, `fax` (the Fax
object as a JSON string) and the PDF in `file`. Every event has its own fax id, so none
is a repeat that faxgate would skip. Each worker thread keeps one HTTP/1.1 connection
open. The time recorded for an event runs from just before the request is written to
the moment the whole response has been read. Prints one `key=value` line.
"""

import argparse
import base64
import http.client
import json
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

BOUNDARY = "bench-webhook-3f9a"


def multipart_body(fax, pdf):
    def field(name, value, extra=""):
        return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"{extra}\r\n"
                f"\r\n").encode() + value + b"\r\n"

    body = field("event", b"INCOMING_FAX")
    body += field("eventTime", b"2026-12-04T12:00:00Z")
    body += field("fax", json.dumps(fax).encode())
    body += (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"fax.pdf\"\r\n"
             "Content-Type: application/pdf\r\n\r\n").encode() + pdf + b"\r\n"
    body += f"--{BOUNDARY}--\r\n".encode()
    return body


def fax_object(index, args):
    return {
        "id": f"bench-{args.run_id}-{index:06d}",
        "direction": "INBOUND",
        "from": args.caller,
        "to": args.to,
        "numberOfPages": 2,
        "status": "COMPLETED",
        "createTime": "2026-12-04T11:59:00Z",
        "completedTime": "2026-12-04T11:59:40Z",
        "hasFile": True,
        "projectId": "bench",
        "serviceId": "bench",
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--parallel", type=int, default=20, help="connections in parallel")
    parser.add_argument("--events", type=int, default=1000, help="events in total")
    parser.add_argument("--username", default="sinch")
    parser.add_argument("--password", required=True)
    parser.add_argument("--to", required=True, help="receiving account number, E.164")
    parser.add_argument("--caller", default="+14155552222")
    parser.add_argument("--pdf", required=True, help="the received fax, a PDF file")
    parser.add_argument("--run-id", default=str(int(time.time())), help="part of each fax id")
    parser.add_argument("--timeout", type=float, default=60, help="socket timeout in seconds")
    args = parser.parse_args()

    with open(args.pdf, "rb") as file:
        pdf = file.read()
    credentials = base64.b64encode(f"{args.username}:{args.password}".encode()).decode()
    bodies = [multipart_body(fax_object(i, args), pdf) for i in range(args.events)]
    local = threading.local()
    statuses = {}
    lock = threading.Lock()

    def post(index):
        if not hasattr(local, "connection"):
            local.connection = http.client.HTTPConnection(args.host, args.port, timeout=args.timeout)
        headers = {
            "Authorization": f"Basic {credentials}",
            "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        }
        start = time.perf_counter()
        try:
            local.connection.request("POST", "/webhooks/sinch", body=bodies[index], headers=headers)
            response = local.connection.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException) as error:
            local.connection.close()
            del local.connection
            status = type(error).__name__
        elapsed = time.perf_counter() - start
        with lock:
            statuses[status] = statuses.get(status, 0) + 1
        return status, elapsed

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        results = list(pool.map(post, range(args.events)))
    wall = time.perf_counter() - start

    ok = sorted(elapsed for status, elapsed in results if status == 200)
    p99 = ok[min(len(ok) - 1, round(0.99 * len(ok)) - 1)] if ok else float("nan")
    summary = {
        "parallel": args.parallel,
        "ok_200": len(ok),
        "other": args.events - len(ok),
        "seconds": round(wall, 3),
        "webhooks_per_s": round(len(ok) / wall, 1) if wall else 0,
        "p50_ms": round(statistics.median(ok) * 1000, 2) if ok else float("nan"),
        "p99_ms": round(p99 * 1000, 2),
    }
    print(" ".join(f"{key}={value}" for key, value in summary.items()))
    if len(ok) != args.events:
        print(f"statuses: {statuses}", file=sys.stderr)


if __name__ == "__main__":
    main()
