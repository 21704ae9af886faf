"""The documentation site: strict build, API coverage, links, runnable pages, screenshots.

The site is built once per test session (``python -m sphinx -W``, warnings are
errors) into docs/_build/html; under pytest-xdist a file lock and a stamp
holding the session's id make the first worker build it and the others reuse
it. The pages' code blocks (conventions, porting) run as doctests, every
relative link of the built HTML must point to an existing file (and anchor),
and headless Chromium renders the home page and an API page (the test fails,
not skips, without Chromium: ``.ci/run`` installs Debian's ``chromium``).
"""

from __future__ import annotations

import doctest
import html.parser
import inspect
import os
import pathlib
import re
import shutil
import subprocess
import sys
import urllib.parse
import uuid
import zlib

import jax.numpy as jnp
import numpy as np
import pytest
from filelock import FileLock

import jaxloss

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
BUILD = DOCS / "_build"
HTML = BUILD / "html"
SESSION = os.environ.get("PYTEST_XDIST_TESTRUNUID") or uuid.uuid4().hex
MODULES = ("compose", "weighting", "aggregate")  # their public names need entries too
DOCTEST_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


@pytest.fixture(scope="module")
def site() -> pathlib.Path:
    """The built site (built here unless another worker of this session already did)."""
    BUILD.mkdir(exist_ok=True)
    stamp = BUILD / ".built-by-session"
    with FileLock(str(BUILD / ".build.lock")):
        if not (stamp.exists() and stamp.read_text() == SESSION):
            stamp.unlink(missing_ok=True)
            result = subprocess.run(
                [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-E", "-q",
                 "-b", "html", str(DOCS), str(HTML)],
                cwd=ROOT, capture_output=True, text=True, timeout=900,
                env={**os.environ, "PYTHONPATH": str(ROOT)})
            assert result.returncode == 0, (
                "sphinx -W failed (a warning is an error):\n" + result.stdout + result.stderr)
            stamp.write_text(SESSION)
    return HTML


def _inventory(site: pathlib.Path) -> dict[str, str]:
    """objects.inv: name -> domain:role."""
    data = (site / "objects.inv").read_bytes()
    body = zlib.decompress(data.split(b"\n", 4)[4]).decode()
    entries = {}
    for line in body.splitlines():
        match = re.match(r"(\S+)\s+(\S+:\S+)\s+-?\d+\s+", line)
        if match:
            entries[match.group(1)] = match.group(2)
    return entries


def test_every_public_name_has_an_api_entry(site: pathlib.Path) -> None:
    entries = _inventory(site)
    missing = []
    for name in jaxloss.__all__:
        obj = getattr(jaxloss, name)
        if inspect.ismodule(obj):
            if entries.get(f"jaxloss.{name}") != "py:module":
                missing.append(name)
            continue
        # a top-level re-export may be documented in the module that defines it
        homes = [f"jaxloss.{name}"] + [
            f"jaxloss.{m}.{name}" for m in (*MODULES, "registry")
            if getattr(getattr(jaxloss, m), name, None) is obj]
        if not any(h in entries for h in homes):
            missing.append(name)
    for module in MODULES:
        for name in getattr(jaxloss, module).__all__:
            if f"jaxloss.{module}.{name}" not in entries:
                missing.append(f"{module}.{name}")
    for name in jaxloss.names():
        if f"jaxloss.{name}" not in entries and not any(
                key.endswith(f".{name}") for key in entries):
            missing.append(name)
    assert not missing, f"public names without an API entry: {missing}"


class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for key, value in attrs:
            if key == "id" and value:
                self.ids.add(value)
            if value and ((tag == "a" and key == "href") or (tag == "img" and key == "src")
                          or (tag == "link" and key == "href")
                          or (tag == "script" and key == "src")):
                self.links.append(value)


def test_internal_links_resolve(site: pathlib.Path) -> None:
    pages = {}
    for path in site.rglob("*.html"):
        parser = _Links()
        parser.feed(path.read_text(errors="replace"))
        pages[path] = parser
    broken = []
    for path, parser in pages.items():
        for link in parser.links:
            parts = urllib.parse.urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith(("mailto:", "data:")):
                continue
            target = (path.parent / urllib.parse.unquote(parts.path)).resolve() \
                if parts.path else path
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{path.relative_to(site)} -> {link}")
            elif parts.fragment and target in pages and parts.fragment not in pages[target].ids:
                broken.append(f"{path.relative_to(site)} -> {link} (no such anchor)")
    assert len(pages) > 20, sorted(p.name for p in pages)
    assert not broken, "broken internal links:\n" + "\n".join(broken[:30])


