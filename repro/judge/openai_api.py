"""A judge behind any OpenAI-compatible chat-completions endpoint (GPT-4 for the paper).

Temperature 0, a timeout per request, retries with exponential backoff on 429, 5xx and dropped or refused
connections (a Retry-After header wins), other 4xx fail at once. Token usage and its price are returned per call
so a run can account for its cost. The API key is read from the environment and never written anywhere.
"""
from __future__ import annotations

import os
import time

import httpx

RETRY_STATUS = {408, 409, 429}
MAX_WAIT_S = 60.0


class JudgeAPIError(RuntimeError):
    pass


class OpenAIChatJudge:
    def __init__(self, spec, sleep=time.sleep):
        self.spec = spec
        self.sleep = sleep
        key = os.environ.get(spec.api_key_env, "")
        if not key and "api.openai.com" in spec.base_url:
            raise JudgeAPIError(f"the judge calls {spec.base_url}: set {spec.api_key_env} to your API key")
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
                problem = f"{type(err).__name__}: {err}"
            else:
                if response.status_code == 200:
                    return self._read(response, attempt)
                problem = f"HTTP {response.status_code}: {response.text[:200]}"
                if response.status_code < 500 and response.status_code not in RETRY_STATUS:
                    raise JudgeAPIError(f"{self.spec.base_url}: {problem} (not retried)")
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
            raise JudgeAPIError(f"{self.spec.base_url}: malformed answer ({err}): {response.text[:200]}") from None
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
