package satchel_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	satchel "github.com/satchel-oci/satchel/clients/go"
)

// clients/conformance/behaviour.json's missing_local_file: a file named to
// Push or Attach that is missing is INVALID_ARGUMENT naming the path, and
// still fs.ErrNotExist; a device is INVALID_ARGUMENT too. Nothing reaches
// the registry.
func TestAMissingLocalFileIsInvalidArgumentNamingThePath(t *testing.T) {
	ctx := testContext(t)
	c := dial(t)
	reg := satchel.TargetOptions{PlainHTTP: true}
	dir := t.TempDir()
	present := filepath.Join(dir, "present.txt")
	if err := os.WriteFile(present, []byte("here"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.txt")
	ref := registry + "/go/missing-file:v1"
	calls := map[string]func(path string) error{
		"push": func(p string) error {
			_, err := c.Push(ctx, ref, []string{present, p}, satchel.PushOptions{TargetOptions: reg})
			return err
		},
		"attach": func(p string) error {
			_, err := c.Attach(ctx, ref, []string{present, p}, satchel.PushOptions{TargetOptions: reg, ArtifactType: "application/vnd.example.x"})
			return err
		},
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			err := call(missing)
			if code := status.Code(err); code != codes.InvalidArgument {
				t.Errorf("code %v (%v), want InvalidArgument", code, err)
			}
			if !strings.Contains(status.Convert(err).Message(), missing) {
				t.Errorf("message %q does not name %s", status.Convert(err).Message(), missing)
			}
			if !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("errors.Is(%v, fs.ErrNotExist) is false", err)
			}
			var fileErr *satchel.LocalFileError
			if !errors.As(err, &fileErr) || fileErr.Path != missing {
				t.Errorf("not a *LocalFileError for %s: %#v", missing, err)
			}

			// Neither a regular file nor a directory (which would be packed).
			err = call(os.DevNull)
			if code := status.Code(err); code != codes.InvalidArgument || !errors.Is(err, satchel.ErrNotRegular) {
				t.Errorf("a device: code %v (%v), want InvalidArgument and ErrNotRegular", code, err)
			}
			if errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a device is fs.ErrNotExist: %v", err)
			}
		})
	}
	if _, err := c.Resolve(ctx, ref, reg); status.Code(err) != codes.NotFound {
		t.Errorf("resolve after the refused pushes: %v, want NotFound", err)
	}
}

// behaviour.json's addresses: Dial("") uses $SATCHEL_ADDR when it is set
// and not empty (TestDialDefaultsToTheDaemonSocket covers the default
// socket without it), and a bare absolute path is a Unix socket.
func TestDialEmptyAddressUsesSatchelAddr(t *testing.T) {
	// The default socket leads nowhere, so only $SATCHEL_ADDR can answer.
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	t.Setenv("SATCHEL_ADDR", daemonAddr)
	sock, _ := strings.CutPrefix(daemonAddr, "unix://")
	for name, addr := range map[string]string{"empty address": "", "bare path": sock} {
		t.Run(name, func(t *testing.T) {
			c, err := satchel.Dial(addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.ServerInfo(testContext(t)); err != nil {
				t.Errorf("ServerInfo through %q: %v", addr, err)
			}
		})
	}
	t.Setenv("SATCHEL_ADDR", "")
	c, err := satchel.Dial("")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.ServerInfo(testContext(t)); status.Code(err) != codes.Unavailable {
		t.Errorf("with SATCHEL_ADDR empty and no daemon at the default socket: %v, want Unavailable", err)
	}
}
