package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// An empty --app or --secrets, or a key or vault named without --app, must
// not run the app without its secrets: usage error, app never started.
func TestEmptyAppOrSecretsFailsClosed(t *testing.T) {
	s := newSecretsSetup(t)
	for _, c := range []struct {
		name string
		env  []string
		args []string
	}{
		{"EmptyAppFlag", nil, []string{"--app", ""}},
		{"EmptyOVApp", []string{"OV_APP="}, nil},
		{"EmptySecretsFlag", nil, s.flags("web", s.webKey, "--secrets", "")},
		{"EmptyOVSecrets", []string{"OV_SECRETS="}, s.flags("web", s.webKey)},
		{"KeyWithoutApp", nil, []string{"--machine-key", s.webKey}},
		{"OVMachineKeyWithoutApp", []string{"OV_MACHINE_KEY=" + s.webKey}, nil},
		{"VaultWithoutApp", nil, []string{"--vault", s.vault}},
		{"InvalidAppName", nil, []string{"--app", "Web"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := append([]string{"PATH=/usr/bin:/bin"}, c.env...)
			r := runSecrets(t, env, withApp(c.args, s.touchApp()...)...)
			if r.code != 2 || strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "ov-init: ") {
				t.Errorf("exit %d, stderr %q; want 2 and one line", r.code, r.stderr)
			}
			s.assertAppNeverStarted(t)
		})
	}
}

func TestTermDelayHoldsEveryTerm(t *testing.T) {
	p := pid1(t, "--term-delay", "300ms", "--", helper, "signals")
	p.expect("ready", 5*time.Second)
	for i := 0; i < 2; i++ {
		sent := time.Now()
		p.signal(unix.SIGTERM)
		p.expect("SIGTERM", 3*time.Second)
		if d := time.Since(sent); d < 300*time.Millisecond {
			t.Errorf("TERM %d reached the app after %v, before the 300ms delay", i+1, d)
		}
	}
}

func TestDroppedSignalDoesNotStartTheGrace(t *testing.T) {
	p := pid1(t, "--rewrite", "TERM:0", "--grace", "300ms", "--", helper, "signals")
	p.expect("ready", 5*time.Second)
	p.signal(unix.SIGTERM)
	time.Sleep(800 * time.Millisecond)
	p.signal(unix.SIGUSR1)
	if line := p.expect("", 2*time.Second); line != "SIGUSR1|10" {
		t.Errorf("after a dropped TERM the app said %q", line)
	}
	select {
	case <-p.done:
		t.Fatal("the grace killed the app although its TERM was dropped")
	default:
	}
}

// Outside PID 1, a killed leftover's own children are reparented to
// ov-init only as it dies: they must be killed too, and ov-init must exit.
func TestLeftoversOutsidePID1AreAllKilled(t *testing.T) {
	token := "31.4159"
	t.Cleanup(func() { exec.Command("pkill", "-KILL", "-f", "sleep "+token).Run() })
	script := `setsid sh -c 'trap "" TERM; setsid sh -c "trap \"\" TERM; sleep ` + token + `" & sleep ` + token + `' & sleep 0.2; echo started; exit 3`
	p := startProc(t, nil, nil, "--grace", "300ms", "--", "/bin/sh", "-c", script)
	p.expect("started", 5*time.Second)
	code, elapsed := p.wait(5 * time.Second)
	if code != 3 {
		t.Errorf("exit %d, want the app's 3", code)
	}
	if elapsed > 3*time.Second {
		t.Errorf("ov-init took %v to stop the leftovers", elapsed)
	}
	if out, _ := exec.Command("pgrep", "-f", "sleep "+token).Output(); len(out) > 0 {
		t.Errorf("leftovers still alive after ov-init exited: %s", out)
	}
}

func TestInheritedDescriptorsReachTheApp(t *testing.T) {
	s := newSecretsSetup(t)
	app := []string{"/bin/sh", "-c", `read a <&3; read b <&4; echo "fd3=$a fd4=$b"`}
	for _, mode := range []struct {
		name  string
		flags []string
	}{{"Plain", nil}, {"Secrets", s.flags("web", s.webKey)}} {
		t.Run(mode.name, func(t *testing.T) {
			var extra []*os.File
			for _, v := range []string{"three", "four"} {
				r, w, err := os.Pipe()
				if err != nil {
					t.Fatal(err)
				}
				w.WriteString(v + "\n")
				w.Close()
				extra = append(extra, r)
			}
			cmd := exec.Command(ovInit, withApp(mode.flags, app...)...)
			cmd.ExtraFiles = extra // fds 3 and 4, as systemd socket activation passes them
			cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
			out, err := cmd.CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != "fd3=three fd4=four" {
				t.Errorf("app saw %q (%v), want fd3=three fd4=four", out, err)
			}
		})
	}
}

func TestNumericUserOutsidePasswdGetsHomeSlash(t *testing.T) {
	cmd := exec.Command(ovInit, "--user", "12345", "--", "/usr/bin/env")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/root"}
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "\nHOME=/\n") && !strings.HasPrefix(string(out), "HOME=/\n") {
		t.Errorf("the app's environment under --user 12345: %q, want HOME=/", out)
	}
}

func TestUserNeedsOvInitToStartAsRoot(t *testing.T) {
	dir, err := os.MkdirTemp("", "ov-user-") // reachable by uid 1001, unlike t.TempDir
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "ov-init")
	var b []byte
	b, err = os.ReadFile(ovInit)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(bin, b, 0o755)
	cmd := exec.Command(bin, "--user", "0", "--", "/bin/true")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 1001, Gid: 1001}}
	out, _ := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 78 || !strings.Contains(string(out), "starts as root") {
		t.Errorf("exit %d, output %q; want 78 and why", code, out)
	}
}

// As PID 1 the kernel itself would not let these stop ov-init; outside a
// PID namespace only ov-init's own handling does.
func TestStopSignalsDoNotStopOvInitOutsidePID1(t *testing.T) {
	p := startProc(t, nil, nil, "--", helper, "signals")
	p.expect("ready", 5*time.Second)
	for _, sig := range []syscall.Signal{unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU} {
		p.signal(sig)
		p.expect(unix.SignalName(sig), 2*time.Second)
		time.Sleep(50 * time.Millisecond)
		if state := procState(p.cmd.Process.Pid); state == "T" {
			t.Fatalf("%v stopped ov-init", sig)
		}
	}
}

// In secrets mode the app is exec'd by the exec stage, a Go process of its
// own: it too must leave the app default dispositions and an empty mask.
func TestAppStartsWithDefaultSignalStateInSecretsMode(t *testing.T) {
	s := newSecretsSetup(t)
	argv := append([]string{"with-signals", "HUP,INT,TERM,USR1,PIPE,TTOU,32,34", "USR2,TERM,WINCH,37", ovInit},
		withApp(s.flags("web", s.webKey), "/bin/grep", "^Sig[IB]", "/proc/self/status")...)
	out, err := exec.Command(helper, argv...).Output()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, want := range []string{"SigBlk:\t0000000000000000", "SigIgn:\t0000000000000000"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("app's signal state in secrets mode is not clean, want %q:\n%s", want, out)
		}
	}
}
