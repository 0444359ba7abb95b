"""Checking a report in real headless Chromium (Debian's `chromium` package).

The page is loaded from a copy with one probe script appended: on the `load` event it writes what
the browser saw (images, how many decoded, finding cards, cards whose images all decoded, how many
cards each filter shows once its radio button is clicked) into a `data-probe` attribute, which `--dump-dom` prints once the page settled. A screenshot shows
the page painted something. Without Chromium the check skips, unless $CI is set: CI must install
it (tests/setup_browser.sh), so there it fails instead.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

PROBE = """<script>
window.addEventListener('load', () => {
  const imgs = Array.from(document.images);
  const ok = (img) => img.complete && img.naturalWidth > 0 && img.naturalHeight > 0;
  const sections = Array.from(document.querySelectorAll('section.finding'));
  const shown = (id) => { const radio = document.getElementById(id);
                          if (!radio) return null;
                          radio.click();
                          return sections.filter(s => s.offsetParent !== null).length; };
  const probe = {
    images: imgs.length,
    loaded: imgs.filter(ok).length,
    sections: sections.length,
    sections_loaded: sections.filter(s => { const i = Array.from(s.querySelectorAll('img'));
                                            return i.length > 0 && i.every(ok); }).length,
    section_ids: sections.map(s => s.dataset.findingId),
    title: document.title,
  };
  probe.shown_new = shown('show-new');
  probe.shown_untriaged = shown('show-untriaged');
  probe.shown_all = shown('show-all');
  document.body.setAttribute('data-probe', JSON.stringify(probe));
});
</script>"""
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-extensions", "--no-first-run", "--hide-scrollbars"]  # fmt: skip


def chromium_or_skip() -> str:
    """Path of the Chromium binary; skip without one, fail instead when $CI is set."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI"):
        pytest.fail("Chromium is not installed but $CI is set: run tests/setup_browser.sh in CI")
    pytest.skip("Chromium is not installed (apt-get install chromium; see tests/setup_browser.sh)")


def probe_report(report: Path, workdir: Path) -> dict[str, Any]:
    """Load `report` in headless Chromium; what the probe saw, plus `painted` (screenshot check)."""
    browser = chromium_or_skip()
    page = workdir / "probed.html"
    text = report.read_text(encoding="utf-8")
    page.write_text(text.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    profile = workdir / "profile"
    common = [browser, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=10000"]
    dom = subprocess.run([*common, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)  # fmt: skip
    match = re.search(r'data-probe="([^"]*)"', dom.stdout)
    assert match, f"the probe did not run; chromium said: {dom.stderr[-2000:]}"
    seen = json.loads(html.unescape(match.group(1)))
    shot = workdir / "shot.png"
    subprocess.run([*common, f"--screenshot={shot}", "--window-size=1200,1600", page.as_uri()], capture_output=True, timeout=120)  # fmt: skip
    with Image.open(shot) as im:
        pixels = np.asarray(im.convert("L"), dtype=np.float32)
    seen["painted"] = bool(pixels.std() > 5.0)
    return seen
