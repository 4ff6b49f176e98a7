"""A tiny fake Hugging Face Hub on loopback, for tests of the real huggingface_hub/timm/transformers download paths.

huggingface_hub reads ``HF_ENDPOINT`` once at import, so start the server before anything imports it::

    hub = FakeHub()
    os.environ["HF_ENDPOINT"] = hub.start()   # then HF_HOME, HF_HUB_DISABLE_TELEMETRY=1, then import timm...
    hub.add_repo("org/m", {"config.json": b"{}"})  # repos may be added while the server runs

This module imports neither huggingface_hub nor timm at import time. Only model repos are served.
Served: ``HEAD/GET /{repo}/resolve/{rev}/{path}``, ``GET /api/models/{repo}[/revision/{rev}]``,
``GET /api/models/{repo}/tree/{rev}[/{path}]``, ``GET /api/models?...`` (paginated with a ``Link`` header),
``GET /api/agent-harnesses``. Anything else answers 404 (never 5xx: the client retries those for ~20 s).
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

_LFS_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt", ".ckpt", ".h5", ".msgpack", ".onnx", ".npz", ".gguf")
_DATE = "2024-01-01T00:00:00.000Z"
_REPO = r"(?P<repo>[^/]+(?:/[^/]+)?)"
_RESOLVE = re.compile(rf"^/(?P<ds>datasets/)?{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
_INFO = re.compile(rf"^/api/(?P<kind>models|datasets)/{_REPO}(?:/revision/(?P<rev>[^/]+))?/?$")
_TREE = re.compile(rf"^/api/(?P<kind>models|datasets)/{_REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?$")


def _is_lfs(path: str, data: bytes) -> bool:
    return len(data) > 1024 or path.endswith(_LFS_SUFFIXES)


@dataclass
class _File:
    data: bytes
    lfs: bool
    sha256: str = field(init=False)
    oid: str = field(init=False)  # git blob sha1 (of the LFS pointer file for LFS files)

    def __post_init__(self) -> None:
        self.sha256 = hashlib.sha256(self.data).hexdigest()
        blob = self.pointer() if self.lfs else self.data
        self.oid = hashlib.sha1(b"blob %d\0" % len(blob) + blob).hexdigest()

    def pointer(self) -> bytes:
        return f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\nsize {len(self.data)}\n".encode()

    def tree_entry(self, path: str) -> dict[str, Any]:
        entry: dict[str, Any] = {"type": "file", "path": path, "size": len(self.data), "oid": self.oid}
        if self.lfs:
            entry["lfs"] = {"oid": self.sha256, "size": len(self.data), "pointerSize": len(self.pointer())}
        return entry


@dataclass
class _Repo:
    meta: dict[str, Any]
    revisions: dict[str, tuple[str, dict[str, _File]]] = field(default_factory=dict)  # name -> (sha, files)

    def lookup(self, rev: str) -> tuple[str, dict[str, _File]] | None:
        return self.revisions.get(rev) or next((r for r in self.revisions.values() if r[0] == rev), None)


class _HubError(Exception):
    def __init__(self, status: int, code: str | None, message: str, sha: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.sha = status, code, message, sha


class FakeHub:
    """In-memory model repos served over HTTP on 127.0.0.1; ``requests`` logs ``(method, unquoted path w/o query)``."""

    def __init__(self) -> None:
        self.repos: dict[str, _Repo] = {}
        self.requests: list[tuple[str, str]] = []
        self.page_size = 2  # page size of GET /api/models
        self.endpoint = ""
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        """Serve on a free loopback port in a daemon thread; return the endpoint URL ``http://127.0.0.1:PORT``."""
        handler = type("Handler", (_Handler,), {"hub": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="fakehub", daemon=True)
        self._thread.start()
        return self.endpoint

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def add_repo(self, repo_id: str, files: dict[str, bytes], *, revision: str = "main", sha: str | None = None,
                 gated: bool = False, card_data: dict | None = None, tags: list[str] | None = None, downloads: int = 0,
                 likes: int = 0, library_name: str | None = None, pipeline_tag: str | None = None,
                 repo_type: str = "model") -> str:
        """Add (or replace) ``revision`` of ``repo_id``; repo metadata is (re)set too. Returns the commit sha.

        Files over 1 KB or with a weights suffix (.safetensors, .bin, .pth, ...) are served as LFS files.
        The sha defaults to a digest of repo id, revision and contents (40 hex, deterministic).
        """
        if repo_type == "dataset":
            repo_id = f"datasets/{repo_id}"
        entries = {path: _File(bytes(data), _is_lfs(path, data)) for path, data in files.items()}
        if sha is None:
            digest = hashlib.sha1(f"{repo_id}@{revision}".encode())
            for path in sorted(entries):
                digest.update(f"\0{path}\0{entries[path].sha256}".encode())
            sha = digest.hexdigest()
        meta = {"gated": "auto" if gated else False, "cardData": card_data, "tags": list(tags or []),
                "downloads": downloads, "likes": likes, "library_name": library_name, "pipeline_tag": pipeline_tag}
        with self._lock:
            repo = self.repos.setdefault(repo_id, _Repo(meta))
            repo.meta = meta
            repo.revisions[revision] = (sha, entries)
        return sha

    def add_dir(self, repo_id: str, path: Path, **kw: Any) -> str:
        """``add_repo`` with every file under the local folder ``path`` (skipping ``.git``/``.cache`` folders)."""
        root = Path(path)
        files = {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
                 if p.is_file() and not {".git", ".cache"} & set(p.relative_to(root).parts[:-1])}
        return self.add_repo(repo_id, files, **kw)

    # ----------------------------------------------------------------- request handling (server threads)
    def _get(self, repo_id: str, rev: str | None, authorized: bool) -> tuple[_Repo, str, dict[str, _File]]:
        with self._lock:
            repo = self.repos.get(repo_id)
        if repo is None:
            raise _HubError(401, "RepoNotFound", "Repository not found")
        if repo.meta["gated"] and not authorized:
            raise _HubError(401, "GatedRepo", "Access to this model is restricted: send a token")
        found = repo.lookup(rev or "main")
        if found is None:
            raise _HubError(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        return repo, found[0], found[1]

    def _info(self, repo_id: str, repo: _Repo, sha: str, files: dict[str, _File]) -> dict[str, Any]:
        siblings = [{"rfilename": p, "size": len(f.data), "blobId": f.oid, "lfs": f.tree_entry(p).get("lfs")}
                    for p, f in sorted(files.items())]
        for s in siblings:  # the model_info API names the LFS sha256 "sha256", the tree API "oid"
            s["lfs"] = s["lfs"] and {**s["lfs"], "sha256": s["lfs"].pop("oid")}
        return {"_id": sha[:24], "id": repo_id, "modelId": repo_id, "author": repo_id.split("/")[0], "sha": sha,
                "private": False, "disabled": False, "lastModified": _DATE, "createdAt": _DATE, "siblings": siblings,
                **{k: v for k, v in repo.meta.items() if v is not None}}

    def _tree(self, sha: str, files: dict[str, _File], prefix: str, recursive: bool) -> list[dict[str, Any]]:
        entries: dict[str, dict[str, Any]] = {}
        for p, f in sorted(files.items()):
            if prefix and not p.startswith(prefix + "/"):
                continue
            parts = (p[len(prefix) + 1:] if prefix else p).split("/")
            for i in range(1, len(parts) if recursive else min(len(parts), 2)):  # folders on the way
                d = "/".join(([prefix] if prefix else []) + parts[:i])
                oid = hashlib.sha1(f"{sha}:{d}".encode()).hexdigest()
                entries.setdefault(d, {"type": "directory", "path": d, "size": 0, "oid": oid})
            if recursive or len(parts) == 1:
                entries[p] = f.tree_entry(p)
        if prefix and not entries:
            raise _HubError(404, "EntryNotFound", f"{prefix} does not exist on {sha}", sha)
        return list(entries.values())

    def _list(self, query: list[tuple[str, str]]) -> tuple[list[dict[str, Any]], str | None]:
        q: dict[str, list[str]] = {}
        for key, value in query:
            q.setdefault(key, []).append(value)
        one = {k: v[0] for k, v in q.items()}
        with self._lock:
            repos = [(rid, repo, repo.lookup("main")) for rid, repo in self.repos.items()
                     if not rid.startswith("datasets/")]
        out = []
        for repo_id, repo, main in repos:
            m = repo.meta
            checks = [main is not None, one.get("search", "").lower() in repo_id.lower(),
                      one.get("author", repo_id.split("/")[0]) == repo_id.split("/")[0],
                      set(q.get("filter", [])) <= set(m["tags"]) | {m["library_name"], m["pipeline_tag"]},
                      one.get("library", m["library_name"]) == m["library_name"],
                      one.get("pipeline_tag", m["pipeline_tag"]) == m["pipeline_tag"],
                      "gated" not in one or bool(m["gated"]) == (one["gated"].lower() == "true")]
            if all(checks):
                out.append(self._info(repo_id, repo, *main))  # type: ignore[misc]
        if (sort := one.get("sort")) in ("downloads", "likes"):
            out.sort(key=lambda i: i[sort], reverse=True)
        out = out[: int(one["limit"])] if one.get("limit") else out
        cursor = int(one.get("cursor", 0))
        next_url = None
        if len(out) > cursor + self.page_size:
            params = [(k, v) for k, v in query if k != "cursor"] + [("cursor", str(cursor + self.page_size))]
            next_url = f"{self.endpoint}/api/models?{urlencode(params)}"
        return out[cursor: cursor + self.page_size], next_url


def _key(kind: str, repo: str) -> str:
    """Dataset repos live under "datasets/<id>" in FakeHub.repos (add_repo(..., repo_type="dataset"))."""
    return ("datasets/" if kind == "datasets" else "") + unquote(repo)


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # silence
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None,
              ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send(200, json.dumps(obj).encode(), headers)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        url = urlsplit(self.path)
        raw, path, query = url.path, unquote(url.path), parse_qsl(url.query, keep_blank_values=True)
        self.hub.requests.append((self.command, path))
        authorized = self.headers.get("Authorization", "").startswith("Bearer ")
        hub = self.hub
        try:
            if self.command not in ("GET", "HEAD"):
                raise _HubError(404, None, "Not found")
            if raw == "/api/agent-harnesses":
                return self._json({"standardEnvVars": [], "harnesses": {}})
            if raw.rstrip("/") == "/api/models":
                page, next_url = hub._list(query)
                return self._json(page, {"Link": f'<{next_url}>; rel="next"'} if next_url else None)
            if m := _TREE.match(raw):
                repo_id, prefix = _key(m["kind"], m["repo"]), unquote(m["path"] or "").strip("/")
                _, sha, files = hub._get(repo_id, unquote(m["rev"]), authorized)
                recursive = dict(query).get("recursive", "false").lower() in ("true", "1")
                return self._json(hub._tree(sha, files, prefix, recursive))
            if m := _INFO.match(raw):
                repo_id = _key(m["kind"], m["repo"])
                repo, sha, files = hub._get(repo_id, unquote(m["rev"]) if m["rev"] else None, authorized)
                return self._json(hub._info(repo_id.removeprefix("datasets/"), repo, sha, files))
            if m := _RESOLVE.match(raw):
                _, sha, files = hub._get(_key("datasets" if m["ds"] else "models", m["repo"]), unquote(m["rev"]),
                                         authorized)
                f = files.get(unquote(m["path"]))
                if f is None:
                    raise _HubError(404, "EntryNotFound", "Entry not found", sha)
                headers = {"X-Repo-Commit": sha, "ETag": f'"{f.oid}"', "Accept-Ranges": "bytes"}
                if f.lfs:
                    headers.update({"X-Linked-Etag": f'"{f.sha256}"', "X-Linked-Size": str(len(f.data))})
                if rng := re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", "").strip()):  # resumes
                    start, end = int(rng[1]), min(int(rng[2] or len(f.data) - 1), len(f.data) - 1)
                    headers["Content-Range"] = f"bytes {start}-{end}/{len(f.data)}"
                    return self._send(206, f.data[start:end + 1], headers, "application/octet-stream")
                return self._send(200, f.data, headers, "application/octet-stream")
            raise _HubError(404, None, "Not found")
        except _HubError as e:
            headers = {"X-Error-Message": e.message, **({"X-Error-Code": e.code} if e.code else {}),
                       **({"X-Repo-Commit": e.sha} if e.sha else {})}
            self._send(e.status, json.dumps({"error": e.message}).encode(), headers)
        except Exception as e:  # a bug here must not look like a 5xx (retried by the client): answer 400
            self._send(400, json.dumps({"error": f"fakehub bug: {e!r}"}).encode())

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _handle


def timm_repo_files(model: Any) -> dict[str, bytes]:
    """Files of a timm hub repo for ``model`` (``config.json``, ``model.safetensors``), via ``save_for_hf``."""
    from timm.models import save_for_hf

    with tempfile.TemporaryDirectory() as tmp:
        save_for_hf(model, tmp, safe_serialization=True)
        return {name: (Path(tmp) / name).read_bytes() for name in ("config.json", "model.safetensors")}
