#!/usr/bin/env python3
"""Write the benchmark inputs into a folder: PDFs, bilevel TIFF pages and messages.

Only the standard library is used, so the inputs are the same on every machine. The
pseudo-random content comes from a fixed seed. The G3 and G4 TIFFs are made from the
uncompressed TIFF written here by `tiffcp` in bench/run.sh.
"""

import argparse
import base64
import random
import struct
import zlib
from pathlib import Path

LETTER = (612, 792)


def pdf_bytes(objects):
    """Serialize a list of PDF object bodies (object 1 is the catalog) with an xref table."""
    out = bytearray(b"%PDF-1.5\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def stream(dictionary, data, compress=True):
    if compress:
        data = zlib.compress(data, 6)
        dictionary += b" /Filter /FlateDecode"
    return b"<< %s /Length %d >>\nstream\n" % (dictionary, len(data)) + data + b"\nendstream"


def text_page_content(rng, page):
    words = ["fax", "invoice", "account", "number", "total", "payment", "due", "order",
             "delivery", "shipment", "customer", "reference", "amount", "signature", "date"]
    lines = [b"BT /F1 11 Tf 13 TL 72 740 Td"]
    lines.append(b"(Page %d) Tj T*" % page)
    for _ in range(50):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(8, 12)))
        lines.append(b"(%s) Tj T*" % text.encode())
    lines.append(b"ET")
    return b"\n".join(lines)


def build_pdf(pages):
    """Build a PDF from page descriptions: ("text", content) or ("image", w, h, gray bytes, content)."""
    # Object numbers: 1 catalog, 2 pages, 3 font, then per page: page, content, [image].
    objects = [None, None, b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for page in pages:
        page_number = len(objects) + 1
        kids.append(page_number)
        if page[0] == "text":
            content = page[1]
            objects.append(
                b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Contents %d 0 R "
                b"/Resources << /Font << /F1 3 0 R >> >> >>" % (LETTER[0], LETTER[1], page_number + 1)
            )
            objects.append(stream(b"", content))
        else:
            _, width, height, gray, content = page
            objects.append(
                b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Contents %d 0 R "
                b"/Resources << /Font << /F1 3 0 R >> /XObject << /Im0 %d 0 R >> >> >>"
                % (LETTER[0], LETTER[1], page_number + 1, page_number + 2)
            )
            objects.append(stream(b"", content))
            objects.append(stream(
                b"/Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray "
                b"/BitsPerComponent 8" % (width, height),
                gray,
            ))
    objects[0] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
        b" ".join(b"%d 0 R" % k for k in kids), len(kids))
    return pdf_bytes(objects)


def scanned_gray(rng, width, height, noise):
    """Return the samples of a grayscale page like a scan: light paper with sensor noise and dark text bars."""
    rows = []
    for y in range(height):
        in_text_line = (y % 40) < 14 and 80 < y < height - 80
        row = bytearray(rng.randbytes(width))
        for x in range(width):
            row[x] = 235 + row[x] % noise if noise else 240
        if in_text_line:
            x = 80
            while x < width - 80:
                length = rng.randint(20, 90)
                for i in range(x, min(x + length, width - 80)):
                    row[i] = 30 + row[i] % 20
                x += length + rng.randint(10, 25)
        rows.append(bytes(row))
    return b"".join(rows)


def image_page(rng, width, height, noise, label):
    gray = scanned_gray(rng, width, height, noise)
    content = b"q %d 0 0 %d 0 0 cm /Im0 Do Q BT /F1 10 Tf 20 20 Td (%s) Tj ET" % (
        LETTER[0], LETTER[1], label.encode())
    return ("image", width, height, gray, content)


