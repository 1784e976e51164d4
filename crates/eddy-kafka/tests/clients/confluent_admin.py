"""confluent-kafka's AdminClient against Eddy: create, describe (topics, configs, cluster),
create partitions, delete records, delete. Usage: confluent_admin.py BOOTSTRAP"""
import sys

from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

boot = sys.argv[1]
a = AdminClient({"bootstrap.servers": boot})
for f in a.create_topics(
    [NewTopic("adm", num_partitions=2, replication_factor=3, config={"retention.ms": "3600000"})]
).values():
    f.result()
# Creating it again is refused with TOPIC_ALREADY_EXISTS.
try:
    a.create_topics([NewTopic("adm", num_partitions=2)])["adm"].result()
    raise AssertionError("created twice")
except Exception as e:  # KafkaException
    assert "TOPIC_ALREADY_EXISTS" in str(e) or "already exists" in str(e), e

md = a.list_topics(timeout=10)
assert len(md.topics["adm"].partitions) == 2
assert len(md.brokers) == 3

cluster = a.describe_cluster().result()
assert len(cluster.nodes) == 3, cluster

res = ConfigResource(ResourceType.TOPIC, "adm")
configs = a.describe_configs([res])[res].result()
assert configs["retention.ms"].value == "3600000", configs["retention.ms"]
broker = ConfigResource(ResourceType.BROKER, "0")
assert "num.partitions" in a.describe_configs([broker])[broker].result()

for f in a.create_partitions([NewPartitions("adm", 4)]).values():
    f.result()
assert len(a.list_topics(timeout=10).topics["adm"].partitions) == 4

p = Producer({"bootstrap.servers": boot})
for i in range(10):
    p.produce("adm", value=str(i), partition=0)
assert p.flush(30) == 0
deleted = a.delete_records([TopicPartition("adm", 0, 6)])
for f in deleted.values():
    low = f.result()
    assert low.low_watermark == 6, low.low_watermark

for f in a.delete_topics(["adm"]).values():
    f.result()
print("ok")
