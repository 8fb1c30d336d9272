package satchel

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/satchel-oci/satchel/clients/go/satchelv1"
)

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
	// "application/vnd.oci.image.layer.v1.tar" for a file, DirectoryMediaType
	// for a directory).
	MediaType string
	// Tags are extra tags to apply to the pushed manifest.
	Tags []string
	// Titles, when set, are the files' names in the artifact (the layers'
	// org.opencontainers.image.title), one per file in order, instead of
	// their base names; "dir/file.txt" pulls into a subdirectory. Titles
	// and base names alike must pass CheckTitles (else
	// codes.InvalidArgument before anything is read or sent).
	Titles []string
	// HashFirst hashes files of the daemon's ServerInfo.HashFirstBelow
	// (256 MiB by default, the HashFirstBelow constant for a daemon
	// without ServerInfo) and more before sending them too. Smaller files
	// always are: their digest and size go
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
// base name; its bytes are streamed from disk in chunks of the daemon's
// ServerInfo.MaxChunkBytes (files under its HashFirstBelow are hashed
// first; see PushOptions.HashFirst). A directory is packed first, as the
// ORAS CLI packs one, into a temporary tar+gzip file removed when Push
// returns (see pack.go; media type DirectoryMediaType unless
// PushOptions.MediaType is set; a socket, device or FIFO inside is
// codes.InvalidArgument). A missing file, or one that is neither a regular
// file nor a directory, is a *LocalFileError (codes.InvalidArgument) before
// anything is sent. If Push returns early (an error, a cancelled ctx, a panicking OnProgress), the
// upload is cancelled.
func (c *Client) Push(ctx context.Context, ref string, files []string, opts PushOptions) (*PushResult, error) {
	return send(c, ctx, pushRPC, ref, files, opts)
}

// Attach uploads files as an artifact that refers to the subject manifest
// named by subject (tag or digest), like
// `satchel attach --artifact-type T REF FILE...`. opts.ArtifactType is
// required. Files are sent as by Push.
func (c *Client) Attach(ctx context.Context, subject string, files []string, opts PushOptions) (*PushResult, error) {
	return send(c, ctx, attachRPC, subject, files, opts)
}

// uploadRPC is what Push and Attach differ in: the call, the header naming
// the target (Push's ref, Attach's subject) and the artifact, the request a
// chunk rides in, and what an answer carries.
type uploadRPC[Req, Resp any] struct {
	open   func(pb.SatchelServiceClient, context.Context, ...grpc.CallOption) (grpc.BidiStreamingClient[Req, Resp], error)
	header func(*pb.Target, *pb.ArtifactSpec) *Req
	chunk  func(uint32, []byte) *Req
	event  func(*Resp) (*pb.Progress, *pb.PushResult)
}

var pushRPC = uploadRPC[pb.PushRequest, pb.PushResponse]{
	open: pb.SatchelServiceClient.Push,
	header: func(target *pb.Target, artifact *pb.ArtifactSpec) *pb.PushRequest {
		return &pb.PushRequest{Payload: &pb.PushRequest_Header{Header: &pb.PushHeader{Target: target, Artifact: artifact}}}
	},
	chunk: func(i uint32, data []byte) *pb.PushRequest {
		return &pb.PushRequest{Payload: &pb.PushRequest_Chunk{Chunk: &pb.FileChunk{FileIndex: i, Data: data}}}
	},
	event: func(r *pb.PushResponse) (*pb.Progress, *pb.PushResult) { return r.GetProgress(), r.GetResult() },
}

var attachRPC = uploadRPC[pb.AttachRequest, pb.AttachResponse]{
	open: pb.SatchelServiceClient.Attach,
	header: func(subject *pb.Target, artifact *pb.ArtifactSpec) *pb.AttachRequest {
		return &pb.AttachRequest{Payload: &pb.AttachRequest_Header{Header: &pb.AttachHeader{Subject: subject, Artifact: artifact}}}
	},
	chunk: func(i uint32, data []byte) *pb.AttachRequest {
		return &pb.AttachRequest{Payload: &pb.AttachRequest_Chunk{Chunk: &pb.FileChunk{FileIndex: i, Data: data}}}
	},
	event: func(r *pb.AttachResponse) (*pb.Progress, *pb.PushResult) { return r.GetProgress(), r.GetResult() },
}

