package satchel_test

import (
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	satchel "github.com/satchel-oci/satchel/clients/go"
	pb "github.com/satchel-oci/satchel/clients/go/satchelv1"
)

// pullStream is one case of clients/conformance/pull_streams.json.
type pullStream struct {
	Name     string            `json:"name"`
	Why      string            `json:"why"`
	Messages []json.RawMessage `json:"messages"`
	End      struct {
		Code    codes.Code `json:"code"`
		Message string     `json:"message"`
	} `json:"end"`
	Expect struct {
		Code      codes.Code        `json:"code"`
		Files     map[string]string `json:"files"`
		DirExists bool              `json:"dir_exists"`
	} `json:"expect"`
}

func readPullStreams(t *testing.T) []pullStream {
	t.Helper()
	var file struct {
		Streams []pullStream `json:"streams"`
	}
	readConformance(t, "pull_streams.json", &file)
	if len(file.Streams) == 0 {
		t.Fatal("pull_streams.json has no streams")
	}
	return file.Streams
}

// replay is a source of the case's messages, then its ending status: what
// a Pull stream's Recv returns.
func replay(t *testing.T, c pullStream) func() (*pb.PullResponse, error) {
	msgs := make([]*pb.PullResponse, len(c.Messages))
	for i, raw := range c.Messages {
		msgs[i] = &pb.PullResponse{}
		if err := protojson.Unmarshal(raw, msgs[i]); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	return func() (*pb.PullResponse, error) {
		if len(msgs) == 0 {
			if c.End.Code == codes.OK {
				return nil, io.EOF
			}
			return nil, status.Error(c.End.Code, c.End.Message)
		}
		m := msgs[0]
		msgs = msgs[1:]
		return m, nil
	}
}

// regularFiles maps every regular file under dir (slash-separated paths)
// to its content; anything else but a directory is an error.
func regularFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if !d.Type().IsRegular() {
			t.Errorf("%s is neither a regular file nor a directory (%v)", rel, d.Type())
			return nil
		}
		b, err := os.ReadFile(path)
		files[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// Every pull answer of pull_streams.json, fed to the client's pull state
// machine into a directory that does not exist yet: the code, the regular
// files left (nothing else, no partial file) and whether the directory
// exists are what the case expects.
func TestPullStreamsConformance(t *testing.T) {
	for _, c := range readPullStreams(t) {
		t.Run(c.Name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			res, err := satchel.ConsumePull(replay(t, c), out, satchel.PullOptions{})
			if code := status.Code(err); code != c.Expect.Code {
				t.Errorf("%s: code %v (%v), want %v", c.Why, code, err, c.Expect.Code)
			}
			if c.End.Code != codes.OK && c.Expect.Code == c.End.Code {
				if msg := status.Convert(err).Message(); msg != c.End.Message {
					t.Errorf("the daemon's status changed on the way: message %q, want %q", msg, c.End.Message)
				}
			}
			_, serr := os.Stat(out)
			if exists := serr == nil; exists != c.Expect.DirExists {
				t.Errorf("%s: output dir exists: %v (%v), want %v", c.Why, exists, serr, c.Expect.DirExists)
			}
			if serr != nil && !errors.Is(serr, fs.ErrNotExist) {
				t.Fatal(serr)
			}
			got := map[string]string{}
			if serr == nil {
				got = regularFiles(t, out)
			}
			want := c.Expect.Files
			if want == nil {
				want = map[string]string{}
			}
			if !maps.Equal(got, want) {
				t.Errorf("%s: files %q, want %q", c.Why, got, want)
			}
			if err == nil && len(res.Files) != len(want) {
				t.Errorf("the result names %d files, want %d", len(res.Files), len(want))
			}
		})
	}
}
