//go:build unix

package satchel_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	satchel "github.com/satchel-oci/satchel/clients/go"
	pb "github.com/satchel-oci/satchel/clients/go/satchelv1"
)

// archiveCase is one case of clients/conformance/archives.json.
type archiveCase struct {
	Name      string `json:"name"`
	Title     string `json:"title"`
	Archive   []byte `json:"archive"`
	TarDigest string `json:"tar_digest"`
	Limits    struct {
		MaxBytes   uint64 `json:"max_bytes"`
		MaxEntries uint64 `json:"max_entries"`
	} `json:"limits"`
	Expect struct {
		Code codes.Code             `json:"code"`
		Tree map[string]archiveNode `json:"tree"`
	} `json:"expect"`
}

// archiveNode is one path of an expected tree: a file (with the owner's
// execute bit), a directory or a link.
type archiveNode struct {
	File *string `json:"file,omitempty"`
	Exec bool    `json:"exec,omitempty"`
	Dir  bool    `json:"dir,omitempty"`
	Link *string `json:"link,omitempty"`
}

func readArchiveCases(t *testing.T) []archiveCase {
	t.Helper()
	var file struct {
		Cases []archiveCase `json:"cases"`
	}
	readConformance(t, "archives.json", &file)
	if len(file.Cases) == 0 {
		t.Fatal("archives.json has no cases")
	}
	return file.Cases
}

