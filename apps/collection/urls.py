from django.urls import path

from apps.collection import api

app_name = "collection-api"

urlpatterns = [
    path("projects/", api.ProjectListApi.as_view(), name="projects"),
    path("projects/<int:project_id>/members/", api.ProjectMembersApi.as_view(), name="members"),
    path(
        "projects/<int:project_id>/assignments/next/",
        api.AssignmentNextApi.as_view(),
        name="assignment-next",
    ),
    path("assignments/<int:assignment_id>/", api.AssignmentDetailApi.as_view(), name="assignment"),
    path(
        "assignments/<int:assignment_id>/judgment/",
        api.JudgmentSubmitApi.as_view(),
        name="judgment-submit",
    ),
    path(
        "assignments/<int:assignment_id>/demonstration/",
        api.DemonstrationSubmitApi.as_view(),
        name="demonstration-submit",
    ),
    path("assignments/<int:assignment_id>/skip/", api.AssignmentSkipApi.as_view(), name="skip"),
]
