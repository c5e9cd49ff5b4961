package account

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// Lookup reads the fixed files /etc/passwd and /etc/group (through
// os/user). The tests give it their own: a child of the test binary, in a
// mount namespace of its own, sees the files below bind-mounted over the
// real ones, looks up each spec and reports.
const (
	etcEnv   = "ACCOUNT_TEST_ETC"   // the directory holding the child's passwd and group
	specsEnv = "ACCOUNT_TEST_SPECS" // the specs it looks up, one a line
)

const passwd = `root:x:0:0:root:/root:/bin/sh
web:x:1001:1002:Web App:/home/web:/bin/sh
solo:x:1003:1003::/home/solo:/bin/sh
1234:x:4321:4321:a name that is a number:/home/1234:/bin/sh
`

const group = `root:x:0:
webgrp:x:1002:
audio:x:29:web,other
video:x:44:web
staff:x:50:other
solo:x:1003:
`

// result is what the child reports of one Lookup.
type result struct {
	Spec      string
	Uid, Gid  uint32
	Groups    []uint32
	GroupsNil bool // nil rather than empty: setgroups would then keep root's groups
	Home      string
	Err       string
}

func TestMain(m *testing.M) {
	if dir := os.Getenv(etcEnv); dir != "" {
		os.Exit(lookupChild(dir))
	}
	os.Exit(m.Run())
}

// lookupChild bind-mounts dir/passwd and dir/group over /etc's in this
// process's own mount namespace, then prints one JSON result a spec.
func lookupChild(dir string) int {
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		fmt.Println("making / private:", err)
		return 1
	}
	for _, name := range []string{"passwd", "group"} {
		if err := syscall.Mount(filepath.Join(dir, name), "/etc/"+name, "", syscall.MS_BIND, ""); err != nil {
			fmt.Printf("bind-mounting %s: %v\n", name, err)
			return 1
		}
	}
	enc := json.NewEncoder(os.Stdout)
	for spec := range strings.SplitSeq(os.Getenv(specsEnv), "\n") {
		r := result{Spec: spec}
		a, err := Lookup(spec)
		if err != nil {
			r.Err = err.Error()
		} else {
			r.Uid, r.Gid, r.Home = a.Credential.Uid, a.Credential.Gid, a.Home
			r.Groups, r.GroupsNil = a.Credential.Groups, a.Credential.Groups == nil
		}
		enc.Encode(r)
	}
	return 0
}

// lookupIn looks up each spec against the passwd and group files above and
// returns the results by spec.
func lookupIn(t *testing.T, specs ...string) map[string]result {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_SYS_ADMIN) for a mount namespace that shows its own /etc/passwd and /etc/group")
	}
	dir := t.TempDir()
	for name, content := range map[string]string{"passwd": passwd, "group": group} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), etcEnv+"="+dir, specsEnv+"="+strings.Join(specs, "\n"))
	// unshare(2) after the fork rather than clone(2) flags: qemu-user
	// (make test-arm64) refuses namespace flags to clone but passes
	// unshare through; the child is in a mount namespace of its own either
	// way.
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("lookup child: %v\n%s", err, out)
	}
	got := map[string]result{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var r result
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("lookup child said %q: %v", out, err)
		}
		got[r.Spec] = r
	}
	if len(got) != len(specs) {
		t.Fatalf("lookup child reported %d of %d specs:\n%s", len(got), len(specs), out)
	}
	return got
}

func TestLookup(t *testing.T) {
	cases := []struct {
		spec   string
		uid    uint32
		gid    uint32
		groups []uint32 // in any order
		home   string
	}{
		// A name: its uid, primary group and home from passwd, its
		// supplementary groups from group (which lists the primary too,
		// as initgroups(3) does).
		{"web", 1001, 1002, []uint32{29, 44, 1002}, "/home/web"},
		{"solo", 1003, 1003, []uint32{1003}, "/home/solo"},
		// A uid in passwd is that user.
		{"1001", 1001, 1002, []uint32{29, 44, 1002}, "/home/web"},
		// A uid not in passwd: its own number as gid, home "/", no
		// supplementary groups (as Docker does).
		{"4242", 4242, 4242, nil, "/"},
		// A number is always a uid, never a name, even where passwd has a
		// user by that name (uid 4321 here).
		{"1234", 1234, 1234, nil, "/"},
		{"0", 0, 0, []uint32{0}, "/root"},
		// An explicit group, by name or number, replaces the primary
		// group and drops the supplementary ones (docker run --user).
		{"web:audio", 1001, 29, nil, "/home/web"},
		{"web:50", 1001, 50, nil, "/home/web"},
		{"web:7777", 1001, 7777, nil, "/home/web"}, // a gid need not be in group
		{"1001:staff", 1001, 50, nil, "/home/web"},
		{"4242:video", 4242, 44, nil, "/"},
		{"4242:4243", 4242, 4243, nil, "/"},
	}
	var specs []string
	for _, c := range cases {
		specs = append(specs, c.spec)
	}
	got := lookupIn(t, specs...)
	for _, c := range cases {
		r := got[c.spec]
		if r.Err != "" {
			t.Errorf("Lookup(%q): %s", c.spec, r.Err)
			continue
		}
		groups := slices.Sorted(slices.Values(r.Groups))
		want := slices.Sorted(slices.Values(c.groups))
		if r.Uid != c.uid || r.Gid != c.gid || r.Home != c.home || !slices.Equal(groups, want) {
			t.Errorf("Lookup(%q) = uid %d, gid %d, groups %v, home %q; want %d, %d, %v, %q",
				c.spec, r.Uid, r.Gid, r.Groups, r.Home, c.uid, c.gid, c.groups, c.home)
		}
		// No supplementary groups must be an empty list, which drops
		// root's own; nil would keep them.
		if r.GroupsNil {
			t.Errorf("Lookup(%q): Groups is nil, want a list (empty when there are none)", c.spec)
		}
	}
}

