#!/usr/bin/env bash
# Rebuilds proto/descriptor_set.bin from the vendored Kubernetes .proto files.
# Needs only `protoc` (3.x); normal builds read the committed descriptor set and need no protoc.
set -euo pipefail
cd "$(dirname "$0")/proto"
mapfile -t files < <(find k8s.io -name generated.proto | LC_ALL=C sort)
# Upstream imports some files it does not use; hide those warnings only.
protoc --proto_path=. --include_imports --descriptor_set_out=descriptor_set.bin "${files[@]}" 2> >(grep -v "is unused" >&2)
echo "wrote $(wc -c < descriptor_set.bin) bytes to proto/descriptor_set.bin from ${#files[@]} files"
