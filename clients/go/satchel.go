// Package satchel is a Go client for satcheld, the Satchel daemon: push,
// attach, discover, pull and resolve OCI artifacts over its gRPC API.
//
// The wrapper is thin: it takes references and file paths like the satchel
// CLI, streams files in chunks both ways (a push's of the size the daemon's
// ServerInfo names, 1 MiB by default), and returns plain Go structs.
// Errors from the daemon are gRPC status errors, so status.Code(err) gives
// their code (codes.NotFound for a missing tag, codes.InvalidArgument for a
// malformed reference, ...). The client's own checks use the same codes:
// codes.DataLoss when pulled bytes do not match their layer,
// codes.InvalidArgument for a file name CheckTitle or CheckTitles refuses,
// codes.FailedPrecondition for a symbolic link (or a file) in the output
// directory where a pulled file needs a directory, a directory at a pulled
// file's name, and a digest algorithm other than sha256 and sha512,
// codes.Internal for a malformed pull stream, codes.DeadlineExceeded for a
// call past its context's deadline or Client.Timeout, codes.InvalidArgument
// for a file given to Push or Attach that is missing or not a regular file
// (a *LocalFileError; errors.Is(err, fs.ErrNotExist) holds when it is
// missing). Other local I/O errors give codes.Unknown. The generated stubs
// are in package satchelv1 (Client.Raw).
package satchel

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/satchel-oci/satchel/clients/go/satchelv1"
)

// MaxReceiveSize is the largest message the client accepts from the daemon
// (8 MiB, clients/conformance/limits.json's client_receive_limit_bytes, the
// same in every client): at least the daemon's ServerInfo.MaxMessageBytes,
// and room for a 4 MiB manifest with its descriptor, more than gRPC's
// default 4 MiB.
const MaxReceiveSize = 8 << 20

// The HTTP/2 settings of Dial's connection. grpc-go has no setting for the
// frame size: it reads and writes 16 KiB frames whatever the peer allows,
// so a 1 MiB chunk is 64 frames.
const (
	// StreamWindow is how many bytes of one answer the daemon may send
	// before the client acknowledges them (HTTP/2's default is 64 KiB).
	StreamWindow = 8 << 20
	// ConnWindow is the same for all the calls on the connection together.
	ConnWindow = 16 << 20
	// ReadBuffer is how much the client reads from the socket at once
	// (grpc-go's default is 32 KiB, two frames).
	ReadBuffer = 1 << 20
)

// Client talks to one satcheld. It is safe for concurrent use.
type Client struct {
	// Timeout, when not zero, is the deadline every call of the wrapper
	// gets from its start if its ctx has none: a call still running then
	// fails with codes.DeadlineExceeded. A ctx deadline, longer or shorter,
	// overrides it. Set it before the first call. Raw stubs do not see it.
	Timeout time.Duration

	conn *grpc.ClientConn
	rpc  pb.SatchelServiceClient
	// infoLock (one slot) guards info, the daemon's ServerInfo once asked.
	infoLock chan struct{}
	info     *ServerInfo
}

// callContext is ctx with Client.Timeout applied when ctx has no deadline,
// and a cancel that ends the call when the wrapper returns.
func (c *Client) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); !ok && c.Timeout > 0 {
		return context.WithTimeout(ctx, c.Timeout)
	}
	return context.WithCancel(ctx)
}

// surfaceDeadline makes *err a codes.DeadlineExceeded error when the call
// ended with CANCELLED because its deadline passed: the daemon answers a
// deadline it notices first with CANCELLED ("Timeout expired").
func surfaceDeadline(ctx context.Context, err *error) {
	if *err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) && status.Code(*err) == codes.Canceled {
		*err = status.Errorf(codes.DeadlineExceeded, "satchel: deadline exceeded: %s", status.Convert(*err).Message())
	}
}

