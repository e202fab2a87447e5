#!/bin/sh
# Runs once, on the first start of an empty data volume (docker-entrypoint-initdb.d): one database
# per service, owned by POSTGRES_USER. Later starts keep the volume and skip this script.
set -eu
for db in ${ZOPTAL_DATABASES:-auth project billing notification analytics}; do
    echo "init-databases: creating database $db"
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
        -c "CREATE DATABASE \"$db\" OWNER \"$POSTGRES_USER\""
done
