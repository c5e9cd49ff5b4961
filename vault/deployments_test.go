package vault

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
)

// depKey is DeploymentKey or the end of the test.
func depKey(t testing.TB, v *Vault, root *Root, app, dep string) []byte {
	t.Helper()
	k, _, err := v.DeploymentKey(root, app, dep)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var webValues = map[string]string{"DB_PASSWORD": "hunter2", "API_TOKEN": "tok-web"}

func TestDeploymentKeyIsDeterministicAndOpensItsApp(t *testing.T) {
	v, root := newTestVault(t)
	gen := v.Generation()
	k1, created, err := v.DeploymentKey(root, "web", "blue")
	if err != nil || !created {
		t.Fatalf("DeploymentKey = %v, created %v", err, created)
	}
	if v.Generation() != gen+1 {
		t.Fatalf("granting is a write: generation %d, want %d", v.Generation(), gen+1)
	}
	k2, created, err := v.DeploymentKey(root, "web", "blue")
	if err != nil || created || !bytes.Equal(k1, k2) || v.Generation() != gen+1 {
		t.Fatalf("deriving again: err %v, created %v, same %v, generation %d", err, created, bytes.Equal(k1, k2), v.Generation())
	}
	want, _ := deriveDeploymentKey(root.Bytes(), "web", "blue", 1)
	if !bytes.Equal(k1, want) {
		t.Fatal("the key is not HKDF(R, ov/v2/deployment/web/blue/1)")
	}
	w := reparse(t, v)
	if got := secretsMap(t, w, "web", k1); !maps.Equal(got, webValues) {
		t.Fatalf("opened %v", got)
	}
	if scoped, err := w.scoped("web", k1); err != nil || !scoped {
		t.Fatalf("Scoped = %v, %v", scoped, err)
	}
	var wrong *WrongAppError
	if _, err := w.Open("api", k1, nil); !errors.As(err, &wrong) || wrong.KeyApp != "web" || wrong.KeyDeployment != "blue" {
		t.Fatalf("Open(api, web's key) = %v", err)
	}
	// Setting a secret re-seals the grants: the key keeps working.
	mustSet(t, w, root, "web", "NEW", "x")
	if got := secretsMap(t, reparse(t, w), "web", k1); got["NEW"] != "x" {
		t.Fatalf("after SetSecret: %v", got)
	}
}

func TestRevokeKeepsOtherDeploymentsWorking(t *testing.T) {
	v, root := newTestVault(t)
	blue := depKey(t, v, root, "web", "blue")
	green := depKey(t, v, root, "web", "green")
	legacy := mustAppKey(t, v, root, "web")
	before := marshal(t, v)
	if err := v.RevokeDeployment(root, "web", "green"); err != nil {
		t.Fatal(err)
	}
	w := reparse(t, v)
	if got := secretsMap(t, w, "web", blue); !maps.Equal(got, webValues) {
		t.Fatalf("blue after revoking green: %v", got)
	}
	_, err := w.Open("web", green, nil)
	var re *RetiredKeyError
	if !errors.Is(err, ErrRevokedDeployment) || !errors.As(err, &re) || re.Deployment != "green" || re.Reason != ReasonRevoked {
		t.Fatalf("Open with the revoked key = %v", err)
	}
	if !strings.Contains(err.Error(), `deployment "green" of app "web"`) || !strings.Contains(err.Error(), "revoked on ") {
		t.Fatalf("message: %v", err)
	}
	// A legacy app key stops at the new epoch.
	_, err = w.Open("web", legacy, nil)
	wantErrIs(t, err, ErrWrongKey)
	// The documented limit: the copy from before still opens with it.
	if got := secretsMap(t, mustParse(t, before), "web", green); !maps.Equal(got, webValues) {
		t.Fatalf("copy from before the revoke: %v", got)
	}
	// Granting the name again gives a new generation, never the revoked key.
	again := depKey(t, w, root, "web", "green")
	if bytes.Equal(again, green) {
		t.Fatal("re-granting a revoked name gave back the revoked key")
	}
	if d, _ := w.Deployments("web"); len(d) != 2 || d[1].Name != "green" || d[1].Generation != 2 {
		t.Fatalf("deployments = %+v", d)
	}
}

func TestRotateDeployment(t *testing.T) {
	v, root := newTestVault(t)
	blue := depKey(t, v, root, "web", "blue")
	green := depKey(t, v, root, "web", "green")
	newGreen, err := v.RotateDeployment(root, "web", "green")
	if err != nil {
		t.Fatal(err)
	}
	w := reparse(t, v)
	for _, k := range [][]byte{blue, newGreen} {
		if got := secretsMap(t, w, "web", k); !maps.Equal(got, webValues) {
			t.Fatalf("after rotating green: %v", got)
		}
	}
	_, err = w.Open("web", green, nil)
	wantErrIs(t, err, ErrRotatedDeployment)
	if !strings.Contains(err.Error(), "(generation 1) was replaced by a newer key on ") {
		t.Fatalf("message: %v", err)
	}
	app, dep, gen, retired, ok, err := w.IdentifyKey(root, green)
	if err != nil || !ok || app != "web" || dep != "green" || gen != 1 || retired == nil || retired.Reason != ReasonRotated {
		t.Fatalf("IdentifyKey(old green) = %q %q %d %+v %v %v", app, dep, gen, retired, ok, err)
	}
	app, dep, gen, retired, ok, err = w.IdentifyKey(root, newGreen)
	if err != nil || !ok || app != "web" || dep != "green" || gen != 2 || retired != nil {
		t.Fatalf("IdentifyKey(new green) = %q %q %d %+v %v %v", app, dep, gen, retired, ok, err)
	}
}

func TestRotateAppKeepsDeploymentKeys(t *testing.T) {
	v, root := newTestVault(t)
	blue := depKey(t, v, root, "web", "blue")
	legacy := mustAppKey(t, v, root, "web")
	if err := v.RotateApp(root, "web"); err != nil {
		t.Fatal(err)
	}
	w := reparse(t, v)
	if got := secretsMap(t, w, "web", blue); !maps.Equal(got, webValues) {
		t.Fatalf("blue after RotateApp: %v", got)
	}
	_, err := w.Open("web", legacy, nil)
	wantErrIs(t, err, ErrWrongKey)
}

func TestKeyOfAnotherVault(t *testing.T) {
	v, root := newTestVault(t)
	depKey(t, v, root, "web", "blue")
	o, oroot := newTestVault(t)
	other := depKey(t, o, oroot, "web", "blue")
	_, err := v.Open("web", other, nil)
	wantErrIs(t, err, ErrWrongKey)
	if !strings.Contains(err.Error(), "another vault") {
		t.Fatalf("message: %v", err)
	}
}

// grantJSON edits deployment fields of app in the file data.
func depsOf(m map[string]any, app string) map[string]any {
	return obj(m, "apps", app, "deployments")
}

func TestForgedGrantIsRefused(t *testing.T) {
	// An attacker who holds green's key (revoked) knows web's old app key.
	// After the revoke, they add a grant of their own for a key they chose,
	// wrapping the old app key for the current epoch and MAC.
	v, root := newTestVault(t)
	depKey(t, v, root, "web", "blue")
	green := depKey(t, v, root, "web", "green")
	oldA := mustAppKey(t, v, root, "web")
	if err := v.RevokeDeployment(root, "web", "green"); err != nil {
		t.Fatal(err)
	}
	_ = green
	chosen := bytes.Repeat([]byte{0x42}, KeySize)
	sec := v.apps["web"]
	c, _ := grantCheck(chosen, "web", "evil", 1)
	g, err := sealGrant(chosen, oldA, "web", "evil", 1, sec.epoch, sec.mac)
	if err != nil {
		t.Fatal(err)
	}
	forged := editJSON(t, marshal(t, v), func(m map[string]any) {
		depsOf(m, "web")["evil"] = map[string]any{"generation": 1, "created": "2025-01-01T00:00:00Z", "rotated": "2025-01-01T00:00:00Z",
			"check": b64s(c), "grant": b64s(g)}
	})
	w := mustParse(t, forged)
	_, err = w.Open("web", chosen, nil)
	wantErrIs(t, err, ErrTampered)
	assertRefusedEverywhere(t, forged, root, "web", "api")
}

func b64s(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func TestReplayedGrantIsRefused(t *testing.T) {
	v, root := newTestVault(t)
	blue := depKey(t, v, root, "web", "blue")
	green := depKey(t, v, root, "web", "green")
	oldA := mustAppKey(t, v, root, "web")
	old := v.apps["web"].clone()
	if err := v.RevokeDeployment(root, "web", "green"); err != nil {
		t.Fatal(err)
	}

	// Blue's grant from before the revoke, pasted into the current file.
	replayed := editJSON(t, marshal(t, v), func(m map[string]any) {
		depsOf(m, "web")["blue"].(map[string]any)["grant"] = b64s(old.deployments["blue"].grant)
	})
	_, err := mustParse(t, replayed).Open("web", blue, nil)
	wantErrIs(t, err, ErrTampered)
	if !strings.Contains(err.Error(), "grant") {
		t.Fatalf("message: %v", err)
	}
	assertRefusedEverywhere(t, replayed, root, "web", "api")

	// Green's grant put back (the revoke undone in the table only).
	regranted := editJSON(t, marshal(t, v), func(m map[string]any) {
		d := old.deployments["green"]
		depsOf(m, "web")["green"] = map[string]any{"generation": d.generation, "created": d.created, "rotated": d.rotated, "check": b64s(d.check), "grant": b64s(d.grant)}
	})
	_, err = mustParse(t, regranted).Open("web", green, nil)
	wantErrIs(t, err, ErrTampered)
	assertRefusedEverywhere(t, regranted, root, "web", "api")

	// The revoked key's holder rolls web back to its old epoch, with values
	// of their choosing (they know the old app key) and blue's old grant:
	// blue's grant binds the section's MAC, so blue refuses it.
	forgedSec := forgeSection(t, oldA, "web", old.epoch, forgedValues)
	forgedSec.deployments = old.deployments
	forgedSec.retired = old.retired
	rolled := pasteSection(t, marshal(t, v), "web", forgedSec)
	_, err = mustParse(t, rolled).Open("web", blue, nil)
	wantErrIs(t, err, ErrTampered)
	assertRefusedEverywhere(t, rolled, root, "web", "api")
}

func TestMovedGrantIsRefused(t *testing.T) {
	v, root := newTestVault(t)
	blue := depKey(t, v, root, "web", "blue")
	depKey(t, v, root, "api", "blue")
	data := marshal(t, v)
	var blueJSON any
	editJSON(t, data, func(m map[string]any) { blueJSON = depsOf(m, "web")["blue"] })

	// To another deployment of the same app.
	moved := editJSON(t, data, func(m map[string]any) {
		delete(depsOf(m, "web"), "blue")
		depsOf(m, "web")["red"] = blueJSON
	})
	_, err := mustParse(t, moved).Open("web", blue, nil)
	if err == nil {
		t.Fatal("a grant moved to another deployment opened")
	}
	assertRefusedEverywhere(t, moved, root, "web", "api")

	// To another app, same deployment name.
	moved = editJSON(t, data, func(m map[string]any) { depsOf(m, "api")["blue"] = blueJSON })
	_, err = mustParse(t, moved).Open("api", blue, nil)
	var wrong *WrongAppError
	if !errors.As(err, &wrong) || wrong.KeyApp != "web" {
		t.Fatalf("a grant moved to another app: Open = %v", err)
	}
	assertRefusedEverywhere(t, moved, root, "web", "api")
}

func TestFormat1UpgradesOnFirstGrant(t *testing.T) {
	v, root := newTestVault(t)
	toV1(t, v, root)
	v = reparse(t, v)
	unlocked, err := v.Unlock(testPassword)
	if err != nil {
		t.Fatal(err)
	}
	legacy := mustAppKey(t, v, unlocked, "web")
	k := depKey(t, v, unlocked, "web", DefaultDeployment)
	w := reparse(t, v)
	if w.Version() != Version || w.Generation() != 1 {
		t.Fatalf("version %d generation %d", w.Version(), w.Generation())
	}
	for _, key := range [][]byte{k, legacy} {
		if got := secretsMap(t, w, "web", key); !maps.Equal(got, webValues) {
			t.Fatalf("opened %v", got)
		}
	}
}

// A deployment's generation is its app's epoch when it was granted or
// rotated, never chosen from the retired list: once the revoked entry of a
// name has dropped out of that bounded list, granting the name again must
// still not give the revoked key back.
func TestRegrantAfterRetiredListOverflowsGetsNewKey(t *testing.T) {
	v, root := newTestVault(t)
	old := depKey(t, v, root, "web", "default")
	depKey(t, v, root, "web", "other")
	if err := v.RevokeDeployment(root, "web", "default"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < MaxRetired+1; i++ {
		k, err := v.RotateDeployment(root, "web", "other")
		if err != nil {
			t.Fatal(err)
		}
		clear(k)
	}
	retired, _ := v.RetiredKeys("web")
	for _, r := range retired {
		if r.Deployment == "default" {
			t.Fatalf("the revoked entry is still in the retired list (%d entries): the test proves nothing", len(retired))
		}
	}
	epoch, _ := v.Epoch("web")
	again, created, err := v.DeploymentKey(root, "web", "default")
	if err != nil || !created {
		t.Fatalf("granting default again: %v, created %v", err, created)
	}
	if bytes.Equal(again, old) {
		t.Fatal("granting a revoked name again, once the retired list forgot it, gave back the revoked key")
	}
	if d, _ := v.Deployments("web"); d[0].Name != "default" || d[0].Generation != epoch {
		t.Fatalf("deployments = %+v, want default at generation %d (the epoch)", d, epoch)
	}
	w := reparse(t, v)
	if _, err := w.Open("web", old, nil); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("Open with the revoked key = %v, want it refused", err)
	}
	if got := secretsMap(t, w, "web", again); !maps.Equal(got, webValues) {
		t.Fatalf("the new default key opens %v", got)
	}
}

// Rotating a deployment takes the app's new epoch as its generation.
func TestRotatedGenerationIsNewEpoch(t *testing.T) {
	v, root := newTestVault(t)
	depKey(t, v, root, "web", "blue")
	for i := 0; i < 3; i++ {
		if err := v.RotateApp(root, "web"); err != nil {
			t.Fatal(err)
		}
	}
	k, err := v.RotateDeployment(root, "web", "blue")
	if err != nil {
		t.Fatal(err)
	}
	epoch, _ := v.Epoch("web")
	want, _ := deriveDeploymentKey(root.Bytes(), "web", "blue", epoch)
	if d, _ := v.Deployments("web"); d[0].Generation != epoch || !bytes.Equal(k, want) {
		t.Fatalf("deployments = %+v, want generation %d (the epoch)", d, epoch)
	}
}

func TestRetiredListIsBounded(t *testing.T) {
	v, _ := newTestVault(t)
	sec := v.apps["web"]
	for i := 0; i < MaxRetired+5; i++ {
		sec.retire("x", &deployment{generation: uint32(i + 1), check: make([]byte, macSize)}, ReasonRotated)
	}
	if len(sec.retired) != MaxRetired || sec.retired[0].generation != 6 {
		t.Fatalf("len %d, oldest generation %d", len(sec.retired), sec.retired[0].generation)
	}
}

// BenchmarkOpen compares opening an app of 50 secrets with its legacy app
// key and with one deployment key among 100.
func BenchmarkOpen(b *testing.B) {
	v, root, err := New(testPassword)
	if err != nil {
		b.Fatal(err)
	}
	if err := v.CreateApp(root, "web"); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		mustSet(b, v, root, "web", fmt.Sprintf("SECRET_%02d", i), strings.Repeat("v", 64))
	}
	var last []byte
	for i := 0; i < 100; i++ {
		last = depKey(b, v, root, "web", fmt.Sprintf("host-%03d", i))
	}
	legacy := mustAppKey(b, v, root, "web")
	for _, c := range []struct {
		name string
		key  []byte
	}{{"legacy-app-key", legacy}, {"deployment-key-of-100", last}, {"root-key", root.Bytes()}} {
		b.Run(c.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				ss, err := v.Open("web", c.key, nil)
				if err != nil || len(ss) != 50 {
					b.Fatal(err)
				}
				WipeAll(ss)
			}
		})
	}
}
