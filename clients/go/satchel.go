// Package satchel is a Go client for satcheld, the Satchel daemon: push,
// attach, discover, pull and resolve OCI artifacts over its gRPC API.
//
// The wrapper is thin: it takes references and file paths like the satchel
// CLI, streams files in 1 MiB chunks both ways, and returns plain Go structs.
// Errors from the daemon are gRPC status errors, so status.Code(err) gives
// their code (codes.NotFound for a missing tag, codes.InvalidArgument for a
// malformed reference, ...). The client's own checks use the same codes:
// codes.DataLoss when pulled bytes do not match their layer,
// codes.InvalidArgument for a file name CheckTitle or CheckTitles refuses,
// codes.FailedPrecondition for a symbolic link (or a file) in the output
// directory where a pulled file needs a directory, a directory at a pulled
// file's name, and a digest algorithm other than sha256 and sha512,
// codes.Internal for a malformed pull stream, codes.DeadlineExceeded for a
// call past its context's deadline or Client.Timeout. Local I/O errors give
// codes.Unknown. The generated stubs are in package satchelv1 (Client.Raw).
package satchel

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
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

// ChunkSize is the size of the file chunks sent to the daemon (1 MiB, the
// largest the API allows).
const ChunkSize = 1 << 20

// MaxReceiveSize is the largest message the client accepts from the daemon
// (16 MiB): a pulled manifest may be 4 MiB plus its descriptor, more than
// gRPC's default 4 MiB.
const MaxReceiveSize = 16 << 20

// HashFirstBelow is the size under which Push and Attach hash a file before
// sending it (256 MiB), as the satchel CLI does. See PushOptions.HashFirst.
const HashFirstBelow = 256 << 20

// Client talks to one satcheld. It is safe for concurrent use.
type Client struct {
	// Timeout, when not zero, is the deadline every call of the wrapper
	// gets from its start if its ctx has none: a call still running then
	// fails with codes.DeadlineExceeded. A ctx deadline, longer or shorter,
	// overrides it. Set it before the first call. Raw stubs do not see it.
	Timeout time.Duration

	conn *grpc.ClientConn
	rpc  pb.SatchelServiceClient
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

// Dial connects to satcheld at addr: "unix:///abs/path/satcheld.sock",
// "host:port" or "http://host:port". An empty addr means $SATCHEL_ADDR, or
// when that is unset too, the daemon's default socket (DefaultAddr).
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
	all := append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxReceiveSize)),
	}, opts...)
	conn, err := grpc.NewClient(addr, all...)
	if err != nil {
		return nil, fmt.Errorf("satchel: dial %s: %w", addr, err)
	}
	return &Client{conn: conn, rpc: pb.NewSatchelServiceClient(conn)}, nil
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

// PushResult reports a pushed or attached artifact.
type PushResult struct {
	// Manifest is the pushed manifest's descriptor.
	Manifest Descriptor
	// Reference is the canonical reference by digest.
	Reference string
	// Layers are the layer descriptors, in manifest order.
	Layers []Descriptor
	// Tags are the tags applied.
	Tags []string
	// BlobsSkipped counts blobs the target already had.
	BlobsSkipped uint32
	// Subject is the subject's descriptor (Attach only).
	Subject *Descriptor
	// Warnings are problems that did not fail the call.
	Warnings []string
}

func pushResult(r *pb.PushResult) *PushResult {
	out := &PushResult{
		Manifest:     descriptor(r.GetManifest()),
		Reference:    r.GetReference(),
		Layers:       descriptors(r.GetLayers()),
		Tags:         r.GetTags(),
		BlobsSkipped: r.GetBlobsSkipped(),
		Warnings:     r.GetWarnings(),
	}
	if r.GetSubject() != nil {
		s := descriptor(r.GetSubject())
		out.Subject = &s
	}
	return out
}

// TargetOptions say how to reach a reference; every call takes them.
type TargetOptions struct {
	// PlainHTTP talks plain HTTP instead of HTTPS to the registry.
	PlainHTTP bool
	// OCILayout, when set, is the path of an OCI image layout on the
	// daemon's host; the reference is then a tag or digest inside it.
	OCILayout string
	// ReferrersMode forces the referrers API or the tag schema; the zero
	// value lets the daemon detect it.
	ReferrersMode pb.ReferrersMode
}

func (o TargetOptions) target(ref string) *pb.Target {
	return &pb.Target{
		Reference:     ref,
		OciLayout:     o.OCILayout,
		PlainHttp:     o.PlainHTTP,
		ReferrersMode: o.ReferrersMode,
	}
}

