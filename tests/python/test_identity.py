"""AgentCore Identity through boto3 and the AWS CLI: workload identities, workload access tokens,
API key and OAuth2 credential providers with the token vault, M2M tokens from the built-in issuer
and from an issuer the test starts, the USER_FEDERATION flow completed through the built-in
issuer's login page, secrets kept encrypted in the database, and all of it across restarts."""
import base64
import json
import signal
import socket
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from botocore.exceptions import ClientError

from conftest import CONTAINER_URI, ROLE_ARN, Cli, Emulator, boto_client, crash, wait_for_status
from oidc_issuer import LocalIssuer

CP = "bedrock-agentcore-control"
DP = "bedrock-agentcore"
ISSUER = "/_agentcore-local/issuer"
USERS = ["--issuer-user", "alice:wonderland", "--issuer-user", "bob:builder"]


class Stack:
    def __init__(self, emu):
        self.emu = emu
        self.control = boto_client(emu.url, CP)
        self.data = boto_client(emu.url, DP)
        self.cli = Cli(emu.url)
        # AWS CLI v1 reads a parameter that looks like a URL *from* that URL unless told not to.
        config = emu.log_path.parent / "aws-cli-config"
        config.write_text("[default]\ncli_follow_urlparam = false\n")
        self.cli.env["AWS_CONFIG_FILE"] = str(config)
        self.discovery_url = f"{emu.url}{ISSUER}/.well-known/openid-configuration"


@pytest.fixture
def stack(emulators):
    return Stack(emulators("--sandbox", "none", *USERS))


def error_code(excinfo):
    return excinfo.value.response["Error"]["Code"]


def claims(token):
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def builtin_provider(s, name="builtin-oauth"):
    return s.control.create_oauth2_credential_provider(
        name=name, credentialProviderVendor="CustomOauth2",
        oauth2ProviderConfigInput={"customOauth2ProviderConfig": {
            "oauthDiscovery": {"discoveryUrl": s.discovery_url},
            "clientId": "agentcore-local-client", "clientSecret": "agentcore-local-secret"}})


# ---------------------------------------------------------------------------------------------
# Workload identities


