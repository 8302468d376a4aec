#!/bin/sh
# Create the stream's topics (topics.conf) on the cluster, leaving existing ones alone.
# BOOTSTRAP: bootstrap servers; PARTITIONS: partitions per topic; PREFIX: topic prefix (default qw.)
set -eu
: "${BOOTSTRAP:?set BOOTSTRAP}" "${PARTITIONS:?set PARTITIONS}"
PREFIX="${PREFIX:-qw.}"
CONF="${TOPICS_CONF:-/etc/qualitywatch/topics.conf}"
KAFKA_TOPICS="${KAFKA_TOPICS:-/opt/kafka/bin/kafka-topics.sh}"

grep -v '^[[:space:]]*#' "$CONF" | while read -r name configs; do
  [ -n "$name" ] || continue
  set -- --config min.insync.replicas=2
  for c in $(echo "${configs:-}" | tr ',' ' '); do
    set -- "$@" --config "$c"
  done
  "$KAFKA_TOPICS" --bootstrap-server "$BOOTSTRAP" --create --if-not-exists \
    --topic "$PREFIX$name" --partitions "$PARTITIONS" --replication-factor 3 "$@"
done
"$KAFKA_TOPICS" --bootstrap-server "$BOOTSTRAP" --describe --topic "^${PREFIX}.*"
