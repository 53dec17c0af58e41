"""Request and response models (documented in the OpenAPI schema)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class PostOut(BaseModel):
    id: int = Field(description="post_id")
    text: str
    topic: str


class MoodOut(BaseModel):
    matched: bool = Field(
        description="False when no word of the mood reached content: the feed is then the one without a mood"
    )
    words: list[str] = Field(description="Typed words, phrases or emoji that steer the feed")
    ignored: list[str] = Field(description="Typed words or emoji that matched nothing (common words are not listed)")


class RecommendationResponse(BaseModel):
    exp_group: str = Field(
        description="The arm that served this request (control or test), or interleaved: a team-draft merge of both"
    )
    recommendations: list[PostOut]
    mood: MoodOut | None = Field(
        None, description="How the request's mood was understood (only when one was sent)"
    )
    served_by: str = Field(
        "model",
        description="model: the arm's model; fallback:shed (admission control turned the request away) or "
        "fallback:deadline (the model was late): the most liked posts before the request's day, logged "
        "outside the experiment. The X-Recsys-Served-By header says the same",
    )


class UserOut(BaseModel):
    user_id: int
    gender: int
    age: int
    country: str
    city: str
    exp_group: int
    os: str
    source: str


class FeedAction(BaseModel):
    timestamp: str
    user_id: int
    post_id: int
    action: str
    target: int


class SimilarPost(PostOut):
    similarity: float


class ArmOut(BaseModel):
    name: str
    weight: float
    model_path: str
    model_version: str
    inference: str = Field(
        description="How this arm's model runs: compiled (lleaves) or the library's native predictor"
    )
    shadow_model_path: str | None = Field(None, description="The arm's shadow model folder, if any")
    shadow_model_version: str | None = Field(
        None, description="The shadow model that scores this arm's requests off the response path"
    )


class ExperimentOut(BaseModel):
    name: str
    enabled: bool
    scheme: str
    salt: str
    coverage: float
    arms: list[ArmOut]
    interleave_weight: float = Field(
        0.0,
        description="Share of users whose requests interleave the first two arms (normalised like weights); 0 = off",
    )
    overrides: int = Field(description="Number of forced user overrides")
    loaded_at: str
    feature_store_version: str


class Message(BaseModel):
    detail: str


class ReadyOut(BaseModel):
    ready: bool
    models: dict[str, str]
    feature_store_version: str
    exposure_log: dict
    online_store: dict | None = None  # with online_store: redis, its circuit breaker


class ReloadOut(BaseModel):
    reloaded: bool
    models: dict[str, str]