// PushOptions are the options of Push and Attach.
type PushOptions struct {
	TargetOptions
	// ArtifactType is the manifest's artifactType. Push defaults it to
	// "application/vnd.unknown.artifact.v1"; Attach requires it.
	ArtifactType string
	// Annotations are manifest annotations.
	Annotations map[string]string
	// MediaType is the media type of every layer (default
	// "application/vnd.oci.image.layer.v1.tar").
	MediaType string
	// Tags are extra tags to apply to the pushed manifest.
	Tags []string
	// Titles, when set, are the files' names in the artifact (the layers'
	// org.opencontainers.image.title), one per file in order, instead of
	// their base names; "dir/file.txt" pulls into a subdirectory. Titles
	// and base names alike must pass CheckTitles (else
	// codes.InvalidArgument before anything is read or sent).
	Titles []string
	// HashFirst hashes files of HashFirstBelow (256 MiB) and more before
	// sending them too. Smaller files always are: their digest and size go
	// in the header, so the daemon skips blobs the target already has and
	// uploads the rest in one request. Larger files are by default sent
	// with their size only and read once; the daemon hashes them on the
	// way, in chunked uploads. HashFirst reads them twice but skips those
	// the target has. Like the CLI's --hash-first.
	HashFirst bool
	// OnProgress, when set, is called (from another goroutine) with the
	// daemon's progress events. If it panics, the call is cancelled and
	// the panic is raised again in the caller's goroutine.
	OnProgress func(Progress)
}

// Push uploads files as an artifact to ref (a tag in ref tags it), like
// `satchel push REF FILE...`. Each file becomes a layer named after its
// base name; its bytes are streamed from disk in 1 MiB chunks (files under
// HashFirstBelow are hashed first; see PushOptions.HashFirst). If Push
// returns early (an error, a cancelled ctx, a panicking OnProgress), the
// upload is cancelled.
func (c *Client) Push(ctx context.Context, ref string, files []string, opts PushOptions) (_ *PushResult, err error) {
	specs, err := fileSpecs(files, opts)
	if err != nil {
		return nil, err
	}
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	defer surfaceDeadline(ctx, &err)
	stream, err := c.rpc.Push(ctx)
	if err != nil {
		return nil, err
	}
	header := &pb.PushRequest{Payload: &pb.PushRequest_Header{Header: &pb.PushHeader{
		Target:   opts.target(ref),
		Artifact: opts.artifact(specs),
	}}}
	chunk := func(i uint32, data []byte) *pb.PushRequest {
		return &pb.PushRequest{Payload: &pb.PushRequest_Chunk{Chunk: &pb.FileChunk{FileIndex: i, Data: data}}}
	}
	event := func(r *pb.PushResponse) (*pb.Progress, *pb.PushResult) { return r.GetProgress(), r.GetResult() }
	return upload(cancel, stream, header, files, chunk, event, progressFunc(opts.OnProgress))
}

// Attach uploads files as an artifact that refers to the subject manifest
// named by subject (tag or digest), like
// `satchel attach --artifact-type T REF FILE...`. opts.ArtifactType is
// required. Files are sent as by Push.
func (c *Client) Attach(ctx context.Context, subject string, files []string, opts PushOptions) (_ *PushResult, err error) {
	specs, err := fileSpecs(files, opts)
	if err != nil {
		return nil, err
	}
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	defer surfaceDeadline(ctx, &err)
	stream, err := c.rpc.Attach(ctx)
	if err != nil {
		return nil, err
	}
	header := &pb.AttachRequest{Payload: &pb.AttachRequest_Header{Header: &pb.AttachHeader{
		Subject:  opts.target(subject),
		Artifact: opts.artifact(specs),
	}}}
	chunk := func(i uint32, data []byte) *pb.AttachRequest {
		return &pb.AttachRequest{Payload: &pb.AttachRequest_Chunk{Chunk: &pb.FileChunk{FileIndex: i, Data: data}}}
	}
	event := func(r *pb.AttachResponse) (*pb.Progress, *pb.PushResult) { return r.GetProgress(), r.GetResult() }
	return upload(cancel, stream, header, files, chunk, event, progressFunc(opts.OnProgress))
}

func (o PushOptions) artifact(files []*pb.FileSpec) *pb.ArtifactSpec {
	return &pb.ArtifactSpec{
		ArtifactType: o.ArtifactType,
		Annotations:  o.Annotations,
		Files:        files,
		Tags:         o.Tags,
	}
}

// fileSpecs describes the files: title (opts.Titles, else the base name)
// and size, and for files under HashFirstBelow (all with opts.HashFirst)
// the sha256 digest, hashed by streaming the file, so the daemon can verify
// the bytes and skip blobs the target already has. Larger files go without
// a digest: the daemon hashes them as they arrive.
func fileSpecs(paths []string, opts PushOptions) ([]*pb.FileSpec, error) {
	titles, err := pushTitles(paths, opts.Titles)
	if err != nil {
		return nil, err
	}
	specs := make([]*pb.FileSpec, 0, len(paths))
	for i, p := range paths {
		spec, err := fileSpec(p, opts.HashFirst)
		if err != nil {
			return nil, err
		}
		spec.Name, spec.MediaType = titles[i], opts.MediaType
		specs = append(specs, spec)
	}
	return specs, nil
}

