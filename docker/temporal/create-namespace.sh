#!/bin/sh
# The namespace and tenant-mirror's search attributes (contract/ids.ts), once the server answers.
set -eu
until temporal operator cluster health --address temporal:7233 >/dev/null 2>&1; do sleep 2; done
temporal operator namespace describe --address temporal:7233 --namespace default >/dev/null 2>&1 ||
  temporal operator namespace create --address temporal:7233 --namespace default --retention 7d
for sa in TenantId:Keyword MirrorState:Keyword FailedTables:Int; do
  temporal operator search-attribute create --address temporal:7233 --namespace default --name "${sa%%:*}" --type "${sa##*:}" 2>/dev/null || true
done
echo "namespace default and search attributes ready"
