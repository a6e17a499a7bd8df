#!/usr/bin/env bash
# Start Debian's PostgreSQL for the tests and print the environment they read:
#   eval "$(scripts/postgres.sh)"
# Idempotent: creates the cluster if missing, starts it if stopped, creates (or
# updates) the role and the database. Progress goes to stderr, exports to stdout.
#
# Settings (environment): REDBUTTON_PG_USER (redbutton), REDBUTTON_PG_PASSWORD
# (redbutton), REDBUTTON_PG_DB (redbutton_test). The role gets CREATEDB: each
# PostgreSQL test creates and drops its own database.
set -euo pipefail

user=${REDBUTTON_PG_USER:-redbutton}
password=${REDBUTTON_PG_PASSWORD:-redbutton}
db=${REDBUTTON_PG_DB:-redbutton_test}

say() { echo "postgres.sh: $*" >&2; }
die() { say "$*"; exit 1; }

for tool in pg_lsclusters pg_ctlcluster pg_createcluster; do
    command -v "$tool" >/dev/null || die "$tool not found: install Debian's postgresql and postgresql-client (scripts/system-deps.sh, or: apt-get install postgresql postgresql-client)"
done

# Run a command as the postgres superuser (we are root in CI; sudo elsewhere).
as_postgres() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    elif [ "$(id -un)" = postgres ]; then
        "$@"
    else
        sudo -n -u postgres -- "$@"
    fi
}
as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi
}

# The newest installed server version, and its cluster (the first one of that version).
version=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -type d -printf '%f\n' 2>/dev/null | sort -V | tail -1)
[ -n "$version" ] || die "no PostgreSQL server under /usr/lib/postgresql: apt-get install postgresql"
cluster=$(pg_lsclusters -h | awk -v v="$version" '$1 == v { print $2; exit }')
if [ -z "$cluster" ]; then
    cluster=main
    say "creating cluster $version/$cluster"
    as_root pg_createcluster "$version" "$cluster" >&2
fi
status=$(pg_lsclusters -h | awk -v v="$version" -v c="$cluster" '$1 == v && $2 == c { print $4 }')
if [ "$status" != online ]; then
    say "starting cluster $version/$cluster"
    as_root pg_ctlcluster "$version" "$cluster" start >&2
fi
port=$(pg_lsclusters -h | awk -v v="$version" -v c="$cluster" '$1 == v && $2 == c { print $3 }')

for _ in $(seq 1 50); do
    pg_isready -q -h localhost -p "$port" && break
    sleep 0.2
done
pg_isready -q -h localhost -p "$port" || die "cluster $version/$cluster does not accept connections on port $port: see /var/log/postgresql/postgresql-$version-$cluster.log"

# Role and database (idempotent). Values go through psql variables, never into the SQL text.
as_postgres psql -X -q -v ON_ERROR_STOP=1 -p "$port" -d postgres \
    -v user="$user" -v password="$password" -v db="$db" >&2 <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'user') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'user') \gexec
SELECT format('ALTER ROLE %I WITH LOGIN CREATEDB PASSWORD %L', :'user', :'password') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'user') WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') \gexec
SQL

# Leftovers of interrupted test runs (each test drops its own database when it ends).
as_postgres psql -X -q -At -p "$port" -d postgres -c \
    "SELECT format('DROP DATABASE %I WITH (FORCE)', datname) FROM pg_database WHERE datname LIKE 'rb\_migrate\_test\_%'" \
    | as_postgres psql -X -q -p "$port" -d postgres >&2

say "PostgreSQL $version ($cluster) on port $port, role $user, database $db"
dsn="postgresql://$user:$password@localhost:$port/$db"
echo "export REDBUTTON_PG_DSN='$dsn'"
echo "export REDBUTTON_REQUIRE_PG=1"
