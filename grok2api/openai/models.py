"""``GET /v1/models`` and ``GET /v1/models/{id}``: grok.com's modes under their public ids, the
earlier ids as aliases (each says what it stands for), and modes grok.com added since."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..edge import authenticate, json_response, services
from ..errors import ModelNotFound
from ..grok.catalog import ModelSpec
from .schemas import ModelCard, ModelList


def _card(spec: ModelSpec) -> ModelCard:
    return ModelCard(
        id=spec.id,
        created=1_735_689_600,  # fixed, so clients can cache the list
        display_name=spec.display_name,
        description=spec.description,
        raw_model_path=spec.mode,
        mode=spec.mode,
        min_tier=spec.min_tier,
        alias_of=spec.alias_of,
        default_max_output_tokens=spec.max_output_tokens,
    )


async def list_models(request: Request) -> Response:
    authenticate(request)
    return json_response(ModelList(data=[_card(s) for s in services(request).catalog.models()]))


async def get_model(request: Request) -> Response:
    authenticate(request)
    model_id = request.path_params["model_id"]
    spec = services(request).catalog.find(model_id)
    if spec is None:
        raise ModelNotFound(f"The model {model_id!r} does not exist.", param="model")
    return json_response(_card(spec))
