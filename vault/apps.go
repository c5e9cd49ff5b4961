package vault

import (
	"crypto/hmac"
	"errors"
	"fmt"
	"maps"
	"slices"
)

// Apps returns the names of the vault's apps, sorted.
func (v *Vault) Apps() []string {
	if v == nil {
		return nil
	}
	return slices.Sorted(maps.Keys(v.apps))
}

// HasApp reports whether the vault has app.
func (v *Vault) HasApp(app string) bool {
	if v == nil {
		return false
	}
	_, ok := v.apps[app]
	return ok
}

// Epoch returns app's current epoch: 1 when created, plus one per RotateApp.
func (v *Vault) Epoch(app string) (uint32, error) {
	sec, err := v.section(app)
	if err != nil {
		return 0, err
	}
	return sec.epoch, nil
}

// SecretNames returns the names of app's secrets, sorted. It needs no key and
// verifies nothing.
func (v *Vault) SecretNames(app string) ([]string, error) {
	sec, err := v.section(app)
	if err != nil {
		return nil, err
	}
	return slices.Sorted(maps.Keys(sec.secrets)), nil
}

func (v *Vault) section(app string) (*appSection, error) {
	if err := v.usable(); err != nil {
		return nil, err
	}
	sec, ok := v.apps[app]
	if !ok && v.export != "" {
		return nil, fmt.Errorf("%w %q in this file: it %w of app %q only", ErrNoSuchApp, app, ErrExport, v.export)
	}
	if !ok {
		return nil, fmt.Errorf("%w %q in this vault", ErrNoSuchApp, app)
	}
	return sec, nil
}

// CreateApp adds app, with no secrets, at epoch 1.
func (v *Vault) CreateApp(root *Root, app string) error {
	if err := v.checkRoot(root); err != nil {
		return err
	}
	if err := ValidAppName(app); err != nil {
		return err
	}
	if _, ok := v.apps[app]; ok {
		return fmt.Errorf("app %q %w", app, ErrAppExists)
	}
	tx, err := v.beginWrite(root, true)
	if err != nil {
		return err
	}
	defer tx.close()
	sec, err := newSection(root, app, 1, map[string][]byte{})
	if err != nil {
		return err
	}
	v.apps[app] = sec
	tx.commit()
	return nil
}

// RemoveApp deletes app and all its secrets.
func (v *Vault) RemoveApp(root *Root, app string) error {
	if err := v.checkRoot(root); err != nil {
		return err
	}
	if _, err := v.section(app); err != nil {
		return err
	}
	tx, err := v.beginWrite(root, true)
	if err != nil {
		return err
	}
	defer tx.close()
	delete(v.apps, app)
	tx.commit()
	return nil
}

// newSection builds app's section at epoch from already sealed values,
// computing its check value and MAC.
func newSection(root *Root, app string, epoch uint32, secrets map[string][]byte) (*appSection, error) {
	appKey, err := deriveAppKey(root.key[:], app, epoch)
	if err != nil {
		return nil, err
	}
	defer clear(appKey)
	keys, err := deriveAppKeys(appKey)
	if err != nil {
		return nil, err
	}
	defer keys.wipe()
	return &appSection{
		epoch:   epoch,
		check:   checkValue(keys.check, app, epoch),
		mac:     appMAC(keys.mac, app, epoch, secrets),
		secrets: secrets,

		deployments: map[string]*deployment{},
	}, nil
}

// unlockApp begins a write (it checks root and authenticates the table),
// finds app, derives its keys and verifies its check value and MAC. The
// caller wipes the keys, closes the transaction and commits it once the
// change is made.
func (v *Vault) unlockApp(root *Root, app string) (*writeTx, *appSection, *appKeys, error) {
	tx, err := v.beginWrite(root, true)
	if err != nil {
		return nil, nil, nil, err
	}
	sec, keys, err := v.unlockSection(root, app)
	if err != nil {
		tx.close()
		return nil, nil, nil, err
	}
	return tx, sec, keys, nil
}