def test_workload_identities_boto3(stack):
    c = stack.control
    created = c.create_workload_identity(name="my-agent", allowedResourceOauth2ReturnUrls=["https://app.example/cb"])
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert created["workloadIdentityArn"].endswith(":workload-identity-directory/default/workload-identity/my-agent")
    got = c.get_workload_identity(name="my-agent")
    assert got["allowedResourceOauth2ReturnUrls"] == ["https://app.example/cb"] and got["createdTime"]
    updated = c.update_workload_identity(name="my-agent", allowedResourceOauth2ReturnUrls=["http://localhost:9/a", "http://localhost:9/b"])
    assert updated["allowedResourceOauth2ReturnUrls"] == ["http://localhost:9/a", "http://localhost:9/b"]
    for name in ["second", "third"]:
        c.create_workload_identity(name=name)
    page = c.list_workload_identities(maxResults=2)
    assert [w["name"] for w in page["workloadIdentities"]] == ["my-agent", "second"]
    rest = c.list_workload_identities(maxResults=2, nextToken=page["nextToken"])
    assert [w["name"] for w in rest["workloadIdentities"]] == ["third"] and "nextToken" not in rest
    with pytest.raises(ClientError) as e:
        c.create_workload_identity(name="my-agent")
    assert error_code(e) == "ValidationException"
    with pytest.raises(ClientError) as e:
        c.create_workload_identity(name="bad name!")
    assert error_code(e) == "ValidationException", "the model's pattern (botocore checks lengths, not patterns)"
    assert c.delete_workload_identity(name="second")["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(c.exceptions.ResourceNotFoundException):
        c.get_workload_identity(name="second")


def test_workload_identities_cli(stack):
    cli = stack.cli
    created = cli.json(CP, "create-workload-identity", "--name", "cli-agent",
                       "--allowed-resource-oauth2-return-urls", "http://localhost:8081/cb")
    assert created["name"] == "cli-agent"
    assert cli.json(CP, "get-workload-identity", "--name", "cli-agent")["allowedResourceOauth2ReturnUrls"] == ["http://localhost:8081/cb"]
    cli.json(CP, "update-workload-identity", "--name", "cli-agent", "--allowed-resource-oauth2-return-urls", "http://localhost:8082/cb")
    listed = cli.json(CP, "list-workload-identities")
    assert [w["name"] for w in listed["workloadIdentities"]] == ["cli-agent"]
    cli.run(CP, "delete-workload-identity", "--name", "cli-agent")
    missing = cli.run(CP, "get-workload-identity", "--name", "cli-agent", check=False)
    assert missing.returncode != 0 and "ResourceNotFoundException" in missing.stderr


def test_each_runtime_owns_the_workload_identity_its_details_name(emulators):
    s = Stack(emulators("--sandbox", "none"))
    c = s.control
    created = c.create_agent_runtime(agentRuntimeName="owner", agentRuntimeArtifact={"containerConfiguration": {"containerUri": CONTAINER_URI}},
                                     roleArn=ROLE_ARN, networkConfiguration={"networkMode": "PUBLIC"})
    rid = created["agentRuntimeId"]
    arn = created["workloadIdentityDetails"]["workloadIdentityArn"]
    assert c.get_workload_identity(name=rid)["workloadIdentityArn"] == arn
    assert arn in [w["workloadIdentityArn"] for w in c.list_workload_identities()["workloadIdentities"]]
    assert wait_for_status(c, rid)["workloadIdentityDetails"]["workloadIdentityArn"] == arn
    with pytest.raises(c.exceptions.ValidationException):
        c.delete_workload_identity(name=rid)
    # Its return URLs can be registered (what USER_FEDERATION from the agent needs).
    c.update_workload_identity(name=rid, allowedResourceOauth2ReturnUrls=["http://localhost:8081/cb"])
    wat = s.data.get_workload_access_token_for_user_id(workloadName=rid, userId="alice")["workloadAccessToken"]
    assert wat
    c.delete_agent_runtime(agentRuntimeId=rid)
    with pytest.raises(c.exceptions.ResourceNotFoundException):
        c.get_workload_identity(name=rid)


# ---------------------------------------------------------------------------------------------
# Workload access tokens


def test_workload_access_tokens_boto3_and_cli(stack):
    c, d, cli = stack.control, stack.data, stack.cli
    c.create_workload_identity(name="tokens-agent")
    c.create_api_key_credential_provider(name="probe", apiKey="probe-key")

    def works(wat):
        return d.get_resource_api_key(workloadIdentityToken=wat, resourceCredentialProviderName="probe")["apiKey"] == "probe-key"

    assert works(d.get_workload_access_token(workloadName="tokens-agent")["workloadAccessToken"])
    assert works(d.get_workload_access_token_for_user_id(workloadName="tokens-agent", userId="alice")["workloadAccessToken"])
    user_jwt = httpx.post(f"{stack.emu.url}{ISSUER}/oauth2/token", auth=("agentcore-local-client", "agentcore-local-secret"),
                          data={"grant_type": "password", "username": "alice", "password": "wonderland"}).json()["access_token"]
    assert works(d.get_workload_access_token_for_jwt(workloadName="tokens-agent", userToken=user_jwt)["workloadAccessToken"])
    with LocalIssuer() as other:
        assert works(d.get_workload_access_token_for_jwt(workloadName="tokens-agent", userToken=other.mint())["workloadAccessToken"])
        with pytest.raises(ClientError) as e:
            d.get_workload_access_token_for_jwt(workloadName="tokens-agent", userToken=other.mint(lifetime=-300))
        assert error_code(e) == "AccessDeniedException" and "expired" in e.value.response["Error"]["Message"]
    with pytest.raises(d.exceptions.ResourceNotFoundException):
        d.get_workload_access_token(workloadName="no-such-agent")
    with pytest.raises(ClientError) as e:
        d.get_resource_api_key(workloadIdentityToken=user_jwt, resourceCredentialProviderName="probe")
    assert error_code(e) == "AccessDeniedException", "an IdP token is no workload access token"

    for args in (["get-workload-access-token"], ["get-workload-access-token-for-user-id", "--user-id", "bob"],
                 ["get-workload-access-token-for-jwt", "--user-token", user_jwt]):
        wat = cli.json(DP, args[0], "--workload-name", "tokens-agent", *args[1:])["workloadAccessToken"]
        assert cli.json(DP, "get-resource-api-key", "--workload-identity-token", wat,
                        "--resource-credential-provider-name", "probe")["apiKey"] == "probe-key"


def test_a_runtime_identity_checks_user_tokens_with_the_runtime_authorizer(emulators):
    s = Stack(emulators("--sandbox", "none", "--issuer-client", "web-app:web-secret",
                        "--issuer-client", "other-app:other-secret", *USERS))
    created = s.control.create_agent_runtime(
        agentRuntimeName="guarded", agentRuntimeArtifact={"containerConfiguration": {"containerUri": CONTAINER_URI}},
        roleArn=ROLE_ARN, networkConfiguration={"networkMode": "PUBLIC"},
        authorizerConfiguration={"customJWTAuthorizer": {"discoveryUrl": s.discovery_url, "allowedClients": ["web-app"]}})
    rid = created["agentRuntimeId"]
    wait_for_status(s.control, rid)

    def user_token(client, secret):
        return httpx.post(f"{s.emu.url}{ISSUER}/oauth2/token", auth=(client, secret),
                          data={"grant_type": "password", "username": "alice", "password": "wonderland"}).json()["access_token"]

    assert s.data.get_workload_access_token_for_jwt(workloadName=rid, userToken=user_token("web-app", "web-secret"))["workloadAccessToken"]
    with pytest.raises(ClientError) as e:
        s.data.get_workload_access_token_for_jwt(workloadName=rid, userToken=user_token("other-app", "other-secret"))
    assert "client_id" in e.value.response["Error"]["Message"]


# ---------------------------------------------------------------------------------------------
# API key credential providers


def test_api_key_providers_boto3(stack):
    c, d = stack.control, stack.data
    created = c.create_api_key_credential_provider(name="weather", apiKey="wk-123-secret", tags={"team": "a"})
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert created["credentialProviderArn"].endswith(":token-vault/default/apikeycredentialprovider/weather")
    assert created["apiKeySecretArn"]["secretArn"].startswith("arn:aws:secretsmanager:us-east-1:")
    got = c.get_api_key_credential_provider(name="weather")
    assert "wk-123-secret" not in json.dumps(got, default=str), "Get never returns the key"
    listed = c.list_api_key_credential_providers()["credentialProviders"]
    assert [p["name"] for p in listed] == ["weather"] and "wk-123-secret" not in json.dumps(listed, default=str)
    with pytest.raises(c.exceptions.ConflictException):
        c.create_api_key_credential_provider(name="weather", apiKey="other")
    with pytest.raises(c.exceptions.ValidationException):
        c.create_api_key_credential_provider(name="external", apiKeySecretSource="EXTERNAL",
                                             apiKeySecretConfig={"secretId": "s", "jsonKey": "k"})

    c.create_workload_identity(name="keys-agent")
    wat = d.get_workload_access_token_for_user_id(workloadName="keys-agent", userId="alice")["workloadAccessToken"]
    assert d.get_resource_api_key(workloadIdentityToken=wat, resourceCredentialProviderName="weather")["apiKey"] == "wk-123-secret"
    c.update_api_key_credential_provider(name="weather", apiKey="wk-456-rotated")
    assert d.get_resource_api_key(workloadIdentityToken=wat, resourceCredentialProviderName="weather")["apiKey"] == "wk-456-rotated"
    c.delete_api_key_credential_provider(name="weather")
    with pytest.raises(d.exceptions.ResourceNotFoundException):
        d.get_resource_api_key(workloadIdentityToken=wat, resourceCredentialProviderName="weather")
    with pytest.raises(ClientError) as e:
        d.get_resource_api_key(workloadIdentityToken=wat[:-4] + "AAAA", resourceCredentialProviderName="weather")
    assert error_code(e) == "AccessDeniedException"


def test_api_key_providers_cli(stack):
    cli = stack.cli
    cli.json(CP, "create-api-key-credential-provider", "--name", "cli-key", "--api-key", "cli-secret-1")
    assert "cli-secret-1" not in cli.run(CP, "get-api-key-credential-provider", "--name", "cli-key").stdout
    cli.json(CP, "update-api-key-credential-provider", "--name", "cli-key", "--api-key", "cli-secret-2")
    assert [p["name"] for p in cli.json(CP, "list-api-key-credential-providers")["credentialProviders"]] == ["cli-key"]
    cli.json(CP, "create-workload-identity", "--name", "cli-keys-agent")
    wat = cli.json(DP, "get-workload-access-token", "--workload-name", "cli-keys-agent")["workloadAccessToken"]
    assert cli.json(DP, "get-resource-api-key", "--workload-identity-token", wat,
                    "--resource-credential-provider-name", "cli-key")["apiKey"] == "cli-secret-2"
    cli.run(CP, "delete-api-key-credential-provider", "--name", "cli-key")
    assert cli.json(CP, "list-api-key-credential-providers")["credentialProviders"] == []


# ---------------------------------------------------------------------------------------------
# OAuth2 credential providers, M2M


def test_oauth2_providers_boto3(stack):
    c = stack.control
    created = builtin_provider(stack)
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert created["status"] == "READY"
    assert created["callbackUrl"].startswith(f"{stack.emu.url}/identities/oauth2/callback/")
    assert created["credentialProviderArn"].endswith(":token-vault/default/oauth2credentialprovider/builtin-oauth")
    out = created["oauth2ProviderConfigOutput"]["customOauth2ProviderConfig"]
    assert out == {"oauthDiscovery": {"discoveryUrl": stack.discovery_url}, "clientId": "agentcore-local-client"}
    got = c.get_oauth2_credential_provider(name="builtin-oauth")
    assert got["credentialProviderVendor"] == "CustomOauth2" and got["callbackUrl"] == created["callbackUrl"]
    assert "agentcore-local-secret" not in json.dumps(got, default=str)

    github = c.create_oauth2_credential_provider(name="gh", credentialProviderVendor="GithubOauth2",
                                                 oauth2ProviderConfigInput={"githubOauth2ProviderConfig": {"clientId": "Iv1.x", "clientSecret": "ghs"}})
    meta = github["oauth2ProviderConfigOutput"]["githubOauth2ProviderConfig"]["oauthDiscovery"]["authorizationServerMetadata"]
    assert meta["tokenEndpoint"] == "https://github.com/login/oauth/access_token"
    listed = c.list_oauth2_credential_providers()["credentialProviders"]
    assert [(p["name"], p["credentialProviderVendor"]) for p in listed] == [("builtin-oauth", "CustomOauth2"), ("gh", "GithubOauth2")]
    with pytest.raises(c.exceptions.ValidationException):
        c.create_oauth2_credential_provider(name="mismatch", credentialProviderVendor="GoogleOauth2",
                                            oauth2ProviderConfigInput={"githubOauth2ProviderConfig": {"clientId": "x"}})
    with pytest.raises(c.exceptions.ConflictException):
        builtin_provider(stack)
    updated = c.update_oauth2_credential_provider(
        name="gh", credentialProviderVendor="GithubOauth2",
        oauth2ProviderConfigInput={"githubOauth2ProviderConfig": {"clientId": "Iv1.y"}})
    assert updated["oauth2ProviderConfigOutput"]["githubOauth2ProviderConfig"]["clientId"] == "Iv1.y"
    assert c.delete_oauth2_credential_provider(name="gh")["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(c.exceptions.ResourceNotFoundException):
        c.get_oauth2_credential_provider(name="gh")


def test_oauth2_providers_and_m2m_cli(stack):
    cli = stack.cli
    config = json.dumps({"customOauth2ProviderConfig": {"oauthDiscovery": {"discoveryUrl": stack.discovery_url},
                                                        "clientId": "agentcore-local-client", "clientSecret": "agentcore-local-secret"}})
    created = cli.json(CP, "create-oauth2-credential-provider", "--name", "cli-oauth", "--credential-provider-vendor", "CustomOauth2",
                       "--oauth2-provider-config-input", config)
    assert created["status"] == "READY"
    assert cli.json(CP, "get-oauth2-credential-provider", "--name", "cli-oauth")["name"] == "cli-oauth"
    cli.json(CP, "update-oauth2-credential-provider", "--name", "cli-oauth", "--credential-provider-vendor", "CustomOauth2",
             "--oauth2-provider-config-input", config)
    assert [p["name"] for p in cli.json(CP, "list-oauth2-credential-providers")["credentialProviders"]] == ["cli-oauth"]
    cli.json(CP, "create-workload-identity", "--name", "cli-oauth-agent")
    wat = cli.json(DP, "get-workload-access-token", "--workload-name", "cli-oauth-agent")["workloadAccessToken"]
    token = cli.json(DP, "get-resource-oauth2-token", "--workload-identity-token", wat, "--resource-credential-provider-name",
                     "cli-oauth", "--scopes", "read", "--oauth2-flow", "M2M")["accessToken"]
    assert claims(token)["client_id"] == "agentcore-local-client" and claims(token)["scope"] == "read"
    cli.run(CP, "delete-oauth2-credential-provider", "--name", "cli-oauth")


def test_m2m_tokens_from_the_builtin_and_an_independent_issuer(stack):
    c, d = stack.control, stack.data
    builtin_provider(stack)
    c.create_workload_identity(name="m2m-agent")
    wat = d.get_workload_access_token(workloadName="m2m-agent")["workloadAccessToken"]
    first = d.get_resource_oauth2_token(workloadIdentityToken=wat, resourceCredentialProviderName="builtin-oauth",
                                        scopes=["read", "write"], oauth2Flow="M2M")["accessToken"]
    assert claims(first)["iss"] == f"{stack.emu.url}{ISSUER}" and claims(first)["scope"] == "read write"
    again = d.get_resource_oauth2_token(workloadIdentityToken=wat, resourceCredentialProviderName="builtin-oauth",
                                        scopes=["write", "read"], oauth2Flow="M2M")["accessToken"]
    assert again == first, "served from the token vault while fresh"
    forced = d.get_resource_oauth2_token(workloadIdentityToken=wat, resourceCredentialProviderName="builtin-oauth",
                                         scopes=["read", "write"], oauth2Flow="M2M", forceAuthentication=True)["accessToken"]
    assert forced != first

    with LocalIssuer(clients={"svc": "svc-secret"}) as other:
        c.create_oauth2_credential_provider(
            name="external-idp", credentialProviderVendor="CustomOauth2",
            oauth2ProviderConfigInput={"customOauth2ProviderConfig": {
                "oauthDiscovery": {"discoveryUrl": other.discovery_url}, "clientId": "svc", "clientSecret": "svc-secret"}})
        token = d.get_resource_oauth2_token(workloadIdentityToken=wat, resourceCredentialProviderName="external-idp",
                                            scopes=["inventory.read"], audiences=["api://inventory"], oauth2Flow="M2M")["accessToken"]
        assert claims(token)["iss"] == other.url and claims(token)["aud"] == "api://inventory"
        sent = other.token_requests[-1]
        assert sent["form"]["client_secret"] == "svc-secret", "the provider's metadata asks for client_secret_post"
        d.get_resource_oauth2_token(workloadIdentityToken=wat, resourceCredentialProviderName="external-idp",
                                    scopes=["inventory.read"], audiences=["api://inventory"], oauth2Flow="M2M")
        assert len(other.token_requests) == 1, "cached"

        c.create_oauth2_credential_provider(
            name="wrong-secret", credentialProviderVendor="CustomOauth2",
            oauth2ProviderConfigInput={"customOauth2ProviderConfig": {
                "oauthDiscovery": {"discoveryUrl": other.discovery_url}, "clientId": "svc", "clientSecret": "nope"}})
        with pytest.raises(ClientError) as e:
            d.get_resource_oauth2_token(workloadIdentityToken=wat, resourceCredentialProviderName="wrong-secret",
                                        scopes=[], oauth2Flow="M2M")
        assert error_code(e) == "AccessDeniedException" and "invalid_client" in e.value.response["Error"]["Message"]


# ---------------------------------------------------------------------------------------------
# USER_FEDERATION


class ReturnUrl:
    """The application's session-binding endpoint: records where the browser came back."""

    def __init__(self):
        self.hits = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                outer.hits.append(dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query)))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"bound")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/oauth2/callback"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def return_url():
    r = ReturnUrl()
    yield r
    r.close()


