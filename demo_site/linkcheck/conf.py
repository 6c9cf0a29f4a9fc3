"""The link checker's settings, read lazily with their defaults in one place."""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings

DEFAULTS: dict[str, Any] = {
    "THIRD_PARTY_API_URL": "http://127.0.0.1:8000/fake-api/",
    "THIRD_PARTY_API_TIMEOUT": 10.0,
    "FAKE_API": True,
    "FAKE_API_LATENCY": 1.0,
    "FAKE_API_FAILURE_RATE": 0.1,
}


def _get(name: str) -> Any:
    return getattr(django_settings, name, DEFAULTS[name])


class Settings:
    """Typed view of the settings, so override_settings applies on the next access."""

    @property
    def api_url(self) -> str:
        return str(_get("THIRD_PARTY_API_URL"))

    @property
    def api_timeout(self) -> float:
        return float(_get("THIRD_PARTY_API_TIMEOUT"))

    @property
    def fake_api(self) -> bool:
        return bool(_get("FAKE_API"))

    @property
    def fake_latency(self) -> float:
        return float(_get("FAKE_API_LATENCY"))

    @property
    def fake_failure_rate(self) -> float:
        return float(_get("FAKE_API_FAILURE_RATE"))


settings = Settings()
