#!/usr/bin/env python3
"""test_cli_serve.py: `imgsearch serve` end to end on the CPU, on loopback only.

- started on a free loopback port (--port 0), listening on 127.0.0.1 unless told;
- the API answers as `search --json` does (the same rows, scores, paths and
  order) for texts, an uploaded image and an indexed row; thumbnails by row
  are whole JPEGs; the page is self-contained; /api/info and /api/health;
- hostile requests each get a 4xx (JSON {"error"} on our routes), never a
  crash: path traversal in every spelling, rows out of range, huge and empty
  bodies, k = 10^9 and other bad k, invalid UTF-8, an overlong text and URL,
  non-image and truncated uploads, unknown paths and methods, garbage
  request lines, half-closed and silent connections;
- a bounded load test: 2,000 requests from 16 client threads (searches,
  thumbnails, info), no errors, latency percentiles printed;
- a full queue answers 503 (a second server with --queue 1);
- SIGTERM and SIGINT stop it with exit 0, the uploads' folder removed, also
  a SIGTERM that arrives while the models load;
- a set of 3 shards served as one index (search, thumbnails, rows, info).
usage: test_cli_serve.py IMGSEARCH SAMPLES_DIR FIXTURES_DIR
"""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sheet_fixture as fx  # noqa: E402

LOAD_REQUESTS, LOAD_CLIENTS, LOAD_SECONDS = 2000, 16, 90


