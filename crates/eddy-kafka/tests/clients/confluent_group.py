"""confluent-kafka: a group of 3 consumers sharing 6 partitions, one leaving mid-way, no
record lost; manual commit and resume from the committed offset after the consumer is
restarted; AdminClient create, describe, delete. Usage: confluent_group.py BOOTSTRAP"""
import sys
import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

boot = sys.argv[1]
admin = AdminClient({"bootstrap.servers": boot})
for f in admin.create_topics([NewTopic("ck-group", num_partitions=6, replication_factor=3)]).values():
    f.result()
md = admin.list_topics("ck-group", timeout=10)
assert len(md.topics["ck-group"].partitions) == 6

p = Producer({"bootstrap.servers": boot, "enable.idempotence": True})
expected = set()
for i in range(600):
    p.produce("ck-group", key=str(i), value=str(i))
    expected.add(str(i))
assert p.flush(30) == 0

lock = threading.Lock()
got = set()
stop = threading.Event()
assigned = {}


def member(name, leave_after):
    c = Consumer(
        {
            "bootstrap.servers": boot,
            "group.id": "ck-three",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 10000,
            "heartbeat.interval.ms": 500,
        }
    )
    c.subscribe(["ck-group"], on_assign=lambda _c, ps: assigned.__setitem__(name, len(ps)))
    n = 0
    while not stop.is_set():
        m = c.poll(0.5)
        if m is None or m.error() is not None:
            continue
        with lock:
            got.add(m.value().decode())
        c.commit(message=m, asynchronous=False)
        n += 1
        if leave_after is not None and n >= leave_after:
            break
    c.close()


threads = [
    threading.Thread(target=member, args=("a", None)),
    threading.Thread(target=member, args=("b", None)),
    threading.Thread(target=member, args=("c", 20)),
]
for t in threads:
    t.start()
deadline = time.time() + 90
while time.time() < deadline:
    with lock:
        if got >= expected:
            break
    time.sleep(0.2)
stop.set()
for t in threads:
    t.join()
assert got >= expected, f"lost {len(expected - got)} records, e.g. {sorted(expected - got)[:5]}"
assert len(assigned) == 3, assigned

# Manual commit, then a restarted consumer resumes right after it.
c = Consumer(
    {
        "bootstrap.servers": boot,
        "group.id": "ck-resume",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    }
)
c.assign([TopicPartition("ck-group", 0, 0)])
first = []
while len(first) < 10:
    m = c.poll(10.0)
    assert m is not None
    first.append(m.offset())
c.commit(offsets=[TopicPartition("ck-group", 0, first[-1] + 1)], asynchronous=False)
c.close()
c = Consumer({"bootstrap.servers": boot, "group.id": "ck-resume", "auto.offset.reset": "earliest"})
c.assign([TopicPartition("ck-group", 0)])  # from the committed offset
m = c.poll(10.0)
assert m is not None and m.offset() == first[-1] + 1, (m and m.offset(), first)
c.close()

for f in admin.delete_topics(["ck-group"]).values():
    f.result()
time.sleep(0.5)
assert "ck-group" not in admin.list_topics(timeout=10).topics
print("ok")
