"""Project setup pages (mounted under /research/ by annotation_site/urls.py)."""

from django.urls import path

from apps.collection import setup_views

app_name = "setup"

urlpatterns = [
    path("projects/new/", setup_views.project_new, name="new"),
    path("projects/<id:project_id>/settings/", setup_views.project_settings, name="settings"),
    path("projects/<id:project_id>/data/", setup_views.project_data, name="data"),
    path("projects/<id:project_id>/data/upload/", setup_views.project_upload, name="upload"),
    path("projects/<id:project_id>/members/", setup_views.project_members, name="members"),
]