// unlockSection finds app, derives its keys under root and verifies its
// check value and MAC. The caller wipes the keys.
func (v *Vault) unlockSection(root *Root, app string) (*appSection, *appKeys, error) {
	sec, err := v.section(app)
	if err != nil {
		return nil, nil, err
	}
	appKey, err := deriveAppKey(root.key[:], app, sec.epoch)
	if err != nil {
		return nil, nil, err
	}
	defer clear(appKey)
	keys, err := deriveAppKeys(appKey)
	if err != nil {
		return nil, nil, err
	}
	if !hmac.Equal(checkValue(keys.check, app, sec.epoch), sec.check) {
		keys.wipe()
		return nil, nil, errCheckAltered(app)
	}
	if err := sec.verifyMAC(app, keys.mac); err != nil {
		keys.wipe()
		return nil, nil, err
	}
	return sec, keys, nil
}

// confirmAppKey checks appKey, which the root key or a grant gave, against
// app's check value; on a mismatch it wipes appKey: the section's epoch or
// check was altered.
func confirmAppKey(appKey []byte, app string, sec *appSection) error {
	c, err := appCheck(appKey, app, sec.epoch)
	if err == nil && !hmac.Equal(c, sec.check) {
		err = errCheckAltered(app)
	}
	if err != nil {
		clear(appKey)
	}
	return err
}

func errCheckAltered(app string) error {
	return fmt.Errorf("%w: app %q: its check value does not match the vault's root key (its epoch or check was altered)", ErrTampered, app)
}

func (sec *appSection) verifyMAC(app string, macKey []byte) error {
	if !hmac.Equal(appMAC(macKey, app, sec.epoch, sec.secrets), sec.mac) {
		return fmt.Errorf("%w: app %q: its mac does not match its entries (an entry was added, removed, swapped or altered)", ErrTampered, app)
	}
	return nil
}

// openValue decrypts app's secret name. Every failure to authenticate is ErrDecrypt.
func (sec *appSection) openValue(app, name string, valueKey []byte) ([]byte, error) {
	pt, err := open(valueKey, sec.secrets[name], valueAAD(app, sec.epoch, name))
	if errors.Is(err, errOpen) {
		return nil, fmt.Errorf("secret %q of app %q: %w", name, app, ErrDecrypt)
	}
	if err != nil {
		return nil, fmt.Errorf("secret %q of app %q: %w", name, app, err)
	}
	if err := validValue(name, pt); err != nil {
		clear(pt)
		return nil, err
	}
	return pt, nil
}

// RotateApp moves app to the next epoch: every value is re-sealed under the
// new app key, with a new check value and MAC, and the new app key is
// wrapped for every deployment (their keys do not change). Every legacy app
// key derived for app before stops opening it (a root key and the
// deployment keys keep working). On error the vault is unchanged.
func (v *Vault) RotateApp(root *Root, app string) error {
	return v.rotate(root, app, nil)
}

// rotate moves app to the next epoch after change (when not nil) has
// changed a copy of its section (its deployments), re-seals every value,
// computes the check and MAC, and wraps the new app key for every
// deployment. On error the vault is unchanged.
func (v *Vault) rotate(root *Root, app string, change func(sec *appSection, now string) error) error {
	tx, sec, keys, err := v.unlockApp(root, app)
	if err != nil {
		return err
	}
	defer tx.close()
	defer keys.wipe()
	if sec.epoch >= MaxEpoch {
		return fmt.Errorf("app %q is at the last epoch %d and cannot be rotated; create a new app", app, sec.epoch)
	}
	next := sec.clone()
	next.epoch = sec.epoch + 1
	if change != nil {
		if err := change(next, today()); err != nil {
			return err
		}
	}
	appKey, err := deriveAppKey(root.key[:], app, next.epoch)
	if err != nil {
		return err
	}
	defer clear(appKey)
	nextKeys, err := deriveAppKeys(appKey)
	if err != nil {
		return err
	}
	defer nextKeys.wipe()
	secrets := make(map[string][]byte, len(sec.secrets))
	for _, name := range slices.Sorted(maps.Keys(sec.secrets)) { // sorted: nonces are drawn in a fixed order
		pt, err := sec.openValue(app, name, keys.value)
		if err != nil {
			return err
		}
		secrets[name], err = seal(nextKeys.value, pt, valueAAD(app, next.epoch, name))
		clear(pt)
		if err != nil {
			return fmt.Errorf("sealing secret %q of app %q: %w", name, app, err)
		}
	}
	next.secrets = secrets
	next.check = checkValue(nextKeys.check, app, next.epoch)
	next.mac = appMAC(nextKeys.mac, app, next.epoch, secrets)
	if err := regrant(root, app, next, appKey); err != nil {
		return err
	}
	v.apps[app] = next
	tx.commit()
	return nil
}

