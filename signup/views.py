"""``POST /register``: signing up answers as logging in does, with the new organization beside."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from core.throttles import RegisterThrottle
from core.views import PublicAPIView, valid_body
from orgs.auth_views import token_response
from orgs.serializers import OrganizationSerializer, RegisterSerializer, TokenResponseSerializer
from signup.services import sign_up


class RegisterResponseSerializer(TokenResponseSerializer):
    organization = OrganizationSerializer()


class RegisterView(PublicAPIView):
    throttle_classes = [RegisterThrottle]

    @extend_schema(
        request=RegisterSerializer,
        responses={201: RegisterResponseSerializer},
        summary="Sign up: creates the account, the organization (you are its owner) and sign-up credits",
    )
    def post(self, request: Request) -> Response:
        data = valid_body(RegisterSerializer, request)
        user, org = sign_up(
            organization_name=data["organization_name"],
            name=data["name"],
            email=data["email"],
            password=data["password"],
        )
        organization = OrganizationSerializer(org, context={"roles": {org.pk: "owner"}}).data
        return token_response(user, status_code=status.HTTP_201_CREATED, organization=organization)
