package satchel

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Directories up: packDirectory turns a directory into the layer the ORAS
// CLI makes of one, so `oras pull` (and unpack.go) unpacks the same tree: a
// tar+gzip file whose entries are named under the layer's title ("dir/",
// "dir/a.txt", ...), in the order of a walk that visits each directory's
// names sorted, with modes and modification times (in seconds) kept, owners
// cleared (uid and gid 0, no user or group names), symbolic links stored as
// links and anything else (sockets, devices, FIFOs) refused with
// codes.InvalidArgument. The layer is annotated
// io.deis.oras.content.unpack=true, with the tar's own sha256 digest under
// io.deis.oras.content.digest. The archive goes to a temporary file, not
// memory; Push removes it when the call is over.

// DirectoryMediaType is the layer media type of a pushed directory when
// PushOptions.MediaType is empty.
const DirectoryMediaType = "application/vnd.oci.image.layer.v1.tar+gzip"

// packedDirectory is a packed directory: the archive and what its layer
// says of it.
type packedDirectory struct {
	path string
	// digest and size are the archive's.
	digest      string
	size        uint64
	annotations map[string]string
}

// hashingWriter hashes and counts what passes through it.
type hashingWriter struct {
	w    io.Writer
	hash hash.Hash
	size uint64
}

func newHashingWriter(w io.Writer) *hashingWriter { return &hashingWriter{w: w, hash: sha256.New()} }

func (h *hashingWriter) Write(p []byte) (int, error) {
	n, err := h.w.Write(p)
	h.hash.Write(p[:n])
	h.size += uint64(n)
	return n, err
}

func (h *hashingWriter) digest() string { return "sha256:" + hex.EncodeToString(h.hash.Sum(nil)) }

// packDirectory packs dir (followed if it is a link: the caller named it)
// as a layer titled title, already checked.
func packDirectory(dir, title string) (_ *packedDirectory, err error) {
	f, err := os.CreateTemp("", ".satchel-pack-*.tar.gz")
	if err != nil {
		return nil, fmt.Errorf("satchel: a temporary file for %s: %w", dir, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	buffered := bufio.NewWriterSize(f, 1<<20)
	layer := newHashingWriter(buffered)
	// No name and no modification time in the gzip header: the same tree
	// packs to the same bytes.
	gz := gzip.NewWriter(layer)
	tarStream := newHashingWriter(gz)
	tw := tar.NewWriter(tarStream)
	top, err := os.Stat(dir)
	if err != nil {
		return nil, &LocalFileError{Path: dir, Err: err}
	}
	if err := addToTar(tw, dir, title, top, dir); err != nil {
		return nil, err
	}
	for _, step := range []func() error{tw.Close, gz.Close, buffered.Flush, f.Close} {
		if err := step(); err != nil {
			return nil, fmt.Errorf("satchel: pack %s: %w", dir, err)
		}
	}
	return &packedDirectory{
		path:   f.Name(),
		digest: layer.digest(),
		size:   layer.size,
		annotations: map[string]string{
			tarDigestAnnotation: tarStream.digest(),
			unpackAnnotation:    "true",
		},
	}, nil
}

// addToTar adds path (described by info) under the entry name name, and
// what it holds; links inside are stored, not followed. top is the
// directory being packed, for messages.
func addToTar(tw *tar.Writer, path, name string, info fs.FileInfo, top string) error {
	mode := info.Mode()
	hdr := &tar.Header{Name: name, Mode: tarMode(mode), ModTime: info.ModTime().Truncate(time.Second)}
	switch {
	case mode.IsDir():
		hdr.Typeflag, hdr.Name = tar.TypeDir, name+"/"
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("satchel: pack %s: %w", path, err)
		}
		// os.ReadDir sorts by name.
		entries, err := os.ReadDir(path)
		if err != nil {
			return &LocalFileError{Path: path, Err: err}
		}
		for _, e := range entries {
			if !utf8.ValidString(e.Name()) {
				return status.Errorf(codes.InvalidArgument, "satchel: cannot pack %s: a name in %s is not UTF-8", top, path)
			}
			child := filepath.Join(path, e.Name())
			info, err := os.Lstat(child)
			if err != nil {
				return &LocalFileError{Path: child, Err: err}
			}
			if err := addToTar(tw, child, name+"/"+e.Name(), info, top); err != nil {
				return err
			}
		}
		return nil
	case mode.IsRegular():
		hdr.Typeflag, hdr.Size = tar.TypeReg, info.Size()
		f, err := os.Open(path)
		if err != nil {
			return &LocalFileError{Path: path, Err: err}
		}
		defer f.Close()
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("satchel: pack %s: %w", path, err)
		}
		if _, err := io.CopyN(tw, f, info.Size()); err != nil {
			return fmt.Errorf("satchel: pack %s: %w", path, err)
		}
		return nil
	case mode&fs.ModeSymlink != 0:
		target, err := os.Readlink(path)
		if err != nil {
			return &LocalFileError{Path: path, Err: err}
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("satchel: pack %s: %w", path, err)
		}
		return nil
	}
	what := "a device"
	switch {
	case mode&fs.ModeSocket != 0:
		what = "a socket"
	case mode&fs.ModeNamedPipe != 0:
		what = "a FIFO"
	}
	return status.Errorf(codes.InvalidArgument, "satchel: cannot pack %s: %s is %s, not a file, directory or link", top, shownTitle(name), what)
}

// tarMode is a file mode as tar stores it: the permission bits, setuid,
// setgid and sticky.
func tarMode(m fs.FileMode) int64 {
	mode := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return mode
}