// changeEntries replaces app's entries with secrets in a copy of sec,
// computes its MAC and re-seals its grants over it, then puts the copy in
// place. On error the vault is unchanged.
func (v *Vault) changeEntries(root *Root, app string, sec *appSection, keys *appKeys, secrets map[string][]byte) error {
	next := sec.clone()
	next.secrets = secrets
	next.mac = appMAC(keys.mac, app, next.epoch, secrets)
	if len(next.deployments) > 0 {
		appKey, err := deriveAppKey(root.key[:], app, next.epoch)
		if err != nil {
			return err
		}
		defer clear(appKey)
		if err := regrant(root, app, next, appKey); err != nil {
			return err
		}
	}
	v.apps[app] = next
	return nil
}

// SetSecret seals value as app's secret name, replacing any value it had.
// It verifies the table and app's MAC first, so a tampered section is never
// re-MACed. A reserved name (ReservedName: PATH, LD_*, …) is refused with
// ErrReservedName. value stays the caller's.
func (v *Vault) SetSecret(root *Root, app, name string, value []byte) error {
	if err := ValidSecretName(name); err != nil {
		return err
	}
	if err := ReservedName(name); err != nil {
		return err
	}
	if err := validValue(name, value); err != nil {
		return err
	}
	tx, sec, keys, err := v.unlockApp(root, app)
	if err != nil {
		return err
	}
	defer tx.close()
	defer keys.wipe()
	sealed, err := seal(keys.value, value, valueAAD(app, sec.epoch, name))
	if err != nil {
		return fmt.Errorf("sealing secret %q of app %q: %w", name, app, err)
	}
	secrets := maps.Clone(sec.secrets)
	secrets[name] = sealed
	if err := v.changeEntries(root, app, sec, keys, secrets); err != nil {
		return err
	}
	tx.commit()
	return nil
}

// RemoveSecret deletes app's secret name. It verifies the table and app's
// MAC first.
func (v *Vault) RemoveSecret(root *Root, app, name string) error {
	tx, sec, keys, err := v.unlockApp(root, app)
	if err != nil {
		return err
	}
	defer tx.close()
	defer keys.wipe()
	if _, ok := sec.secrets[name]; !ok {
		return fmt.Errorf("%w %q in app %q", ErrNoSuchSecret, name, app)
	}
	secrets := maps.Clone(sec.secrets)
	delete(secrets, name)
	if err := v.changeEntries(root, app, sec, keys, secrets); err != nil {
		return err
	}
	tx.commit()
	return nil
}

// AppKey returns the current app key of app: the scoped machine key that
// opens app, at its current epoch, and nothing else. In format 2 it
// verifies the table first, so the epoch is the one the root key's holder
// wrote. The caller wipes it.
func (v *Vault) AppKey(root *Root, app string) ([]byte, error) {
	if err := v.checkRoot(root); err != nil {
		return nil, err
	}
	if v.version == Version {
		if err := v.verifyTable(root.key[:]); err != nil {
			return nil, err
		}
	}
	sec, err := v.section(app)
	if err != nil {
		return nil, err
	}
	return deriveAppKey(root.key[:], app, sec.epoch)
}

