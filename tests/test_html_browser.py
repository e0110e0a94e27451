"""The HTML report in a real browser: headless Chromium loads it, every figure decodes, and
nothing is logged to the console. The screenshot is kept as a test artefact
(``$BA2M_TEST_ARTIFACTS``, else the test's temporary folder; its path is printed).

``.ci/run`` installs Debian's chromium when it is absent; without it the test skips.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.report import build_report, write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

#: Test instrumentation, added to a copy of the page only: it records script errors, failed
#: loads and console errors from the first moment, and once the page has loaded writes what
#: it saw into the DOM, which ``--dump-dom`` prints.
PROBE = """<script>
window.__seen = [];
window.addEventListener("error", function (e) {
  var t = e.target;
  window.__seen.push(t && t !== window ? "failed to load " + (t.tagName || "?")
                                       : "error: " + e.message);
}, true);
["error", "warn"].forEach(function (level) {
  var original = console[level];
  console[level] = function () {
    window.__seen.push("console." + level + ": " + Array.prototype.join.call(arguments, " "));
    original.apply(console, arguments);
  };
});
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var broken = images.filter(function (i) { return !(i.complete && i.naturalWidth > 0); })
                     .map(function (i) { return i.alt; });
  var out = document.createElement("pre");
  out.id = "__probe";
  out.textContent = JSON.stringify({images: images.length, broken: broken, seen: window.__seen});
  document.body.appendChild(out);
});
</script>"""

BROWSER = [CHROMIUM or "chromium", "--headless", "--no-sandbox", "--disable-gpu",
           "--hide-scrollbars", "--virtual-time-budget=15000"]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (.ci/run installs it)")
def test_every_figure_loads_and_the_console_stays_clean(smoke_db, tmp_path: Path) -> None:
    report = build_report(["table7", "infer-batch"], smoke_db.db, costs="none")
    page = write_report(report, ["html"], tmp_path / "report")["html"]
    figures = page.read_text().count("<img ")
    assert figures >= 2  # the smoke database's suites draw figures: the check has something

    probed = tmp_path / "probed.html"
    probed.write_text(page.read_text().replace("<head>", "<head>" + PROBE, 1))
    dom = subprocess.run([*BROWSER, "--dump-dom", probed.as_uri()], capture_output=True,
                         text=True, timeout=180, check=True).stdout
    found = re.search(r'<pre id="__probe">(.*?)</pre>', dom, re.S)
    assert found, "the page never finished loading"
    seen = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert seen["images"] == figures and seen["broken"] == [], seen
    assert seen["seen"] == [], seen

    artefacts = Path(os.environ.get("BA2M_TEST_ARTIFACTS") or tmp_path)
    artefacts.mkdir(parents=True, exist_ok=True)
    shot = artefacts / "report-html.png"
    subprocess.run([*BROWSER, f"--screenshot={shot}", "--window-size=1400,3000", page.as_uri()],
                   capture_output=True, timeout=180, check=True)
    assert shot.read_bytes()[:8] == PNG_MAGIC and shot.stat().st_size > 20_000
    print(f"screenshot: {shot}")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (.ci/run installs it)")
def test_the_probe_sees_a_broken_figure_and_a_console_error(tmp_path: Path) -> None:
    """The check above can fail: a page with an undecodable image and a console error."""
    page = tmp_path / "bad.html"
    page.write_text("<html><head><title>x</title></head><body>"
                    '<img alt="broken" src="data:image/png;base64,AAAA">'
                    "<script>console.error('boom')</script></body></html>")
    probed = tmp_path / "probed.html"
    probed.write_text(page.read_text().replace("<head>", "<head>" + PROBE, 1))
    dom = subprocess.run([*BROWSER, "--dump-dom", probed.as_uri()], capture_output=True,
                         text=True, timeout=180, check=True).stdout
    found = re.search(r'<pre id="__probe">(.*?)</pre>', dom, re.S)
    seen = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert seen["broken"] == ["broken"]
    assert any("boom" in s for s in seen["seen"]), seen
