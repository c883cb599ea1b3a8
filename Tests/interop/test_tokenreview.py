"""tokend's Kubernetes webhook (POST /apis/authentication.k8s.io/v1/tokenreviews) through the
official Kubernetes Python client (run by scripts/interop-test).

The client's own AuthenticationV1Api.create_token_review builds the TokenReview, posts it to the
path a Kubernetes API server serves (tokend's public URL as the client's host, with the caller's
client_secret_basic in the Authorization header, as kube-apiserver's webhook kubeconfig sends it)
and deserializes the answer into its V1TokenReview model, which checks the shape as it goes.
Refusals are deserialized into V1Status, as client-go decodes every non-2xx answer.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from urllib.parse import quote

import pytest
import requests
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

KUBE_AUDIENCE = "https://kubernetes.default.svc"
REVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"


def deserialize(body: str, model: str):
    """The body as the client's model, through the client's own deserializer."""
    return k8s.ApiClient().deserialize(body, model, "application/json")


def basic_header(client) -> str:
    raw = f"{quote(client.client_id, safe='')}:{quote(client.client_secret, safe='')}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def authentication_api(public_url: str, client) -> k8s.AuthenticationV1Api:
    configuration = k8s.Configuration(host=public_url)
    api_client = k8s.ApiClient(configuration, header_name="Authorization", header_value=basic_header(client))
    return k8s.AuthenticationV1Api(api_client)


def token_review(token: str, audiences: list[str] | None = None) -> k8s.V1TokenReview:
    return k8s.V1TokenReview(api_version="authentication.k8s.io/v1", kind="TokenReview",
                             spec=k8s.V1TokenReviewSpec(token=token, audiences=audiences))


def tokenctl(*args: str) -> dict:
    out = subprocess.run([os.environ["INTEROP_TOKENCTL"], *args, "--output", "json"],
                         check=True, capture_output=True, text=True, timeout=30)
    return json.loads(out.stdout)


def status_of(error: ApiException) -> k8s.V1Status:
    return deserialize(error.body, "V1Status")


@pytest.fixture(scope="module")
def apiserver(clients):
    """The webhook's caller: a client with role introspect only, as kube-apiserver's would be."""
    return clients["peer"]


def test_active_token_authenticates_with_prefixed_user_groups_and_extra(public_url, apiserver, main_client):
    issued = tokenctl("tokens", "issue", "--client", main_client.client_id, "--subject", "alice",
                      "--scope", "read write", "--audience", KUBE_AUDIENCE, "--audience", "api",
                      "--claim", "groups=dev, ops,,admins")
    api = authentication_api(public_url, apiserver)
    review = api.create_token_review(token_review(issued["access_token"], [KUBE_AUDIENCE, "https://other"]))
    assert isinstance(review, k8s.V1TokenReview)
    assert review.api_version == "authentication.k8s.io/v1"
    assert review.kind == "TokenReview"
    assert review.spec.token == "", "the token is never echoed (the field is there: the model requires it)"
    assert review.spec.audiences == [KUBE_AUDIENCE, "https://other"]
    status = review.status
    assert status.authenticated is True
    assert status.error is None
    assert status.audiences == [KUBE_AUDIENCE]
    user = status.user
    assert isinstance(user, k8s.V1UserInfo)
    assert user.username == "tokend:alice"
    assert user.uid == "alice"
    assert user.groups == ["tokend:dev", "tokend:ops", "tokend:admins"]
    assert user.extra == {
        "tokend.io/client-id": [main_client.client_id],
        "tokend.io/scope": ["read", "write"],
        "tokend.io/jti": [issued["jti"]],
    }


def test_foreign_audience_and_revoked_token_are_not_authenticated(public_url, apiserver, main_client):
    issued = tokenctl("tokens", "issue", "--client", main_client.client_id, "--subject", "bob", "--audience", "api")
    api = authentication_api(public_url, apiserver)
    # kube-apiserver sends its API audiences: a token for another audience does not authenticate.
    foreign = api.create_token_review(token_review(issued["access_token"], [KUBE_AUDIENCE]))
    assert foreign.status.authenticated is False
    assert foreign.status.user is None and foreign.status.audiences is None
    # Without spec.audiences it does; after a revocation it no longer does.
    assert api.create_token_review(token_review(issued["access_token"])).status.authenticated is True
    tokenctl("revoke", "--token", issued["access_token"], "--reason", "interop tokenreview")
    revoked = api.create_token_review(token_review(issued["access_token"]))
    assert revoked.status.authenticated is False and revoked.status.user is None


def test_answer_of_a_plain_post_deserializes_into_the_model(public_url, apiserver, main_client):
    """ApiClient.deserialize on the answer to a body posted as kube-apiserver posts it."""
    token = tokenctl("tokens", "issue", "--client", main_client.client_id, "--subject", "carol")["access_token"]
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "metadata": {"creationTimestamp": None},
            "spec": {"token": token}, "status": {"user": {}}}
    r = requests.post(public_url + REVIEW_PATH, json=body, headers={"Authorization": basic_header(apiserver)}, timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    assert token not in r.text
    review = deserialize(r.text, "V1TokenReview")
    assert review.status.authenticated is True
    assert review.status.user.username == "tokend:carol"
    assert review.status.user.groups is None


def test_refusals_are_status_objects_a_kubernetes_client_reads(public_url, apiserver, clients, main_client):
    token = tokenctl("tokens", "issue", "--client", main_client.client_id, "--subject", "dave")["access_token"]
    wrong = type(apiserver)(apiserver.client_id, apiserver.client_secret + "x")
    with pytest.raises(ApiException) as unauthorized:
        authentication_api(public_url, wrong).create_token_review(token_review(token))
    assert unauthorized.value.status == 401
    assert unauthorized.value.headers.get("WWW-Authenticate") == 'Basic realm="tokend"'
    status = status_of(unauthorized.value)
    assert (status.kind, status.api_version, status.status, status.reason, status.code) == \
        ("Status", "v1", "Failure", "Unauthorized", 401)
    assert status.message

    with pytest.raises(ApiException) as forbidden:
        authentication_api(public_url, clients["issuer_only"]).create_token_review(token_review(token))
    assert forbidden.value.status == 403
    assert status_of(forbidden.value).reason == "Forbidden"

    # kube-apiserver's default webhook version is still v1beta1: refused with the flag to set.
    beta = requests.post(public_url + REVIEW_PATH, headers={"Authorization": basic_header(apiserver)}, timeout=10,
                         json={"apiVersion": "authentication.k8s.io/v1beta1", "kind": "TokenReview", "spec": {"token": token}})
    assert beta.status_code == 400
    beta_status = deserialize(beta.text, "V1Status")
    assert beta_status.reason == "BadRequest" and "--authentication-token-webhook-version=v1" in beta_status.message
    for data in ("not json", json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview"})):
        r = requests.post(public_url + REVIEW_PATH, data=data, timeout=10,
                          headers={"Authorization": basic_header(apiserver), "Content-Type": "application/json"})
        assert r.status_code == 400
        assert deserialize(r.text, "V1Status").code == 400
