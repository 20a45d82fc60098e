#!/usr/bin/env python3
"""Writes definitions.json: the part of kubernetes-validate's `_definitions.json` that Gantry serves.

Usage: trim.py <kubernetes_validate>/kubernetes-json-schema/v1.33.0-local/_definitions.json > definitions.json

Keeps every definition of the API packages below (all their kinds, not only the ones served today, so that a
kind added to the registry within these group-versions needs no new vendoring), everything under
io.k8s.apimachinery, and whatever those reference. Definitions are copied unchanged, one per line, sorted.
"""

import json
import sys

PACKAGES = [
    "core.v1", "apps.v1", "batch.v1", "autoscaling.v1", "autoscaling.v2", "policy.v1", "events.v1",
    "discovery.v1", "coordination.v1", "networking.v1", "storage.v1", "rbac.v1", "authentication.v1",
    "authorization.v1", "scheduling.v1",
]

# CustomResourceDefinitions live outside io.k8s.api.
APIEXTENSIONS = "apiextensions-apiserver.pkg.apis.apiextensions.v1"


def refs(schema, out):
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "$ref" and isinstance(value, str):
                out.add(value.rsplit("/", 1)[-1])
            else:
                refs(value, out)
    elif isinstance(schema, list):
        for value in schema:
            refs(value, out)


def main():
    with open(sys.argv[1]) as f:
        defs = json.load(f)["$defs"]
    roots = [n for n in defs if any(n.startswith(f"io.k8s.api.{p}.") for p in PACKAGES)]
    roots += [n for n in defs if n.startswith(f"io.k8s.{APIEXTENSIONS}.")]
    roots += [n for n in defs if n.startswith("io.k8s.apimachinery.")]
    keep, stack = set(), roots
    while stack:
        name = stack.pop()
        if name not in keep:
            keep.add(name)
            found = set()
            refs(defs[name], found)
            stack.extend(found)
    lines = [json.dumps(n) + ":" + json.dumps(defs[n], sort_keys=True, separators=(",", ":")) for n in sorted(keep)]
    sys.stdout.write('{"$defs":{\n' + ",\n".join(lines) + "\n}}\n")


main()
