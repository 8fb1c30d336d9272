package satchel_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	satchel "github.com/satchel-oci/satchel/clients/go"
)

// Set by TestMain from clients/testenv.sh.
var (
	daemonAddr string
	registry   string
	// registryBlobs is where docker-registry keeps blob files.
	registryBlobs string
	// envDir is testenv's directory (its pid files and logs).
	envDir string
	// envVars are all of testenv's KEY=VALUE lines (the signed fixture's
	// among them).
	envVars = map[string]string{}
)

// TestMain starts a registry and a satcheld with ../testenv.sh for the
// package's tests and stops them afterwards.
func TestMain(m *testing.M) {
	os.Exit(runWithEnv(m))
}

func runWithEnv(m *testing.M) int {
	dir, err := os.MkdirTemp("", "satchel-go-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	envDir = dir
	testenv, err := filepath.Abs(filepath.Join("..", "testenv.sh"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	up := exec.Command(testenv, "up", dir)
	up.Stderr = os.Stderr
	out, err := up.Output()
	defer func() {
		down := exec.Command(testenv, "down", dir)
		down.Stdout, down.Stderr = os.Stderr, os.Stderr
		if err := down.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "testenv down:", err)
		}
	}()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testenv up:", err)
		return 1
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			envVars[k] = v
		}
		if v, ok := strings.CutPrefix(sc.Text(), "SATCHEL_ADDR="); ok {
			daemonAddr = v
		}
		if v, ok := strings.CutPrefix(sc.Text(), "SATCHEL_REGISTRY="); ok {
			registry = v
		}
		if v, ok := strings.CutPrefix(sc.Text(), "SATCHEL_REGISTRY_BLOBS="); ok {
			registryBlobs = v
		}
	}
	if daemonAddr == "" || registry == "" || registryBlobs == "" {
		fmt.Fprintf(os.Stderr, "testenv up printed no address:\n%s", out)
		return 1
	}
	return m.Run()
}