@pytest.mark.parametrize("page", ["conventions.rst", "porting.rst"])
def test_page_code_blocks_run(page: str) -> None:
    result = doctest.testfile(str(DOCS / page), module_relative=False, optionflags=DOCTEST_FLAGS,
                              verbose=False, report=True)
    assert result.attempted >= 10, result
    assert result.failed == 0, result


def test_porting_tables_name_existing_functions() -> None:
    text = (DOCS / "porting.rst").read_text()
    names = set(re.findall(r"jaxloss\.([A-Za-z_][\w.]*\w)", text))
    assert len(names) > 50, sorted(names)
    missing = []
    for dotted in sorted(names):
        obj = jaxloss
        for part in dotted.split("."):
            obj = getattr(obj, part, None)
        if obj is None:
            missing.append(dotted)
    assert not missing, f"the porting tables name functions jaxloss lacks: {missing}"


def test_no_file_mentions_the_design_file() -> None:
    # the maintainers' design notes (spelled in two parts so that this file passes)
    banned = re.compile(r"\b" + "DES" + r"IGN\b")
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, text=True)
    files = ([ROOT / f for f in listed.stdout.splitlines()] if listed.returncode == 0 else
             [p for p in ROOT.rglob("*") if ".git" not in p.parts and ".venv" not in p.parts])
    offenders = []
    for path in files:
        if not path.is_file() or path.suffix in (".png", ".json", ".inv", ".pyc"):
            continue
        if banned.search(path.read_text(errors="replace")):
            offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, f"point to the conventions page instead: {offenders}"


def test_gallery_lists_every_registered_loss(site: pathlib.Path) -> None:
    page = (site / "gallery" / "index.html").read_text()
    missing = [name for name in jaxloss.names() if name not in page]
    assert not missing, missing
    drawn = list((site / "_images").glob("*.png"))
    assert len(drawn) >= len(jaxloss.names()) // 2, len(drawn)


def test_gallery_never_fails_on_an_unusual_loss(tmp_path: pathlib.Path) -> None:
    sys.path.insert(0, str(DOCS))
    try:
        import gallery
    finally:
        sys.path.remove(str(DOCS))

    def doc_gallery_cubic(predictions, targets, *, scale: float = 1.0):
        return scale * jnp.abs(predictions - targets) ** 3

    def doc_gallery_five(a, b, c, d, e):
        return a + b + c + d + e

    def doc_gallery_broken(predictions, targets):
        raise RuntimeError("this loss always fails")

    losses = [doc_gallery_cubic, doc_gallery_five, doc_gallery_broken]
    for fn in losses:
        jaxloss.register(fn, overwrite=True, elementwise=False)
    try:
        names = [fn.__name__ for fn in losses]
        results = {r.name: r for r in gallery.build(tmp_path / "g", names=names)}
    finally:
        for fn in losses:
            jaxloss.unregister(fn.__name__)
    assert results["doc_gallery_cubic"].drawing is not None
    assert (tmp_path / "g" / "doc_gallery_cubic.png").is_file()
    for name in names[1:]:
        assert results[name].drawing is None and name in results[name].reason, results[name]
    assert "a, b, c, d, e" in results["doc_gallery_five"].reason
    page = (tmp_path / "g" / "index.rst").read_text()
    assert "Not drawn" in page and all(name in page for name in names)


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "headless Chromium is needed (apt-get install -y chromium; .ci/run does it)"
    return found


def _chromium_run(*args: str) -> subprocess.CompletedProcess[str]:
    command = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu",
               "--disable-dev-shm-usage", "--hide-scrollbars", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def _pixel_spread(png: pathlib.Path) -> tuple[float, int]:
    from PIL import Image

    with Image.open(png) as image:
        pixels = np.asarray(image.convert("L"), dtype=np.float64)
    return float(pixels.std()), len(np.unique(pixels))


@pytest.mark.parametrize("page,expected", [("index.html", "calling convention"),
                                           ("api/regression.html", "huber_loss")])
def test_pages_render_in_chromium(site: pathlib.Path, tmp_path: pathlib.Path, page: str,
                                  expected: str) -> None:
    url = (site / page).as_uri()
    png = tmp_path / "screenshot.png"
    result = _chromium_run("--window-size=1280,900", f"--screenshot={png}", url)
    assert png.is_file(), result.stdout + result.stderr
    spread, levels = _pixel_spread(png)
    assert spread > 10 and levels > 16, f"{page} renders blank: std {spread}, {levels} levels"
    dom = _chromium_run("--dump-dom", url)
    assert dom.returncode == 0, dom.stderr
    assert expected in dom.stdout, f"{page}: {expected!r} not in the rendered text"
    if os.environ.get("JAXLOSS_DOCS_SCREENSHOTS"):  # refresh docs/screenshots/
        name = page.replace("/", "_").replace(".html", ".png")
        shutil.copy(png, pathlib.Path(os.environ["JAXLOSS_DOCS_SCREENSHOTS"]) / name)
