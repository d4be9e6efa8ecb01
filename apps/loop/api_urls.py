"""API endpoints of this app (mounted under /api/ by annotation_site/urls.py)."""

from django.urls import path

from apps.loop import api, export_api

app_name = "loop-api"

urlpatterns = [
    path("projects/<id:project_id>/rounds/", api.RoundsApi.as_view(), name="rounds"),
    path("projects/<id:project_id>/policies/", api.PolicyLineageApi.as_view(), name="policies"),
    path(
        "projects/<id:project_id>/export/",
        export_api.ProjectExportApi.as_view(),
        name="project-export",
    ),
    path("rounds/<id:round_id>/", api.RoundDetailApi.as_view(), name="round"),
    path("rounds/<id:round_id>/cancel/", api.RoundCancelApi.as_view(), name="round-cancel"),
    path("rounds/<id:round_id>/retry/", api.RoundRetryApi.as_view(), name="round-retry"),
    path("rounds/<id:round_id>/move-on/", api.RoundMoveOnApi.as_view(), name="round-move-on"),
    path("snapshots/<id:snapshot_id>/", api.SnapshotDetailApi.as_view(), name="snapshot"),
    path(
        "snapshots/<id:snapshot_id>/files/<str:name>",
        api.SnapshotFileApi.as_view(),
        name="snapshot-file",
    ),
]
