package initcmd

import (
	"runtime/debug"
	"strings"
	"testing"
)

// dockerInitCommit is what dockerd makes of an init's --version line: the
// commit `docker info` shows as "init version" and `docker version` as the
// init's GitCommit. It follows parseInitVersion of moby's
// daemon/info_unix.go (20.10 to 28): the part after " - " must be "git."
// and a commit with no dot; ok is false where dockerd logs "failed to parse
// … version: unknown output format" (it reads a version only after "tini
// version ", so for ov-init the commit is all it gets).
func dockerInitCommit(out string) (commit string, ok bool) {
	parts := strings.Split(out, " - ")
	if len(parts) < 2 {
		return "", false
	}
	git := strings.Split(strings.TrimSpace(parts[1]), ".")
	if len(git) != 2 || git[0] != "git" || git[1] == "" {
		return "", false
	}
	return git[1], true
}

func TestVersionLineIsOneDockerdReads(t *testing.T) {
	revision := func(r string) *debug.BuildInfo {
		return &debug.BuildInfo{Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: r}, {Key: "vcs.modified", Value: "true"}}}
	}
	for _, tc := range []struct {
		name, version, commit string
		info                  *debug.BuildInfo
		want, wantCommit      string
	}{
		{"stamped by the Makefile", "0.4.0", "1a2b3c4", revision("ffffffffffffffffffffffffffffffffffffffff"),
			"ov-init version 0.4.0 - git.1a2b3c4", "1a2b3c4"},
		{"stamped, no tag: git describe's commit", "27338ad-dirty", "27338ad", nil,
			"ov-init version 27338ad-dirty - git.27338ad", "27338ad"},
		{"go build with -buildvcs", "", "", revision("27338adac435a0709f8c5b6042ca59673a99a288"),
			"ov-init version dev - git.27338ad", "27338ad"},
		{"go build without VCS information", "dev", "", &debug.BuildInfo{},
			"ov-init version dev - git.unknown", "unknown"},
		{"no build information", "dev", "", nil,
			"ov-init version dev - git.unknown", "unknown"},
		{"a dot would hide the commit from dockerd", "1.2", "v1.2rc", nil,
			"ov-init version 1.2 - git.v1-2rc", "v1-2rc"},
		{"a longer commit is cut to 7", "1.2", "27338adac435", nil,
			"ov-init version 1.2 - git.27338ad", "27338ad"},
		{"a version cannot forge the commit", "1.2 - git.forged\n\x1b[2J", "27338ad", nil,
			"ov-init version 1.2---git.forged---2J - git.27338ad", "27338ad"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := versionLine("ov-init", tc.version, tc.commit, tc.info)
			if got != tc.want {
				t.Errorf("version line %q, want %q", got, tc.want)
			}
			if commit, ok := dockerInitCommit(got + "\n"); !ok || commit != tc.wantCommit {
				t.Errorf("dockerd reads commit %q (parsed: %v) from %q, want %q", commit, ok, got, tc.wantCommit)
			}
			if !strings.HasPrefix(got, "ov-init version ") {
				t.Errorf("%q does not start with ov-init's name", got)
			}
		})
	}
}

// The oracle above must see what dockerd refuses, or the test proves
// nothing: tini's line without a commit, the old "ov-init VERSION" and a
// dotted commit all give dockerd no commit.
func TestTheOracleRefusesWhatDockerdRefuses(t *testing.T) {
	for _, out := range []string{"ov-init 27338ad-dirty\n", "ov-init version 0.4.0\n", "ov-init version 0.4.0 - git.1a2.b3c\n", "ov-init version 0.4.0 - 1a2b3c4\n"} {
		if commit, ok := dockerInitCommit(out); ok {
			t.Errorf("%q gives commit %q, want dockerd's unknown output format", out, commit)
		}
	}
	if commit, ok := dockerInitCommit("tini version 0.19.0 - git.de40ad0\n"); !ok || commit != "de40ad0" {
		t.Errorf("tini's own line gives %q (%v), want de40ad0", commit, ok)
	}
}
