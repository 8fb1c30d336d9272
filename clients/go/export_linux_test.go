package satchel

import "golang.org/x/sys/unix"

// WithoutRenameat2 runs f as on a kernel without renameat2 (ENOSYS).
func WithoutRenameat2(f func()) {
	saved := renameat2
	renameat2 = func(int, string, int, string, uint) error { return unix.ENOSYS }
	defer func() { renameat2 = saved }()
	f()
}
