from django.contrib import admin
from django.urls import path

from tests.testapp import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("testapp/items/", views.create_item_later, name="create-item-later"),
]
