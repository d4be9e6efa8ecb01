"""Pages of this app (mounted at /research/ by annotation_site/urls.py)."""

from django.urls import path

from apps.loop import views

app_name = "loop"

urlpatterns = [
    path("", views.index, name="index"),
    path("projects/<id:project_id>/rounds/start/", views.round_start, name="round-start"),
    path("projects/<id:project_id>/lineage/", views.lineage, name="lineage"),
    path(
        "projects/<id:project_id>/collection/",
        views.collection_settings,
        name="collection-settings",
    ),
    path("rounds/<id:round_id>/", views.round_page, name="round"),
    path("rounds/<id:round_id>/cancel/", views.round_cancel, name="round-cancel"),
    path("rounds/<id:round_id>/retry/", views.round_retry, name="round-retry"),
    path("rounds/<id:round_id>/move-on/", views.round_move_on, name="round-move-on"),
    path("snapshots/<id:snapshot_id>/", views.snapshot_page, name="snapshot"),
    path(
        "snapshots/<id:snapshot_id>/files/<str:name>",
        views.snapshot_download,
        name="snapshot-file",
    ),
]
