#!/usr/bin/env python3
"""A minimal docker token server for the registry tests (distribution's `auth: token:`).

  token_server.py PORT KEY.pem CERT.pem ISSUER USER:PASSWORD

GET /token?service=S&scope=repository:NAME:pull answers {"token": JWT} for a client that sends
Basic USER:PASSWORD, 401 otherwise. The JWT is RS256, signed by `openssl dgst` with KEY, and
carries CERT in its x5c header so that the registry (rootcertbundle: CERT) trusts it.
"""
import base64
import http.server
import json
import subprocess
import sys
import time
import urllib.parse


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(key, payload):
    out = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key],
                         input=payload, stdout=subprocess.PIPE, check=True)
    return out.stdout


def cert_der(cert):
    out = subprocess.run(["openssl", "x509", "-in", cert, "-outform", "DER"],
                         stdout=subprocess.PIPE, check=True)
    return out.stdout


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        query = urllib.parse.parse_qs(url.query)
        expected = "Basic " + base64.b64encode(CREDS.encode()).decode()
        if url.path != "/token" or self.headers.get("Authorization") != expected:
            self.send_response(401)
            self.end_headers()
            return
        access = []
        for scope in query.get("scope", []):
            kind, name, actions = scope.split(":", 2)
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": CREDS.split(":")[0], "aud": query.get("service", [""])[0],
                  "exp": now + 300, "nbf": now - 10, "iat": now, "jti": str(now),
                  "access": access}
        header = {"alg": "RS256", "typ": "JWT", "x5c": [base64.b64encode(DER).decode()]}
        signing_input = (b64url(json.dumps(header).encode()) + "." +
                         b64url(json.dumps(claims).encode())).encode()
        token = signing_input.decode() + "." + b64url(sign(KEY, signing_input))
        body = json.dumps({"token": token, "expires_in": 300}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port, KEY, cert, ISSUER, CREDS = sys.argv[1:6]
    DER = cert_der(cert)
    http.server.HTTPServer(("127.0.0.1", int(port)), Handler).serve_forever()
