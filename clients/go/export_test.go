package satchel

import "io"

// ConsumePull is the pull state machine over any source of messages, for
// the conformance tests of pull_streams.json (pull_conformance_test.go).
var ConsumePull = consumePull

// Unpack is unpackDirectory into dir (opened as a pull opens its output
// directory), with the limits given, for archives.json (archives_test.go).
func Unpack(archive io.Reader, dir, title string, annotations map[string]string, maxBytes, maxEntries uint64) (string, error) {
	out, err := openOutputDir(dir)
	if err != nil {
		return "", err
	}
	defer out.close()
	return unpackDirectory(archive, out, title, annotations, unpackLimits{maxBytes: maxBytes, maxEntries: maxEntries})
}

// DefaultUnpackLimits are the limits a pull unpacks with.
var DefaultUnpackLimits = [2]uint64{defaultUnpackLimits.maxBytes, defaultUnpackLimits.maxEntries}
