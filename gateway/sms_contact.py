"""A received SMS run through a contact flow (the line's `sms_flow`): the flow's prompts become the
text of one reply SMS, its first GetParticipantInput reads the first character of the message (so
"reply 1 for opening hours" menus work), and the whole message is in $.Attributes.sms_text.
Queues hold voice calls only, so a transfer to a queue takes the flow's error branch. A Callgate.SendSms
to the sender adds its text to the reply; to another number it needs `send` (the line's send_sms).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import numpy as np


class SmsContact:
    channel = "SMS"

    def __init__(self, contact_id: str, sender: str, text: str, system_number: str, *, services=None,
                 send: Callable[[str, str], Awaitable[object]] | None = None) -> None:
        self.contact_id = contact_id
        self.customer_number = sender
        self.system_number = system_number
        self.queue_name: str | None = None
        self.attributes: dict[str, str] = {"sms_text": text}
        self.replies: list[str] = []
        self._unread = text.strip()[:1]
        self.services = services          # FlowServices: hours and webhooks, when the gateway has them
        self._send = send

    async def send_sms(self, number: str, text: str) -> object:
        if number == self.customer_number:
            self.replies.append(text)
            return None
        if self._send is None:
            raise RuntimeError("an SMS flow here can only reply to its sender")
        return await self._send(number, text)

    async def send_text(self, text: str) -> None:
        self.replies.append(text)

    async def play(self, samples: np.ndarray, *, interruptible: bool) -> str | None:
        raise ValueError("audio prompts cannot be played on the SMS channel")

    async def get_digit(self, timeout: float) -> str | None:
        digit, self._unread = self._unread, ""
        return digit or None

    def set_queue(self, queue_ref: str) -> bool:
        self.queue_name = queue_ref
        return True

    async def transfer_to_queue(self) -> str:
        raise ValueError("an SMS cannot wait in a voice queue")

    async def disconnect(self) -> None:
        return None

    def reply(self) -> str:
        return "\n".join(self.replies)