// Dial connects to satcheld at addr: "unix:///abs/path/satcheld.sock" (or
// the bare absolute path), "host:port" or "http://host:port". An empty addr
// means $SATCHEL_ADDR, or when that is unset or empty too, the daemon's
// default socket (DefaultAddr), as clients/conformance/behaviour.json says.
// The connection is plain (no TLS) and accepts messages up to
// MaxReceiveSize unless opts say otherwise; opts are passed to
// grpc.NewClient after these defaults, so they win.
// Connecting is lazy: a daemon that is not there shows up as an
// Unavailable error on the first call.
func Dial(addr string, opts ...grpc.DialOption) (*Client, error) {
	if addr == "" {
		addr = os.Getenv("SATCHEL_ADDR")
	}
	if addr == "" {
		addr = DefaultAddr()
	}
	addr = strings.TrimPrefix(addr, "http://")
	if strings.HasPrefix(addr, "/") {
		addr = "unix://" + addr
	}
	all := append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxReceiveSize)),
		// Fixed windows (these turn BDP probing off): grpc-go's probing
		// starts at 64 KiB and grows the window only to what arrives
		// within a ping's round trip, little on a local socket, so the
		// daemon would wait for a WINDOW_UPDATE every few frames.
		grpc.WithInitialWindowSize(StreamWindow),
		grpc.WithInitialConnWindowSize(ConnWindow),
		// Fewer, larger reads: a 256 MiB pull took 2,100 reads instead of
		// 9,900, and a third of the futex calls.
		grpc.WithReadBufferSize(ReadBuffer),
	}, opts...)
	conn, err := grpc.NewClient(addr, all...)
	if err != nil {
		return nil, fmt.Errorf("satchel: dial %s: %w", addr, err)
	}
	return &Client{conn: conn, rpc: pb.NewSatchelServiceClient(conn), infoLock: make(chan struct{}, 1)}, nil
}

