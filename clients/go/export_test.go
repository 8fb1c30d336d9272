package satchel

// ConsumePull is the pull state machine over any source of messages, for
// the conformance tests of pull_streams.json (pull_conformance_test.go).
var ConsumePull = consumePull
