"""The chat consumer of Eddy's original design, with kafka-python: every user topic
(`^user_.*`) read from the beginning (`auto_offset_reset='earliest'`) in a consumer group,
messages grouped by their context bubble; it stops once caught up (or follows). It runs against Eddy (or any Kafka cluster)
unchanged but for the bootstrap address.

    python chat_consumer.py --bootstrap 127.0.0.1:9092
"""

import argparse
import json
import time
from collections import defaultdict

from kafka import KafkaConsumer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--group", default="chat-reader")
    ap.add_argument("--chat", default=None, help="only this chat (room) id")
    ap.add_argument("--follow", action="store_true", help="keep reading (default: stop once caught up)")
    ap.add_argument("--max-wait-s", type=float, default=60, help="give up catching up after this long")
    ap.add_argument("--json", action="store_true", help="end with a one-line JSON summary")
    args = ap.parse_args()

    consumer = KafkaConsumer(
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        auto_offset_reset="earliest",
        value_deserializer=lambda v: json.loads(v),
    )
    consumer.subscribe(pattern="^user_.*")
    bubbles = defaultdict(list)
    deadline = time.time() + args.max_wait_s
    while True:
        for records in consumer.poll(timeout_ms=500).values():
            for record in records:
                m = record.value
                if not isinstance(m, dict) or "context_id" not in m:
                    continue
                if args.chat and m.get("chat_id") != args.chat:
                    continue
                bubbles[m["context_id"]].append((record.topic, record.partition, m))
        if args.follow:
            continue
        assigned = consumer.assignment()
        if assigned:
            ends = consumer.end_offsets(list(assigned))
            if all(consumer.position(tp) >= ends[tp] for tp in assigned):
                break  # caught up
        if time.time() > deadline:
            raise SystemExit("gave up: not caught up after %.0f s" % args.max_wait_s)
    consumer.commit()
    consumer.close()

    one_partition = True
    for context_id, items in sorted(bubbles.items(), key=lambda kv: min(x[2]["timestamp"] for x in kv[1])):
        items.sort(key=lambda x: x[2]["timestamp"])
        partitions = {p for _, p, _ in items}
        one_partition &= len(partitions) == 1
        print(f"bubble {context_id} (partition {','.join(map(str, sorted(partitions)))})")
        for topic, _, m in items:
            arrow = f" -> {m['parent_message_id']}" if m.get("parent_message_id") else ""
            print(f"  {m['message_id']}{arrow} {m['sender_name']}: {m['content'] or m.get('emoji', '')}")
    if args.json:
        print(json.dumps({
            "messages": sum(len(v) for v in bubbles.values()),
            "bubbles": len(bubbles),
            "one_partition_per_bubble": one_partition,
        }))


if __name__ == "__main__":
    main()
