//go:build unix

package satchel

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// outputDir is the directory a pull writes into, held open: every path
// below it is walked from that descriptor one component at a time, never
// through a symbolic link, so a link planted in the directory cannot send
// a pulled byte anywhere else.
type outputDir struct {
	path string
	fd   int
}

// openOutputDir creates dir if it is missing and opens it. The caller named
// dir, so a link there is followed; only what lies below it is not.
func openOutputDir(dir string) (*outputDir, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("satchel: %w", err)
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("satchel: open %s: %w", dir, err)
	}
	return &outputDir{path: dir, fd: fd}, nil
}

func (o *outputDir) close() {
	if o.fd >= 0 {
		unix.Close(o.fd)
		o.fd = -1
	}
}

// slot is where one title's file goes: its parent directory, open, and its
// base name; and the directories the walk made, removed again if the file
// fails.
type slot struct {
	path string
	dir  int
	base string
	// fds are the descriptors the walk opened, closed by release.
	fds []int
	// made are the directories the walk created, outermost first.
	made []madeDir
}

type madeDir struct {
	parent int
	name   string
}

// walk opens (creating what is missing) every directory component of
// title below o without following links. A component that is a link or
// not a directory fails with codes.FailedPrecondition: the directory, not
// the artifact, is at fault. A directory at the final name fails the same
// way. title must have passed CheckTitle.
func (o *outputDir) walk(title string) (*slot, error) {
	s, err := o.walkParents(title)
	if err != nil {
		return nil, err
	}
	if isDir(s.dir, s.base) {
		s.release(true)
		return nil, status.Errorf(codes.FailedPrecondition, "satchel: %s: %s is a directory", shownTitle(title), s.path)
	}
	return s, nil
}

// walkParents is walk without the check of the final name: for a
// directory's archive, which never takes that name (see unpack.go), and for
// the directory itself.
func (o *outputDir) walkParents(title string) (*slot, error) {
	parts := strings.Split(title, "/")
	s := &slot{path: filepath.Join(o.path, filepath.FromSlash(title)), dir: o.fd, base: parts[len(parts)-1]}
	for i, part := range parts[:len(parts)-1] {
		fd, made, err := openDirNoFollow(s.dir, part)
		if err != nil {
			s.release(true)
			return nil, status.Errorf(codes.FailedPrecondition, "satchel: %s: %s %v",
				shownTitle(title), filepath.Join(o.path, filepath.Join(parts[:i+1]...)), err)
		}
		if made {
			s.made = append(s.made, madeDir{parent: s.dir, name: part})
		}
		s.fds = append(s.fds, fd)
		s.dir = fd
	}
	return s, nil
}

var (
	errIsLink = errors.New("is a symbolic link, which a pull does not follow")
	errNotDir = errors.New("is not a directory")
)

// openDirNoFollow opens the directory name in parent, creating it if it is
// missing, and refuses a link or a non-directory there.
func openDirNoFollow(parent int, name string) (fd int, made bool, err error) {
	const flags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err = unix.Openat(parent, name, flags, 0)
	if errors.Is(err, unix.ENOENT) {
		merr := unix.Mkdirat(parent, name, 0o755)
		if merr != nil && !errors.Is(merr, unix.EEXIST) {
			return -1, false, merr
		}
		made = merr == nil
		fd, err = unix.Openat(parent, name, flags, 0)
	}
	if err == nil {
		return fd, made, nil
	}
	var st unix.Stat_t
	if serr := unix.Fstatat(parent, name, &st, unix.AT_SYMLINK_NOFOLLOW); serr == nil {
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			return -1, false, errIsLink
		case unix.S_IFDIR:
		default:
			return -1, false, errNotDir
		}
	}
	return -1, false, err
}

func isDir(parent int, name string) bool {
	var st unix.Stat_t
	return unix.Fstatat(parent, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR
}

// createPartial creates the file the bytes go to until they are verified:
// exclusively, not through a link, under a name with 128 random bits that
// no one can plant something at in advance; with mode (less the umask).
func (s *slot) createPartial(mode uint32) (*os.File, string, error) {
	name, err := partialName()
	if err != nil {
		return nil, "", err
	}
	fd, err := unix.Openat(s.dir, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode&0o777)
	if err != nil {
		return nil, "", fmt.Errorf("satchel: create %s: %w", filepath.Join(filepath.Dir(s.path), name), err)
	}
	return os.NewFile(uintptr(fd), filepath.Join(filepath.Dir(s.path), name)), name, nil
}

// partialName is a hidden name with 128 random bits.
func partialName() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("satchel: %w", err)
	}
	return ".satchel-" + hex.EncodeToString(b[:]) + ".partial", nil
}

// reopenPartial opens the partial file again, for reading.
func (s *slot) reopenPartial(partial string) (*os.File, error) {
	fd, err := unix.Openat(s.dir, partial, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("satchel: read back %s: %w", filepath.Join(filepath.Dir(s.path), partial), err)
	}
	return os.NewFile(uintptr(fd), filepath.Join(filepath.Dir(s.path), partial)), nil
}

// commit renames the partial file to the final name. rename(2) replaces a
// link there and never writes through it; a directory there is refused.
func (s *slot) commit(partial string) error {
	err := unix.Renameat(s.dir, partial, s.dir, s.base)
	if errors.Is(err, unix.EISDIR) || errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EEXIST) {
		return status.Errorf(codes.FailedPrecondition, "satchel: %s is a directory", s.path)
	}
	if err != nil {
		return fmt.Errorf("satchel: rename to %s: %w", s.path, err)
	}
	return nil
}

// removePartial removes the partial file.
func (s *slot) removePartial(partial string) { unix.Unlinkat(s.dir, partial, 0) }

// release closes the walk's descriptors; failed also removes the
// directories the walk created (they are empty unless someone else wrote
// there meanwhile, and then they stay).
func (s *slot) release(failed bool) {
	if failed {
		for i := len(s.made) - 1; i >= 0; i-- {
			unix.Unlinkat(s.made[i].parent, s.made[i].name, unix.AT_REMOVEDIR)
		}
	}
	for _, fd := range s.fds {
		unix.Close(fd)
	}
	s.fds, s.made = nil, nil
}
