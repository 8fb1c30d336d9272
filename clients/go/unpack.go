package satchel

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Directories down: a layer the ORAS CLI marks io.deis.oras.content.unpack
// is a tar+gzip of a directory named by its title; unpackDirectory turns
// the verified archive back into that directory, by the rules of
// clients/conformance/archives.json, shared by every Satchel client.
//
// Every entry must lie under the title ("dir" or "dir/..."; a leading "./"
// and a trailing "/" are dropped), and what follows it must pass
// CheckTitle (and be UTF-8). Regular files, directories, symbolic links
// and hard links are made; anything else (devices, FIFOs, sparse files) is
// refused. A symbolic link's target must be relative and may climb ("../")
// only at its start and no higher than the tree's top, so it resolves
// inside the tree whatever the links it passes through; a hard link names
// an earlier regular file of the archive. Everything is made through the
// output directory's walk, which never follows a link, so an entry cannot
// write through a link an earlier entry made. Files keep their mode bits
// (& 0o777, less the umask) and modification time. The archive may not
// unpack to more than the limits allow.
//
// The tree is built under a hidden name beside the final one and takes it
// only when every entry is in place and the archive's own digest (the
// io.deis.oras.content.digest annotation: the uncompressed tar stream's,
// to its end; an algorithm other than sha256 and sha512 is not checked)
// matches; on any failure it is removed. Unsafe entries are
// codes.InvalidArgument, a wrong digest or a broken archive
// codes.DataLoss, an archive past the limits codes.ResourceExhausted.

const (
	// unpackAnnotation asks for unpacking (value "true").
	unpackAnnotation = "io.deis.oras.content.unpack"
	// tarDigestAnnotation holds the uncompressed tar's digest.
	tarDigestAnnotation = "io.deis.oras.content.digest"
)

// unpackLimits are how much one archive may unpack to.
type unpackLimits struct {
	// maxBytes counts the uncompressed tar stream, headers included.
	maxBytes   uint64
	maxEntries uint64
}

// defaultUnpackLimits are 64 GiB and a million entries.
var defaultUnpackLimits = unpackLimits{maxBytes: 64 << 30, maxEntries: 1_000_000}

// isDirectoryLayer reports whether a layer is a directory to unpack.
func isDirectoryLayer(d Descriptor) bool { return d.Annotations[unpackAnnotation] == "true" }

// unpackDirectory unpacks the gzip-compressed tar archive (already checked
// against its layer digest) into the directory title (already checked)
// inside out, as described above, and returns the directory's path.
func unpackDirectory(archive io.Reader, out *outputDir, title string, annotations map[string]string, limits unpackLimits) (_ string, err error) {
	expected := annotations[tarDigestAnnotation]
	placement, err := out.createTree(title)
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			placement.discard()
		}
	}()
	u := &unpacker{tree: placement.tree, title: title, limits: limits, files: map[string]bool{}, buf: make([]byte, 256<<10)}
	gz, err := gzip.NewReader(bufio.NewReaderSize(archive, 1<<20))
	if err != nil {
		return "", u.broken(err)
	}
	stream := &tarStream{r: gz, hash: tarHash(expected), limit: limits.maxBytes}
	if err := u.fill(tar.NewReader(stream)); err != nil {
		return "", err
	}
	// The digest covers the whole stream, the end-of-archive blocks too.
	if _, err := io.Copy(io.Discard, stream); err != nil {
		return "", u.broken(err)
	}
	if stream.hash != nil {
		algorithm, _, _ := strings.Cut(expected, ":")
		if got := algorithm + ":" + hex.EncodeToString(stream.hash.Sum(nil)); got != expected {
			return "", status.Errorf(codes.DataLoss, "satchel: cannot unpack the directory %s: the archive's content digest is %s, its layer says %s",
				shownTitle(title), got, expected)
		}
	}
	if err := placement.commit(); err != nil {
		return "", err
	}
	return placement.path(), nil
}

