"""The `openai_compatible` adapter: services that speak OpenAI Images (the 003 and 004
seeds), with their habits.

- Each upstream accepts its own subset of fields and may reject the rest
  (`unknown_parameter`), so only the fields in `channel.fields` are sent (default:
  `DEFAULT_FIELDS`). `response_format` is not among the defaults: several resellers refuse it
  for gpt-image models, and results come back as url or b64 either way.
- Results come as a URL (absolute, relative, `data:`, or a list of them) or b64, with
  `b64_json: ""` beside a URL on some (004); `openai_wire.parse_answer` takes the non-empty one.
- Variations go to multipart /images/variations (one `image` file) with those of
  `openai_wire.variation_body`'s fields the channel allows; the image is not checked here: a
  reseller may accept more than OpenAI's square PNG, and says so itself when it does not.
- Reference images go, as the 004 seed documents, in a JSON `image` array of data URLs on
  /images/generations; only a masked edit (or a channel whose `fields` leave out `image`)
  goes to multipart /images/edits.
"""

from __future__ import annotations

from typing import Any

from imagegate.domain.catalog import ModelSpec
from imagegate.providers import openai_wire as wire
from imagegate.providers.base import ProviderJob
from imagegate.providers.openai import OpenAIProvider, PreparedCall

DEFAULT_FIELDS = frozenset({
    "model", "prompt", "n", "size", "quality", "style", "background", "output_format",
    "output_compression", "moderation", "user", "image",
})
# Always sent: without them there is no request.
_REQUIRED = frozenset({"model", "prompt"})


class OpenAICompatibleProvider(OpenAIProvider):
    @property
    def fields(self) -> frozenset[str]:
        configured = self.channel.fields
        return DEFAULT_FIELDS if configured is None else frozenset(configured) | _REQUIRED

    def prepare(self, job: ProviderJob, upstream_model: str,
                spec: ModelSpec | None) -> PreparedCall:
        allowed = self.fields
        if job.request.operation == "variation":
            body = wire.variation_body(job.request, upstream_model, spec)
            body = {k: v for k, v in body.items() if k in allowed or k == "model"}
            return PreparedCall(self.client.post_form, "/images/variations",
                                wire.edit_form(body, job.references[:1], None,
                                               image_field="image"))
        body = wire.generation_body(job.request, upstream_model, spec)
        body = self._allowed(body, allowed)
        if not job.references:
            return PreparedCall(self.client.post_json, "/images/generations", body)
        if job.mask is None and "image" in allowed:
            body["image"] = [wire.data_url(ref) for ref in job.references]
            return PreparedCall(self.client.post_json, "/images/generations", body)
        body = {k: v for k, v in body.items() if k in wire.EDIT_FIELDS}
        return PreparedCall(self.client.post_form, "/images/edits",
                     wire.edit_form(body, job.references, job.mask))

    @staticmethod
    def _allowed(body: dict[str, Any], allowed: frozenset[str]) -> dict[str, Any]:
        return {k: v for k, v in body.items() if k in allowed}