// Open decrypts app's secrets with machineKey, which is either the vault's
// root key or app's current app key; app's check value tells which. It
// verifies app's MAC, then opens the secrets called names (all of them when
// names is nil; none when it is empty but not nil) and returns them sorted by
// name. The caller wipes them (WipeAll).
//
// With the root key, the vault's table of apps is verified first (format 2),
// and a format-1 vault is refused with ErrUnauthenticatedTable: its table is
// not authenticated, so a section forged with an earlier app key could not be
// told apart.
//
// Errors, told apart with errors.Is and errors.As: ErrNoSuchApp;
// *WrongAppError when machineKey is the app key of another app of this vault;
// ErrWrongKey when it opens neither app nor the vault (derived for another
// vault, or before the app was rotated); ErrTampered when the table of apps,
// app's check value or MAC does not match; ErrUnauthenticatedTable; ErrDecrypt
// when a value fails to authenticate; ErrNoSuchSecret when a name asked for is
// absent. Nothing is returned unless every secret asked for opened.
func (v *Vault) Open(app string, machineKey []byte, names []string) ([]Secret, error) {
	sec, keys, _, err := v.verified(app, machineKey)
	if err != nil {
		return nil, err
	}
	defer keys.wipe()
	if names == nil {
		names = slices.Sorted(maps.Keys(sec.secrets))
	} else {
		names = slices.Clone(names)
		slices.Sort(names)
		names = slices.Compact(names)
	}
	for _, name := range names {
		if _, ok := sec.secrets[name]; !ok {
			return nil, fmt.Errorf("%w %q in app %q", ErrNoSuchSecret, name, app)
		}
	}
	out := make([]Secret, 0, len(names))
	for _, name := range names {
		pt, err := sec.openValue(app, name, keys.value)
		if err != nil {
			WipeAll(out)
			return nil, err
		}
		out = append(out, Secret{Name: name, Value: pt})
	}
	return out, nil
}

// scoped reports whether machineKey is a key scoped to app (an app or deployment key: true) or the
// vault's root key (false). It verifies app's MAC too and returns Open's
// errors.
func (v *Vault) scoped(app string, machineKey []byte) (bool, error) {
	_, keys, scoped, err := v.verified(app, machineKey)
	if err != nil {
		return false, err
	}
	keys.wipe()
	return scoped, nil
}

// verified identifies machineKey for app, derives app's keys and verifies
// app's MAC. The caller wipes the keys.
func (v *Vault) verified(app string, machineKey []byte) (*appSection, *appKeys, bool, error) {
	sec, appKey, scoped, err := v.identify(app, machineKey)
	if err != nil {
		return nil, nil, false, err
	}
	defer clear(appKey)
	keys, err := deriveAppKeys(appKey)
	if err != nil {
		return nil, nil, false, err
	}
	if err := sec.verifyMAC(app, keys.mac); err != nil {
		keys.wipe()
		return nil, nil, false, err
	}
	return sec, keys, scoped, nil
}

