"""URLs of the Django Tasks API views, for servers started with tests.testapp.tasks_settings."""

from __future__ import annotations

from django.urls import path

from tests.testapp import dviews

urlpatterns = [
    path("dtasks/items/", dviews.enqueue_item, name="dtasks-enqueue-item"),
    path("dtasks/results/<str:result_id>/", dviews.show_result, name="dtasks-result"),
]
