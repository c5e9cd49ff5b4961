// Package exitcode is the table of ov-init's own exit statuses: the ones it
// exits with when the app did not give it one. Every other status is the
// app's, passed through (after --remap-exit, which never applies to these).
//
// The table is the one source: ov-init's --help paragraph is built from it
// ([Help]) and a test holds the README's "Exit status" table to it, so the
// three cannot drift. Each status has a test that drives ov-init to it (see
// provenBy in exitcode_test.go).
package exitcode

import (
	"strconv"
	"strings"
)

// ov-init's own statuses, after the conventions of the shell and of env(1)
// and timeout(1).
const (
	// Usage: the command line or an OV_* variable is wrong (as Go's flag
	// package and most CLIs do).
	Usage = 2
	// Config: the machine key, the vault, a secret or --user is unusable
	// (EX_CONFIG from sysexits.h). The app was not started.
	Config = 78
	// Internal: ov-init itself failed (fork, socket, signal set-up), as
	// env(1) and timeout(1) use 125.
	Internal = 125
	// NotExecutable: the command exists but cannot be run (shell
	// convention, as execvp users expect).
	NotExecutable = 126
	// NotFound: the command does not exist (shell convention).
	NotFound = 127

	// SignalOffset: an app killed by signal N exits SignalOffset+N, as in
	// sh: 143 for SIGTERM, 137 for SIGKILL.
	SignalOffset = 128
)

// Status is one row of the table.
type Status struct {
	Code int
	Help string // as --help gives it, after the number
}

// Table lists ov-init's own statuses in the order --help and the README
// give them.
var Table = []Status{
	{Usage, "usage error"},
	{Config, "configuration error: machine key, vault, secret, secrets directory or --user (COMMAND not started)"},
	{Internal, "ov-init failed"},
	{NotExecutable, "COMMAND not executable"},
	{NotFound, "COMMAND not found"},
}

// Help is the exit-status paragraph of ov-init --help.
func Help() string {
	var b strings.Builder
	b.WriteString("Exit status: COMMAND's own; ")
	b.WriteString(strconv.Itoa(SignalOffset) + "+N when a signal N killed it")
	for _, s := range Table {
		b.WriteString("; " + strconv.Itoa(s.Code) + " " + s.Help)
	}
	b.WriteString(".")
	return b.String()
}
