"""The form a visitor fills in: links to check, and how badly the fake API should behave."""

from __future__ import annotations

import math
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, URLValidator

from demo_site.linkcheck.conf import settings
from demo_site.linkcheck.fakeapi import JITTER_HIGH, MAX_LATENCY

MAX_LINKS = 10


def max_latency() -> float:
    """The longest fake-API latency whose every answer still comes within the client's timeout."""
    return min(MAX_LATENCY, math.floor(settings.api_timeout / JITTER_HIGH * 10) / 10)


class CheckForm(forms.Form):
    urls = forms.CharField(
        label="Links to check, one per line",
        widget=forms.Textarea(
            attrs={"rows": 4, "placeholder": "https://example.com/\nhttps://nowhere.invalid/"}
        ),
    )
    latency = forms.FloatField(
        label="Fake API latency (seconds)",
        required=False,
        min_value=0,
    )
    failure_rate = forms.IntegerField(
        label="Fake API failure rate (%)",
        required=False,
        min_value=0,
        max_value=100,
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if settings.fake_api:
            latency = self.fields["latency"]
            limit = max_latency()
            latency.validators.append(MaxValueValidator(limit))
            latency.widget.attrs["max"] = f"{limit:g}"
            latency.help_text = (
                f"At most {limit:g} s: the site waits {settings.api_timeout:g} s for an answer and the "
                "fake API takes up to half as long again as asked, so a longer delay could only time out."
            )
            latency.widget.attrs["placeholder"] = f"{settings.fake_latency:g}"
            self.fields["failure_rate"].widget.attrs["placeholder"] = f"{settings.fake_failure_rate:.0%}"
        else:
            # A real API knows nothing of these knobs.
            del self.fields["latency"], self.fields["failure_rate"]

    def clean_urls(self) -> list[str]:
        # The field strips the text and requires some, so at least one line has a link.
        links = [line.strip() for line in self.cleaned_data["urls"].splitlines() if line.strip()]
        if len(links) > MAX_LINKS:
            raise ValidationError(f"Check at most {MAX_LINKS} links at a time, not {len(links)}.")
        validate = URLValidator(schemes=["http", "https"])
        bad = []
        for link in links:
            try:
                validate(link)
            except ValidationError:
                bad.append(link)
        if bad:
            raise ValidationError("Not an http(s) link: %(links)s", params={"links": ", ".join(bad)})
        return list(dict.fromkeys(links))  # the same link twice is one check

    def simulation(self) -> dict[str, float]:
        """The fake API's knobs the visitor set, as keyword arguments of check_link."""
        knobs: dict[str, float] = {}
        if self.cleaned_data.get("latency") is not None:
            knobs["latency"] = self.cleaned_data["latency"]
        if self.cleaned_data.get("failure_rate") is not None:
            knobs["failure_rate"] = self.cleaned_data["failure_rate"] / 100
        return knobs
