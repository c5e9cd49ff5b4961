package vault

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
)

func TestOpenWithRootKeyIsUnscoped(t *testing.T) {
	v, root := newTestVault(t)
	scoped, err := v.scoped("web", root.Bytes())
	if err != nil || scoped {
		t.Fatalf("Scoped(root) = %v, %v; want false, nil", scoped, err)
	}
	want := map[string]string{"API_TOKEN": "tok-web", "DB_PASSWORD": "hunter2"}
	if got := secretsMap(t, v, "web", root.Bytes()); !maps.Equal(got, want) {
		t.Fatalf("got %v", got)
	}
}

func TestOpenWithAppKeyIsScoped(t *testing.T) {
	v, root := newTestVault(t)
	k := mustAppKey(t, v, root, "web")
	scoped, err := v.scoped("web", k)
	if err != nil || !scoped {
		t.Fatalf("Scoped(app key) = %v, %v; want true, nil", scoped, err)
	}
	want := map[string]string{"API_TOKEN": "tok-web", "DB_PASSWORD": "hunter2"}
	if got := secretsMap(t, v, "web", k); !maps.Equal(got, want) {
		t.Fatalf("got %v", got)
	}
}

func TestOpenReturnsSecretsSortedByName(t *testing.T) {
	v, root := newTestVault(t)
	mustSet(t, v, root, "web", "AAA", "1")
	mustSet(t, v, root, "web", "ZZZ", "2")
	ss, err := v.Open("web", root.Bytes(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range ss {
		names = append(names, s.Name)
	}
	if !slices.IsSorted(names) || len(names) != 4 {
		t.Fatalf("names = %q", names)
	}
}

func TestOpenNamedSecretsOnly(t *testing.T) {
	v, root := newTestVault(t)
	ss, err := v.Open("web", root.Bytes(), []string{"DB_PASSWORD", "DB_PASSWORD"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) != 1 || ss[0].Name != "DB_PASSWORD" || string(ss[0].Value) != "hunter2" {
		t.Fatalf("got %+v", ss)
	}
	ss, err = v.Open("web", root.Bytes(), []string{})
	if err != nil || len(ss) != 0 {
		t.Fatalf("empty names: %+v, %v", ss, err)
	}
}

func TestOpenMissingNamedSecretIsErrNoSuchSecret(t *testing.T) {
	v, root := newTestVault(t)
	ss, err := v.Open("web", root.Bytes(), []string{"DB_PASSWORD", "MISSING"})
	wantErrIs(t, err, ErrNoSuchSecret)
	if ss != nil || !strings.Contains(err.Error(), `"MISSING"`) {
		t.Fatalf("got %v, %v", ss, err)
	}
}

func TestOpenUnknownAppIsErrNoSuchApp(t *testing.T) {
	v, root := newTestVault(t)
	_, err := v.Open("nope", root.Bytes(), nil)
	wantErrIs(t, err, ErrNoSuchApp)
	if !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("error does not name the app: %v", err)
	}
	_, err = v.scoped("nope", root.Bytes())
	wantErrIs(t, err, ErrNoSuchApp)
}

func TestKeyOfAnotherAppIsWrongAppError(t *testing.T) {
	v, root := newTestVault(t)
	apiKey := mustAppKey(t, v, root, "api")
	_, err := v.Open("web", apiKey, nil)
	var wa *WrongAppError
	if !errors.As(err, &wa) || wa.KeyApp != "api" || wa.WantApp != "web" {
		t.Fatalf("Open(web, api key) = %v, want WrongAppError{api, web}", err)
	}
	if errors.Is(err, ErrWrongKey) {
		t.Fatal("WrongAppError must be told apart from ErrWrongKey")
	}
	if _, err := v.scoped("web", apiKey); !errors.As(err, &wa) {
		t.Fatalf("Scoped(web, api key) = %v", err)
	}
}

func TestKeyFromBeforeRotateIsErrWrongKey(t *testing.T) {
	v, root := newTestVault(t)
	old := mustAppKey(t, v, root, "api")
	if err := v.RotateApp(root, "api"); err != nil {
		t.Fatal(err)
	}
	// The old api key is neither web's nor api's current key.
	for _, app := range []string{"web", "api"} {
		_, err := v.Open(app, old, nil)
		wantErrIs(t, err, ErrWrongKey)
	}
}

func TestKeyOfAnotherVaultIsErrWrongKey(t *testing.T) {
	v, _ := newTestVault(t)
	w, otherRoot := newTestVault(t)
	otherApp := mustAppKey(t, w, otherRoot, "web")
	for name, k := range map[string][]byte{
		"other root": otherRoot.Bytes(), "other app key": otherApp, "zeros": make([]byte, KeySize),
	} {
		_, err := v.Open("web", k, nil)
		wantErrIs(t, err, ErrWrongKey)
		if _, err := v.scoped("web", k); !errors.Is(err, ErrWrongKey) {
			t.Errorf("%s: Scoped = %v", name, err)
		}
	}
}

func TestMachineKeyOfWrongLengthIsRefused(t *testing.T) {
	v, root := newTestVault(t)
	for _, k := range [][]byte{nil, root.Bytes()[:31], append(slices.Clone(root.Bytes()), 0)} {
		_, err := v.Open("web", k, nil)
		if err == nil || !strings.Contains(err.Error(), "exactly 32 bytes") {
			t.Fatalf("Open with a %d-byte key = %v", len(k), err)
		}
	}
}

func TestFlippedByteInValueIsErrDecrypt(t *testing.T) {
	v, root := newTestVault(t)
	for i := range v.apps["web"].secrets["DB_PASSWORD"] {
		w := reparse(t, v)
		w.apps["web"].secrets["DB_PASSWORD"][i] ^= 0x80
		remac(t, w, root, "web") // isolate the AEAD from the MAC
		_, err := w.Open("web", root.Bytes(), nil)
		if err == nil || !errors.Is(err, ErrDecrypt) {
			t.Fatalf("byte %d flipped: Open = %v, want ErrDecrypt", i, err)
		}
		if !strings.HasSuffix(err.Error(), ErrDecrypt.Error()) || !strings.Contains(err.Error(), `"DB_PASSWORD"`) {
			t.Fatalf("byte %d: error text %q", i, err)
		}
	}
}

func TestFlippedByteInValueWithoutReMACIsErrTampered(t *testing.T) {
	v, root := newTestVault(t)
	v.apps["web"].secrets["DB_PASSWORD"][30] ^= 1
	_, err := v.Open("web", root.Bytes(), nil)
	wantErrIs(t, err, ErrTampered)
}

func TestValueMovedToAnotherNameFailsToOpen(t *testing.T) {
	v, root := newTestVault(t)
	s := v.apps["web"].secrets
	s["API_TOKEN"] = slices.Clone(s["DB_PASSWORD"])
	_, err := v.Open("web", root.Bytes(), nil)
	wantErrIs(t, err, ErrTampered) // the MAC catches it first
	remac(t, v, root, "web")
	_, err = v.Open("web", root.Bytes(), []string{"API_TOKEN"})
	wantErrIs(t, err, ErrDecrypt) // and the AEAD's associated data without it
}

func TestValueMovedToAnotherAppFailsToOpen(t *testing.T) {
	v, root := newTestVault(t)
	v.apps["api"].secrets["DB_PASSWORD"] = slices.Clone(v.apps["web"].secrets["DB_PASSWORD"])
	_, err := v.Open("api", root.Bytes(), nil)
	wantErrIs(t, err, ErrTampered)
	remac(t, v, root, "api")
	_, err = v.Open("api", root.Bytes(), []string{"DB_PASSWORD"})
	wantErrIs(t, err, ErrDecrypt)
}

func TestValueFromAnEarlierEpochFailsToOpen(t *testing.T) {
	v, root := newTestVault(t)
	old := slices.Clone(v.apps["web"].secrets["DB_PASSWORD"])
	if err := v.RotateApp(root, "web"); err != nil {
		t.Fatal(err)
	}
	v.apps["web"].secrets["DB_PASSWORD"] = old
	remac(t, v, root, "web")
	_, err := v.Open("web", root.Bytes(), nil)
	wantErrIs(t, err, ErrDecrypt)
}

func TestEntryDeletedAddedOrSwappedIsErrTampered(t *testing.T) {
	cases := map[string]func(v *Vault){
		"deleted": func(v *Vault) { delete(v.apps["web"].secrets, "API_TOKEN") },
		"added": func(v *Vault) {
			v.apps["web"].secrets["EXTRA"] = slices.Clone(v.apps["web"].secrets["API_TOKEN"])
		},
		"swapped": func(v *Vault) {
			s := v.apps["web"].secrets
			s["API_TOKEN"], s["DB_PASSWORD"] = s["DB_PASSWORD"], s["API_TOKEN"]
		},
		"emptied":     func(v *Vault) { clear(v.apps["web"].secrets) },
		"mac changed": func(v *Vault) { v.apps["web"].mac[0] ^= 1 },
		"mac of another app": func(v *Vault) {
			v.apps["web"].mac = slices.Clone(v.apps["api"].mac)
		},
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			v, root := newTestVault(t)
			appKey := mustAppKey(t, v, root, "web")
			edit(v)
			v = reparse(t, v)
			for _, k := range [][]byte{root.Bytes(), appKey} {
				_, err := v.Open("web", k, nil)
				wantErrIs(t, err, ErrTampered)
				_, err = v.scoped("web", k)
				wantErrIs(t, err, ErrTampered)
			}
		})
	}
}

