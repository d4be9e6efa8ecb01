"""Reviewer pages (mounted at /review/ by annotation_site/urls.py)."""

from django.urls import path

from apps.quality import views

app_name = "quality"

urlpatterns = [
    path("", views.index, name="index"),
    path("projects/<id:project_id>/", views.dashboard, name="dashboard"),
    path("projects/<id:project_id>/raters/", views.raters, name="raters"),
    path("projects/<id:project_id>/raters/<id:user_id>/", views.rater_detail, name="rater"),
    path("projects/<id:project_id>/queue/", views.queue, name="queue"),
    path("projects/<id:project_id>/queue/bulk/", views.bulk_review, name="bulk-review"),
    path(
        "projects/<id:project_id>/queue/approve-reliable/",
        views.approve_reliable,
        name="approve-reliable",
    ),
    path("projects/<id:project_id>/refresh/", views.refresh, name="refresh"),
    path("judgments/<id:judgment_id>/", views.judgment_page, name="judgment"),
    path("judgments/<id:judgment_id>/review/", views.judgment_review, name="review"),
    path("raters/<id:user_id>/suspend/", views.rater_suspend, name="suspend"),
    path("raters/<id:user_id>/reinstate/", views.rater_reinstate, name="reinstate"),
]