def browser_login(authorization_url, user, password):
    """What the user does in a browser: open the authorization URL, sign in on the login page,
    follow the redirects back through the provider callback to the application."""
    with httpx.Client(follow_redirects=False, timeout=30) as browser:
        to_provider = browser.get(authorization_url)
        assert to_provider.status_code == 302, to_provider.text
        page = browser.get(to_provider.headers["location"])
        assert page.status_code == 200 and "Sign in" in page.text
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(to_provider.headers["location"]).query))
        assert query["code_challenge_method"] == "S256", "the emulator uses PKCE"
        login_url = to_provider.headers["location"].split("?")[0]
        to_callback = browser.post(login_url, data={**query, "username": user, "password": password})
        assert to_callback.status_code == 302, to_callback.text
        back = browser.get(to_callback.headers["location"])
        if back.status_code == 302:
            return browser.get(back.headers["location"])
        return back


def test_user_federation_through_the_builtin_issuer(stack, return_url):
    c, d = stack.control, stack.data
    builtin_provider(stack)
    c.create_workload_identity(name="3lo-agent", allowedResourceOauth2ReturnUrls=[return_url.url])
    alice = d.get_workload_access_token_for_user_id(workloadName="3lo-agent", userId="alice")["workloadAccessToken"]
    ask = dict(workloadIdentityToken=alice, resourceCredentialProviderName="builtin-oauth", scopes=["openid", "calendar"],
               oauth2Flow="USER_FEDERATION", resourceOauth2ReturnUrl=return_url.url, customState="app-state-1")
    started = d.get_resource_oauth2_token(**ask)
    assert started["sessionStatus"] == "IN_PROGRESS" and "accessToken" not in started
    session_uri = started["sessionUri"]
    assert session_uri.startswith("urn:ietf:params:oauth:request_uri:")
    polled = d.get_resource_oauth2_token(**ask, sessionUri=session_uri)
    assert "accessToken" not in polled and polled["sessionStatus"] == "IN_PROGRESS"

    landed = browser_login(started["authorizationUrl"], "alice", "wonderland")
    assert landed.text == "bound"
    assert return_url.hits == [{"session_id": session_uri, "state": "app-state-1"}]
    # Not bound yet: the token waits for the application's CompleteResourceTokenAuth.
    assert "accessToken" not in d.get_resource_oauth2_token(**ask, sessionUri=session_uri)
    with pytest.raises(ClientError) as e:
        d.complete_resource_token_auth(sessionUri=session_uri, userIdentifier={"userId": "bob"})
    assert error_code(e) == "AccessDeniedException", "only the user who started it"
    d.complete_resource_token_auth(sessionUri=session_uri, userIdentifier={"userId": "alice"})

    token = d.get_resource_oauth2_token(**ask, sessionUri=session_uri)["accessToken"]
    assert claims(token)["sub"] == "alice" and "calendar" in claims(token)["scope"]
    cached = d.get_resource_oauth2_token(**{k: v for k, v in ask.items() if k != "customState"})
    assert cached["accessToken"] == token, "kept per user in the vault"

    bob = d.get_workload_access_token_for_user_id(workloadName="3lo-agent", userId="bob")["workloadAccessToken"]
    bobs = d.get_resource_oauth2_token(**dict(ask, workloadIdentityToken=bob))
    assert "accessToken" not in bobs and bobs["sessionUri"] != session_uri, "another user authorizes for himself"
    with pytest.raises(ClientError) as e:
        d.get_resource_oauth2_token(**dict(ask, workloadIdentityToken=bob), sessionUri=session_uri)
    assert error_code(e) == "AccessDeniedException", "one user's session is not another's"
    with pytest.raises(d.exceptions.ValidationException):
        d.get_resource_oauth2_token(**dict(ask, resourceOauth2ReturnUrl="http://evil.example/cb"))


