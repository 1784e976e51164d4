"""Produces records with acks=all and writes the acknowledged values to a file.
Usage: restart_produce.py BOOTSTRAP OUT_FILE"""
import sys

from confluent_kafka import Producer

boot, out = sys.argv[1], sys.argv[2]
acked = []
p = Producer({"bootstrap.servers": boot, "acks": "all", "enable.idempotence": True})
for i in range(500):
    p.produce(
        "durable",
        key=str(i % 7),
        value=f"v{i}",
        on_delivery=lambda err, m: err is None and acked.append(m.value().decode()),
    )
assert p.flush(30) == 0
assert len(acked) == 500, len(acked)
with open(out, "w") as f:
    f.write("\n".join(acked))
print("ok")
