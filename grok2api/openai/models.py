"""``GET /v1/models`` and ``GET /v1/models/{id}``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..edge import authenticate, json_response
from ..errors import ModelNotFound
from ..grok.catalog import MODELS
from .schemas import ModelCard, ModelList


def _card(spec_id: str) -> ModelCard:
    spec = MODELS[spec_id]
    return ModelCard(
        id=spec.id,
        created=1_735_689_600,  # fixed, so clients can cache the list
        display_name=spec.display_name,
        description=spec.description,
        raw_model_path=f"{spec.model_name}/{spec.model_mode}",
        default_max_output_tokens=spec.max_output_tokens,
    )


async def list_models(request: Request) -> Response:
    authenticate(request)
    return json_response(ModelList(data=[_card(m) for m in MODELS]))


async def get_model(request: Request) -> Response:
    authenticate(request)
    model_id = request.path_params["model_id"]
    if model_id not in MODELS:
        raise ModelNotFound(f"The model {model_id!r} does not exist.", param="model")
    return json_response(_card(model_id))
