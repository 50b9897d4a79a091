#!/usr/bin/env bash
# System components Berth drives for real. Idempotent and quick when everything is in place.
#   scripts/system.sh packages run|test|bench   install the Debian packages that are missing (apt-get update first)
#   scripts/system.sh dockerd-start       start dockerd if no engine answers; prints "started" if it did
#   scripts/system.sh dockerd-stop        stop the dockerd this script started
set -euo pipefail

# The mail server (mail_server/): Berth runs its own Postfix, Dovecot and rspamd instances.
RUN_NEEDS=(dockerd:docker.io nginx:nginx-light postfix:postfix dovecot:dovecot-core
           /usr/lib/dovecot/imap:dovecot-imapd /usr/lib/dovecot/lmtp:dovecot-lmtpd rspamd:rspamd
           /usr/lib/*/sasl2/libplain.so:libsasl2-modules debootstrap:debootstrap)
TEST_NEEDS=(chromium:chromium chromedriver:chromium-driver curl:curl /bin/busybox:busybox-static
            /usr/lib/postgresql/*/bin/initdb:postgresql docker-registry:docker-registry
            pebble:pebble named:bind9 slapd:slapd ldapsearch:ldap-utils htpasswd:apache2-utils
            sshd:openssh-server sshfs:sshfs git:git)
BENCH_NEEDS=(wrk:wrk zstd:zstd)
PIDFILE=/run/berth-dockerd.pid

have() { case "$1" in /*) compgen -G "$1" >/dev/null ;; *) command -v "$1" >/dev/null || [ -x "/usr/sbin/$1" ] ;; esac; }

packages() {
  local needs=("${RUN_NEEDS[@]}") missing=()
  [ "${1:-run}" != run ] && needs+=("${TEST_NEEDS[@]}")
  [ "${1:-run}" = bench ] && needs+=("${BENCH_NEEDS[@]}")
  for item in "${needs[@]}"; do
    have "${item%%:*}" || missing+=("${item##*:}")
  done
  # busybox must be the static build: test images are FROM scratch
  if [ "${1:-run}" != run ] && [ -x /bin/busybox ] && ldd /bin/busybox >/dev/null 2>&1; then
    missing+=(busybox-static)
  fi
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing: ${missing[*]}"
  apt-get update -qq
  # The system's own Postfix stays unconfigured: Berth's instance owns the mail ports.
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  # Packages start their system services where an init system runs: Berth's instances and the
  # tests' own servers need nothing of them. Only services of packages installed just now are
  # stopped (an sshd someone logs in through was there before and stays).
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    local units=() pkg
    for pkg in "${missing[@]}"; do
      case "$pkg" in
        postfix) units+=(postfix) ;; dovecot-core) units+=(dovecot) ;; rspamd) units+=(rspamd) ;;
        slapd) units+=(slapd) ;; openssh-server) units+=(ssh) ;; docker-registry) units+=(docker-registry) ;;
        bind9) units+=(named) ;;
      esac
    done
    [ ${#units[@]} -gt 0 ] && { systemctl disable --now "${units[@]}" >/dev/null 2>&1 || true; }
  fi
  return 0
}

engine_answers() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

dockerd_start() {
  engine_answers && return 0
  local dockerd; dockerd=$(command -v dockerd || echo /usr/sbin/dockerd)
  nohup "$dockerd" >/var/log/berth-dockerd.log 2>&1 &
  echo $! > "$PIDFILE"
  for _ in $(seq 1 60); do engine_answers && { echo started; return 0; }; sleep 0.5; done
  echo "dockerd did not start; see /var/log/berth-dockerd.log" >&2
  return 1
}

dockerd_stop() {
  [ -f "$PIDFILE" ] || return 0
  kill "$(cat "$PIDFILE")" 2>/dev/null || true
  for _ in $(seq 1 40); do kill -0 "$(cat "$PIDFILE")" 2>/dev/null || break; sleep 0.25; done
  rm -f "$PIDFILE"
}

case "${1:-}" in
  packages) packages "${2:-run}" ;;
  dockerd-start) dockerd_start ;;
  dockerd-stop) dockerd_stop ;;
  *) echo "usage: $0 packages run|test|bench | dockerd-start | dockerd-stop" >&2; exit 2 ;;
esac
