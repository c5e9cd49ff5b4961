package ovinit

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestPlainMatchesKong(t *testing.T) {
	for _, args := range [][]string{
		{"--", "app"},
		{"--", "app", "-v", "--app", "x"},
		{"app", "--grace", "1s"},
		{"--", "--"},
		{"/bin/sh", "-c", "echo hi"},
	} {
		env := []string{"PATH=/bin", "HOME=/root"}
		fast, ok := plain(args, env)
		if !ok {
			t.Fatalf("plain(%q) was not taken", args)
		}
		slow, _, ok := parse(args, env)
		if !ok {
			t.Fatalf("kong refused %q", args)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Errorf("%q:\nplain %+v\nkong  %+v", args, fast, slow)
		}
	}
}

func TestPlainLeavesFlagsAndSettingsToKong(t *testing.T) {
	for _, c := range []struct {
		args []string
		env  []string
	}{
		{[]string{"-v", "--", "app"}, nil},
		{[]string{"--app", "x", "--", "app"}, nil},
		{[]string{"--help"}, nil},
		{[]string{}, nil},
		{[]string{"--"}, nil},
		{[]string{"--", "app"}, []string{"OV_APP=x"}},
		{[]string{"app"}, []string{"A=1", "OV_VERBOSE=1"}},
	} {
		if _, ok := plain(c.args, c.env); ok {
			t.Errorf("plain took %q with env %q", c.args, c.env)
		}
	}
}

func TestSettingsComeFromTheEnvironment(t *testing.T) {
	t.Setenv("OV_KILL_GROUP", "1")
	t.Setenv("OV_REMAP_EXIT", "143,130")
	t.Setenv("OV_REWRITE", "TERM:QUIT,USR1:0")
	t.Setenv("OV_GRACE", "3s")
	t.Setenv("OV_TERM_DELAY", "2s")
	t.Setenv("OV_VERBOSE", "2")
	t.Setenv("OV_APP", "web")
	t.Setenv("OV_SECRETS", "A,B")
	t.Setenv("OV_USER", "1001:1001")
	t.Setenv("OV_PRESERVE_ENV", "true")
	t.Setenv("OV_MACHINE_KEY", "/k")
	t.Setenv("OV_VAULT", "/v")
	o, _, ok := parse([]string{"--", "app"}, os.Environ())
	if !ok {
		t.Fatal("parse failed")
	}
	f := o.Flags
	if !f.KillGroup || !reflect.DeepEqual(f.RemapExit, []int{143, 130}) || strings.Join(f.Rewrite, " ") != "TERM:QUIT USR1:0" ||
		f.Grace.String() != "3s" || f.TermDelay.String() != "2s" || f.Verbose != 2 || f.App != "web" ||
		strings.Join(f.Secrets, ",") != "A,B" || f.User != "1001:1001" || !f.PreserveEnv || f.MachineKey != "/k" || o.Vault != "/v" {
		t.Errorf("settings from OV_* not all read: %+v vault %q", f, o.Vault)
	}
	for _, kv := range o.Env {
		if strings.HasPrefix(kv, "OV_") {
			t.Errorf("ov-init's own setting %q left in the app's environment", kv)
		}
	}
}

func TestParseRewrite(t *testing.T) {
	for _, bad := range []string{"TERM", "TERM:", ":QUIT", "NOPE:QUIT", "TERM:NOPE", "0:TERM", "TERM:65"} {
		if _, _, err := ParseRewrite(bad); err == nil {
			t.Errorf("ParseRewrite(%q) accepted", bad)
		}
	}
	if from, to, err := ParseRewrite("USR1:0"); err != nil || from != 10 || to != 0 {
		t.Errorf("ParseRewrite(USR1:0) = %v %v %v", from, to, err)
	}
}
