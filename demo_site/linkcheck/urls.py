"""URLs of the link checker and of the fake third-party API it calls by default."""

from __future__ import annotations

from django.urls import path

from demo_site.linkcheck import fakeapi, views

app_name = "linkcheck"

urlpatterns = [
    path("", views.home, name="home"),
    path("jobs.json", views.recent_status, name="recent-status"),
    path("jobs/<int:pk>/", views.job, name="job"),
    path("jobs/<int:pk>.json", views.job_status, name="job-status"),
    path("fake-api/check", fakeapi.check, name="fake-api-check"),
]
