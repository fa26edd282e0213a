"""A test SMTP relay built on aiosmtpd (Debian package python3-aiosmtpd).

Stores each message as <ulid-ish>.json in the folder given by --store, with the
envelope and the message in base64, written to a temporary name and renamed so that a
reader never sees half a file.

--tls-cert/--tls-key: offer STARTTLS and require it before MAIL (530 otherwise), or
with --implicit, speak TLS from the first byte. Without them the server offers no
STARTTLS at all. Recipients whose local part starts with "reject-" get 550.
Prints "ready <port>" on stdout once it accepts connections.
"""

import argparse
import base64
import json
import os
import signal
import ssl
import sys
import threading
import time

from aiosmtpd.controller import Controller


class Store:
    def __init__(self, folder):
        self.folder = folder
        self.counter = 0
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("reject-"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.counter += 1
            name = "%d-%06d" % (time.time_ns(), self.counter)
        record = {
            "mail_from": envelope.mail_from,
            "helo": session.host_name,
            "rcpt_tos": envelope.rcpt_tos,
            "tls": session.ssl is not None or args_implicit,
            "data": base64.b64encode(envelope.original_content or envelope.content).decode("ascii"),
        }
        temp = os.path.join(self.folder, "." + name + ".tmp")
        with open(temp, "w") as f:
            json.dump(record, f)
            f.flush()
            os.fsync(f.fileno())
        os.rename(temp, os.path.join(self.folder, name + ".json"))
        return "250 2.0.0 stored as " + name


args_implicit = False


def main():
    global args_implicit
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--store", required=True)
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--implicit", action="store_true")
    args = parser.parse_args()

    args_implicit = args.implicit
    os.makedirs(args.store, exist_ok=True)
    options = {}
    if args.tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        if args.implicit:
            options = {"ssl_context": context}
        else:
            options = {"tls_context": context, "require_starttls": True}
    controller = Controller(
        Store(args.store),
        hostname="127.0.0.1",
        port=args.port,
        decode_data=False,
        ready_timeout=10,
        **options,
    )
    controller.start()
    print("ready %d" % args.port, flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