def write_bilevel_tiff(path, pages, width, height, rng):
    """Write an uncompressed multi-page bilevel TIFF (1 = black) at 204x196 dpi."""
    row_bytes = (width + 7) // 8
    out = bytearray(b"II*\x00" + struct.pack("<I", 0))
    previous_next_offset_position = 4
    for page in range(pages):
        strip = bytearray(row_bytes * height)
        for line in range(12, height // 30 - 6):
            y0 = line * 30 + 60
            x = 100
            while x < width - 100:
                length = rng.randint(15, 70)
                columns = range(x // 8, min((x + length) // 8, (width - 100) // 8))
                # A word: strokes that run down the whole line as in letters, with a
                # bar on the first and middle rows, so rows repeat as in scanned text.
                glyphs = [rng.choice((0x81, 0xC3, 0x99, 0x18, 0x66)) for _ in columns]
                for y in range(y0, y0 + 12):
                    bar = y in (y0, y0 + 6)
                    for byte, glyph in zip(columns, glyphs):
                        strip[y * row_bytes + byte] = 0xFF if bar else glyph
                x += length + rng.randint(12, 24)
        strip_offset = len(out)
        out += strip
        if len(out) % 2:
            out += b"\x00"
        resolution_offset = len(out)
        out += struct.pack("<IIII", 204, 1, 196, 1)
        ifd_offset = len(out)
        struct.pack_into("<I", out, previous_next_offset_position, ifd_offset)
        entries = [
            (254, 4, 1, 2),                 # NewSubfileType: page of a multi-page file
            (256, 4, 1, width),
            (257, 4, 1, height),
            (258, 3, 1, 1),                 # BitsPerSample
            (259, 3, 1, 1),                 # Compression: none
            (262, 3, 1, 0),                 # Photometric: 0 is white
            (273, 4, 1, strip_offset),
            (277, 3, 1, 1),                 # SamplesPerPixel
            (278, 4, 1, height),            # RowsPerStrip
            (279, 4, 1, len(strip)),
            (282, 5, 1, resolution_offset),
            (283, 5, 1, resolution_offset + 8),
            (296, 3, 1, 2),                 # ResolutionUnit: inch
            (297, 3, 2, page | (pages << 16)),  # PageNumber
        ]
        out += struct.pack("<H", len(entries))
        for tag, kind, count, value in entries:
            if kind == 3 and count == 1:
                out += struct.pack("<HHIHH", tag, kind, count, value, 0)
            else:
                out += struct.pack("<HHII", tag, kind, count, value)
        previous_next_offset_position = len(out)
        out += struct.pack("<I", 0)
    Path(path).write_bytes(out)


def message(sender, recipient, attachments, line_ending="\n"):
    """Return a MIME message with a text body and base64 PDF attachments."""
    boundary = "bench-boundary-7c1f"
    lines = [
        f"From: <{sender}>",
        f"To: <{recipient}>",
        "Subject: benchmark fax",
        "Date: Fri, 04 Dec 2026 12:00:00 +0000",
        "Message-ID: <bench@example.com>",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/mixed; boundary="{boundary}"',
        "",
        f"--{boundary}",
        "Content-Type: text/plain; charset=us-ascii",
        "",
        "Please fax the attached document.",
    ]
    for name, data in attachments:
        lines += [
            f"--{boundary}",
            f'Content-Type: application/pdf; name="{name}"',
            "Content-Transfer-Encoding: base64",
            f'Content-Disposition: attachment; filename="{name}"',
            "",
        ]
        encoded = base64.b64encode(data).decode()
        lines += [encoded[i:i + 76] for i in range(0, len(encoded), 76)]
    lines += [f"--{boundary}--", ""]
    return line_ending.join(lines).encode()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dir", type=Path, help="output folder, created when missing")
    parser.add_argument("--sender", default="bench@example.com")
    parser.add_argument("--recipient", default="14155552222@fax.example.com")
    args = parser.parse_args()
    out = args.dir
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(20261204)

    # About 50 KB: one letter page with a noisy image and a line of text.
    small = build_pdf([image_page(rng, 300, 300, 12, "benchmark page")])
    (out / "one-page.pdf").write_bytes(small)

    for name in ("text-a.pdf", "text-b.pdf"):
        pages = [("text", text_page_content(rng, n + 1)) for n in range(30)]
        (out / name).write_bytes(build_pdf(pages))

    # Scanned pages at 100 dpi grayscale, about 0.37 MB each after Flate.
    for name in ("scan-a.pdf", "scan-b.pdf"):
        pages = [image_page(rng, 850, 1100, 6, f"scan page {n + 1}") for n in range(10)]
        (out / name).write_bytes(build_pdf(pages))

    # About 10 MB: pages of incompressible noise, for the memory benchmark.
    big_pages = []
    while sum(len(p[3]) for p in big_pages) < 10 * 1000 * 1000:
        gray = rng.randbytes(1000 * 1000)
        big_pages.append(("image", 1000, 1000, gray,
                          b"q %d 0 0 %d 0 0 cm /Im0 Do Q" % LETTER))
    (out / "ten-mb.pdf").write_bytes(build_pdf(big_pages))

    write_bilevel_tiff(out / "fax-raw.tif", 20, 1728, 2200, rng)

    # smtp-source -F appends CRLF to each line itself, so this file has LF endings.
    (out / "message-source.eml").write_bytes(
        message(args.sender, args.recipient, [("document.pdf", small)]))
    (out / "message.eml").write_bytes(
        message(args.sender, args.recipient, [("document.pdf", small)], "\r\n"))
    (out / "message-10mb.eml").write_bytes(
        message(args.sender, args.recipient, [("big.pdf", (out / "ten-mb.pdf").read_bytes())], "\r\n"))

    (out / "webhook-fax.pdf").write_bytes(
        build_pdf([image_page(rng, 400, 400, 14, "received fax"), image_page(rng, 160, 160, 14, "page 2")]))

    for path in sorted(out.iterdir()):
        print(f"{path.name}\t{path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
