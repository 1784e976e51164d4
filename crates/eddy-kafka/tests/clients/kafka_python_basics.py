"""kafka-python against Eddy: JSON producer to an explicit partition and by key, consumers
with and without a group (auto_offset_reset='earliest'), commits, and the admin client
creating and deleting topics. Usage: kafka_python_basics.py BOOTSTRAP"""
import json
import sys

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

boot = sys.argv[1].split(",")

admin = KafkaAdminClient(bootstrap_servers=boot, client_id="py-admin")
admin.create_topics([NewTopic("py-json", 3, 3), NewTopic("py-tmp", 1, 1)])
assert {"py-json", "py-tmp"} <= set(admin.list_topics()), admin.list_topics()

producer = KafkaProducer(
    bootstrap_servers=boot,
    value_serializer=lambda v: json.dumps(v).encode(),
    acks="all",
)
sent = []
for i in range(30):
    md = producer.send("py-json", {"n": i}, key=f"user-{i % 5}".encode()).get(timeout=30)
    sent.append((md.partition, md.offset, i))
md = producer.send("py-json", {"explicit": True}, partition=2).get(timeout=30)
assert md.partition == 2, md
producer.flush()
# One key, one partition.
by_key = {}
for (p, _, i) in sent:
    by_key.setdefault(i % 5, set()).add(p)
assert all(len(ps) == 1 for ps in by_key.values()), by_key

# Without a group: read everything from the beginning.
plain = KafkaConsumer(
    "py-json",
    bootstrap_servers=boot,
    auto_offset_reset="earliest",
    enable_auto_commit=False,
    consumer_timeout_ms=5000,
)
values = [json.loads(m.value) for m in plain]
plain.close()
assert len(values) == 31, values
assert sorted(v["n"] for v in values if "n" in v) == list(range(30))

# In a group, committing by hand: a second consumer of the group starts after the commit.
group = KafkaConsumer(
    "py-json",
    bootstrap_servers=boot,
    group_id="py-group",
    auto_offset_reset="earliest",
    enable_auto_commit=False,
    consumer_timeout_ms=8000,
)
seen = 0
for _ in group:
    seen += 1
    if seen == 31:
        break
assert seen == 31, seen
group.commit()
committed = {p: group.committed(TopicPartition("py-json", p)) for p in range(3)}
assert sum(committed.values()) == 31, committed
group.close()

again = KafkaConsumer(
    "py-json",
    bootstrap_servers=boot,
    group_id="py-group",
    auto_offset_reset="earliest",
    consumer_timeout_ms=4000,
)
leftover = list(again)
again.close()
assert leftover == [], leftover

# acks=0: no answer is awaited, the records still land.
fire = KafkaProducer(bootstrap_servers=boot, acks=0)
for i in range(5):
    fire.send("py-tmp", f"f{i}".encode(), partition=0)
fire.flush()
fire.close()
landed = KafkaConsumer(
    "py-tmp", bootstrap_servers=boot, auto_offset_reset="earliest", consumer_timeout_ms=4000
)
got0 = sorted(m.value.decode() for m in landed)
landed.close()
assert got0 == [f"f{i}" for i in range(5)], got0

admin.delete_topics(["py-tmp"])
assert "py-tmp" not in admin.list_topics()
groups = [g["group_id"] for g in admin.list_groups()]
assert "py-group" in groups, groups
admin.close()
print("ok")
