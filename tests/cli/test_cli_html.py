#!/usr/bin/env python3
"""test_cli_html.py: `imgsearch search --html` end to end on the CPU.

- a text and an image query on an index of photos and odd file names: the
  page holds every result of `search --json` in order (rank, row, score),
  each thumbnail a whole JPEG (its long side 256 at most, the original's
  aspect kept) that our own decoder reads back, the query image's thumbnail,
  the synthetic-weights notice, nothing fetched from elsewhere, every odd
  name escaped (no markup from a file name), every link naming the file's
  exact bytes;
- batch queries (--queries): a section per query and an index of them;
- --html-links: the originals linked, nothing embedded;
- a page that cannot be written: exit 1 with one line;
- rendered once with headless Chromium to contact_sheet.png in the build
  folder (kept as an artefact), which must not be blank; SKIPPED (said so)
  without Chromium.
usage: test_cli_html.py IMGSEARCH SAMPLES_DIR FIXTURES_DIR
"""
import base64
import html.parser
import json
import os
import shutil
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sheet_fixture as fx  # noqa: E402


class Page(html.parser.HTMLParser):
    """The sections, figures, images and links of a contact sheet."""

    def __init__(self):
        super().__init__()
        self.sections, self.imgs, self.links, self.scripts, self.index = [], [], [], 0, []
        self.in_index = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self.sections.append({"table": a.get("data-table"), "figures": [], "query_img": None})
        elif tag == "figure" and self.sections:
            self.sections[-1]["figures"].append(
                {"rank": int(a["data-rank"]), "row": int(a["data-row"]), "score": float(a["data-score"]),
                 "img": None})
        elif tag == "img":
            self.imgs.append(a.get("src", ""))
            if self.sections and self.sections[-1]["figures"]:
                self.sections[-1]["figures"][-1]["img"] = a.get("src")
            elif self.sections:
                self.sections[-1]["query_img"] = a.get("src")
        elif tag == "a":
            self.links.append(a.get("href", ""))
            if self.in_index:
                self.index.append(a.get("href"))
        elif tag in ("script", "link", "iframe", "object", "embed"):
            self.scripts += 1
        elif tag == "ol":
            self.in_index = True

    def handle_endtag(self, tag):
        if tag == "ol":
            self.in_index = False


def parse(path):
    p = Page()
    with open(path, "rb") as f:
        raw = f.read()
    p.feed(raw.decode("utf-8"))  # the page itself must be valid UTF-8
    return p, raw


