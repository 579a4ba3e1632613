#!/usr/bin/env bash
# Makes sure a Java development kit (17 or newer: java and javac) is on PATH for DynamoDB Local
# and its loopback launcher: installs the OS package when running as root on Debian/Ubuntu,
# otherwise says what to install.
set -euo pipefail
if command -v java >/dev/null 2>&1 && command -v javac >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Java 17 (openjdk-17-jdk-headless) for DynamoDB Local" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jdk-headless >/dev/null
  exit 0
fi
echo "A JDK 17 or newer (java and javac) is required for DynamoDB Local: install openjdk-17-jdk-headless (or any JDK 17+) and re-run" >&2
exit 1
