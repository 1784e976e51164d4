"""confluent-kafka (librdkafka): an idempotent producer with each compression codec, read
back whole; offsets for times. Usage: confluent_codecs.py BOOTSTRAP"""
import sys

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

boot = sys.argv[1]
admin = AdminClient({"bootstrap.servers": boot})
for f in admin.create_topics([NewTopic("ck-codecs", num_partitions=4, replication_factor=3)]).values():
    f.result()

expected = set()
failures = []
for codec in ["gzip", "snappy", "lz4", "zstd"]:
    p = Producer(
        {
            "bootstrap.servers": boot,
            "enable.idempotence": True,
            "compression.type": codec,
            "linger.ms": 5,
        }
    )

    def done(err, msg):
        if err is not None:
            failures.append(err)

    for i in range(200):
        value = f"{codec}-{i}-" + "x" * (i % 50)
        p.produce("ck-codecs", key=str(i), value=value, timestamp=1_000_000 + i, on_delivery=done)
        expected.add(value)
    assert p.flush(30) == 0, codec
assert not failures, failures

c = Consumer(
    {
        "bootstrap.servers": boot,
        "group.id": "ck-codecs-reader",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    }
)
c.assign([TopicPartition("ck-codecs", p, 0) for p in range(4)])
got = set()
while len(got) < len(expected):
    m = c.poll(10.0)
    assert m is not None, f"timed out with {len(got)} of {len(expected)}"
    assert m.error() is None, m.error()
    got.add(m.value().decode())
assert got == expected

# Offsets for times: the first record at or after timestamp 1_000_150 in each partition.
found = c.offsets_for_times([TopicPartition("ck-codecs", p, 1_000_150) for p in range(4)], 10)
for tp in found:
    assert tp.error is None and tp.offset >= 0, tp
c.assign([found[0]])
m = c.poll(10.0)
assert m is not None and m.timestamp()[1] >= 1_000_150, m and m.timestamp()
c.close()
print("ok")
