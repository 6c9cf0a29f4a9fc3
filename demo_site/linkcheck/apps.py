"""The demo's one app: check links through a slow third-party API, one taskq task per link."""

from __future__ import annotations

from django.apps import AppConfig


class LinkcheckConfig(AppConfig):
    name = "demo_site.linkcheck"
    label = "linkcheck"
    verbose_name = "Link checker"