// tarHash is the hash the content digest names; nil for none, or for an
// algorithm this client does not know, which is then not checked (as the
// ORAS CLI skips a digest it cannot parse).
func tarHash(digest string) hash.Hash {
	algorithm, _, ok := strings.Cut(digest, ":")
	switch {
	case ok && algorithm == "sha256":
		return sha256.New()
	case ok && algorithm == "sha512":
		return sha512.New()
	}
	return nil
}

// errOverLimit is the uncompressed stream going past its limit.
var errOverLimit = errors.New("the archive unpacks past its limit")

// tarStream is the uncompressed tar stream: counted against the limit and
// hashed.
type tarStream struct {
	r     io.Reader
	hash  hash.Hash
	read  uint64
	limit uint64
}

func (s *tarStream) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.read += uint64(n)
	if s.read > s.limit {
		return 0, errOverLimit
	}
	if s.hash != nil {
		s.hash.Write(p[:n])
	}
	return n, err
}

// unpacker is the tree being unpacked.
type unpacker struct {
	tree   *outputDir
	title  string
	limits unpackLimits
	// files says what each entry made, for the hard links that follow:
	// true for a regular file.
	files map[string]bool
	// declared is the sum of the sizes the files declared so far.
	declared uint64
	buf      []byte
}

func (u *unpacker) unsafe(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, "satchel: refusing the directory %s: %s", shownTitle(u.title), fmt.Sprintf(format, args...))
}

func (u *unpacker) exhausted(why string) error {
	return status.Errorf(codes.ResourceExhausted, "satchel: cannot unpack the directory %s: %s", shownTitle(u.title), why)
}

// broken is an error reading the archive: past the limit, or broken.
func (u *unpacker) broken(err error) error {
	switch {
	case errors.Is(err, errOverLimit):
		return u.exhausted(fmt.Sprintf("it unpacks to more than %d bytes", u.limits.maxBytes))
	case errors.Is(err, tar.ErrFieldTooLong):
		return u.exhausted(fmt.Sprintf("an extended header is too long: %v", err))
	}
	return status.Errorf(codes.DataLoss, "satchel: cannot unpack the directory %s: the archive is broken: %v", shownTitle(u.title), err)
}

// fill makes every entry of the archive, in order.
func (u *unpacker) fill(tr *tar.Reader) error {
	var entries uint64
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return u.broken(err)
		}
		entries++
		if entries > u.limits.maxEntries {
			return u.exhausted(fmt.Sprintf("more than %d entries", u.limits.maxEntries))
		}
		if err := u.put(tr, hdr); err != nil {
			if status.Code(err) == codes.FailedPrecondition {
				// The walk refusing a link or a file in the way, which
				// inside the new tree only the archive's own entries make.
				return u.unsafe("%s", strings.TrimPrefix(status.Convert(err).Message(), "satchel: "))
			}
			return err
		}
	}
}

// put makes one entry.
func (u *unpacker) put(tr *tar.Reader, hdr *tar.Header) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		// PAX records for the entries that follow (git archive writes one
		// first, named pax_global_header): they name nothing.
		return nil
	}
	rel, err := u.relative(hdr.Name)
	if err != nil {
		return err
	}
	if rel == "" && hdr.Typeflag != tar.TypeDir {
		return u.unsafe("its top is not a directory")
	}
	if isSparse(hdr) {
		return u.unsafe("%s is a sparse file, not a file, directory or link", shownTitle(rel))
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		u.files[rel] = false
		return u.tree.mkdirs(rel)
	case tar.TypeReg, tar.TypeCont: // the reader makes TypeRegA TypeReg (or TypeDir)
		u.files[rel] = true
		return u.file(tr, hdr, rel)
	case tar.TypeSymlink:
		if err := u.checkLinkTarget(rel, hdr.Linkname); err != nil {
			return err
		}
		u.files[rel] = false
		return u.tree.symlink(rel, hdr.Linkname)
	case tar.TypeLink:
		existing, err := u.relative(hdr.Linkname)
		if err != nil {
			return err
		}
		if !u.files[existing] {
			return u.unsafe("the hard link %s names %s, not an earlier file of the archive", shownTitle(rel), shownTitle(existing))
		}
		u.files[rel] = true
		return u.tree.hardLink(existing, rel)
	}
	return u.unsafe("%s is %s, not a file, directory or link", shownTitle(rel), entryKind(hdr.Typeflag))
}