class Server:
    def __init__(self, imgsearch, idx, work, *extra):
        self.log_path = os.path.join(work, "serve-%d.log" % len(os.listdir(work)))
        self.tmp = os.path.join(work, "tmp-%d" % len(os.listdir(work)))
        os.makedirs(self.tmp)
        env = dict(os.environ, TMPDIR=self.tmp)
        self.log = open(self.log_path, "w+")
        self.proc = subprocess.Popen([imgsearch, "serve", idx, "--port", "0", "--device", "cpu", *extra],
                                     stdout=subprocess.DEVNULL, stderr=self.log, env=env)
        self.port = None
        deadline = time.time() + 60
        while time.time() < deadline and self.proc.poll() is None:
            text = self.text()
            if "on http://" in text:
                self.host = text.split("on http://", 1)[1].split("/", 1)[0]
                self.port = int(self.host.rsplit(":", 1)[1])
                break
            time.sleep(0.05)
        if self.port is None:
            sys.exit("serve did not start: " + self.text())

    def text(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def request(self, method, url, body=None, headers=None, timeout=60):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, url, body=body, headers=headers or {})
            r = conn.getresponse()
            return r.status, r.getheader("Content-Type", ""), r.read()
        finally:
            conn.close()

    def raw(self, data, half_close=False, timeout=10):
        """Sends bytes on a fresh connection; returns what came back before it closed."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        try:
            s.sendall(data)
            if half_close:
                s.shutdown(socket.SHUT_WR)
            got = b""
            while True:
                try:
                    chunk = s.recv(65536)
                except (socket.timeout, ConnectionResetError):
                    break
                if not chunk:
                    break
                got += chunk
            return got
        finally:
            s.close()

    def stop(self, sig):
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = "hung"
        self.log.close()
        return rc


def search_json(imgsearch, idx, *args):
    r = fx.run([imgsearch, "search", idx, *args, "--json", "--device", "cpu"])
    return [json.loads(line) for line in r.stdout.decode().splitlines()]


def same_results(got, want):
    keys = ("rank", "path", "score", "shard", "row", "chunk", "offset")
    return [tuple(h.get(k) for k in keys) for h in got] == [tuple(h.get(k) for k in keys) for h in want]


def check_api(c, srv, imgsearch, idx, photos, samples):
    for text, k in (("a cat on a sofa", 5), ("stars in the night", 9), ("ünïcödé ✓ text", 3), ("a", 1)):
        st, ctype, body = srv.request("GET", "/api/search?" + urllib_query(text=text, k=k))
        want = search_json(imgsearch, idx, "--text", text, "-k", str(k))[0]
        got = json.loads(body) if st == 200 else {}
        c.check("text %r: as search --json" % text, st == 200 and ctype.startswith("application/json") and
                got.get("query") == want["query"] and got.get("table") == want["table"] and
                same_results(got.get("results", []), want["results"]), body[:300])
    image = os.path.join(samples, "chelsea.png")
    with open(image, "rb") as f:
        data = f.read()
    for table in ("visual", "semantic"):
        st, _, body = srv.request("POST", "/api/search?k=4&table=" + table, body=data)
        want = search_json(imgsearch, idx, "--image", image, "-k", "4", "--table", table)[0]
        got = json.loads(body) if st == 200 else {}
        c.check("upload, %s table: as search --json" % table,
                st == 200 and got.get("table") == table and same_results(got.get("results", []), want["results"]),
                body[:300])
        if table == "visual":
            row = got["results"][1]["id"]
            row_path = got["results"][1]["path"]
    st, _, body = srv.request("GET", "/api/search?row=%d&k=3" % row)
    want = search_json(imgsearch, idx, "--image", row_path, "-k", "3")[0]
    got = json.loads(body) if st == 200 else {}
    c.check("row query: as search --json of its image", st == 200 and
            same_results(got.get("results", []), want["results"]), body[:300])
    st, ctype, body = srv.request("GET", "/api/thumb/%d" % row)
    wh = fx.jpeg_size(body) if st == 200 else None
    c.check("thumbnail: a whole JPEG, long side <= 256", ctype == "image/jpeg" and wh and max(wh) <= 256, str(wh))
    st2, _, body2 = srv.request("GET", "/api/thumb/%d" % row)
    c.check("thumbnail again: the same bytes (cached)", st2 == 200 and body2 == body)
    st, ctype, body = srv.request("GET", "/")
    page = body.decode("utf-8", errors="replace")
    c.check("the page: a self-contained form", st == 200 and ctype.startswith("text/html") and "<form" in page and
            "http://" not in page and "https://" not in page and "src=\"http" not in page)
    c.check("the page says the weights are synthetic", 'id="synthetic"' in page)
    st, _, body = srv.request("GET", "/api/health")
    c.check("health", st == 200 and json.loads(body) == {"status": "ok"})
    st, _, body = srv.request("GET", "/api/info")
    info = json.loads(body) if st == 200 else {}
    c.check("info: rows, tables, limits, latency", info.get("rows") == 9 and info.get("tables") ==
            ["visual", "semantic"] and info.get("synthetic") is True and info["limits"]["max_k"] == 1000 and
            info["latency_ms"]["searches"] >= 7, body[:400])


def urllib_query(**kw):
    import urllib.parse
    return urllib.parse.urlencode(kw)


def json_error(st, ctype, body):
    try:
        return ctype.startswith("application/json") and "error" in json.loads(body)
    except ValueError:
        return False


def check_hostile(c, srv, samples):
    def expect(name, method, url, want, body=None, headers=None):
        st, ctype, data = srv.request(method, url, body=body, headers=headers)
        c.check("%s: %d with a JSON error" % (name, want), st == want and json_error(st, ctype, data),
                "got %d %s %r" % (st, ctype, data[:200]))

    for url in ("/api/thumb/../../etc/passwd", "/api/thumb/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/api/thumb//etc/passwd",
                "/api/thumb/0/../../../etc/passwd", "/api/thumb/-1", "/api/thumb/99999999999999999999999",
                "/api/thumb/1e3", "/api/thumb/", "/api/thumb/%00", "/api/thumb/9"):
        expect("traversal or bad row %s" % url, "GET", url, 404)
    for url in ("/../../etc/passwd", "/etc/passwd", "/api/searchx", "/api"):
        expect("unknown path %s" % url, "GET", url, 404)
    for k in ("1000000000", "0", "-1", "abc", "1001", "", "5.5", "%20"):
        expect("k=%r" % k, "GET", "/api/search?text=cat&k=" + k, 400)
    expect("table=other", "GET", "/api/search?text=cat&table=other", 400)
    expect("no text or row", "GET", "/api/search?k=3", 400)
    expect("text and row", "GET", "/api/search?text=a&row=1", 400)
    expect("row out of range", "GET", "/api/search?row=123456", 404)
    expect("invalid UTF-8", "GET", "/api/search?text=%ff%fe%80", 400)
    expect("white space only", "GET", "/api/search?text=%20%20%09", 400)
    expect("text of 5000 bytes", "GET", "/api/search?text=" + "a" * 5000, 413)
    st, _, _ = srv.request("GET", "/api/search?text=" + "b" * 200000)
    c.check("a 200 kB URL: a 4xx", 400 <= st < 500, str(st))
    expect("DELETE", "DELETE", "/api/search?text=a", 405)
    expect("POST to a thumbnail", "POST", "/api/thumb/1", 405, body=b"x")
    expect("empty upload", "POST", "/api/search", 400, body=b"")
    expect("not an image", "POST", "/api/search", 415, body=b"just some text, not an image" * 100)
    with open(os.path.join(samples, "chelsea.png"), "rb") as f:
        png = f.read()
    expect("a truncated PNG", "POST", "/api/search", 422, body=png[:3000])
    # Over --max-upload: refused on its Content-Length before the body is read, so the answer comes to the
    # headers alone (a client still sending the body may instead see the connection reset, as it should).
    got = srv.raw(b"POST /api/search HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
                  b"Content-Length: %d\r\n\r\n" % (2 << 20))
    head, _, data = got.partition(b"\r\n\r\n")
    c.check("an upload over --max-upload (2 MiB > 1 MiB): 413 with a JSON error before the body",
            head.startswith(b"HTTP/1.1 413") and b"application/json" in head and b'"error"' in data, got[:300])
    st, _, _ = srv.request("POST", "/api/search", body=b"x" * 10, headers={"Content-Length": "999999999999"})
    c.check("a huge Content-Length: a 4xx or closed, not a crash", st >= 400 or st == 0, str(st))
    # Garbage and half-closed connections: answered or closed, never a crash or a hang.
    for name, data in (("garbage request line", b"HELLO THERE\r\n\r\n"),
                       ("binary noise", bytes(range(256)) * 4),
                       ("header without end", b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 200000),
                       ("request line only", b"GET /api/health HTTP/1.1\r\n")):
        got = srv.raw(data, half_close=True)
        c.check("%s: answered 4xx or closed" % name, got == b"" or got.startswith(b"HTTP/1.1 4"), got[:80])
    silent = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(4)]
    half = socket.create_connection(("127.0.0.1", srv.port))
    half.sendall(b"POST /api/search HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\npartial")
    half.shutdown(socket.SHUT_WR)
    st, _, _ = srv.request("GET", "/api/health", timeout=10)
    c.check("health while silent and half-closed connections are open", st == 200)
    for s in silent + [half]:
        s.close()
    c.check("still alive after the hostile requests", srv.proc.poll() is None)


def load_test(c, srv):
    texts = ["a cat", "the night sky", "coffee cup", "a rocket launch", "grass", "a red brick wall", "ünïcode"]
    paths = []
    for i in range(LOAD_REQUESTS):
        r = i % 20
        if r < 15:
            paths.append("/api/search?" + urllib_query(text=texts[i % len(texts)], k=1 + i % 9))
        elif r < 19:
            paths.append("/api/thumb/%d" % (i % 9))
        else:
            paths.append("/api/info")
    lock = threading.Lock()
    latencies, errors, next_i = [], [], [0]
    deadline = time.time() + LOAD_SECONDS

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
        while time.time() < deadline:
            with lock:
                i = next_i[0]
                next_i[0] += 1
            if i >= len(paths):
                break
            t0 = time.perf_counter()
            try:
                conn.request("GET", paths[i])
                r = conn.getresponse()
                r.read()
                status = r.status
            except (OSError, http.client.HTTPException) as e:
                status = repr(e)
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
            ms = (time.perf_counter() - t0) * 1e3
            with lock:
                latencies.append(ms)
                if status != 200:
                    errors.append((paths[i], status))
        conn.close()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(LOAD_CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat = sorted(latencies)

    def pct(p):
        return lat[min(len(lat) - 1, int(len(lat) * p / 100))] if lat else float("nan")

    print("load: %d requests from %d clients in %.2f s (%.0f/s): latency p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, "
          "max %.2f ms; %d errors" % (len(lat), LOAD_CLIENTS, wall, len(lat) / wall, pct(50), pct(90), pct(99),
                                      lat[-1] if lat else 0, len(errors)))
    c.check("load: every request answered", len(lat) == LOAD_REQUESTS, "%d of %d" % (len(lat), LOAD_REQUESTS))
    c.check("load: no errors", not errors, str(errors[:5]))


def check_busy(c, imgsearch, idx, work):
    """--queue 1: of 8 slow searches at once, one runs, one waits, the rest get 503."""
    srv = Server(imgsearch, idx, work, "--queue", "1", "--quiet")
    results, lock = [], threading.Lock()
    barrier = threading.Barrier(8)

    def one(i):
        barrier.wait()
        st, ctype, body = srv.request("GET", "/api/search?row=%d&k=2" % i)
        with lock:
            results.append((st, json_error(st, ctype, body) if st != 200 else True))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(st for st, _ in results)
    c.check("a full queue: some 503, the others 200", statuses.count(503) >= 1 and statuses.count(200) >= 1 and
            set(statuses) <= {200, 503} and all(ok for _, ok in results), str(statuses))
    st, _, body = srv.request("GET", "/api/info")
    c.check("info counts the 503s", st == 200 and json.loads(body)["requests"]["busy"] == statuses.count(503))
    rc = srv.stop(signal.SIGINT)
    c.check("SIGINT: exit 0", rc == 0, "%s: %s" % (rc, srv.text()[-500:]))


def check_signal_while_loading(c, imgsearch, idx, work):
    """SIGTERM while the models load: it stops once loaded, exit 0."""
    log_path = os.path.join(work, "loading.log")
    with open(log_path, "w") as log:
        p = subprocess.Popen([imgsearch, "serve", idx, "--port", "0", "--device", "cpu"], stderr=log,
                             stdout=subprocess.DEVNULL)
        deadline = time.time() + 30
        while time.time() < deadline and "loading" not in open(log_path).read():
            time.sleep(0.01)
        p.send_signal(signal.SIGTERM)
        try:
            rc = p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = "hung"
    text = open(log_path).read()
    c.check("SIGTERM while loading: exit 0, stopped", rc == 0 and "stopped after 0 requests" in text,
            "%s: %s" % (rc, text[-300:]))


def check_set(c, imgsearch, photos, work):
    """serve over a set of 3 shards of the same photos: the API answers as
    `search SET --json`, and rows of every shard give their thumbnails."""
    shards = os.path.join(work, "shards")
    os.makedirs(shards)
    iv3, text = os.path.join(work, "iv3.isw"), os.path.join(work, "text.isw")
    for i in range(3):
        r = fx.run([imgsearch, "index", photos, "-o", os.path.join(shards, "s%d" % i), "--shard", "%d/3" % i,
                    "--image-model", iv3, "--text-model", text, "--device", "cpu", "--threads", "2"])
        c.check("set: shard %d indexed" % i, r.returncode == 0, r.stderr[-300:])
    srv = Server(imgsearch, shards, work)
    try:
        st, _, body = srv.request("GET", "/api/search?" + urllib_query(text="a cat on a sofa", k=9))
        want = search_json(imgsearch, shards, "--text", "a cat on a sofa", "-k", "9")[0]
        got = json.loads(body) if st == 200 else {}
        c.check("set: text query as search --json of the set", st == 200 and
                same_results(got.get("results", []), want["results"]), "%s\n%s" % (got, want))
        rows = [h["id"] for h in got.get("results", [])]
        c.check("set: hits from more than one shard", len({r >> 40 for r in rows}) > 1, str(rows))
        thumbs = [srv.request("GET", "/api/thumb/%d" % r) for r in rows]
        c.check("set: every hit's thumbnail", all(t[0] == 200 and t[1] == "image/jpeg" for t in thumbs))
        st, _, body = srv.request("GET", "/api/search?row=%d&k=2" % rows[-1])
        c.check("set: a row query on another shard", st == 200 and
                json.loads(body)["results"][0]["id"] == rows[-1], body[:300])
        st, _, _ = srv.request("GET", "/api/thumb/%d" % ((5 << 40) + 1))
        c.check("set: a row of no shard: 404", st == 404)
        st, _, body = srv.request("GET", "/api/info")
        c.check("set: info counts every shard's rows", st == 200 and json.loads(body).get("rows") == 9, body[:200])
        c.check("set: SIGTERM: exit 0", srv.stop(signal.SIGTERM) == 0)
    finally:
        if srv.proc.poll() is None:
            srv.proc.kill()


def main():
    imgsearch, samples, fixtures = sys.argv[1:4]
    c = fx.Checks()
    work = fx.work_dir()
    srv = None
    try:
        idx, photos = fx.build_index(imgsearch, samples, fixtures, work)
        r = fx.run([imgsearch, "serve", idx, "--host", "example.invalid"])
        c.check("--host must be an address", r.returncode == 1 and b"not an IPv4 or IPv6 address" in r.stderr,
                r.stderr)
        r = fx.run([imgsearch, "serve", os.path.join(work, "missing")])
        c.check("a missing index: exit 1", r.returncode == 1)
        srv = Server(imgsearch, idx, work, "--max-upload", "1")
        c.check("listens on 127.0.0.1 by default", srv.host.startswith("127.0.0.1:"), srv.host)
        check_api(c, srv, imgsearch, idx, photos, samples)
        check_hostile(c, srv, samples)
        load_test(c, srv)
        # an idle keep-alive connection must not hold the shutdown
        idle = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        idle.request("GET", "/api/health")
        idle.getresponse().read()
        t0 = time.time()
        rc = srv.stop(signal.SIGTERM)
        log = srv.text()
        c.check("SIGTERM: exit 0, promptly", rc == 0 and time.time() - t0 < 15, "%s in %.1f s" % (rc, time.time() - t0))
        c.check("SIGTERM: said it stopped", "stopping" in log and "stopped after" in log, log[-300:])
        c.check("the uploads' folder removed", os.listdir(srv.tmp) == [], str(os.listdir(srv.tmp)))
        c.check("each request logged with its times", "embed " in log and " total " in log)
        c.check("no sanitizer report", "runtime error" not in log and "Sanitizer" not in log, log[-2000:])
        idle.close()
        srv = None
        check_busy(c, imgsearch, idx, work)
        check_signal_while_loading(c, imgsearch, idx, work)
        check_set(c, imgsearch, photos, work)
    except Exception:
        if srv:
            print("serve's log (tail):\n" + srv.text()[-3000:], file=sys.stderr)
        raise
    finally:
        if srv and srv.proc.poll() is None:
            srv.proc.kill()
        shutil.rmtree(work, ignore_errors=True)
    c.finish()


if __name__ == "__main__":
    main()
