// Package account resolves the --user USER[:GROUP] of ov-init against the
// image's /etc/passwd and /etc/group. Numeric ids always work, even in an
// image without those files.
package account

import (
	"fmt"
	"os/user"
	"strconv"
	"strings"
	"syscall"
)

// noID is (uid_t)-1 and (gid_t)-1.
const noID = 1<<32 - 1

// Account is who the app runs as.
type Account struct {
	Credential syscall.Credential
	Home       string // "/" when a numeric user is not in /etc/passwd
}

// Lookup resolves spec: "name", "uid", "name:group", "uid:gid". Without a
// group the user's primary group is used and its supplementary groups come
// from /etc/group; with an explicit group there are no supplementary groups,
// as with docker run --user.
func Lookup(spec string) (*Account, error) {
	name, group, hasGroup := strings.Cut(spec, ":")
	if name == "" || (hasGroup && group == "") {
		return nil, fmt.Errorf("--user %q: want USER[:GROUP], a name or a number each", spec)
	}
	a := &Account{}
	u, err := lookupUser(name)
	switch {
	case err == nil:
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		a.Credential.Uid, a.Credential.Gid = uint32(uid), uint32(gid)
		a.Home = u.HomeDir
		if !hasGroup {
			a.Credential.Groups = supplementary(u)
		}
	case isNumber(name):
		uid, _ := strconv.ParseUint(name, 10, 32)
		a.Credential.Uid, a.Credential.Gid = uint32(uid), uint32(uid)
		a.Home = "/" // as Docker does for a uid that /etc/passwd lacks
	default:
		return nil, fmt.Errorf("--user %q: no user %q in /etc/passwd (use a numeric uid, or add the user to the image)", spec, name)
	}
	if hasGroup {
		gid, err := lookupGroup(group)
		if err != nil {
			return nil, fmt.Errorf("--user %q: %v", spec, err)
		}
		a.Credential.Gid = gid
	}
	// 4294967295 is (uid_t)-1, which setresuid and setresgid read as
	// "leave it as it is": the app would keep running as root.
	if a.Credential.Uid == noID || a.Credential.Gid == noID {
		return nil, fmt.Errorf("--user %q: 4294967295 is not an id (the kernel reads it as \"unchanged\"); use a real uid and gid", spec)
	}
	if a.Credential.Groups == nil {
		// An empty list, not nil: setgroups([]) drops root's own
		// supplementary groups instead of keeping them.
		a.Credential.Groups = []uint32{}
	}
	return a, nil
}

func lookupUser(name string) (*user.User, error) {
	if isNumber(name) {
		return user.LookupId(name)
	}
	return user.Lookup(name)
}

func lookupGroup(group string) (uint32, error) {
	if isNumber(group) {
		gid, err := strconv.ParseUint(group, 10, 32)
		return uint32(gid), err
	}
	g, err := user.LookupGroup(group)
	if err != nil {
		return 0, fmt.Errorf("no group %q in /etc/group (use a numeric gid, or add the group to the image)", group)
	}
	gid, err := strconv.ParseUint(g.Gid, 10, 32)
	return uint32(gid), err
}

func supplementary(u *user.User) []uint32 {
	ids, err := u.GroupIds()
	if err != nil {
		return nil
	}
	var groups []uint32
	for _, id := range ids {
		if gid, err := strconv.ParseUint(id, 10, 32); err == nil {
			groups = append(groups, uint32(gid))
		}
	}
	return groups
}

func isNumber(s string) bool {
	_, err := strconv.ParseUint(s, 10, 32)
	return err == nil
}
