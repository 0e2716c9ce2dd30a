"""SNS signature verification: what passes and every way a forgery is refused."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest

from core.infra.config import settings
from core.ingest import sns
from tests.webhook.snsutil import (
    CERT_PEM,
    CERT_URL,
    OTHER_KEY,
    SUBSCRIBE_URL,
    TOPIC,
    notification,
    sign,
    subscription,
)

BODY = {"eventType": "Delivery", "mail": {"messageId": "m-1", "destination": ["a@b.example"]}}


@pytest.mark.parametrize("version", ["1", "2"])
@pytest.mark.parametrize("subject", [..., "Amazon SES Email Event Notification", None])
def test_valid_notifications_verify(fake_sns, version, subject):
    message = notification(BODY, version=version, subject=subject)
    envelope = sns.verify(message)
    assert envelope.type == "Notification"
    assert envelope.topic_arn == TOPIC
    assert envelope.message_id == message["MessageId"]
    assert envelope.subject == (None if subject is ... else subject)


def test_subscription_confirmation_verifies_and_visits_only_sns(fake_sns):
    fake_sns.documents[SUBSCRIBE_URL] = b"<ConfirmSubscriptionResponse/>"
    envelope = sns.verify(subscription())
    sns.confirm_subscription(envelope)
    assert fake_sns.visited[-1] == SUBSCRIBE_URL

    evil = subscription()
    evil["SubscribeURL"] = "https://evil.example/sns.us-east-1.amazonaws.com/confirm"
    envelope = sns.verify(sign(evil))
    with pytest.raises(sns.InvalidSignature):
        sns.confirm_subscription(envelope)
    assert all("evil" not in url for url in fake_sns.visited)
    assert sns.verify(subscription("UnsubscribeConfirmation", version="2")).type == (
        "UnsubscribeConfirmation"
    )


SIGNED_FIELDS = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]


@pytest.mark.parametrize("field", SIGNED_FIELDS)
def test_each_signed_field_changed_is_refused(fake_sns, field):
    message = notification(BODY, subject="Hello")
    if field == "Type":
        message["Type"] = "SubscriptionConfirmation"
        message["SubscribeURL"], message["Token"] = SUBSCRIBE_URL, "t"
    elif field == "Timestamp":
        message["Timestamp"] = message["Timestamp"].replace(".", ".9", 1)[:-2] + "Z"
    else:
        message[field] = message[field] + "x"
    with pytest.raises((sns.InvalidSignature, sns.MalformedMessage)):
        sns.verify(message)


@pytest.mark.parametrize("field", ["SubscribeURL", "Token", "Message"])
def test_subscription_fields_are_signed(fake_sns, field):
    message = subscription()
    message[field] += "x"
    with pytest.raises(sns.InvalidSignature):
        sns.verify(message)


def test_forgeries_are_refused(fake_sns):
    cases = {}
    cases["another message's signature"] = notification(BODY)
    cases["another message's signature"]["Signature"] = notification(BODY, subject="x")["Signature"]
    cases["signed by another key"] = notification(BODY, key=OTHER_KEY)
    cases["subject added"] = notification(BODY)
    cases["subject added"]["Subject"] = "Added later"
    cases["subject removed"] = notification(BODY, subject="Was here")
    del cases["subject removed"]["Subject"]
    cases["version 3"] = notification(BODY)
    cases["version 3"]["SignatureVersion"] = "3"
    cases["version as a number"] = notification(BODY)
    cases["version as a number"]["SignatureVersion"] = 1
    cases["v1 signature claimed as v2"] = notification(BODY, version="1")
    cases["v1 signature claimed as v2"]["SignatureVersion"] = "2"
    cases["no signature"] = notification(BODY)
    del cases["no signature"]["Signature"]
    cases["signature not base64"] = notification(BODY)
    cases["signature not base64"]["Signature"] = "%%%not-base64%%%"
    cases["wrong topic"] = notification(BODY, topic="arn:aws:sns:us-east-1:999999999999:other")
    cases["an hour and ten minutes old"] = notification(
        BODY, at=datetime.now(UTC) - timedelta(minutes=70)
    )
    cases["from the future"] = notification(BODY, at=datetime.now(UTC) + timedelta(minutes=10))
    for name, message in cases.items():
        with pytest.raises(sns.InvalidSignature):
            sns.verify(message)
            pytest.fail(f"accepted: {name}")
    # Within the window, with a little skew: accepted.
    sns.verify(notification(BODY, at=datetime.now(UTC) - timedelta(minutes=62)))
    sns.verify(notification(BODY, at=datetime.now(UTC) + timedelta(minutes=2)))


BAD_CERT_URLS = [
    "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem",
    "https://sns.us-east-1.amazonaws.com.evil.example/SimpleNotificationService-test.pem",
    "https://evil.example/sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem",
    "https://sns.us-east-1.amazonaws.com@evil.example/SimpleNotificationService-test.pem",
    "https://evil.example#@sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem",
    "https://sns.us-east-1.amazonaws.com:8443/SimpleNotificationService-test.pem",
    "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.txt",
    "https://sns.us_east.amazonaws.com/SimpleNotificationService-test.pem",
    "https://xsns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem",
    "https://SNS.US-EAST-1.AMAZONAWS.COM.evil.example/x.pem",
    "file:///etc/ssl/cert.pem",
    "",
]


@pytest.mark.parametrize("url", BAD_CERT_URLS)
def test_bad_certificate_urls_are_refused_without_fetching(fake_sns, url):
    fake_sns.documents[url] = CERT_PEM  # even if it would serve the right certificate
    with pytest.raises(sns.InvalidSignature):
        sns.verify(notification(BODY, cert_url=url))
    assert fake_sns.visited == []


def test_china_regions_are_sns_hosts():
    sns.check_cert_url("https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-x.pem")


def test_certificate_is_fetched_once_and_failures_are_not_cached(fake_sns):
    for _ in range(5):
        sns.verify(notification(BODY))
    assert fake_sns.visited == [CERT_URL]

    url = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-new.pem"
    with pytest.raises(sns.InvalidSignature):  # 404 the first time
        sns.verify(notification(BODY, cert_url=url))
    fake_sns.documents[url] = b"not a certificate"
    with pytest.raises(sns.InvalidSignature):
        sns.verify(notification(BODY, cert_url=url))
    fake_sns.documents[url] = CERT_PEM
    sns.verify(notification(BODY, cert_url=url))
    assert fake_sns.visited.count(url) == 3


def test_pinned_certificate_directory(fake_sns, tmp_path, monkeypatch):
    monkeypatch.setattr(settings, "sns_cert_dir", tmp_path)
    sns.certificates.clear()
    with pytest.raises(sns.InvalidSignature, match="No pinned certificate"):
        sns.verify(notification(BODY))
    (tmp_path / "SimpleNotificationService-test.pem").write_bytes(CERT_PEM)
    sns.verify(notification(BODY))
    # The URL checks still apply, and nothing is fetched.
    with pytest.raises(sns.InvalidSignature):
        sns.verify(notification(BODY, cert_url=CERT_URL.replace("https", "http")))
    assert fake_sns.visited == []


def test_malformed_bodies():
    with pytest.raises(sns.MalformedMessage):
        sns.parse_body(b"{not json", "Notification")
    with pytest.raises(sns.MalformedMessage):
        sns.parse_body(b"[1, 2]", "Notification")
    message = notification(BODY)
    raw = __import__("json").dumps(message).encode()
    with pytest.raises(sns.MalformedMessage):
        sns.parse_body(raw, "SubscriptionConfirmation")
    with pytest.raises(sns.MalformedMessage):
        sns.parse_body(raw, None)
    assert sns.parse_body(raw, "Notification") == message
    missing = copy.deepcopy(message)
    del missing["TopicArn"]
    with pytest.raises(sns.MalformedMessage):
        sns.verify(missing)


def test_expired_certificate_is_refused(fake_sns):
    from tests.webhook.snsutil import make_key_and_cert

    key, pem = make_key_and_cert(days=0)  # valid until yesterday
    url = "https://sns.us-west-2.amazonaws.com/SimpleNotificationService-old.pem"
    fake_sns.documents[url] = pem
    with pytest.raises(sns.InvalidSignature, match="not valid at this time"):
        sns.verify(notification(BODY, cert_url=url, key=key))


def test_certificates_are_fetched_with_tls_verification(tmp_path):
    """https_get against a local HTTPS server: refused with the default trust store,
    read once the server's certificate is trusted."""
    import http.server
    import ssl
    import threading

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    start = datetime.now(UTC) - timedelta(days=1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "server.pem").write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(CERT_PEM)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "server.pem")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"https://localhost:{server.server_address[1]}/SimpleNotificationService-x.pem"
        with pytest.raises(OSError):  # self-signed: not trusted by the default context
            sns.https_get(url, timeout=5)
        trusting = ssl.create_default_context(cafile=str(tmp_path / "server.pem"))
        assert sns.https_get(url, timeout=5, context=trusting) == CERT_PEM
    finally:
        server.shutdown()
