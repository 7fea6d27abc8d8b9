"""Generators: the offline template (default) and an LLM over an OpenAI-compatible chat API,
off by default. The LLM writer has a deadline; on a timeout, an error or an answer it
cannot use it falls back to the template, so a run never fails for want of a writer.
Whatever either returns goes through the drafting rules (`finalise`)."""

from __future__ import annotations

import json
import logging

import httpx

from hopcast_content.config import ContentSettings
from hopcast_content.domain.drafting import (
    Draft,
    DraftRequest,
    Generator,
    TemplateGenerator,
    char_limit,
    finalise,
    hashtags_for,
)
from hopcast_shared.text_rules import rule_for
from hopcast_shared.text_rules.descriptions import describe

log = logging.getLogger(__name__)


class LlmGenerator:
    name = "llm"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 15.0,
        fallback: TemplateGenerator | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._model = model
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = timeout_s
        self._fallback = fallback or TemplateGenerator()
        self._transport = transport
        self.fallbacks = 0

    def _prompt(self, request: DraftRequest) -> list[dict[str, str]]:
        v, m = request.voice, request.material
        # Each platform's limit as its own rule counts (X's weights, Mastodon's links, Bluesky's
        # graphemes and bytes), the rule every drafted text is then cut to.
        limits = "; ".join(f"{p.value}: {describe(rule_for(p))}" for p in request.platforms)
        system = (
            f"You write social media posts for the brand {v.name}. Tone: {', '.join(v.tone) or 'neutral'}. "
            f"Audience: {v.target_audience or 'general'}. Use words like: {', '.join(v.words_to_use) or '-'}. "
            f"Never use: {', '.join(v.words_to_avoid) or '-'}. Emoji: {v.emoji_usage or 'moderate'}. "
            f"Call to action: {v.cta_style or 'soft'}. Answer with JSON only: "
            '{"content": "...", "hashtags": ["#..."]}.'
        )
        user = (
            f"Angle: {request.angle.value} ({request.angle_reason}). The post with its hashtags goes to each of"
            f" these platforms, counted by that platform's own rule: {limits}. Write it to fit every one of"
            f" them, within {char_limit(request.platforms)} characters in all; a longer post is cut.\n"
            f"Material title: {m.title or '-'}\nMaterial: {m.body}"
        )
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    async def draft(self, request: DraftRequest) -> Draft:
        try:
            async with httpx.AsyncClient(timeout=self._timeout, transport=self._transport) as client:
                response = await client.post(
                    self._url,
                    json={
                        "model": self._model,
                        "messages": self._prompt(request),
                        "temperature": 0.7,
                        "response_format": {"type": "json_object"},
                    },
                    headers=self._headers,
                )
            response.raise_for_status()
            text = response.json()["choices"][0]["message"]["content"]
            answer = json.loads(text)
            content = answer["content"]
            tags = answer.get("hashtags") or list(hashtags_for(request.voice, request.material, request.platforms))
            if not isinstance(content, str) or not content.strip() or not isinstance(tags, list):
                raise ValueError("the answer has no usable content")
            draft = Draft(content, tuple(str(t) for t in tags), request.material.media, ("llm",))
            return finalise(draft, request)
        except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as exc:
            self.fallbacks += 1
            log.warning("LLM generator failed (%s: %s); using the template", type(exc).__name__, exc)
            fallback = self._fallback.write(request)
            return Draft(fallback.content, fallback.hashtags, fallback.media, ("template-fallback",))


def make_generator(settings: ContentSettings) -> Generator:
    if settings.generator == "llm":
        key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
        return LlmGenerator(settings.llm_api_url, settings.llm_model, api_key=key, timeout_s=settings.llm_timeout_s)
    return TemplateGenerator()
