#!/bin/sh
# Regenerates hadoop.pb.go from hadoop.proto. Needs protoc and
# protoc-gen-go v1.36.12:
#   go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
set -eu
cd "$(dirname "$0")"
PATH="$(go env GOPATH)/bin:$PATH" protoc --go_out=. --go_opt=paths=source_relative hadoop.proto
