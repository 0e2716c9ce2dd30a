"""Domain errors with messages a marketer can read."""


class MailwrightError(Exception):
    """Base of every error `core` raises on purpose."""


class NotFound(MailwrightError):
    """The row does not exist in the acting workspace."""


class PermissionDenied(MailwrightError):
    """The acting user's role does not allow this."""


class ValidationFailed(MailwrightError):
    """Input that cannot be accepted as it is."""


class WeakPassword(ValidationFailed):
    """A password that does not meet the policy."""


class InvalidToken(MailwrightError):
    """A signed or stored token that is forged, altered, expired or used."""


class TransportError(MailwrightError):
    """Base for failures while handing a message to the mail transport."""


class TransientSendError(TransportError):
    """Worth retrying later: throttling, timeouts, a 4xx SMTP reply."""


class ThrottledSendError(TransientSendError):
    """The provider asked us to slow down (SES Throttling, SMTP 454)."""


class PermanentSendError(TransportError):
    """This message will never be accepted (rejected, invalid address)."""


class TransportMisconfigured(TransportError):
    """No message can go out until someone fixes the configuration."""
