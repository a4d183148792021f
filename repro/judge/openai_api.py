"""A judge behind any OpenAI-compatible chat-completions endpoint (GPT-4 for the paper), through the openai SDK.

Temperature 0 and a timeout per request; the SDK retries 408, 409, 429, 5xx and dropped or refused connections
with exponential backoff and jitter (0.5 s doubling to 8 s, less up to 25%), honouring `retry-after-ms` and
`Retry-After` in seconds or as a date (up to 120 s); other 4xx fail at once. 401 and 403 mark the error as one that
stops the whole run (the key or its rights are wrong for every item). Token usage and its price are returned per
call so a run can account for its cost. The endpoint is the config's `base_url`, else OPENAI_BASE_URL, else
OpenAI's. The API key is read from the environment and never written anywhere: error messages carry the server's
answer with the key and any Authorization / api-key value blanked out.
"""
from __future__ import annotations

import json
import os
import re
from urllib.parse import quote

import httpx

OPENAI_URL = "https://api.openai.com/v1"
AUTH_STATUS = {401, 403}
# header values a server or proxy may echo back in an error body
_ECHOED_SECRET = re.compile(
    r"(?i)((?:authorization|api[-_]?key|x-api-key)[\"']?\s*[:=]\s*[\"']?)(bearer\s+)?[^\s\"',}]+")
_BEARER = re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+")


class JudgeAPIError(RuntimeError):
    def __init__(self, message: str, stops_run: bool = False):
        super().__init__(message)
        self.stops_run = stops_run  # authentication or permission: no other item can succeed either


def secret_forms(secret: str) -> tuple[str, ...]:
    """A secret as a server may echo it: as is, JSON-escaped (a key with `"` or `\\`), URL-encoded."""
    return tuple(dict.fromkeys(f for f in (secret, json.dumps(secret)[1:-1], quote(secret, safe="")) if f))


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """`text` without the given secrets (in every escaped form) and without any echoed Authorization / api-key
    header value. Redact before cutting a text short: a cut through a secret would leave its prefix."""
    for secret in sorted({f for s in secrets if s for f in secret_forms(s)}, key=len, reverse=True):
        text = text.replace(secret, "[redacted]")
    text = _ECHOED_SECRET.sub(lambda m: m.group(1) + "[redacted]", text)
    return _BEARER.sub("Bearer [redacted]", text)


def endpoint(spec) -> str:
    """The config's base_url, else OPENAI_BASE_URL (as the openai SDK and alpaca_eval read it), else OpenAI's."""
    return (spec.base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_URL).rstrip("/")


class OpenAIChatJudge:
    def __init__(self, spec):
        import openai

        self.spec = spec
        self.base_url = endpoint(spec)
        key = os.environ.get(spec.api_key_env, "")
        if not key and "api.openai.com" in self.base_url:
            raise JudgeAPIError(f"the judge calls {self.base_url}: set {spec.api_key_env} to your API key", True)
        self._secrets = (key,)
        # a local server may want no key; the SDK insists on one and sends it as a bearer token
        self.client = openai.OpenAI(base_url=self.base_url, api_key=key or "no-key", max_retries=spec.max_retries,
                                    timeout=httpx.Timeout(spec.timeout_s, connect=min(10.0, spec.timeout_s)))

    def identity(self) -> dict:
        return {"kind": "openai", "model": self.spec.model, "temperature": self.spec.temperature,
                "max_tokens": self.spec.max_tokens}

    def complete(self, messages: list[dict]) -> dict:
        import openai

        try:
            raw = self.client.chat.completions.with_raw_response.create(
                model=self.spec.model, messages=messages, temperature=self.spec.temperature,
                max_tokens=self.spec.max_tokens)
        except openai.APIStatusError as err:
            status = err.response.status_code
            problem = f"HTTP {status}: {redact(err.response.text, self._secrets)[:200]}"
            if status < 500 and status not in (408, 409, 429):
                auth = status in AUTH_STATUS
                refused = "; the key or its permissions are refused" if auth else ""
                raise JudgeAPIError(f"{self.base_url}: {problem} (not retried{refused})", auth) from None
            raise self._gave_up(problem) from None
        except openai.APIConnectionError as err:  # refused, reset, dropped mid-answer, timed out
            cause = err.__cause__ or err
            raise self._gave_up(redact(f"{type(cause).__name__}: {cause}", self._secrets)) from None
        return self._read(raw.http_response, getattr(raw, "retries_taken", 0))

    def _gave_up(self, problem: str) -> JudgeAPIError:
        return JudgeAPIError(f"{self.base_url}: gave up after {self.spec.max_retries + 1} attempts; last: {problem}")

    def _read(self, response: httpx.Response, attempt: int) -> dict:
        """The answer of a paid call. Its text must be a string; an answer that is not (null, a number, a list) is
        returned marked `unusable` so it is recorded as paid and not bought again unasked. Usage counts must be
        non-negative whole numbers; absent or invalid ones leave the cost unknown (`usd` None), and said so."""
        try:
            payload = response.json()
            message = payload["choices"][0]["message"]
            text = message["content"]
        except (ValueError, KeyError, IndexError, TypeError) as err:
            raise JudgeAPIError(f"{self.base_url}: malformed answer ({err}): "
                                f"{redact(response.text, self._secrets)[:200]}") from None
        usage = payload.get("usage") if isinstance(payload.get("usage"), dict) else {}
        tokens = {field: usage.get(field) for field in ("prompt_tokens", "completion_tokens")}
        known = all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in tokens.values())
        cost = (tokens["prompt_tokens"] * self.spec.usd_per_1m_input_tokens
                + tokens["completion_tokens"] * self.spec.usd_per_1m_output_tokens) / 1e6 if known else None
        answer = {"text": text if isinstance(text, str) else "", "model": str(payload.get("model", self.spec.model)),
                  "attempts": attempt + 1, "usd": cost,
                  **{k: (v if known else None) for k, v in tokens.items()}}
        if not known:
            answer["cost_unknown"] = f"usage not reported as token counts: {json.dumps(usage)[:120]}"
        if not isinstance(text, str) or not text.strip():
            answer["unusable"] = f"the answer's content is {json.dumps(text)[:80]}, not a judgment"
        return answer

    def close(self) -> None:
        self.client.close()

