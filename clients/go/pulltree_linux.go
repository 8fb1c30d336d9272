package satchel

import (
	"errors"

	"golang.org/x/sys/unix"
)

// renameat2 is unix.Renameat2; a variable so a test can take it away.
var renameat2 = unix.Renameat2

// placeTree renames the tree temp to final inside dir with
// renameat2(RENAME_NOREPLACE); when something stands at final (a file, a
// link, an older tree) it swaps the two atomically (RENAME_EXCHANGE) and
// returns the name what stood there now has, for the caller to remove. So
// final never shows a partial tree, nor goes missing. A kernel or file
// system without these flags gets placeTreeAside.
func placeTree(dir int, temp, final string) (string, error) {
	err := renameat2(dir, temp, dir, final, unix.RENAME_NOREPLACE)
	if err == nil {
		return "", nil
	}
	if errors.Is(err, unix.EEXIST) {
		if err = renameat2(dir, temp, dir, final, unix.RENAME_EXCHANGE); err == nil {
			return temp, nil
		}
	}
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOTSUP) {
		return placeTreeAside(dir, temp, final)
	}
	return "", err
}
