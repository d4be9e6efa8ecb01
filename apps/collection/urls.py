from django.urls import path

from apps.collection import api, setup_api

app_name = "collection-api"

# The raters' routes first: a request walks the patterns in order, and theirs are the hot path.
urlpatterns = [
    path("projects/", setup_api.ProjectsApi.as_view(), name="projects"),
    path(
        "projects/<id:project_id>/assignments/next/",
        api.AssignmentNextApi.as_view(),
        name="assignment-next",
    ),
    path("assignments/<id:assignment_id>/", api.AssignmentDetailApi.as_view(), name="assignment"),
    path(
        "assignments/<id:assignment_id>/judgment/",
        api.JudgmentSubmitApi.as_view(),
        name="judgment-submit",
    ),
    path(
        "assignments/<id:assignment_id>/demonstration/",
        api.DemonstrationSubmitApi.as_view(),
        name="demonstration-submit",
    ),
    path("assignments/<id:assignment_id>/skip/", api.AssignmentSkipApi.as_view(), name="skip"),
    path("projects/<id:project_id>/members/", api.ProjectMembersApi.as_view(), name="members"),
    path("projects/<id:project_id>/", setup_api.ProjectDetailApi.as_view(), name="project"),
    path(
        "projects/<id:project_id>/prompts/",
        setup_api.PromptsUploadApi.as_view(),
        name="prompts-upload",
    ),
    path(
        "projects/<id:project_id>/preferences/",
        setup_api.PreferencesUploadApi.as_view(),
        name="preferences-upload",
    ),
    path("projects/<id:project_id>/gold/", setup_api.GoldUploadApi.as_view(), name="gold-upload"),
    path("imports/<id:import_id>/", setup_api.ImportJobApi.as_view(), name="import"),
]
