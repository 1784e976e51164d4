"""The chat producer of Eddy's original design, with kafka-python: chat messages as JSON to
per-user topics `user_<id>`, each message in a context bubble. It runs against Eddy (or any
Kafka cluster) unchanged but for the bootstrap address.

A new message starts a bubble (a fresh `context_id`); a reply inherits its parent's. The
record key is the `context_id`, so Kafka's default partitioner (murmur2, the same in every
client and in Eddy) puts every message of a bubble on one partition, and `partition_hint`
says which. (The original sketch picked a random partition for a new bubble and hashed
replies with Python's per-process-randomized `hash()`, which split bubbles across
partitions.)

    python chat_producer.py --bootstrap 127.0.0.1:9092
"""

import argparse
import json
import time
import uuid

from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError
from kafka.partitioner.default import murmur2

PARTITIONS = 10

# sender, text, index of the message it replies to (or None)
CHAT = [
    ("ann", "has anyone tried the new release?", None),
    ("bob", "lunch at noon anyone?", None),
    ("cid", "@ann yes, the installer is much faster", 0),
    ("dan", "@bob count me in", 1),
    ("ann", "@cid did the upgrade keep your settings?", 2),
    ("cid", "@ann it did, all of them", 4),
    ("bob", "great, see you at noon", 3),
]


def partition_of(context_id, partitions=PARTITIONS):
    return (murmur2(context_id.encode()) & 0x7FFFFFFF) % partitions


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--chat", default="team", help="the chat (room) id")
    ap.add_argument("--run", default=uuid.uuid4().hex[:8], help="prefix of message ids")
    args = ap.parse_args()

    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap)
    for user in sorted({s for s, _, _ in CHAT}):
        try:
            admin.create_topics([NewTopic(f"user_{user}", PARTITIONS, 1)])
        except TopicAlreadyExistsError:
            pass
    admin.close()

    producer = KafkaProducer(
        bootstrap_servers=args.bootstrap,
        value_serializer=lambda v: json.dumps(v).encode(),
        key_serializer=lambda k: k.encode(),
        acks="all",
    )
    sent = []
    now = int(time.time() * 1000) - len(CHAT) * 1000
    for i, (sender, text, parent) in enumerate(CHAT):
        message_id = f"{args.run}-{i + 1}"
        if parent is None:
            context_id = f"ctx-{message_id}"
            thread_id = context_id
            parent_id = None
        else:
            context_id = sent[parent]["context_id"]
            thread_id = sent[parent]["thread_id"]
            parent_id = sent[parent]["message_id"]
        message = {
            "message_id": message_id,
            "content": text,
            "context_id": context_id,
            "parent_message_id": parent_id,
            "thread_id": thread_id,
            "partition_hint": partition_of(context_id),
            "sender_id": sender,
            "sender_name": sender.capitalize(),
            "chat_id": args.chat,
            "timestamp": now + i * 1000,
            "mentions": [w[1:] for w in text.split() if w.startswith("@")],
            "kind": "reply" if parent_id else "message",
        }
        meta = producer.send(
            f"user_{sender}", key=context_id, value=message, timestamp_ms=message["timestamp"]
        ).get(timeout=30)
        assert meta.partition == message["partition_hint"], (meta.partition, message)
        sent.append(message)
        print(f"sent {message_id} to user_{sender}[{meta.partition}]@{meta.offset}: {text}")
    producer.flush()
    producer.close()


if __name__ == "__main__":
    main()