def test_user_federation_with_the_cli_and_a_user_token(stack, return_url):
    cli = stack.cli
    builtin_provider(stack)
    cli.json(CP, "create-workload-identity", "--name", "cli-3lo", "--allowed-resource-oauth2-return-urls", return_url.url)
    user_jwt = httpx.post(f"{stack.emu.url}{ISSUER}/oauth2/token", auth=("agentcore-local-client", "agentcore-local-secret"),
                          data={"grant_type": "password", "username": "bob", "password": "builder"}).json()["access_token"]
    wat = cli.json(DP, "get-workload-access-token-for-jwt", "--workload-name", "cli-3lo", "--user-token", user_jwt)["workloadAccessToken"]
    args = ["--workload-identity-token", wat, "--resource-credential-provider-name", "builtin-oauth", "--scopes", "openid",
            "--oauth2-flow", "USER_FEDERATION", "--resource-oauth2-return-url", return_url.url]
    started = cli.json(DP, "get-resource-oauth2-token", *args)
    browser_login(started["authorizationUrl"], "bob", "builder")
    cli.json(DP, "complete-resource-token-auth", "--session-uri", started["sessionUri"],
             "--user-identifier", json.dumps({"userToken": user_jwt}))
    token = cli.json(DP, "get-resource-oauth2-token", *args, "--session-uri", started["sessionUri"])["accessToken"]
    assert claims(token)["sub"] == "bob"


