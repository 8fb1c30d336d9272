package satchel_test

import (
	"context"
	"fmt"
	"log"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	satchel "github.com/satchel-oci/satchel/clients/go"
)

// The README's example; compiled, not run (it needs a daemon).
func Example() {
	ctx := context.Background()
	c, err := satchel.Dial("unix:///run/satcheld/satcheld.sock")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	reg := satchel.TargetOptions{PlainHTTP: true}

	app, err := c.Push(ctx, "localhost:5000/demo/app:v1", []string{"app.tar"}, satchel.PushOptions{TargetOptions: reg})
	if err != nil {
		log.Fatal(err)
	}
	_, err = c.Attach(ctx, app.Reference, []string{"sbom.json"}, satchel.PushOptions{
		TargetOptions: reg,
		ArtifactType:  "application/vnd.example.sbom.v1",
		Annotations:   map[string]string{"org.example.kind": "sbom"},
	})
	if err != nil {
		log.Fatal(err)
	}
	found, err := c.Discover(ctx, app.Reference, satchel.DiscoverOptions{TargetOptions: reg})
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range found.Referrers {
		fmt.Println(r.Digest, r.ArtifactType, r.Annotations)
		if _, err := c.Pull(ctx, "localhost:5000/demo/app@"+r.Digest, satchel.PullOptions{TargetOptions: reg, OutputDir: "out"}); err != nil {
			log.Fatal(err)
		}
	}
	if _, err := c.Resolve(ctx, "localhost:5000/demo/app:nope", reg); status.Code(err) == codes.NotFound {
		fmt.Println("no such tag")
	}
}

// Files of 256 MiB and more are sent without hashing them first, unless
// HashFirst asks for it; the README's "Pushing large files" example.
func ExamplePushOptions_hashFirst() {
	ctx := context.Background()
	c, err := satchel.Dial("") // $SATCHEL_ADDR, else the daemon's default socket
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	reg := satchel.TargetOptions{PlainHTTP: true}

	_, err = c.Push(ctx, "localhost:5000/demo/model:v1", []string{"weights.bin"},
		satchel.PushOptions{TargetOptions: reg, HashFirst: true})
	if err != nil {
		log.Fatal(err)
	}
}
