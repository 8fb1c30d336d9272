package satchel_test

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	satchel "github.com/satchel-oci/satchel/clients/go"
	pb "github.com/satchel-oci/satchel/clients/go/satchelv1"
)

// scriptedPull is a fake daemon whose Pull sends a fixed list of messages,
// for the stream shapes a real daemon does not produce on demand.
type scriptedPull struct {
	pb.UnimplementedSatchelServiceServer
	messages []*pb.PullResponse
}

func (s *scriptedPull) Pull(_ *pb.PullRequest, stream grpc.ServerStreamingServer[pb.PullResponse]) error {
	for _, m := range s.messages {
		if err := stream.Send(m); err != nil {
			return err
		}
	}
	return nil
}

// fakeDaemon serves messages on a Unix socket and returns a client for it.
func fakeDaemon(t *testing.T, messages []*pb.PullResponse) *satchel.Client {
	t.Helper()
	return serveFake(t, &scriptedPull{messages: messages})
}

// manifestJSON is an image manifest whose layers carry the titles.
func manifestJSON(titles ...string) []byte {
	type layer struct {
		Annotations map[string]string `json:"annotations"`
	}
	var m struct {
		Layers []layer `json:"layers"`
	}
	for _, t := range titles {
		m.Layers = append(m.Layers, layer{Annotations: map[string]string{"org.opencontainers.image.title": t}})
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

func manifestMsg(content []byte) *pb.PullResponse {
	return &pb.PullResponse{Payload: &pb.PullResponse_Manifest{Manifest: &pb.PulledManifest{
		Manifest: &pb.Descriptor{MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: "sha256:" + hex.EncodeToString(sha256.New().Sum(nil))},
		Content:  content,
	}}}
}

func fileMsg(name, digest string, size uint64) *pb.PullResponse {
	return &pb.PullResponse{Payload: &pb.PullResponse_File{File: &pb.FileHeader{
		Name:  name,
		Layer: &pb.Descriptor{MediaType: "application/octet-stream", Digest: digest, Size: size},
	}}}
}

func chunkMsg(data []byte) *pb.PullResponse {
	return &pb.PullResponse{Payload: &pb.PullResponse_Chunk{Chunk: data}}
}

func doneMsg(digest string) *pb.PullResponse {
	return &pb.PullResponse{Payload: &pb.PullResponse_Done{Done: &pb.FileDone{Digest: digest}}}
}

func TestPullChecksEveryFile(t *testing.T) {
	data := []byte("the bytes of a pulled file\n")
	sum256 := sha256.Sum256(data)
	sum512 := sha512.Sum512(data)
	d256 := "sha256:" + hex.EncodeToString(sum256[:])
	d512 := "sha512:" + hex.EncodeToString(sum512[:])
	other := "sha256:" + hex.EncodeToString(make([]byte, 32))
	n := uint64(len(data))
	m := manifestMsg(manifestJSON("a.txt"))
	noDir := manifestMsg(manifestJSON("d/a.txt"))

	for _, tc := range []struct {
		name     string
		messages []*pb.PullResponse
		want     codes.Code
	}{
		{"sha256 layer", []*pb.PullResponse{m, fileMsg("a.txt", d256, n), chunkMsg(data), doneMsg(d256)}, codes.OK},
		{"sha512 layer", []*pb.PullResponse{m, fileMsg("a.txt", d512, n), chunkMsg(data), doneMsg(d512)}, codes.OK},
		// A manifest bigger than gRPC's default 4 MiB receive limit.
		{"5 MiB manifest", []*pb.PullResponse{manifestMsg(append([]byte("{}"), bytes.Repeat([]byte{' '}, 5<<20)...))}, codes.OK},
		{"file in a subdirectory", []*pb.PullResponse{noDir, fileMsg("d/a.txt", d256, n), chunkMsg(data), doneMsg(d256)}, codes.OK},
		{"daemon confirms another digest", []*pb.PullResponse{m, fileMsg("a.txt", d256, n), chunkMsg(data), doneMsg(other)}, codes.DataLoss},
		{"bytes do not match the layer", []*pb.PullResponse{m, fileMsg("a.txt", other, n), chunkMsg(data), doneMsg(other)}, codes.DataLoss},
		{"size does not match the layer", []*pb.PullResponse{m, fileMsg("a.txt", d256, n+1), chunkMsg(data), doneMsg(d256)}, codes.DataLoss},
		{"unsupported algorithm", []*pb.PullResponse{m, fileMsg("a.txt", "md5:00", n), chunkMsg(data), doneMsg("md5:00")}, codes.FailedPrecondition},
		{"stream ends inside a file", []*pb.PullResponse{m, fileMsg("a.txt", d256, n), chunkMsg(data)}, codes.Internal},
		{"no manifest", []*pb.PullResponse{}, codes.Internal},
		{"unsafe name", []*pb.PullResponse{m, fileMsg("../a.txt", d256, n), chunkMsg(data), doneMsg(d256)}, codes.InvalidArgument},
		// The daemon refuses these titles itself; the client must too.
		{"unsafe title in the manifest", []*pb.PullResponse{manifestMsg(manifestJSON("../a.txt")), fileMsg("../a.txt", d256, n), chunkMsg(data), doneMsg(d256)}, codes.InvalidArgument},
		{"a file and a directory of one name", []*pb.PullResponse{manifestMsg(manifestJSON("x", "x/y")), fileMsg("x", d256, n), chunkMsg(data), doneMsg(d256)}, codes.InvalidArgument},
		// A header the manifest does not name is the daemon breaking the
		// protocol (pull_streams.json), not an unsafe title.
		{"a file the manifest does not name", []*pb.PullResponse{m, fileMsg("b.txt", d256, n), chunkMsg(data), doneMsg(d256)}, codes.Internal},
		{"one file sent twice", []*pb.PullResponse{m, fileMsg("a.txt", d256, n), chunkMsg(data), doneMsg(d256), fileMsg("a.txt", d256, n), chunkMsg(data), doneMsg(d256)}, codes.Internal},
		{"a file before the manifest", []*pb.PullResponse{fileMsg("a.txt", d256, n), chunkMsg(data), doneMsg(d256), m}, codes.Internal},
		{"a manifest that is not JSON", []*pb.PullResponse{manifestMsg([]byte("not json")), fileMsg("a.txt", d256, n), chunkMsg(data), doneMsg(d256)}, codes.InvalidArgument},
		{"a corrupt file leaves no directory made for it", []*pb.PullResponse{noDir, fileMsg("d/a.txt", d256, n), chunkMsg(data), doneMsg(other)}, codes.DataLoss},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := fakeDaemon(t, tc.messages)
			out := t.TempDir()
			res, err := c.Pull(testContext(t), "fake/x:v1", satchel.PullOptions{OutputDir: out})
			if code := status.Code(err); code != tc.want {
				t.Fatalf("pull: code %v (%v), want %v", code, err, tc.want)
			}
			entries, rerr := os.ReadDir(out)
			if rerr != nil {
				t.Fatal(rerr)
			}
			if err != nil && tc.name == "one file sent twice" {
				// The first copy was finished and stays; the second is refused.
				if len(entries) != 1 {
					t.Errorf("output dir holds %d entries, want only a.txt", len(entries))
				}
				return
			}
			if err != nil {
				if len(entries) != 0 {
					t.Errorf("a failed pull left %d entries, the first %s", len(entries), entries[0].Name())
				}
				return
			}
			if len(res.Files) != len(entries) {
				t.Errorf("pull reported %d files, the output dir holds %d entries", len(res.Files), len(entries))
			}
			for _, f := range res.Files {
				if got, _ := os.ReadFile(f.Path); !bytes.Equal(got, data) {
					t.Errorf("%s holds %q", f.Path, got)
				}
			}
		})
	}
}
