package satchel

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/satchel-oci/satchel/clients/go/satchelv1"
)

// PullOptions are the options of Pull and PullAttachment.
type PullOptions struct {
	TargetOptions
	// OutputDir is the directory to write files into (default "."); it is
	// created, if missing, when the first file starts (a pull that fails
	// before, or an artifact without files, makes none).
	OutputDir string
	// VerifyKeys, when set, are PEM public keys the artifact must be signed
	// by (see Verify): with PullAttachment, the newest attachment that
	// verifies is pulled. When none does, nothing is written.
	VerifyKeys [][]byte
	// OnProgress, when set, is called (in the caller's goroutine) with the
	// daemon's progress events. If it panics, the call is cancelled and the
	// file being written is removed.
	OnProgress func(Progress)
}

// PullResult reports a pulled artifact.
type PullResult struct {
	// Manifest is the artifact's manifest descriptor.
	Manifest Descriptor
	// Reference is the artifact's canonical reference by digest.
	Reference string
	// ManifestContent is the manifest JSON, verified against its digest.
	ManifestContent []byte
	// Files are the files written, in the order they arrived.
	Files []PulledFile
	// Signature, when the pull was verified (VerifyKeys, or the daemon's
	// policy), is the signature that verified the manifest.
	Signature *Signature
}

// PulledFile is one file written by Pull.
type PulledFile struct {
	// Name is the file's name in the artifact.
	Name string
	// Path is where it was written.
	Path string
	// Descriptor is the layer's descriptor.
	Descriptor Descriptor
}

// Pull writes the files of the artifact ref names (tag or digest) into
// opts.OutputDir, which it creates if missing when the first file starts.
//
// Before the first byte is written, every title of the manifest is checked
// with CheckTitles (codes.InvalidArgument), and a file the daemon sends
// must be one of them, once (else the daemon broke the protocol:
// codes.Internal, as for a stream out of order or one that ends inside a
// file). Below OutputDir no
// symbolic link is followed: a link (or a file) where a title needs a
// directory fails with codes.FailedPrecondition, as does a directory at a
// file's final name. Each file is streamed into a partial file created
// exclusively, under a random name, beside its final name, hashed on the
// way, and renamed to its final name (replacing a link there, never writing
// through it) only once the daemon has confirmed the layer digest and the
// bytes received match the layer's digest and size (else codes.DataLoss).
// A layer digest other than sha256 or sha512 fails with
// codes.FailedPrecondition. A layer marked io.deis.oras.content.unpack (a
// directory, as the ORAS CLI and Push make one) is received the same way
// into a hidden archive beside its name and, once checked, unpacked into
// the directory its title names (see unpack.go: unsafe entries are
// codes.InvalidArgument, a wrong content digest or a broken archive
// codes.DataLoss, one past 64 GiB or a million entries
// codes.ResourceExhausted); the tree takes its name only when whole,
// replacing what stood there, and the archive is removed. If Pull returns
// early (an error, ctx done: codes.DeadlineExceeded past its deadline or
// Client.Timeout), the call is cancelled and the file it was writing is
// removed, with the directories made for it (files finished before stay).
func (c *Client) Pull(ctx context.Context, ref string, opts PullOptions) (*PullResult, error) {
	return c.pull(ctx, &pb.PullRequest{Target: opts.target(ref), VerifyKeys: opts.VerifyKeys}, opts)
}

// PullAttachment pulls the newest artifact of artifactType attached to the
// subject manifest, like `satchel pull --subject REF --artifact-type T`.
func (c *Client) PullAttachment(ctx context.Context, subject, artifactType string, opts PullOptions) (*PullResult, error) {
	return c.pull(ctx, &pb.PullRequest{Subject: opts.target(subject), ArtifactType: artifactType, VerifyKeys: opts.VerifyKeys}, opts)
}

// pull makes the Pull call and writes what it answers.
func (c *Client) pull(ctx context.Context, req *pb.PullRequest, opts PullOptions) (_ *PullResult, err error) {
	dir := opts.OutputDir
	if dir == "" {
		dir = "."
	}
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	defer surfaceDeadline(ctx, &err)
	stream, err := c.rpc.Pull(ctx, req)
	if err != nil {
		return nil, err
	}
	return consumePull(stream.Recv, dir, opts)
}

