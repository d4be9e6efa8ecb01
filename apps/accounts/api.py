"""Log in and out through the API: a token per login, throttled, revocable."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import authenticate, logout
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts import throttling, tokens
from apps.core.errors import DomainError, InvalidInput


class TooManyLogins(DomainError):
    status_code = 429
    code = "throttled"


class TokenCreateApi(APIView):
    """`{username, password}` → a new token. Each login makes its own token, which expires
    after API_TOKEN_IDLE_SECONDS unused; failed logins are throttled per username and per
    address (429 with Retry-After)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    class InputSerializer(serializers.Serializer):
        username = serializers.CharField(max_length=150, trim_whitespace=False)
        password = serializers.CharField(max_length=4096, trim_whitespace=False)

    class OutputSerializer(serializers.Serializer):
        token = serializers.CharField()
        idle_expiry_seconds = serializers.IntegerField()

    @extend_schema(
        request=InputSerializer,
        responses={
            200: OutputSerializer,
            429: OpenApiResponse(description="Too many failed logins; see Retry-After."),
        },
    )
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        username = serializer.validated_data["username"]
        address = throttling.client_address(request)
        wait = throttling.login_wait_seconds(username=username, address=address)
        if wait:
            response = Response(
                {"detail": throttling.too_many_message(wait), "code": "throttled"},
                status=status.HTTP_429_TOO_MANY_REQUESTS,
            )
            response["Retry-After"] = str(wait)
            return response
        user = authenticate(
            request._request, username=username, password=serializer.validated_data["password"]
        )
        if user is None:
            throttling.login_failed(username=username, address=address)
            raise InvalidInput("Unable to log in with the username and password given.")
        throttling.login_succeeded(username=username)
        return Response(
            {
                "token": tokens.api_token_create(user=user),
                "idle_expiry_seconds": settings.API_TOKEN_IDLE_SECONDS,
            }
        )


class LogoutApi(APIView):
    """Revoke the token this request was made with (a browser session: end it)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={204: OpenApiResponse(description="Logged out.")})
    def post(self, request):
        if request.auth is not None and hasattr(request.auth, "digest"):
            request.auth.delete()
        else:
            logout(request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)
