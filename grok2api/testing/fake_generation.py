"""The media scenarios of an E1 answer: image generation (trace C) and video generation (trace D).

Each generated asset is registered on the state so that E5 serves it to its owner; each video is recorded.
"""

from __future__ import annotations

from .fake_accounts import FakeAccount
from .fake_http import JsonDict
from .fake_script import Script, model_response
from .fake_state import FakeState
from .fake_video import VideoOrder, VideoRecord

VIDEO_STEPS = (1, 5, 25, 50, 75, 95)
VIDEO_CLOSING = "I generated a video"


def draw_phase(state: FakeState, script: Script, account: FakeAccount) -> list[str]:
    """Trace C: a short token, imageAttachmentInfo, progress frames per image, then the final urls."""
    chat = script.chat
    image_ids = [state.new_id() for _ in range(chat.image_count)]
    moderated = chat.image_count - 1 if chat.markers.has("draw-moderated") else -1
    base = f"users/{account.user_id}/generated"
    script.token("Generating images…")
    script.frame(
        {"imageAttachmentInfo": {"imageUuids": image_ids}, "isThinking": False, "responseId": script.response_id}
    )
    for progress in (0, 50, 100):
        for index, image_id in enumerate(image_ids):
            frame: JsonDict = {
                "imageId": image_id,
                "imageIndex": index,
                "progress": progress,
                "moderated": index == moderated,
                "isFinal": progress == 100,
            }
            if index != moderated and progress:
                part = "" if progress == 100 else "-part-0"
                frame["imageUrl"] = f"{base}/{image_id}{part}/image.jpg"
                state.register_asset(frame["imageUrl"], account.token)
            script.frame(
                {"streamingImageGenerationResponse": frame, "isThinking": False, "responseId": script.response_id}
            )
    return [f"{base}/{image_id}/image.jpg" for i, image_id in enumerate(image_ids) if i != moderated]


def video_phase(state: FakeState, script: Script, account: FakeAccount, order: VideoOrder) -> VideoRecord:
    """Trace D: progress 1..95 (mid-stream faults strike after 25), then 100 with the url (or moderated, or the url
    in fileAttachments). The generation is recorded on the state."""
    markers = script.chat.markers
    video_id = state.new_id()
    record = VideoRecord(account.token, video_id, order, moderated=markers.has("video-moderated"))
    state.add_video(record)
    base = {"videoId": video_id, "videoPostId": video_id}
    for progress in VIDEO_STEPS:
        script.frame({"streamingVideoGenerationResponse": {**base, "progress": progress}})
        if progress == 25:
            script.mid_stream()
    url = f"users/{account.user_id}/generated/{video_id}/generated_video.mp4"
    thumb = f"users/{account.user_id}/generated/{video_id}/preview_image.jpg"
    done: JsonDict = {**base, "progress": 100, "assetId": video_id, "moderated": record.moderated}
    if not record.moderated:
        state.register_asset(url, account.token)
        state.register_asset(thumb, account.token)
        if not markers.has("video-in-attachments"):
            done.update(videoUrl=url, thumbnailImageUrl=thumb)
    script.frame({"streamingVideoGenerationResponse": done})
    if markers.has("video-in-attachments") and script.fault_name != "no-model-response":
        # The closing token below carries the text, so the message anticipates it.
        script.frame(model_response(script, fileAttachments=[url], message=VIDEO_CLOSING))
    script.token(VIDEO_CLOSING, isSoftStop=True)
    return record
