"""OpenAI's Videos API, as asynchronous jobs: ``POST /v1/videos`` queues one and answers with its video object at
once; ``GET /v1/videos/{id}`` follows it, ``GET /v1/videos`` lists them, ``GET /v1/videos/{id}/content`` serves
the MP4 (ranges answered) and ``DELETE /v1/videos/{id}`` removes it.

Jobs live in the store, so any worker or replica answers for any job, and every process's runner
(``videos.runner``) makes them. A job belongs to the client key that made it: other keys get 404.
"""

from __future__ import annotations

import hashlib
import os
import time

from msgspec import Struct
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from ..edge import authenticate, authorize, json_response, record, services
from ..errors import InvalidRequest, NotFound
from ..media.route import cached_media
from ..services import Services
from ..store.base import ClientKey, VideoImage, VideoJob, VideoStatus
from ..videos.generate import tier_floor
from .video_request import read_order

POLL_AFTER_MS = "1000"  # how soon the SDK's poll() asks again
MAX_LIST = 100
CONTENT_HEADERS = {"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"}
VARIANTS = ("video", "thumbnail", "spritesheet")  # what GET /v1/videos/{id}/content?variant= may name


class VideoError(Struct):
    code: str
    message: str


class VideoObject(Struct, kw_only=True):
    id: str
    object: str = "video"
    model: str
    status: str
    progress: int
    created_at: int
    completed_at: int | None
    expires_at: int | None = None
    seconds: str
    size: str
    prompt: str
    remixed_from_video_id: str | None = None
    error: VideoError | None = None


class VideoList(Struct, kw_only=True):
    object: str = "list"
    data: list[VideoObject]
    first_id: str | None
    last_id: str | None
    has_more: bool


class VideoDeleted(Struct):
    id: str
    object: str = "video.deleted"
    deleted: bool = True


def new_video_id() -> str:
    """``video_`` + milliseconds in 12 hex digits + 80 random bits: ids sort by creation."""
    return f"video_{time.time_ns() // 1_000_000:012x}{os.urandom(10).hex()}"


def video_object(job: VideoJob) -> VideoObject:
    error = VideoError(job.error_code, job.error_message) if job.status == VideoStatus.FAILED else None
    return VideoObject(
        id=job.id,
        model=job.model,
        status=job.status,
        progress=job.progress,
        created_at=int(job.created_at),
        completed_at=int(job.completed_at) if job.completed_at is not None else None,
        seconds=str(job.seconds),
        size=job.size,
        prompt=job.prompt,
        error=error,
    )


def _owner(key: ClientKey | None) -> str:
    return key.id if key is not None else ""


async def _own(svc: Services, key: ClientKey | None, video_id: str) -> VideoJob:
    job = await svc.store.get_video_job(video_id)
    if job is None or job.key_id != _owner(key):
        raise NotFound(f"No video with id {video_id!r}.", param="video_id")
    return job


async def create_video(request: Request) -> Response:
    svc = services(request)
    key = authenticate(request)
    order = await read_order(request, svc)
    await authorize(request, key, order.spec.id)
    tier_floor(svc.pool, order.options)  # a video no account may make is a 400 now, not a failed job later
    given = request.headers.get("idempotency-key", "").strip()
    image = order.image
    job = VideoJob(
        id=new_video_id(),
        key_id=_owner(key),
        idempotency_key=hashlib.sha256(given.encode()).hexdigest() if given else "",
        model=order.model,
        prompt=order.prompt,
        seconds=order.options.duration,
        size=order.size,
        aspect_ratio=order.options.aspect_ratio,
        resolution=order.options.resolution,
        created_at=time.time(),
        has_image=image is not None,
    )
    stored_image = VideoImage(file_name=image.file_name, mime=image.mime, b64=image.b64) if image else None
    stored, created = await svc.store.create_video_job(job, stored_image)
    if created:
        svc.videos.wake()
    record(request, True)
    return json_response(video_object(stored))


async def get_video(request: Request) -> Response:
    svc = services(request)
    job = await _own(svc, authenticate(request), request.path_params["video_id"])
    running = job.status in (VideoStatus.QUEUED, VideoStatus.IN_PROGRESS)
    return json_response(video_object(job), headers={"openai-poll-after-ms": POLL_AFTER_MS} if running else None)


async def list_videos(request: Request) -> Response:
    svc = services(request)
    key = authenticate(request)
    query = request.query_params
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest("order must be asc or desc.", param="order")
    try:
        limit = int(query.get("limit", "20"))
    except ValueError:
        raise InvalidRequest("limit must be an integer.", param="limit") from None
    if not 1 <= limit <= MAX_LIST:
        raise InvalidRequest(f"limit must be between 1 and {MAX_LIST}.", param="limit")
    jobs, more = await svc.store.list_video_jobs(
        _owner(key), after=query.get("after", ""), limit=limit, descending=order == "desc"
    )
    data = [video_object(j) for j in jobs]
    first, last = (data[0].id, data[-1].id) if data else (None, None)
    return json_response(VideoList(data=data, first_id=first, last_id=last, has_more=more))


async def video_content(request: Request) -> Response:
    svc = services(request)
    job = await _own(svc, authenticate(request), request.path_params["video_id"])
    variant = request.query_params.get("variant", "video")
    if variant not in VARIANTS:
        raise InvalidRequest("variant must be video, thumbnail or spritesheet.", param="variant")
    if job.status != VideoStatus.COMPLETED:
        raise InvalidRequest(
            f"The video is not ready (status {job.status}); retrieve it until it is completed.",
            code="video_not_ready",
        )
    name = {"video": job.media_name, "thumbnail": job.thumbnail_name}.get(variant, "")
    if not name:
        raise NotFound(f"grok.com made no {variant} for this video.", param="variant")
    cached = await cached_media(svc, name)
    headers = {**CONTENT_HEADERS, "Content-Disposition": f'inline; filename="{job.id}{cached.path.suffix}"'}
    return FileResponse(cached.path, media_type=cached.content_type, headers=headers, stat_result=cached.stat)


async def delete_video(request: Request) -> Response:
    svc = services(request)
    job = await _own(svc, authenticate(request), request.path_params["video_id"])
    if not await svc.store.delete_video_job(job.id):
        raise NotFound(f"No video with id {job.id!r}.", param="video_id")
    return json_response(VideoDeleted(job.id))
