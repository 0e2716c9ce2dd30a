"""The FastAPI service: SNS notifications from SES, tracking and unsubscribe."""
