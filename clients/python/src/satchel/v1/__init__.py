"""Stubs generated from proto/satchel/v1/satchel.proto by grpcio-tools
(clients/python/codegen.sh); do not edit them by hand."""