func (u *unpacker) file(tr *tar.Reader, hdr *tar.Header, rel string) error {
	if hdr.Size < 0 {
		return u.broken(fmt.Errorf("%s declares %d bytes", shownTitle(rel), hdr.Size))
	}
	u.declared += uint64(hdr.Size)
	if u.declared > u.limits.maxBytes {
		return u.exhausted(fmt.Sprintf("it unpacks to more than %d bytes", u.limits.maxBytes))
	}
	return u.tree.writeFile(rel, uint32(hdr.Mode)&0o777, hdr.ModTime, func(w io.Writer) error {
		for {
			n, err := tr.Read(u.buf)
			if n > 0 {
				if _, werr := w.Write(u.buf[:n]); werr != nil {
					return fmt.Errorf("satchel: unpack %s: %w", shownTitle(rel), werr)
				}
			}
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return u.broken(err)
			}
		}
	})
}

// relative is the part of the entry name under the title ("" for the top
// itself), checked as a title.
func (u *unpacker) relative(name string) (string, error) {
	if !utf8.ValidString(name) {
		return "", u.unsafe("an entry's name is not UTF-8: %q", name)
	}
	name = strings.TrimRight(name, "/")
	for strings.HasPrefix(name, "./") {
		name = name[2:]
	}
	if name == u.title {
		return "", nil
	}
	rel, ok := strings.CutPrefix(name, u.title+"/")
	if !ok {
		return "", u.unsafe("the entry %s lies outside it", shownTitle(name))
	}
	if err := CheckTitle(rel); err != nil {
		return "", u.unsafe("%s", strings.TrimPrefix(status.Convert(err).Message(), "satchel: "))
	}
	return rel, nil
}

// checkLinkTarget: a symbolic link at rel may point only inside the tree:
// relative, with ".." parts only at its start and no more of them than rel
// has directories above it, and otherwise only plain names.
func (u *unpacker) checkLinkTarget(rel, target string) error {
	refuse := func(why string) error {
		return u.unsafe("the link %s points %s: %s", shownTitle(rel), why, shownTitle(target))
	}
	if target == "" || strings.HasPrefix(target, "/") {
		return refuse("to an absolute or empty path")
	}
	if !utf8.ValidString(target) {
		return refuse("to a name that is not UTF-8")
	}
	parts := strings.Split(strings.TrimRight(target, "/"), "/")
	climbs := 0
	for climbs < len(parts) && parts[climbs] == ".." {
		climbs++
	}
	if climbs > strings.Count(rel, "/") {
		return refuse("outside the directory")
	}
	for _, part := range parts[climbs:] {
		if part == "" || part == "." || part == ".." || strings.ContainsRune(part, 0) {
			return refuse("through \".\", \"..\" or an empty part after its start")
		}
	}
	return nil
}

// isSparse reports a sparse file, in the old GNU format or PAX's.
func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for key := range hdr.PAXRecords {
		if strings.HasPrefix(key, "GNU.sparse.") {
			return true
		}
	}
	return false
}

func entryKind(flag byte) string {
	switch flag {
	case tar.TypeChar:
		return "a character device"
	case tar.TypeBlock:
		return "a block device"
	case tar.TypeFifo:
		return "a FIFO"
	}
	return fmt.Sprintf("a %q entry", flag)
}
