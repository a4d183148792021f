"""A judge behind any OpenAI-compatible chat-completions endpoint (GPT-4 for the paper).

Temperature 0, a timeout per request, retries with exponential backoff on 429, 5xx and dropped or refused
connections (a Retry-After header wins), other 4xx fail at once; 401 and 403 mark the error as one that stops
the whole run (the key or its rights are wrong for every item). Token usage and its price are returned per call so
a run can account for its cost. The API key is read from the environment and never written anywhere: error
messages carry the server's answer with the key and any Authorization / api-key value blanked out.
"""
from __future__ import annotations

import os
import re
import time

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


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """`text` without the given secrets and without any echoed Authorization / api-key header value."""
    for secret in secrets:
        if secret:
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
                problem = f"HTTP {response.status_code}: {redact(response.text[:200], self._secrets)}"
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
        try:
            payload = response.json()
            text = payload["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as err:
            raise JudgeAPIError(f"{self.spec.base_url}: malformed answer ({err}): "
                                f"{redact(response.text[:200], self._secrets)}") from None
        usage = payload.get("usage") or {}
        prompt_tokens, completion_tokens = usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)
        cost = (prompt_tokens * self.spec.usd_per_1m_input_tokens
                + completion_tokens * self.spec.usd_per_1m_output_tokens) / 1e6
        return {"text": text or "", "model": payload.get("model", self.spec.model), "attempts": attempt + 1,
                "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "usd": cost}

    def close(self) -> None:
        self.client.close()


def _retry_after(response: httpx.Response, default: float) -> float:
    try:
        return min(float(response.headers.get("retry-after", default)), MAX_WAIT_S)
    except ValueError:
        return default