// send is Push and Attach: it checks and describes the files, opens the
// call, and uploads them to ref. If it returns early, the call is cancelled.
func send[Req, Resp any](c *Client, ctx context.Context, rpc uploadRPC[Req, Resp], ref string, files []string, opts PushOptions) (_ *PushResult, err error) {
	local, info, err := c.prepare(ctx, files, opts)
	if err != nil {
		return nil, err
	}
	defer local.remove()
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	defer surfaceDeadline(ctx, &err)
	stream, err := rpc.open(c.rpc, ctx)
	if err != nil {
		return nil, err
	}
	header := rpc.header(opts.target(ref), opts.artifact(local.specs))
	return upload(cancel, stream, header, local.paths, info.MaxChunkBytes, rpc.chunk, rpc.event, progressFunc(opts.OnProgress))
}

func (o PushOptions) artifact(files []*pb.FileSpec) *pb.ArtifactSpec {
	return &pb.ArtifactSpec{
		ArtifactType: o.ArtifactType,
		Annotations:  o.Annotations,
		Files:        files,
		Tags:         o.Tags,
	}
}

// localFiles are the files to upload: their specs, and where their bytes
// are (a packed directory's archive in place of the directory).
type localFiles struct {
	specs []*pb.FileSpec
	paths []string
	// packed are the packed directories, by index; nil for a file.
	packed []*packedDirectory
}

// remove removes the packed directories' archives.
func (l *localFiles) remove() {
	for _, p := range l.packed {
		if p != nil {
			os.Remove(p.path)
		}
	}
}

// prepare checks the files before anything is read or sent (their titles,
// then that each is a regular file or a directory), packs the directories
// (packDirectory), asks the daemon's ServerInfo (once per Client), and
// describes the files with its HashFirstBelow. On an error nothing packed
// is left behind.
func (c *Client) prepare(ctx context.Context, files []string, opts PushOptions) (_ *localFiles, _ ServerInfo, err error) {
	titles, err := pushTitles(files, opts.Titles)
	if err != nil {
		return nil, ServerInfo{}, err
	}
	local := &localFiles{paths: append([]string(nil), files...), packed: make([]*packedDirectory, len(files))}
	dirs := make([]bool, len(files))
	for i, p := range files {
		if info, err := os.Stat(p); err == nil && info.IsDir() {
			dirs[i] = true
			continue
		}
		f, _, err := openRegular(p)
		if err != nil {
			return nil, ServerInfo{}, err
		}
		f.Close()
	}
	defer func() {
		if err != nil {
			local.remove()
		}
	}()
	for i, p := range files {
		if dirs[i] {
			if local.packed[i], err = packDirectory(p, titles[i]); err != nil {
				return nil, ServerInfo{}, err
			}
			local.paths[i] = local.packed[i].path
		}
	}
	info, err := c.ServerInfo(ctx)
	if err != nil {
		return nil, ServerInfo{}, err
	}
	local.specs, err = fileSpecs(local.paths, titles, local.packed, opts, info.HashFirstBelow)
	return local, info, err
}