def main():
    imgsearch, samples, fixtures = sys.argv[1:4]
    c = fx.Checks()
    work = fx.work_dir()
    try:
        idx, photos = fx.build_index(imgsearch, samples, fixtures, work)
        query_img = os.path.join(samples, "chelsea.png")
        out = os.path.join(work, "sheet.html")
        k = 9  # every row: the odd names are among the results
        r = fx.run([imgsearch, "search", idx, "--text", "a cat on a sofa", "--image", query_img, "-k", str(k),
                    "--json", "--html", out, "--device", "cpu"])
        c.check("search --html exits 0", r.returncode == 0, r.stderr.decode(errors="replace"))
        answers = [json.loads(line) for line in r.stdout.decode().splitlines()]
        page, raw = parse(out)
        c.check("a section per query", len(page.sections) == 2, str(len(page.sections)))
        c.check("synthetic weights said on the page", b'id="synthetic"' in raw and b"not meaningful" in raw)
        c.check("no script, link, frame or object", page.scripts == 0)
        c.check("nothing fetched from the network", all(not s.startswith(("http:", "https:", "//"))
                                                       for s in page.imgs + page.links))
        c.check("no markup from a file name", b"<script>alert" not in raw and b"&lt;script&gt;alert" in raw)
        thumbs = []
        for q, (sec, ans) in enumerate(zip(page.sections, answers)):
            got = [(f["rank"], f["row"]) for f in sec["figures"]]
            want = [(h["rank"], h["row"]) for h in ans["results"]]
            c.check("query %d: every result, in order" % q, got == want and len(got) == k, "%s != %s" % (got, want))
            c.check("query %d: the scores" % q, all(abs(f["score"] - h["score"]) < 1e-6
                                                    for f, h in zip(sec["figures"], ans["results"])))
            c.check("query %d: its table" % q, sec["table"] == ans["table"])
            for f, h in zip(sec["figures"], ans["results"]):
                c.check("row %d has an embedded JPEG" % f["row"],
                        (f["img"] or "").startswith("data:image/jpeg;base64,"))
                thumbs.append((base64.b64decode(f["img"].split(",", 1)[1]), h))
        c.check("the image query's thumbnail", (page.sections[1]["query_img"] or "").startswith("data:image/jpeg"))
        # Each thumbnail: a whole JPEG, long side <= 256 with the original's aspect, decodable by us.
        sizes = {}
        for i, (jpeg, hit) in enumerate(thumbs):
            wh = fx.jpeg_size(jpeg)
            c.check("thumbnail %d is a whole JPEG" % i, wh is not None)
            if wh:
                sizes[i] = wh
                c.check("thumbnail %d long side <= 256" % i, max(wh) <= 256 and min(wh) >= 1, str(wh))
            with open(os.path.join(work, "thumb%02d.jpg" % i), "wb") as f:
                f.write(jpeg)
        files = [os.path.join(work, "thumb%02d.jpg" % i) for i in range(len(thumbs))]
        r = fx.run([imgsearch, "preprocess", *files, "-o", os.path.join(work, "thumbs.npy"), "--uint8"])
        c.check("every thumbnail decodes with our decoder", r.returncode == 0, r.stderr.decode(errors="replace"))
        # Links name each file's exact bytes (the non-UTF-8 name included).
        paths = {urllib.parse.unquote_to_bytes(h[len("file://"):]) for h in page.links if h.startswith("file://")}
        for name in fx.ODD_NAMES:
            c.check("link to %r" % name, os.path.join(photos.encode(), name + b".png") in paths)

        # Batch queries: a section each, an index first.
        qfile = os.path.join(work, "queries.txt")
        with open(qfile, "w") as f:
            f.write("a red rocket\n@%s\n# a comment\nstars\n" % query_img)
        batch = os.path.join(work, "batch.html")
        r = fx.run([imgsearch, "search", idx, "--queries", qfile, "-k", "3", "--html", batch, "--device", "cpu"])
        c.check("batch: exit 0", r.returncode == 0, r.stderr.decode(errors="replace"))
        bp, _ = parse(batch)
        c.check("batch: 3 sections", len(bp.sections) == 3 and all(len(s["figures"]) == 3 for s in bp.sections))
        c.check("batch: an index of the queries", bp.index == ["#q1", "#q2", "#q3"], str(bp.index))

        # --html-links: the originals, nothing embedded.
        links = os.path.join(work, "links.html")
        r = fx.run([imgsearch, "search", idx, "--text", "stars", "-k", "4", "--html", links, "--html-links",
                    "--device", "cpu"])
        lp, _ = parse(links)
        srcs = [f["img"] for f in lp.sections[0]["figures"]] if lp.sections else []
        c.check("--html-links: file links", r.returncode == 0 and len(srcs) == 4 and
                all(s.startswith("file:///") for s in srcs), str(srcs))
        r = fx.run([imgsearch, "search", idx, "--text", "x", "--html-links"])
        c.check("--html-links without --html is a usage error", r.returncode == 2)
        r = fx.run([imgsearch, "search", idx, "--text", "x", "--html", os.path.join(work, "no", "such", "dir.html"),
                    "--device", "cpu"])
        err = r.stderr.decode(errors="replace")
        said = [line for line in err.splitlines() if "warning" not in line.lower()]
        c.check("an unwritable page: exit 1, one line", r.returncode == 1 and len(said) == 1 and
                "cannot write" in said[0], err)

        render(c, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    c.finish()


def render(c, page_path):
    chromium = fx.find_chromium()
    if not chromium:
        print("SKIPPED render: no headless Chromium (apt-get install chromium-headless-shell)")
        return
    png = os.path.abspath("contact_sheet.png")  # the build folder: kept as an artefact
    if os.path.exists(png):
        os.remove(png)
    ok, err = fx.screenshot(chromium, "file://" + page_path, png, 900, 700)
    if not c.check("Chromium renders the page", ok, err):
        return
    w, h, bpp, rows = fx.png_pixels(png)
    colors, busy = set(), 0
    background = rows[0][:3]
    for y in range(0, h, 4):
        row = rows[y]
        for x in range(0, w * bpp, 4 * bpp):
            px = row[x:x + 3]
            colors.add(px)
            busy += px != background
    samples = len(range(0, h, 4)) * len(range(0, w * bpp, 4 * bpp))
    c.check("the render is not blank (%d colors, %.0f%% not background)" % (len(colors), 100.0 * busy / samples),
            len(colors) > 500 and busy > samples // 5)
    print("rendered the contact sheet to %s (%d x %d)" % (png, w, h))


if __name__ == "__main__":
    main()
