package vault

// Per-deployment machine keys (format 2, SPEC.md sections 2, 3 and 5).
//
// Each deployment of an app has its own key D, derived from the root key,
// the app, the deployment's name and its generation. The app's section holds
// one grant per deployment: the app's current key A sealed under a key
// derived from D, bound by its AAD to the app, the deployment, its
// generation, the app's epoch and the section's MAC, and a check value that
// lets a reader recognise D without trying every grant. Revoking a
// deployment drops its grant and moves the app to a new epoch, re-sealing A
// for the others: their D does not change.

import (
	"crypto/hmac"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"
)

const (
	// DefaultDeployment is the deployment a key derived without a
	// deployment name belongs to.
	DefaultDeployment = "default"

	// MaxRetired bounds the retired grants an app remembers; the oldest
	// are dropped first.
	MaxRetired = 1000

	// ReasonRevoked and ReasonRotated are why a grant was retired.
	ReasonRevoked = "revoked"
	ReasonRotated = "rotated"

	// sealedGrantSize is nonce || sealed app key || tag.
	sealedGrantSize = sealedRootSize

	// dateLayout is RFC 3339 in UTC to the second.
	dateLayout = "2006-01-02T15:04:05Z"

	infoDeploymentKey = "ov/v2/deployment/"
	infoGrantCheckKey = "ov/v2/grant-check-key"
	infoGrantWrapKey  = "ov/v2/grant-wrap-key"
	msgGrantCheck     = "ov/v2/grant-check/"
	labelGrantAAD     = "ov/v2/grant"
)

// clock gives the dates written in grants. Tests replace it.
var clock = time.Now

func today() string { return clock().UTC().Format(dateLayout) }

// validDate reports whether s is a date as writers write it.
func validDate(s string) bool {
	t, err := time.Parse(dateLayout, s)
	return err == nil && t.UTC().Format(dateLayout) == s
}

// Errors of a machine key that was a deployment's key once.
var (
	// ErrRevokedDeployment: the key's deployment was revoked.
	ErrRevokedDeployment = errors.New("machine key of a revoked deployment")
	// ErrRotatedDeployment: the key's deployment was rotated to a newer
	// generation; the key is superseded.
	ErrRotatedDeployment = errors.New("machine key of a rotated deployment")
)

// RetiredKeyError is returned by Open when the machine key is a retired
// deployment key of the app asked for. errors.Is matches
// ErrRevokedDeployment or ErrRotatedDeployment.
type RetiredKeyError struct {
	App, Deployment string
	Generation      uint32 // the key's
	Date            string // when it was retired, RFC 3339 UTC
	Reason          string // ReasonRevoked or ReasonRotated
}

func (e *RetiredKeyError) Error() string {
	if e.Reason == ReasonRotated {
		return fmt.Sprintf("machine key of deployment %q of app %q (generation %d) was replaced by a newer key on %s",
			e.Deployment, e.App, e.Generation, e.Date)
	}
	return fmt.Sprintf("machine key of deployment %q of app %q (generation %d) was revoked on %s",
		e.Deployment, e.App, e.Generation, e.Date)
}

func (e *RetiredKeyError) Unwrap() error {
	if e.Reason == ReasonRotated {
		return ErrRotatedDeployment
	}
	return ErrRevokedDeployment
}

// deployment is one deployment's grant as stored.
type deployment struct {
	generation       uint32
	created, rotated string
	check            []byte // macSize
	grant            []byte // sealedGrantSize
}

// retiredGrant is a grant that was revoked or rotated away, remembered so
// that its key is refused with the reason.
type retiredGrant struct {
	deployment string
	generation uint32
	check      []byte
	date       string
	reason     string
}

// Deployment describes one deployment of an app (no key material).
type Deployment struct {
	Name       string
	Generation uint32
	Created    string // RFC 3339 UTC
	Rotated    string // RFC 3339 UTC: when its current generation was made
}

// Retired describes a retired deployment key (no key material).
type Retired struct {
	Deployment string
	Generation uint32
	Date       string
	Reason     string
}

// deriveDeploymentKey returns the key of deployment dep of app at
// generation gen under root.
func deriveDeploymentKey(root []byte, app, dep string, gen uint32) ([]byte, error) {
	return hkdfKey(root, infoDeploymentKey+app+"/"+dep+"/"+strconv.FormatUint(uint64(gen), 10))
}

