package satchel_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	satchel "github.com/satchel-oci/satchel/clients/go"
)

// A watch sees the current (empty) set, then a referrer attached through
// the same client.
func TestWatchReferrersSeesAnAttach(t *testing.T) {
	ctx := testContext(t)
	c := dial(t)
	reg := satchel.TargetOptions{PlainHTTP: true}
	repo := registry + "/go/watched"
	src := t.TempDir()
	file := filepath.Join(src, "app.txt")
	if err := os.WriteFile(file, []byte("watched from go\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Push(ctx, repo+":v1", []string{file}, satchel.PushOptions{TargetOptions: reg, ArtifactType: "application/vnd.example.app"}); err != nil {
		t.Fatalf("push: %v", err)
	}
	const sbom = "application/vnd.example.sbom.v1"
	watchCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	stream, err := c.WatchReferrers(watchCtx, repo+":v1", satchel.DiscoverOptions{TargetOptions: reg, ArtifactType: sbom})
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	first, err := stream.Recv()
	if err != nil || first.GetCurrent() == nil || len(first.GetCurrent().GetReferrers()) != 0 {
		t.Fatalf("first event = %v, %v; want the empty current set", first, err)
	}
	attached, err := c.Attach(ctx, repo+":v1", []string{file}, satchel.PushOptions{TargetOptions: reg, ArtifactType: sbom})
	if err != nil {
		t.Fatalf("attach: %v", err)
	}
	next, err := stream.Recv()
	if err != nil || next.GetAppeared().GetDigest() != attached.Manifest.Digest {
		t.Fatalf("next event = %v, %v; want %s appeared", next, err, attached.Manifest.Digest)
	}
}
