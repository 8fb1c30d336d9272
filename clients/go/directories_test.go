//go:build unix

package satchel_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	satchel "github.com/satchel-oci/satchel/clients/go"
)

var treeTime = time.Unix(1_700_000_000, 0)

// makeTree writes a directory with a nested directory, an executable, an
// empty directory and links, every modification time treeTime.
func makeTree(t *testing.T, root string) string {
	t.Helper()
	big := make([]byte, 3<<20)
	rand.Read(big)
	steps := []func() error{
		func() error { return os.MkdirAll(filepath.Join(root, "bin"), 0o755) },
		func() error {
			return os.WriteFile(filepath.Join(root, "bin", "run.sh"), []byte("#!/bin/sh\necho hi\n"), 0o755)
		},
		func() error { return os.Chmod(filepath.Join(root, "bin", "run.sh"), 0o755) },
		func() error { return os.MkdirAll(filepath.Join(root, "data", "nested"), 0o755) },
		func() error {
			return os.WriteFile(filepath.Join(root, "data", "nested", "deep.txt"), []byte("deep\n"), 0o644)
		},
		func() error { return os.WriteFile(filepath.Join(root, "data", "big.bin"), big, 0o644) },
		func() error { return os.Mkdir(filepath.Join(root, "empty"), 0o755) },
		func() error { return os.Symlink("bin/run.sh", filepath.Join(root, "run")) },
		func() error { return os.Symlink("../../bin", filepath.Join(root, "data", "nested", "up")) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink != 0 {
			return err
		}
		return os.Chtimes(p, treeTime, treeTime)
	})
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// snapshot describes everything under root, links not followed: kind,
// content, the owner's execute bit and, for files, the modification time.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			to, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = "link -> " + to
		case info.IsDir():
			out[rel] = "dir"
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			out[rel] = fmt.Sprintf("file exec=%v mtime=%d %s", info.Mode()&0o100 != 0, info.ModTime().Unix(), hex.EncodeToString(sum[:8]))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// packingDir points the client's temporary files (the packed archives) at
// a directory of the test's own, to see it emptied.
func packingDir(t *testing.T) string {
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)
	return dir
}

// A directory pushed, pulled back into the same tree, and pulled again
// over that tree, which it replaces whole.
func TestADirectoryRoundTripsAndASecondPullReplacesIt(t *testing.T) {
	ctx, c, reg := testContext(t), dial(t), satchel.TargetOptions{PlainHTTP: true}
	tmp := packingDir(t)
	src := makeTree(t, filepath.Join(t.TempDir(), "src", "tree"))
	pushed, err := c.Push(ctx, registry+"/go/dirs:v1", []string{src}, satchel.PushOptions{TargetOptions: reg})
	if err != nil {
		t.Fatal(err)
	}
	if left := names(t, tmp); len(left) != 0 {
		t.Errorf("the packed archive is left behind: %q", left)
	}
	layer := pushed.Layers[0]
	if layer.MediaType != satchel.DirectoryMediaType || layer.Annotations["org.opencontainers.image.title"] != "tree" ||
		layer.Annotations["io.deis.oras.content.unpack"] != "true" || !strings.HasPrefix(layer.Annotations["io.deis.oras.content.digest"], "sha256:") {
		t.Errorf("layer %+v is not a directory as the ORAS CLI pushes one", layer)
	}

	out := filepath.Join(t.TempDir(), "out")
	pulled, err := c.Pull(ctx, pushed.Reference, satchel.PullOptions{TargetOptions: reg, OutputDir: out})
	if err != nil {
		t.Fatal(err)
	}
	if len(pulled.Files) != 1 || pulled.Files[0].Path != filepath.Join(out, "tree") {
		t.Errorf("pulled %+v, want the directory %s", pulled.Files, filepath.Join(out, "tree"))
	}
	if got := names(t, out); !slices.Equal(got, []string{"tree"}) {
		t.Errorf("the output directory holds %q, want only tree (no archive, no hidden name)", got)
	}
	want := snapshot(t, src)
	if got := snapshot(t, filepath.Join(out, "tree")); !reflect.DeepEqual(got, want) {
		t.Errorf("pulled tree\n%v\nwant\n%v", got, want)
	}

	// What was added goes, what was changed or removed comes back.
	os.WriteFile(filepath.Join(out, "tree", "stray.txt"), []byte("not in the artifact\n"), 0o644)
	os.WriteFile(filepath.Join(out, "tree", "data", "nested", "deep.txt"), []byte("changed\n"), 0o644)
	os.Remove(filepath.Join(out, "tree", "run"))
	if _, err := c.Pull(ctx, pushed.Reference, satchel.PullOptions{TargetOptions: reg, OutputDir: out}); err != nil {
		t.Fatal(err)
	}
	if got := names(t, out); !slices.Equal(got, []string{"tree"}) {
		t.Errorf("after a second pull the output directory holds %q, want only tree", got)
	}
	if got := snapshot(t, filepath.Join(out, "tree")); !reflect.DeepEqual(got, want) {
		t.Errorf("tree after a second pull\n%v\nwant\n%v", got, want)
	}
}