// grantCheckValue is the check of a grant under its grant check key.
func grantCheckValue(checkKey []byte, app, dep string, gen uint32) []byte {
	return hmacSHA256(checkKey, []byte(msgGrantCheck+app+"/"+dep+"/"+strconv.FormatUint(uint64(gen), 10)))
}

// grantCheck is the check of deployment dep of app at gen when depKey is its key.
func grantCheck(depKey []byte, app, dep string, gen uint32) ([]byte, error) {
	k, err := hkdfKey(depKey, infoGrantCheckKey)
	if err != nil {
		return nil, err
	}
	defer clear(k)
	return grantCheckValue(k, app, dep, gen), nil
}

// grantAAD binds a grant to its app, deployment, generation, the app's
// epoch and the app's section MAC.
func grantAAD(app, dep string, gen, epoch uint32, mac []byte) []byte {
	b := appendField(nil, []byte(labelGrantAAD))
	b = binary.BigEndian.AppendUint32(b, Version)
	b = appendField(b, []byte(app))
	b = appendField(b, []byte(dep))
	b = binary.BigEndian.AppendUint32(b, gen)
	b = binary.BigEndian.AppendUint32(b, epoch)
	return appendField(b, mac)
}

// sealGrant wraps appKey for deployment dep (key depKey) of app.
func sealGrant(depKey, appKey []byte, app, dep string, gen, epoch uint32, mac []byte) ([]byte, error) {
	wk, err := hkdfKey(depKey, infoGrantWrapKey)
	if err != nil {
		return nil, err
	}
	defer clear(wk)
	return seal(wk, appKey, grantAAD(app, dep, gen, epoch, mac))
}

// openGrant unwraps the app key from a grant. Any failure is errOpen.
func openGrant(depKey, grant []byte, app, dep string, gen, epoch uint32, mac []byte) ([]byte, error) {
	wk, err := hkdfKey(depKey, infoGrantWrapKey)
	if err != nil {
		return nil, err
	}
	defer clear(wk)
	pt, err := open(wk, grant, grantAAD(app, dep, gen, epoch, mac))
	if err == nil && len(pt) != KeySize {
		clear(pt)
		return nil, errOpen
	}
	return pt, err
}

// regrant re-seals app's key for every deployment of sec, at sec's epoch
// and over sec's MAC (fresh nonces, deployments in name order). Every
// change to a section calls it, once its epoch and MAC are final.
func regrant(root *Root, app string, sec *appSection, appKey []byte) error {
	for _, name := range slices.Sorted(maps.Keys(sec.deployments)) {
		d := sec.deployments[name]
		dk, err := deriveDeploymentKey(root.key[:], app, name, d.generation)
		if err != nil {
			return err
		}
		g, err := sealGrant(dk, appKey, app, name, d.generation, sec.epoch, sec.mac)
		clear(dk)
		if err != nil {
			return fmt.Errorf("sealing the grant of deployment %q of app %q: %w", name, app, err)
		}
		d.grant = g
	}
	return nil
}

// Deployments returns app's deployments, sorted by name. It needs no key
// and verifies nothing: Unlock first for an authenticated list.
func (v *Vault) Deployments(app string) ([]Deployment, error) {
	sec, err := v.section(app)
	if err != nil {
		return nil, err
	}
	var out []Deployment
	for _, name := range slices.Sorted(maps.Keys(sec.deployments)) {
		d := sec.deployments[name]
		out = append(out, Deployment{Name: name, Generation: d.generation, Created: d.created, Rotated: d.rotated})
	}
	return out, nil
}

// RetiredKeys returns app's retired deployment keys, oldest first. It needs
// no key and verifies nothing.
func (v *Vault) RetiredKeys(app string) ([]Retired, error) {
	sec, err := v.section(app)
	if err != nil {
		return nil, err
	}
	out := make([]Retired, 0, len(sec.retired))
	for _, r := range sec.retired {
		out = append(out, Retired{Deployment: r.deployment, Generation: r.generation, Date: r.date, Reason: r.reason})
	}
	return out, nil
}

func (sec *appSection) retire(dep string, d *deployment, reason string) {
	sec.retired = append(sec.retired, retiredGrant{deployment: dep, generation: d.generation, check: d.check, date: today(), reason: reason})
	if n := len(sec.retired) - MaxRetired; n > 0 {
		sec.retired = slices.Clone(sec.retired[n:])
	}
}

