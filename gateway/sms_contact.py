"""A received SMS run through a contact flow (the line's `sms_flow`): the flow's prompts become the
text of one reply SMS, its first GetParticipantInput reads the first character of the message (so
"reply 1 for opening hours" menus work), and the whole message is in $.Attributes.sms_text.
Queues hold voice calls only, so a transfer to a queue takes the flow's error branch.
"""

from __future__ import annotations

import numpy as np


class SmsContact:
    channel = "SMS"

    def __init__(self, contact_id: str, sender: str, text: str, system_number: str) -> None:
        self.contact_id = contact_id
        self.customer_number = sender
        self.system_number = system_number
        self.queue_name: str | None = None
        self.attributes: dict[str, str] = {"sms_text": text}
        self.replies: list[str] = []
        self._unread = text.strip()[:1]

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
