//go:build linux || darwin

package bus

import "syscall"

// diskFree is the space free to unprivileged users on the disk holding dir.
func diskFree(dir string) (int64, bool) {
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err != nil {
		return 0, false
	}
	return int64(uint64(fs.Bavail) * uint64(fs.Bsize)), true
}