// consumePull runs a pull's state machine (a puller) over the daemon's
// answer: next returns each message in turn, then io.EOF if the answer
// ended with OK, or the status error it ended with. The stream's Recv is
// one such source; the tests feed clients/conformance/pull_streams.json
// through it (export_test.go).
func consumePull(next func() (*pb.PullResponse, error), dir string, opts PullOptions) (*PullResult, error) {
	p := &puller{dirPath: dir, opts: opts}
	defer p.close()
	for {
		msg, err := next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if err := p.handle(msg); err != nil {
			return nil, err
		}
	}
	if p.cur != nil {
		return nil, protocolError("the stream ended inside file " + p.cur.name)
	}
	if p.titles == nil {
		return nil, protocolError("no manifest")
	}
	return &p.result, nil
}

// puller is one pull's state between stream messages.
type puller struct {
	dirPath string
	opts    PullOptions
	result  PullResult
	// titles are the manifest's titles not pulled yet; nil before the
	// manifest arrived.
	titles map[string]bool
	out    *outputDir
	cur    *partial
}

func (p *puller) handle(msg *pb.PullResponse) error {
	switch m := msg.Payload.(type) {
	case *pb.PullResponse_Manifest:
		if p.titles != nil {
			return protocolError("a second manifest")
		}
		return p.manifest(m.Manifest)
	case *pb.PullResponse_File:
		if p.cur != nil {
			return protocolError("a file started before the last one ended")
		}
		return p.startFile(m.File)
	case *pb.PullResponse_Chunk:
		if p.cur == nil {
			return protocolError("bytes outside a file")
		}
		return p.cur.write(m.Chunk)
	case *pb.PullResponse_Done:
		if p.cur == nil {
			return protocolError("the end of a file that never started")
		}
		f, err := p.cur.finish(m.Done.GetDigest())
		p.cur = nil
		if err != nil {
			return err
		}
		p.result.Files = append(p.result.Files, f)
	case *pb.PullResponse_Progress:
		if p.opts.OnProgress != nil {
			p.opts.OnProgress(Progress{Name: m.Progress.GetName(), Done: m.Progress.GetDone(), Total: m.Progress.GetTotal()})
		}
	}
	return nil
}

// manifest records the manifest and checks all its titles against each
// other before any file is written.
func (p *puller) manifest(m *pb.PulledManifest) error {
	// Keys were sent: a daemon older than Verify ignores them, so an answer
	// it did not say it verified is refused before any file is written.
	if len(p.opts.VerifyKeys) > 0 && m.GetSignature() == nil {
		return status.Error(codes.FailedPrecondition, "the daemon did not verify the artifact although keys were given (a satcheld older than Verify?); nothing was written")
	}
	p.result.Manifest = descriptor(m.GetManifest())
	p.result.Reference = m.GetReference()
	p.result.ManifestContent = m.GetContent()
	if s := m.GetSignature(); s != nil {
		sig := signature(s)
		p.result.Signature = &sig
	}
	titles, err := manifestTitles(m.GetContent())
	if err != nil {
		return err
	}
	if err := CheckTitles(titles); err != nil {
		return err
	}
	p.titles = make(map[string]bool, len(titles))
	for _, t := range titles {
		p.titles[t] = true
	}
	return nil
}

// startFile begins a file. The first file header after the manifest makes
// the output directory (as pull_streams.json expects, even of a header the
// checks below then refuse). The header's name must pass CheckTitle
// (codes.InvalidArgument) and be a title of the manifest not pulled yet:
// else the daemon broke the protocol (codes.Internal).
func (p *puller) startFile(header *pb.FileHeader) error {
	name := header.GetName()
	if p.titles == nil {
		return protocolError("a file before the manifest")
	}
	if p.out == nil {
		out, err := openOutputDir(p.dirPath)
		if err != nil {
			return err
		}
		p.out = out
	}
	if err := CheckTitle(name); err != nil {
		return err
	}
	if !p.titles[name] {
		return protocolError(fmt.Sprintf("file %s is not a title of the manifest, or was sent twice", shownTitle(name)))
	}
	delete(p.titles, name)
	desc := descriptor(header.GetLayer())
	h, ok := newHash(desc.Digest)
	if !ok {
		return status.Errorf(codes.FailedPrecondition, "satchel: %s: unsupported layer digest %q (want sha256 or sha512)", shownTitle(name), desc.Digest)
	}
	// A directory's archive goes beside the directory's name (a directory
	// there is no obstacle: it is swapped out once the new one is made).
	walk, mode := p.out.walk, uint32(0o666)
	directory := isDirectoryLayer(desc)
	if directory {
		walk, mode = p.out.walkParents, 0o600
	}
	s, err := walk(name)
	if err != nil {
		return err
	}
	temp, tempName, err := s.createPartial(mode)
	if err != nil {
		s.release(true)
		return err
	}
	p.cur = &partial{name: name, slot: s, temp: temp, tempName: tempName, desc: desc, hash: h, out: p.out, directory: directory}
	return nil
}

