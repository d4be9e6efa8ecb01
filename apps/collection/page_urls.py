"""Labeler pages (mounted at the site root)."""

from django.urls import path

from apps.collection import views

app_name = "collection"

urlpatterns = [
    path("", views.home, name="home"),
    path("projects/<id:project_id>/work/", views.project_work, name="work"),
    path("projects/<id:project_id>/guidelines/", views.project_guidelines, name="guidelines"),
    path("assignments/<id:assignment_id>/", views.assignment_page, name="assignment"),
]