func dial(t *testing.T) *satchel.Client {
	t.Helper()
	c, err := satchel.Dial(daemonAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// writeRandom writes size random bytes to dir/name and returns the path
// and the sha256 digest.
func writeRandom(t *testing.T, dir, name string, size int64) (string, string) {
	t.Helper()
	path := filepath.Join(dir, name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, size); err != nil {
		t.Fatal(err)
	}
	return path, "sha256:" + hex.EncodeToString(h.Sum(nil))
}

func fileDigest(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

func TestPushAttachDiscoverPullResolve(t *testing.T) {
	ctx := testContext(t)
	c := dial(t)
	reg := satchel.TargetOptions{PlainHTTP: true}
	src := t.TempDir()
	repo := registry + "/demo/app"
	const sbomType = "application/vnd.example.sbom.v1"

	// The subject: a small artifact tagged v1.
	readme := filepath.Join(src, "readme.txt")
	if err := os.WriteFile(readme, []byte("hello from the go client\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pushed, err := c.Push(ctx, repo+":v1", []string{readme}, satchel.PushOptions{
		TargetOptions: reg,
		ArtifactType:  "application/vnd.example.app.v1",
	})
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	subjectDigest := pushed.Manifest.Digest
	if !strings.HasPrefix(subjectDigest, "sha256:") {
		t.Fatalf("push returned digest %q", subjectDigest)
	}
	if len(pushed.Layers) != 1 || pushed.Layers[0].Digest != fileDigest(t, readme) {
		t.Fatalf("push layers = %v", pushed.Layers)
	}

	// The attachment: 50 MiB of random bytes, streamed in chunks.
	big, bigDigest := writeRandom(t, src, "sbom.bin", 50<<20)
	var progressEvents int
	attached, err := c.Attach(ctx, repo+":v1", []string{big}, satchel.PushOptions{
		TargetOptions: reg,
		ArtifactType:  sbomType,
		Annotations:   map[string]string{"org.example.kind": "sbom"},
		OnProgress:    func(satchel.Progress) { progressEvents++ },
	})
	if err != nil {
		t.Fatalf("attach: %v", err)
	}
	sbomDigest := attached.Manifest.Digest
	if attached.Subject == nil || attached.Subject.Digest != subjectDigest {
		t.Errorf("attach subject = %v, want %s", attached.Subject, subjectDigest)
	}
	if len(attached.Layers) != 1 || attached.Layers[0].Digest != bigDigest {
		t.Errorf("attach layers = %v, want one with %s", attached.Layers, bigDigest)
	}
	if progressEvents == 0 {
		t.Errorf("attach reported no progress")
	}

	// Discover finds it with its type and annotation.
	found, err := c.Discover(ctx, repo+":v1", satchel.DiscoverOptions{TargetOptions: reg})
	if err != nil {
		t.Fatalf("discover: %v", err)
	}
	if got := found.Subject.Digest; got != subjectDigest {
		t.Errorf("discover subject = %s, want %s", got, subjectDigest)
	}
	var sbom *satchel.Referrer
	for i, r := range found.Referrers {
		if r.Digest == sbomDigest {
			sbom = &found.Referrers[i]
		}
	}
	if sbom == nil {
		t.Fatalf("discover did not list %s: %v", sbomDigest, found.Referrers)
	}
	if sbom.ArtifactType != sbomType {
		t.Errorf("referrer artifact type = %q, want %q", sbom.ArtifactType, sbomType)
	}
	if got := sbom.Annotations["org.example.kind"]; got != "sbom" {
		t.Errorf("referrer annotation org.example.kind = %q, want sbom", got)
	}
	// Filtering by another type leaves it out.
	none, err := c.Discover(ctx, repo+":v1", satchel.DiscoverOptions{TargetOptions: reg, ArtifactType: "application/vnd.example.other"})
	if err != nil {
		t.Fatalf("discover with filter: %v", err)
	}
	if n := len(none.Referrers); n != 0 {
		t.Errorf("discover with another type listed %d referrers", n)
	}

	// Pull the attachment by its digest reference.
	out := t.TempDir()
	pulled, err := c.Pull(ctx, repo+"@"+sbomDigest, satchel.PullOptions{TargetOptions: reg, OutputDir: out})
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	if got := pulled.Manifest.Digest; got != sbomDigest {
		t.Errorf("pulled manifest %s, want %s", got, sbomDigest)
	}
	if len(pulled.Files) != 1 || pulled.Files[0].Name != "sbom.bin" {
		t.Fatalf("pulled files = %v", pulled.Files)
	}
	if got := fileDigest(t, filepath.Join(out, "sbom.bin")); got != bigDigest {
		t.Errorf("pulled bytes hash to %s, want %s", got, bigDigest)
	}
	entries, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("output dir holds %d entries, want only sbom.bin", len(entries))
	}

	// The same attachment, found by subject and type.
	out2 := t.TempDir()
	if _, err := c.PullAttachment(ctx, repo+":v1", sbomType, satchel.PullOptions{TargetOptions: reg, OutputDir: out2}); err != nil {
		t.Fatalf("pull attachment: %v", err)
	}
	if got := fileDigest(t, filepath.Join(out2, "sbom.bin")); got != bigDigest {
		t.Errorf("pulled attachment hashes to %s, want %s", got, bigDigest)
	}

	// Resolve the tag: the pushed subject.
	resolved, err := c.Resolve(ctx, repo+":v1", reg)
	if err != nil {
		t.Fatalf("resolve: %v", err)
	}
	if got := resolved.Digest; got != subjectDigest {
		t.Errorf("resolve v1 = %s, want %s", got, subjectDigest)
	}
}

// A file hashed before it is sent is known by digest, so the daemon finds
// the blob in the repository and does not upload it a second time.
func TestABlobTheRegistryHasIsNotSentAgain(t *testing.T) {
	ctx := testContext(t)
	c := dial(t)
	opts := satchel.PushOptions{TargetOptions: satchel.TargetOptions{PlainHTTP: true}}
	f, digest := writeRandom(t, t.TempDir(), "layer.bin", 1<<20)

	first, err := c.Push(ctx, registry+"/demo/skip:a", []string{f}, opts)
	if err != nil {
		t.Fatalf("first push: %v", err)
	}
	if first.BlobsSkipped != 0 || first.Layers[0].Digest != digest {
		t.Fatalf("first push skipped %d blobs, layer %s; want 0 and %s", first.BlobsSkipped, first.Layers[0].Digest, digest)
	}
	again, err := c.Push(ctx, registry+"/demo/skip:b", []string{f}, opts)
	if err != nil {
		t.Fatalf("second push: %v", err)
	}
	if again.BlobsSkipped != 1 || again.Layers[0].Digest != digest {
		t.Errorf("second push skipped %d blobs, layer %s; want 1 and %s", again.BlobsSkipped, again.Layers[0].Digest, digest)
	}
}

func TestErrorsCarryStatusCodes(t *testing.T) {
	ctx := testContext(t)
	c := dial(t)
	reg := satchel.TargetOptions{PlainHTTP: true}

	_, err := c.Resolve(ctx, registry+"/demo/missing:nope", reg)
	if code := status.Code(err); code != codes.NotFound {
		t.Errorf("resolve of a missing tag: code %v (%v), want NotFound", code, err)
	}

	_, err = c.Resolve(ctx, "Not A Reference!!", reg)
	if code := status.Code(err); code != codes.InvalidArgument {
		t.Errorf("resolve of a malformed reference: code %v (%v), want InvalidArgument", code, err)
	}

	_, err = c.Pull(ctx, registry+"/demo/missing:nope", satchel.PullOptions{TargetOptions: reg, OutputDir: t.TempDir()})
	if code := status.Code(err); code != codes.NotFound {
		t.Errorf("pull of a missing tag: code %v (%v), want NotFound", code, err)
	}

	// Attach without an artifact type is refused by the daemon.
	f := filepath.Join(t.TempDir(), "x.txt")
	if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = c.Attach(ctx, registry+"/demo/missing:nope", []string{f}, satchel.PushOptions{TargetOptions: reg})
	if code := status.Code(err); code != codes.InvalidArgument {
		t.Errorf("attach without artifact type: code %v (%v), want InvalidArgument", code, err)
	}
}

func TestSafeName(t *testing.T) {
	for name, want := range map[string]bool{
		"a.txt":       true,
		"dir/a.txt":   true,
		"..a":         true,
		"":            false,
		".":           false,
		"..":          false,
		"/etc/passwd": false,
		"../a":        false,
		"a/../../b":   false,
		"a/../b":      false,
		"./a":         false,
		"a/./b":       false,
		"a/":          false,
		"a//b":        false,
		"a\\b":        false,
		"a\x00b":      false,
	} {
		if got := satchel.SafeName(name); got != want {
			t.Errorf("SafeName(%q) = %v, want %v", name, got, want)
		}
	}
}

// The registry's copy of a layer is damaged on disk: the daemon streams its
// bytes, finds the digest wrong at the end, and fails the call with
// DATA_LOSS. The half-written file must be gone.
func TestCorruptedBlobFailsMidFileAndLeavesNothing(t *testing.T) {
	ctx := testContext(t)
	c := dial(t)
	reg := satchel.TargetOptions{PlainHTTP: true}
	const size = 24 << 20
	file, _ := writeRandom(t, t.TempDir(), "layer.bin", size)
	ref := registry + "/go/corrupt:v1"
	pushed, err := c.Push(ctx, ref, []string{file}, satchel.PushOptions{TargetOptions: reg})
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	hexDigest, ok := strings.CutPrefix(pushed.Layers[0].Digest, "sha256:")
	if !ok {
		t.Fatalf("layer digest %q", pushed.Layers[0].Digest)
	}
	blob, err := os.OpenFile(filepath.Join(registryBlobs, "sha256", hexDigest[:2], hexDigest, "data"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := blob.ReadAt(b, size-10); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xFF
	if _, err := blob.WriteAt(b, size-10); err != nil {
		t.Fatal(err)
	}
	if err := blob.Close(); err != nil {
		t.Fatal(err)
	}

	out := t.TempDir()
	var maxDone uint64
	_, err = c.Pull(ctx, ref, satchel.PullOptions{
		TargetOptions: reg,
		OutputDir:     out,
		OnProgress:    func(p satchel.Progress) { maxDone = max(maxDone, p.Done) },
	})
	if code := status.Code(err); code != codes.DataLoss {
		t.Fatalf("pull of a corrupted blob: code %v (%v), want DataLoss", code, err)
	}
	// The failure came after file bytes had arrived, not before.
	if maxDone == 0 {
		t.Errorf("no progress with done > 0 before the failure")
	}
	entries, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("the failed pull left %s", e.Name())
	}
}

// A panic in a progress callback reaches the caller, and the upload is
// cancelled rather than finished behind the caller's back.
func TestPanickingProgressCancelsTheUpload(t *testing.T) {
	ctx := testContext(t)
	c := dial(t)
	reg := satchel.TargetOptions{PlainHTTP: true}
	file, _ := writeRandom(t, t.TempDir(), "big.bin", 20<<20)
	ref := registry + "/go/cancelled:v1"
	type enough struct{}
	recovered := func() (v any) {
		defer func() { v = recover() }()
		c.Push(ctx, ref, []string{file}, satchel.PushOptions{
			TargetOptions: reg,
			OnProgress:    func(satchel.Progress) { panic(enough{}) },
		})
		return nil
	}()
	if _, ok := recovered.(enough); !ok {
		t.Fatalf("push recovered %v, want the callback's panic", recovered)
	}
	// 20 MiB would go up in well under the 3 s this watches for it.
	for range 30 {
		_, err := c.Resolve(ctx, ref, reg)
		if code := status.Code(err); code != codes.NotFound {
			t.Fatalf("resolve after a cancelled push: code %v (%v), want NotFound", code, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestDefaultAddr(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/1234")
	if got, want := satchel.DefaultAddr(), "unix:///run/user/1234/satchel/satcheld.sock"; got != want {
		t.Errorf("DefaultAddr() = %q, want %q", got, want)
	}
	t.Setenv("XDG_RUNTIME_DIR", "")
	want := "unix://" + filepath.Join(os.TempDir(), fmt.Sprintf("satchel-%d", os.Geteuid()), "satcheld.sock")
	if got := satchel.DefaultAddr(); got != want {
		t.Errorf("DefaultAddr() without XDG_RUNTIME_DIR = %q, want %q", got, want)
	}
}

// Dial("") without $SATCHEL_ADDR finds the daemon at its default socket.
func TestDialDefaultsToTheDaemonSocket(t *testing.T) {
	runtime := t.TempDir()
	if err := os.Mkdir(filepath.Join(runtime, "satchel"), 0o700); err != nil {
		t.Fatal(err)
	}
	sock, _ := strings.CutPrefix(daemonAddr, "unix://")
	if err := os.Symlink(sock, filepath.Join(runtime, "satchel", "satcheld.sock")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("XDG_RUNTIME_DIR", runtime)
	t.Setenv("SATCHEL_ADDR", "")
	c, err := satchel.Dial("")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Resolve(testContext(t), registry+"/go/missing:nope", satchel.TargetOptions{PlainHTTP: true})
	if code := status.Code(err); code != codes.NotFound {
		t.Errorf("resolve through the default socket: code %v (%v), want NotFound", code, err)
	}
}
