"""The official OpenAI SDK over an HTTPS listener, trusting a CA made for the test; and a
listener that requires a client certificate."""

import datetime
import ipaddress
import os
import ssl
import tempfile

import openai
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import OPENAI_KEY, free_port, run_tollgate


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject, issuer, key, issuer_key, ca=False, sans=()):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path, *items):
    with open(path, "wb") as f:
        for item in items:
            if isinstance(item, x509.Certificate):
                f.write(item.public_bytes(serialization.Encoding.PEM))
            else:
                f.write(item.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ))
    return path


@pytest.fixture(scope="module")
def pki():
    """A CA, a server certificate for localhost, a client CA and a client certificate."""
    tmp = tempfile.mkdtemp()
    files = {}
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("interop ca", "interop ca", ca_key, ca_key, ca=True)
    files["ca"] = _write(os.path.join(tmp, "ca.pem"), ca)
    key = ec.generate_private_key(ec.SECP256R1())
    sans = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    files["cert"] = _write(os.path.join(tmp, "server.pem"), _cert("localhost", "interop ca", key, ca_key, sans=sans))
    files["key"] = _write(os.path.join(tmp, "server-key.pem"), key)
    client_ca_key = ec.generate_private_key(ec.SECP256R1())
    client_ca = _cert("clients", "clients", client_ca_key, client_ca_key, ca=True)
    files["client_ca"] = _write(os.path.join(tmp, "clients.pem"), client_ca)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _cert("sdk", "clients", client_key, client_ca_key, sans=[x509.DNSName("sdk.test")])
    files["client"] = _write(os.path.join(tmp, "client.pem"), client, client_key)
    return files


def _config(port, fakes, tls):
    return f"""binds:
- port: {port}
  listeners:
  - protocol: HTTPS
    tls: {tls}
    routes:
    - backends:
      - ai:
          name: openai
          provider: {{openAI: {{model: gpt-4o-mini}}}}
          hostOverride: "{fakes['openai']}"
          backendAuth: {{key: "$OPENAI_API_KEY"}}
"""


def _client(base_url, verify):
    """The SDK with its own HTTP client, trusting what the SSL context `verify` trusts."""
    return openai.OpenAI(base_url=base_url, api_key="k", http_client=openai.DefaultHttpxClient(verify=verify))


def test_openai_sdk_over_https(fakes, pki):
    port = free_port()
    tls = f"{{cert: {pki['cert']}, key: {pki['key']}}}"
    with run_tollgate(_config(port, fakes, tls), env={"OPENAI_API_KEY": OPENAI_KEY}):
        client = _client(f"https://localhost:{port}/v1", ssl.create_default_context(cafile=pki["ca"]))
        resp = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hello tls"}])
        assert resp.choices[0].message.content == "openai says: hello tls"
        stream = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "stream tls"}], stream=True
        )
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "openai says: stream tls"
        # A client that does not trust the test CA refuses the gateway.
        untrusting = _client(f"https://localhost:{port}/v1", ssl.create_default_context())
        with pytest.raises(openai.APIConnectionError):
            untrusting.with_options(max_retries=0).chat.completions.create(
                model="m", messages=[{"role": "user", "content": "x"}]
            )


def test_openai_sdk_with_a_client_certificate(fakes, pki):
    port = free_port()
    tls = f"{{cert: {pki['cert']}, key: {pki['key']}, root: {pki['client_ca']}}}"
    with run_tollgate(_config(port, fakes, tls), env={"OPENAI_API_KEY": OPENAI_KEY}):
        url = f"https://localhost:{port}/v1"
        anonymous = ssl.create_default_context(cafile=pki["ca"])
        with pytest.raises(openai.APIConnectionError):
            _client(url, anonymous).with_options(max_retries=0).chat.completions.create(
                model="m", messages=[{"role": "user", "content": "x"}]
            )
        with_cert = ssl.create_default_context(cafile=pki["ca"])
        with_cert.load_cert_chain(pki["client"])
        resp = _client(url, with_cert).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hello mtls"}]
        )
        assert resp.choices[0].message.content == "openai says: hello mtls"