func TestSectionRenamedToAnotherAppDoesNotOpen(t *testing.T) {
	v, root := newTestVault(t)
	webKey := mustAppKey(t, v, root, "web")
	v.apps["web2"] = v.apps["web"]
	delete(v.apps, "web")
	_, err := v.Open("web2", root.Bytes(), nil)
	wantErrIs(t, err, ErrTampered)
	_, err = v.Open("web2", webKey, nil)
	wantErrIs(t, err, ErrWrongKey)
}

func TestEpochEditedInTheFileIsDetected(t *testing.T) {
	v, root := newTestVault(t)
	k := mustAppKey(t, v, root, "web")
	v.apps["web"].epoch = 7
	_, err := v.Open("web", root.Bytes(), nil)
	wantErrIs(t, err, ErrTampered) // the root key is known: the section changed
	_, err = v.Open("web", k, nil)
	wantErrIs(t, err, ErrWrongKey) // an app key cannot tell an edit from a rotation
}

func TestDecryptedValueWithNULIsRefused(t *testing.T) {
	// Only a key holder can seal such a value; refuse it anyway (fail closed).
	v, root := newTestVault(t)
	sec := v.apps["web"]
	keys, err := deriveAppKeys(mustAppKey(t, v, root, "web"))
	if err != nil {
		t.Fatal(err)
	}
	sec.secrets["BAD"], err = seal(keys.value, []byte("a\x00b"), valueAAD("web", sec.epoch, "BAD"))
	if err != nil {
		t.Fatal(err)
	}
	remac(t, v, root, "web")
	_, err = v.Open("web", root.Bytes(), nil)
	if err == nil || !strings.Contains(err.Error(), "NUL") {
		t.Fatalf("Open = %v, want a NUL error", err)
	}
}

