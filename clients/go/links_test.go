package satchel_test

import (
	"context"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	satchel "github.com/satchel-oci/satchel/clients/go"
)

// tree describes everything under root without following links: for each
// path, "dir", "link -> TARGET" or "file MODE: CONTENT".
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
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
			out[rel] = "file " + info.Mode().String() + ": " + string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Every planted_links vector of clients/conformance/titles.json, pulled
// through a real satcheld: a link at the final name is replaced, a link
// anywhere on the way is refused with FailedPrecondition, nothing outside
// the output directory changes and no partial file stays.
func TestPullNeverFollowsAPlantedLink(t *testing.T) {
	ctx := testContext(t)
	c := dial(t)
	reg := satchel.TargetOptions{PlainHTTP: true}
	for i, v := range vectors(t).PlantedLinks {
		t.Run(caseName(i, v.Name), func(t *testing.T) {
			src := t.TempDir()
			data := "the layer titled " + v.Title + "\n"
			file := filepath.Join(src, "layer")
			if err := os.WriteFile(file, []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
			ref := registry + "/go/planted:v" + strconv.Itoa(i)
			if _, err := c.Push(ctx, ref, []string{file}, satchel.PushOptions{TargetOptions: reg, Titles: []string{v.Title}}); err != nil {
				t.Fatalf("push: %v", err)
			}

			base := t.TempDir()
			out, outside := filepath.Join(base, "out"), filepath.Join(base, "outside")
			for _, d := range []string{out, outside} {
				if err := os.Mkdir(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(filepath.Join(outside, "victim"), []byte("the victim\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			for _, d := range v.Dirs {
				if err := os.MkdirAll(filepath.Join(out, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			for _, l := range v.Links {
				to := l.To
				if rest, ok := strings.CutPrefix(to, "OUTSIDE"); ok {
					to = outside + rest
				}
				if err := os.Symlink(to, filepath.Join(out, l.Path)); err != nil {
					t.Fatal(err)
				}
			}
			outsideBefore, outBefore := tree(t, outside), tree(t, out)

			_, err := c.Pull(ctx, ref, satchel.PullOptions{TargetOptions: reg, OutputDir: out})

			if got := tree(t, outside); !reflect.DeepEqual(got, outsideBefore) {
				t.Errorf("OUTSIDE changed:\nbefore %v\nafter  %v", outsideBefore, got)
			}
			want := outBefore
			switch v.Expect {
			case "replaced":
				if err != nil {
					t.Fatalf("pull: %v, want success", err)
				}
				want[filepath.FromSlash(v.Title)] = "file " + fileMode(t) + ": " + data
			case "refused":
				if code := status.Code(err); code != codes.FailedPrecondition {
					t.Fatalf("pull: code %v (%v), want FailedPrecondition", code, err)
				}
			default:
				t.Fatalf("unknown expectation %q", v.Expect)
			}
			// Exactly what was planted (and the pulled file): no partial
			// file, no directory made for nothing.
			if got := tree(t, out); !reflect.DeepEqual(got, want) {
				t.Errorf("the output directory holds\n%v\nwant\n%v", got, want)
			}
		})
	}
}

// A directory where a pulled file goes is the directory's fault: the pull
// fails with FailedPrecondition and leaves the directory as it was.
func TestPullRefusesADirectoryAtAFileName(t *testing.T) {
	ctx := testContext(t)
	c := dial(t)
	reg := satchel.TargetOptions{PlainHTTP: true}
	file := filepath.Join(t.TempDir(), "f.txt")
	if err := os.WriteFile(file, []byte("f\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ref := registry + "/go/dir-at-name:v1"
	if _, err := c.Push(ctx, ref, []string{file}, satchel.PushOptions{TargetOptions: reg, Titles: []string{"d/f.txt"}}); err != nil {
		t.Fatalf("push: %v", err)
	}
	out := t.TempDir()
	if err := os.MkdirAll(filepath.Join(out, "d", "f.txt", "inner"), 0o755); err != nil {
		t.Fatal(err)
	}
	before := tree(t, out)
	_, err := c.Pull(ctx, ref, satchel.PullOptions{TargetOptions: reg, OutputDir: out})
	if code := status.Code(err); code != codes.FailedPrecondition {
		t.Fatalf("pull: code %v (%v), want FailedPrecondition", code, err)
	}
	if got := tree(t, out); !reflect.DeepEqual(got, before) {
		t.Errorf("the output directory holds\n%v\nwant\n%v", got, before)
	}
}

// fileMode is the mode a pulled file gets: 0666 less the umask.
func fileMode(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "probe")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	info, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return info.Mode().String()
}

// A title the vectors refuse is refused at push too, before anything is
// sent, and so is a Titles list that does not match the files.
func TestPushRefusesBadTitles(t *testing.T) {
	ctx := testContext(t)
	c := dial(t)
	reg := satchel.TargetOptions{PlainHTTP: true}
	file := filepath.Join(t.TempDir(), "f.txt")
	if err := os.WriteFile(file, []byte("f"), 0o644); err != nil {
		t.Fatal(err)
	}
	ref := registry + "/go/badtitle:v1"
	for _, titles := range [][]string{{"../f.txt"}, {"a\x1b[31m"}, {strings.Repeat("a", 256)}, {"a", "b"}} {
		_, err := c.Push(ctx, ref, []string{file}, satchel.PushOptions{TargetOptions: reg, Titles: titles})
		if code := status.Code(err); code != codes.InvalidArgument {
			t.Errorf("push titled %q: code %v (%v), want InvalidArgument", titles, code, err)
		}
	}
	if _, err := c.Resolve(ctx, ref, reg); status.Code(err) != codes.NotFound {
		t.Errorf("resolve after refused pushes: %v, want NotFound", err)
	}
}

// silentRegistry is a test-only hostile registry: a TCP listener that
// accepts connections, reads whatever comes and never answers.
func silentRegistry(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			conn, err := lis.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
			go io.Copy(io.Discard, conn)
		}
	}()
	t.Cleanup(func() {
		lis.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return lis.Addr().String()
}

// A call that cannot finish in time fails with DeadlineExceeded, whether
// the deadline comes from ctx or from Client.Timeout, and a pull cut short
// leaves the output directory empty.
func TestCallsPastTheirDeadlineFailWithDeadlineExceeded(t *testing.T) {
	ref := silentRegistry(t) + "/go/hang:v1"
	reg := satchel.TargetOptions{PlainHTTP: true}
	withTimeout := dial(t)
	withTimeout.Timeout = 2 * time.Second
	plain := dial(t)
	deadline := func(t *testing.T) context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		t.Cleanup(cancel)
		return ctx
	}
	for _, tc := range []struct {
		name string
		call func(t *testing.T, out string) error
	}{
		{"pull, deadline from ctx", func(t *testing.T, out string) error {
			_, err := plain.Pull(deadline(t), ref, satchel.PullOptions{TargetOptions: reg, OutputDir: out})
			return err
		}},
		{"pull, deadline from Client.Timeout", func(t *testing.T, out string) error {
			_, err := withTimeout.Pull(context.Background(), ref, satchel.PullOptions{TargetOptions: reg, OutputDir: out})
			return err
		}},
		{"resolve, deadline from Client.Timeout", func(t *testing.T, out string) error {
			_, err := withTimeout.Resolve(context.Background(), ref, reg)
			return err
		}},
		{"discover, deadline from Client.Timeout", func(t *testing.T, out string) error {
			_, err := withTimeout.Discover(context.Background(), ref, satchel.DiscoverOptions{TargetOptions: reg})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			err := tc.call(t, out)
			if code := status.Code(err); code != codes.DeadlineExceeded {
				t.Fatalf("code %v (%v), want DeadlineExceeded", code, err)
			}
			entries, err := os.ReadDir(out)
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			for _, e := range entries {
				t.Errorf("the call left %s", e.Name())
			}
		})
	}
}
