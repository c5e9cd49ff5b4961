package main

// ov remembers, per user and machine, the newest generation it has seen of
// each vault, so that it notices a vault replaced with an older genuine
// copy: a format-2 vault's table_mac binds its generation but stays valid
// forever, and an older copy re-issues the app keys that rotations revoked
// (SPEC.md, "Rollback").
//
// The record is $XDG_STATE_HOME/ov/generations (~/.local/state/ov/generations
// by default), one line per vault:
//
//	<hex of the vault's root_check> <generation>
//
// root_check names a vault: it is public, constant for the vault's life (a
// new master password keeps it) and only the vault's root key matches it, so
// it is compared only once the password has unwrapped that root key.

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/ov-init/ov-init/internal/atomicfile"
	"github.com/ov-init/ov-init/vault"
)

// seenName is the record's path under the state directory.
const seenName = "ov/generations"

// seenFile is the record's path: under $XDG_STATE_HOME when it is an
// absolute path (the XDG base directory specification ignores a relative
// one), else under ~/.local/state. "" when neither is known: then ov keeps
// no record and says nothing.
func seenFile() string {
	if dir := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(dir) {
		return filepath.Join(dir, seenName)
	}
	home, err := os.UserHomeDir()
	if err != nil || !filepath.IsAbs(home) {
		return ""
	}
	return filepath.Join(home, ".local", "state", seenName)
}

// seenID is the record's name for v: the hex of its root_check.
func seenID(v *vault.Vault) string { return hex.EncodeToString(v.RootCheck()) }

// parseSeen reads the record: lines "<64 hex digits> <generation>", blank
// lines ignored. A vault named twice keeps its highest generation. Any
// other line is an error naming its number: a record ov cannot read is not
// silently dropped, since dropping it would silently drop the protection.
func parseSeen(data []byte) (map[string]uint32, error) {
	seen := make(map[string]uint32)
	for i, line := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		id, gen, ok := bytes.Cut(line, []byte(" "))
		n, err := strconv.ParseUint(string(gen), 10, 32)
		if !ok || !validSeenID(id) || err != nil || n < 1 || string(gen) != strconv.FormatUint(n, 10) {
			return nil, fmt.Errorf("line %d is not \"<64 lowercase hex digits> <generation from 1 to %d>\"", i+1, uint32(vault.MaxGeneration))
		}
		seen[string(id)] = max(seen[string(id)], uint32(n))
	}
	return seen, nil
}

func validSeenID(id []byte) bool {
	if len(id) != 64 {
		return false
	}
	for _, c := range id {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// formatSeen writes the record, one line per vault in a fixed order.
func formatSeen(seen map[string]uint32) []byte {
	var b bytes.Buffer
	for _, id := range slices.Sorted(maps.Keys(seen)) {
		fmt.Fprintf(&b, "%s %d\n", id, seen[id])
	}
	return b.Bytes()
}

// readSeen reads the record at path; a missing file is an empty record.
func readSeen(path string) (map[string]uint32, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]uint32{}, nil
	}
	if err != nil {
		return nil, pathErr(err)
	}
	return parseSeen(data)
}

// recordSeen raises id's generation in the record at path to gen, unless it
// is already that or higher. It holds an exclusive lock on the record's
// directory while it reads and rewrites the record, so that two ov at once
// lose neither's line, and rewrites it atomically (mode 0600). The directory is made with mode 0700 when missing.
func recordSeen(path, id string, gen uint32) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return pathErr(err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return pathErr(err)
	}
	defer d.Close()
	if err := unix.Flock(int(d.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("locking %q: %v", dir, err)
	}
	// The lock goes with the descriptor, closed above.
	seen, err := readSeen(path)
	if err != nil {
		return err
	}
	if seen[id] >= gen {
		return nil
	}
	seen[id] = gen
	if err := atomicfile.Write(path, formatSeen(seen), atomicfile.Options{Perm: 0o600}); err != nil {
		return fmt.Errorf("writing %q: %v", path, err)
	}
	return nil
}

// checkSeen refuses v, just unlocked (so its generation is authenticated),
// when ov has seen a newer generation of the same vault on this machine;
// otherwise it records v's generation if it is the newest seen. A format-1
// vault counts as generation 0: ov writes format 2 only, so a format-1 copy
// of a vault ov has seen in format 2 is an older copy too.
func (g *Globals) checkSeen(v *vault.Vault) error {
	path := seenFile()
	if path == "" {
		return nil
	}
	seen, err := readSeen(path)
	if err != nil {
		return fmt.Errorf("cannot read %q, where ov records the newest generation it has seen of each vault: %v; "+
			"nothing was changed: repair the file, or remove it (ov then forgets every vault it has seen)", path, err)
	}
	id, gen := seenID(v), v.Generation()
	if newest := seen[id]; newest > gen {
		what := fmt.Sprintf("generation %d", gen)
		if v.Version() == vault.Version1 {
			what = "format 1 (it has no generation)"
		}
		return fmt.Errorf("vault %q is %s, older than generation %d that ov has already seen of this vault on this machine: "+
			"it was replaced with an older copy, which can undo a revocation (a rolled-back vault re-issues revoked keys); "+
			"nothing was changed: restore the newest copy; if you restored an older copy on purpose, "+
			"remove the line starting with %s from %q", g.Vault, what, newest, id[:16], path)
	}
	if gen > seen[id] {
		g.recordSeen(v)
	}
	return nil
}

// recordSeen records v's generation after a write or an unlock, as the
// newest seen if it is. A failure does not undo what was done: it is said
// in one line, and ov goes on.
func (g *Globals) recordSeen(v *vault.Vault) {
	path := seenFile()
	if path == "" || v.Generation() == 0 {
		return
	}
	if err := recordSeen(path, seenID(v), v.Generation()); err != nil {
		fmt.Fprintf(os.Stderr, "ov: warning: could not record generation %d of vault %q in %q: %v; "+
			"ov will not notice if this vault is replaced with an older copy\n", v.Generation(), g.Vault, path, err)
	}
}