// archiveTree is everything under root, links not followed, as
// archives.json writes a tree.
func archiveTree(t *testing.T, root string) map[string]archiveNode {
	t.Helper()
	out := map[string]archiveNode{}
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
			out[filepath.ToSlash(rel)] = archiveNode{Link: &to}
		case info.IsDir():
			out[filepath.ToSlash(rel)] = archiveNode{Dir: true}
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			s := string(b)
			out[filepath.ToSlash(rel)] = archiveNode{File: &s, Exec: info.Mode()&0o100 != 0}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// everything lists every path under root (slash-separated), sorted.
func everything(t *testing.T, root string) []string {
	t.Helper()
	var all []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		all = append(all, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(all)
	return all
}

func unpackAnnotations(tarDigest string) map[string]string {
	a := map[string]string{"io.deis.oras.content.unpack": "true"}
	if tarDigest != "" {
		a["io.deis.oras.content.digest"] = tarDigest
	}
	return a
}

// Every case of archives.json through the client's unpack: the tree it
// makes and nothing else beside it, or the code it fails with and nothing
// at all left in the output directory.
func TestArchivesConformance(t *testing.T) {
	defaults := satchel.DefaultUnpackLimits
	if defaults != [2]uint64{64 << 30, 1_000_000} {
		t.Errorf("default unpack limits %v, want 64 GiB and a million entries", defaults)
	}
	for _, c := range readArchiveCases(t) {
		t.Run(c.Name, func(t *testing.T) {
			maxBytes, maxEntries := defaults[0], defaults[1]
			if c.Limits.MaxBytes != 0 {
				maxBytes = c.Limits.MaxBytes
			}
			if c.Limits.MaxEntries != 0 {
				maxEntries = c.Limits.MaxEntries
			}
			root := filepath.Join(t.TempDir(), "out")
			path, err := satchel.Unpack(bytes.NewReader(c.Archive), root, c.Title, unpackAnnotations(c.TarDigest), maxBytes, maxEntries)
			if code := status.Code(err); code != c.Expect.Code {
				t.Fatalf("code %v (%v), want %v", code, err, c.Expect.Code)
			}
			if err != nil {
				if left := everything(t, root); len(left) != 0 {
					t.Errorf("left behind: %q", left)
				}
				return
			}
			if want := filepath.Join(root, filepath.FromSlash(c.Title)); path != want {
				t.Errorf("path %s, want %s", path, want)
			}
			if got := archiveTree(t, path); !reflect.DeepEqual(got, c.Expect.Tree) {
				t.Errorf("tree %s, want %s", show(got), show(c.Expect.Tree))
			}
			parts := strings.Split(c.Title, "/")
			var want []string
			for i := range parts {
				want = append(want, strings.Join(parts[:i+1], "/"))
			}
			for rel := range c.Expect.Tree {
				want = append(want, c.Title+"/"+rel)
			}
			slices.Sort(want)
			if got := everything(t, root); !slices.Equal(got, want) {
				t.Errorf("the output directory holds %q, want %q (nothing beside the tree)", got, want)
			}
		})
	}
}

func show(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// tarOf writes a tar of headers (with data for regular files).
func tarOf(t *testing.T, entries ...any) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := 0; i < len(entries); i += 2 {
		hdr, data := entries[i].(*tar.Header), entries[i+1].(string)
		hdr.Size = int64(len(data))
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	gz.Write(b)
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func dirHeader(name string) *tar.Header {
	return &tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Unix(1_700_000_000, 0)}
}

// unpackFails unpacks the gzip'd tar as "d" (no content digest), expecting
// code and nothing left behind.
func unpackFails(t *testing.T, tarBytes []byte, maxBytes uint64, code codes.Code) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "out")
	_, err := satchel.Unpack(bytes.NewReader(gzipped(t, tarBytes)), root, "d", unpackAnnotations(""), maxBytes, 1_000_000)
	if status.Code(err) != code {
		t.Fatalf("code %v (%v), want %v", status.Code(err), err, code)
	}
	if left := everything(t, root); len(left) != 0 {
		t.Errorf("left behind: %q", left)
	}
}

// The stream's headers count against the byte limit, not only the files'
// bytes.
func TestUnpackCountsHeadersAgainstTheByteLimit(t *testing.T) {
	var entries []any
	entries = append(entries, dirHeader("d"), "")
	for i := 0; i < 20; i++ {
		entries = append(entries, dirHeader(fmt.Sprintf("d/%d", i)), "")
	}
	unpackFails(t, tarOf(t, entries...), 8192, codes.ResourceExhausted)
}

// rawHeader is one ustar header block, written byte by byte.
func rawHeader(name string, flag byte, size int64) []byte {
	h := make([]byte, 512)
	copy(h, name)
	copy(h[100:], fmt.Sprintf("%07o\x00", 0o644))
	copy(h[108:], "0000000\x000000000\x00")
	copy(h[124:], fmt.Sprintf("%011o\x00%011o\x00", size, 1_700_000_000))
	h[156] = flag
	copy(h[257:], "ustar\x0000")
	copy(h[148:], "        ")
	sum := 0
	for _, b := range h {
		sum += int(b)
	}
	copy(h[148:], fmt.Sprintf("%06o\x00 ", sum))
	return h
}

// paxRecord is one "LEN key=value\n" record, LEN counting itself.
func paxRecord(key, value string) string {
	for n := len(key) + len(value) + 3; ; n++ {
		if r := fmt.Sprintf("%d %s=%s\n", n, key, value); len(r) == n {
			return r
		}
	}
}

// A header declaring more than the limit is refused before its bytes are
// read: the limit, not the cut archive, is what it reports.
func TestUnpackRefusesADeclaredSizePastTheLimit(t *testing.T) {
	archive := append(rawHeader("d", tar.TypeDir, 0), rawHeader("d/big", tar.TypeReg, 1<<30)...)
	unpackFails(t, archive, 1<<20, codes.ResourceExhausted)
}

// A sparse file is refused, not expanded: here PAX's (format 0.1), a MiB
// of holes from no bytes at all.
func TestUnpackRefusesASparseFile(t *testing.T) {
	records := paxRecord("GNU.sparse.size", "1048576") + paxRecord("GNU.sparse.numblocks", "1") + paxRecord("GNU.sparse.map", "0,0")
	archive := rawHeader("d", tar.TypeDir, 0)
	archive = append(archive, rawHeader("d/PaxHeaders/s", tar.TypeXHeader, int64(len(records)))...)
	archive = append(archive, records...)
	archive = append(archive, make([]byte, 512-len(records)%512)...)
	archive = append(archive, rawHeader("d/s", tar.TypeReg, 0)...)
	archive = append(archive, make([]byte, 1024)...)
	unpackFails(t, archive, 64<<30, codes.InvalidArgument)
}

// A global PAX header (git archive writes one first, named
// pax_global_header) names nothing: it is skipped, not refused as outside
// the directory.
func TestUnpackSkipsAGlobalPAXHeader(t *testing.T) {
	records := paxRecord("comment", "a commit id")
	archive := rawHeader("pax_global_header", tar.TypeXGlobalHeader, int64(len(records)))
	archive = append(archive, records...)
	archive = append(archive, make([]byte, 512-len(records)%512)...)
	archive = append(archive, rawHeader("d", tar.TypeDir, 0)...)
	archive = append(archive, rawHeader("d/x", tar.TypeReg, 1)...)
	archive = append(archive, 'x')
	archive = append(archive, make([]byte, 511+1024)...)
	root := filepath.Join(t.TempDir(), "out")
	path, err := satchel.Unpack(bytes.NewReader(gzipped(t, archive)), root, "d", unpackAnnotations(""), 64<<30, 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	if got := everything(t, path); !slices.Equal(got, []string{"x"}) {
		t.Errorf("unpacked %q, want x", got)
	}
}

// A directory layer through the pull's state machine: unpacked where its
// title says with its archive removed; or, failing, nothing new left and
// an older tree there as it was.
func TestPullUnpacksADirectoryLayer(t *testing.T) {
	good := goodArchive(t)
	root := filepath.Join(t.TempDir(), "out")
	res, err := satchel.ConsumePull(directoryStream(t, good.Archive, good.TarDigest), root, satchel.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Files) != 1 || res.Files[0].Path != filepath.Join(root, "d") {
		t.Errorf("files %+v, want the directory %s", res.Files, filepath.Join(root, "d"))
	}
	if got := archiveTree(t, filepath.Join(root, "d")); !reflect.DeepEqual(got, good.Expect.Tree) {
		t.Errorf("tree %s, want %s", show(got), show(good.Expect.Tree))
	}
	if entries, _ := os.ReadDir(root); len(entries) != 1 {
		t.Errorf("the output directory holds %v, want only d", entries)
	}

	root = filepath.Join(t.TempDir(), "out")
	if err := os.MkdirAll(filepath.Join(root, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "d", "old.txt"), []byte("an older tree\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = satchel.ConsumePull(directoryStream(t, good.Archive, "sha256:"+strings.Repeat("0", 64)), root, satchel.PullOptions{})
	if status.Code(err) != codes.DataLoss {
		t.Fatalf("a wrong content digest: %v, want DataLoss", err)
	}
	if got := everything(t, root); !slices.Equal(got, []string{"d", "d/old.txt"}) {
		t.Errorf("after the failed pull the output directory holds %q, want the older tree alone", got)
	}
}

// goodArchive is the first case of archives.json that unpacks "d" and has a
// content digest.
func goodArchive(t *testing.T) archiveCase {
	t.Helper()
	for _, c := range readArchiveCases(t) {
		if c.Expect.Code == codes.OK && c.Title == "d" && c.TarDigest != "" {
			return c
		}
	}
	t.Fatal("archives.json has no good case for d")
	return archiveCase{}
}

// directoryStream is a pull answer of one layer: the directory "d" as
// archive, its content digest annotated tarDigest.
func directoryStream(t *testing.T, archive []byte, tarDigest string) func() (*pb.PullResponse, error) {
	t.Helper()
	sum := sha256.Sum256(archive)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	annotations := unpackAnnotations(tarDigest)
	annotations["org.opencontainers.image.title"] = "d"
	const mediaType = "application/vnd.oci.image.layer.v1.tar+gzip"
	content, err := json.Marshal(map[string]any{
		"mediaType": "application/vnd.oci.image.manifest.v1+json",
		"layers":    []any{map[string]any{"mediaType": mediaType, "digest": digest, "size": len(archive), "annotations": annotations}},
	})
	if err != nil {
		t.Fatal(err)
	}
	msum := sha256.Sum256(content)
	layer := &pb.Descriptor{MediaType: mediaType, Digest: digest, Size: uint64(len(archive)), Annotations: annotations}
	msgs := []*pb.PullResponse{
		{Payload: &pb.PullResponse_Manifest{Manifest: &pb.PulledManifest{Reference: "r",
			Manifest: &pb.Descriptor{MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: "sha256:" + hex.EncodeToString(msum[:]), Size: uint64(len(content))},
			Content:  content}}},
		{Payload: &pb.PullResponse_File{File: &pb.FileHeader{Name: "d", Layer: layer}}},
		{Payload: &pb.PullResponse_Chunk{Chunk: archive}},
		{Payload: &pb.PullResponse_Done{Done: &pb.FileDone{Digest: digest}}},
	}
	return func() (*pb.PullResponse, error) {
		if len(msgs) == 0 {
			return nil, io.EOF
		}
		m := msgs[0]
		msgs = msgs[1:]
		return m, nil
	}
}
