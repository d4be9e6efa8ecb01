"""API endpoints of rater quality (mounted under /api/ by annotation_site/urls.py)."""

from django.urls import path

from apps.quality import api

app_name = "quality-api"

urlpatterns = [
    path("projects/<id:project_id>/quality/", api.ProjectQualityApi.as_view(), name="quality"),
    path(
        "projects/<id:project_id>/quality/refresh/",
        api.ProjectQualityRefreshApi.as_view(),
        name="quality-refresh",
    ),
    path("projects/<id:project_id>/raters/", api.ProjectRatersApi.as_view(), name="raters"),
    path("projects/<id:project_id>/overlap/", api.ProjectOverlapApi.as_view(), name="overlap"),
    path(
        "projects/<id:project_id>/judgments/review/",
        api.JudgmentBulkReviewApi.as_view(),
        name="judgments-review",
    ),
    path(
        "projects/<id:project_id>/judgments/approve-reliable/",
        api.ApproveReliableApi.as_view(),
        name="approve-reliable",
    ),
    path("judgments/<id:judgment_id>/", api.JudgmentDetailApi.as_view(), name="judgment"),
    path("judgments/<id:judgment_id>/review/", api.JudgmentReviewApi.as_view(), name="review"),
    path("raters/<id:user_id>/suspend/", api.RaterSuspendApi.as_view(), name="suspend"),
    path("raters/<id:user_id>/reinstate/", api.RaterReinstateApi.as_view(), name="reinstate"),
    path("tasks/<id:task_id>/consensus/", api.TaskConsensusApi.as_view(), name="consensus"),
]
