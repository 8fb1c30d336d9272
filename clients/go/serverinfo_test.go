package satchel_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"

	satchel "github.com/satchel-oci/satchel/clients/go"
	pb "github.com/satchel-oci/satchel/clients/go/satchelv1"
)

// limits is clients/conformance/limits.json.
type limits struct {
	Defaults struct {
		MaxChunkBytes   uint32 `json:"max_chunk_bytes"`
		MaxMessageBytes uint32 `json:"max_message_bytes"`
		HashFirstBelow  uint64 `json:"hash_first_below"`
	} `json:"server_info_defaults"`
	ClientReceiveLimitBytes int `json:"client_receive_limit_bytes"`
}

func readLimits(t *testing.T) limits {
	t.Helper()
	var l limits
	readConformance(t, "limits.json", &l)
	if l.Defaults.MaxChunkBytes == 0 || l.Defaults.MaxMessageBytes == 0 || l.Defaults.HashFirstBelow == 0 || l.ClientReceiveLimitBytes == 0 {
		t.Fatalf("limits.json lacks a number: %+v", l)
	}
	return l
}

// The testenv daemon runs with the default config (flags only), so its
// ServerInfo is limits.json's server_info_defaults, and so are the
// client's fallbacks for a daemon without ServerInfo.
func TestServerInfoOfTheDefaultDaemonIsTheConformanceDefaults(t *testing.T) {
	want := readLimits(t).Defaults
	info, err := dial(t).ServerInfo(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if info.MaxChunkBytes != want.MaxChunkBytes || info.MaxMessageBytes != want.MaxMessageBytes || info.HashFirstBelow != want.HashFirstBelow {
		t.Errorf("ServerInfo = %+v, want limits.json's %+v", info, want)
	}
	if info.Version == "" {
		t.Errorf("ServerInfo has no version: %+v", info)
	}
	if satchel.DefaultMaxChunkBytes != want.MaxChunkBytes || satchel.DefaultMaxMessageBytes != want.MaxMessageBytes || satchel.HashFirstBelow != want.HashFirstBelow {
		t.Errorf("fallbacks %d, %d, %d; want limits.json's %+v",
			satchel.DefaultMaxChunkBytes, satchel.DefaultMaxMessageBytes, satchel.HashFirstBelow, want)
	}
}

// The receive limit is the one every client has, and the daemon never
// sends a message larger than it.
func TestReceiveLimitIsTheConformanceOneAndCoversTheDaemon(t *testing.T) {
	l := readLimits(t)
	if satchel.MaxReceiveSize != l.ClientReceiveLimitBytes {
		t.Errorf("MaxReceiveSize = %d, want limits.json's client_receive_limit_bytes %d", satchel.MaxReceiveSize, l.ClientReceiveLimitBytes)
	}
	info, err := dial(t).ServerInfo(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if uint64(satchel.MaxReceiveSize) < uint64(info.MaxMessageBytes) {
		t.Errorf("MaxReceiveSize = %d, below the daemon's MaxMessageBytes %d", satchel.MaxReceiveSize, info.MaxMessageBytes)
	}
}

// One Client asks the daemon once, however many calls (concurrent ones
// too) need the answer.
func TestServerInfoIsAskedOncePerClient(t *testing.T) {
	var asked atomic.Int32
	count := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if method == pb.SatchelService_ServerInfo_FullMethodName {
			asked.Add(1)
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	c, err := satchel.Dial(daemonAddr, grpc.WithChainUnaryInterceptor(count))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := testContext(t)
	var wg sync.WaitGroup
	infos := make([]satchel.ServerInfo, 8)
	errs := make([]error, len(infos))
	for i := range infos {
		wg.Go(func() { infos[i], errs[i] = c.ServerInfo(ctx) })
	}
	wg.Wait()
	for i := range infos {
		if errs[i] != nil || infos[i] != infos[0] {
			t.Errorf("call %d: %+v, %v; call 0: %+v", i, infos[i], errs[i], infos[0])
		}
	}
	file, _ := writeRandom(t, t.TempDir(), "once.bin", 10)
	if _, err := c.Push(ctx, registry+"/go/info-once:v1", []string{file}, satchel.PushOptions{TargetOptions: satchel.TargetOptions{PlainHTTP: true}}); err != nil {
		t.Fatal(err)
	}
	if n := asked.Load(); n != 1 {
		t.Errorf("the daemon was asked for ServerInfo %d times, want once", n)
	}
}

// startDaemon starts another real satcheld, the binary testenv started,
// with the given TOML config, and returns its address. It is stopped when
// the test ends.
func startDaemon(t *testing.T, config string) string {
	t.Helper()
	pid, err := os.ReadFile(filepath.Join(envDir, "satcheld.pid"))
	if err != nil {
		t.Fatal(err)
	}
	// /proc/PID/exe is that binary even if a rebuild has replaced the file.
	exe := "/proc/" + strings.TrimSpace(string(pid)) + "/exe"
	// A short path: a Unix socket's path has at most 107 bytes.
	dir, err := os.MkdirTemp("", "satchel-go-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cfg := filepath.Join(dir, "satcheld.toml")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "d.sock")
	log, err := os.Create(filepath.Join(dir, "satcheld.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command(exe, "--listen", "unix://"+sock, "--config", cfg,
		"--docker-config", filepath.Join(dir, "docker", "config.json"), "--cache-dir", filepath.Join(dir, "cache"),
		"--state-dir", filepath.Join(dir, "state"))
	// Its settings come from its flags alone, as testenv's daemon's do.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SATCHELD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "DOCKER_CONFIG="+filepath.Join(dir, "docker"), "NO_PROXY=127.0.0.1,localhost", "no_proxy=127.0.0.1,localhost")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "satcheld.log"))
			t.Logf("satcheld's log:\n%s", b)
		}
	})
	return "unix://" + sock
}

// A daemon whose config sets upload_monolithic_max answers it as
// HashFirstBelow, and Push follows it: a file of that size or more goes
// unhashed, so a second push uploads its blob again; a smaller file, or
// one pushed with HashFirst, is hashed and its blob skipped.
func TestHashFirstFollowsTheDaemonsAnswer(t *testing.T) {
	const below = 4096
	addr := startDaemon(t, fmt.Sprintf("upload_monolithic_max = %d\n", below))
	ctx := testContext(t)
	c, err := satchel.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Waits for the daemon to listen: the RPC, not a sleep.
	if _, err := c.Raw().ServerInfo(ctx, &pb.ServerInfoRequest{}, grpc.WaitForReady(true)); err != nil {
		t.Fatal(err)
	}
	info, err := c.ServerInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.HashFirstBelow != below {
		t.Fatalf("ServerInfo.HashFirstBelow = %d, want the config's %d", info.HashFirstBelow, below)
	}
	src := t.TempDir()
	small, _ := writeRandom(t, src, "small.bin", below-1)
	large, _ := writeRandom(t, src, "large.bin", below)
	reg := satchel.TargetOptions{PlainHTTP: true}
	push := func(tag, file string, hashFirst bool) uint32 {
		t.Helper()
		r, err := c.Push(ctx, registry+"/go/hash-first:"+tag, []string{file}, satchel.PushOptions{TargetOptions: reg, HashFirst: hashFirst})
		if err != nil {
			t.Fatalf("push %s: %v", tag, err)
		}
		return r.BlobsSkipped
	}
	push("small-1", small, false)
	push("large-1", large, false)
	if n := push("small-2", small, false); n != 1 {
		t.Errorf("a file under HashFirstBelow pushed again skipped %d blobs, want 1 (hashed first)", n)
	}
	if n := push("large-2", large, false); n != 0 {
		t.Errorf("a file of HashFirstBelow pushed again skipped %d blobs, want 0 (sent unhashed)", n)
	}
	if n := push("large-3", large, true); n != 1 {
		t.Errorf("a file of HashFirstBelow pushed again with HashFirst skipped %d blobs, want 1", n)
	}
}
