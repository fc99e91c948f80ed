"""The HTML report renders offline in headless Chromium with the verdict visible.

Needs a Chromium binary (Debian: `apt-get install -y chromium`); skipped with that reason when
none exists. The screenshot is decoded here (a small PNG reader, no imaging library) and the
verdict box's colours are looked for in it: its border and its text colour only appear there.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from dynashift.readiness import (
    PhaseTiming,
    ReadinessReport,
    VerificationSummary,
    evaluate,
)
from dynashift.report_html import render_html, write_html
from tests.support.readiness import ready_inputs

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome", "headless_shell")


def chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


needs_chromium = pytest.mark.skipif(
    chromium() is None,
    reason="no Chromium binary on PATH (install it: apt-get update && apt-get install -y chromium)",
)


def report(ready: bool) -> ReadinessReport:
    return evaluate(
        ready_inputs(
            migration_id="m-html",
            target="eu-west-1:orders<script>",
            lag_seconds=0.3 if ready else 42.0,
            verification=VerificationSummary(
                segments_total=4,
                segments_verified=4,
                scanned_source=20_000,
                scanned_target=20_000,
                suspects=12,
                divergent=0 if ready else 3,
            ),
            phases=[
                PhaseTiming(name="Prepare target", started=1000.0, ended=1004.0),
                PhaseTiming(name="Backfill", started=1004.0, ended=1064.0, items=20_000),
                PhaseTiming(name="Verify", started=1064.0, ended=1094.0, items=40_000),
            ],
        ),
        now=1100.0,
    )


def read_png(path: Path, max_rows: int) -> tuple[int, list[bytes], int]:
    """(width, the first `max_rows` rows, bytes per pixel) of an 8-bit RGB/RGBA PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    width = height = bpp = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and interlace == 0 and color in (2, 6)
            bpp = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(min(height, max_rows)):
        start = y * (stride + 1)
        ftype, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 0xFF
            elif ftype == 2:
                line[i] = (line[i] + b) & 0xFF
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, rows, bpp


def colour_counts(path: Path, max_rows: int) -> dict[bytes, int]:
    """How many pixels of each RGB colour the top `max_rows` rows hold."""
    width, rows, bpp = read_png(path, max_rows)
    counts: dict[bytes, int] = {}
    for row in rows:
        for x in range(0, width * bpp, bpp):
            rgb = row[x : x + 3]
            counts[rgb] = counts.get(rgb, 0) + 1
    return counts


def screenshot(tmp_path: Path, html_file: Path, name: str) -> Path:
    exe = chromium()
    assert exe is not None
    png = tmp_path / f"{name}.png"
    subprocess.run(
        [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            # Offline: every host lookup fails, so a page needing the network would break.
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--force-device-scale-factor=1",
            "--window-size=1000,900",
            f"--screenshot={png}",
            html_file.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=90,
        cwd=tmp_path,
    )
    assert png.exists() and png.stat().st_size > 1000
    return png


def test_page_is_self_contained_and_escaped() -> None:
    page = render_html(report(False))
    assert not re.search(r"(src|href)\s*=|url\(|@import|<script", page, re.IGNORECASE)
    assert "orders&lt;script&gt;" in page
    assert 'id="verdict" class="verdict not-ready">NOT READY<' in page
    assert "replication lag: 42.0 s (threshold 5.0 s)" in page
    assert "1m 00s · 20,000 items · 333 items/s" in page  # backfill: 20,000 items in 60 s


@needs_chromium
@pytest.mark.parametrize(
    ("ready", "border", "text"),
    [
        (True, (0x2E, 0x9E, 0x55), (0x11, 0x65, 0x2F)),
        (False, (0xD6, 0x45, 0x45), (0x9B, 0x1C, 0x1C)),
    ],
)
def test_renders_in_headless_chromium_with_the_verdict_visible(
    tmp_path: Path, ready: bool, border: tuple[int, int, int], text: tuple[int, int, int]
) -> None:
    html_file = tmp_path / "report.html"
    write_html(str(html_file), report(ready))
    png = screenshot(tmp_path, html_file, "ready" if ready else "not-ready")
    # The verdict box sits near the top: its 2px border and its large bold text are drawn,
    # and the other verdict's border colour is not (the page shows exactly one verdict).
    counts = colour_counts(png, max_rows=250)
    assert counts.get(bytes(border), 0) > 200
    assert counts.get(bytes(text), 0) > 100
    other_border = (0xD6, 0x45, 0x45) if ready else (0x2E, 0x9E, 0x55)
    assert counts.get(bytes(other_border), 0) == 0

    exe = chromium()
    assert exe is not None
    dom = subprocess.run(
        [exe, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", html_file.as_uri()],
        check=True,
        capture_output=True,
        text=True,
        timeout=90,
        cwd=tmp_path,
    ).stdout
    verdict = "READY" if ready else "NOT READY"
    assert re.search(rf'id="verdict"[^>]*>{verdict}</div>', dom)
    assert 'id="checklist"' in dom and 'id="timeline"' in dom and 'id="counts"' in dom
