package satchel

import (
	"os"
	"path/filepath"
	"testing"
)

// Files under HashFirstBelow are hashed before they are sent; larger ones
// go with their size only, unless HashFirst asks for a digest too.
func TestPushHashesSmallFilesFirst(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small.txt")
	if err := os.WriteFile(small, []byte("abc"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A sparse file of exactly the threshold: 256 MiB of zeros, no disk.
	big := filepath.Join(dir, "big.bin")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(HashFirstBelow); err != nil {
		t.Fatal(err)
	}
	f.Close()
	const (
		abcDigest  = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
		zeroDigest = "sha256:a6d72ac7690f53be6ae46ba88506bd97302a093f7108472bd9efc3cefda06484"
	)

	specs, err := fileSpecs([]string{small, big}, PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s := specs[0]; s.GetName() != "small.txt" || s.GetDigest() != abcDigest || s.GetSize() != 3 {
		t.Errorf("small file spec = %v, want digest %s and size 3", s, abcDigest)
	}
	if s := specs[1]; s.GetName() != "big.bin" || s.GetDigest() != "" || s.Size == nil || s.GetSize() != HashFirstBelow {
		t.Errorf("large file spec = %v, want size %d and no digest", s, HashFirstBelow)
	}

	specs, err = fileSpecs([]string{big}, PushOptions{HashFirst: true})
	if err != nil {
		t.Fatal(err)
	}
	if s := specs[0]; s.GetDigest() != zeroDigest || s.GetSize() != HashFirstBelow {
		t.Errorf("large file spec with HashFirst = %v, want digest %s", s, zeroDigest)
	}

	if _, err := fileSpecs([]string{dir}, PushOptions{}); err == nil {
		t.Errorf("a directory was accepted as a file")
	}
}
