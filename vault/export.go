package vault

import (
	"errors"
	"fmt"
)

// ErrExport means a vault operation that needs the master password or
// writes the vault was asked of an export, which holds neither the
// password-wrapped root key nor any app but one.
var ErrExport = errors.New("is an export")

// ErrExportFormat1 means Export was asked of a format-1 vault, whose table
// of apps nothing authenticates.
var ErrExportFormat1 = errors.New("the vault is format 1, whose table of apps is not authenticated, " +
	"and an export carries a table MAC: upgrade it first with `ov vault upgrade` (any ov write also upgrades it)")

// ExportError is nil for a vault; for an export, it says what an export is
// and that ov works on the full vault instead: what Unlock and every write
// return, for a caller to say before it asks for a password.
func (v *Vault) ExportError() error {
	if v == nil || v.export == "" {
		return nil
	}
	return v.exportError()
}

// exportError says what an export is and where ov's work happens instead.
func (v *Vault) exportError() error {
	return fmt.Errorf("this file %w of app %q for hosts and images: it holds that app's sealed secrets and grants, "+
		"but no master-password-wrapped root key, so ov cannot unlock or change it; "+
		"run ov on the full vault, then export again (ov vault export --app %s --out FILE)", ErrExport, v.export, v.export)
}

// VerifyExport checks that v is an export of the vault whose root key is
// root, and authenticates its table, its generation included, under root.
func (v *Vault) VerifyExport(root *Root) error {
	if err := v.checkRoot(root); err != nil {
		return err
	}
	if v.export == "" {
		return errors.New("not an export")
	}
	return v.verifyTable(root.key[:])
}

// Exported returns the app of an export, or "" for a vault.
func (v *Vault) Exported() string {
	if v == nil {
		return ""
	}
	return v.export
}

// Export returns what a host or image of app needs and nothing more
// (SPEC.md, "Exports"): app's section as it stands, grants and retired
// keys included, at the vault's generation, under a table MAC of that one
// app computed with root. It has no KDF parameters, salt or wrapped root
// key, so no password opens it and ov cannot write it; a deployment key,
// a legacy app key or the root key of app opens it as it opens the vault.
//
// Export first verifies the vault's table under root, so a section forged
// or rolled back in v is never re-authenticated; a format-1 vault has no
// table and must be upgraded first. Export is not a write: v and its
// generation do not change.
func (v *Vault) Export(root *Root, app string) (*Vault, error) {
	if err := v.checkRoot(root); err != nil {
		return nil, err
	}
	if v.export != "" {
		return nil, v.exportError()
	}
	if v.version != Version {
		return nil, ErrExportFormat1
	}
	if err := v.verifyTable(root.key[:]); err != nil {
		return nil, err
	}
	// The table covers the section's MAC, not its entries: verify them too,
	// so that a host never gets a section that fails there.
	sec, keys, err := v.unlockSection(root, app)
	if err != nil {
		return nil, err
	}
	keys.wipe()
	e := &Vault{
		version:    Version,
		generation: v.generation,
		rootCheck:  v.RootCheck(),
		apps:       map[string]*appSection{app: sec.clone()},
		export:     app,
	}
	if e.tableMAC, err = exportMAC(root.key[:], e.generation, e.apps); err != nil {
		return nil, err
	}
	return e, nil
}
