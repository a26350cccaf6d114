"""Paper-profile downloads against a real local HTTP server (loopback only): resume, checksums, offline error."""

from __future__ import annotations

import hashlib
import http.server
import threading

import pytest

from vlic.data.download import DATASETS
from vlic.fetch import DownloadError, RemoteFile, fetch

PAYLOAD = bytes(range(256)) * 400  # 102 400 bytes


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    requests: list[str | None] = []

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):
        rng = self.headers.get("Range")
        type(self).requests.append(rng)
        if self.path != "/file.bin":
            self.send_error(404, "Not Found")
            return
        start = int(rng.split("=")[1].split("-")[0]) if rng else 0
        body = PAYLOAD[start:]
        self.send_response(206 if rng else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture()
def server():
    _RangeHandler.requests = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _remote(base: str, path="/file.bin", sha=None) -> RemoteFile:
    return RemoteFile(base + path, "file.bin", sha or hashlib.sha256(PAYLOAD).hexdigest(), len(PAYLOAD))


def test_download_verifies_and_keeps_the_file(server, tmp_path):
    path = fetch(_remote(server), tmp_path)
    assert path.read_bytes() == PAYLOAD
    assert not (tmp_path / "file.bin.part").exists()
    fetch(_remote(server), tmp_path)  # already there and verified: no new request
    assert _RangeHandler.requests == [None]


def test_download_resumes_from_a_partial_file(server, tmp_path):
    (tmp_path / "file.bin.part").write_bytes(PAYLOAD[:1000])
    path = fetch(_remote(server), tmp_path)
    assert path.read_bytes() == PAYLOAD
    assert _RangeHandler.requests == ["bytes=1000-"]


def test_checksum_mismatch_is_refused(server, tmp_path):
    with pytest.raises(DownloadError, match="does not match the pinned"):
        fetch(_remote(server, sha="ab" * 32), tmp_path)
    assert not (tmp_path / "file.bin").exists()


def test_http_error_is_one_line(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch(_remote(server, path="/missing"), tmp_path)


def test_offline_gives_one_clear_line(tmp_path):
    # port 9 on loopback: nothing listens, the connection is refused at once
    with pytest.raises(DownloadError) as e:
        fetch(RemoteFile("http://127.0.0.1:9/x.png", "x.png", "0" * 64), tmp_path, timeout=5)
    msg = str(e.value)
    assert "\n" not in msg and "127.0.0.1:9" in msg and "network" in msg


def test_pinned_datasets_are_complete():
    assert len(DATASETS["kodak"]) == 24
    assert {r.filename for r in DATASETS["kodak"]} == {f"kodim{i:02d}.png" for i in range(1, 25)}
    for files in DATASETS.values():
        for r in files:
            assert len(r.sha256) == 64 and r.url.startswith("https://")


def test_unknown_dataset(tmp_path):
    from vlic.data.download import download

    with pytest.raises(DownloadError, match="unknown dataset 'imagenet'"):
        download("imagenet", tmp_path)
