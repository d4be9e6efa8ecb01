"""Labeler pages (mounted at the site root)."""

urlpatterns: list = []