def test_wrong_password_keeps_the_session_open(stack, return_url):
    c, d = stack.control, stack.data
    builtin_provider(stack)
    c.create_workload_identity(name="pw-agent", allowedResourceOauth2ReturnUrls=[return_url.url])
    wat = d.get_workload_access_token_for_user_id(workloadName="pw-agent", userId="alice")["workloadAccessToken"]
    started = d.get_resource_oauth2_token(workloadIdentityToken=wat, resourceCredentialProviderName="builtin-oauth", scopes=[],
                                          oauth2Flow="USER_FEDERATION", resourceOauth2ReturnUrl=return_url.url)
    with httpx.Client(follow_redirects=False) as browser:
        to_provider = browser.get(started["authorizationUrl"]).headers["location"]
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(to_provider).query))
        wrong = browser.post(to_provider.split("?")[0], data={**query, "username": "alice", "password": "guess"})
        assert wrong.status_code == 401 and "Wrong user name or password" in wrong.text
    assert return_url.hits == []


# ---------------------------------------------------------------------------------------------
# Token vault


def test_token_vault_boto3_and_cli(stack):
    c, cli = stack.control, stack.cli
    vault = c.get_token_vault()
    assert vault["tokenVaultId"] == "default" and vault["kmsConfiguration"] == {"keyType": "ServiceManagedKey"}
    key = "arn:aws:kms:us-east-1:123456789012:key/12345678-1234-1234-1234-123456789012"
    set_ = c.set_token_vault_cmk(kmsConfiguration={"keyType": "CustomerManagedKey", "kmsKeyArn": key})
    assert set_["kmsConfiguration"] == {"keyType": "CustomerManagedKey", "kmsKeyArn": key}
    assert cli.json(CP, "get-token-vault", "--token-vault-id", "default")["kmsConfiguration"]["kmsKeyArn"] == key
    back = cli.json(CP, "set-token-vault-cmk", "--kms-configuration", "keyType=ServiceManagedKey")
    assert back["kmsConfiguration"] == {"keyType": "ServiceManagedKey"}
    with pytest.raises(c.exceptions.ResourceNotFoundException):
        c.get_token_vault(tokenVaultId="other")
    with pytest.raises(c.exceptions.ValidationException):
        c.set_token_vault_cmk(kmsConfiguration={"keyType": "CustomerManagedKey"})


