from django.urls import path

from apps.collection import api

app_name = "collection-api"

urlpatterns = [
    path("projects/", api.ProjectListApi.as_view(), name="projects"),
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
]
