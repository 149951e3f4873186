"""The MQTT network thread's hand-off to the event loop (api.live.mqtt_feed.Inbox): every message arrives once and
in order, in batches, and a full inbox holds the network thread back instead of dropping anything."""

from __future__ import annotations

import asyncio
import threading

from api.live.mqtt_feed import Inbox


def test_every_message_arrives_once_in_order_and_a_full_inbox_holds_the_sender_back() -> None:
    count, cap = 5000, 64

    async def main() -> tuple[list[tuple[str, bytes, float]], list[int]]:
        inbox = Inbox(asyncio.get_running_loop(), max_messages=cap)
        sizes: list[int] = []

        def network_thread() -> None:
            for i in range(count):
                inbox.put(f"t/{i}", str(i).encode(), float(i))

        sender = threading.Thread(target=network_thread)
        sender.start()
        got: list[tuple[str, bytes, float]] = []
        while len(got) < count:
            batch = await asyncio.wait_for(inbox.take(), 30)
            sizes.append(len(batch))
            got.extend(batch)
            await asyncio.sleep(0)      # a slow consumer: the sender fills the inbox meanwhile
        await asyncio.to_thread(sender.join, 30)
        return got, sizes

    got, sizes = asyncio.run(main())
    assert got == [(f"t/{i}", str(i).encode(), float(i)) for i in range(count)]
    assert max(sizes) <= cap            # never more than the cap waiting: the sender waited for room
    assert len(sizes) < count           # handed over in batches, not one by one