# ---------------------------------------------------------------------------------------------
# Encryption at rest and persistence


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_secrets_are_encrypted_at_rest_and_everything_survives_restarts(tmp_path):
    data_dir = tmp_path / "data"
    listen = ["--listen", f"127.0.0.1:{free_port()}", "--sandbox", "none", *USERS]
    emu = Emulator(data_dir=data_dir, extra_args=listen).start(tmp_path / "first.log")
    try:
        s = Stack(emu)
        s.control.create_api_key_credential_provider(name="vaulted", apiKey="APIKEY-PLAINTEXT-MARKER-1")
        s.control.create_oauth2_credential_provider(
            name="vaulted-oauth", credentialProviderVendor="CustomOauth2",
            oauth2ProviderConfigInput={"customOauth2ProviderConfig": {"oauthDiscovery": {"discoveryUrl": s.discovery_url},
                                                                      "clientId": "agentcore-local-client", "clientSecret": "agentcore-local-secret"}})
        s.control.create_workload_identity(name="durable-agent", allowedResourceOauth2ReturnUrls=["http://localhost:9/cb"])
        wat = s.data.get_workload_access_token_for_user_id(workloadName="durable-agent", userId="alice")["workloadAccessToken"]
        m2m = s.data.get_resource_oauth2_token(workloadIdentityToken=wat, resourceCredentialProviderName="vaulted-oauth",
                                               scopes=["read"], oauth2Flow="M2M")["accessToken"]
        user_jwt = httpx.post(f"{emu.url}{ISSUER}/oauth2/token", auth=("agentcore-local-client", "agentcore-local-secret"),
                              data={"grant_type": "password", "username": "alice", "password": "wonderland"}).json()["access_token"]
        crash(emu)  # kill -9 right after the answers: nothing acknowledged may be lost
    finally:
        emu.stop()

    stored = b"".join(p.read_bytes() for p in data_dir.iterdir() if p.name.startswith("agentcore-local.sqlite3"))
    for secret in [b"APIKEY-PLAINTEXT-MARKER-1", b"agentcore-local-secret", m2m.encode(), m2m.split(".")[2].encode()]:
        assert secret not in stored, f"{secret[:30]!r} is readable in the database"
    key_file = data_dir / "identity" / "token-vault.key"
    assert key_file.stat().st_mode & 0o077 == 0 and len(key_file.read_bytes()) == 32

    emu = Emulator(data_dir=data_dir, extra_args=listen).start(tmp_path / "second.log")
    try:
        s = Stack(emu)
        assert s.control.get_workload_identity(name="durable-agent")["allowedResourceOauth2ReturnUrls"] == ["http://localhost:9/cb"]
        # The workload access token minted before the crash is still valid (its key is kept).
        assert s.data.get_resource_api_key(workloadIdentityToken=wat, resourceCredentialProviderName="vaulted")["apiKey"] == "APIKEY-PLAINTEXT-MARKER-1"
        again = s.data.get_resource_oauth2_token(workloadIdentityToken=wat, resourceCredentialProviderName="vaulted-oauth",
                                                 scopes=["read"], oauth2Flow="M2M")["accessToken"]
        assert again == m2m, "the vault's cached token survived"
        # The built-in issuer kept its signing key: a token it issued before the restart still verifies.
        assert s.data.get_workload_access_token_for_jwt(workloadName="durable-agent", userToken=user_jwt)["workloadAccessToken"]
        assert [p["name"] for p in s.control.list_oauth2_credential_providers()["credentialProviders"]] == ["vaulted-oauth"]
    finally:
        emu.stop(signal.SIGTERM)
