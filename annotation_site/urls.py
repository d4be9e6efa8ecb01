from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from apps.accounts.api import LogoutApi, TokenCreateApi
from apps.accounts.throttling import login_page_throttled
from apps.core.views import healthz

# The admin's login is throttled like the site's (apps/accounts/throttling.py).
admin.site.login = login_page_throttled(admin.site.login)

api_patterns = [
    path("auth/token/", TokenCreateApi.as_view(), name="api-token"),
    path("auth/logout/", LogoutApi.as_view(), name="api-logout"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include("apps.collection.urls")),
    path("", include("apps.quality.api_urls")),
    path("", include("apps.loop.api_urls")),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path(
        "accounts/login/",
        login_page_throttled(auth_views.LoginView.as_view()),
        name="login",
    ),
    path("accounts/", include("django.contrib.auth.urls")),
    path("healthz", healthz, name="healthz"),
    path("api/", include(api_patterns)),
    path("review/", include("apps.quality.urls")),
    path("research/", include("apps.collection.setup_urls")),
    path("research/", include("apps.loop.urls")),
    path("", include("apps.collection.page_urls")),
]

handler400 = "apps.core.views.bad_request"
handler403 = "apps.core.views.permission_denied"
handler404 = "apps.core.views.not_found"
handler500 = "apps.core.views.server_error"
