"""The fake platforms of `testing.py` with media, as each platform documents its uploads, and a
media host to fetch files from. For tests and local trials only (127.0.0.1).

- `MediaBluesky`: com.atproto.repo.uploadBlob (content-addressed: the same bytes are one blob;
  over 1,000,000 bytes `BlobTooLarge`), and createRecord checking an app.bsky.embed.images
  embed as the lexicon does (at most 4, `alt` a string, `aspectRatio` positive integers, every
  blob uploaded by that account).
- `MediaMastodon`: POST /api/v2/media (multipart `file`, `description`), answering 202 with
  `url` null for `processing_polls` polls of GET /api/v1/media/:id (206), then 200; statuses
  with `media_ids` refused (422) when one is unknown, still processing or already attached.
- `MediaX`: POST /2/media/upload INIT/APPEND/FINALIZE, GET ...?command=STATUS (video processes
  for `processing_polls` checks), POST /2/media/metadata; a post's media ids must be
  finalized; the post's text comes back with the media's t.co link appended.
- `MediaLinkedIn`: POST /rest/images?action=initializeUpload, PUT of the bytes to the upload
  URL, GET /rest/images/{urn} (PROCESSING for `processing_polls` reads, then AVAILABLE); a
  post's `content.media` / `content.multiImage` images must be AVAILABLE.

Each counts its uploads (`uploads`) and takes faults for them (`fail_upload`), as for posts.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qs, unquote

from hopcast_publisher.testing import (
    Answer,
    FakeBluesky,
    FakeLinkedIn,
    FakeMastodon,
    FakeX,
    Fault,
    Request,
)


def form_fields(request: Request) -> dict[str, tuple[bytes, str | None]]:
    """A multipart/form-data or urlencoded body's fields: name -> (value, content type)."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/x-www-form-urlencoded"):
        return {k: (v[0].encode(), None) for k, v in parse_qs(request.body.decode()).items()}
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + request.body
    )
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            fields[name] = (payload, part.get_content_type() if part.get("content-type") else None)
    return fields


class UploadFaults:
    """Faults the next uploads meet (a status, or the upload made and its answer lost)."""

    def __init__(self) -> None:
        self.upload_faults: list[Fault] = []
        self.uploads = 0
        """Uploads the platform accepted (each a new stored file)."""

    def fail_upload(self, *faults: Fault) -> None:
        self.upload_faults.extend(faults)

    async def faulty(self, answer: Answer) -> Answer:
        """`answer` (the upload made) as the next fault turns it."""
        fault = self.upload_faults.pop(0) if self.upload_faults else None
        if fault is None:
            return answer
        if fault.delay_s:
            await asyncio.sleep(fault.delay_s)
            return answer
        assert fault.status is not None
        return fault.status, fault.headers, fault.body if fault.body is not None else {"error": f"fault {fault.status}"}


