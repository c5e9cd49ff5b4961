//go:build linux

package privs

import (
	"os"
	"runtime"
	"strings"
	"testing"
)

// threadStatus reads a field of the calling thread's status.
func threadStatus(t *testing.T, field string) string {
	b, err := os.ReadFile("/proc/thread-self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %s in /proc/thread-self/status", field)
	return ""
}

// Both calls change only the calling thread, which ends with its
// goroutine; the test's other threads keep theirs.
func TestRestrictsTheCallingThreadOnly(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("dropping the bounding set needs CAP_SETPCAP")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread dies with us
		if got := threadStatus(t, "NoNewPrivs"); got != "0" {
			t.Errorf("NoNewPrivs %s before", got)
		}
		if kept, err := Restrict(true); kept != nil || err != nil {
			t.Errorf("Restrict(true) = %v, %v; want nil, nil as root", kept, err)
		}
		if got := threadStatus(t, "NoNewPrivs"); got != "1" {
			t.Errorf("NoNewPrivs %s after Restrict", got)
		}
		if got := threadStatus(t, "CapBnd"); got != "0000000000000000" {
			t.Errorf("CapBnd %s after Restrict", got)
		}
	}()
	<-done
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if got := threadStatus(t, "CapBnd"); got == "0000000000000000" {
		t.Error("another thread's bounding set was emptied")
	}
}
