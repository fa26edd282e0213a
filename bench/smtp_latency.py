#!/usr/bin/env python3
"""Send one message many times over parallel SMTP sessions and time each DATA reply.

Each session connects once, sends EHLO, and then repeats MAIL, RCPT, DATA with the
message until the shared message count is used up. The time recorded for a message runs
from the moment the final "." line has been handed to the kernel to the moment the
complete final reply has been read, so it includes the client's own scheduling delay
(an asyncio loop in one Python process). Prints one `key=value` line.
"""

import argparse
import asyncio
import statistics
import sys
import time


class SmtpError(Exception):
    pass


async def read_reply(reader):
    """Read a possibly multi-line SMTP reply; return (code, text of the last line)."""
    while True:
        line = await reader.readline()
        if not line:
            raise SmtpError("connection closed by the server")
        if len(line) >= 4 and line[3:4] == b"-":
            continue
        return int(line[:3]), line.decode(errors="replace").strip()


async def expect(reader, codes, what):
    code, text = await read_reply(reader)
    if code not in codes:
        raise SmtpError(f"unexpected reply to {what}: {text}")
    return code, text


def dot_stuff(message):
    lines = message.split(b"\r\n")
    stuffed = [b"." + line if line.startswith(b".") else line for line in lines]
    body = b"\r\n".join(stuffed)
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    return body + b".\r\n"


async def session(args, data, remaining, results):
    reader, writer = await asyncio.open_connection(args.host, args.port, limit=1 << 20)
    try:
        await expect(reader, (220,), "the greeting")
        writer.write(b"EHLO bench.example.com\r\n")
        await expect(reader, (250,), "EHLO")
        while remaining[0] > 0:
            remaining[0] -= 1
            writer.write(f"MAIL FROM:<{args.sender}>\r\n".encode())
            await expect(reader, (250,), "MAIL")
            writer.write(f"RCPT TO:<{args.recipient}>\r\n".encode())
            await expect(reader, (250,), "RCPT")
            writer.write(b"DATA\r\n")
            await expect(reader, (354,), "DATA")
            writer.write(data[:-3])
            await writer.drain()
            writer.write(data[-3:])
            await writer.drain()
            start = time.perf_counter()
            code, text = await read_reply(reader)
            elapsed = time.perf_counter() - start
            if code == 250:
                results["accepted"].append(elapsed)
            else:
                results["rejected"].append(text)
        writer.write(b"QUIT\r\n")
        await writer.drain()
    finally:
        writer.close()


async def run(args):
    with open(args.message, "rb") as file:
        data = dot_stuff(file.read())
    remaining = [args.messages]
    results = {"accepted": [], "rejected": []}
    start = time.perf_counter()
    tasks = [asyncio.create_task(session(args, data, remaining, results)) for _ in range(args.sessions)]
    outcomes = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), args.timeout)
    wall = time.perf_counter() - start
    errors = [repr(o) for o in outcomes if isinstance(o, Exception)]
    return results, wall, errors


def percentile(sorted_values, fraction):
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sessions", type=int, default=1, help="parallel SMTP sessions")
    parser.add_argument("--messages", type=int, default=100, help="messages in total")
    parser.add_argument("--sender", required=True, help="envelope sender")
    parser.add_argument("--recipient", required=True, help="envelope recipient")
    parser.add_argument("--message", required=True, help="file with the message, CRLF line endings")
    parser.add_argument("--timeout", type=float, default=600, help="maximum run time in seconds")
    args = parser.parse_args()

    results, wall, errors = asyncio.run(run(args))
    accepted = sorted(results["accepted"])
    summary = {
        "sessions": args.sessions,
        "accepted": len(accepted),
        "rejected": len(results["rejected"]),
        "session_errors": len(errors),
        "seconds": round(wall, 3),
        "messages_per_s": round(len(accepted) / wall, 1) if wall else 0,
        "p50_ms": round(statistics.median(accepted) * 1000, 2) if accepted else float("nan"),
        "p99_ms": round(percentile(accepted, 0.99) * 1000, 2),
        "max_ms": round(accepted[-1] * 1000, 2) if accepted else float("nan"),
    }
    print(" ".join(f"{key}={value}" for key, value in summary.items()))
    for text in sorted(set(results["rejected"]))[:5]:
        print(f"rejected reply: {text}", file=sys.stderr)
    for error in errors[:5]:
        print(f"session error: {error}", file=sys.stderr)


if __name__ == "__main__":
    main()
