"""Reads a topic from the beginning and checks every value listed in a file is there.
Usage: restart_consume.py BOOTSTRAP IN_FILE"""
import sys

from confluent_kafka import Consumer, TopicPartition

boot, path = sys.argv[1], sys.argv[2]
want = set(open(path).read().split("\n"))
c = Consumer({"bootstrap.servers": boot, "group.id": "restart-check", "auto.offset.reset": "earliest"})
md = c.list_topics("durable", timeout=10)
c.assign([TopicPartition("durable", p, 0) for p in md.topics["durable"].partitions])
got = set()
while not want <= got:
    m = c.poll(10.0)
    assert m is not None, f"missing {len(want - got)} acknowledged records"
    assert m.error() is None, m.error()
    got.add(m.value().decode())
c.close()
print("ok")
