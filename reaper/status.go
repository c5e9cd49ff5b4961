package reaper

import "syscall"

// Exit statuses of ov-init itself. Anything else is the app's own status,
// passed through (after --remap-exit).
const (
	// ExitUsage: the command line or an OV_* variable is wrong (as Go's flag
	// package and most CLIs do).
	ExitUsage = 2
	// ExitConfig: the machine key, the vault or a secret is unusable
	// (EX_CONFIG from sysexits.h). The app was not started.
	ExitConfig = 78
	// ExitInternal: ov-init itself failed (fork, pipe, signal set-up), as
	// env(1) and timeout(1) use 125.
	ExitInternal = 125
	// ExitNotExecutable: the command exists but cannot be run (shell
	// convention, as execvp users expect).
	ExitNotExecutable = 126
	// ExitNotFound: the command does not exist (shell convention).
	ExitNotFound = 127

	// exitSignalOffset: an app killed by signal N exits 128+N, as in sh.
	exitSignalOffset = 128
)

// exitStatus turns a wait status into the exit status a shell would report.
func exitStatus(ws syscall.WaitStatus) int {
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		return exitSignalOffset + int(ws.Signal())
	}
	return ExitInternal
}
