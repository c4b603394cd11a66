"""An OpenID Connect issuer the tests start themselves, independent of the emulator: its own RSA
and EC keys, a discovery document and JWKS on loopback, and a client-credentials token endpoint.
It lets a test sign any token it likes (wrong audience, expired, foreign key, rotated kid) and
counts what the emulator fetched from it."""
import base64
import json
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm


def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def ec_key():
    return ec.generate_private_key(ec.SECP256R1())


class LocalIssuer:
    """`with LocalIssuer() as iss:` serves `iss.discovery_url` until the block ends."""

    def __init__(self, clients=None):
        self.keys = {"rsa-1": (rsa_key(), "RS256"), "ec-1": (ec_key(), "ES256")}
        self.published = ["rsa-1", "ec-1"]
        self.clients = clients or {"m2m-client": "m2m-secret"}
        self.jwks_fetches = 0
        self.discovery_fetches = 0
        self.token_requests = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/realms/test"
        self.discovery_url = f"{self.url}/.well-known/openid-configuration"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()

    # --- keys and tokens ---

    def jwks(self):
        keys = []
        for kid in self.published:
            key, alg = self.keys[kid]
            to_jwk = RSAAlgorithm.to_jwk if alg.startswith("RS") else ECAlgorithm.to_jwk
            jwk = json.loads(to_jwk(key.public_key()))
            jwk.update(kid=kid, use="sig", alg=alg)
            keys.append(jwk)
        return {"keys": keys}

    def rotate(self, kid="rsa-2"):
        """Publish a new signing key (as an IdP rotating its keys does)."""
        self.keys[kid] = (rsa_key(), "RS256")
        self.published.append(kid)
        return kid

    def mint(self, kid="rsa-1", key=None, lifetime=600, **claims):
        """A token signed with key `kid` (or with `key`, under `kid`'s name: a forgery)."""
        own, alg = self.keys[kid]
        now = int(time.time())
        body = {"iss": self.url, "sub": "user-1", "iat": now, "nbf": now, "exp": now + lifetime,
                "jti": str(uuid.uuid4())}
        body.update({k: v for k, v in claims.items() if v is not None})
        for k in [k for k, v in claims.items() if v is None]:
            body.pop(k, None)
        return jwt.encode(body, key or own, algorithm=alg, headers={"kid": kid})

    # --- HTTP ---

    def _handler(issuer):
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _json(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                path = urllib.parse.urlsplit(self.path).path
                if path == "/realms/test/.well-known/openid-configuration":
                    issuer.discovery_fetches += 1
                    self._json(200, {
                        "issuer": issuer.url,
                        "jwks_uri": f"{issuer.url}/protocol/openid-connect/certs",
                        "token_endpoint": f"{issuer.url}/protocol/openid-connect/token",
                        "authorization_endpoint": f"{issuer.url}/protocol/openid-connect/auth",
                        "token_endpoint_auth_methods_supported": ["client_secret_post"],
                    })
                elif path == "/realms/test/protocol/openid-connect/certs":
                    issuer.jwks_fetches += 1
                    self._json(200, issuer.jwks())
                else:
                    self._json(404, {"error": "not_found"})

            def do_POST(self):
                length = int(self.headers.get("content-length") or 0)
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                issuer.token_requests.append({"form": form, "authorization": self.headers.get("authorization")})
                if urllib.parse.urlsplit(self.path).path != "/realms/test/protocol/openid-connect/token":
                    return self._json(404, {"error": "not_found"})
                client_id, secret = form.get("client_id"), form.get("client_secret")
                basic = self.headers.get("authorization", "")
                if basic.startswith("Basic "):
                    client_id, secret = base64.b64decode(basic[6:]).decode().split(":", 1)
                if issuer.clients.get(client_id) != secret:
                    return self._json(401, {"error": "invalid_client"})
                if form.get("grant_type") != "client_credentials":
                    return self._json(400, {"error": "unsupported_grant_type"})
                token = issuer.mint(sub=client_id, client_id=client_id, scope=form.get("scope"),
                                    aud=form.get("audience"), lifetime=300)
                self._json(200, {"access_token": token, "token_type": "Bearer", "expires_in": 300})

        return Handler