func TestLookupRefusesUnknownNames(t *testing.T) {
	cases := map[string]string{
		"nosuchuser":       `--user "nosuchuser": no user "nosuchuser" in /etc/passwd (use a numeric uid, or add the user to the image)`,
		"nosuchuser:audio": `--user "nosuchuser:audio": no user "nosuchuser" in /etc/passwd (use a numeric uid, or add the user to the image)`,
		"web:nosuchgroup":  `--user "web:nosuchgroup": no group "nosuchgroup" in /etc/group (use a numeric gid, or add the group to the image)`,
		"4242:nosuchgroup": `--user "4242:nosuchgroup": no group "nosuchgroup" in /etc/group (use a numeric gid, or add the group to the image)`,
		// A group by a user's name is no group.
		"web:web": `--user "web:web": no group "web" in /etc/group (use a numeric gid, or add the group to the image)`,
	}
	got := lookupIn(t, slices.Sorted(func(yield func(string) bool) {
		for spec := range cases {
			if !yield(spec) {
				return
			}
		}
	})...)
	for spec, want := range cases {
		if r := got[spec]; r.Err != want {
			t.Errorf("Lookup(%q): error %q, want %q (result %+v)", spec, r.Err, want, r)
		}
	}
}

// Malformed specs are refused before any file is read: no child needed.
func TestLookupRefusesMalformedSpecs(t *testing.T) {
	for _, spec := range []string{"", ":", ":0", "0:", "web:", ":audio"} {
		a, err := Lookup(spec)
		want := fmt.Sprintf("--user %q: want USER[:GROUP], a name or a number each", spec)
		if err == nil || err.Error() != want {
			t.Errorf("Lookup(%q) = %+v, %v; want error %q", spec, a, err, want)
		}
	}
}

// The files the child reads are the test's: a control that the bind
// mounts took effect, so that the results above are Lookup's reading of
// those files and not of the host's (which lacks web, and has users the
// test's passwd lacks).
func TestLookupReadsTheTestsFiles(t *testing.T) {
	host, err := os.ReadFile("/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	other := ""
	for line := range strings.SplitSeq(string(host), "\n") {
		name, _, _ := strings.Cut(line, ":")
		if name != "" && !strings.Contains(passwd, "\n"+name+":") && !strings.HasPrefix(passwd, name+":") {
			other = name
			break
		}
	}
	if other == "" {
		t.Fatal("the host's /etc/passwd has no user the test's lacks: this control cannot tell the files apart")
	}
	got := lookupIn(t, "web", other)
	if got["web"].Err != "" {
		t.Errorf("the child does not see the test's passwd: web: %s", got["web"].Err)
	}
	if got[other].Err == "" {
		t.Errorf("the child sees the host's user %s = %+v", other, got[other])
	}
}

// (uid_t)-1 would make setresuid leave the uid as it is: root. It is
// refused, as a user and as a group; the largest real id is accepted.
func TestLookupRefusesTheIdThatMeansUnchanged(t *testing.T) {
	for _, spec := range []string{"4294967295", "1000:4294967295", "4294967295:1000"} {
		if a, err := Lookup(spec); err == nil || !strings.Contains(err.Error(), "is not an id") {
			t.Errorf("Lookup(%q) = %+v, %v; want it refused", spec, a, err)
		}
	}
	if a, err := Lookup("4294967294:4294967294"); err != nil || a.Credential.Uid != 4294967294 {
		t.Errorf("Lookup of the largest real id = %+v, %v", a, err)
	}
}