// DefaultAddr is the address of the daemon's default socket, as satcheld
// computes it: "unix://$XDG_RUNTIME_DIR/satchel/satcheld.sock" when
// XDG_RUNTIME_DIR is set and not empty, else
// "unix://<os.TempDir()>/satchel-<uid>/satcheld.sock".
func DefaultAddr() string {
	if dir := os.Getenv("XDG_RUNTIME_DIR"); dir != "" {
		return "unix://" + filepath.Join(dir, "satchel", "satcheld.sock")
	}
	// satcheld takes the uid from the owner of /proc/self: the effective one.
	uid := "satchel-" + strconv.Itoa(os.Geteuid())
	return "unix://" + filepath.Join(os.TempDir(), uid, "satcheld.sock")
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Raw returns the generated stub, for the RPCs the wrapper does not cover
// (DeleteManifest, Login, UploadBlob, ...).
func (c *Client) Raw() pb.SatchelServiceClient { return c.rpc }

// Descriptor describes content by media type, digest and size.
type Descriptor struct {
	MediaType string
	// Digest is "<algorithm>:<hex>".
	Digest string
	Size   uint64
	// ArtifactType is set for manifests: their artifactType, else their
	// config media type.
	ArtifactType string
	Annotations  map[string]string
}

func descriptor(d *pb.Descriptor) Descriptor {
	return Descriptor{
		MediaType:    d.GetMediaType(),
		Digest:       d.GetDigest(),
		Size:         d.GetSize(),
		ArtifactType: d.GetArtifactType(),
		Annotations:  d.GetAnnotations(),
	}
}

func descriptors(ds []*pb.Descriptor) []Descriptor {
	out := make([]Descriptor, len(ds))
	for i, d := range ds {
		out[i] = descriptor(d)
	}
	return out
}

// Progress tells how far a file's transfer has come.
type Progress struct {
	// Name is the file's name.
	Name string
	// Done is the bytes transferred so far; Total the file's size, or 0
	// when unknown.
	Done, Total uint64
}

func progressFunc(f func(Progress)) func(*pb.Progress) {
	if f == nil {
		return nil
	}
	return func(p *pb.Progress) { f(Progress{Name: p.GetName(), Done: p.GetDone(), Total: p.GetTotal()}) }
}

// DiscoverOptions are the options of Discover.
type DiscoverOptions struct {
	TargetOptions
	// ArtifactType, when set, keeps only direct referrers of this type.
	ArtifactType string
	// Depth is how many levels of referrers to list (0 and 1: direct ones).
	Depth uint32
	// Verify asks whether each direct referrer verifies (Referrer.Verification),
	// under VerifyKeys, or the daemon's policy when those are empty.
	Verify bool
	// VerifyKeys are PEM public keys to verify under; they imply Verify.
	VerifyKeys [][]byte
}

// Referrer is a manifest that refers to a subject.
type Referrer struct {
	// Descriptor is the referrer's manifest descriptor, with its artifact
	// type and annotations.
	Descriptor
	// Referrers are its own referrers, when Depth asked for them.
	Referrers []Referrer
	// Verification, when Discover was asked to verify (direct referrers
	// only), says whether it verifies.
	Verification *Verification
}

// Verification is whether one referrer verifies.
type Verification struct {
	// Verified is set when it did; then Signature says by what.
	Verified  bool
	Signature Signature
	// Reason and Code say why not: the message and code ("FAILED_PRECONDITION"
	// or "PERMISSION_DENIED") Verify would fail with.
	Reason string
	Code   string
}

func referrers(rs []*pb.Referrer) []Referrer {
	out := make([]Referrer, len(rs))
	for i, r := range rs {
		out[i] = Referrer{Descriptor: descriptor(r.GetManifest()), Referrers: referrers(r.GetReferrers())}
		if v := r.GetVerification(); v != nil {
			out[i].Verification = &Verification{Verified: v.GetVerified(), Signature: signature(v.GetSignature()), Reason: v.GetReason(), Code: v.GetCode()}
		}
	}
	return out
}

// DiscoverResult lists a subject's referrers.
type DiscoverResult struct {
	// Subject is the subject's manifest descriptor.
	Subject Descriptor
	// Reference is the subject's canonical reference by digest.
	Reference string
	// Referrers are the referrers, in the order the registry listed them.
	Referrers []Referrer
}

// Discover lists the referrers of the subject manifest named by subject.
func (c *Client) Discover(ctx context.Context, subject string, opts DiscoverOptions) (_ *DiscoverResult, err error) {
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	defer surfaceDeadline(ctx, &err)
	r, err := c.rpc.Discover(ctx, &pb.DiscoverRequest{
		Subject:      opts.target(subject),
		ArtifactType: opts.ArtifactType,
		Depth:        opts.Depth,
		Verify:       opts.Verify || len(opts.VerifyKeys) > 0,
		VerifyKeys:   opts.VerifyKeys,
	})
	if err != nil {
		return nil, err
	}
	return &DiscoverResult{
		Subject:   descriptor(r.GetSubject()),
		Reference: r.GetReference(),
		Referrers: referrers(r.GetReferrers()),
	}, nil
}

// WatchReferrers streams the referrers of the subject manifest named by
// subject (those of opts.ArtifactType, when set): the current set first,
// then an event for each one that appears or disappears, and the whole set
// again, marked Resync, when the watcher fell behind. The stream ends when
// ctx does; the client's Timeout does not apply.
func (c *Client) WatchReferrers(ctx context.Context, subject string, opts DiscoverOptions) (grpc.ServerStreamingClient[pb.WatchReferrersResponse], error) {
	return c.rpc.WatchReferrers(ctx, &pb.WatchReferrersRequest{
		Subject:      opts.target(subject),
		ArtifactType: opts.ArtifactType,
	})
}

// Resolved is the manifest a reference names.
type Resolved struct {
	// Descriptor is the manifest's descriptor.
	Descriptor
	// Reference is the canonical reference by digest.
	Reference string
}

// Resolve returns the descriptor of the manifest ref names (tag or digest).
func (c *Client) Resolve(ctx context.Context, ref string, opts TargetOptions) (_ *Resolved, err error) {
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	defer surfaceDeadline(ctx, &err)
	r, err := c.rpc.Resolve(ctx, &pb.ResolveRequest{Target: opts.target(ref)})
	if err != nil {
		return nil, err
	}
	return &Resolved{Descriptor: descriptor(r.GetManifest()), Reference: r.GetReference()}, nil
}
