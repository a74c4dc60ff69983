"""The `sms` and `whatsapp` channel kinds, through Twilio (see README.md here)."""

from adapters.twilio.kind import Sms, WhatsApp

__all__ = ["Sms", "WhatsApp"]
