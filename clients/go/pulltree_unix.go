//go:build unix

package satchel

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A directory layer (unpack.go) is made as a tree under a hidden name beside
// its final name, through the same walk as a pulled file (nothing below the
// output directory is followed if it is a link), and takes the final name
// only when whole: see placeTree.

// treePlacement is a tree being built under a hidden name (temp) in its
// final directory: tree is where to build it; commit gives it the final
// name, discard removes it.
type treePlacement struct {
	slot *slot
	temp string
	tree *outputDir
	done bool
}

// createTree makes an empty directory under a hidden name beside title's
// final name (the directories on the way made as walk makes them) and opens
// it. A directory already at the final name is no obstacle: commit swaps it
// out.
func (o *outputDir) createTree(title string) (*treePlacement, error) {
	s, err := o.walkParents(title)
	if err != nil {
		return nil, err
	}
	name, err := partialName()
	if err == nil {
		err = unix.Mkdirat(s.dir, name, 0o755)
	}
	if err != nil {
		s.release(true)
		return nil, fmt.Errorf("satchel: create a directory beside %s: %w", s.path, err)
	}
	fd, err := unix.Openat(s.dir, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Unlinkat(s.dir, name, unix.AT_REMOVEDIR)
		s.release(true)
		return nil, fmt.Errorf("satchel: open a directory beside %s: %w", s.path, err)
	}
	return &treePlacement{slot: s, temp: name, tree: &outputDir{path: s.path, fd: fd}}, nil
}

// path is the tree's final path.
func (t *treePlacement) path() string { return t.slot.path }

// commit gives the tree its final name (see placeTree) and removes what it
// replaced. On failure the tree keeps its hidden name, for discard.
func (t *treePlacement) commit() error {
	t.tree.close()
	old, err := placeTree(t.slot.dir, t.temp, t.slot.base)
	if err != nil {
		return fmt.Errorf("satchel: move %s into place: %w", t.slot.path, err)
	}
	t.done = true
	if old != "" {
		removeAt(t.slot.dir, old)
	}
	t.slot.release(false)
	return nil
}

// discard removes the tree and the directories made for it.
func (t *treePlacement) discard() {
	if t.done {
		return
	}
	t.done = true
	t.tree.close()
	removeAt(t.slot.dir, t.temp)
	t.slot.release(true)
}

// placeTreeAside is placeTree without renameat2: what stands at final is
// renamed aside first (the name is then briefly missing, but never shows a
// partial tree), and put back if the tree cannot take its place.
func placeTreeAside(dir int, temp, final string) (string, error) {
	aside, err := partialName()
	if err != nil {
		return "", err
	}
	if err := unix.Renameat(dir, final, dir, aside); err != nil {
		if !errors.Is(err, unix.ENOENT) {
			return "", err
		}
		aside = ""
	}
	if err := unix.Renameat(dir, temp, dir, final); err != nil {
		if aside != "" {
			unix.Renameat(dir, aside, dir, final)
		}
		return "", err
	}
	return aside, nil
}

// removeAt removes name in dir and, if it is a directory, all it holds,
// never following a link, as far as it can.
func removeAt(dir int, name string) {
	if unix.Unlinkat(dir, name, 0) == nil {
		return
	}
	fd, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	f := os.NewFile(uintptr(fd), name)
	for {
		entries, err := f.ReadDir(256)
		for _, e := range entries {
			removeAt(fd, e.Name())
		}
		if err != nil {
			break
		}
	}
	f.Close()
	unix.Unlinkat(dir, name, unix.AT_REMOVEDIR)
}

// mkdirs makes the directory rel (a checked title; "" is o itself) and
// those on the way, never through a link.
func (o *outputDir) mkdirs(rel string) error {
	if rel == "" {
		return nil
	}
	s, err := o.walkParents(rel)
	if err != nil {
		return err
	}
	defer s.release(false)
	fd, _, err := openDirNoFollow(s.dir, s.base)
	if err != nil {
		return status.Errorf(codes.FailedPrecondition, "satchel: %s: %s %v", shownTitle(rel), s.path, err)
	}
	unix.Close(fd)
	return nil
}

// writeFile makes the file rel with mode (less the umask) and, when set,
// mtime, its bytes written by fill into a partial file renamed into place
// (replacing a file or link there) when fill succeeds.
func (o *outputDir) writeFile(rel string, mode uint32, mtime time.Time, fill func(io.Writer) error) error {
	s, err := o.walk(rel)
	if err != nil {
		return err
	}
	defer s.release(false)
	f, name, err := s.createPartial(mode)
	if err != nil {
		return err
	}
	err = fill(f)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("satchel: %w", cerr)
	}
	if err == nil && !mtime.IsZero() {
		if ts, terr := unix.TimeToTimespec(mtime); terr == nil {
			// Best effort, as tar does.
			unix.UtimesNanoAt(s.dir, name, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
		}
	}
	if err == nil {
		err = s.commit(name)
	}
	if err != nil {
		s.removePartial(name)
	}
	return err
}

// symlink makes the symbolic link rel to target (checked by the caller),
// replacing a file or link there.
func (o *outputDir) symlink(rel, target string) error {
	s, err := o.walk(rel)
	if err != nil {
		return err
	}
	defer s.release(false)
	name, err := partialName()
	if err != nil {
		return err
	}
	if err := unix.Symlinkat(target, s.dir, name); err != nil {
		return fmt.Errorf("satchel: make the link %s: %w", s.path, err)
	}
	if err := s.commit(name); err != nil {
		s.removePartial(name)
		return err
	}
	return nil
}

// hardLink makes rel a hard link to the regular file existing, both below
// o; anything else at existing (a link) is codes.FailedPrecondition.
func (o *outputDir) hardLink(existing, rel string) error {
	from, err := o.walk(existing)
	if err != nil {
		return err
	}
	defer from.release(false)
	var st unix.Stat_t
	if err := unix.Fstatat(from.dir, from.base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("satchel: link to %s: %w", from.path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return status.Errorf(codes.FailedPrecondition, "satchel: %s is not a regular file to link to", from.path)
	}
	to, err := o.walk(rel)
	if err != nil {
		return err
	}
	defer to.release(false)
	name, err := partialName()
	if err != nil {
		return err
	}
	if err := unix.Linkat(from.dir, from.base, to.dir, name, 0); err != nil {
		return fmt.Errorf("satchel: make the link %s: %w", to.path, err)
	}
	if err := to.commit(name); err != nil {
		to.removePartial(name)
		return err
	}
	return nil
}
