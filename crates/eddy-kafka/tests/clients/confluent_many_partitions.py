"""confluent-kafka: a topic per user at small scale. 200 topics user_<i> of 10 partitions
(2,000 partitions, replication factor 3), one record to every partition with acks=all, all
acknowledged; one consumer group subscribed by regex reads every record exactly once, commits,
and a second member of the same group then finds nothing left.
Usage: confluent_many_partitions.py BOOTSTRAP"""
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

USERS = 200
PARTITIONS = 10

boot = sys.argv[1]
t0 = time.monotonic()
admin = AdminClient({"bootstrap.servers": boot})
futures = admin.create_topics(
    [NewTopic(f"user_{u}", num_partitions=PARTITIONS, replication_factor=3) for u in range(USERS)],
    request_timeout=60,
)
for f in futures.values():
    f.result()
created = time.monotonic()

p = Producer({"bootstrap.servers": boot, "acks": "all", "linger.ms": 5})
acked = []
failed = []


def report(err, msg):
    if err is not None:
        failed.append(str(err))
    else:
        acked.append((msg.topic(), msg.partition(), msg.offset()))


expected = set()
for u in range(USERS):
    for part in range(PARTITIONS):
        value = f'{{"user":{u},"partition":{part},"text":"hello"}}'
        p.produce(f"user_{u}", value=value, partition=part, on_delivery=report)
        expected.add(value)
    p.poll(0)
assert p.flush(60) == 0, "records still queued after 60 s"
assert not failed, failed[:5]
assert len(acked) == USERS * PARTITIONS, len(acked)
# One record at offset 0 of each partition: each partition acknowledged exactly once.
assert sorted(acked) == sorted((f"user_{u}", part, 0) for u in range(USERS) for part in range(PARTITIONS))
produced = time.monotonic()


def member():
    return Consumer(
        {
            "bootstrap.servers": boot,
            "group.id": "many-readers",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "topic.metadata.refresh.interval.ms": 1000,
        }
    )


c = member()
c.subscribe(["^user_.*"])
got = []
deadline = time.monotonic() + 120
while len(got) < len(expected) and time.monotonic() < deadline:
    for m in c.consume(num_messages=1000, timeout=0.5):
        if m.error() is not None:
            raise KafkaException(m.error())
        got.append(m.value().decode())
read = time.monotonic()
assert len(got) == len(expected), f"read {len(got)} of {len(expected)}"
assert len(set(got)) == len(got), "a record was read twice"
assert set(got) == expected
# Nothing more arrives, then the group's positions are committed for every partition.
for m in c.consume(num_messages=1000, timeout=1.0):
    assert m.error() is not None, f"read again: {m.value()}"
c.commit(asynchronous=False)
committed = c.committed(c.assignment(), timeout=30)
assert len(committed) == USERS * PARTITIONS, len(committed)
assert all(tp.offset == 1 for tp in committed), [tp for tp in committed if tp.offset != 1][:5]
c.close()

# A new member of the group resumes from the commits: once it holds every partition and
# has fetched for a while, nothing was read.
c = member()
assigned = []
c.subscribe(["^user_.*"], on_assign=lambda _c, ps: assigned.append(len(ps)))
deadline = time.monotonic() + 60
quiet_until = None
while time.monotonic() < deadline:
    for m in c.consume(num_messages=1000, timeout=0.5):
        assert m.error() is not None, f"read again after the commit: {m.value()}"
    if quiet_until is None and assigned and assigned[-1] == USERS * PARTITIONS:
        quiet_until = time.monotonic() + 3
    if quiet_until is not None and time.monotonic() > quiet_until:
        break
assert quiet_until is not None, f"the second member was assigned {assigned}"
positions = c.position(c.assignment())
assert all(tp.offset in (1, -1001) for tp in positions), [tp for tp in positions if tp.offset not in (1, -1001)][:5]
c.close()
print(
    f"ok created {created - t0:.2f}s produced {produced - created:.2f}s read {read - produced:.2f}s"
)
