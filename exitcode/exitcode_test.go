package exitcode

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// provenBy names, for each status, the tests that drive ov-init to it:
// the real binary where that is practical (integration/, init/), a unit
// test besides. Each named test must exist.
var provenBy = map[int][]string{
	Usage: {"integration/pid1_test.go:TestUsageErrorExits2WithOneLine"},
	Config: {"integration/secrets_test.go:TestSecretsModeExitStatusPassesThroughPID1",
		"execstage/execstage_test.go:TestStageWithAnUnusableKeyAnswers78BeforeAnythingElse"},
	Internal: {"init/main_test.go:TestOwnFailureExits125",
		"reaper/reaper_test.go:TestSilentStageIsNeverTakenForTheApp",
		"execstage/execstage_test.go:TestStageStartedByHandExits125"},
	NotExecutable: {"integration/pid1_test.go:TestNonExecutableCommandExits126"},
	NotFound:      {"integration/pid1_test.go:TestMissingCommandExits127"},
	SignalOffset:  {"integration/pid1_test.go:TestExitCodeIs128PlusSignal"},
}

func TestEveryStatusHasATest(t *testing.T) {
	codes := []int{SignalOffset}
	for _, s := range Table {
		codes = append(codes, s.Code)
	}
	for _, code := range codes {
		if len(provenBy[code]) == 0 {
			t.Errorf("status %d: no test named in provenBy", code)
		}
		for _, ref := range provenBy[code] {
			file, name, _ := strings.Cut(ref, ":")
			src, err := os.ReadFile(filepath.Join("..", file))
			if err != nil || !strings.Contains(string(src), "\nfunc "+name+"(t *testing.T) {") {
				t.Errorf("status %d: no %s in %s", code, name, file)
			}
		}
	}
}

func TestStatusesAreDistinctAndNoneIsASignalDeath(t *testing.T) {
	seen := map[int]bool{}
	for _, s := range Table {
		if seen[s.Code] || s.Code <= 1 || s.Code >= SignalOffset || s.Help == "" {
			t.Errorf("status %d (%q): want distinct, in 2..%d, with a help text", s.Code, s.Help, SignalOffset-1)
		}
		seen[s.Code] = true
	}
}

func TestHelpListsTheTableInOrder(t *testing.T) {
	help := Help()
	want := "Exit status: COMMAND's own; 128+N when a signal N killed it; 2 usage error; " +
		"78 configuration error: machine key, vault, secret, secrets directory or --user (COMMAND not started); 125 ov-init failed; " +
		"126 COMMAND not executable; 127 COMMAND not found."
	if help != want {
		t.Errorf("Help() =\n%s\nwant\n%s", help, want)
	}
}

// The README's "Exit status" table lists the same statuses, in the same
// order: the app's own, 128+N, then the table.
func TestREADMEExitStatusTableMatches(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n### Exit status\n")
	if !ok {
		t.Fatal(`README.md has no "### Exit status" section`)
	}
	section, _, _ = strings.Cut(section, "\n#")
	var rows []string
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 3 || strings.HasPrefix(strings.TrimSpace(cells[1]), "---") {
			continue
		}
		rows = append(rows, strings.TrimSpace(cells[1]))
	}
	want := []string{"status", "the app's own", strconv.Itoa(SignalOffset) + "+N"}
	for _, s := range Table {
		want = append(want, strconv.Itoa(s.Code))
	}
	if !slices.Equal(rows, want) {
		t.Errorf("README's exit-status table lists %q, want %q", rows, want)
	}
}
