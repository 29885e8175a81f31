#!/usr/bin/env bash
# Creates lambdalog's topics, its SCRAM user and the ACLs it needs, as the
# Kafka super user (admin, SASL PLAIN on the inter-broker listener).
# Idempotent: run on every `docker compose up`.
set -euo pipefail

BS=kafka-1:19092,kafka-2:19092,kafka-3:19092
CC=/run/secrets/kafka_admin_client
BIN=/opt/kafka/bin
PARTITIONS=${PARTITIONS:-12}
TOPICS=(auth firewall ids web alerts late-events quarantine)
# The speed layer's internal repartition topics (docs/realtime.md,
# Repartitioning): one per key of the default rules not keyed by the source
# address, named <realtime group>-repartition-<key>, with the source topics'
# partition count. Created here with production replication so the service
# does not create them with the broker defaults.
TOPICS+=(lambdalog-realtime-repartition-user_name lambdalog-realtime-repartition-destination_ip)

for t in "${TOPICS[@]}"; do
  "$BIN/kafka-topics.sh" --bootstrap-server "$BS" --command-config "$CC" \
    --create --if-not-exists --topic "$t" --partitions "$PARTITIONS" \
    --replication-factor 3 --config min.insync.replicas=2
done

# The SCRAM credential is (re)set from the secret file, so rotating the
# password is: new file, rerun this job, restart the lambdalog services.
pw=$(tr -d '\n' </run/secrets/kafka_lambdalog_password)
"$BIN/kafka-configs.sh" --bootstrap-server "$BS" --command-config "$CC" \
  --alter --entity-type users --entity-name lambdalog \
  --add-config "SCRAM-SHA-512=[iterations=8192,password=$pw]"

acl() {
  "$BIN/kafka-acls.sh" --bootstrap-server "$BS" --command-config "$CC" \
    --add --force --allow-principal User:lambdalog "$@"
}
topic_args=()
for t in "${TOPICS[@]}"; do topic_args+=(--topic "$t"); done
acl --operation Read --operation Write --operation Describe "${topic_args[@]}"
acl --operation Read --operation Describe --group lambdalog-consume --group lambdalog-realtime
# The speed layer commits alerts and offsets in Kafka transactions.
acl --operation Write --operation Describe --resource-pattern-type prefixed --transactional-id lambdalog
acl --operation IdempotentWrite --cluster

"$BIN/kafka-topics.sh" --bootstrap-server "$BS" --command-config "$CC" --describe | grep -E '^Topic:' || true
echo "kafka-init: topics, user and ACLs in place"