// identify decides by check values whether machineKey is the vault's root
// key or app's app key, and returns app's section and app key (a copy the
// caller wipes). The root key is recognised by root_check, before anything
// in app's section is trusted: a section proves nothing to the root key's
// holder (a holder of an earlier app key can build a consistent one), so
// the table MAC is verified first, and a format-1 vault, which has none, is
// refused.
func (v *Vault) identify(app string, machineKey []byte) (sec *appSection, appKey []byte, scoped bool, err error) {
	if len(machineKey) != KeySize {
		return nil, nil, false, fmt.Errorf("machine key must be exactly %d bytes", KeySize)
	}
	if err := v.usable(); err != nil {
		return nil, nil, false, err
	}
	// Is it the root key?
	rc, err := rootCheckValue(machineKey)
	if err != nil {
		return nil, nil, false, err
	}
	if hmac.Equal(rc, v.rootCheck) {
		if err := v.verifyTable(machineKey); err != nil { // ErrUnauthenticatedTable in format 1
			return nil, nil, false, err
		}
		if sec, err = v.section(app); err != nil {
			return nil, nil, false, err
		}
		if appKey, err = deriveAppKey(machineKey, app, sec.epoch); err != nil {
			return nil, nil, false, err
		}
		if err := confirmAppKey(appKey, app, sec); err != nil {
			return nil, nil, false, err
		}
		return sec, appKey, false, nil
	}
	if sec, err = v.section(app); err != nil {
		return nil, nil, false, err
	}
	// Is it the key of one of app's deployments? Every grant check is
	// computed and compared, whichever matches.
	gck, err := hkdfKey(machineKey, infoGrantCheckKey)
	if err != nil {
		return nil, nil, false, err
	}
	defer clear(gck)
	if dep := matchGrant(gck, app, sec, slices.Sorted(maps.Keys(sec.deployments))); dep != "" {
		d := sec.deployments[dep]
		appKey, err := openGrant(machineKey, d.grant, app, dep, d.generation, sec.epoch, sec.mac)
		if errors.Is(err, errOpen) {
			return nil, nil, false, fmt.Errorf("%w: app %q: the grant of deployment %q does not open "+
				"(a grant from another epoch or for another section: replayed, moved or altered)", ErrTampered, app, dep)
		}
		if err != nil {
			return nil, nil, false, err
		}
		if err := confirmAppKey(appKey, app, sec); err != nil {
			return nil, nil, false, err
		}
		return sec, appKey, true, nil
	}
	// Is it the legacy app key (format 1's scoped key, or --app before
	// deployments)? Its check pins app and epoch.
	c, err := appCheck(machineKey, app, sec.epoch)
	if err != nil {
		return nil, nil, false, err
	}
	if hmac.Equal(c, sec.check) {
		return sec, slices.Clone(machineKey), true, nil
	}
	// Neither. Say why as precisely as the check values allow: a retired
	// key of app, then a key of another app.
	if i := matchRetired(gck, app, sec); i >= 0 {
		r := sec.retired[i]
		return nil, nil, false, &RetiredKeyError{App: app, Deployment: r.deployment, Generation: r.generation, Date: r.date, Reason: r.reason}
	}
	for _, other := range v.Apps() {
		if other == app {
			continue
		}
		osec := v.apps[other]
		if dep := matchGrant(gck, other, osec, slices.Sorted(maps.Keys(osec.deployments))); dep != "" {
			return nil, nil, false, &WrongAppError{KeyApp: other, KeyDeployment: dep, WantApp: app}
		}
		if i := matchRetired(gck, other, osec); i >= 0 {
			return nil, nil, false, &WrongAppError{KeyApp: other, KeyDeployment: osec.retired[i].deployment, WantApp: app}
		}
		c, err := appCheck(machineKey, other, osec.epoch)
		if err != nil {
			return nil, nil, false, err
		}
		if hmac.Equal(c, osec.check) {
			return nil, nil, false, &WrongAppError{KeyApp: other, WantApp: app}
		}
	}
	if v.export != "" {
		// A key granted or rotated after the export was made is the likely
		// cause on a host: say so, so that nobody derives another key.
		return nil, nil, false, fmt.Errorf("%w: it is neither the root key of this vault, nor the key of a deployment of app %q in this file, "+
			"nor a retired one; this file %w of app %q made at generation %d: a deployment granted or rotated after that is not in it", ErrWrongKey, app, ErrExport, v.export, v.generation)
	}
	return nil, nil, false, fmt.Errorf("%w: it is neither the root key of this vault, nor the key of a deployment of app %q, "+
		"nor a retired one (a key of another vault, or a key from before \"ov app rotate %s\" or before the vault was restored from an older copy?)", ErrWrongKey, app, app)
}