// fileSpecs describes the files: title and size, and for files under
// hashFirstBelow (all with opts.HashFirst) the sha256 digest, hashed by
// streaming the file, so the daemon can verify the bytes and skip blobs the
// target already has. Larger files go without a digest: the daemon hashes
// them as they arrive. A packed directory (packed[i], if packed is not nil)
// has its digest, size and annotations already, and its media type
// defaults to DirectoryMediaType.
func fileSpecs(paths, titles []string, packed []*packedDirectory, opts PushOptions, hashFirstBelow uint64) ([]*pb.FileSpec, error) {
	specs := make([]*pb.FileSpec, 0, len(paths))
	for i, p := range paths {
		if packed != nil && packed[i] != nil {
			d, mediaType := packed[i], opts.MediaType
			if mediaType == "" {
				mediaType = DirectoryMediaType
			}
			specs = append(specs, &pb.FileSpec{Name: titles[i], MediaType: mediaType, Size: &d.size, Digest: d.digest, Annotations: d.annotations})
			continue
		}
		spec, err := fileSpec(p, opts.HashFirst, hashFirstBelow)
		if err != nil {
			return nil, err
		}
		spec.Name, spec.MediaType = titles[i], opts.MediaType
		specs = append(specs, spec)
	}
	return specs, nil
}

// pushTitles returns the titles of the files (the given ones, else the
// base names), checked with CheckTitles.
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

// LocalFileError is a file given to Push or Attach that cannot be pushed:
// missing, unreadable or neither a regular file nor a directory (or such a
// file inside a directory given). It is the caller's argument at
// fault, so its gRPC status is codes.InvalidArgument (status.Code(err)),
// with the path in the message; it unwraps to the operating system's
// error, so errors.Is(err, fs.ErrNotExist) tells a missing file.
type LocalFileError struct {
	// Path is the file's path as the caller gave it.
	Path string
	// Err is why it cannot be pushed (an *fs.PathError, or
	// ErrNotRegular).
	Err error
}

// ErrNotRegular is a LocalFileError's Err for a path that is a device, a
// FIFO or anything else but a regular file or a directory.
var ErrNotRegular = errors.New("not a regular file")

func (e *LocalFileError) Error() string {
	reason := e.Err
	var pathErr *fs.PathError
	if errors.As(reason, &pathErr) {
		reason = pathErr.Err
	}
	return fmt.Sprintf("satchel: cannot push %s: %v", e.Path, reason)
}

// Unwrap returns Err.
func (e *LocalFileError) Unwrap() error { return e.Err }

// GRPCStatus makes the error a codes.InvalidArgument status error.
func (e *LocalFileError) GRPCStatus() *status.Status {
	return status.New(codes.InvalidArgument, e.Error())
}

// openRegular opens a file to push, which must be a regular file. It is
// checked before it is opened too: opening a FIFO would wait for a writer.
func openRegular(path string) (*os.File, fs.FileInfo, error) {
	if info, err := os.Stat(path); err == nil && !info.Mode().IsRegular() {
		return nil, nil, &LocalFileError{Path: path, Err: ErrNotRegular}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, &LocalFileError{Path: path, Err: err}
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, &LocalFileError{Path: path, Err: err}
	}
	if !info.Mode().IsRegular() {
		f.Close()
		return nil, nil, &LocalFileError{Path: path, Err: ErrNotRegular}
	}
	return f, info, nil
}

func fileSpec(path string, hashFirst bool, hashFirstBelow uint64) (*pb.FileSpec, error) {
	f, info, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size := uint64(info.Size())
	if size >= hashFirstBelow && !hashFirst {
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
	chunkSize uint32,
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

	sendErr := sendFiles(stream, header, files, make([]byte, chunkSize), chunk)
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

// sendFiles sends the header, then each file in chunks of len(buf) bytes.
func sendFiles[Req, Resp any](stream grpc.BidiStreamingClient[Req, Resp], header *Req, files []string, buf []byte, chunk func(uint32, []byte) *Req) error {
	if err := stream.Send(header); err != nil {
		return err
	}
	for i, p := range files {
		if err := sendFile(stream, uint32(i), p, buf, chunk); err != nil {
			return err
		}
	}
	return stream.CloseSend()
}

func sendFile[Req, Resp any](stream grpc.BidiStreamingClient[Req, Resp], index uint32, path string, buf []byte, chunk func(uint32, []byte) *Req) error {
	f, _, err := openRegular(path)
	if err != nil {
		return err
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
