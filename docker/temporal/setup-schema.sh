#!/bin/sh
# Creates Temporal's two databases on its own PostgreSQL and brings their schemas to the image's version.
# Safe on every `docker compose up`: an existing database is only updated.
set -eu
TOOL="temporal-sql-tool --plugin postgres12 --ep temporal-postgres -p 5432 -u temporal"
for db in temporal temporal_visibility; do
  dir=temporal
  [ "$db" = temporal_visibility ] && dir=visibility
  if $TOOL --db "$db" create 2>/dev/null; then
    echo "created database $db"
    $TOOL --db "$db" setup-schema -v 0.0
  fi
  $TOOL --db "$db" update-schema -d "/etc/temporal/schema/postgresql/v12/$dir/versioned"
done
echo "Temporal schema is up to date"