func TestErrorsNeverShowValuesOrKeys(t *testing.T) {
	v, root := newTestVault(t)
	appKey := mustAppKey(t, v, root, "web")
	w := reparse(t, v)
	w.apps["web"].secrets["DB_PASSWORD"][40] ^= 1
	remac(t, w, root, "web")
	var errs []error
	_, err := w.Open("web", root.Bytes(), nil)
	errs = append(errs, err)
	_, err = v.Open("api", appKey, nil)
	errs = append(errs, err)
	_, err = v.Open("web", make([]byte, KeySize), nil)
	errs = append(errs, err)
	errs = append(errs, v.SetSecret(root, "web", "X", []byte("hunter2\x00")))
	_, err = v.Unlock([]byte("hunter2"))
	errs = append(errs, err)
	for _, k := range [][]byte{root.Bytes(), appKey} {
		for _, err := range errs {
			if err == nil {
				t.Fatal("expected an error")
			}
			msg := err.Error()
			for _, leak := range []string{"hunter2", "tok-web", hex.EncodeToString(k), base64.StdEncoding.EncodeToString(k), string(k)} {
				if strings.Contains(msg, leak) {
					t.Fatalf("error %q shows a secret", msg)
				}
			}
		}
	}
}

func TestOpenDoesNotShareMemoryWithTheVault(t *testing.T) {
	v, root := newTestVault(t)
	ss, _ := v.Open("web", root.Bytes(), []string{"DB_PASSWORD"})
	WipeAll(ss)
	if got := secretsMap(t, v, "web", root.Bytes()); got["DB_PASSWORD"] != "hunter2" {
		t.Fatal("wiping an opened secret changed the vault")
	}
	k := mustAppKey(t, v, root, "web")
	clear(k)
	if k2 := mustAppKey(t, v, root, "web"); bytes.Equal(k2, k) {
		t.Fatal("AppKey returned shared memory")
	}
}
