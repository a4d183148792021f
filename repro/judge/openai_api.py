"""A judge behind any OpenAI-compatible chat-completions endpoint (GPT-4 for the paper).

Temperature 0, a timeout per request, retries with exponential backoff on 429, 5xx and dropped or refused
connections (a Retry-After header wins), other 4xx fail at once; 401 and 403 mark the error as one that stops
the whole run (the key or its rights are wrong for every item). Token usage and its price are returned per call so
a run can account for its cost. The API key is read from the environment and never written anywhere: error
messages carry the server's answer with the key and any Authorization / api-key value blanked out.
"""
from __future__ import annotations

import json
import math
import os
import re
import time
from urllib.parse import quote

import httpx

RETRY_STATUS = {408, 409, 429}
AUTH_STATUS = {401, 403}
MAX_WAIT_S = 60.0
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


class OpenAIChatJudge:
    def __init__(self, spec, sleep=time.sleep):
        self.spec = spec
        self.sleep = sleep
        key = os.environ.get(spec.api_key_env, "")
        if not key and "api.openai.com" in spec.base_url:
            raise JudgeAPIError(f"the judge calls {spec.base_url}: set {spec.api_key_env} to your API key", True)
        self._secrets = (key,)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.client = httpx.Client(base_url=spec.base_url.rstrip("/"), headers=headers,
                                   timeout=httpx.Timeout(spec.timeout_s, connect=min(10.0, spec.timeout_s)))

    def identity(self) -> dict:
        return {"kind": "openai", "model": self.spec.model, "temperature": self.spec.temperature,
                "max_tokens": self.spec.max_tokens}

    def complete(self, messages: list[dict]) -> dict:
        body = {"model": self.spec.model, "messages": messages, "temperature": self.spec.temperature,
                "max_tokens": self.spec.max_tokens}
        problem = ""
        for attempt in range(self.spec.max_retries + 1):
            wait = min(self.spec.backoff_s * 2 ** attempt, MAX_WAIT_S)
            try:
                response = self.client.post("/chat/completions", json=body)
            except httpx.TransportError as err:  # refused, reset, dropped mid-answer, timed out
                problem = redact(f"{type(err).__name__}: {err}", self._secrets)
            else:
                if response.status_code == 200:
                    return self._read(response, attempt)
                problem = f"HTTP {response.status_code}: {redact(response.text, self._secrets)[:200]}"
                if response.status_code < 500 and response.status_code not in RETRY_STATUS:
                    auth = response.status_code in AUTH_STATUS
                    raise JudgeAPIError(f"{self.spec.base_url}: {problem} (not retried"
                                        + ("; the key or its permissions are refused" if auth else "") + ")", auth)
                wait = _retry_after(response, wait)
            if attempt < self.spec.max_retries:
                self.sleep(wait)
        raise JudgeAPIError(f"{self.spec.base_url}: gave up after {self.spec.max_retries + 1} attempts; last: "
                            f"{problem}")

    def _read(self, response: httpx.Response, attempt: int) -> dict:
        """The answer of a paid call. Its text must be a string; an answer that is not (null, a number, a list) is
        returned marked `unusable` so it is recorded as paid and not bought again unasked. Usage counts must be
        non-negative whole numbers; absent or invalid ones leave the cost unknown (`usd` None), and said so."""
        try:
            payload = response.json()
            message = payload["choices"][0]["message"]
            text = message["content"]
        except (ValueError, KeyError, IndexError, TypeError) as err:
            raise JudgeAPIError(f"{self.spec.base_url}: malformed answer ({err}): "
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


def _retry_after(response: httpx.Response, default: float) -> float:
    """The server's Retry-After in seconds, where it is a finite number >= 0; otherwise our own backoff."""
    try:
        value = float(response.headers.get("retry-after", default))
    except ValueError:
        return default
    return min(value, MAX_WAIT_S) if math.isfinite(value) and value >= 0 else default