// HasDeployment reports whether app has deployment dep (unauthenticated).
func (v *Vault) HasDeployment(app, dep string) bool {
	sec, err := v.section(app)
	if err != nil {
		return false
	}
	_, ok := sec.deployments[dep]
	return ok
}

// DeploymentKey returns the machine key of deployment dep of app at its
// current generation. When app has no such deployment it grants one, at
// the app's current epoch as its generation, which is a write: created says
// so, and the caller saves the vault. Deriving an
// existing deployment changes nothing and returns the same bytes each time.
// The caller wipes the key.
func (v *Vault) DeploymentKey(root *Root, app, dep string) (key []byte, created bool, err error) {
	if err := ValidDeploymentName(dep); err != nil {
		return nil, false, err
	}
	if err := v.checkRoot(root); err != nil {
		return nil, false, err
	}
	if v.version == Version {
		if err := v.verifyTable(root.key[:]); err != nil {
			return nil, false, err
		}
	}
	sec, err := v.section(app)
	if err != nil {
		return nil, false, err
	}
	if d, ok := sec.deployments[dep]; ok && v.version == Version {
		k, err := deriveDeploymentKey(root.key[:], app, dep, d.generation)
		return k, false, err
	}
	tx, sec, keys, err := v.unlockApp(root, app)
	if err != nil {
		return nil, false, err
	}
	defer tx.close()
	keys.wipe()
	if d, ok := sec.deployments[dep]; ok { // a format-1 vault has none; be sure
		k, err := deriveDeploymentKey(root.key[:], app, dep, d.generation)
		return k, false, err
	}
	// The generation is the app's epoch: epochs only grow and every revoke
	// and rotation moves the app to a new one, so a name granted again
	// after a revoke gets a generation above any key it had, whatever the
	// retired list still remembers.
	gen := sec.epoch
	now := today()
	if err := v.grant(root, app, sec, dep, gen, now); err != nil {
		return nil, false, err
	}
	tx.commit()
	k, err := deriveDeploymentKey(root.key[:], app, dep, gen)
	return k, true, err
}

// grant adds (or replaces) deployment dep of app at gen and seals its grant.
func (v *Vault) grant(root *Root, app string, sec *appSection, dep string, gen uint32, now string) error {
	dk, err := deriveDeploymentKey(root.key[:], app, dep, gen)
	if err != nil {
		return err
	}
	defer clear(dk)
	c, err := grantCheck(dk, app, dep, gen)
	if err != nil {
		return err
	}
	created := now
	if old, ok := sec.deployments[dep]; ok {
		created = old.created
	}
	appKey, err := deriveAppKey(root.key[:], app, sec.epoch)
	if err != nil {
		return err
	}
	defer clear(appKey)
	g, err := sealGrant(dk, appKey, app, dep, gen, sec.epoch, sec.mac)
	if err != nil {
		return err
	}
	if sec.deployments == nil {
		sec.deployments = map[string]*deployment{}
	}
	sec.deployments[dep] = &deployment{generation: gen, created: created, rotated: now, check: c, grant: g}
	return nil
}

// RevokeDeployment drops deployment dep's grant from app (remembered as
// revoked) and moves app to a new epoch, re-sealing its values and
// re-wrapping the new app key for every remaining deployment: their keys do
// not change; the revoked key opens no copy of the vault written from now
// on. Legacy app keys (format-1 scoped keys) stop too.
func (v *Vault) RevokeDeployment(root *Root, app, dep string) error {
	sec, err := v.section(app)
	if err != nil {
		return err
	}
	if _, ok := sec.deployments[dep]; !ok {
		return fmt.Errorf("app %q has no deployment %q", app, dep)
	}
	return v.rotate(root, app, func(sec *appSection, now string) error {
		sec.deployments = maps.Clone(sec.deployments)
		sec.retire(dep, sec.deployments[dep], ReasonRevoked)
		delete(sec.deployments, dep)
		return nil
	})
}

