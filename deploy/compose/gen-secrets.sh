#!/usr/bin/env bash
# Generates the secrets the Compose deployment needs, once, into ./secrets
# (mode 0700) and ./.env. Existing files are kept, so rerunning is safe;
# delete a file and rerun to rotate that secret (docs/security.md).
set -euo pipefail
cd "$(dirname "$0")"
umask 077
mkdir -p secrets
chmod 0700 secrets

rand() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

keep_or_write() { # file value
  if [[ ! -s $1 ]]; then printf '%s\n' "$2" >"$1"; echo "wrote $1"; fi
}

keep_or_write secrets/kafka_admin_password "$(rand)"
keep_or_write secrets/kafka_lambdalog_password "$(rand)"
keep_or_write secrets/serve_token "$(rand)"
keep_or_write secrets/realtime_http_token "$(rand)"
keep_or_write secrets/metrics_token "$(rand)"
admin=$(tr -d '\n' <secrets/kafka_admin_password)

# JAAS for the brokers: admin is the inter-broker and controller identity
# (PLAIN); lambdalog itself logs in with SCRAM-SHA-512, created by kafka-init.
cat >secrets/kafka_server_jaas.conf <<JAAS
KafkaServer {
  org.apache.kafka.common.security.plain.PlainLoginModule required
  username="admin"
  password="$admin"
  user_admin="$admin";
};
JAAS
cat >secrets/kafka_admin_client.properties <<PROPS
security.protocol=SASL_PLAINTEXT
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="$admin";
PROPS

if [[ ! -s .env ]]; then
  # KRaft cluster id: 16 random bytes, base64url without padding.
  cid=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
  printf 'KAFKA_CLUSTER_ID=%s\nCLICKHOUSE_PASSWORD=%s\n' "$cid" "$(rand)" >.env
  echo "wrote .env"
fi

# The containers run as non-root users other than yours and read these files
# through bind mounts: the files are world-readable, the directory is not.
chmod 0644 secrets/*
echo "secrets ready in $(pwd)/secrets"
