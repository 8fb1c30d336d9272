package satchel_test

import (
	"context"
	"io"
	"net"
	"path/filepath"
	"slices"
	"testing"

	"google.golang.org/grpc"

	satchel "github.com/satchel-oci/satchel/clients/go"
	pb "github.com/satchel-oci/satchel/clients/go/satchelv1"
)

// limitsFake is a test-only fake daemon, for the ServerInfo answers no real
// daemon can be made to give: a chunk size other than 1 MiB, or none at all
// (a daemon older than the RPC answers UNIMPLEMENTED). Its Push records
// what the client sent and answers a result.
type limitsFake struct {
	pb.UnimplementedSatchelServiceServer
	// info is ServerInfo's answer; nil answers UNIMPLEMENTED.
	info *pb.ServerInfoResponse
	// specs and chunks are what the last Push sent: the header's files and
	// each chunk's length.
	specs  []*pb.FileSpec
	chunks []int
}

func (f *limitsFake) ServerInfo(ctx context.Context, req *pb.ServerInfoRequest) (*pb.ServerInfoResponse, error) {
	if f.info == nil {
		return f.UnimplementedSatchelServiceServer.ServerInfo(ctx, req)
	}
	return f.info, nil
}

func (f *limitsFake) Push(stream grpc.BidiStreamingServer[pb.PushRequest, pb.PushResponse]) error {
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if h := msg.GetHeader(); h != nil {
			f.specs = h.GetArtifact().GetFiles()
		}
		if c := msg.GetChunk(); c != nil {
			f.chunks = append(f.chunks, len(c.GetData()))
		}
	}
	return stream.Send(&pb.PushResponse{Event: &pb.PushResponse_Result{Result: &pb.PushResult{
		Manifest: &pb.Descriptor{Digest: "sha256:fake"},
	}}})
}

// serveFake serves srv on a Unix socket and returns a client for it.
func serveFake(t *testing.T, srv pb.SatchelServiceServer) *satchel.Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "fake.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	pb.RegisterSatchelServiceServer(s, srv)
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	c, err := satchel.Dial("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Push sends chunks of the daemon's MaxChunkBytes and hashes first only
// files under its HashFirstBelow.
func TestPushUsesTheDaemonsChunkSizeAndHashFirstBelow(t *testing.T) {
	fake := &limitsFake{info: &pb.ServerInfoResponse{Version: "fake", MaxChunkBytes: 1000, MaxMessageBytes: 8 << 20, HashFirstBelow: 2000}}
	c := serveFake(t, fake)
	src := t.TempDir()
	small, smallDigest := writeRandom(t, src, "small.bin", 1999)
	large, _ := writeRandom(t, src, "large.bin", 2500)
	if _, err := c.Push(testContext(t), "fake/x:v1", []string{small, large}, satchel.PushOptions{}); err != nil {
		t.Fatal(err)
	}
	if want := []int{1000, 999, 1000, 1000, 500}; !slices.Equal(fake.chunks, want) {
		t.Errorf("chunk sizes %v, want %v", fake.chunks, want)
	}
	if len(fake.specs) != 2 || fake.specs[0].GetDigest() != smallDigest || fake.specs[1].GetDigest() != "" {
		t.Errorf("file specs %v: want the first hashed (%s), the second not", fake.specs, smallDigest)
	}
}

// A daemon older than ServerInfo is taken to have limits.json's defaults.
func TestServerInfoFallsBackToTheDefaultsWhenUnimplemented(t *testing.T) {
	want := readLimits(t).Defaults
	fake := &limitsFake{}
	c := serveFake(t, fake)
	info, err := c.ServerInfo(testContext(t))
	if err != nil {
		t.Fatalf("ServerInfo of a daemon without it: %v", err)
	}
	if got := (satchel.ServerInfo{MaxChunkBytes: want.MaxChunkBytes, MaxMessageBytes: want.MaxMessageBytes, HashFirstBelow: want.HashFirstBelow}); info != got {
		t.Errorf("ServerInfo = %+v, want %+v", info, got)
	}
	file, _ := writeRandom(t, t.TempDir(), "f.bin", int64(want.MaxChunkBytes)+1)
	if _, err := c.Push(testContext(t), "fake/x:v1", []string{file}, satchel.PushOptions{}); err != nil {
		t.Fatal(err)
	}
	if w := []int{int(want.MaxChunkBytes), 1}; !slices.Equal(fake.chunks, w) {
		t.Errorf("chunk sizes %v, want %v", fake.chunks, w)
	}
}
