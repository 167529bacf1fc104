"""Headless Chromium for the page tests (test_report_browser.py,
test_tuning_page.py): open a page with a fresh profile, dump its DOM and
parse it into a small tree, collect the page's console messages and script
errors, read a screenshot's size."""
import os
import re
import shutil
import signal
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"), shutil.which("google-chrome"))
                 if p), None)
CHROME_TIMEOUT_S = 90


class Node:
    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent, self.children = tag, dict(attrs), parent, []

    def text(self):
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def classes(self):
        return set((self.attrs.get("class") or "").split())

    def iter(self):
        for c in self.children:
            if isinstance(c, Node):
                yield c
                yield from c.iter()

    def find_all(self, tag=None, cls=None, **attrs):
        """Descendants with this tag, class and attribute values (data_run= for
        data-run; True: the attribute is there, whatever its value)."""
        want = {k.replace("_", "-"): v for k, v in attrs.items()}
        return [n for n in self.iter()
                if (tag is None or n.tag == tag) and (cls is None or cls in n.classes())
                and all(k in n.attrs if v is True else n.attrs.get(k) == v for k, v in want.items())]

    def find(self, tag=None, cls=None, **attrs):
        found = self.find_all(tag, cls, **attrs)
        return found[0] if found else None


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class DomBuilder(HTMLParser):
    """The serialized DOM Chromium dumps, as a tree of Nodes (every element
    closed explicitly, except the void ones)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {}, None)
        self.cur = self.root

    def handle_starttag(self, tag, attrs):
        n = Node(tag, attrs, self.cur)
        self.cur.children.append(n)
        if tag not in VOID:
            self.cur = n

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Node(tag, attrs, self.cur))

    def handle_endtag(self, tag):
        n = self.cur
        while n is not self.root and n.tag != tag:
            n = n.parent
        if n is not self.root:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.children.append(data)


def parse_dom(html):
    b = DomBuilder()
    b.feed(html)
    b.close()
    return b.root


# ------------------------------------------------------------- Chromium

CONSOLE_RE = re.compile(r':CONSOLE(?::\d+|\(\d+\))?\] "(.*)", source: (\S*) \((\d+)\)')


def chromium(workdir, page, *args):
    """Opens `page` (a file) in headless Chromium with a fresh profile.
    Returns (stdout, stderr). Killed, its whole process group, after
    CHROME_TIMEOUT_S."""
    profile = Path(workdir) / f"profile-{len(list(Path(workdir).glob('profile-*')))}"
    cmd = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
           "--enable-logging=stderr", "--v=0", "--no-first-run", "--no-default-browser-check",
           "--disable-extensions", "--disable-background-networking", "--disable-sync", "--mute-audio",
           *args, Path(page).resolve().as_uri()]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = p.communicate(timeout=CHROME_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        pytest.fail(f"Chromium took over {CHROME_TIMEOUT_S} s on {page}")
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode == 0, f"chromium exited {p.returncode}: {err[-3000:]}"
    return out, err


class Loaded:
    """A page as Chromium rendered it: dom (Node tree), html (the dump), and
    console: the page's console messages [(text, line)]."""

    def __init__(self, page, html, stderr):
        url = Path(page).resolve().as_uri()
        self.html, self.stderr, self.dom = html, stderr, parse_dom(html)
        self.console = [(m.group(1), m.group(3)) for m in CONSOLE_RE.finditer(stderr) if m.group(2) == url]
        self.uncaught = [ln for ln in stderr.splitlines() if "Uncaught" in ln]
        box = self.dom.find(id="page-errors")
        self.page_errors = int(box.attrs.get("data-count", "0")) if box else 0
        self.page_error_text = box.text() if box else ""

    @property
    def app(self):
        return self.dom.find("main", id="app")

    def title(self):
        t = self.dom.find("title")
        return t.text() if t else None


def load(workdir, page):
    out, err = chromium(workdir, page, "--dump-dom")
    assert "<html" in out, f"no DOM came back: {err[-3000:]}"
    return Loaded(page, out, err)


def assert_no_errors(pg):
    assert pg.page_errors == 0, f"script errors on the page: {pg.page_error_text}"
    assert not pg.uncaught, pg.uncaught
    assert not pg.console, f"the page wrote to the console: {pg.console}"
    app = pg.app
    assert app is not None
    txt = app.text()
    assert "Could not render" not in txt, txt[:3000]
    assert "could not be read" not in txt
    assert "Rendering the report" not in txt  # the placeholder was replaced
    assert app.find("footer") is not None


def png_size(path):
    """(width, height) from a PNG's IHDR chunk."""
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    return struct.unpack(">II", data[16:24])
