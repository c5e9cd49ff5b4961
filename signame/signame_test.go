package signame

import (
	"syscall"
	"testing"
)

func TestParse(t *testing.T) {
	good := map[string]syscall.Signal{
		"TERM": 15, "SIGTERM": 15, "term": 15, "15": 15, "QUIT": 3, "usr1": 10,
		"RTMIN": 34, "RTMIN+3": 37, "SIGRTMAX": 64, "RTMAX-2": 62, "64": 64,
	}
	for in, want := range good {
		if got, err := Parse(in, false); err != nil || got != want {
			t.Errorf("Parse(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "65", "-1", "NOPE", "RTMIN-1", "RTMAX+1", "RTMIN+31", "SIG"} {
		if got, err := Parse(in, false); err == nil {
			t.Errorf("Parse(%q) = %v, want an error", in, got)
		}
	}
	if got, err := Parse("0", true); err != nil || got != 0 {
		t.Errorf("Parse(0, allowZero) = %v, %v", got, err)
	}
}

func TestName(t *testing.T) {
	for sig, want := range map[syscall.Signal]string{15: "SIGTERM", 9: "SIGKILL", 40: "signal 40"} {
		if got := Name(sig); got != want {
			t.Errorf("Name(%d) = %q, want %q", int(sig), got, want)
		}
	}
}
