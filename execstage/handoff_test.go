package execstage

import (
	"reflect"
	"strings"
	"testing"
)

func TestConfigRoundTripsBytes(t *testing.T) {
	for _, c := range []Config{
		{App: "web", MachineKey: "/run/secrets/machine.kek", Vault: "/etc/ov/vault.json"},
		{App: "a.b-c_d", MachineKey: "/tmp/k\xff/m.kek", Vault: "/v\x80\xfe\n.json", Secrets: []string{"A", "B_2"},
			PreserveEnv: true, User: "app:\xffgroup", Verbose: 3, NoNewPrivs: true},
		{App: "web", Secrets: []string{}}, // given, but none: inject nothing
		{App: "web", Secrets: []string{"DB", "TLS_KEY:file", "T:memfd"}, SecretsAs: "files", SecretsDir: "/run/ÿov"},
	} {
		b, err := c.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var got Config
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Errorf("round trip:\n got %#v\nwant %#v", got, c)
		}
	}
}

func TestConfigRefusesWhatNoPID1Wrote(t *testing.T) {
	good, err := Config{App: "web", Secrets: []string{"A"}}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{
		"empty":         "",
		"truncated":     string(good[:len(good)-1]),
		"trailing key":  string(good) + "app",
		"unknown key":   string(good) + "shell\x00/bin/sh\x00",
		"key twice":     string(good) + "vault\x00/x\x00",
		"bad flag":      strings.Replace(string(good), "preserve-env\x000", "preserve-env\x00yes", 1),
		"bad verbosity": strings.Replace(string(good), "verbose\x000", "verbose\x00-x", 1),
	} {
		var c Config
		if err := c.UnmarshalBinary([]byte(data)); err == nil {
			t.Errorf("%s: accepted %q", name, data)
		}
	}
	if _, err := (Config{Vault: "/a\x00b"}).MarshalBinary(); err == nil {
		t.Error("a NUL byte in a setting was encoded")
	}
}

func TestRequested(t *testing.T) {
	for args, want := range map[string]bool{
		"ov-init __ov_exec_stage 3 app": true,
		"ov-init __ov_exec_stage 3":     false, // no app
		"ov-init -- __ov_exec_stage 3":  false,
		"ov-init app __ov_exec_stage 3": false,
	} {
		if got := Requested(strings.Fields(args)); got != want {
			t.Errorf("Requested(%q) = %v, want %v", args, got, want)
		}
	}
	if got := Argv("ov-init", 4, []string{"a", "b"}); !reflect.DeepEqual(got, []string{"ov-init", Arg, "4", "a", "b"}) {
		t.Errorf("Argv = %q", got)
	}
}

// The stage of `ov run` speaks as ov, ov-init's as ov-init; argv[0] names
// no other program, whoever started the stage (issue 11).
func TestStageSpeaksForTheProgramThatStartedIt(t *testing.T) {
	for _, c := range []struct{ prog, want string }{
		{"ov", "ov"}, {"ov-init", "ov-init"}, {"/usr/bin/ov", "ov-init"}, {"evil\nov", "ov-init"}, {"", "ov-init"},
	} {
		if got := Prog(Argv(c.prog, 3, []string{"app"})); got != c.want {
			t.Errorf("Prog of a stage started as %q = %q, want %q", c.prog, got, c.want)
		}
	}
	if got := Prog(nil); got != "ov-init" {
		t.Errorf("Prog(nil) = %q", got)
	}
}
