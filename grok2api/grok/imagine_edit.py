"""An Imagine image edit: upload the images (upload v2 with Imagine's ``file_source``), then POST
``conversations/new`` with the ``imagine-image-edit`` body from ``/imagine``. The NDJSON answer's
``streamingImageGenerationResponse`` frames are the edited images (``ImageProgress`` with their ``url``,
``final`` ones last), and ``generatedImageUrls`` may list them again (``Images``)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from ..settings import RuntimeSettings
from .chat import Attachment, upload_all
from .client import IMAGINE_UPLOAD_SOURCE, GrokClient
from .events import Event

EDIT_MODEL = "imagine-image-edit"


def edit_payload(prompt: str, asset_ids: Sequence[str], aspect_ratio: str | None = None) -> dict[str, Any]:
    image_to_image: dict[str, Any] = {"prompt": prompt, "inputAssets": list(asset_ids)}
    if aspect_ratio:
        image_to_image["aspectRatio"] = aspect_ratio
    return {
        "modelName": EDIT_MODEL,
        "message": prompt,
        "enableImageStreaming": True,
        "enableSideBySide": True,
        "sendFinalMetadata": True,
        "mediaGenInput": {"imageToImage": image_to_image},
    }


@dataclass(frozen=True)
class ImageEditRequest:
    """Edit ``images`` as ``prompt`` says (optionally into ``aspect_ratio``)."""

    prompt: str
    images: Sequence[Attachment]
    aspect_ratio: str | None = None

    def stream(
        self, client: GrokClient, token: str, user_id: str, settings: RuntimeSettings
    ) -> AsyncGenerator[list[Event], None]:
        return stream_edit(client, token, self, settings)


async def stream_edit(
    client: GrokClient, token: str, request: ImageEditRequest, settings: RuntimeSettings
) -> AsyncGenerator[list[Event], None]:
    """The edit's events; the uploads happen first, with the account that runs the edit (an upload is
    visible to its owner only). A refused image raises UploadRejected."""
    uploaded = await upload_all(client, token, request.images, settings, source=IMAGINE_UPLOAD_SOURCE)
    payload = edit_payload(request.prompt, [file_id for file_id, _ in uploaded], request.aspect_ratio)
    answer = client.stream_chat(token, payload, settings, referer=f"{settings.upstream_url}/imagine")
    async with aclosing(answer):  # closing this generator closes the HTTP answer at once
        async for batch in answer:
            yield batch
