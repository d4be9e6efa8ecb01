"""API endpoints of this app (mounted under /api/ by annotation_site/urls.py)."""

urlpatterns: list = []