func (p *puller) close() {
	if p.cur != nil {
		p.cur.abandon()
	}
	if p.out != nil {
		p.out.close()
	}
}

func protocolError(what string) error {
	return status.Error(codes.Internal, "satchel: unexpected pull stream: "+what)
}

// SafeName reports whether name is usable as a pulled file's name.
//
// Deprecated: use CheckTitle, which says why a name is refused.
func SafeName(name string) bool { return CheckTitle(name) == nil }

// newHash returns the hash a digest names: sha256 or sha512.
func newHash(digest string) (hash.Hash, bool) {
	algorithm, _, _ := strings.Cut(digest, ":")
	switch algorithm {
	case "sha256":
		return sha256.New(), true
	case "sha512":
		return sha512.New(), true
	}
	return nil, false
}

// partial is a file being pulled: a partial file beside its final name and
// a running hash. For a directory layer (unpack.go) the partial file is
// its archive, unpacked once checked and then removed.
type partial struct {
	name      string
	slot      *slot
	temp      *os.File
	tempName  string
	desc      Descriptor
	hash      hash.Hash
	size      uint64
	finished  bool
	out       *outputDir
	directory bool
}

func (p *partial) write(data []byte) error {
	p.size += uint64(len(data))
	p.hash.Write(data)
	if _, err := p.temp.Write(data); err != nil {
		return fmt.Errorf("satchel: write %s: %w", p.temp.Name(), err)
	}
	return nil
}

// finish checks what arrived against the layer descriptor and the digest the
// daemon confirmed, then moves the file to its final name.
func (p *partial) finish(confirmed string) (PulledFile, error) {
	want := p.desc
	algorithm, _, _ := strings.Cut(want.Digest, ":")
	got := algorithm + ":" + hex.EncodeToString(p.hash.Sum(nil))
	if confirmed != want.Digest || got != want.Digest || p.size != want.Size {
		p.abandon()
		return PulledFile{}, status.Errorf(codes.DataLoss,
			"satchel: %s: expected %s (%d bytes), received %s (%d bytes), the daemon confirmed %q",
			shownTitle(p.name), want.Digest, want.Size, got, p.size, confirmed)
	}
	if p.directory {
		return p.unpack()
	}
	if err := p.temp.Sync(); err != nil {
		p.abandon()
		return PulledFile{}, fmt.Errorf("satchel: %w", err)
	}
	if err := p.temp.Close(); err != nil {
		p.abandon()
		return PulledFile{}, fmt.Errorf("satchel: %w", err)
	}
	if err := p.slot.commit(p.tempName); err != nil {
		p.abandon()
		return PulledFile{}, err
	}
	p.finished = true
	p.slot.release(false)
	return PulledFile{Name: p.name, Path: p.slot.path, Descriptor: p.desc}, nil
}

// unpack makes the directory from the checked archive, then removes the
// archive (and, if the unpack failed, the directories made for it).
func (p *partial) unpack() (_ PulledFile, err error) {
	defer func() {
		if err != nil {
			p.abandon()
			return
		}
		p.finished = true
		p.slot.removePartial(p.tempName)
		p.slot.release(false)
	}()
	if err := p.temp.Close(); err != nil {
		return PulledFile{}, fmt.Errorf("satchel: %w", err)
	}
	archive, err := p.slot.reopenPartial(p.tempName)
	if err != nil {
		return PulledFile{}, err
	}
	defer archive.Close()
	path, err := unpackDirectory(archive, p.out, p.name, p.desc.Annotations, defaultUnpackLimits)
	if err != nil {
		return PulledFile{}, err
	}
	return PulledFile{Name: p.name, Path: path, Descriptor: p.desc}, nil
}

// abandon removes the partial file and the directories made for it.
func (p *partial) abandon() {
	if p.finished {
		return
	}
	p.finished = true
	p.temp.Close()
	p.slot.removePartial(p.tempName)
	p.slot.release(true)
}
