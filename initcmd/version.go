package initcmd

import (
	"runtime/debug"
	"strings"
)

// shortCommit is how many hex digits of a commit the version line gives
// when it takes the commit from Go's build information, as many as tini's.
const shortCommit = 7

// VersionLine is what prog's --version prints:
//
//	ov-init version 0.4.0 - git.1a2b3c4
//
// tini's form, which dockerd reads when ov-init is its init-path (`docker
// run --init`): dockerd splits the line at " - " and takes what follows
// "git." for the init's commit, shown by `docker info` and `docker version`,
// and logs a warning when it finds none. It takes a version only after
// "tini version ", which this line does not pretend to be. The commit is
// Commit when the build stamped it, else the one Go recorded (vcs.revision,
// with -buildvcs), else "unknown": never empty, never longer than 7, and
// never with a dot, which would make dockerd drop it.
func VersionLine(prog string) string {
	// Only a build the Makefile did not stamp needs Go's build information:
	// reading it is work on every start that parses flags (kong takes the
	// line when the parser is made).
	var info *debug.BuildInfo
	if Commit == "" {
		info, _ = debug.ReadBuildInfo()
	}
	return versionLine(prog, Version, Commit, info)
}

func versionLine(prog, version, commit string, info *debug.BuildInfo) string {
	if commit == "" && info != nil {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				commit = s.Value
			}
		}
	}
	// At most tini's 7 digits: dockerd before 19.03 cut its own expected
	// commit to the length of this one, and panicked on a longer one.
	commit = safe(commit[:min(len(commit), shortCommit)], "")
	if commit == "" {
		commit = "unknown"
	}
	// A space or a control byte in the version could forge the " - git."
	// dockerd looks for, or reach a terminal: whoever builds ov-init sets
	// it, but it is printed, so it is kept to what a version is made of.
	version = safe(version, ".")
	if version == "" {
		version = "dev"
	}
	return prog + " version " + version + " - git." + commit
}

// safe maps every byte of s but letters, digits, "-", "_", "+" and those
// in more to "-".
func safe(s, more string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || strings.ContainsRune("-_+"+more, r) {
			return r
		}
		return '-'
	}, s)
}
