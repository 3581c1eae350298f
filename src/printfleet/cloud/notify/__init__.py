"""Notifications: telling people what happened, on every channel (S6) and at every job end (S7).

A :class:`Notification` goes through a :class:`Notifier` to the in-process :class:`EventBus`
(server-sent events for the dashboard, CLI and SDK: :func:`sse_response`) and to each of a
user's channels: signed webhooks (:class:`WebhookSender`; receivers use :func:`verify`) and
e-mail or any other Apprise service (:class:`AppriseSender`). Deliveries given up on go to a
dead-letter sink as :class:`DeadLetter` for the store to keep. Both kinds of channel connect
only where the :class:`OutboundPolicy` allows.
"""

from printfleet.cloud.notify.apprise_sender import (
    APPRISE_SERVICES,
    AppriseDelivery,
    AppriseSender,
    check_apprise_url,
)
from printfleet.cloud.notify.bus import (
    BusStats,
    EventBus,
    Subscription,
    SubscriptionClosed,
    TooManySubscribersError,
)
from printfleet.cloud.notify.model import (
    ALERT_KINDS,
    DEFAULT_SEVERITY,
    JOB_ENDS,
    DeadLetter,
    DeadLetterSink,
    JsonValue,
    Notification,
    NotificationKind,
    Severity,
    from_alert,
    goes_to_channels,
    must_tell_submitter,
    new_notification_id,
    redact_url,
)
from printfleet.cloud.notify.notifier import (
    Channel,
    ChannelKind,
    DeliveryListener,
    DeliveryOutcome,
    Notifier,
    NotifierStats,
    NotifyReceipt,
)
from printfleet.cloud.notify.outbound import (
    OutboundPolicy,
    OutboundRefused,
    outbound_client,
    vetted_resolution,
)
from printfleet.cloud.notify.sse import (
    EventStreamResponse,
    event_stream,
    format_control,
    format_event,
    sse_response,
)
from printfleet.cloud.notify.webhook import (
    DEFAULT_TOLERANCE_S,
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    DeliveryResult,
    SignatureError,
    WebhookSender,
    sign,
    verify,
)
from printfleet.http_retry_after import parse_retry_after

__all__ = [
    "ALERT_KINDS",
    "APPRISE_SERVICES",
    "DEFAULT_SEVERITY",
    "DEFAULT_TOLERANCE_S",
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "JOB_ENDS",
    "SIGNATURE_HEADER",
    "AppriseDelivery",
    "AppriseSender",
    "BusStats",
    "Channel",
    "ChannelKind",
    "DeadLetter",
    "DeadLetterSink",
    "DeliveryListener",
    "DeliveryOutcome",
    "DeliveryResult",
    "EventBus",
    "EventStreamResponse",
    "JsonValue",
    "Notification",
    "NotificationKind",
    "Notifier",
    "NotifierStats",
    "NotifyReceipt",
    "OutboundPolicy",
    "OutboundRefused",
    "Severity",
    "SignatureError",
    "Subscription",
    "SubscriptionClosed",
    "TooManySubscribersError",
    "WebhookSender",
    "check_apprise_url",
    "event_stream",
    "format_control",
    "format_event",
    "from_alert",
    "goes_to_channels",
    "must_tell_submitter",
    "new_notification_id",
    "outbound_client",
    "parse_retry_after",
    "redact_url",
    "sign",
    "sse_response",
    "verify",
    "vetted_resolution",
]