class MediaServer:
    """Serves files over http on 127.0.0.1: `files[path] = (bytes, content type)`; `redirects[path]`
    answers 302 to another location; `hits` counts GETs per path."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}
        self.redirects: dict[str, str] = {}
        self.hits: dict[str, int] = {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        self.hits[path] = self.hits.get(path, 0) + 1
        if path in self.redirects:
            start = {
                "type": "http.response.start",
                "status": 302,
                "headers": [(b"location", self.redirects[path].encode())],
            }
            await send(start)
            await send({"type": "http.response.body", "body": b""})
            return
        data, kind = self.files.get(path, (b"", ""))
        status = 200 if path in self.files else 404
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", kind.encode())]})
        await send({"type": "http.response.body", "body": data})


def cid_of(data: bytes) -> str:
    return "bafkrei" + hashlib.sha256(data).hexdigest()[:52]


class MediaBluesky(UploadFaults, FakeBluesky):
    def __init__(self) -> None:
        FakeBluesky.__init__(self)
        UploadFaults.__init__(self)
        self.blobs: dict[str, tuple[bytes, str]] = {}

    async def route(self, request: Request) -> Answer:
        if (request.method, request.path) == ("POST", "/xrpc/com.atproto.repo.uploadBlob"):
            problem = self.token_problem(request)
            if problem is not None:
                return problem
            if len(request.body) > 1_000_000:
                return 400, {}, {"error": "BlobTooLarge", "message": "This file is too large"}
            cid = cid_of(request.body)
            if cid not in self.blobs:
                self.uploads += 1
            mime = request.headers.get("content-type", "application/octet-stream")
            self.blobs[cid] = (request.body, mime)
            blob = {"$type": "blob", "ref": {"$link": cid}, "mimeType": mime, "size": len(request.body)}
            return await self.faulty((200, {}, {"blob": blob}))
        return await super().route(request)

    async def create(self, request: Request) -> Answer:
        embed = request.json().get("record", {}).get("embed")
        if isinstance(embed, dict) and embed.get("$type") == "app.bsky.embed.images":
            problem = self._images_problem(embed.get("images"))
            if problem:
                return 400, {}, {"error": "InvalidRequest", "message": problem}
        return await super().create(request)

    def _images_problem(self, images: object) -> str | None:
        if not isinstance(images, list) or not 1 <= len(images) <= 4:
            return "Record/embed/images must have 1 to 4 elements"
        for image in images:
            ratio = image.get("aspectRatio") if isinstance(image, dict) else None
            if not isinstance(image, dict) or not isinstance(image.get("alt"), str):
                return 'Record/embed/images/0 must have the property "alt"'
            ref = image.get("image", {}).get("ref", {}).get("$link")
            if ref not in self.blobs:
                return "BlobNotFound"
            if ratio is not None and not all(
                isinstance(ratio.get(k), int) and ratio[k] >= 1 for k in ("width", "height")
            ):
                return "Record/embed/images/0/aspectRatio must be positive integers"
        return None


class MediaMastodon(UploadFaults, FakeMastodon):
    def __init__(self, *, processing_polls: int = 0, media_attachments: dict[str, Any] | None = None) -> None:
        FakeMastodon.__init__(self)
        UploadFaults.__init__(self)
        self.processing_polls = processing_polls
        self.media_attachments = media_attachments or {
            "supported_mime_types": ["image/jpeg", "image/png", "image/gif", "image/webp", "video/mp4"],
            "image_size_limit": 16_777_216,
            "image_matrix_limit": 33_177_600,
            "video_size_limit": 103_809_024,
            "video_matrix_limit": 8_294_400,
        }
        self.media: dict[str, dict[str, Any]] = {}
        self._polls: dict[str, int] = {}

    async def route(self, request: Request) -> Answer:
        if (request.method, request.path) == ("GET", "/api/v2/instance"):
            status, headers, body = await super().route(request)
            body["configuration"]["media_attachments"] = self.media_attachments
            return status, headers, body
        if (request.method, request.path) == ("POST", "/api/v2/media"):
            problem = self.token_problem(request)
            if problem is not None:
                return problem
            fields = form_fields(request)
            if "file" not in fields:
                return 422, {}, {"error": "Validation failed: File can't be blank"}
            media_id = self.next_id()
            description = fields.get("description", (b"", None))[0].decode() or None
            url = f"https://files.mastodon.example/{media_id}" if not self.processing_polls else None
            self.media[media_id] = {"id": media_id, "type": "image", "url": url, "description": description}
            self.media[media_id]["data"] = fields["file"][0]
            self._polls[media_id] = self.processing_polls
            self.uploads += 1
            public = {k: v for k, v in self.media[media_id].items() if k != "data"}
            return await self.faulty((202 if url is None else 200, {}, public))
        if request.method == "GET" and request.path.startswith("/api/v1/media/"):
            media = self.media.get(request.path.rsplit("/", 1)[-1])
            if media is None:
                return 404, {}, {"error": "Record not found"}
            media_id = media["id"]
            if self._polls[media_id] > 0:
                self._polls[media_id] -= 1
                return 206, {}, {k: v for k, v in media.items() if k != "data"}
            media["url"] = f"https://files.mastodon.example/{media_id}"
            return 200, {}, {k: v for k, v in media.items() if k != "data"}
        return await super().route(request)

    async def create(self, request: Request) -> Answer:
        ids = request.json().get("media_ids") or []
        key = request.headers.get("idempotency-key")
        if key and key in self._by_key:
            return await super().create(request)
        for media_id in ids:
            media = self.media.get(str(media_id))
            if media is None or media.get("status_id"):
                return 422, {}, {"error": "Validation failed: media not found or already attached"}
            if media.get("url") is None:
                return (
                    422,
                    {},
                    {"error": "Cannot attach files that have not finished processing. Try again in a moment!"},
                )
        status, headers, body = await super().create(request)
        if status == 200:
            for media_id in ids:
                self.media[str(media_id)]["status_id"] = body["id"]
            body["media_attachments"] = [{k: v for k, v in self.media[str(i)].items() if k != "data"} for i in ids]
        return status, headers, body


class MediaX(UploadFaults, FakeX):
    def __init__(self, *, processing_polls: int = 0) -> None:
        FakeX.__init__(self)
        UploadFaults.__init__(self)
        self.processing_polls = processing_polls
        self.media: dict[str, dict[str, Any]] = {}
        self._media_ids = itertools.count(1_880_028_106_020_515_840)

    async def route(self, request: Request) -> Answer:
        if request.path == "/2/media/upload":
            problem = self.token_problem(request)
            if problem is not None:
                return problem
            if request.method == "GET" and request.query.get("command") == "STATUS":
                media = self.media.get(request.query.get("media_id", ""))
                if media is None:
                    return 400, {}, {"errors": [{"message": "Invalid media_id"}]}
                if media["polls"] > 0:
                    media["polls"] -= 1
                    info = {"state": "in_progress", "check_after_secs": 0, "progress_percent": 50}
                else:
                    media["state"] = "succeeded"
                    info = {"state": "succeeded", "progress_percent": 100}
                return 200, {}, {"data": {"id": media["id"], "processing_info": info}}
            return await self._upload_command(request)
        if (request.method, request.path) == ("POST", "/2/media/metadata"):
            body = request.json()
            media = self.media.get(str(body.get("id")))
            if media is None:
                return 400, {}, {"errors": [{"message": "Invalid media id"}]}
            media["alt_text"] = body["metadata"]["alt_text"]["text"]
            return 200, {}, {"data": {"associated_metadata": True}}
        return await super().route(request)

    async def _upload_command(self, request: Request) -> Answer:
        fields = {k: v for k, (v, _) in form_fields(request).items()}
        command = fields.get("command", b"").decode()
        if command == "INIT":
            media_id = str(next(self._media_ids))
            self.media[media_id] = {
                "id": media_id,
                "type": fields["media_type"].decode(),
                "total": int(fields["total_bytes"]),
                "category": fields.get("media_category", b"").decode(),
                "chunks": {},
                "state": "initialized",
                "polls": 0,
            }
            return 200, {}, {"data": {"id": media_id, "media_key": f"3_{media_id}", "expires_after_secs": 86400}}
        media = self.media.get(fields.get("media_id", b"").decode())
        if media is None:
            return 400, {}, {"errors": [{"message": "Invalid media_id"}]}
        if command == "APPEND":
            media["chunks"][int(fields["segment_index"])] = fields["media"]
            return 204, {}, None
        if command == "FINALIZE":
            data = b"".join(media["chunks"][i] for i in sorted(media["chunks"]))
            if len(data) != media["total"]:
                return 400, {}, {"errors": [{"message": "File size mismatch"}]}
            media["data"] = data
            self.uploads += 1
            answer = {
                "id": media["id"],
                "media_key": f"3_{media['id']}",
                "size": len(data),
                "expires_after_secs": 86400,
            }
            if media["category"] == "tweet_video":
                media["state"], media["polls"] = "pending", self.processing_polls
                answer["processing_info"] = {"state": "pending", "check_after_secs": 0}
            else:
                media["state"] = "succeeded"
            return await self.faulty((200, {}, {"data": answer}))
        return 400, {}, {"errors": [{"message": f"unknown command {command}"}]}

    async def create(self, request: Request) -> Answer:
        ids = (request.json().get("media") or {}).get("media_ids") or []
        for media_id in ids:
            if self.media.get(str(media_id), {}).get("state") != "succeeded":
                return 400, {}, {"title": "Invalid Request", "detail": "Your media IDs are invalid."}
        status, headers, body = await super().create(request)
        if status == 201 and ids:
            post = self.posts[-1]
            post["media_ids"] = list(ids)
            link = f"https://t.co/{next(self._slugs):010x}"
            # X shows the media's link at the end of the text, with its own URL entity.
            post["text"] = f"{post['text']} {link}"
            media_url = f"https://x.com/hopcast/status/{post['id']}/photo/1"
            post["urls"] = [*post["urls"], {"url": link, "expanded_url": media_url, "media_key": f"3_{ids[0]}"}]
        return status, headers, body


class MediaLinkedIn(UploadFaults, FakeLinkedIn):
    def __init__(self, *, processing_polls: int = 0) -> None:
        FakeLinkedIn.__init__(self)
        UploadFaults.__init__(self)
        self.processing_polls = processing_polls
        self.images: dict[str, dict[str, Any]] = {}
        self._image_ids = itertools.count(5_000_001)

    async def route(self, request: Request) -> Answer:
        if (request.method, request.path) == ("POST", "/rest/images") and request.query.get(
            "action"
        ) == "initializeUpload":
            problem = self.token_problem(request)
            if problem is not None:
                return problem
            owner = request.json().get("initializeUploadRequest", {}).get("owner", "")
            number = next(self._image_ids)
            urn = f"urn:li:image:C4E10AQ{number}"
            self.images[urn] = {"id": urn, "owner": owner, "status": "WAITING_UPLOAD", "polls": self.processing_polls}
            upload_url = f"http://{request.headers['host']}/dms-uploads/{number}"
            self.images[urn]["upload"] = f"/dms-uploads/{number}"
            return 200, {}, {"value": {"uploadUrlExpiresAt": 1_900_000_000_000, "uploadUrl": upload_url, "image": urn}}
        if request.method == "PUT" and request.path.startswith("/dms-uploads/"):
            problem = self.token_problem(request)
            if problem is not None:
                return problem
            image = next((i for i in self.images.values() if i["upload"] == request.path), None)
            if image is None:
                return 404, {}, None
            if image["status"] == "WAITING_UPLOAD":
                self.uploads += 1
            image["data"], image["status"] = request.body, "PROCESSING"
            return await self.faulty((201, {}, None))
        if request.method == "GET" and request.path.startswith("/rest/images/"):
            image = self.images.get(unquote(request.path.removeprefix("/rest/images/")))
            if image is None:
                return 404, {}, {"status": 404, "code": "NOT_FOUND"}
            if image["status"] == "PROCESSING":
                if image["polls"] > 0:
                    image["polls"] -= 1
                else:
                    image["status"] = "AVAILABLE"
            return 200, {}, {"id": image["id"], "owner": image["owner"], "status": image["status"]}
        return await super().route(request)

    async def create(self, request: Request) -> Answer:
        content = request.json().get("content") or {}
        chosen = [content["media"]] if "media" in content else (content.get("multiImage") or {}).get("images", [])
        if "multiImage" in content and not 2 <= len(chosen) <= 20:
            return 422, {}, {"status": 422, "message": "/content/multiImage/images: 2 to 20 images"}
        for image in chosen:
            if self.images.get(image.get("id"), {}).get("status") != "AVAILABLE":
                return 422, {}, {"status": 422, "message": "/content/media/id: image is not AVAILABLE"}
        status, headers, body = await super().create(request)
        if status == 201:
            self.posts[-1]["content"] = content
        return status, headers, body


def image_bytes(width: int, height: int, *, kind: str = "PNG", pad_to: int | None = None, seed: int = 0) -> bytes:
    """An image made with Pillow (`kind` PNG, JPEG, GIF or WEBP), padded with trailing zero
    bytes to exactly `pad_to` bytes when given (readers stop at the image's end), so a test can
    put a file exactly at a size limit or one byte over."""
    import io

    from PIL import Image

    image = Image.new("RGB", (width, height), ((seed * 67) % 256, (seed * 131) % 256, 90))
    buffer = io.BytesIO()
    image.save(buffer, format=kind)
    data = buffer.getvalue()
    if pad_to is not None:
        assert pad_to >= len(data), f"a {width}x{height} {kind} is {len(data)} bytes already"
        data += b"\0" * (pad_to - len(data))
    return data
