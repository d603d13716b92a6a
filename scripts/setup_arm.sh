#!/usr/bin/env bash
# What the arm-cpu target and its boards need from the system (`make install` runs this):
# the aarch64 cross compiler (TVM's export_library and the C++ runner), qemu-user (the
# qemu-aarch64 board) and OpenSSH's server and client (the ssh board, tested on loopback).
# Debian/Ubuntu apt; as root, or through sudo. Already-installed tools are left alone.
set -euo pipefail
need=()
command -v aarch64-linux-gnu-g++ >/dev/null || need+=(g++-aarch64-linux-gnu)
command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh >/dev/null || need+=(openssh-client)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "setup_arm.sh: no apt-get; install ${need[*]} with your package manager" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo=sudo
fi
echo "setup_arm.sh: installing ${need[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
