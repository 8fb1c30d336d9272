package satchel_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// readConformance decodes clients/conformance/name, the data every client
// and the daemon share, into v.
func readConformance(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "conformance", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}
