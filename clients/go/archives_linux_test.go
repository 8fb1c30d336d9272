package satchel_test

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	satchel "github.com/satchel-oci/satchel/clients/go"
)

// Without renameat2 a tree still replaces an older one whole, moved aside.
func TestWithoutRenameat2TheOldTreeIsMovedAside(t *testing.T) {
	good := goodArchive(t)
	root := filepath.Join(t.TempDir(), "out")
	satchel.WithoutRenameat2(func() {
		for i := 0; i < 2; i++ {
			if _, err := satchel.ConsumePull(directoryStream(t, good.Archive, good.TarDigest), root, satchel.PullOptions{}); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, "d", "stray"), []byte("goes\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	})
	os.Remove(filepath.Join(root, "d", "stray"))
	if got := archiveTree(t, filepath.Join(root, "d")); !reflect.DeepEqual(got, good.Expect.Tree) {
		t.Errorf("tree %s, want %s", show(got), show(good.Expect.Tree))
	}
	if entries, _ := os.ReadDir(root); len(entries) != 1 {
		t.Errorf("the output directory holds %v, want only d", entries)
	}
}