// pushTitles returns the titles of the files, checked with CheckTitles.
func pushTitles(paths, titles []string) ([]string, error) {
	if titles == nil {
		titles = make([]string, len(paths))
		for i, p := range paths {
			titles[i] = filepath.Base(p)
		}
	} else if len(titles) != len(paths) {
		return nil, status.Errorf(codes.InvalidArgument, "satchel: %d titles for %d files", len(titles), len(paths))
	}
	if err := CheckTitles(titles); err != nil {
		return nil, err
	}
	return titles, nil
}

func fileSpec(path string, hashFirst bool) (*pb.FileSpec, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("satchel: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("satchel: %w", err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("satchel: %s is not a regular file", path)
	}
	size := uint64(info.Size())
	if size >= HashFirstBelow && !hashFirst {
		return &pb.FileSpec{Size: &size}, nil
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return nil, fmt.Errorf("satchel: read %s: %w", path, err)
	}
	size = uint64(n)
	return &pb.FileSpec{Size: &size, Digest: "sha256:" + hex.EncodeToString(h.Sum(nil))}, nil
}

// upload runs the client side of Push or Attach: the header, then every
// file's chunks, while a goroutine reads the daemon's events. Whatever ends
// it early (a local error, a panic in onProgress) cancels the call, so the
// upload does not go on behind the caller's back.
func upload[Req, Resp any](
	cancel context.CancelFunc,
	stream grpc.BidiStreamingClient[Req, Resp],
	header *Req,
	files []string,
	chunk func(uint32, []byte) *Req,
	event func(*Resp) (*pb.Progress, *pb.PushResult),
	onProgress func(*pb.Progress),
) (*PushResult, error) {
	type outcome struct {
		result *pb.PushResult
		err    error
		// panicked is set, with the value in panicValue, when onProgress
		// panicked; the caller's goroutine panics again with it.
		panicked   bool
		panicValue any
	}
	received := make(chan outcome, 1)
	go func() {
		defer func() {
			if v := recover(); v != nil {
				cancel()
				received <- outcome{panicked: true, panicValue: v}
			}
		}()
		var result *pb.PushResult
		for {
			msg, err := stream.Recv()
			if err == io.EOF {
				received <- outcome{result: result}
				return
			}
			if err != nil {
				received <- outcome{err: err}
				return
			}
			progress, res := event(msg)
			if progress != nil && onProgress != nil {
				onProgress(progress)
			}
			if res != nil {
				result = res
			}
		}
	}()

	sendErr := sendFiles(stream, header, files, chunk)
	if sendErr != nil && !errors.Is(sendErr, io.EOF) {
		// A local failure (unreadable file): abandon the call.
		cancel()
	}
	// io.EOF from Send means the daemon ended the call; Recv tells why.
	out := <-received
	if out.panicked {
		panic(out.panicValue)
	}
	if sendErr != nil && !errors.Is(sendErr, io.EOF) {
		return nil, sendErr
	}
	if out.err != nil {
		return nil, out.err
	}
	if out.result == nil {
		return nil, status.Error(codes.Internal, "satchel: the daemon ended the call without a result")
	}
	return pushResult(out.result), nil
}

func sendFiles[Req, Resp any](stream grpc.BidiStreamingClient[Req, Resp], header *Req, files []string, chunk func(uint32, []byte) *Req) error {
	if err := stream.Send(header); err != nil {
		return err
	}
	buf := make([]byte, ChunkSize)
	for i, p := range files {
		if err := sendFile(stream, uint32(i), p, buf, chunk); err != nil {
			return err
		}
	}
	return stream.CloseSend()
}

func sendFile[Req, Resp any](stream grpc.BidiStreamingClient[Req, Resp], index uint32, path string, buf []byte, chunk func(uint32, []byte) *Req) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("satchel: %w", err)
	}
	defer f.Close()
	for {
		n, err := io.ReadFull(f, buf)
		if n > 0 {
			// Send marshals the message before returning, so buf can be reused.
			if err := stream.Send(chunk(index, buf[:n])); err != nil {
				return err
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("satchel: read %s: %w", path, err)
		}
	}
}

// DiscoverOptions are the options of Discover.
type DiscoverOptions struct {
	TargetOptions
	// ArtifactType, when set, keeps only direct referrers of this type.
	ArtifactType string
	// Depth is how many levels of referrers to list (0 and 1: direct ones).
	Depth uint32
}

// Referrer is a manifest that refers to a subject.
type Referrer struct {
	// Descriptor is the referrer's manifest descriptor, with its artifact
	// type and annotations.
	Descriptor
	// Referrers are its own referrers, when Depth asked for them.
	Referrers []Referrer
}

func referrers(rs []*pb.Referrer) []Referrer {
	out := make([]Referrer, len(rs))
	for i, r := range rs {
		out[i] = Referrer{Descriptor: descriptor(r.GetManifest()), Referrers: referrers(r.GetReferrers())}
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
