//go:build unix && !linux

package satchel

// placeTree is placeTreeAside: renameat2 is Linux's.
func placeTree(dir int, temp, final string) (string, error) {
	return placeTreeAside(dir, temp, final)
}
