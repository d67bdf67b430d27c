#!/usr/bin/env bash
# PostgreSQL 15 + RabbitMQ on loopback for the `services` tests (AiiDA core.psql_dos + core.rabbitmq).
#   .ci/services.sh start   install (Debian packages) and start both as background processes
#   .ci/services.sh stop    stop them (and epmd, which RabbitMQ leaves behind)
# Writes .ci/services.env (sourced by the tests through CRYSTAL_ATOMATE_SERVICES_ENV).
set -euo pipefail
cd "$(dirname "$0")"
STATE="${CRYSTAL_ATOMATE_SERVICES_DIR:-/tmp/crystal-atomate-services}"
PGDATA="$STATE/pgdata"
PGBIN=/usr/lib/postgresql/15/bin
PGPORT=5432
DB_USER=aiida
DB_PASS=aiida

install() {
    if [ -x "$PGBIN/postgres" ] && command -v rabbitmq-server >/dev/null; then return; fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends postgresql-15 rabbitmq-server >/dev/null
}

start_postgres() {
    mkdir -p "$STATE" && chown postgres:postgres "$STATE"
    if [ ! -f "$PGDATA/PG_VERSION" ]; then
        runuser -u postgres -- "$PGBIN/initdb" -D "$PGDATA" --locale=C.UTF-8 --encoding=UTF8 -A trust >/dev/null
    fi
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA" -l "$STATE/postgres.log" -w \
        -o "-c listen_addresses=127.0.0.1 -p $PGPORT -k $STATE" start >/dev/null
    runuser -u postgres -- psql -h 127.0.0.1 -p "$PGPORT" -qtc \
        "DO \$\$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname='$DB_USER') THEN CREATE ROLE $DB_USER LOGIN PASSWORD '$DB_PASS' CREATEDB; END IF; END\$\$;"
}

start_rabbitmq() {
    mkdir -p "$STATE/rabbitmq"
    # AiiDA advises disabling the consumer timeout: a CalcJob may wait longer than RabbitMQ's default 30 min.
    cat > "$STATE/rabbitmq/rabbitmq.conf" <<CONF
listeners.tcp.default = 127.0.0.1:5672
consumer_timeout = 31622400000
CONF
    # Debian's rabbitmq-server wrapper drops to the rabbitmq user: it must own its directories.
    chown -R rabbitmq:rabbitmq "$STATE/rabbitmq"
    export RABBITMQ_CONFIG_FILE="$STATE/rabbitmq/rabbitmq.conf" RABBITMQ_MNESIA_BASE="$STATE/rabbitmq/mnesia" \
        RABBITMQ_LOG_BASE="$STATE/rabbitmq/log" RABBITMQ_NODENAME="rabbit@localhost" ERL_EPMD_ADDRESS=127.0.0.1 \
        ERL_CRASH_DUMP="$STATE/rabbitmq/erl_crash.dump"
    rabbitmq-server >"$STATE/rabbitmq.out" 2>&1 &
    echo $! >"$STATE/rabbitmq.pid"
    for _ in $(seq 90); do
        rabbitmqctl -n rabbit@localhost await_startup >/dev/null 2>&1 && return
        kill -0 "$(cat "$STATE/rabbitmq.pid")" 2>/dev/null || break
        sleep 1
    done
    echo "RabbitMQ did not start: see $STATE/rabbitmq.out" >&2
    return 1
}

write_env() {
    cat > services.env <<ENV
CRYSTAL_ATOMATE_PSQL_HOST=127.0.0.1
CRYSTAL_ATOMATE_PSQL_PORT=$PGPORT
CRYSTAL_ATOMATE_PSQL_USER=$DB_USER
CRYSTAL_ATOMATE_PSQL_PASSWORD=$DB_PASS
CRYSTAL_ATOMATE_RABBITMQ_HOST=127.0.0.1
CRYSTAL_ATOMATE_RABBITMQ_PORT=5672
ENV
}

stop() {
    if [ -f "$PGDATA/postmaster.pid" ]; then
        runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null || true
    fi
    rabbitmqctl -n rabbit@localhost stop >/dev/null 2>&1 || true
    if [ -f "$STATE/rabbitmq.pid" ]; then
        kill "$(cat "$STATE/rabbitmq.pid")" 2>/dev/null || true
        rm -f "$STATE/rabbitmq.pid"
    fi
    epmd -kill >/dev/null 2>&1 || true
    rm -f services.env
}

case "${1:-start}" in
    start) install; start_postgres; start_rabbitmq; write_env ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
