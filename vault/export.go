package vault

import (
	"errors"
	"fmt"
)

// ErrExport means a vault operation that needs the master password or
// writes the vault was asked of an export, which holds neither the
// password-wrapped root key nor any app but one.
var ErrExport = errors.New("is an export")

// exportError says what an export is and where ov's work happens instead.
func (v *Vault) exportError() error {
	return fmt.Errorf("this file %w of app %q for hosts and images: it holds that app's sealed secrets and grants, "+
		"but no master-password-wrapped root key, so ov cannot unlock or change it; "+
		"run ov on the full vault, then export again (ov vault export --app %s --out FILE)", ErrExport, v.export, v.export)
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
		return nil, fmt.Errorf("%w; export needs format 2: upgrade the vault first with `ov vault upgrade`", ErrUnauthenticatedTable)
	}
	if err := v.verifyTable(root.key[:]); err != nil {
		return nil, err
	}
	sec, err := v.section(app)
	if err != nil {
		return nil, err
	}
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
