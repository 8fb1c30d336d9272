package satchel

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Files under the threshold (here the fallback HashFirstBelow) are hashed
// before they are sent; larger ones go with their size only, unless
// HashFirst asks for a digest too.
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

	specs, err := fileSpecs([]string{small, big}, []string{"small.txt", "big.bin"}, nil, PushOptions{}, HashFirstBelow)
	if err != nil {
		t.Fatal(err)
	}
	if s := specs[0]; s.GetName() != "small.txt" || s.GetDigest() != abcDigest || s.GetSize() != 3 {
		t.Errorf("small file spec = %v, want digest %s and size 3", s, abcDigest)
	}
	if s := specs[1]; s.GetName() != "big.bin" || s.GetDigest() != "" || s.Size == nil || s.GetSize() != HashFirstBelow {
		t.Errorf("large file spec = %v, want size %d and no digest", s, HashFirstBelow)
	}

	specs, err = fileSpecs([]string{big}, []string{"big.bin"}, nil, PushOptions{HashFirst: true}, HashFirstBelow)
	if err != nil {
		t.Fatal(err)
	}
	if s := specs[0]; s.GetDigest() != zeroDigest || s.GetSize() != HashFirstBelow {
		t.Errorf("large file spec with HashFirst = %v, want digest %s", s, zeroDigest)
	}

	if _, err := fileSpecs([]string{dir}, []string{"d"}, nil, PushOptions{}, HashFirstBelow); err == nil {
		t.Errorf("a directory was accepted as a file")
	}
}

// The daemon answers a deadline it notices before the client does with
// CANCELLED ("Timeout expired"); past the call's deadline the caller sees
// DEADLINE_EXCEEDED. Before it, or for other codes, errors pass unchanged.
func TestDeadlinePassedSurfacesAsDeadlineExceeded(t *testing.T) {
	expired, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	cancelled := status.Error(codes.Canceled, "Timeout expired")
	for _, tc := range []struct {
		name string
		ctx  context.Context
		err  error
		want codes.Code
	}{
		{"cancelled past the deadline", expired, cancelled, codes.DeadlineExceeded},
		{"cancelled without a deadline", context.Background(), cancelled, codes.Canceled},
		{"another code past the deadline", expired, status.Error(codes.NotFound, "x"), codes.NotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.err
			surfaceDeadline(tc.ctx, &err)
			if code := status.Code(err); code != tc.want {
				t.Errorf("code %v (%v), want %v", code, err, tc.want)
			}
		})
	}
}