// The layer is the tar+gzip the ORAS CLI makes: entries under the title,
// sorted, owners cleared, links as links, modes and times kept; and a
// nested title unpacks where it says.
func TestThePushedLayerIsTheTarGzipORASMakes(t *testing.T) {
	ctx, c, reg := testContext(t), dial(t), satchel.TargetOptions{PlainHTTP: true}
	packingDir(t)
	src := makeTree(t, filepath.Join(t.TempDir(), "tree"))
	pushed, err := c.Push(ctx, registry+"/go/dirs:layer", []string{src}, satchel.PushOptions{TargetOptions: reg, Titles: []string{"a/tree"}})
	if err != nil {
		t.Fatal(err)
	}
	layer := pushed.Layers[0]
	// The blob as the registry stores it (a pull would unpack it).
	hexDigest := strings.TrimPrefix(layer.Digest, "sha256:")
	blob, err := os.ReadFile(filepath.Join(registryBlobs, "sha256", hexDigest[:2], hexDigest, "data"))
	if err != nil {
		t.Fatal(err)
	}
	gz, err := gzip.NewReader(bytes.NewReader(blob))
	if err != nil {
		t.Fatal(err)
	}
	tarBytes, err := io.ReadAll(gz)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(tarBytes)
	if got := "sha256:" + hex.EncodeToString(sum[:]); layer.Annotations["io.deis.oras.content.digest"] != got {
		t.Errorf("content digest annotation %q, the tar's is %s", layer.Annotations["io.deis.oras.content.digest"], got)
	}
	tr := tar.NewReader(bytes.NewReader(tarBytes))
	var entries []string
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, hdr.Name)
		if hdr.Uid != 0 || hdr.Gid != 0 || hdr.Uname != "" || hdr.Gname != "" {
			t.Errorf("%s has an owner: %d/%d %q/%q", hdr.Name, hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname)
		}
		switch hdr.Name {
		case "a/tree/run":
			if hdr.Typeflag != tar.TypeSymlink || hdr.Linkname != "bin/run.sh" {
				t.Errorf("run is %q -> %q, want a link to bin/run.sh", hdr.Typeflag, hdr.Linkname)
			}
		case "a/tree/bin/run.sh":
			if hdr.Mode != 0o755 {
				t.Errorf("run.sh has mode %o, want 755", hdr.Mode)
			}
		case "a/tree/data/nested/deep.txt":
			if !hdr.ModTime.Equal(treeTime) {
				t.Errorf("deep.txt has mtime %v, want %v", hdr.ModTime, treeTime)
			}
		}
	}
	want := []string{"a/tree/", "a/tree/bin/", "a/tree/bin/run.sh", "a/tree/data/", "a/tree/data/big.bin",
		"a/tree/data/nested/", "a/tree/data/nested/deep.txt", "a/tree/data/nested/up", "a/tree/empty/", "a/tree/run"}
	if !slices.Equal(entries, want) {
		t.Errorf("entries %q, want %q", entries, want)
	}

	out := filepath.Join(t.TempDir(), "out")
	if _, err := c.Pull(ctx, pushed.Reference, satchel.PullOptions{TargetOptions: reg, OutputDir: out}); err != nil {
		t.Fatal(err)
	}
	if got := snapshot(t, filepath.Join(out, "a", "tree")); !reflect.DeepEqual(got, snapshot(t, src)) {
		t.Errorf("the nested title unpacked to\n%v", got)
	}
}