// RotateDeployment moves app to a new epoch, as RevokeDeployment does, and
// gives deployment dep of app a new key whose generation is that new epoch
// (the old key is remembered as rotated), so that the old key, which could unwrap
// the app key of its epoch, opens nothing written from now on. It returns
// the new key; the caller wipes it.
func (v *Vault) RotateDeployment(root *Root, app, dep string) ([]byte, error) {
	sec, err := v.section(app)
	if err != nil {
		return nil, err
	}
	if _, ok := sec.deployments[dep]; !ok {
		return nil, fmt.Errorf("app %q has no deployment %q", app, dep)
	}
	var gen uint32
	err = v.rotate(root, app, func(sec *appSection, now string) error {
		sec.deployments = maps.Clone(sec.deployments)
		old := sec.deployments[dep]
		sec.retire(dep, old, ReasonRotated)
		gen = sec.epoch // the new epoch: above every generation dep ever had
		// Placeholder grant; rotate seals every grant once the epoch and MAC are final.
		dk, err := deriveDeploymentKey(root.key[:], app, dep, gen)
		if err != nil {
			return err
		}
		defer clear(dk)
		c, err := grantCheck(dk, app, dep, gen)
		if err != nil {
			return err
		}
		sec.deployments[dep] = &deployment{generation: gen, created: old.created, rotated: now, check: c}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return deriveDeploymentKey(root.key[:], app, dep, gen)
}

// IdentifyKey tells, under root, what a machine key is in this vault: the
// root key (app ""), a current deployment key (app, dep, gen), a retired
// deployment key (retired set), or a legacy app key at its app's current
// epoch (dep ""). ok is false when it is none of these. It verifies the
// table first.
func (v *Vault) IdentifyKey(root *Root, key []byte) (app, dep string, gen uint32, retired *Retired, ok bool, err error) {
	if err := v.checkRoot(root); err != nil {
		return "", "", 0, nil, false, err
	}
	if v.version == Version {
		if err := v.verifyTable(root.key[:]); err != nil {
			return "", "", 0, nil, false, err
		}
	}
	if len(key) != KeySize {
		return "", "", 0, nil, false, nil
	}
	if hmac.Equal(key, root.key[:]) {
		return "", "", 0, nil, true, nil
	}
	for _, a := range v.Apps() {
		sec := v.apps[a]
		for _, name := range slices.Sorted(maps.Keys(sec.deployments)) {
			d := sec.deployments[name]
			dk, err := deriveDeploymentKey(root.key[:], a, name, d.generation)
			if err != nil {
				return "", "", 0, nil, false, err
			}
			same := hmac.Equal(dk, key)
			clear(dk)
			if same {
				return a, name, d.generation, nil, true, nil
			}
		}
		for i := len(sec.retired) - 1; i >= 0; i-- {
			r := sec.retired[i]
			dk, err := deriveDeploymentKey(root.key[:], a, r.deployment, r.generation)
			if err != nil {
				return "", "", 0, nil, false, err
			}
			same := hmac.Equal(dk, key)
			clear(dk)
			if same {
				return a, r.deployment, r.generation, &Retired{Deployment: r.deployment, Generation: r.generation, Date: r.date, Reason: r.reason}, true, nil
			}
		}
		ak, err := deriveAppKey(root.key[:], a, sec.epoch)
		if err != nil {
			return "", "", 0, nil, false, err
		}
		same := hmac.Equal(ak, key)
		clear(ak)
		if same {
			return a, "", 0, nil, true, nil
		}
	}
	return "", "", 0, nil, false, nil
}

// ValidDeploymentName checks a deployment name: the rule of app names.
func ValidDeploymentName(name string) error {
	if err := ValidAppName(name); err != nil {
		return fmt.Errorf("invalid deployment name: %w", err)
	}
	return nil
}

// matchGrant looks for the grant of sec whose check gck (the grant check
// key of a machine key) reproduces. It computes every check of sec and
// compares each in constant time, without an early exit; it returns the
// matching deployment's name, or "".
func matchGrant(gck []byte, app string, sec *appSection, names []string) string {
	found := -1
	for i, name := range names {
		d := sec.deployments[name]
		eq := subtle.ConstantTimeCompare(grantCheckValue(gck, app, name, d.generation), d.check)
		found = subtle.ConstantTimeSelect(eq, i, found)
	}
	if found < 0 {
		return ""
	}
	return names[found]
}

// matchRetired is matchGrant for sec's retired grants; it returns the index
// of the newest match, or -1.
func matchRetired(gck []byte, app string, sec *appSection) int {
	found := -1
	for i, r := range sec.retired {
		eq := subtle.ConstantTimeCompare(grantCheckValue(gck, app, r.deployment, r.generation), r.check)
		found = subtle.ConstantTimeSelect(eq, i, found)
	}
	return found
}
