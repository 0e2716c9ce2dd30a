"""A test SNS: a key and self-signed certificate made here, messages signed like SNS signs."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from core.ingest.sns import string_to_sign

TOPIC = "arn:aws:sns:us-east-1:123456789012:mailwright-ses"
CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem"
SUBSCRIBE_URL = "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=" + TOPIC


def make_key_and_cert(days: int = 365, key_size: int = 2048) -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    start = datetime.now(UTC) - timedelta(days=1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM)


KEY, CERT_PEM = make_key_and_cert()
OTHER_KEY, OTHER_CERT_PEM = make_key_and_cert()


def iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def sign(message: dict[str, Any], key: rsa.RSAPrivateKey = KEY) -> dict[str, Any]:
    """Set Signature on `message` as SNS would for its SignatureVersion."""
    algorithm = hashes.SHA1() if message["SignatureVersion"] == "1" else hashes.SHA256()
    signature = key.sign(string_to_sign(message), padding.PKCS1v15(), algorithm)
    message["Signature"] = base64.b64encode(signature).decode()
    return message


def notification(
    body: dict[str, Any] | str,
    *,
    version: str = "1",
    subject: Any = ...,
    topic: str = TOPIC,
    at: datetime | None = None,
    message_id: str | None = None,
    cert_url: str = CERT_URL,
    key: rsa.RSAPrivateKey = KEY,
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "Type": "Notification",
        "MessageId": message_id or str(uuid.uuid4()),
        "TopicArn": topic,
        "Message": body if isinstance(body, str) else json.dumps(body),
        "Timestamp": iso(at or datetime.now(UTC)),
        "SignatureVersion": version,
        "SigningCertURL": cert_url,
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
    }
    if subject is not ...:
        message["Subject"] = subject
    return sign(message, key)


def subscription(kind: str = "SubscriptionConfirmation", version: str = "1") -> dict[str, Any]:
    message = {
        "Type": kind,
        "MessageId": str(uuid.uuid4()),
        "Token": "2336412f37fb687f5d51e6e2425c464de12884",
        "TopicArn": TOPIC,
        "Message": "You have chosen to subscribe to the topic. To confirm, visit the SubscribeURL.",
        "SubscribeURL": SUBSCRIBE_URL,
        "Timestamp": iso(datetime.now(UTC)),
        "SignatureVersion": version,
        "SigningCertURL": CERT_URL,
    }
    return sign(message)


def ses_event(
    kind: str,
    provider_id: str,
    recipients: list[str],
    *,
    form: str = "eventType",
    tags: dict[str, list[str]] | None = None,
    **detail: Any,
) -> dict[str, Any]:
    """An SES event (`form` "eventType" for event publishing, "notificationType" for the
    older identity notifications) with the detail object SES puts beside `mail`."""
    now = iso(datetime.now(UTC))
    body: dict[str, Any] = {
        form: kind,
        "mail": {
            "timestamp": now,
            "source": "news@acme.example",
            "messageId": provider_id,
            "destination": recipients,
            "tags": tags or {"ses:configuration-set": ["mailwright"]},
        },
    }
    if kind == "Bounce":
        body["bounce"] = {
            "bounceType": detail.get("bounce_type", "Permanent"),
            "bounceSubType": "General",
            "bouncedRecipients": [
                {
                    "emailAddress": r,
                    "status": "5.1.1",
                    "diagnosticCode": "smtp; 550 5.1.1 no such user",
                }
                for r in recipients
            ],
            "timestamp": now,
            "feedbackId": detail.get("feedback_id", str(uuid.uuid4())),
        }
    elif kind == "Complaint":
        body["complaint"] = {
            "complainedRecipients": [{"emailAddress": r} for r in recipients],
            "timestamp": now,
            "feedbackId": str(uuid.uuid4()),
            "complaintFeedbackType": "abuse",
        }
    elif kind == "Delivery":
        body["delivery"] = {"timestamp": now, "recipients": recipients, "smtpResponse": "250 ok"}
    elif kind == "Send":
        body["send"] = {}
    elif kind == "Reject":
        body["reject"] = {"reason": "Bad content"}
    elif kind in ("Open", "Click"):
        body[kind.lower()] = {
            "timestamp": now,
            "ipAddress": "192.0.2.1",
            "userAgent": detail.get("user_agent", "Mozilla/5.0 (Windows NT 10.0) Thunderbird"),
        }
        if kind == "Click":
            body["click"]["link"] = detail.get("link", "https://acme.example/offer")
    elif kind == "Rendering Failure":
        body["failure"] = {"errorMessage": "Attribute 'name' is not present", "templateName": "t"}
    elif kind == "DeliveryDelay":
        body["deliveryDelay"] = {
            "timestamp": now,
            "delayType": "MailboxFull",
            "delayedRecipients": [{"emailAddress": r, "status": "4.2.2"} for r in recipients],
        }
    elif kind == "Subscription":
        body["subscription"] = {
            "contactList": "news",
            "timestamp": now,
            "source": "UnsubscribeHeader",
            "newTopicPreferences": {"unsubscribeAll": True},
        }
    return body