// A link at the directory's name is swapped out, not followed.
func TestAPullSwapsOutALinkAtTheDirectorysName(t *testing.T) {
	ctx, c, reg := testContext(t), dial(t), satchel.TargetOptions{PlainHTTP: true}
	src := makeTree(t, filepath.Join(t.TempDir(), "tree"))
	pushed, err := c.Push(ctx, registry+"/go/dirs:link", []string{src}, satchel.PushOptions{TargetOptions: reg})
	if err != nil {
		t.Fatal(err)
	}
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "victim"), []byte("mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(out, "tree")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Pull(ctx, pushed.Reference, satchel.PullOptions{TargetOptions: reg, OutputDir: out}); err != nil {
		t.Fatal(err)
	}
	if info, err := os.Lstat(filepath.Join(out, "tree")); err != nil || !info.IsDir() {
		t.Errorf("tree is %v (%v), want a directory", info, err)
	}
	if got := snapshot(t, filepath.Join(out, "tree")); !reflect.DeepEqual(got, snapshot(t, src)) {
		t.Errorf("pulled tree\n%v", got)
	}
	if got := names(t, outside); !slices.Equal(got, []string{"victim"}) {
		t.Errorf("outside now holds %q", got)
	}
	if b, _ := os.ReadFile(filepath.Join(outside, "victim")); string(b) != "mine\n" {
		t.Errorf("the victim now reads %q", b)
	}
	if got := names(t, out); !slices.Equal(got, []string{"tree"}) {
		t.Errorf("the output directory holds %q", got)
	}
}

// A FIFO inside a directory is refused before anything is sent, and
// nothing packed is left.
func TestPushRefusesAFIFOInsideADirectory(t *testing.T) {
	ctx, c, reg := testContext(t), dial(t), satchel.TargetOptions{PlainHTTP: true}
	tmp := packingDir(t)
	src := filepath.Join(t.TempDir(), "tree")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(src, "pipe"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := c.Push(ctx, registry+"/go/dirs:fifo", []string{src}, satchel.PushOptions{TargetOptions: reg})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "a FIFO") {
		t.Errorf("push: %v, want InvalidArgument naming a FIFO", err)
	}
	if left := names(t, tmp); len(left) != 0 {
		t.Errorf("left behind: %q", left)
	}
	if _, err := c.Resolve(ctx, registry+"/go/dirs:fifo", reg); status.Code(err) != codes.NotFound {
		t.Errorf("resolve after the refused push: %v, want NotFound", err)
	}
}

// A FIFO given as a file is refused as not regular, without opening it
// (which would wait for a writer).
func TestPushRefusesAFIFOWithoutWaitingForAWriter(t *testing.T) {
	ctx, c := testContext(t), dial(t)
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Push(ctx, registry+"/go/dirs:fifo-file", []string{fifo}, satchel.PushOptions{TargetOptions: satchel.TargetOptions{PlainHTTP: true}})
		done <- err
	}()
	select {
	case err := <-done:
		if status.Code(err) != codes.InvalidArgument || !errors.Is(err, satchel.ErrNotRegular) {
			t.Errorf("push: %v, want InvalidArgument and ErrNotRegular", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("push of a FIFO is still waiting after 10 s")
	}
}
