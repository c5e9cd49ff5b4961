package reaper

import (
	"syscall"

	"github.com/ov-init/ov-init/exitcode"
)

// exitStatus turns a wait status into the exit status a shell would report.
func exitStatus(ws syscall.WaitStatus) int {
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		return exitcode.SignalOffset + int(ws.Signal())
	}
	return exitcode.Internal
}
