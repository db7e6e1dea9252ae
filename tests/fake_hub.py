"""A stand-in for the Hugging Face Hub at the HTTP boundary of ``huggingface_hub``.

The client that ``huggingface_hub`` uses for every request is replaced with one whose transport
answers the few endpoints an upload touches (create repo, validate the card's YAML, pre-upload,
commit) and records what was committed, so a test can rebuild the uploaded folder offline.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path


class FakeHub:
    """``offline=True``: every request fails to connect, as with no network."""

    def __init__(self, offline: bool = False):
        self.offline = offline
        self.requests: list[tuple[str, str]] = []
        self.files: dict[str, bytes] = {}
        self.created: list[dict] = []
        self.commits: list[dict] = []

    def handle(self, request):
        import httpx2

        self.requests.append((request.method, request.url.path))
        if self.offline:
            raise httpx2.ConnectError("[Errno -2] Name or service not known", request=request)
        path = request.url.path
        if path == "/api/whoami-v2":
            if not request.headers.get("authorization"):
                return httpx2.Response(401, json={"error": "Invalid credentials in Authorization header"})
            return httpx2.Response(200, json={"name": "me", "type": "user", "auth": {}})
        if path == "/api/repos/create":
            payload = json.loads(request.content)
            self.created.append(payload)
            repo = "/".join(filter(None, (payload.get("organization"), payload["name"])))
            return httpx2.Response(200, json={"url": f"https://huggingface.co/{repo}"})
        if path == "/api/validate-yaml":
            return httpx2.Response(200, json={"errors": [], "warnings": []})
        if "/preupload/" in path:
            wanted = json.loads(request.content)["files"]
            return httpx2.Response(200, json={"files": [{"path": f["path"], "uploadMode": "regular",
                                                         "shouldIgnore": False} for f in wanted]})
        if "/commit/" in path:
            for line in request.content.decode().splitlines():
                item = json.loads(line)
                if item["key"] == "header":
                    self.commits.append(item["value"])
                elif item["key"] == "file":
                    self.files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                else:
                    return httpx2.Response(400, json={"error": f"unexpected commit item {item['key']}"})
            repo = path.split("/api/models/", 1)[1].split("/commit/", 1)[0]
            return httpx2.Response(200, json={"commitUrl": f"https://huggingface.co/{repo}/commit/{'a' * 40}",
                                              "commitOid": "a" * 40})
        return httpx2.Response(404, json={"error": f"the fake hub does not serve {request.method} {path}"})

    def write_to(self, folder: Path) -> Path:
        """The committed files, written out as a local folder."""
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in self.files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
        return folder

    def install(self, monkeypatch) -> "FakeHub":
        import httpx2
        from huggingface_hub.utils import _http

        monkeypatch.setattr(_http, "_GLOBAL_CLIENT_FACTORY",
                            lambda: httpx2.Client(transport=httpx2.MockTransport(self.handle), follow_redirects=True))
        _http.close_session()
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        return self
